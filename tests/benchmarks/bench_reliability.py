"""What the reliability layer costs, and how exact the rate limiter is.

* overhead: a sequenced runner with one no-op hook of each kind (on_queued,
  on_start, on_finish) and one no-op middleware, against the bare runner:
  ``post_task`` of N trivial async tasks, then ``wait_idle()``; tasks/s.
* rate limit: a parallel runner with ``RateLimit(per_second=R, burst=1)``
  running trivial tasks for 10 s of real time; the achieved rate (tasks
  started after the first, over the time from the first start to the last)
  against R.

Run: ``python tests/benchmarks/bench_reliability.py [--rounds N]``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import trio

import trunner

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tests.benchmarks import _common as common
else:
    import _common as common

N: Final = 100_000
RATE: Final = 500.0
RATE_SECONDS: Final = 10.0
GOAL_OVERHEAD: Final = common.Goal(">=", 0.7)
GOAL_RATE: Final = common.Goal("<=", 1.0)


async def noop() -> None:
    pass


def hook(task: object) -> None:
    del task


def finish_hook(task: object, result: object) -> None:
    del task, result


async def middleware(
    task: object, call_next: Callable[[], Awaitable[object]]
) -> object:
    del task
    return await call_next()


HOOKS: Final = trunner.TaskHooks(on_queued=hook, on_start=hook, on_finish=finish_hook)


async def throughput(layered: bool, n: int = N) -> float:
    options: trunner.RunnerOptions = {}
    if layered:
        options = {"hooks": HOOKS, "middleware": [middleware]}
    async with trunner.open_sequenced_runner(**options) as runner:
        t0 = time.perf_counter()
        for _ in range(n):
            runner.post_task(noop)
        await runner.wait_idle()
        return n / (time.perf_counter() - t0)


async def rate_error() -> tuple[float, float]:
    starts: list[float] = []
    limit = trunner.RateLimit(per_second=RATE, burst=1)
    async with trunner.open_parallel_runner(
        max_concurrency=8, rate_limit=limit
    ) as runner:

        def started() -> None:
            starts.append(time.perf_counter())

        for _ in range(int(RATE * RATE_SECONDS) + 1):
            runner.post_task(started)
        await runner.wait_idle()
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    return achieved, abs(achieved - RATE) / RATE * 100


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "")
    common.print_environment(f"bench_reliability (N={N:,})", rounds)
    results = common.interleave(
        [
            ("bare", lambda: trio.run(throughput, False)),
            ("layered", lambda: trio.run(throughput, True)),
        ],
        rounds=rounds,
    )
    rows = [
        common.compare(
            "hooks + middleware / bare",
            results["layered"],
            results["bare"],
            fmt=common.fmt_rate,
            goal=GOAL_OVERHEAD,
        )
    ]
    common.print_table(f"Reliability layer overhead, sequenced runner, N={N:,}", rows)
    achieved, error = trio.run(rate_error)
    rate_row = common.Row(
        metric=f"rate limit, {RATE:g}/s for {RATE_SECONDS:g} s",
        value=f"{achieved:.2f}/s",
        baseline=f"{RATE:g}/s",
        ratio=f"error {error:.3f}%",
        goal="<= 1%",
        status=common.status(GOAL_RATE, error),
    )
    common.print_table("Rate limiter accuracy (real time)", [rate_row])


if __name__ == "__main__":
    main()
