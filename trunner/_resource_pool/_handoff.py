"""Where calls meet workers: two FIFOs of calls and a stack of idle workers.

A call that finds an idle worker is handed to it directly, so the queues are
non-empty only while every worker is busy (or making a resource). Idle workers
park in a stack: base workers on top of burst workers, the most recently idle
on top within each kind, which keeps surplus burst workers idle long enough to
retire, even under a trickle of calls.

Callers sleep in `trio.lowlevel.wait_task_rescheduled` and are rescheduled
with their outcome exactly once, by `Handoff.answer`. Cancelled calls stay in
the queues, marked DONE, and are dropped when a worker reaches them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import attrs
import outcome
import trio

from ._records import (
    CLOSING,
    DONE,
    HANDED,
    QUEUED,
    RUNNING,
    Call,
    PoolLedger,
    Worker,
    wake_nappers,
)

if TYPE_CHECKING:
    from collections.abc import Callable


@attrs.define(eq=False)
class Handoff:
    """The pool's queues of calls and its stack of idle workers."""

    ledger: PoolLedger
    # Every live worker, shared with `Workers`: a cancelled call wakes the
    # workers napping between two create() calls once nothing is left to run.
    live: dict[Worker, None]
    urgent: deque[Call] = attrs.field(factory=deque[Call])
    normal: deque[Call] = attrs.field(factory=deque[Call])
    # Live calls in the two queues (cancelled ones are dropped lazily).
    queued: int = 0
    # Parked workers holding a resource; the last one parked is woken first.
    idle: list[Worker] = attrs.field(factory=list[Worker])

    def submit(self, call: Call) -> None:
        """Hand a new ``call`` to an idle worker, or queue it at the back."""
        idle = self.idle
        if idle:
            worker = idle.pop()
            worker.handoff = call
            call.state = HANDED
            trio.lowlevel.reschedule(worker.task)
        else:
            (self.urgent if call.priority else self.normal).append(call)
            self.queued += 1

    def resubmit(self, call: Call) -> None:
        """Hand ``call`` to an idle worker, or queue it at the front."""
        idle = self.idle
        if idle:
            worker = idle.pop()
            worker.handoff = call
            call.state = HANDED
            trio.lowlevel.reschedule(worker.task)
            return
        call.state = QUEUED
        (self.urgent if call.priority else self.normal).appendleft(call)
        self.queued += 1

    def abort(self, call: Call) -> trio.lowlevel.Abort:
        """Abort the wait of ``call``'s caller, which was cancelled."""
        state = call.state
        if state == RUNNING:
            # Cancel it where it runs; the caller is answered once it stopped.
            call.cancel_requested = True
            assert call.worker is not None  # a running call has its worker
            assert call.worker.task_scope is not None  # and it runs in that scope
            call.worker.task_scope.cancel()
            return trio.lowlevel.Abort.FAILED
        if state == QUEUED:
            self.queued -= 1
            if self.ledger.status == CLOSING and not self.queued:
                wake_nappers(self.live)
        # Queued or handed to a worker: the worker skips it.
        call.state = DONE
        self.ledger.cancelled += 1
        return trio.lowlevel.Abort.SUCCEEDED

    def answer(self, call: Call, result: outcome.Outcome[object]) -> None:
        """Reschedule ``call``'s caller with ``result``; only once per call."""
        call.state = DONE
        trio.lowlevel.reschedule(call.task, result)

    def drop_queued(self, error: Callable[[], Exception]) -> None:
        """Answer every queued call with a fresh ``error()``; count them skipped."""
        for queue in (self.urgent, self.normal):
            while queue:
                call = queue.popleft()
                if call.state == QUEUED:
                    self.ledger.skipped += 1
                    self.answer(call, outcome.Error(error()))
        self.queued = 0

    def wake_idle(self) -> None:
        """Wake every parked worker, so that it sees the pool closing."""
        idle = self.idle
        while idle:
            trio.lowlevel.reschedule(idle.pop().task)
