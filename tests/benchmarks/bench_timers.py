"""Lateness of 10,000 delayed tasks posted at once, on real time.

Each timer gets a delay ``d`` drawn uniformly from [0.1, 0.6] s (the same
seeded delays for every variant of a round). Its lateness is its actual start
time minus (post time + ``d``), all on trio's clock (the `trio.SystemClock`,
which follows ``time.perf_counter``):

* trunner: ``runner.post_delayed_task(fn, deadline, delay=d)`` on one
  sequenced runner (one heap and one timer task per runner);
* trio tasks: ``nursery.start_soon`` of one task per timer that does
  ``await trio.sleep(d)`` and then records (the baseline);
* trio sleep_until: the same, but sleeping until the deadline computed at post
  time, which removes the time the task waited to be first scheduled
  (information only);
* single sleeper: one trio task that sleeps until each deadline in turn, in
  sorted order: the floor that trio's own timer resolution sets (epoll rounds
  its timeout up to the next millisecond), for information.

Run: ``python tests/benchmarks/bench_timers.py [--rounds N]``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Final

import trio

import trunner

if TYPE_CHECKING:
    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
else:
    import _common as common

TIMERS: Final = 10_000
MIN_DELAY: Final = 0.1
MAX_DELAY: Final = 0.6
GOAL_P99_MS: Final = common.Goal("<=", 2.0)
QUANTILES: Final = (("p50", 50.0), ("p99", 99.0), ("max", 100.0))


def draw_delays(seed: int) -> list[float]:
    """Return ``TIMERS`` delays, uniform in [MIN_DELAY, MAX_DELAY]."""
    rng = random.Random(seed)
    return [rng.uniform(MIN_DELAY, MAX_DELAY) for _ in range(TIMERS)]


async def trunner_timers(delays: list[float]) -> list[float]:
    """Return the lateness (s) of each delayed task of a sequenced runner."""
    lateness: list[float] = []
    done = trio.Event()
    now = trio.current_time
    count = len(delays)

    async def fire(deadline: float) -> None:
        lateness.append(now() - deadline)
        if len(lateness) == count:
            done.set()

    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner() as runner,
    ):
        post = runner.post_delayed_task
        for delay in delays:
            post(fire, now() + delay, delay=delay)
        await done.wait()
    return lateness


async def trio_task_timers(delays: list[float]) -> list[float]:
    """Return the lateness (s) of one trio task per timer doing ``trio.sleep(d)``."""
    lateness: list[float] = []
    now = trio.current_time

    async def timer(deadline: float, delay: float) -> None:
        await trio.sleep(delay)
        lateness.append(now() - deadline)

    async with trio.open_nursery() as nursery:
        start_soon = nursery.start_soon
        for delay in delays:
            start_soon(timer, now() + delay, delay)
    return lateness


async def trio_task_sleep_until(delays: list[float]) -> list[float]:
    """Return the lateness (s) of one trio task per timer doing ``trio.sleep_until``."""
    lateness: list[float] = []
    now = trio.current_time

    async def timer(deadline: float) -> None:
        await trio.sleep_until(deadline)
        lateness.append(now() - deadline)

    async with trio.open_nursery() as nursery:
        start_soon = nursery.start_soon
        for delay in delays:
            start_soon(timer, now() + delay)
    return lateness


async def single_sleeper(delays: list[float]) -> list[float]:
    """Return the lateness (s) of one task sleeping until each deadline in turn."""
    lateness: list[float] = []
    now = trio.current_time
    deadlines = sorted(now() + delay for delay in delays)
    for deadline in deadlines:
        await trio.sleep_until(deadline)
        lateness.append(now() - deadline)
    return lateness


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "")
    common.print_environment(
        f"bench_timers ({TIMERS:,} timers, d in [{MIN_DELAY}, {MAX_DELAY}] s)", rounds
    )
    delays = draw_delays(2026)
    results = common.interleave(
        [
            ("trio", lambda: trio.run(trio_task_timers, delays)),
            ("trunner", lambda: trio.run(trunner_timers, delays)),
            ("sleep_until", lambda: trio.run(trio_task_sleep_until, delays)),
            ("single sleeper", lambda: trio.run(single_sleeper, delays)),
        ],
        rounds=rounds,
    )
    rows: list[common.Row] = []
    for baseline in ("trio", "single sleeper", "sleep_until"):
        for label, q in QUANTILES if baseline != "sleep_until" else QUANTILES[1:2]:
            goal = GOAL_P99_MS if label == "p99" and baseline == "trio" else None
            rows.append(
                common.compare(
                    f"lateness {label} vs {baseline}",
                    [common.percentile(r, q) * 1e3 for r in results["trunner"]],
                    [common.percentile(r, q) * 1e3 for r in results[baseline]],
                    fmt=common.fmt_ms,
                    goal=goal,
                    goal_on="value",
                    goal_unit=" ms",
                )
            )
    common.print_table(f"Timer lateness, {TIMERS:,} delayed tasks posted at once", rows)


if __name__ == "__main__":
    main()
