"""SequencedTaskRunner: a logical thread on a memory channel with one consumer."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from ._abc import TaskRunner
from ._context import SequenceSlot, runner_var, sequence_var
from ._execute import acquire_slot, join_stragglers, release_slot, run_task
from ._traits import TaskState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._handle import TaskHandle

#: Tasks run back to back before the consumer yields to the trio scheduler. A
#: yield costs a whole scheduler pass, so it is shared by a batch of tasks; 64
#: trivial tasks take about 0.2 ms, well within trio's fairness expectations.
BATCH: Final = 64

_PENDING: Final = TaskState.PENDING


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

    def _start_machinery(self) -> None:
        self._send, self._receive = trio.open_memory_channel["TaskHandle[object]"](
            math.inf
        )
        self._nursery.start_soon(self._consume, name=f"{self._name}-consumer")

    def _enqueue(self, handle: TaskHandle[object]) -> None:
        self._send.send_nowait(handle)

    def _stop_intake(self) -> None:
        self._send.close()
        if self._current is None and self._scope is not None:
            # Waiting for a task, a token or a slot: stop waiting now.
            self._scope.cancel()

    def _running_handles(self) -> Iterable[TaskHandle[object]]:
        current = self._current
        return () if current is None else (current,)

    async def _consume(self) -> None:
        runner_var.set(self)
        slot = SequenceSlot(self)
        sequence_var.set(slot)
        receive_nowait = self._receive.receive_nowait
        limited = self._scheduler._limiter is not None
        budget = BATCH
        try:
            while True:
                # A fresh scope per cancellation: a scope that was cancelled stays
                # cancelled, so the one it served is left behind.
                with trio.CancelScope() as scope:
                    self._scope = scope
                    while True:
                        try:
                            handle = receive_nowait()
                        except trio.WouldBlock:
                            self._housekeeping()
                            try:
                                handle = await self._receive.receive()
                            except trio.EndOfChannel:
                                return
                            budget = BATCH
                        except trio.EndOfChannel:
                            return
                        if handle._state is not _PENDING:
                            continue  # cancelled or skipped while it waited
                        opts = handle._opts
                        if limited or (opts is not None and opts.bucket is not None):
                            if not await acquire_slot(self, handle):
                                continue  # cancelled or skipped while it waited
                        self._current = handle
                        try:
                            await run_task(self, handle, scope)
                        finally:
                            self._current = None
                            if limited:
                                release_slot(self)
                            if slot.stragglers:
                                await join_stragglers(slot.stragglers)
                        if self._blocked:
                            await self._deliver_blocked()
                        if scope.cancel_called:
                            break
                        budget -= 1
                        if not budget:
                            budget = BATCH
                            self._housekeeping()
                            await trio.lowlevel.checkpoint()
                # The scope was cancelled to stop a task: what that task's end
                # left for BLOCK subscribers is delivered before the next one.
                if self._blocked:
                    await self._deliver_blocked()
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
