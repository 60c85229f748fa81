"""The ledger of a runner: its task counts, live tasks, samples, and task ends.

`Ledger.begin` and `Ledger.end` are the start and the end of every task that
runs; the sequenced consumer's fast path inlines them, reading and writing the
ledger's fields through locals (``tests/test_differential.py`` checks that
both give identical results). Everything here runs on the Trio thread.
"""

# pyright: reportPrivateUsage=false
# begin, end and finish_unstarted write the fields of a TaskHandle, the record
# every part of a runner shares, once per task: properties would cost a call
# per field on the runner's hottest path.

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from .._errors import TaskCancelledError
from .._handle import (
    CANCEL_REQUESTED,
    WAITS_ADMISSION,
    WAITS_SLOT,
    WAITS_TIMER,
    TaskHandle,
)
from .._metrics import DurationRecorder, RateMeter, RunnerMetrics
from .._options import log_task_error
from .._traits import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._abc import TaskRunner

# Runner phases: open, closing gracefully, closed.
OPEN: Final = 0
CLOSING: Final = 1
CLOSED: Final = 2

_PENDING: Final = TaskState.PENDING
_RUNNING: Final = TaskState.RUNNING
_SUCCEEDED: Final = TaskState.SUCCEEDED
_FAILED: Final = TaskState.FAILED
_CANCELLED: Final = TaskState.CANCELLED


@final
@attrs.frozen
class RunnerStatistics:
    """A cheap snapshot of a runner's task counts, from `TaskRunner.statistics`."""

    #: Tasks queued, waiting to start.
    pending: int
    #: Tasks started and not yet ended.
    running: int
    #: Delayed tasks not yet due.
    delayed: int
    succeeded: int
    failed: int
    cancelled: int
    skipped: int


@attrs.define(eq=False)
class RoomWaiter:
    """A `TaskRunner.send_task` caller waiting for room in a bounded runner."""

    # Replaced at each wait.
    woken: trio.Event = attrs.field(factory=trio.Event)


def _not_yet(_: object = None) -> None:
    """Placeholder for a callback the runner sets once its parts exist."""


@attrs.define(eq=False)
class Ledger:
    """A runner's counts and live tasks, and the start and end of its tasks."""

    #: The runner, for `TaskHandle.runner` (the handles hold the ledger).
    runner: TaskRunner
    now: Callable[[], float]
    max_pending: int | None
    # The runner's on_error (``on_error=``, or log the error), and how to
    # cancel a running task (each kind of runner has its own way).
    on_error: Callable[[TaskHandle[object], BaseException], object]
    cancel_running: Callable[[TaskHandle[object]], bool]
    rates: RateMeter
    # Tasks queued or running, by id. Delayed tasks live in the timer heap.
    live: dict[int, TaskHandle[object]] = attrs.field(
        factory=dict[int, TaskHandle[object]]
    )
    # send_task callers waiting for room, in arrival order.
    room_waiters: deque[RoomWaiter] = attrs.field(factory=deque[RoomWaiter])
    # What hears of a task's end (waiters, hooks, subscribers, barriers, idle
    # waits: `TaskEnds.notify`), and the timer heap's count of entries that
    # will never fire (a cancelled delayed task); set by the runner once those
    # parts exist.
    notify: Callable[[TaskHandle[object]], None] = _not_yet
    timer_dropped: Callable[[], None] = _not_yet
    # OPEN, CLOSING or CLOSED; false only while open.
    phase: int = OPEN
    pending: int = 0
    running: int = 0
    delayed: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0
    rejected: int = 0
    retries: int = 0
    timeouts: int = 0
    # The trio task of the consumer of a runner that runs one task at a time
    # (sequenced, thread), set by that consumer; None for other runners.
    sequence_task: trio.lowlevel.Task | None = None
    # True while someone must hear of every task's end (on_finish hooks, idle
    # waiters, barriers, subscribers); the hot path tests this one flag.
    watching: bool = False
    wait_times: DurationRecorder = attrs.field(factory=DurationRecorder)
    run_times: DurationRecorder = attrs.field(factory=DurationRecorder)

    def begin(
        self, handle: TaskHandle[object], scope: trio.CancelScope, now: float
    ) -> None:
        """Mark a PENDING handle RUNNING, started at ``now`` (the trio clock)."""
        self.pending -= 1
        self.running += 1
        handle._state = _RUNNING
        handle._scope = scope
        handle._attempts = 1
        handle._started_at = now
        self.wait_times.samples.append(now - handle._queued_at)
        if self.max_pending is not None:
            self.wake_room()

    def end(
        self, handle: TaskHandle[object], state: TaskState, result: object
    ) -> float:
        """Record the end of a RUNNING handle; return the time it ended."""
        handle._result = result
        handle._state = state
        if state is _SUCCEEDED:
            self.succeeded += 1
        elif state is _FAILED:
            self.failed += 1
            assert isinstance(result, BaseException)
            handle._traceback = result.__traceback__
            self.report_error(handle, result)
        else:
            self.cancelled += 1
        self.running -= 1
        del self.live[handle._id]
        now = self.now()
        handle._finished_at = now
        self.run_times.samples.append(now - handle._started_at)
        handle._args = ()
        if handle._waiters is not None or self.watching:
            self.notify(handle)
        return now

    def report_error(self, handle: TaskHandle[object], error: BaseException) -> None:
        """Hand the error of a failed task to ``on_error``; log what that raises."""
        try:
            self.on_error(handle, error)
        except Exception:
            log_task_error(handle, error)

    def finish_unstarted(self, handle: TaskHandle[object], state: TaskState) -> None:
        """End a handle that never started (queued, delayed or new)."""
        what = "cancelled" if state is _CANCELLED else "skipped"
        handle._result = TaskCancelledError(
            f"task {handle.name!r} was {what} before it started"
        )
        handle._state = state
        if state is _CANCELLED:
            self.cancelled += 1
        else:
            self.skipped += 1
        handle._finished_at = self.now()
        handle._args = ()
        if handle._flags & WAITS_SLOT:
            handle._scope.cancel()  # its consumer stops waiting for its slot
        self.notify(handle)

    def cancel(self, handle: TaskHandle[object]) -> bool:
        """Cancel ``handle`` (see `TaskHandle.cancel`)."""
        state = handle._state
        if state is _PENDING:
            flags = handle._flags
            handle._flags = flags | CANCEL_REQUESTED
            if flags & WAITS_TIMER:
                self.delayed -= 1
                self.timer_dropped()
            elif not flags & WAITS_ADMISSION:  # queued, or behind a barrier
                del self.live[handle._id]
                self.pending -= 1
                self.wake_room()
            self.finish_unstarted(handle, _CANCELLED)
            return True
        if state is _RUNNING:
            return self.cancel_running(handle)
        return False

    def stop_in_scope(
        self, handle: TaskHandle[object], *, offloaded_too: bool = False
    ) -> bool:
        """Cancel a RUNNING handle through the cancel scope its consumer runs it in.

        A function offloaded to a thread cannot be interrupted: it runs to its
        end (False), unless ``offloaded_too`` (a worker process can be killed).
        """
        opts = handle._opts
        if not offloaded_too and opts is not None and opts.offload:
            return False
        handle._flags |= CANCEL_REQUESTED
        handle._scope.cancel()
        return True

    def refuse_wait_in_sequence(self, what: str, advice: str) -> None:
        """Refuse to wait for ``what`` from the task that holds the runner's sequence.

        A runner that runs one task at a time starts its other tasks only once
        the caller's task has ended: waiting for one of them (or for the
        caller's own task) from it, or from a trio task it started, would
        never end. ``advice`` says what to do instead.
        """
        consumer = self.sequence_task
        if consumer is None:
            return
        task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
        while task is not consumer:
            if task is None:
                return  # not a task of the runner
            nursery = task.parent_nursery
            task = None if nursery is None else nursery.parent_task
        raise RuntimeError(
            f"a task of runner {self.runner.name!r} cannot wait for {what}: the "
            "runner runs one task at a time, so that starts only once the waiting "
            f"task has ended, and the wait would never end; {advice}"
        )

    def wake_room(self) -> None:
        """Let the first `TaskRunner.send_task` waiter look for room again."""
        if self.room_waiters:
            self.room_waiters[0].woken.set()

    def wake_all_room(self) -> None:
        """Wake every `TaskRunner.send_task` waiter: the runner is closing."""
        for waiter in self.room_waiters:
            waiter.woken.set()

    def is_full(self) -> bool:
        """Whether a bounded runner has ``max_pending`` tasks waiting."""
        return self.max_pending is not None and self.pending >= self.max_pending

    def counters(self) -> tuple[int, int]:
        """Return (arrivals, completions) so far."""
        completions = self.succeeded + self.failed
        arrivals = (
            completions + self.cancelled + self.skipped + self.pending + self.running
        )
        return arrivals, completions

    def housekeeping(self) -> None:
        """Bound the metrics' memory; called by consumers between batches."""
        self.wait_times.maybe_fold()
        self.run_times.maybe_fold()
        arrivals, completions = self.counters()
        self.rates.note(self.now(), arrivals, completions)

    def statistics(self) -> RunnerStatistics:
        """Return a snapshot of the task counts."""
        return RunnerStatistics(
            pending=self.pending,
            running=self.running,
            delayed=self.delayed,
            succeeded=self.succeeded,
            failed=self.failed,
            cancelled=self.cancelled,
            skipped=self.skipped,
        )

    def metrics(self, *, dropped_results: int) -> RunnerMetrics:
        """Return the metrics; ``dropped_results`` comes from the fan-out."""
        now = self.now()
        arrivals, completions = self.counters()
        arrival_rate, completion_rate = self.rates.rates(now, arrivals, completions)
        return RunnerMetrics(
            arrival_rate=arrival_rate,
            completion_rate=completion_rate,
            wait_time=self.wait_times.summary(),
            run_time=self.run_times.summary(),
            succeeded=self.succeeded,
            failed=self.failed,
            retries=self.retries,
            timeouts=self.timeouts,
            cancelled=self.cancelled,
            skipped=self.skipped,
            rejected=self.rejected,
            dropped_results=dropped_results,
        )
