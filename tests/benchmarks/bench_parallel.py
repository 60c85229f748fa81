"""Throughput of a ParallelTaskRunner against raw and library worker pools.

Each variant runs N tasks that each do one ``trio.lowlevel.checkpoint()``, at
most 8 at once, all handed over at once; the time runs from the first post to
the end of the last task:

* trunner: ``post_task`` N times on a parallel runner with
  ``max_concurrency=8``, then ``wait_idle()``;
* raw8: 8 raw trio workers doing ``async for`` on one unbounded memory channel;
* aiometer: ``aiometer.run_on_each(fn, items, max_at_once=8)`` (a task per
  item, on anyio), under ``trio.run``; it is slow, so it runs a smaller N and
  the figures compare rates per task;
* anyio: 8 workers in an anyio task group reading one anyio memory object
  stream, under ``trio.run``.

Run: ``python tests/benchmarks/bench_parallel.py [--rounds N]``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Final

import aiometer
import anyio
import trio
import trio.testing

import trunner

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.streams.memory import MemoryObjectReceiveStream

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common

    Job = Callable[[], Awaitable[None]]
else:
    import _common as common

N: Final = 100_000
#: aiometer spawns a task per item: a smaller batch keeps the run short.
N_AIOMETER: Final = 20_000
WORKERS: Final = 8
GOAL_VS_RAW: Final = common.Goal(">=", 0.9)
GOAL_VS_AIOMETER: Final = common.Goal(">=", 3.0)


async def checkpoint_task() -> None:
    await trio.lowlevel.checkpoint()


async def checkpoint_item(item: int) -> None:
    del item
    await trio.lowlevel.checkpoint()


async def trunner_parallel(n: int) -> float:
    """Return tasks/s of a parallel runner with 8 slots."""
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_parallel_runner(max_concurrency=WORKERS) as runner,
    ):
        await trio.testing.wait_all_tasks_blocked()
        post = runner.post_task
        start = time.perf_counter()
        for _ in range(n):
            post(checkpoint_task)
        await runner.wait_idle()
        elapsed = time.perf_counter() - start
    return n / elapsed


async def raw_workers(n: int) -> float:
    """Return tasks/s of 8 raw trio workers on one memory channel."""
    send, receive = trio.open_memory_channel["Job"](math.inf)

    async def work() -> None:
        async for fn in receive:
            await fn()

    async with trio.open_nursery() as nursery:
        for _ in range(WORKERS):
            nursery.start_soon(work)
        await trio.testing.wait_all_tasks_blocked()
        send_nowait = send.send_nowait
        start = time.perf_counter()
        for _ in range(n):
            send_nowait(checkpoint_task)
        send.close()
    # The workers end when the channel is closed and empty.
    return n / (time.perf_counter() - start)


async def aiometer_run_on_each(n: int) -> float:
    """Return tasks/s of ``aiometer.run_on_each`` with ``max_at_once=8``."""
    items = list(range(n))
    start = time.perf_counter()
    await aiometer.run_on_each(  # pyright: ignore[reportUnknownMemberType]  # aiometer's callback returns a bare Awaitable
        checkpoint_item, items, max_at_once=WORKERS
    )
    return n / (time.perf_counter() - start)


async def anyio_workers(n: int) -> float:
    """Return tasks/s of 8 anyio workers on one memory object stream."""
    send, receive = anyio.create_memory_object_stream["Job"](math.inf)

    async def work(stream: MemoryObjectReceiveStream[Job]) -> None:
        async with stream:
            async for fn in stream:
                await fn()

    start = 0.0  # set once the workers are parked
    async with anyio.create_task_group() as group:
        for _ in range(WORKERS):
            group.start_soon(work, receive.clone())
        receive.close()
        await trio.testing.wait_all_tasks_blocked()
        send_nowait = send.send_nowait
        start = time.perf_counter()
        for _ in range(n):
            send_nowait(checkpoint_task)
        send.close()
    return n / (time.perf_counter() - start)


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "")
    common.print_environment(
        f"bench_parallel (N={N:,}, aiometer N={N_AIOMETER:,})", rounds
    )
    results = common.interleave(
        [
            ("raw8", lambda: trio.run(raw_workers, N)),
            ("trunner", lambda: trio.run(trunner_parallel, N)),
            ("aiometer", lambda: trio.run(aiometer_run_on_each, N_AIOMETER)),
            ("anyio", lambda: trio.run(anyio_workers, N)),
        ],
        rounds=rounds,
    )
    par = results["trunner"]
    rows = [
        common.compare(
            f"parallel / {name}", par, results[name], fmt=common.fmt_rate, goal=goal
        )
        for name, goal in (
            ("raw8", GOAL_VS_RAW),
            ("aiometer", GOAL_VS_AIOMETER),
            ("anyio", None),
        )
    ]
    common.print_table(
        f"Parallel runner throughput, max_concurrency={WORKERS}, N={N:,}", rows
    )


if __name__ == "__main__":
    main()
