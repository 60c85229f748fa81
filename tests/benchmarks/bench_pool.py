"""Throughput of a ResourcePool against hand-written resource workers.

Each variant runs TOTAL calls of the trivial task ``fn(resource) -> resource``
from CALLERS concurrent caller tasks, each awaiting the result of its call
before making the next one, on N workers that each own a resource (a plain
object):

* raw: N trio tasks, each owning its resource, pull ``(fn, reply)`` items
  from one unbounded memory channel and send ``outcome.capture(fn, resource)``
  to ``reply``, a one-slot memory channel that each caller makes once and
  reuses for all its calls;
* pool: ``open_resource_pool(create, destroy, workers=N, max_workers=N)``
  and ``await pool.queue_task(fn)`` in each caller.

The time runs from the start of the callers (the workers already parked, the
pool open) to the end of the last call; it leaves out opening and closing.
Rows for N=4 and N=8 compare calls/s; the goal is pool/raw >= 0.8.

Run: ``python tests/benchmarks/bench_pool.py [--rounds N]``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Final, final

import outcome
import trio
import trio.testing

import trunner

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common

    Reply = trio.MemorySendChannel[outcome.Outcome["Resource"]]
    Item = tuple[Callable[["Resource"], "Resource"], Reply]
else:
    import _common as common

CALLERS: Final = 200
CALLS_PER_CALLER: Final = 500
TOTAL: Final = CALLERS * CALLS_PER_CALLER
WORKER_COUNTS: Final = (4, 8)
GOAL_VS_RAW: Final = common.Goal(">=", 0.8)


@final
class Resource:
    """What a worker owns: a plain object."""

    __slots__ = ()


def fn(resource: Resource) -> Resource:
    return resource


def destroy(resource: Resource) -> None:
    del resource


async def raw_workers(workers: int) -> float:
    """Return calls/s of ``workers`` raw trio workers on one memory channel."""
    send, receive = trio.open_memory_channel["Item"](math.inf)

    async def work(resource: Resource) -> None:
        async for task, reply in receive:
            reply.send_nowait(outcome.capture(task, resource))

    async def caller() -> None:
        reply_send, reply_receive = trio.open_memory_channel[
            "outcome.Outcome[Resource]"
        ](1)
        send_nowait = send.send_nowait
        receive_reply = reply_receive.receive
        for _ in range(CALLS_PER_CALLER):
            send_nowait((fn, reply_send))
            (await receive_reply()).unwrap()

    async with trio.open_nursery() as nursery:
        for _ in range(workers):
            nursery.start_soon(work, Resource())
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        async with trio.open_nursery() as callers:
            for _ in range(CALLERS):
                callers.start_soon(caller)
        elapsed = time.perf_counter() - start
        send.close()
    return TOTAL / elapsed


async def pool_workers(workers: int) -> float:
    """Return calls/s of a ResourcePool with ``workers`` workers."""
    async with trunner.open_resource_pool(
        Resource, destroy, workers=workers, max_workers=workers
    ) as pool:

        async def caller() -> None:
            queue_task = pool.queue_task
            for _ in range(CALLS_PER_CALLER):
                await queue_task(fn)

        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        async with trio.open_nursery() as callers:
            for _ in range(CALLERS):
                callers.start_soon(caller)
        elapsed = time.perf_counter() - start
    return TOTAL / elapsed


def in_trio(
    variant: Callable[[int], Awaitable[float]], workers: int
) -> Callable[[], float]:
    """Return a function that runs ``variant(workers)`` in a new trio run."""

    def run() -> float:
        return trio.run(variant, workers)

    return run


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "")
    common.print_environment(
        f"bench_pool ({CALLERS} callers x {CALLS_PER_CALLER} calls = {TOTAL:,})",
        rounds,
    )
    variants: list[tuple[str, Callable[[], float]]] = []
    for workers in WORKER_COUNTS:
        variants.append((f"raw{workers}", in_trio(raw_workers, workers)))
        variants.append((f"pool{workers}", in_trio(pool_workers, workers)))
    results = common.interleave(variants, rounds=rounds)
    rows = [
        common.compare(
            f"pool / raw, N={workers}",
            results[f"pool{workers}"],
            results[f"raw{workers}"],
            fmt=common.fmt_rate,
            goal=GOAL_VS_RAW,
        )
        for workers in WORKER_COUNTS
    ]
    common.print_table(
        f"ResourcePool throughput, trivial tasks, {CALLERS} callers, {TOTAL:,} calls",
        rows,
    )


if __name__ == "__main__":
    main()
