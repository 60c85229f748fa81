"""Accuracy of a repeating task at a 10 ms interval over 2 s of real time.

Tick k of a fixed-rate repetition is due at ``post_time + k * interval``; a
run's lateness is its start time minus its tick's deadline, on trio's clock
(the `trio.SystemClock`, which follows ``time.perf_counter``). The repetition
is stopped at ``post_time + 2 s``; the run due at that very instant may or may
not have started, so 200 or 201 runs (counting run 0) are right. Drift is the
lateness of the last run.

* trunner: ``runner.post_repeating_task(fn, interval=0.01)`` on a sequenced
  runner, with the default ``missed=MissedTicks.SKIP``: a run that starts more
  than an interval late (the machine stalled) makes the next tick be skipped;
  the ticks are matched to the runs by that rule, and the skipped ones are
  counted;
* sleep_until loop (baseline): one trio task doing
  ``await trio.sleep_until(post_time + k * interval)`` for k = 0, 1, 2, ...,
  the usual drift-free loop (it runs late ticks back to back, skipping none);
* sleep loop (information): one trio task doing ``await trio.sleep(interval)``
  after each run, the naive loop that drifts.

Run: ``python tests/benchmarks/bench_repeating.py [--rounds N]``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import attrs
import trio

import trunner

if TYPE_CHECKING:
    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
else:
    import _common as common

INTERVAL: Final = 0.01
DURATION: Final = 2.0
GOAL_DRIFT_MS: Final = common.Goal("<=", 2.0)
EXPECTED_RUNS: Final = (200, 201)


@attrs.frozen
class Repetition:
    """The outcome of one repetition: each run's lateness (s), and ticks skipped."""

    lateness: list[float]
    skipped: int


def skip_ticks(posted: float, ends: list[float]) -> list[int]:
    """Return the tick of each run under `trunner.MissedTicks.SKIP`.

    Run 0 is tick 0. After a run that ended past the next tick's deadline, the
    schedule goes on with the first tick whose deadline is not in the past: the
    ticks in between are skipped.
    """
    ticks = [0]
    for end in ends[:-1]:
        ticks.append(max(ticks[-1] + 1, math.ceil((end - posted) / INTERVAL)))
    return ticks


async def trunner_repeating() -> Repetition:
    """Measure ``post_repeating_task`` on a sequenced runner."""
    starts: list[float] = []
    ends: list[float] = []
    now = trio.current_time

    async def tick() -> None:
        starts.append(now())
        ends.append(now())

    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner() as runner,
    ):
        posted = now()
        handle = runner.post_repeating_task(tick, interval=INTERVAL)
        await trio.sleep_until(posted + DURATION)
        handle.stop()
    assert handle.runs == len(starts)
    ticks = skip_ticks(posted, ends)
    lateness = [
        start - (posted + k * INTERVAL) for k, start in zip(ticks, starts, strict=True)
    ]
    return Repetition(lateness, ticks[-1] + 1 - len(ticks))


async def _loop(*, fixed_rate: bool) -> Repetition:
    starts: list[float] = []
    now = trio.current_time
    posted = now()

    async def repeat() -> None:
        k = 0
        while True:
            if fixed_rate:
                await trio.sleep_until(posted + k * INTERVAL)
            elif k:
                await trio.sleep(INTERVAL)
            starts.append(now())
            k += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(repeat)
        await trio.sleep_until(posted + DURATION)
        nursery.cancel_scope.cancel()
    lateness = [start - (posted + k * INTERVAL) for k, start in enumerate(starts)]
    return Repetition(lateness, 0)


async def sleep_until_loop() -> Repetition:
    """Measure a ``trio.sleep_until(post_time + k * interval)`` loop."""
    return await _loop(fixed_rate=True)


async def sleep_loop() -> Repetition:
    """Measure a ``trio.sleep(interval)`` loop."""
    return await _loop(fixed_rate=False)


def drift(lateness: list[float]) -> float:
    """Return the lateness of the last run."""
    return lateness[-1]


def p50(lateness: list[float]) -> float:
    """Return the median lateness."""
    return common.percentile(lateness, 50.0)


def p99(lateness: list[float]) -> float:
    """Return the 99th percentile of the lateness."""
    return common.percentile(lateness, 99.0)


MEASURES: Final = (
    ("drift (last run)", drift),
    ("lateness p50", p50),
    ("lateness p99", p99),
    ("lateness max", max),
)


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "", default=4)
    common.print_environment(
        f"bench_repeating (interval {INTERVAL * 1e3:g} ms for {DURATION:g} s)", rounds
    )
    results = common.interleave(
        [
            ("sleep_until", lambda: trio.run(sleep_until_loop)),
            ("trunner", lambda: trio.run(trunner_repeating)),
            ("sleep", lambda: trio.run(sleep_loop)),
        ],
        rounds=rounds,
        warmup=False,
    )
    seq = results["trunner"]
    runs = [len(r.lateness) for r in seq]
    rows = [
        common.Row(
            metric="runs in 2 s (per round)",
            value=" ".join(str(n) for n in runs),
            baseline=" ".join(str(len(r.lateness)) for r in results["sleep_until"]),
            ratio="",
            goal="200 or 201",
            status="PASS" if all(n in EXPECTED_RUNS for n in runs) else "MISS",
        ),
        common.Row(
            metric="ticks skipped (per round)",
            value=" ".join(str(r.skipped) for r in seq),
            baseline=" ".join(str(r.skipped) for r in results["sleep_until"]),
            ratio="",
        ),
    ]
    for baseline in ("sleep_until", "sleep"):
        for label, measure in MEASURES:
            goal = None
            if measure is drift and baseline == "sleep_until":
                goal = GOAL_DRIFT_MS
            rows.append(
                common.compare(
                    f"{label} vs {baseline} loop",
                    [measure(r.lateness) * 1e3 for r in seq],
                    [measure(r.lateness) * 1e3 for r in results[baseline]],
                    fmt=common.fmt_ms,
                    goal=goal,
                    goal_on="value",
                    goal_unit=" ms",
                )
            )
    common.print_table(
        f"Repeating task, interval={INTERVAL * 1e3:g} ms, {DURATION:g} s", rows
    )


if __name__ == "__main__":
    main()
