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

The worker's hot path is one call per round trip: `JobStore.complete_and_claim`
ends the jobs that finished since the last call (grouped: one transaction for
all of them) and claims the next ones in the same transaction. Idle workers
learn of new work through `JobStore.watch` instead of polling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol, final, runtime_checkable

import attrs

from ._job import FINISHED_STATES, JobRecord, JobState

if TYPE_CHECKING:
    import builtins
    import contextlib
    import datetime as dt
    from collections.abc import Collection, Sequence

    from ._job import ScheduleRecord


@final
@attrs.frozen
class RenewResult:
    """What `JobStore.renew` found."""

    #: Ids whose lease the worker still holds, now extended.
    held: frozenset[str]
    #: Ids among ``held`` whose cancellation has been requested.
    cancel_requested: frozenset[str]


_END_STATES: Final = FINISHED_STATES | {JobState.PENDING}


def _check_end_state(
    instance: JobEnd, attribute: attrs.Attribute[JobState], state: JobState
) -> None:
    del attribute
    if state not in _END_STATES:
        raise ValueError(
            "a job ends as succeeded, failed or cancelled, or goes back to "
            f"pending; not {state!r}"
        )
    if state is JobState.PENDING and instance.result is not None:
        raise ValueError("a job going back to pending has no result")
    if state is not JobState.PENDING and instance.run_at is not None:
        raise ValueError("only a job going back to pending has a run_at")


def _aware(value: object) -> None:
    if value is not None and getattr(value, "tzinfo", None) is None:
        raise ValueError(f"store times must be timezone-aware datetimes, not {value!r}")


def _check_at(
    instance: object, attribute: attrs.Attribute[dt.datetime], value: dt.datetime
) -> None:
    del instance, attribute
    _aware(value)


def _check_run_at(
    instance: object,
    attribute: attrs.Attribute[dt.datetime | None],
    value: dt.datetime | None,
) -> None:
    del instance, attribute
    _aware(value)


@final
@attrs.frozen(kw_only=True)
class JobEnd:
    """How an attempt that a worker holds ends, for `JobStore.complete_and_claim`.

    Each kind is the batched form of one single-job method, with the same
    semantics (and the same check that the worker still holds the job):

    * ``state`` SUCCEEDED, FAILED or CANCELLED: `JobStore.complete` with
      ``finished_at=at``, ``result`` and ``error``;
    * ``state`` PENDING with a ``run_at``: `JobStore.requeue` (a retry after
      backoff; the attempt counts) with ``run_at``, ``error`` and ``now=at``;
    * ``state`` PENDING without ``run_at``: `JobStore.release` (handed back,
      the attempt not counted) with ``now=at``.

    Use the constructors `finished`, `retry` and `released`.

    Raises:
        ValueError: for a RUNNING ``state``, a ``result`` on a job going back
            to PENDING, a ``run_at`` on a finished one, or a naive datetime.
    """

    job_id: str
    state: JobState = attrs.field(validator=_check_end_state)
    #: When it ended (``finished_at`` of a finished job, ``now`` otherwise).
    at: dt.datetime = attrs.field(validator=_check_at)
    #: The result as JSON text (SUCCEEDED only, by convention).
    result: str | None = None
    error: str | None = None
    #: When a retried job is due again (PENDING only).
    run_at: dt.datetime | None = attrs.field(default=None, validator=_check_run_at)

    @classmethod
    def finished(
        cls,
        job_id: str,
        state: JobState,
        *,
        at: dt.datetime,
        result: str | None = None,
        error: str | None = None,
    ) -> JobEnd:
        """End the job SUCCEEDED, FAILED or CANCELLED (as `JobStore.complete`)."""
        if state not in FINISHED_STATES:
            raise ValueError(
                f"a job finishes as succeeded, failed or cancelled, not {state!r}"
            )
        return cls(job_id=job_id, state=state, at=at, result=result, error=error)

    @classmethod
    def retry(
        cls, job_id: str, *, run_at: dt.datetime, error: str | None, at: dt.datetime
    ) -> JobEnd:
        """Make the job PENDING again, due at ``run_at`` (as `JobStore.requeue`)."""
        return cls(
            job_id=job_id, state=JobState.PENDING, at=at, error=error, run_at=run_at
        )

    @classmethod
    def released(cls, job_id: str, *, at: dt.datetime) -> JobEnd:
        """Hand the job back, the attempt not counted (as `JobStore.release`)."""
        return cls(job_id=job_id, state=JobState.PENDING, at=at)

    @property
    def is_release(self) -> bool:
        """Whether this hands the job back without counting the attempt."""
        return self.state is JobState.PENDING and self.run_at is None


@final
@attrs.frozen
class CompleteResult:
    """What `JobStore.complete_and_claim` did."""

    #: Whether each end, in the order given, applied (the worker held the job
    #: and it is now ended, requeued or released as asked).
    ended: tuple[bool, ...]
    #: The jobs claimed, as stored after the claim, in claim order.
    claimed: tuple[JobRecord, ...]


@runtime_checkable
class WorkWatcher(Protocol):
    """A subscription to a store's wake-ups, from `JobStore.watch`."""

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109  # the protocol's
        """Wait until work may have arrived, or for ``timeout`` seconds (trio time).

        Work arrives when a job becomes PENDING: inserted, requeued, released,
        reset, or taken back from an expired lease. Arrivals since the watcher
        was opened, or since the previous `wait` returned True, count: none is
        lost between two waits. Several arrivals may make one wake-up, and a
        wake-up may be spurious (a job that another worker claims first, or
        one that is not due yet); the caller claims and finds out.

        A checkpoint; cancelling it changes nothing.

        Returns:
            True when woken by an arrival, False when the timeout passed.
        """
        ...


@runtime_checkable
class ChangeWatcher(Protocol):
    """Other writers' job changes, from `ChangeSource.watch_changes`."""

    async def changes(self, timeout: float) -> Sequence[JobRecord]:  # noqa: ASYNC109  # the protocol's
        """Wait for jobs that other writers changed, or for ``timeout`` seconds.

        Returns the jobs changed since the watcher was opened, or since the
        previous call, through any other store object on the same store (in
        this process or another): inserted, claimed, ended, requeued,
        released, cancelled (or asked to be), reset, taken back from an
        expired lease. Each job is returned as stored when read (so a job
        changed twice may be returned once, in its later state), in the order
        of the changes; changes made through this store object are left out
        (its manager reports them itself). An empty answer means the timeout
        passed. A watcher may return before the timeout with a part of what
        is pending; the next call returns the rest.

        A lost connection is re-established by the watcher (changes made
        meanwhile may be missed); `StoreError` is raised only for a failure
        that retrying cannot mend, such as a disconnected store.

        A checkpoint; cancelling it loses nothing that was not returned.
        """
        ...


@runtime_checkable
class ChangeSource(Protocol):
    """A store that tells of job changes made by other processes: optional.

    A `JobStore` that also has this method lets a `JobManager` report, to its
    listeners (`JobManager.add_listener`), the changes that other managers
    sharing the store make: a front end (``worker=False``) then sees the
    claims and ends of the workers. A store without it still works; its
    manager reports only its own changes. `trunner.testing.check_job_store`
    checks it, given ``other_store``.
    """

    def watch_changes(
        self, *, poll_interval: float
    ) -> contextlib.AbstractAsyncContextManager[ChangeWatcher]:
        """Follow other writers' job changes for the ``async with`` block.

        Changes made after entering are reported (see `ChangeWatcher.changes`).
        A store that cannot be told of changes looks for them every
        ``poll_interval`` seconds; one that is told (a channel, ``NOTIFY``)
        may ignore it. Entering and leaving are checkpoints; the store must
        be connected while the watcher is open.
        """
        ...


@runtime_checkable
class JobStore(Protocol):
    """A durable home for jobs: the extension point for backends.

    Implement every method with the semantics written here;
    `trunner.testing.check_job_store` checks them. A store object is made
    unconnected (by `open_store` or its constructor); a `JobManager` connects
    it on entry and disconnects it on exit, so one store object may serve
    several managers in turn (never two at once). Every other method of an
    unconnected (or disconnected) store raises `StoreError`.
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
        """Return how many jobs there are in each state (absent states: 0).

        A job whose stored state is not a `JobState` (a corrupted row, or one
        written by a newer version) is in no state's count: return a
        `JobCounts` to count it in `JobCounts.unknown`. A plain dict says
        there are none (a store whose records are always typed, say).
        """
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

    async def complete_and_claim(
        self,
        ends: Sequence[JobEnd],
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> CompleteResult:
        """End the jobs of ``ends``, then claim up to ``limit`` jobs: one atomic step.

        The worker's hot path: one transaction (one disk flush) for all the
        ends gathered since its last call and for its next claim. Each end is
        applied in order with the semantics of its single-job method (see
        `JobEnd`), only if ``worker`` still holds the job (RUNNING with
        ``worker``): a job whose lease was lost (expired, and maybe taken by
        another worker) is left as it is, and its entry in ``ended`` is False.
        One end that does not apply never stops the others. Then the claim
        runs as `claim` does with the same arguments (``limit=0`` claims
        nothing: a grouped completion); whether a job made PENDING by ``ends``
        may be claimed again by the same call is the store's choice.
        Concurrent calls (from any workers) never claim the same job, and a
        failed call changes nothing.

        Returns:
            Whether each end applied, and the jobs claimed.
        """
        ...

    def watch(
        self, *, handlers: Collection[str] | None
    ) -> contextlib.AbstractAsyncContextManager[WorkWatcher]:
        """Subscribe to wake-ups for the ``async with`` block.

        An idle worker opens a watcher, claims, and when it found nothing waits
        on the watcher until work arrives (see `WorkWatcher.wait`) instead of
        polling. ``handlers`` is a hint: a store may filter wake-ups by handler
        or not. A job that becomes PENDING through any client of this store
        object, and through any other object on the same store in this
        process, wakes the watcher at once; from other processes, as the
        backend allows (Redis: a channel; PostgreSQL: LISTEN/NOTIFY; SQLite:
        not across processes, so the worker's ``poll_interval`` is the bound).

        Entering and leaving are checkpoints; the store must be connected
        while the watcher is open.
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

    async def delete(self, job_id: str) -> bool:
        """Delete the job ``job_id`` if it is finished or cannot be read.

        A finished job (SUCCEEDED, FAILED, CANCELLED) is deleted, and so is one
        whose stored form the store cannot decode (a corrupted record), whatever
        its state; a PENDING or RUNNING job is left as it is. One atomic step.

        Returns:
            Whether a job was deleted (False: no such job, or one that is
            pending or running).
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
