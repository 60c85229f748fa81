"""The records the parts of a `ResourcePool` share: states, calls, workers, counts.

Nothing here runs: these are the plain fields that the hand-off, the workers
and the facade read and write, kept in one place so that no part reaches into
another's private state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs
import trio

from .._errors import PoolClosedError
from .._metrics import DurationRecorder, RateMeter
from .._retry import capped_backoff

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias, Unpack

    # A task as the pool stores it: fn(resource, *args).
    TaskFn: TypeAlias = Callable[[object, Unpack[tuple[object, ...]]], object]

#: Calls a worker runs back to back before it yields to the trio scheduler,
#: when the calls themselves do not yield.
BATCH: Final = 32
#: Seconds a ``destroy()`` may take before the pool gives up on it (and logs).
DESTROY_TIMEOUT: Final = 10.0
#: Backoff between attempts to replace a resource: doubling from the first
#: value, capped at the second (seconds, trio clock).
BACKOFF_INITIAL: Final = 0.1
BACKOFF_MAX: Final = 5.0
#: Consecutive failed ``create()`` calls, with no worker holding a resource,
#: after which waiting callers get `ResourceUnavailableError`.
CRASH_LOOP_FAILURES: Final = 3
#: A burst worker idle for this many ``burst_interval`` retires.
RETIRE_INTERVALS: Final = 10
#: Burst scaling compares arrivals and completions over this many seconds.
BURST_WINDOW: Final = 1.0

# Pool states.
OPEN: Final = 0
CLOSING: Final = 1
KILLED: Final = 2

# Call states.
QUEUED: Final = 0  # in a queue
HANDED: Final = 1  # handed to an idle worker that has not started it yet
RUNNING: Final = 2
DONE: Final = 3  # answered (or abandoned by its cancelled caller)

#: The answer to a caller whose cancellation interrupted its running task.
CANCELLED: Final = object()

KILLED_MESSAGE: Final = (
    "the resource pool was killed before this task finished; "
    "open a new pool with open_resource_pool() to run it"
)


def backoff(failures: int) -> float:
    """Return the nap before the next ``create()`` after ``failures`` failures."""
    return capped_backoff(BACKOFF_INITIAL, 2.0, BACKOFF_MAX, failures)


def closed_error() -> PoolClosedError:
    """Return the error for a call to a stopping or stopped pool."""
    return PoolClosedError(
        "the resource pool is closed; open a new one with open_resource_pool()"
    )


@attrs.define(eq=False)
class Worker:
    """One worker task of the pool and the call it holds."""

    burst: bool
    # The pool's idle list, so that a parked worker can take itself off it.
    idle: list[Worker]
    # Whether its first resource is one of the pool's start.
    starting: bool
    # Cancelled by kill(): the worker stops and destroys its resource.
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    task: trio.lowlevel.Task = attrs.field(init=False)
    # The scope the worker runs calls in; a cancelled caller cancels it.
    task_scope: trio.CancelScope | None = None
    # The sleep between two failed create() calls; stop() cuts it short.
    nap: trio.CancelScope | None = None
    call: Call | None = None
    handoff: Call | None = None

    def abort_park(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        """Take the parked worker off the idle list: its park was cancelled."""
        self.idle.remove(self)
        return trio.lowlevel.Abort.SUCCEEDED


@attrs.define(eq=False)
class Call:
    """One ``queue_task`` or ``run_task`` call, from its caller to its answer."""

    fn: TaskFn
    args: tuple[object, ...]
    task: trio.lowlevel.Task
    priority: bool
    once: bool
    # queue_task calls are re-queued after a health failure; run_task calls
    # are handed back to their caller, which retries them "now".
    requeue: bool
    queued_at: float
    state: int = QUEUED
    retries: int = 0
    started_at: float = -1.0
    worker: Worker | None = None
    cancel_requested: bool = False
    retry_wanted: bool = False


def wake_nappers(live: dict[Worker, None]) -> None:
    """Cut short the naps of workers waiting to retry ``create()``."""
    for worker in live:
        if worker.nap is not None:
            worker.nap.cancel()


@attrs.define(eq=False)
class PoolLedger:
    """The pool's state and counters: what `ResourcePool.metrics` reports."""

    now: Callable[[], float]
    rates: RateMeter
    status: int = OPEN
    arrivals: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    cancelled: int = 0
    skipped: int = 0
    rejected: int = 0
    wait_times: DurationRecorder = attrs.field(factory=DurationRecorder)
    run_times: DurationRecorder = attrs.field(factory=DurationRecorder)

    @classmethod
    def on_current_clock(cls) -> PoolLedger:
        """Return a fresh ledger reading the current trio clock."""
        now = trio.lowlevel.current_clock().current_time
        return cls(now, RateMeter(now()))

    def check_not_killed(self) -> None:
        """Raise `PoolClosedError` if the pool was killed."""
        if self.status == KILLED:
            raise PoolClosedError(KILLED_MESSAGE)

    def housekeeping(self) -> None:
        """Fold the duration samples and note the rates; cheap, call it often."""
        self.wait_times.maybe_fold()
        self.run_times.maybe_fold()
        self.rates.note(self.now(), self.arrivals, self.succeeded + self.failed)
