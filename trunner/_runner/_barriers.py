"""The barriers of a runner: flushes, ``flush_soon`` callbacks and idle waits.

A barrier waits for the tasks that were queued or running when it was made
(`TaskRunner.flush`), and may hold back a callback task until they have all
ended (`TaskRunner.flush_soon`). An idle wait (`TaskRunner.wait_idle`,
closing) waits until no task is pending or running. The runner tells this part
of every task's end while one of them is waiting.
"""

# pyright: reportPrivateUsage=false
# A cleared barrier admits its callback, a TaskHandle record whose fields the
# parts of a runner share.

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs
import trio

from .._context import runner_var
from .._traits import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._handle import TaskHandle
    from ._ledger import Ledger

_PENDING: Final = TaskState.PENDING
_SKIPPED: Final = TaskState.SKIPPED

# What each wait waits for, as named in the error from a task of the runner,
# and what to do instead.
_OWN_WAITS: Final = {
    "aclose": (
        "to close",
        "call runner.shutdown() or close it from outside",
    ),
    "flush": (
        "to flush",
        "use runner.flush_soon(callback) or wait from outside the runner",
    ),
    "wait_idle": ("to be idle", "wait from outside the runner"),
}


@attrs.define(eq=False)
class Barrier:
    """A flush: waits for the tasks that were unfinished when it was made."""

    members: set[int]
    callback: TaskHandle[object] | None
    event: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class Barriers:
    """The flushes and idle waits of a runner."""

    ledger: Ledger
    # Callbacks of the runner: queue a callback whose barrier cleared (it is
    # already live and counted), and re-derive whether someone must hear of
    # every task's end.
    push: Callable[[TaskHandle[object]], None]
    changed: Callable[[], None]
    barriers: list[Barrier] = attrs.field(factory=list[Barrier])
    # Set when the runner is idle; None while nobody waits for that.
    idle_event: trio.Event | None = None

    def add(self, callback: TaskHandle[object] | None) -> Barrier | None:
        """Make a barrier for the live tasks; None if there are none."""
        members = set(self.ledger.live)
        if not members:
            return None
        barrier = Barrier(members, callback)
        self.barriers.append(barrier)
        self.ledger.watching = True
        return barrier

    def discard(self, barrier: Barrier) -> None:
        """Forget ``barrier`` (its flush was cancelled or has returned)."""
        if barrier in self.barriers:
            self.barriers.remove(barrier)
            self.changed()

    def advance(self, task_id: int) -> None:
        """Task ``task_id`` has ended: clear the barriers it was the last of."""
        cleared: list[Barrier] = []
        for barrier in self.barriers:
            barrier.members.discard(task_id)
            if not barrier.members:
                cleared.append(barrier)
        if not cleared:
            return
        # Update the list first: admitting a callback may end it (skipped at
        # close), which comes back here.
        self.barriers = [barrier for barrier in self.barriers if barrier.members]
        self.changed()
        for barrier in cleared:
            barrier.event.set()
            callback = barrier.callback
            if callback is not None and callback._state is _PENDING:
                # Already live and counted; a close under way has already
                # skipped it unless it may still run (BLOCK_SHUTDOWN).
                callback._flags = 0
                self.push(callback)

    def release(self) -> None:
        """Release every flush: the closed runner will run nothing more."""
        barriers, self.barriers = self.barriers, []
        self.changed()
        ledger = self.ledger
        for barrier in barriers:
            barrier.event.set()
            callback = barrier.callback
            if callback is not None and callback._state is _PENDING:
                del ledger.live[callback._id]
                ledger.pending -= 1
                ledger.finish_unstarted(callback, _SKIPPED)

    def refuse_own_wait(self, method: str) -> None:
        """Refuse a wait (``method``) of the runner from one of its own tasks.

        A task of the runner waiting for the runner to be idle, flushed or
        closed waits for itself (it is one of the tasks waited for), forever.
        """
        runner = self.ledger.runner
        if runner_var.get(None) is not runner:
            return
        what, advice = _OWN_WAITS[method]
        raise RuntimeError(
            f"a task of runner {runner.name!r} cannot wait for the runner {what} "
            f"(it would wait for itself); {advice}"
        )

    async def wait_idle(self) -> None:
        """Be `TaskRunner.wait_idle`: wait until no task is pending or running."""
        self.refuse_own_wait("wait_idle")
        await trio.lowlevel.checkpoint_if_cancelled()
        ledger = self.ledger
        while ledger.pending or ledger.running:
            await self.idle_wait()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def flush(self) -> None:
        """Be `TaskRunner.flush`: wait for the tasks unfinished now."""
        self.refuse_own_wait("flush")
        await trio.lowlevel.checkpoint_if_cancelled()
        barrier = self.add(None)
        if barrier is None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        try:
            await barrier.event.wait()
        finally:
            self.discard(barrier)

    async def idle_wait(self) -> None:
        """Wait for the next moment the runner is idle (or has closed)."""
        if self.idle_event is None:
            self.idle_event = trio.Event()
            self.ledger.watching = True
        await self.idle_event.wait()

    def note_idle(self) -> None:
        """Wake the idle waiters if no task is pending or running."""
        ledger = self.ledger
        if self.idle_event is not None and not ledger.pending and not ledger.running:
            self.idle_event.set()
            self.idle_event = None
            self.changed()

    def wake_idle_waiters(self) -> None:
        """Wake the idle waiters once no task runs (the machinery has ended)."""
        if self.idle_event is not None and not self.ledger.running:
            self.idle_event.set()
            self.idle_event = None
