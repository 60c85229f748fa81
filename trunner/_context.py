"""Context variables behind `current_runner` and `current_scheduler`."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Final, final

from ._errors import NoCurrentRunnerError, NoCurrentSchedulerError

if TYPE_CHECKING:
    import trio

    from ._abc import TaskRunner
    from ._scheduler import Scheduler


@final
class SequenceSlot:
    """The sequence a piece of code runs on, as seen by `SequenceChecker`.

    A sequenced or thread runner sets one slot whose token is the runner for
    all its tasks. A parallel worker sets one slot and points its token at each
    task it runs in turn, because every task of a parallel runner is a sequence
    of its own; moving a pointer costs less than setting a context variable per
    task.

    The slot also carries what its consumer must settle between tasks: thread
    calls abandoned at a timeout, which it joins before going on, and whether it
    holds a worker slot of its scheduler.
    """

    __slots__ = ("holds_slot", "stragglers", "token")

    def __init__(self, token: object) -> None:
        self.token = token
        self.stragglers: list[trio.Event] = []
        self.holds_slot = False


runner_var: Final[ContextVar[TaskRunner]] = ContextVar("trunner.runner")
scheduler_var: Final[ContextVar[Scheduler]] = ContextVar("trunner.scheduler")
sequence_var: Final[ContextVar[SequenceSlot]] = ContextVar("trunner.sequence")


def current_runner() -> TaskRunner:
    """Return the runner that runs the current task.

    Inside a task of a runner (and in any trio task it starts), this is that
    runner; in a task of a `SingleThreadTaskRunner`, its thread runner.

    Raises:
        NoCurrentRunnerError: when called outside a task of any runner.
    """
    try:
        return runner_var.get()
    except LookupError:
        raise NoCurrentRunnerError(
            "current_runner() was called outside a task of any runner; post the "
            "code as a task (runner.post_task) or pass the runner explicitly"
        ) from None


def current_scheduler() -> Scheduler:
    """Return the innermost open scheduler of the current task.

    Raises:
        NoCurrentSchedulerError: when no scheduler is open around the caller.
    """
    try:
        return scheduler_var.get()
    except LookupError:
        raise NoCurrentSchedulerError(
            "current_scheduler() was called outside any scheduler; open one with "
            "'async with trunner.open_scheduler() as scheduler:'"
        ) from None


def current_sequence_token() -> object | None:
    """Return the identity of the current sequence, or None outside any runner."""
    slot = sequence_var.get(None)
    return None if slot is None else slot.token
