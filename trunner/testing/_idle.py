"""run_until_idle: drive runners until nothing is runnable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
import trio.testing

from .._abc import TaskRunner
from .._context import current_scheduler

if TYPE_CHECKING:
    from .._scheduler import Scheduler


async def run_until_idle(*runners: TaskRunner) -> None:
    """Run posted and due tasks until nothing is runnable; never move the clock.

    Returns once every task of the trio run is blocked and no call of the
    runners' schedulers is working in a thread: the runners' posted tasks, the
    timers due now, and the tasks these post to each other across runners have
    all run as far as they can. Timers due later are left alone, even under an
    autojumping clock. A task blocked on something else (a later timer, an
    event) counts as idle. This is a checkpoint.

    Args:
        *runners: the runners whose work to wait for; none means every runner
            of the current scheduler.

    Raises:
        NoCurrentSchedulerError: with no runners, outside any scheduler.
        TypeError: if one of ``runners`` is not a `TaskRunner`.
    """
    for index, runner in enumerate(runners):
        if not isinstance(runner, TaskRunner):
            raise TypeError(
                f"run_until_idle takes task runners; argument {index + 1} "
                f"(runners[{index}]) is {runner!r}, not a TaskRunner"
            )
    schedulers: list[Scheduler] = []
    for scheduler in (
        (r.scheduler for r in runners) if runners else (current_scheduler(),)
    ):
        if scheduler not in schedulers:
            schedulers.append(scheduler)
    while True:
        await trio.testing.wait_all_tasks_blocked()
        busy = [s for s in schedulers if s._thread_calls]  # pyright: ignore[reportPrivateUsage]  # the testing helpers see the scheduler's thread calls
        if not busy:
            return
        for scheduler in busy:
            await scheduler._wait_threads_idle()  # pyright: ignore[reportPrivateUsage]  # the testing helpers see the scheduler's thread calls
