"""ParallelTaskRunner: up to N tasks at once, highest priority first."""

# pyright: reportPrivateUsage=false
# The workers' loop reads the fields of each TaskHandle record directly: it is
# the runner's throughput.

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from ._abc import TaskRunner
from ._context import SequenceSlot, runner_var, sequence_var
from ._execute import acquire_slot, join_stragglers, release_slot, run_task
from ._handle import CANCEL_REQUESTED
from ._runner._ledger import CLOSED
from ._traits import Priority, TaskState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._handle import TaskHandle

#: Tasks a worker runs back to back before it yields to the trio scheduler,
#: when the tasks themselves do not yield.
BATCH: Final = 32

_PENDING: Final = TaskState.PENDING


@attrs.define(eq=False, repr=False)
class WorkerPoolRunner(TaskRunner):
    """A runner whose tasks run on up to ``max_concurrency`` workers at once.

    The base of `ParallelTaskRunner` and `ProcessTaskRunner`. A
    `trio.CapacityLimiter` counts long-lived workers, spawned on demand up to
    the limit, that pop tasks from one FIFO per priority, highest first; an
    idle worker parks until a task comes.
    """

    _max_concurrency: int = attrs.field(kw_only=True, alias="max_concurrency")
    _capacity: trio.CapacityLimiter = attrs.field(init=False)
    # One FIFO per priority, highest priority first.
    _queues: tuple[deque[TaskHandle[object]], ...] = attrs.field(init=False)
    _by_priority: dict[Priority, deque[TaskHandle[object]]] = attrs.field(init=False)
    _idle_lot: trio.lowlevel.ParkingLot = attrs.field(
        init=False, factory=trio.lowlevel.ParkingLot
    )
    _idle_workers: int = attrs.field(init=False, default=0)
    # Every live worker's slot, and the cancel scope it waits in.
    _workers: dict[SequenceSlot, trio.CancelScope | None] = attrs.field(
        init=False, factory=dict[SequenceSlot, "trio.CancelScope | None"]
    )

    @property
    def max_concurrency(self) -> int:
        """How many tasks may run at once."""
        return self._max_concurrency

    def _start_machinery(self) -> Callable[[TaskHandle[object]], None]:
        self._capacity = trio.CapacityLimiter(self._max_concurrency)
        self._queues = (deque(), deque(), deque())
        self._by_priority = {
            Priority.USER_BLOCKING: self._queues[0],
            Priority.USER_VISIBLE: self._queues[1],
            Priority.BEST_EFFORT: self._queues[2],
        }
        return self._enqueue

    def _enqueue(self, handle: TaskHandle[object]) -> None:
        opts = handle._opts
        traits = self._traits if opts is None else opts.traits
        self._by_priority[traits.priority].append(handle)
        if self._idle_workers:
            self._idle_workers -= 1
            self._idle_lot.unpark()
        elif len(self._workers) < self._max_concurrency:
            slot = SequenceSlot(None)
            self._capacity.acquire_on_behalf_of_nowait(slot)
            self._workers[slot] = None
            self._nursery.start_soon(self._work, slot, name=f"{self._name}-worker")

    def _pop(self) -> TaskHandle[object] | None:
        for queue in self._queues:
            while queue:
                handle = queue.popleft()
                if handle._state is _PENDING:
                    return handle
        return None

    def _stop_intake(self) -> None:
        if not self._workers:
            self._machinery_exited()
            return
        self._idle_workers = 0
        self._idle_lot.unpark_all()
        for slot, scope in self._workers.items():
            if slot.token is None and scope is not None:
                scope.cancel()  # waiting for a token or a slot: stop now

    def _running_handles(self) -> Iterable[TaskHandle[object]]:
        return [slot.token for slot in self._workers if slot.token is not None]  # type: ignore[misc]  # tokens of workers are handles

    async def _work(self, slot: SequenceSlot) -> None:
        runner_var.set(self)
        sequence_var.set(slot)
        ledger = self._ledger
        if self._max_concurrency == 1:
            # Its one worker runs one task at a time, as a sequence's does:
            # a task of it cannot wait for another (TaskHandle.wait).
            ledger.sequence_task = trio.lowlevel.current_task()
        fanout = self._fanout
        ex = self._execution
        limiter = self._env.limiter
        limited = limiter is not None
        budget = BATCH
        crashed = False
        try:
            while True:
                with trio.CancelScope() as scope:
                    self._workers[slot] = scope
                    if fanout.blocked:
                        # What a task stopped through the last scope left for
                        # BLOCK subscribers, delivered in a scope that
                        # shutdown() can cancel.
                        await fanout.deliver_blocked()
                    while True:
                        handle = self._pop()
                        if handle is None:
                            if ledger.phase == CLOSED:
                                return
                            ledger.housekeeping()
                            self._idle_workers += 1
                            try:
                                await self._idle_lot.park()
                            except BaseException:
                                self._idle_workers -= 1  # still parked: nobody woke it
                                raise
                            budget = BATCH
                            continue
                        opts = handle._opts
                        waits = limited or (
                            opts is not None and opts.bucket is not None
                        )
                        if waits and not await acquire_slot(limiter, handle):
                            continue  # cancelled or skipped while it waited
                        slot.token = handle
                        try:
                            await run_task(ex, handle, scope)
                        finally:
                            slot.token = None
                            # A thread call abandoned at a timeout still runs:
                            # it keeps the worker and the slot.
                            if slot.stragglers:
                                await join_stragglers(slot.stragglers)
                            if limited:
                                release_slot(limiter)
                        if fanout.blocked:
                            await fanout.deliver_blocked()
                        if handle._flags & CANCEL_REQUESTED:
                            break  # the scope was cancelled to stop the task
                        budget -= 1
                        if not budget:
                            budget = BATCH
                            ledger.housekeeping()
                            await trio.lowlevel.checkpoint()
        except BaseException:
            crashed = True  # cancelled from outside, or KeyboardInterrupt and the like
            raise
        finally:
            del self._workers[slot]
            self._capacity.release_on_behalf_of(slot)
            if not self._workers and (crashed or ledger.phase == CLOSED):
                self._machinery_exited()


@final
@attrs.define(eq=False, repr=False)
class ParallelTaskRunner(WorkerPoolRunner):
    """Runs up to ``max_concurrency`` tasks at once.

    Pending tasks start highest priority first, FIFO within a priority. Each
    task is a sequence of its own (for `SequenceChecker` and `SequenceLocal`).

    Built on a `trio.CapacityLimiter` that counts long-lived workers. Workers
    are spawned on demand, up to the limit, and pop tasks from one queue per
    priority; an idle worker parks until a task comes. Made by
    `Scheduler.open_parallel_runner` and friends; the constructor is internal.
    """
