"""Speed-up of a ProcessTaskRunner on CPU-bound work, against the Trio thread.

Each variant runs the same batch of pure-Python functions of about 10 ms each
(counting primes), and the figure is the wall time of the whole batch:

* sequential: each function called in turn on the Trio thread (what the work
  costs without processes);
* process: ``post_task`` of each function to a ``ProcessTaskRunner`` with
  ``max_workers=2``, then ``wait_idle()``. The runner is opened, and its two
  worker processes started, before the clock starts: a long-lived runner pays
  that once.

Run: ``python tests/benchmarks/bench_process.py [--rounds N]``.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Final

import trio

import trunner

if TYPE_CHECKING:
    from tests.benchmarks import _common as common
else:
    import _common as common

TASKS: Final = 60
WORKERS: Final = 2
GOAL: Final = common.Goal(">=", 1.7)


def count_primes(limit: int) -> int:
    """Return how many primes lie below ``limit``: pure-Python CPU work."""
    return sum(
        1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1))
    )


def calibrate(target: float = 0.010) -> int:
    """Return a ``limit`` for which `count_primes` takes about ``target`` seconds."""
    limit = 1000
    while True:
        t0 = time.perf_counter()
        count_primes(limit)
        elapsed = time.perf_counter() - t0
        if elapsed >= target / 2:
            return max(1000, int(limit * target / elapsed))
        limit *= 2


async def sequential(limit: int) -> float:
    t0 = time.perf_counter()
    for _ in range(TASKS):
        count_primes(limit)
    return time.perf_counter() - t0


async def process_runner(limit: int) -> float:
    async with trunner.open_process_runner(max_workers=WORKERS) as runner:
        for _ in range(WORKERS):  # start both worker processes
            runner.post_task(count_primes, 10)
        await runner.wait_idle()
        t0 = time.perf_counter()
        for _ in range(TASKS):
            runner.post_task(count_primes, limit)
        await runner.wait_idle()
        return time.perf_counter() - t0


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "", default=5)
    limit = calibrate()
    common.print_environment(
        f"bench_process ({TASKS} tasks of ~10 ms, {WORKERS} workers, "
        f"{os.cpu_count()} CPUs)",
        rounds,
    )
    results = common.interleave(
        [
            ("sequential", lambda: trio.run(sequential, limit)),
            ("process", lambda: trio.run(process_runner, limit)),
        ],
        rounds=rounds,
    )
    speedups = common.paired_ratios(results["sequential"], results["process"])
    row = common.Row(
        metric="speed-up, process / Trio thread",
        value=f"{common.median(results['process']) * 1e3:.0f} ms",
        baseline=f"{common.median(results['sequential']) * 1e3:.0f} ms",
        ratio=f"{common.fmt_ratio(common.median(speedups))} "
        f"{common.fmt_spread(speedups)}",
        goal=GOAL.describe(),
        status=common.status(GOAL, common.median(speedups)),
    )
    common.print_table("CPU-bound work in worker processes", [row])


if __name__ == "__main__":
    main()
