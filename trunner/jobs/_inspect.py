"""The inspection API of a `JobManager`: read jobs, cancel, retry, delete, purge.

Each call is one or two store calls; a cancel of a job this worker holds also
stops its handler (or, for a job claimed but not started, ends it here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast, final

import attrs

from .._util import check_duration, check_optional_count
from ._environment import later
from ._errors import JobNotFoundError, JobStateError
from ._job import FINISHED_STATES, JobCounts, JobInfo, JobState, check_name

if TYPE_CHECKING:
    from ._environment import ManagerEnvironment
    from ._worker import Worker


def finished_states(states: object) -> frozenset[JobState]:
    """Check the ``states`` argument of a purge: finished `JobState` values."""
    if isinstance(states, (str, JobState)) or not isinstance(states, Iterable):
        raise TypeError(
            f"states must be a collection of JobState (such as "
            f"{{JobState.FAILED}}), not {states!r}"
        )
    wanted: set[JobState] = set()
    for state in cast("Iterable[object]", states):
        if not isinstance(state, JobState):
            raise TypeError(f"states must hold JobState values, not {state!r}")
        if state not in FINISHED_STATES:
            raise ValueError(
                f"states: only finished jobs (succeeded, failed, cancelled) can be "
                f"purged, not {state.value} ones"
            )
        wanted.add(state)
    return frozenset(wanted)


@final
@attrs.define(eq=False)
class Inspection:
    """Reads and changes stored jobs for the manager's callers."""

    env: ManagerEnvironment
    #: Stops the handler of a cancelled job it runs; woken by a retry.
    worker: Worker

    async def get_job(self, job_id: str) -> JobInfo:
        """The job with that id (see `JobManager.get_job`)."""
        check_name("job_id", job_id)
        record = await self.env.store.get(job_id)
        if record is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return record.info()

    async def list_jobs(
        self, state: JobState | None, handler: str | None, limit: int, offset: int
    ) -> list[JobInfo]:
        """Jobs, newest first (see `JobManager.list_jobs`)."""
        if handler is not None:
            check_name("handler", handler)
        if state is not None and not isinstance(state, JobState):
            raise TypeError(f"state must be a JobState, not {state!r}")
        count = check_optional_count("limit", limit)
        assert count is not None
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"offset must be an int >= 0, not {offset!r}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset!r}")
        records = await self.env.store.list(
            state=state, handler=handler, limit=count, offset=offset
        )
        return [record.info() for record in records]

    async def counts(self) -> JobCounts:
        """How many jobs the store holds in each state."""
        counts = await self.env.store.counts()
        return counts if isinstance(counts, JobCounts) else JobCounts(counts)

    async def cancel_job(self, job_id: str) -> JobInfo:
        """Cancel a job (see `JobManager.cancel_job`)."""
        check_name("job_id", job_id)
        env = self.env
        now = env.now()
        record = await env.store.request_cancel(job_id, now=now)
        if record is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        if record.state is JobState.CANCELLED and record.finished_at == now:
            env.changes.publish_record(record)  # it was pending: cancelled now
        running = self.worker.running.get(job_id)
        if running is not None and record.state is JobState.RUNNING:
            self.worker.stop(running, "cancel")
        elif record.state is JobState.RUNNING:
            record = await self.worker.cancel_held(job_id, now) or record
        return record.info()

    async def retry_job(self, job_id: str) -> JobInfo:
        """Put a failed or cancelled job back (see `JobManager.retry_job`)."""
        check_name("job_id", job_id)
        store = self.env.store
        current = await store.get(job_id)
        if current is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        if current.state not in (JobState.FAILED, JobState.CANCELLED):
            raise JobStateError(
                f"job {job_id!r} is {current.state.value}; only failed or cancelled "
                "jobs can be retried"
            )
        record = await store.reset(job_id, now=self.env.now())
        if record is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        if record.state is not JobState.PENDING:
            raise JobStateError(
                f"job {job_id!r} changed state meanwhile; it is {record.state.value}"
            )
        self.env.changes.publish_record(record)
        self.worker.wake()
        return record.info()

    async def delete_job(self, job_id: str) -> None:
        """Delete a finished or unreadable job (see `JobManager.delete_job`)."""
        check_name("job_id", job_id)
        store = self.env.store
        if await store.delete(job_id):
            return
        record = await store.get(job_id)
        if record is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        raise JobStateError(
            f"job {job_id!r} is {record.state.value}; only finished (succeeded, "
            "failed, cancelled) or unreadable jobs can be deleted: cancel it first"
        )

    async def purge(self, older_than: float | None, states: object) -> int:
        """Delete finished jobs (see `JobManager.purge`); how many were deleted."""
        before = None
        if older_than is not None:
            before = later(
                self.env.now(), -check_duration("older_than", older_than), "older_than"
            )
        wanted = None if states is None else finished_states(states)
        return await self.env.store.purge(finished_before=before, states=wanted)
