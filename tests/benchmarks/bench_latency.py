"""Latency from ``post_task`` to the first line of the task, on an idle runner.

A sample is the time from just before ``post_task`` to the first line of the
task (both ``time.perf_counter()``). Before each sample the runner is idle:
the previous task has set an event, and ``trio.testing.wait_all_tasks_blocked``
has returned, so its consumer is parked in ``await receive()``. The baseline
is a raw trio consumer parked in ``await receive()`` on a memory channel.
Within a round both live in the same ``trio.run`` and take their samples
alternately; the table gives the median over rounds of each round's
p50 and p99.

Run: ``python tests/benchmarks/bench_latency.py [--rounds N]``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Final

import trio
import trio.testing

import trunner

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common

    Job = Callable[[], Awaitable[None]]
else:
    import _common as common

#: Samples per variant and round.
SAMPLES: Final = 10_000


async def _sample_runner(runner: trunner.SequencedTaskRunner) -> float:
    started = 0.0
    ran = trio.Event()

    async def task() -> None:
        nonlocal started
        started = time.perf_counter()
        ran.set()

    before = time.perf_counter()
    runner.post_task(task)
    await ran.wait()
    return started - before


async def _sample_raw(send: trio.MemorySendChannel[Job]) -> float:
    started = 0.0
    ran = trio.Event()

    async def task() -> None:
        nonlocal started
        started = time.perf_counter()
        ran.set()

    before = time.perf_counter()
    send.send_nowait(task)
    await ran.wait()
    return started - before


async def measure_round(samples: int) -> tuple[list[float], list[float]]:
    """Return latencies in seconds: (trunner, raw), sampled alternately."""
    send, receive = trio.open_memory_channel["Job"](math.inf)

    async def consume() -> None:
        async for fn in receive:
            await fn()

    seq: list[float] = []
    raw: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        async with (
            trunner.open_scheduler() as scheduler,
            scheduler.open_sequenced_runner() as runner,
        ):
            for index in range(samples):
                # Alternate which one goes first, so neither always follows the other.
                for which in (0, 1) if index % 2 == 0 else (1, 0):
                    await trio.testing.wait_all_tasks_blocked()
                    if which == 0:
                        seq.append(await _sample_runner(runner))
                    else:
                        raw.append(await _sample_raw(send))
        send.close()
    return seq, raw


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "")
    common.print_environment(
        f"bench_latency ({SAMPLES:,} samples per variant and round)", rounds
    )
    results = common.interleave(
        [("both", lambda: trio.run(measure_round, SAMPLES))], rounds=rounds
    )["both"]
    rows = [
        common.compare(
            f"post->start {label}",
            [common.percentile(seq, q) * 1e6 for seq, _ in results],
            [common.percentile(raw, q) * 1e6 for _, raw in results],
            fmt=common.fmt_us,
        )
        for label, q in (("p50", 50.0), ("p99", 99.0))
    ]
    common.print_table(
        "post_task latency to start, idle sequenced runner (baseline: raw consumer)",
        rows,
    )


if __name__ == "__main__":
    main()
