"""Throughput of a SequencedTaskRunner against raw single-consumer queues.

Each variant is handed N trivial async tasks at once and timed from the first
post to the end of the last task, with its consumer already parked:

* trunner: ``post_task`` N times on a sequenced runner, then ``wait_idle()``;
* async_for: a raw trio consumer doing ``async for fn in receive: await fn()``
  on an unbounded memory channel (one checkpoint, hence one scheduler pass,
  per task);
* drain: a raw trio consumer that takes ready items with ``receive_nowait()``
  and awaits ``receive()`` only when the channel is empty (no checkpoint while
  work is queued: the upper bound for a consumer on a channel);
* asyncio: one consumer on an ``asyncio.Queue``, under ``asyncio.run``.

Run: ``python tests/benchmarks/bench_sequenced.py [--rounds N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
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

N: Final = 200_000
GOAL_VS_ASYNC_FOR: Final = common.Goal(">=", 1.5)
GOAL_VS_DRAIN: Final = common.Goal(">=", 0.3)


async def noop() -> None:
    pass


async def trunner_sequenced(n: int) -> float:
    """Return tasks/s of a sequenced runner for ``n`` trivial tasks."""
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner() as runner,
    ):
        await trio.testing.wait_all_tasks_blocked()
        post = runner.post_task
        start = time.perf_counter()
        for _ in range(n):
            post(noop)
        await runner.wait_idle()
        elapsed = time.perf_counter() - start
    return n / elapsed


async def _raw_trio(
    n: int, consume: Callable[[trio.MemoryReceiveChannel[Job]], Awaitable[None]]
) -> float:
    send, receive = trio.open_memory_channel["Job"](math.inf)
    done = trio.Event()

    async def finish() -> None:
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume, receive)
        await trio.testing.wait_all_tasks_blocked()
        send_nowait = send.send_nowait
        start = time.perf_counter()
        for _ in range(n):
            send_nowait(noop)
        send_nowait(finish)
        await done.wait()
        elapsed = time.perf_counter() - start
        send.close()
    return n / elapsed


async def _consume_async_for(receive: trio.MemoryReceiveChannel[Job]) -> None:
    async for fn in receive:
        await fn()


async def _consume_drain(receive: trio.MemoryReceiveChannel[Job]) -> None:
    receive_nowait = receive.receive_nowait
    while True:
        try:
            fn = receive_nowait()
        except trio.WouldBlock:
            try:
                fn = await receive.receive()
            except trio.EndOfChannel:
                return
        except trio.EndOfChannel:
            return
        await fn()


async def raw_async_for(n: int) -> float:
    """Return tasks/s of a raw ``async for`` consumer."""
    return await _raw_trio(n, _consume_async_for)


async def raw_drain(n: int) -> float:
    """Return tasks/s of a raw consumer that drains ready items without yielding."""
    return await _raw_trio(n, _consume_drain)


async def asyncio_queue(n: int) -> float:
    """Return tasks/s of one asyncio consumer on an ``asyncio.Queue``."""
    queue: asyncio.Queue[Job] = asyncio.Queue()
    done = asyncio.Event()

    async def finish() -> None:
        done.set()

    async def consume() -> None:
        while True:
            fn = await queue.get()
            await fn()

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    put = queue.put_nowait
    start = time.perf_counter()
    for _ in range(n):
        put(noop)
    put(finish)
    await done.wait()
    elapsed = time.perf_counter() - start
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    return n / elapsed


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "")
    common.print_environment(f"bench_sequenced (N={N:,})", rounds)
    results = common.interleave(
        [
            ("async_for", lambda: trio.run(raw_async_for, N)),
            ("trunner", lambda: trio.run(trunner_sequenced, N)),
            ("drain", lambda: trio.run(raw_drain, N)),
            ("asyncio", lambda: asyncio.run(asyncio_queue(N))),
        ],
        rounds=rounds,
    )
    seq = results["trunner"]
    rows = [
        common.compare(
            f"seq / {name}", seq, results[name], fmt=common.fmt_rate, goal=goal
        )
        for name, goal in (
            ("async_for", GOAL_VS_ASYNC_FOR),
            ("drain", GOAL_VS_DRAIN),
            ("asyncio", None),
        )
    ]
    common.print_table(f"Sequenced runner throughput, N={N:,} trivial tasks", rows)


if __name__ == "__main__":
    main()
