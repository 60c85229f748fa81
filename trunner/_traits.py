"""Task traits and the enums that describe tasks and their schedules."""

from __future__ import annotations

import enum
from typing import Final, final

import attrs

from ._util import check_instance


@final
class Priority(enum.IntEnum):
    """How urgently a task needs a worker slot.

    Priorities are ordered: ``BEST_EFFORT < USER_VISIBLE < USER_BLOCKING``.
    Priority decides when a runner gets a worker slot of its scheduler and, on a
    `ParallelTaskRunner`, which pending task starts next; it never reorders the
    tasks inside a sequence.
    """

    #: Work the user will not notice if it is late (cleanup, prefetching).
    BEST_EFFORT = 0
    #: Work whose result the user will see, but not while waiting on it.
    USER_VISIBLE = 1
    #: Work the user is waiting for right now.
    USER_BLOCKING = 2


@final
class ShutdownBehavior(enum.Enum):
    """What a graceful close (`TaskRunner.aclose`) does with a task.

    Delayed tasks that are not yet due are skipped at close whatever their
    behaviour, and repeating tasks stop, as in Chromium.
    """

    #: Pending and running tasks run to their end before the close completes.
    BLOCK_SHUTDOWN = "block_shutdown"
    #: Pending tasks are skipped; a running task finishes.
    SKIP_ON_SHUTDOWN = "skip_on_shutdown"
    #: Pending tasks are skipped; a running task is cancelled.
    CONTINUE_ON_SHUTDOWN = "continue_on_shutdown"


@final
class TaskState(enum.Enum):
    """Where a task is in its life.

    A task starts PENDING, may become RUNNING, and ends in exactly one of the
    terminal states SUCCEEDED, FAILED, CANCELLED or SKIPPED.
    """

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Cancelled while running, or by `TaskHandle.cancel` / `TaskRunner.cancel`.
    CANCELLED = "cancelled"
    #: Never started (dropped by a close or by `TaskRunner.shutdown`).
    SKIPPED = "skipped"


TERMINAL_STATES: Final = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED}
)


@final
class RepeatMode(enum.Enum):
    """How `TaskRunner.post_repeating_task` spaces its runs."""

    #: Run k is due at ``post_time + initial_delay + k * interval``, whatever
    #: each run took: no drift.
    FIXED_RATE = "fixed_rate"
    #: Each run is due ``interval`` after the previous run ended.
    FIXED_DELAY = "fixed_delay"


@final
class MissedTicks(enum.Enum):
    """What a fixed-rate repeating task does when a run overruns its slot."""

    #: Go on with the next deadline that is not in the past; missed ticks are lost.
    SKIP = "skip"
    #: Run once at once for all the missed ticks, then resume on the schedule.
    COALESCE = "coalesce"
    #: Catch up, running once for every missed tick, back to back.
    BURST = "burst"


@final
@attrs.frozen(kw_only=True)
class TaskTraits:
    """How a task is scheduled and what happens to it at shutdown.

    Traits are immutable; derive variants with `attrs.evolve`. A runner has
    default traits, and ``traits=`` on a single post replaces them for that
    task.

    Args:
        priority: when the task gets a worker slot (see `Priority`).
        shutdown_behavior: what a graceful close does with the task (see
            `ShutdownBehavior`).
        may_block: a plain (sync) function with this trait runs in a worker
            thread instead of inline on the Trio thread. It has no effect on
            async functions or on a `SingleThreadTaskRunner`.
    """

    priority: Priority = attrs.field(
        default=Priority.USER_VISIBLE,
        validator=check_instance(
            Priority, "a Priority (such as trunner.Priority.USER_BLOCKING)"
        ),
    )
    shutdown_behavior: ShutdownBehavior = attrs.field(
        default=ShutdownBehavior.SKIP_ON_SHUTDOWN,
        validator=check_instance(
            ShutdownBehavior,
            "a ShutdownBehavior (such as trunner.ShutdownBehavior.BLOCK_SHUTDOWN)",
        ),
    )
    may_block: bool = attrs.field(
        default=False, validator=check_instance(bool, "True or False")
    )


DEFAULT_TRAITS: Final = TaskTraits()
