"""Recurring jobs: stored schedules, and the firing of their due ticks.

A schedule is stored (`JobStore.put_schedule`) with its next tick. A worker
looks at the schedules every `SCHEDULE_INTERVAL` seconds (on its control
sequence) and fires the due ones whose handler it knows: it inserts the job
of the tick (id ``"<name>@<tick>"``), then advances the tick. The id is the
tick's, so across all workers there is one run per tick, and after downtime
one run for all the missed ticks.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import TYPE_CHECKING, Final, final

import attrs

from .._util import check_duration
from ._cron import CronExpression
from ._environment import later
from ._job import JobRecord, JobState, ScheduleRecord, check_name

if TYPE_CHECKING:
    from .._retry import RetryPolicy
    from .._traits import Priority
    from ._environment import ManagerEnvironment
    from ._submits import SubmitPath
    from ._worker import Worker

logger: Final = logging.getLogger("trunner.jobs")

#: Seconds between looks at the schedules.
SCHEDULE_INTERVAL: Final = 1.0


def _bad_schedules() -> set[str]:
    return set()


def next_tick(schedule: ScheduleRecord, now: dt.datetime) -> dt.datetime:
    """The schedule's first tick after ``now``: missed ticks collapse into one run."""
    if schedule.cron is not None:
        return CronExpression.parse(schedule.cron).next_after(now)
    assert schedule.every is not None
    period = dt.timedelta(seconds=schedule.every)
    missed = math.floor((now - schedule.next_run_at) / period) + 1
    return schedule.next_run_at + missed * period


@final
@attrs.define(eq=False)
class Schedules:
    """The schedules of a manager: stored by any manager, fired by workers."""

    env: ManagerEnvironment
    #: Woken when a fired tick inserted a job.
    worker: Worker
    #: Checks a schedule's job as a submit would (`SubmitPath.new_record`).
    submits: SubmitPath
    #: Schedules whose failure to fire is logged already (once each).
    bad: set[str] = attrs.field(init=False, factory=_bad_schedules)

    async def put(
        self,
        name: str,
        handler: str,
        args: object,
        *,
        cron: str | None,
        every: float | None,
        priority: Priority,
        retry: RetryPolicy | None,
        timeout: float | None,  # noqa: ASYNC109  # the job's timeout
    ) -> None:
        """Check and store a schedule (see `JobManager.schedule`)."""
        check_name("name", name)
        if "@" in name:
            raise ValueError(f"a schedule's name cannot contain '@': {name!r}")
        if (cron is None) == (every is None):
            raise ValueError("give exactly one of cron= and every=")
        now = self.env.now()
        if cron is not None:
            first = CronExpression.parse(cron).next_after(now)
            period = None
        else:
            period = check_duration("every", every, allow_zero=False)
            if math.isinf(period):
                raise ValueError(
                    "every must be a finite number of seconds; submit_job with "
                    "run_at= runs a job once"
                )
            first = later(now, period, "every")
        template, _ = self.submits.new_record(
            f"{name}@", handler, args, priority, None, None, retry, timeout, now
        )
        await self.env.store.put_schedule(
            ScheduleRecord(
                name=name,
                handler=handler,
                args=template.args,
                cron=cron,
                every=period,
                next_run_at=first,
                priority=template.priority,
                timeout=template.timeout,
                retry=template.retry,
                created_at=now,
            )
        )

    async def remove(self, name: str) -> bool:
        """Remove the schedule ``name``; whether it existed."""
        check_name("name", name)
        return await self.env.store.delete_schedule(name)

    async def fire_due(self) -> None:
        """Fire every due schedule whose handler this worker knows."""
        now = self.env.now()
        try:
            schedules = await self.env.store.list_schedules()
        except Exception as error:  # the next look is a second away
            self._failed("<every schedule>", error)
            return
        registry = self.env.registry
        fired = False
        for schedule in schedules:
            if schedule.next_run_at > now:
                continue
            if schedule.handler not in registry:
                continue  # a worker that knows the handler will run it
            try:
                fired = await self._fire(schedule, now) or fired
            except Exception as error:  # the others still fire
                self._failed(schedule.name, error)
            else:
                self.bad.discard(schedule.name)
        if fired:
            self.worker.wake()  # only then: poll_interval rules the idle polling

    async def _fire(self, schedule: ScheduleRecord, now: dt.datetime) -> bool:
        """Insert the job of the schedule's due tick and advance it; True if new."""
        tick = schedule.next_run_at
        next_run_at = next_tick(schedule, now)
        policy = self.env.config.policy(schedule.retry)
        job = JobRecord(
            id=f"{schedule.name}@{tick.isoformat()}",
            handler=schedule.handler,
            args=schedule.args,
            state=JobState.PENDING,
            priority=schedule.priority,
            attempts=0,
            max_attempts=policy.max_attempts,
            created_at=now,
            run_at=now,
            timeout=schedule.timeout,
            retry=schedule.retry,
        )
        # Insert first, then advance: the id is the tick's, so a worker
        # racing us (or retrying after a crash in between) inserts nothing
        # new, and only one advance of the tick succeeds.
        store = self.env.store
        ((_, inserted),) = await store.insert([job])
        await store.advance_schedule(
            schedule.name, expected=tick, next_run_at=next_run_at
        )
        return inserted

    def _failed(self, name: str, error: Exception) -> None:
        """Log a schedule that cannot fire: once, until it fires again."""
        if name in self.bad:
            logger.debug("schedule %r cannot fire: %r", name, error)
            return
        self.bad.add(name)
        logger.warning(
            "schedule %r cannot fire (logged once; retried every %s s): %r",
            name,
            SCHEDULE_INTERVAL,
            error,
            exc_info=error,
        )
