"""The worker's upkeep: lease renewals, lease expiry, schedules and retention.

They run on the manager's control sequence (a `SequencedTaskRunner`), one at
a time, as repeating tasks; the lease guard is a task of its own that needs
no store, so no handler outlives its lease however slow the store is.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from ._errors import StoreError
from ._failures import StoreFailures
from ._job import JobState
from ._schedules import SCHEDULE_INTERVAL
from ._store import JobEnd

if TYPE_CHECKING:
    from .._sequenced import SequencedTaskRunner
    from ._environment import ManagerEnvironment
    from ._schedules import Schedules
    from ._worker import Worker

logger: Final = logging.getLogger("trunner.jobs")


@final
@attrs.define(eq=False)
class Upkeep:
    """The repeating store calls of a worker, and its lease guard."""

    env: ManagerEnvironment
    worker: Worker
    schedules: Schedules
    #: The control sequence: runs the repeating calls one at a time.
    control: SequencedTaskRunner
    guard_scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    renew_failures: StoreFailures = attrs.field(
        init=False, factory=lambda: StoreFailures("renew the leases of held jobs")
    )
    expire_failures: StoreFailures = attrs.field(
        init=False, factory=lambda: StoreFailures("take back expired leases")
    )
    retain_failures: StoreFailures = attrs.field(
        init=False, factory=lambda: StoreFailures("delete the jobs retention drops")
    )

    def start(self) -> None:
        """Post the repeating calls on the control sequence. Not a checkpoint."""
        control = self.control
        config = self.env.config
        period = config.lease / 3
        control.post_repeating_task(self.renew, interval=period, initial_delay=period)
        control.post_repeating_task(self.expire, interval=period)
        control.post_repeating_task(self.schedules.fire_due, interval=SCHEDULE_INTERVAL)
        if config.retention is not None:
            ttl = config.retention.ttl
            every = min(60.0, ttl / 4) if ttl is not None else 10.0
            control.post_repeating_task(self.retain, interval=max(every, 0.1))

    async def renew(self) -> None:
        """Renew the leases of every job this worker holds; stop the lost ones."""
        env = self.env
        worker = self.worker
        held_here = [
            *worker.running,
            *(r.record.id for r in worker.ready),
            *worker.ending,
        ]
        if not held_here:
            return
        now = env.now()
        lease_until = now + dt.timedelta(seconds=env.config.lease)
        try:
            result = await env.store.renew(
                worker=env.config.name,
                job_ids=held_here,
                lease_until=lease_until,
            )
        except Exception as error:
            self.renew_failures.failed(error)
            # A handler must not outlive its lease: stop those that would.
            margin = dt.timedelta(seconds=env.config.lease / 3)
            for running in list(worker.running.values()):
                if running.lease_until is None or running.lease_until - margin <= now:
                    worker.stop(running, "lease")
            return
        self.renew_failures.answered()
        # Only the jobs asked about: the worker may claim others meanwhile.
        asked = set(held_here)
        for job_id, running in list(worker.running.items()):
            if job_id not in asked:
                continue
            if job_id not in result.held:
                worker.stop(running, "lease")
            elif job_id in result.cancel_requested:
                worker.stop(running, "cancel")
            else:
                running.lease_until = lease_until
        for running in list(worker.ready):
            job_id = running.record.id
            if job_id not in asked:
                continue
            if job_id not in result.held:
                worker.ready.remove(running)
            elif job_id in result.cancel_requested:
                worker.ready.remove(running)
                worker.end(running, JobEnd.finished(job_id, JobState.CANCELLED, at=now))
            else:
                running.lease_until = lease_until

    async def expire(self) -> None:
        """Hand back the jobs whose lease expired (their workers are gone)."""
        try:
            expired = await self.env.store.expire_leases(now=self.env.now())
        except StoreError as error:
            self.expire_failures.failed(error)
            return
        self.expire_failures.answered()
        for record in expired:
            self.env.changes.publish_record(record)
        if expired:
            logger.info("took back %d jobs whose lease expired", len(expired))
            self.worker.wake()

    async def retain(self) -> None:
        """Delete the finished jobs that the retention no longer keeps."""
        retention = self.env.config.retention
        assert retention is not None
        before = None
        if retention.ttl is not None:
            before = self.env.now() - dt.timedelta(seconds=retention.ttl)
        try:
            await self.env.store.purge(
                finished_before=before, keep_latest=retention.max_entries
            )
        except StoreError as error:
            self.retain_failures.failed(error)
            return
        self.retain_failures.answered()

    async def guard_leases(self) -> None:
        """Cancel a handler whose lease is about to end without a renewal.

        Renewals run on the control sequence, behind other store calls: while
        the store hangs (a network cut), each of those waits out its timeout,
        and a renewal may come too late to stop a handler in time. This task
        needs no store: it stops a handler once less than a sixth of its lease
        remains (a renewal every third keeps two thirds), so no handler
        outlives its lease however slow the store is.
        """
        lease = self.env.config.lease
        margin = dt.timedelta(seconds=lease / 6)
        worker = self.worker
        with self.guard_scope:
            while True:
                await trio.sleep(lease / 12)
                now = self.env.now()
                for running in list(worker.running.values()):
                    until = running.lease_until
                    if until is not None and until - margin <= now:
                        worker.stop(running, "lease")
