"""Memory per pending task, measured with tracemalloc in this process.

Each figure is the growth of the memory traced by `tracemalloc` across posting
10,000 items (after a full collection on both sides), divided by 10,000:

* delayed: ``post_delayed_task(noop, delay=3600)`` on a sequenced runner whose
  timer task is already running (a handle and a heap entry each);
* queued: ``post_task(noop)`` on a sequenced runner whose consumer is blocked
  in its first task, which awaits an event;
* trio task (baseline): ``nursery.start_soon(trio.sleep_forever)``, once every
  task is blocked;
* heapq entry (baseline): ``heapq.heappush(heap, (deadline, seq, payload))``
  with a fresh float and int per entry and a shared payload;
* channel item (information): ``send_nowait(noop)`` on an unbounded trio memory
  channel nobody reads.

Posting happens without a checkpoint in between, so that nothing else runs and
allocates while the measurement is under way.

Run: ``python tests/benchmarks/bench_memory.py [--rounds N]``.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import math
import tracemalloc
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

COUNT: Final = 10_000
LONG_DELAY: Final = 3600.0
GOAL_DELAYED: Final = common.Goal("<=", 400.0)
GOAL_QUEUED: Final = common.Goal("<=", 300.0)


async def noop() -> None:
    pass


def traced() -> int:
    """Return the bytes traced now, after a full collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def delayed_bytes(count: int) -> float:
    """Return bytes per delayed task not yet due on a sequenced runner."""
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner() as runner,
    ):
        post = runner.post_delayed_task
        post(noop, delay=LONG_DELAY)  # starts the timer task
        await trio.testing.wait_all_tasks_blocked()
        before = traced()
        for _ in range(count):
            post(noop, delay=LONG_DELAY)
        after = traced()
        runner.shutdown()
    return (after - before) / count


async def queued_bytes(count: int) -> float:
    """Return bytes per task queued behind a blocked task on a sequenced runner."""
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner() as runner,
    ):
        gate = trio.Event()
        post = runner.post_task
        post(gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        before = traced()
        for _ in range(count):
            post(noop)
        after = traced()
        runner.shutdown()
    return (after - before) / count


async def trio_task_bytes(count: int) -> float:
    """Return bytes per trio task blocked in ``trio.sleep_forever()``."""
    async with trio.open_nursery() as nursery:
        await trio.testing.wait_all_tasks_blocked()
        before = traced()
        for _ in range(count):
            nursery.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        after = traced()
        nursery.cancel_scope.cancel()
    return (after - before) / count


def heap_entry_bytes(count: int) -> float:
    """Return bytes per ``(float, int, shared payload)`` entry of a heapq heap."""
    heap: list[tuple[float, int, object]] = []
    payload = object()
    seq = itertools.count(1 << 40)
    base = 1e6
    before = traced()
    for index in range(count):
        heapq.heappush(heap, (base + index * 1e-3, next(seq), payload))
    after = traced()
    assert len(heap) == count
    return (after - before) / count


async def channel_item_bytes(count: int) -> float:
    """Return bytes per item waiting in an unbounded trio memory channel."""
    send, receive = trio.open_memory_channel["Job"](math.inf)
    send_nowait = send.send_nowait
    before = traced()
    for _ in range(count):
        send_nowait(noop)
    after = traced()
    send.close()
    receive.close()
    return (after - before) / count


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "", default=5)
    common.print_environment(f"bench_memory ({COUNT:,} items per measurement)", rounds)
    tracemalloc.start()
    results = common.interleave(
        [
            ("trio task", lambda: trio.run(trio_task_bytes, COUNT)),
            ("delayed", lambda: trio.run(delayed_bytes, COUNT)),
            ("heapq entry", lambda: heap_entry_bytes(COUNT)),
            ("queued", lambda: trio.run(queued_bytes, COUNT)),
            ("channel item", lambda: trio.run(channel_item_bytes, COUNT)),
        ],
        rounds=rounds,
    )
    tracemalloc.stop()
    rows = [
        common.compare(
            f"{name} task vs {baseline}",
            results[name],
            results[baseline],
            fmt=common.fmt_bytes,
            goal=goal,
            goal_on="value",
            goal_unit=" B",
        )
        for name, goal, baseline in (
            ("delayed", GOAL_DELAYED, "heapq entry"),
            ("delayed", None, "trio task"),
            ("queued", GOAL_QUEUED, "trio task"),
            ("queued", None, "channel item"),
        )
    ]
    common.print_table(f"Memory per pending task ({COUNT:,} tasks, tracemalloc)", rows)


if __name__ == "__main__":
    main()
