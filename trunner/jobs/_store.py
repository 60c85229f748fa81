"""The JobStore protocol: what a backend must do for the JobManager.

A store keeps `JobRecord` and `ScheduleRecord` rows and makes every state
change of a job one atomic, durable step. It holds no policy: the manager
decides retries, backoff, leases and schedules, and the store applies them
atomically, so that several workers in several processes (or machines) can
share one store. Times are timezone-aware UTC datetimes; the manager computes
them from the trio clock, so a store never reads a clock of its own.

Every method is async and is a checkpoint. A method returns only once its
change is durable (committed, fsynced, acknowledged). A backend failure raises
`StoreError` from the driver's error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

import attrs

if TYPE_CHECKING:
    import builtins
    import datetime as dt
    from collections.abc import Collection, Sequence

    from ._job import JobRecord, JobState, ScheduleRecord


@final
@attrs.frozen
class RenewResult:
    """What `JobStore.renew` found."""

    #: Ids whose lease the worker still holds, now extended.
    held: frozenset[str]
    #: Ids among ``held`` whose cancellation has been requested.
    cancel_requested: frozenset[str]


@runtime_checkable
class JobStore(Protocol):
    """A durable home for jobs: the extension point for backends.

    Implement every method with the semantics written here;
    `trunner.testing.check_job_store` checks them. A store object is made
    unconnected (by `open_store` or its constructor); a `JobManager` connects
    it on entry and disconnects it on exit, so one store object may serve
    several managers in turn.
    """

    async def connect(self) -> None:
        """Open connections, create the schema if needed. Idempotent."""
        ...

    async def disconnect(self) -> None:
        """Close connections. Idempotent; the store may be connected again."""
        ...

    async def insert(
        self, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        """Insert ``jobs`` in one durable transaction, in order.

        A job whose id exists already (stored before, or earlier in ``jobs``)
        is not inserted. Each new job gets the next ``seq``.

        Returns:
            For each job, in order: the stored record (the new one, or the one
            that was there) and whether it was inserted.
        """
        ...

    async def get(self, job_id: str) -> JobRecord | None:
        """Return the job with that id, or None."""
        ...

    async def list(
        self,
        *,
        state: JobState | None = None,
        handler: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[JobRecord]:
        """Return jobs, newest (highest ``seq``) first, optionally filtered."""
        ...

    async def counts(self) -> dict[JobState, int]:
        """Return how many jobs there are in each state (absent states: 0)."""
        ...

    async def claim(
        self,
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        """Take up to ``limit`` due jobs for ``worker``, atomically.

        Due means PENDING with ``run_at <= now`` (and ``handler`` in
        ``handlers`` unless that is None), taken highest ``priority`` first,
        then earliest ``run_at``, then lowest ``seq``. Each taken job becomes
        RUNNING with ``worker``, ``lease_until``, ``started_at = now``,
        ``attempts + 1``, ``cancel_requested`` false. Two claims never take
        the same job.

        Returns:
            The taken jobs, as stored after the claim, in that order.
        """
        ...

    async def next_due(self, *, handlers: Collection[str] | None) -> dt.datetime | None:
        """Return the earliest ``run_at`` among PENDING jobs of ``handlers``."""
        ...

    async def renew(
        self, *, worker: str, job_ids: Collection[str], lease_until: dt.datetime
    ) -> RenewResult:
        """Extend the leases of ``job_ids`` that ``worker`` still holds (RUNNING).

        Returns:
            The ids still held (their lease is now ``lease_until``) and which of
            them have a cancellation request.
        """
        ...

    async def complete(
        self,
        job_id: str,
        *,
        worker: str,
        state: JobState,
        finished_at: dt.datetime,
        result: str | None = None,
        error: str | None = None,
    ) -> bool:
        """End a job that ``worker`` holds: SUCCEEDED, FAILED or CANCELLED.

        Clears the lease, keeps ``worker``. Does nothing if the worker no
        longer holds the job (its lease expired and another took it).

        Returns:
            Whether the job was held and is now ended.
        """
        ...

    async def requeue(
        self,
        job_id: str,
        *,
        worker: str,
        run_at: dt.datetime,
        error: str | None,
        now: dt.datetime,
    ) -> bool:
        """Make a held job PENDING again, due at ``run_at`` (a retry after backoff).

        The attempt counts. Clears the lease; records ``error``. A job whose
        cancellation was requested becomes CANCELLED instead
        (``finished_at = now``): the request is never lost.

        Returns:
            Whether the job was held.
        """
        ...

    async def release(self, job_id: str, *, worker: str, now: dt.datetime) -> bool:
        """Hand a held job back: PENDING, lease cleared, the attempt not counted.

        For a worker that stops before the job ends (graceful shutdown). A job
        whose cancellation was requested becomes CANCELLED instead
        (``finished_at = now``).

        Returns:
            Whether the job was held.
        """
        ...

    async def expire_leases(self, *, now: dt.datetime) -> builtins.list[JobRecord]:
        """Take back RUNNING jobs whose lease ended before ``now``, atomically.

        Each becomes PENDING due at once (``run_at = now``), lease cleared,
        the attempt counted; a job with no attempt left (``attempts >=
        max_attempts``) becomes FAILED with error ``"lease expired"`` and
        ``finished_at = now`` instead, and one whose cancellation was requested
        becomes CANCELLED (``finished_at = now``).

        Returns:
            The jobs changed, as stored after the change.
        """
        ...

    async def request_cancel(
        self, job_id: str, *, now: dt.datetime
    ) -> JobRecord | None:
        """Ask for a job to be cancelled; durable when it returns.

        A PENDING job becomes CANCELLED (``finished_at = now``); a RUNNING job
        gets ``cancel_requested`` (its worker sees it at its next renewal); a
        finished job is left as it is.

        Returns:
            The job as stored afterwards, or None if there is no such job.
        """
        ...

    async def reset(self, job_id: str, *, now: dt.datetime) -> JobRecord | None:
        """Put a FAILED or CANCELLED job back to PENDING with fresh attempts.

        ``attempts = 0``, ``run_at = now``, result, error, ``started_at``,
        ``finished_at``, worker and cancel request cleared. A job in another
        state is left as it is.

        Returns:
            The job as stored afterwards (the caller checks its state), or None
            if there is no such job.
        """
        ...

    async def purge(
        self,
        *,
        finished_before: dt.datetime | None = None,
        keep_latest: int | None = None,
        states: Collection[JobState] | None = None,
    ) -> int:
        """Delete finished jobs (SUCCEEDED, FAILED, CANCELLED; ``states`` narrows).

        Deletes those finished before ``finished_before``, and beyond the
        ``keep_latest`` most recently finished ones. Never touches PENDING or
        RUNNING jobs. With neither bound, deletes every finished job (of
        ``states``).

        Returns:
            How many jobs were deleted.
        """
        ...

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Store ``schedule``, replacing one of the same name."""
        ...

    async def delete_schedule(self, name: str) -> bool:
        """Delete the schedule ``name``; return whether it existed."""
        ...

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Return every schedule, by name."""
        ...

    async def advance_schedule(
        self, name: str, *, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        """Move a schedule's ``next_run_at`` from ``expected`` to ``next_run_at``.

        A compare-and-set: of several workers advancing the same tick, exactly
        one succeeds.

        Returns:
            Whether the schedule existed with ``next_run_at == expected``.
        """
        ...
