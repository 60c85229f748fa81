"""What a scheduler hands each of its runners: the runner's environment.

A runner never reaches into its scheduler: the scheduler (the composition
root) builds a `RunnerEnvironment` for each runner it makes, with the shared
slot limiter, the scheduler-wide hooks, the accounting of thread calls, and
the callback that tells it the runner has closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._abc import TaskRunner
    from .._hooks import TaskHooks
    from .._limiter import PriorityLimiter


@attrs.frozen
class RunnerEnvironment:
    """The scheduler's services for one runner."""

    #: The scheduler's worker slots (``max_workers``), or None without a cap.
    limiter: PriorityLimiter | None
    #: The scheduler-wide hooks, called for every task of every runner.
    hooks: TaskHooks | None
    #: A call in a worker thread starts / has ended (the scheduler waits for
    #: them before its clock may jump, under an autojump clock).
    thread_call_started: Callable[[], None]
    thread_call_ended: Callable[[], None]
    #: The runner's machinery has ended: the scheduler forgets the runner.
    closed: Callable[[TaskRunner], None]
