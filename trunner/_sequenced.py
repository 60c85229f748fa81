"""SequencedTaskRunner: a logical thread on a memory channel with one consumer."""

# pyright: reportPrivateUsage=false
# The consumer loop is the runner's throughput: it reads and writes the fields
# of each TaskHandle record directly, and inlines the ledger's begin and end.

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, ClassVar, Final, final

import attrs
import trio

from ._abc import TaskRunner
from ._context import SequenceSlot, runner_var, sequence_var
from ._execute import (
    acquire_slot,
    cancelled_error,
    end_with_error,
    join_stragglers,
    release_slot,
    run_full,
    run_task,
    start_attempt,
)
from ._handle import CANCEL_REQUESTED
from ._traits import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._handle import TaskHandle

#: Tasks run back to back before the consumer yields to the trio scheduler. A
#: yield costs a whole scheduler pass, so it is shared by a batch of tasks; 64
#: trivial tasks take about 0.2 ms, well within trio's fairness expectations.
BATCH: Final = 64

_PENDING: Final = TaskState.PENDING
_RUNNING: Final = TaskState.RUNNING
_SUCCEEDED: Final = TaskState.SUCCEEDED
_CANCELLED: Final = TaskState.CANCELLED
_isawaitable: Final = inspect.isawaitable


@attrs.define(eq=False, repr=False)
class ChannelRunner(TaskRunner):
    """A runner whose tasks run one at a time from a memory channel.

    The base of `SequencedTaskRunner` and `SingleThreadTaskRunner`: one
    consumer task receives the tasks in FIFO order and runs each to its end
    before it takes the next.
    """

    _send: trio.MemorySendChannel[TaskHandle[object]] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[TaskHandle[object]] = attrs.field(init=False)
    _current: TaskHandle[object] | None = attrs.field(init=False, default=None)
    _scope: trio.CancelScope | None = attrs.field(init=False, default=None)

    _ordered: ClassVar[bool] = True

    def _start_machinery(self) -> Callable[[TaskHandle[object]], None]:
        self._send, self._receive = trio.open_memory_channel["TaskHandle[object]"](
            math.inf
        )
        self._nursery.start_soon(self._consume, name=f"{self._name}-consumer")
        # Posts go straight to the channel: one Python call less on the
        # hottest path.
        return self._send.send_nowait

    def _stop_intake(self) -> None:
        self._send.close()
        if self._current is None and self._scope is not None:
            # Waiting for a task, a token or a slot: stop waiting now.
            self._scope.cancel()

    def _running_handles(self) -> Iterable[TaskHandle[object]]:
        current = self._current
        # The current handle may still be PENDING: waiting for its slot.
        return () if current is None or current._state is not _RUNNING else (current,)

    async def _consume(self) -> None:
        runner_var.set(self)
        slot = SequenceSlot(self)
        sequence_var.set(slot)
        receive_nowait = self._receive.receive_nowait
        # The parts, bound once: the loop reads and writes their fields.
        ledger = self._ledger
        ledger.sequence_task = trio.lowlevel.current_task()
        fanout = self._fanout
        ex = self._execution
        now = ledger.now
        live = ledger.live
        notify = ledger.notify
        wait_append = ledger.wait_times.samples.append
        run_append = ledger.run_times.samples.append
        bounded = ledger.max_pending is not None
        limiter = self._env.limiter
        limited = limiter is not None
        budget = BATCH
        # The clock is read once per task: a task that ends back to back with
        # the next one lends it its end time as start time. None after a wait.
        clock: float | None = None
        try:
            while True:
                # A fresh scope per cancellation: a scope that was cancelled stays
                # cancelled, so the one it served is left behind.
                with trio.CancelScope() as scope:
                    self._scope = scope
                    if fanout.blocked:
                        # What a task stopped through the last scope left for
                        # BLOCK subscribers, delivered in a scope that
                        # shutdown() can cancel.
                        await fanout.deliver_blocked()
                    while True:
                        try:
                            handle = receive_nowait()
                        except trio.WouldBlock:
                            ledger.housekeeping()
                            try:
                                handle = await self._receive.receive()
                            except trio.EndOfChannel:
                                return
                            budget = BATCH
                            clock = None
                        except trio.EndOfChannel:
                            return
                        if handle._state is not _PENDING:
                            continue  # cancelled or skipped while it waited
                        opts = handle._opts
                        self._current = handle
                        if not limited and (opts is None or opts.light):
                            # The fast path: a plain call, recorded. It inlines
                            # Ledger.begin and the success case of Ledger.end:
                            # this loop is the runner's throughput, and the
                            # calls cost 6% of it. A task with light options
                            # (hooks and middleware, one attempt) runs here
                            # too, started by start_attempt: run_full and its
                            # coroutine would cost a quarter of the reliability
                            # layer's overhead. tests/test_differential.py
                            # checks that all the paths record the same.
                            if clock is None:
                                clock = now()
                            ledger.pending -= 1
                            ledger.running = 1
                            handle._state = _RUNNING
                            handle._scope = scope
                            handle._attempts = 1
                            handle._started_at = clock
                            wait_append(clock - handle._queued_at)
                            if bounded:
                                ledger.wake_room()
                            try:
                                if opts is None or opts.simple:
                                    result = handle._fn(*handle._args)
                                else:
                                    result = start_attempt(handle, opts)
                                if _isawaitable(result):
                                    result = await result
                            except trio.Cancelled:
                                ledger.end(handle, _CANCELLED, cancelled_error(handle))
                                raise
                            except (
                                BaseException
                            ) as error:  # recorded; re-raised if not an Exception
                                end_with_error(ledger, handle, error)
                                clock = None
                            else:
                                handle._result = result
                                handle._state = _SUCCEEDED
                                ledger.succeeded += 1
                                ledger.running = 0
                                del live[handle._id]
                                end = now()
                                handle._finished_at = end
                                run_append(end - clock)
                                clock = end
                                handle._args = ()
                                if handle._waiters is not None or ledger.watching:
                                    notify(handle)
                            finally:
                                self._current = None
                        else:
                            try:
                                waits = limited or (
                                    opts is not None and opts.bucket is not None
                                )
                                if waits:
                                    clock = None
                                    if not await acquire_slot(limiter, handle):
                                        continue  # ended while it waited
                                if opts is not None and not opts.simple:
                                    # The full path too reads the clock once:
                                    # it starts at the last end, and lends
                                    # its own end to the next task.
                                    clock = await run_full(
                                        ex, handle, scope, opts, clock
                                    )
                                else:
                                    clock = None
                                    await run_task(ex, handle, scope)
                            finally:
                                self._current = None
                                # A thread call abandoned at a timeout still
                                # runs: it keeps the sequence and the slot.
                                if slot.stragglers:
                                    await join_stragglers(slot.stragglers)
                                    clock = None
                                if limited:
                                    release_slot(limiter)
                        if fanout.blocked:
                            await fanout.deliver_blocked()
                            clock = None
                        if handle._flags & CANCEL_REQUESTED:
                            break  # the scope was cancelled to stop the task
                        budget -= 1
                        if not budget:
                            budget = BATCH
                            ledger.housekeeping()
                            await trio.lowlevel.checkpoint()
                            clock = None
                clock = None
        finally:
            self._receive.close()
            await self._stop_machinery()
            self._machinery_exited()

    async def _stop_machinery(self) -> None:
        """Release what the consumer owns, once it has run its last task."""


@final
@attrs.define(eq=False, repr=False)
class SequencedTaskRunner(ChannelRunner):
    """Runs its tasks one at a time, in posting order: a logical thread.

    State that only the runner's tasks touch needs no lock. A task that awaits
    still holds the sequence: the next task starts only when it has ended.
    Priority decides when the runner gets a worker slot of its scheduler, never
    the order of its tasks.

    Built on a trio memory channel with exactly one consumer task, which runs
    ready tasks back to back and yields to trio every 64 tasks. Made by
    `Scheduler.open_sequenced_runner` and friends; the constructor is internal.
    """
