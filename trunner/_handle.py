"""TaskHandle and RepeatingHandle: what posting a task gives back."""

from __future__ import annotations

import inspect
import itertools
import types
from typing import TYPE_CHECKING, Final, Generic, TypeVar, final

import attrs
import outcome
import trio

from ._errors import TaskCancelledError
from ._hooks import logger as hook_logger
from ._traits import TERMINAL_STATES, MissedTicks, RepeatMode, TaskState, TaskTraits
from ._util import AnyCallable, describe

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from ._abc import TaskRunner
    from ._options import TaskOptions
    from ._runner._ledger import Ledger
    from ._runner._timers import TimerHeap

T_co = TypeVar("T_co", covariant=True)

#: Task ids: unique within the process, increasing in posting order.
next_id: Final = itertools.count(1).__next__

#: Bits of TaskHandle._flags. A PENDING handle with neither WAITS_* bit is queued.
CANCEL_REQUESTED: Final = 1
WAITS_TIMER: Final = 2  # in its runner's timer heap
WAITS_ADMISSION: Final = 4  # posted from a thread, not yet admitted
# Its consumer waits for a rate-limit token or a worker slot for it, in the
# cancel scope ``_scope``: ending the handle (cancel, skip) stops that wait.
WAITS_SLOT: Final = 8
# A flush_soon callback behind its barrier: live and counted pending, not queued.
WAITS_BARRIER: Final = 16

_PENDING: Final = TaskState.PENDING
_RUNNING: Final = TaskState.RUNNING
_SUCCEEDED: Final = TaskState.SUCCEEDED
_FAILED: Final = TaskState.FAILED
_isawaitable: Final = inspect.isawaitable
_Coroutine: Final = types.CoroutineType


def call_done_callback(
    callback: Callable[[TaskHandle[T_co]], object], handle: TaskHandle[T_co]
) -> None:
    """Call a done callback of ``handle``; log what it raises."""
    try:
        callback(handle)
    except Exception:
        hook_logger.exception("done callback %r of %r raised", callback, handle)


def refuse_wait_in_sequence(handle: TaskHandle[object], what: str, advice: str) -> None:
    """Refuse to wait for ``what``, tasks of ``handle``'s runner, from its sequence.

    See `TaskHandle.wait`: the runner's other tasks start only once the caller's
    has ended.

    Raises:
        RuntimeError: when the caller holds the sequence of ``handle``'s runner.
    """
    ledger = handle._ledger  # pyright: ignore[reportPrivateUsage]  # this module's record
    ledger.refuse_wait_in_sequence(what, advice)


async def _ready(value: object) -> object:
    return value


@final
@attrs.define(eq=False, repr=False)
class TaskHandle(Generic[T_co]):
    """A task posted to a runner: its state, its result, and a way to cancel it.

    Handles are made by the ``post_*`` methods of runners; their constructor is
    internal. A handle stays valid after its task has ended; it keeps the
    result, not the function and its arguments.
    """

    # The ledger of its runner: it counts the task, cancels it, and knows the
    # runner (the handle does not hold the runner itself).
    _ledger: Ledger
    _fn: AnyCallable
    _args: tuple[object, ...]
    _id: int
    _opts: TaskOptions | None
    _queued_at: float
    _state: TaskState = _PENDING
    # Callables run once with this handle when it ends; None when there are none.
    _waiters: list[AnyCallable] | None = None
    _flags: int = 0
    # The slots below are written before they are first read, so the hot path
    # does not pay for initialising them.
    # The value when SUCCEEDED, the exception when FAILED, CANCELLED or SKIPPED.
    _result: object = attrs.field(init=False)
    _scope: trio.CancelScope = attrs.field(init=False)
    _started_at: float = attrs.field(init=False)
    _finished_at: float = attrs.field(init=False)
    _attempts: int = attrs.field(init=False)
    _traceback: TracebackType | None = attrs.field(init=False)

    def __repr__(self) -> str:
        return f"<TaskHandle #{self._id} {self.name!r} {self._state.value}>"

    @property
    def id(self) -> int:
        """The task's id, unique in the process and increasing in posting order."""
        return self._id

    @property
    def name(self) -> str:
        """The ``name=`` given when posting, else the function's qualified name."""
        opts = self._opts
        if opts is not None and opts.name is not None:
            return opts.name
        return describe(self._fn)

    @property
    def runner(self) -> TaskRunner:
        """The runner the task was posted to."""
        return self._ledger.runner

    @property
    def traits(self) -> TaskTraits:
        """The traits the task runs with (its own, or else its runner's)."""
        opts = self._opts
        return self._ledger.runner.traits if opts is None else opts.traits

    @property
    def state(self) -> TaskState:
        """Where the task is in its life (see `TaskState`)."""
        return self._state

    @property
    def done(self) -> bool:
        """Whether the task has ended (SUCCEEDED, FAILED, CANCELLED or SKIPPED)."""
        return self._state in TERMINAL_STATES

    @property
    def attempts(self) -> int:
        """How many attempts the task has started (more than one when retried)."""
        return getattr(self, "_attempts", 0)

    @property
    def outcome(self) -> outcome.Outcome[T_co] | None:
        """The task's result as an `outcome.Outcome`, or None while it has not ended.

        A cancelled or skipped task gives ``outcome.Error(TaskCancelledError())``.
        Each access returns a fresh outcome, so each can be unwrapped once.
        """
        state = self._state
        if state is _SUCCEEDED:
            return outcome.Value(self._result)  # type: ignore[arg-type]  # the result of fn is a T
        if state in TERMINAL_STATES:
            return outcome.Error(self._exception())
        return None

    def _exception(self) -> BaseException:
        error = self._result
        assert isinstance(error, BaseException)
        if self._state is _FAILED:
            return error.with_traceback(self._traceback)
        # A fresh error per use: each waiter gets its own traceback.
        return TaskCancelledError(*error.args)

    async def wait(self) -> T_co:
        """Wait for the task to end and return its result.

        This is a checkpoint, also when the task has already ended.
        Cancelling the wait leaves the task alone: use `cancel` to stop it.

        Returns:
            The value the task's function returned.

        Raises:
            TaskCancelledError: if the task was cancelled or skipped.
            Exception: the exception the task raised, as itself (not wrapped),
                with its traceback.
            RuntimeError: when a task of a runner that runs one task at a
                time (sequenced, thread, or ``max_concurrency=1``), or a trio
                task it started, waits for an unfinished task of the same
                runner, its own included: that task starts only once the
                waiting one has ended, so the wait would never end.
        """
        if self._state in TERMINAL_STATES:
            await trio.lowlevel.checkpoint()
        else:
            self._ledger.refuse_wait_in_sequence(
                f"its task {self!r}",
                "post that task to another runner, or get its result in a reply "
                "(post_task_and_reply_with_result) or a done callback",
            )
            event = trio.Event()
            self.add_done_callback(lambda _: event.set())
            await event.wait()
        if self._state is _SUCCEEDED:
            return self._result  # type: ignore[return-value]  # the result of fn is a T
        raise self._exception()

    def cancel(self) -> bool:
        """Cancel the task, if it has not ended yet.

        A pending task never starts and ends CANCELLED at once. A running task is
        cancelled through its cancel scope and ends CANCELLED when it unwinds;
        a function running in a thread cannot be interrupted and runs to its end.

        Returns:
            True if the request took effect, False if the task had already ended
            or runs in a thread that cannot be interrupted.
        """
        return self._ledger.cancel(self)

    def _call_fn(self) -> Awaitable[object]:
        # One attempt of the task's function: the innermost call_next of its
        # middleware. An async function's coroutine is returned as it is, so
        # middleware awaits it with no wrapper layer in between.
        result = self._fn(*self._args)
        if type(result) is _Coroutine:  # the common case, without a Python call
            return result  # pyright: ignore[reportUnknownVariableType]  # any coroutine
        if _isawaitable(result):
            return result
        return _ready(result)

    def add_done_callback(self, callback: Callable[[TaskHandle[T_co]], object]) -> None:
        """Call ``callback(handle)`` once the task has ended, on the Trio thread.

        If the task has already ended, the callback runs at once. A callback that
        raises is logged and does not disturb the runner or other callbacks.
        """
        if self._state in TERMINAL_STATES:
            call_done_callback(callback, self)
        elif self._waiters is None:
            self._waiters = [callback]
        else:
            self._waiters.append(callback)


@final
@attrs.define(eq=False, repr=False)
class RepeatingHandle:
    """A repeating task: how many times it has run, and a way to stop it.

    Made by `TaskRunner.post_repeating_task`; its constructor is internal. Runs
    of one repeating task never overlap: the next run is scheduled when the
    previous one has ended. A run that fails is reported like any failed task
    (to the runner's ``on_error``) and the repetition goes on.
    """

    # Its runner's timer heap, which it leaves when stopped.
    _timers: TimerHeap
    _fn: AnyCallable
    _args: tuple[object, ...]
    _opts: TaskOptions | None
    _interval: float
    _mode: RepeatMode
    _missed: MissedTicks
    # Tick k of a fixed-rate schedule is due at _anchor + k * _interval.
    _anchor: float
    _id: int = attrs.field(factory=next_id)
    _tick: int = 0
    _runs: int = 0
    _stopped: bool = False
    # The run that is queued or running, if any.
    _current: TaskHandle[object] | None = None

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "active"
        name = describe(self._fn)
        return f"<RepeatingHandle #{self._id} {name!r} {state}, runs={self._runs}>"

    @property
    def id(self) -> int:
        """The repeating task's id, unique in the process."""
        return self._id

    @property
    def runs(self) -> int:
        """How many runs have started so far."""
        return self._runs

    @property
    def stopped(self) -> bool:
        """Whether the repetition has stopped (by `stop`, a cancel or a close)."""
        return self._stopped

    @property
    def interval(self) -> float:
        """Seconds between the runs' deadlines (or between runs, in FIXED_DELAY)."""
        return self._interval

    def stop(self) -> None:
        """Stop the repetition: no run starts after this call.

        A run that is queued but not started is cancelled; a run in progress
        finishes. Stopping twice is harmless.
        """
        if self._stopped:
            return
        self._stopped = True
        timers = self._timers
        timers.repeating.discard(self)
        current = self._current
        if current is None:
            timers.dropped()  # waiting in the heap for its next run
        elif current.state is _PENDING:
            current.cancel()

    def _count_run(self, run: TaskHandle[object]) -> None:
        # The on_start hook of its runs.
        del run
        self._runs += 1
