"""JobManager: durable jobs on three runners and a JobStore.

Architecture (DESIGN.md section 9): the manager is a facade over parts, each
in a module of its own, which `open_job_manager` (the composition root) builds
and hands a `ManagerEnvironment` (the store, the registry, the options, the
clock, the change feed):

* the submit path (`SubmitPath`, ``_submits``): concurrent submits share one
  store transaction (group commit);
* the worker (`Worker`, ``_worker``): one task makes the store calls of the
  hot path: one `JobStore.complete_and_claim` per round stores the ends of
  every attempt finished since the previous round and claims the next jobs,
  in one transaction; idle, it waits on the store's wake-ups
  (`JobStore.watch`). A `ParallelTaskRunner` executes handlers,
  ``concurrency`` at a time, with per-attempt timeouts and cancellation;
  sync handlers run on threads;
* its upkeep (`Upkeep`, ``_upkeep``): a control sequence (a
  `SequencedTaskRunner`) runs lease renewals, lease expiry, schedules and
  retention, one at a time;
* the schedules (`Schedules`, ``_schedules``) and the inspection API
  (`Inspection`, ``_inspect``);
* the store owns its I/O (a SQLite store on its own thread runner).

Retries are durable (``_attempts``): a failed attempt is put back in the
store, due after its backoff, so attempts and backoff survive a crash and any
worker may take the next attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, Literal, final

import attrs
import trio

from .._errors import RunnerClosedError
from .._retry import RetryPolicy
from .._scheduler import open_scheduler, owning_nursery
from .._traits import Priority
from .._util import check_duration, check_optional_count
from ._changes import ChangeFeed
from ._environment import (
    ManagerConfig,
    ManagerEnvironment,
    default_worker_name,
)
from ._errors import JobExistsError, StoreInUseError
from ._inspect import Inspection
from ._job import JobCounts, JobInfo, JobState, Retention, ScheduleRecord
from ._registry import Registry
from ._schedules import Schedules
from ._submits import SubmitPath
from ._upkeep import Upkeep
from ._worker import Worker

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Collection

    from .._handle import TaskHandle
    from .._scheduler import Scheduler
    from .._util import AnyCallable
    from ._store import JobStore

logger: Final = logging.getLogger("trunner.jobs")

#: Seconds between looks at the store for due jobs when nothing is known to be due.
DEFAULT_POLL_INTERVAL: Final = 1.0
#: The ids of the stores that open managers use, in this process: a store
#: object serves one manager at a time (each one disconnects it at its exit).
_STORES_IN_USE: Final[set[int]] = set()
_IfExists = Literal["error", "ignore"]


def utc_now() -> dt.datetime:
    """Return the wall-clock time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


@final
@attrs.define(eq=False, repr=False)
class JobManager:
    """Durable jobs: stored before they run, run at least once, survive crashes.

    Made by `open_job_manager`; the constructor is internal. Its methods are for
    the Trio thread; each is a checkpoint.
    """

    _env: ManagerEnvironment
    _scheduler: Scheduler
    _submits: SubmitPath
    _worker: Worker
    _schedules: Schedules
    _inspection: Inspection

    def __repr__(self) -> str:
        return self._worker.describe()

    @property
    def name(self) -> str:
        """This worker's name, stored in the ``worker`` field of its jobs."""
        return self._env.config.name

    @property
    def registry(self) -> Registry:
        """The registry of handlers this manager runs and checks submits against."""
        return self._env.registry

    @property
    def store(self) -> JobStore:
        """The store the manager uses."""
        return self._env.store

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler of the manager's runners (for metrics exporters)."""
        return self._scheduler

    @property
    def is_worker(self) -> bool:
        """Whether this manager claims and runs jobs (``worker=True``)."""
        return self._env.config.worker

    # ------------------------------------------------------------ change listeners

    def add_listener(self, listener: Callable[[JobInfo], object]) -> None:
        """Call ``listener(info)`` after each job state change.

        ``info`` is the job as it is after the change: submitted, claimed,
        ended, retried, cancelled, or handed back after an expired lease.
        The changes this manager makes are reported at once; those other
        managers sharing the store make (other processes) are reported too
        if the store is a `ChangeSource` (SQLite, Redis and PostgreSQL are),
        read back from the store while any listener is registered (so a job
        changed twice in quick succession may be reported once, in its later
        state). Listeners run on the Trio thread in the order of the changes
        and must not block; one that raises is logged and kept. Not a
        checkpoint.

        Raises:
            TypeError: if ``listener`` is not callable.
        """
        self._env.changes.add(listener)

    def remove_listener(self, listener: Callable[[JobInfo], object]) -> None:
        """Stop calling ``listener``; an unknown one is ignored. Not a checkpoint."""
        self._env.changes.remove(listener)

    def _check_open(self) -> None:
        if self._env.closed:
            raise RunnerClosedError(
                f"{self!r} is closed: its 'async with open_job_manager(...)' block "
                "has exited; open a new manager"
            )

    # ------------------------------------------------------------ time

    def now(self) -> dt.datetime:
        """Return the manager's time: the wall clock at opening plus trio time since.

        So delays, ``run_at``, backoff, leases and schedules follow the trio
        clock (virtual time in tests), while several processes share one
        timeline at the store.
        """
        return self._env.now()

    # ------------------------------------------------------------ registry

    def handler(self, name: str) -> Callable[[AnyCallable], AnyCallable]:
        """Register a handler on the manager's registry (also while it runs).

        Same as ``manager.registry.handler(name)``.
        """
        return self._env.registry.handler(name)

    # ------------------------------------------------------------ submitting

    async def submit_job(
        self,
        job_id: str,
        handler: str,
        args: object = None,
        *,
        priority: Priority = Priority.USER_VISIBLE,
        run_at: dt.datetime | None = None,
        delay: float | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the job's timeout
        if_exists: _IfExists = "error",
    ) -> JobInfo:
        """Store a job durably, and return it once the store has made it durable.

        Concurrent submits share one store transaction (group commit). The
        arguments are serialised now, so bad input fails here and nothing is
        stored. Cancelling the call once the job is handed to the store may
        still leave it stored.

        Args:
            job_id: the job's id (unique in the store).
            handler: the registered handler's name.
            args: the handler's argument: an instance of its annotated type (an
                attrs class or a JSON-native value).
            priority: among due jobs, higher runs first.
            run_at: when the job is due (a timezone-aware datetime).
            delay: seconds from now until it is due (instead of ``run_at``).
            retry: the job's retry policy (default: the manager's).
            timeout: seconds each attempt may take (default: the manager's).
            if_exists: ``"error"`` raises `JobExistsError` for a duplicate id;
                ``"ignore"`` returns the existing job.

        Returns:
            The stored job.

        Raises:
            UnknownHandlerError: no such handler (when the manager has a registry).
            SerializationError: ``args`` do not serialise or do not match the
                handler's annotation.
            JobExistsError: the id exists and ``if_exists="error"``.
            StoreError: the store failed.
            TypeError, ValueError: other bad arguments (an empty ``job_id``, or
                one a store cannot keep: a lone surrogate, a NUL character).
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        env = self._env
        submits = self._submits
        record, json_args = submits.new_record(
            job_id, handler, args, priority, run_at, delay, retry, timeout, env.now()
        )
        if if_exists not in ("error", "ignore"):
            raise ValueError(
                f"if_exists must be 'error' or 'ignore', not {if_exists!r}"
            )
        stored, inserted = await submits.commit(record)
        if not inserted and if_exists == "error":
            raise JobExistsError(
                f"a job with id {job_id!r} exists already; pick another id, or pass "
                "if_exists='ignore' to get the existing job"
            )
        if not inserted:
            return stored.info()
        self._worker.wake()
        # The arguments' JSON value is in hand: no need to parse them back.
        return stored.info(args=json_args)

    # ------------------------------------------------------------ inspecting

    async def get_job(self, job_id: str) -> JobInfo:
        """Return the job with that id.

        Raises:
            JobNotFoundError: if there is none.
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        return await self._inspection.get_job(job_id)

    async def list_jobs(
        self,
        state: JobState | None = None,
        handler: str | None = None,
        limit: int = 100,
        *,
        offset: int = 0,
    ) -> list[JobInfo]:
        """Return jobs, newest first, optionally of one state or handler.

        Raises:
            TypeError, ValueError: for a bad argument (named in the message).
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        return await self._inspection.list_jobs(state, handler, limit, offset)

    async def counts(self) -> JobCounts:
        """Return how many jobs the store holds in each state.

        Jobs whose stored state is not a `JobState` (corrupted, or written by
        a newer version) are in no state's count but in `JobCounts.unknown`.
        """
        self._check_open()
        return await self._inspection.counts()

    # ------------------------------------------------------------ cancel, retry, purge

    async def cancel_job(self, job_id: str) -> JobInfo:
        """Cancel a job; return once the request is stored.

        A pending job never starts; a running one is cancelled by whichever
        worker holds it (at its next lease renewal at the latest) and ends
        CANCELLED; a finished job is left as it is.

        Raises:
            JobNotFoundError: if there is no such job.
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        return await self._inspection.cancel_job(job_id)

    async def retry_job(self, job_id: str) -> JobInfo:
        """Put a FAILED or CANCELLED job back to PENDING, with fresh attempts.

        Raises:
            JobNotFoundError: if there is no such job.
            JobStateError: if the job is in another state.
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        return await self._inspection.retry_job(job_id)

    async def delete_job(self, job_id: str) -> None:
        """Delete a finished job, or one whose stored form cannot be read.

        For a job that is corrupted in the store (its `get_job` raises
        `SerializationError`), this is the way to remove it. Pending and
        running jobs are never deleted: cancel them first.

        Raises:
            JobNotFoundError: if there is no such job.
            JobStateError: if the job is pending or running.
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        await self._inspection.delete_job(job_id)

    async def purge(
        self,
        *,
        older_than: float | None = None,
        states: Collection[JobState] | None = None,
    ) -> int:
        """Delete finished jobs (of ``states``), finished ``older_than`` seconds ago.

        Args:
            older_than: seconds since the jobs finished (None: any age).
            states: the finished states to purge (any collection of
                `JobState`; None: all three).

        Returns:
            How many were deleted.

        Raises:
            TypeError, ValueError: for a bad argument (named in the message).
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        return await self._inspection.purge(older_than, states)

    # ------------------------------------------------------------ schedules

    async def schedule(
        self,
        name: str,
        handler: str,
        args: object = None,
        *,
        cron: str | None = None,
        every: float | None = None,
        priority: Priority = Priority.USER_VISIBLE,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the job's timeout
    ) -> None:
        """Store a recurring job; durable when it returns. The same name replaces it.

        The first run is one interval (or the next cron tick, in UTC) away.
        Across all workers there is one run per tick; after downtime, one run
        for all the missed ticks. Each run is a job with id ``"<name>@<tick>"``.

        Args:
            name: the schedule's name.
            handler: the handler's name.
            args: its argument, as for `submit_job`.
            cron: a 5-field cron expression (UTC), or
            every: seconds between runs.
            priority: as for `submit_job`.
            retry: as for `submit_job`.
            timeout: as for `submit_job`.
        """
        self._check_open()
        await self._schedules.put(
            name,
            handler,
            args,
            cron=cron,
            every=every,
            priority=priority,
            retry=retry,
            timeout=timeout,
        )

    async def unschedule(self, name: str) -> bool:
        """Remove the schedule ``name``; return whether it existed."""
        self._check_open()
        return await self._schedules.remove(name)

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Return every stored schedule."""
        self._check_open()
        return await self._env.store.list_schedules()

    # ------------------------------------------------------------ lifecycle

    @property
    def running(self) -> int:
        """How many jobs this worker runs now."""
        return len(self._worker.running)

    def shutdown(self) -> None:
        """Stop this worker at once: claim nothing more, cancel running handlers.

        The cancelled jobs are handed back (PENDING, lease cleared, the attempt
        not counted) for this or another worker to run again; a handler that
        runs in a thread cannot be interrupted, and its end is recorded when it
        comes. Leaving the manager's block afterwards does not wait out the
        grace period. Not a checkpoint; idempotent.
        """
        self._worker.shutdown()


@asynccontextmanager
async def open_job_manager(
    store: JobStore,
    registry: Registry | None = None,
    *,
    concurrency: int = 4,
    worker: bool = True,
    lease: float = 30.0,
    grace_period: float = 10.0,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,  # noqa: ASYNC109  # the jobs' default timeout
    retention: Retention | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    wall_clock: Callable[[], dt.datetime] = utc_now,
    name: str | None = None,
) -> AsyncGenerator[JobManager, None]:
    """Open a `JobManager` on ``store`` for the ``async with`` block.

    The store is connected on entry and disconnected on exit. With
    ``worker=True`` the manager claims and runs jobs whose handler its registry
    knows; ``worker=False`` only submits and inspects (a web front end, a CLI).
    Leaving the block stops claiming; running jobs get ``grace_period`` seconds,
    then are cancelled and handed back (PENDING, lease cleared, the attempt not
    counted).

    Entering and leaving are checkpoints (the store connects and disconnects).
    Cancelling the entry stops what was started and leaves the store
    disconnected. The exit is shielded from cancellation and bounded: running
    jobs still get their grace period, then are handed back, and the store is
    disconnected (within 30 seconds). The body's exception propagates as
    itself; a job's failure is recorded in the store (and retried as its
    policy says), never raised here.

    Args:
        store: the `JobStore` (see `open_store`).
        registry: the handlers; without one, submit cannot check handler names
            or argument types (args need only be JSON-serialisable).
        concurrency: jobs run at once by this worker.
        worker: whether to run jobs.
        lease: seconds a running job's lease lasts; renewed every ``lease / 3``.
        grace_period: seconds running jobs get at exit.
        retry: the default `RetryPolicy` of jobs (default: ``RetryPolicy()``).
        timeout: default seconds per attempt (None: no limit).
        retention: deletes finished jobs (see `Retention`).
        poll_interval: seconds between looks at the store for jobs submitted
            elsewhere, when none is known to be due.
        wall_clock: the wall clock read once at opening, mapped to UTC.
        name: this worker's name (default: host, pid and a random suffix).
    """
    if registry is not None and not isinstance(registry, Registry):
        raise TypeError(f"registry must be a Registry, not {registry!r}")
    workers = check_optional_count("concurrency", concurrency)
    assert workers is not None
    lease_s = check_duration("lease", lease, allow_zero=False)
    grace = check_duration("grace_period", grace_period)
    if timeout is not None:
        timeout = check_duration("timeout", timeout, allow_zero=False)
    poll = check_duration("poll_interval", poll_interval, allow_zero=False)
    if retention is not None and not isinstance(retention, Retention):
        raise TypeError(f"retention must be a Retention, not {retention!r}")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry must be a RetryPolicy, not {retry!r}")
    config = ManagerConfig(
        strict=registry is not None,
        worker=worker,
        concurrency=workers,
        lease=lease_s,
        grace_period=grace,
        retry=retry if retry is not None else RetryPolicy(),
        timeout=timeout,
        retention=retention,
        poll_interval=poll,
        wall_clock=wall_clock,
        name=name or default_worker_name(),
    )
    if id(store) in _STORES_IN_USE:
        raise StoreInUseError(
            f"{store!r} serves another open JobManager already; a store object "
            "serves one manager at a time: give each manager its own (such as "
            "open_store(url) once per manager; they share the jobs through the "
            "database)"
        )
    _STORES_IN_USE.add(id(store))
    try:
        async with _open_job_manager(store, registry, config) as manager:
            yield manager
    finally:
        _STORES_IN_USE.discard(id(store))


@asynccontextmanager
async def _open_job_manager(
    store: JobStore, registry: Registry | None, config: ManagerConfig
) -> AsyncGenerator[JobManager, None]:
    # The manager's own tasks (the committer, the worker, the lease guard)
    # run in a nursery of their own inside the scheduler's block, so they
    # have ended before the scheduler closes the runners.
    async with open_scheduler() as scheduler, owning_nursery() as nursery:
        wall0 = config.wall_clock()
        env = ManagerEnvironment(
            store=store,
            registry=registry if registry is not None else Registry(),
            config=config,
            changes=ChangeFeed(store, scheduler, config.poll_interval),
            epoch0=wall0.timestamp(),
            trio0=trio.current_time(),
        )
        control = scheduler.create_sequenced_runner(name="jobs-control")
        executor = None
        if config.worker:
            executor = scheduler.create_parallel_runner(
                max_concurrency=config.concurrency,
                name="jobs-executor",
                on_error=_quiet,
            )
        worker = Worker(env, executor)
        submits = SubmitPath(env, worker.describe)
        schedules = Schedules(env, worker, submits)
        upkeep = Upkeep(env, worker, schedules, control)
        manager = JobManager(
            env, scheduler, submits, worker, schedules, Inspection(env, worker)
        )
        await store.connect()
        try:
            nursery.start_soon(submits.run, name="jobs-group-commit")
            if config.worker:
                upkeep.start()
                nursery.start_soon(worker.run, name="jobs-worker")
                await trio.lowlevel.checkpoint()
                nursery.start_soon(upkeep.guard_leases, name="jobs-lease-guard")
            try:
                yield manager
            finally:
                with trio.CancelScope(shield=True):
                    await worker.drain()
                    control.shutdown()
                    if executor is not None:
                        executor.shutdown()
        finally:
            # Refuse every call from now on; write the submits already made first.
            env.closed = True
            with trio.CancelScope(shield=True):
                await submits.close()
                await env.changes.aclose()
            upkeep.guard_scope.cancel()
            with trio.CancelScope(shield=True), trio.move_on_after(30):
                await store.disconnect()


def _quiet(handle: TaskHandle[object], error: BaseException) -> None:
    # A job's failure is recorded in the store (and retried); log it at debug.
    del error
    logger.debug("job %r attempt failed", handle.name, exc_info=True)
