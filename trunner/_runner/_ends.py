"""The ends of a runner's tasks: who hears of each, and whether anyone must.

When a task ends, the `Ledger` records it and, if someone listens, calls
`TaskEnds.notify`: the handle's done callbacks, the ``on_finish`` hooks and
the result subscribers (one `TaskResult` for them all), the barriers the task
belonged to, and the idle waiters. `TaskEnds.update_watching` keeps the one
flag the consumers test per task, ``Ledger.watching``, true while anyone but
the done callbacks listens.
"""

# pyright: reportPrivateUsage=false
# notify reads the fields of an ended TaskHandle, the record every part of a
# runner shares, once per task that has a listener.

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import attrs

from .._context import runner_var
from .._handle import call_done_callback
from .._hooks import logger as hook_logger
from .._util import describe
from ._fanout import result_of

if TYPE_CHECKING:
    from .._abc import TaskRunner
    from .._handle import TaskHandle
    from ._barriers import Barriers
    from ._fanout import ResultFanout
    from ._ledger import Ledger


@attrs.define(eq=False)
class TaskEnds:
    """What hears of the end of each task of a runner."""

    runner: TaskRunner
    ledger: Ledger
    barriers: Barriers
    fanout: ResultFanout
    #: Whether the runner's tasks have on_finish hooks (which hear of every
    #: task's end, like subscribers).
    finish_hooks: bool
    trio_thread: int = attrs.field(factory=threading.get_ident)
    # The last function whose name a TaskResult needed, and that name.
    named_fn: object = None
    named: str = ""

    def notify(self, handle: TaskHandle[object]) -> None:
        """Tell everyone who listens that ``handle`` has ended."""
        waiters = handle._waiters
        if waiters is not None:
            handle._waiters = None
            for callback in waiters:
                call_done_callback(callback, handle)
        opts = handle._opts
        fanout = self.fanout
        subscriptions = fanout.subscriptions
        if subscriptions or (opts is not None and opts.on_finish):
            # The task's name (handle.name), with the last function's name
            # cached: a runner mostly runs a few functions, and describing one
            # costs a microsecond.
            if opts is not None and opts.name is not None:
                name = opts.name
            elif handle._fn is self.named_fn:
                name = self.named
            else:
                self.named_fn = handle._fn
                self.named = name = describe(handle._fn)
            result = result_of(handle, name)
            if opts is not None:
                for hook in opts.on_finish:
                    try:
                        hook(handle, result)
                    except Exception:
                        hook_logger.exception("hook %r raised; the task goes on", hook)
            if subscriptions:
                fanout.publish(result, in_consumer=self.in_consumer())
        barriers = self.barriers
        if barriers.barriers:
            barriers.advance(handle._id)
        if barriers.idle_event is not None:
            ledger = self.ledger
            if not ledger.pending and not ledger.running:
                barriers.note_idle()

    def update_watching(self) -> None:
        """Re-derive whether someone must hear of every task's end."""
        barriers = self.barriers
        self.ledger.watching = bool(
            self.finish_hooks
            or barriers.idle_event is not None
            or barriers.barriers
            or self.fanout.subscriptions
        )

    def in_consumer(self) -> bool:
        """Whether the caller is one of the runner's consumers.

        A consumer can wait for a BLOCK subscriber before it goes on.
        """
        return (
            runner_var.get(None) is self.runner
            and threading.get_ident() == self.trio_thread
        )
