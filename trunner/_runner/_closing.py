"""The closing of a runner: graceful close, shutdown, and the end of its machinery.

A runner is OPEN, then CLOSING while a graceful `TaskRunner.aclose` lets the
tasks that may still run end (each task's `ShutdownBehavior` decides), then
CLOSED. `Closing.shutdown` goes straight to CLOSED: nothing pending runs,
everything running is cancelled. Once the runner's consumers have all ended,
however they ended, `Closing.machinery_exited` settles what is left and tells
the scheduler. `Closing.cancel_all` stops every task the same way but leaves
the runner open.
"""

# pyright: reportPrivateUsage=false
# Skipping the pending tasks reads the state and options of each TaskHandle
# record, the record every part of a runner shares.

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import attrs
import trio

from .._traits import ShutdownBehavior, TaskState
from .._util import check_duration
from ._ledger import CLOSED, CLOSING, OPEN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._handle import TaskHandle
    from .._traits import TaskTraits
    from ._barriers import Barriers
    from ._fanout import ResultFanout
    from ._ledger import Ledger
    from ._timers import TimerHeap

_PENDING: Final = TaskState.PENDING
_CANCELLED: Final = TaskState.CANCELLED
_SKIPPED: Final = TaskState.SKIPPED
_BLOCK: Final = ShutdownBehavior.BLOCK_SHUTDOWN
_CONTINUE: Final = ShutdownBehavior.CONTINUE_ON_SHUTDOWN


@attrs.define(eq=False)
class Closing:
    """How a runner stops its tasks and closes."""

    ledger: Ledger
    timers: TimerHeap
    barriers: Barriers
    fanout: ResultFanout
    #: The runner's default traits (those of a task posted without options).
    traits: TaskTraits
    # Callbacks of the runner, whose kind decides: the handles running now,
    # how to cancel one, stop taking tasks from the queue (the consumers exit
    # once idle), release what the machinery holds (and then set
    # ``machinery_done``), and tell the scheduler that the runner has closed.
    running_handles: Callable[[], Iterable[TaskHandle[object]]]
    cancel_running: Callable[[TaskHandle[object]], bool]
    stop_intake: Callable[[], None]
    release_machinery: Callable[[], None]
    closed: Callable[[], None]
    #: Set once the runner's machinery has ended (a thread runner's thread is
    #: joined, a process runner's processes are gone).
    machinery_done: trio.Event = attrs.field(factory=trio.Event)

    def cancel(self, task_id: int) -> bool:
        """Be `TaskRunner.cancel`: cancel the task with id ``task_id``."""
        handle = self.ledger.live.get(task_id)
        if handle is None:
            handle = self.timers.find(task_id)
            if handle is None:
                return False
        return self.ledger.cancel(handle)

    def cancel_all(self) -> None:
        """Be `TaskRunner.cancel_all`: cancel every task; the runner stays open."""
        self.timers.clear(_CANCELLED)
        ledger = self.ledger
        for handle in [h for h in ledger.live.values() if h._state is _PENDING]:
            ledger.cancel(handle)
        for handle in list(self.running_handles()):
            self.cancel_running(handle)

    def shutdown(self) -> None:
        """Be `TaskRunner.shutdown`: close at once; idempotent."""
        ledger = self.ledger
        if ledger.phase == CLOSED:
            return
        ledger.phase = CLOSED
        self.timers.clear(_SKIPPED)
        self.skip_pending(everything=True)
        for handle in list(self.running_handles()):
            self.cancel_running(handle)
        self.barriers.release()
        ledger.wake_all_room()
        self.stop_intake()

    async def aclose(self, grace_period: float | None) -> None:
        """Be `TaskRunner.aclose`: close gracefully.

        After ``grace_period`` seconds (None: no limit), what still runs is
        cancelled and what is pending skipped.
        """
        grace = (
            math.inf
            if grace_period is None
            else check_duration("grace_period", grace_period)
        )
        self.barriers.refuse_own_wait("aclose")
        ledger = self.ledger
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            if ledger.phase == OPEN:
                self.begin_close()
            if ledger.phase == CLOSING:
                with trio.move_on_after(grace):
                    while ledger.pending or ledger.running:
                        await self.barriers.idle_wait()
                if ledger.phase == CLOSING and not (ledger.pending or ledger.running):
                    ledger.phase = CLOSED
                    self.barriers.release()
                    self.stop_intake()
                else:
                    self.shutdown()
            await self.machinery_done.wait()
        except BaseException:
            self.shutdown()
            raise

    def begin_close(self) -> None:
        """Enter CLOSING: apply each task's shutdown behaviour."""
        ledger = self.ledger
        ledger.phase = CLOSING
        self.timers.clear(_SKIPPED)
        self.skip_pending(everything=False)
        for handle in list(self.running_handles()):
            opts = handle._opts
            traits = self.traits if opts is None else opts.traits
            if traits.shutdown_behavior is _CONTINUE:
                self.cancel_running(handle)
        ledger.wake_all_room()

    def skip_pending(self, *, everything: bool) -> None:
        """Skip the pending tasks: all of them, or those not BLOCK_SHUTDOWN."""
        ledger = self.ledger
        for handle in [h for h in ledger.live.values() if h._state is _PENDING]:
            opts = handle._opts
            traits = self.traits if opts is None else opts.traits
            if everything or traits.shutdown_behavior is not _BLOCK:
                del ledger.live[handle._id]
                ledger.pending -= 1
                ledger.finish_unstarted(handle, _SKIPPED)

    def machinery_exited(self) -> None:
        """Record that the consumers have all ended, however they ended."""
        ledger = self.ledger
        if ledger.phase != CLOSED:
            # Cancelled from outside (the nursery is going away): nothing runs again.
            ledger.phase = CLOSED
            self.barriers.release()
        self.timers.clear(_SKIPPED)
        self.skip_pending(everything=True)
        ledger.wake_all_room()
        self.release_machinery()
        self.barriers.wake_idle_waiters()
        self.fanout.wake()
        self.closed()

    def is_fully_closed(self) -> bool:
        """Whether the runner has closed and its machinery has ended."""
        return self.ledger.phase == CLOSED and self.machinery_done.is_set()
