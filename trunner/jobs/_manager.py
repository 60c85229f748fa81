"""JobManager: durable jobs on three runners and a JobStore.

Architecture (DESIGN.md section 9):

* a worker task makes the store calls of the hot path: one
  `JobStore.complete_and_claim` per round stores the ends of every attempt
  finished since the previous round and claims the next jobs, in one
  transaction; idle, it waits on the store's wake-ups (`JobStore.watch`);
* a control sequence (a `SequencedTaskRunner`) runs lease renewals, lease
  expiry, schedules and retention, one at a time;
* the store owns its I/O (a SQLite store on its own thread runner);
* a `ParallelTaskRunner` executes handlers, ``concurrency`` at a time, with
  per-attempt timeouts and cancellation; sync handlers run on threads.

Retries are durable: a failed attempt is put back in the store, due after its
backoff, so attempts and backoff survive a crash and any worker may take the
next attempt. Submits go through a group commit: concurrent submits share one
store transaction.
"""

# pyright: reportPrivateUsage=false
# Open_job_manager sets up the manager and uses the scheduler's nursery; the
# JobManager split (issue 10) replaces this with a constructor.

from __future__ import annotations

import collections
import datetime as dt
import logging
import math
import os
import socket
import traceback
import uuid
from collections.abc import Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, Literal, cast, final

import attrs
import outcome
import trio

from .._errors import RunnerClosedError, TaskTimeoutError
from .._retry import RetryPolicy
from .._scheduler import open_scheduler
from .._traits import Priority, TaskState, TaskTraits
from .._util import check_duration, check_optional_count
from ._changes import ChangeFeed
from ._cron import CronExpression
from ._errors import (
    JobExistsError,
    JobNotFoundError,
    JobStateError,
    Retry,
    SerializationError,
    StoreError,
    StoreInUseError,
)
from ._job import (
    FINISHED_STATES,
    JobCounts,
    JobInfo,
    JobRecord,
    JobState,
    Retention,
    RetrySpec,
    ScheduleRecord,
    check_name,
)
from ._registry import Registry
from ._serialize import JsonSerializer
from ._store import JobEnd

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Collection

    from .._handle import TaskHandle
    from .._parallel import ParallelTaskRunner
    from .._scheduler import Scheduler
    from .._sequenced import SequencedTaskRunner
    from .._util import AnyCallable
    from ._registry import HandlerSpec
    from ._store import JobStore

logger: Final = logging.getLogger("trunner.jobs")

#: Seconds between looks at the store for due jobs when nothing is known to be due.
DEFAULT_POLL_INTERVAL: Final = 1.0
#: Seconds between looks at the schedules.
SCHEDULE_INTERVAL: Final = 1.0
#: Seconds before the worker tries a failed store call again; the wait doubles
#: with each failure in a row, up to `STORE_RETRY_MAX`.
STORE_RETRY_INITIAL: Final = 0.1
#: The longest wait between two tries of a failing store: once the store
#: answers again, the worker resumes within this many seconds.
STORE_RETRY_MAX: Final = 5.0
_BLOCKING: Final = TaskTraits(may_block=True)
#: Seconds a claimed job may wait for a free slot before it is handed back.
PREFETCH_HOLD: Final = 1.0
#: Seconds of one wait on the store's watcher (then it waits again).
_WATCH_WAIT: Final = 3600.0
#: Failed store calls in a row after which an exiting worker gives up its ends.
_STOP_TRIES: Final = 5
#: Seconds the exit waits for the submits made before it to be stored.
_CLOSE_FLUSH_TIMEOUT: Final = 30.0
#: The ids of the stores that open managers use, in this process: a store
#: object serves one manager at a time (each one disconnects it at its exit).
_STORES_IN_USE: Final[set[int]] = set()
_IfExists = Literal["error", "ignore"]


def utc_now() -> dt.datetime:
    """Return the wall-clock time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def _default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _error_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)).rstrip()


@attrs.define(eq=False)
class _Running:
    """A job this worker runs: its record and the task that runs it."""

    record: JobRecord
    handle: TaskHandle[object] | None = None
    lease_until: dt.datetime | None = None
    #: When it was claimed (trio time), for the prefetch's hold.
    claimed_at: float = 0.0
    #: Why the handler was cancelled, if it was: "cancel" (a request),
    #: "lease" (the lease was lost or about to expire), "stop" (shutdown).
    stop_reason: str | None = None


@attrs.define(eq=False)
class _Submit:
    """A submit waiting for its batch's commit; the committer reschedules it."""

    record: JobRecord
    task: trio.lowlevel.Task
    #: Whether the committer has taken it into a batch (it can't be withdrawn).
    taken: bool = False


@final
@attrs.frozen(kw_only=True)
class ManagerConfig:
    """The options of `open_job_manager`, checked (internal)."""

    #: Whether the manager was given a registry (submits are then checked).
    strict: bool
    worker: bool
    concurrency: int
    lease: float
    grace_period: float
    retry: RetryPolicy
    timeout: float | None
    retention: Retention | None
    poll_interval: float
    wall_clock: Callable[[], dt.datetime]
    name: str


@final
@attrs.define(eq=False, repr=False)
class JobManager:
    """Durable jobs: stored before they run, run at least once, survive crashes.

    Made by `open_job_manager`; the constructor is internal. Its methods are for
    the Trio thread; each is a checkpoint.
    """

    _store: JobStore
    _registry: Registry
    _scheduler: Scheduler
    _config: ManagerConfig
    _serializer: JsonSerializer = attrs.field(init=False, factory=JsonSerializer)
    _control: SequencedTaskRunner = attrs.field(init=False)
    _executor: ParallelTaskRunner | None = attrs.field(init=False, default=None)
    _wall0: dt.datetime = attrs.field(init=False)
    _trio0: float = attrs.field(init=False)
    _running: dict[str, _Running] = attrs.field(init=False, factory=dict[str, _Running])
    _submits: list[_Submit] = attrs.field(init=False, factory=list[_Submit])
    _submit_ready: trio.Event = attrs.field(init=False, factory=trio.Event)
    _epoch0: float = attrs.field(init=False)
    #: Set when the worker task has something to do (an end, a submit, ...).
    _work: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Ends waiting for the worker's next store call, and their jobs.
    _ends: list[JobEnd] = attrs.field(init=False, factory=list[JobEnd])
    _ending: dict[str, _Running] = attrs.field(init=False, factory=dict[str, _Running])
    #: Claimed jobs waiting for a free slot (the bounded prefetch).
    _ready: collections.deque[_Running] = attrs.field(
        init=False, factory=collections.deque[_Running]
    )
    _stopped: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Set (and replaced) after each store call of the worker.
    _round_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Whether to claim beyond the free slots (see `_capacity`).
    _prefetch: bool = attrs.field(init=False, default=True)
    _worker_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    _worker_scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    _stopping: bool = attrs.field(init=False, default=False)
    _idle: trio.Event | None = attrs.field(init=False, default=None)
    _commit_scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    _guard_scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    _changes: ChangeFeed = attrs.field(init=False)
    _committer_started: bool = attrs.field(init=False, default=False)
    _committer_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Set once the block has exited: every call then raises RunnerClosedError.
    _closed: bool = attrs.field(init=False, default=False)
    #: Failed store calls of the worker in a row (claims, completions).
    _store_failures: int = attrs.field(init=False, default=0)
    #: Schedules whose failure to fire is logged already (once each).
    _bad_schedules: set[str] = attrs.field(init=False, factory=set[str])

    def __repr__(self) -> str:
        return f"<JobManager {self._config.name!r} running={len(self._running)}>"

    @property
    def name(self) -> str:
        """This worker's name, stored in the ``worker`` field of its jobs."""
        return self._config.name

    @property
    def registry(self) -> Registry:
        """The registry of handlers this manager runs and checks submits against."""
        return self._registry

    @property
    def store(self) -> JobStore:
        """The store the manager uses."""
        return self._store

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler of the manager's runners (for metrics exporters)."""
        return self._scheduler

    @property
    def is_worker(self) -> bool:
        """Whether this manager claims and runs jobs (``worker=True``)."""
        return self._config.worker

    # ------------------------------------------------------------ change listeners

    def add_listener(self, listener: Callable[[JobInfo], object]) -> None:
        """Call ``listener(info)`` after each job state change this manager makes.

        ``info`` is the job as it is after the change: submitted, claimed,
        ended, retried, cancelled, or handed back after an expired lease.
        Changes made by other processes sharing the store are not seen.
        Listeners run on the Trio thread in the order of the changes and must
        not block; one that raises is logged and kept. Not a checkpoint.

        Raises:
            TypeError: if ``listener`` is not callable.
        """
        self._changes.add(listener)

    def remove_listener(self, listener: Callable[[JobInfo], object]) -> None:
        """Stop calling ``listener``; an unknown one is ignored. Not a checkpoint."""
        self._changes.remove(listener)

    def _check_open(self) -> None:
        if self._closed:
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
        return dt.datetime.fromtimestamp(
            self._epoch0 + (trio.current_time() - self._trio0), dt.UTC
        )

    def _seconds_until(self, when: dt.datetime) -> float:
        return (when - self.now()).total_seconds()

    # ------------------------------------------------------------ registry

    def handler(self, name: str) -> Callable[[AnyCallable], AnyCallable]:
        """Register a handler on the manager's registry (also while it runs).

        Same as ``manager.registry.handler(name)``.
        """
        return self._registry.handler(name)

    def _spec(self, handler: str) -> HandlerSpec | None:
        check_name("handler", handler)
        if self._config.strict or handler in self._registry:
            return self._registry.get(handler)
        return None

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
        record, json_args = self._new_record(
            job_id, handler, args, priority, run_at, delay, retry, timeout, self.now()
        )
        if if_exists not in ("error", "ignore"):
            raise ValueError(
                f"if_exists must be 'error' or 'ignore', not {if_exists!r}"
            )
        stored, inserted = await self._commit(record)
        if not inserted and if_exists == "error":
            raise JobExistsError(
                f"a job with id {job_id!r} exists already; pick another id, or pass "
                "if_exists='ignore' to get the existing job"
            )
        if not inserted:
            return stored.info()
        self._want_pump()
        # The arguments' JSON value is in hand: no need to parse them back.
        return stored.info(args=json_args)

    def _new_record(
        self,
        job_id: str,
        handler: str,
        args: object,
        priority: Priority,
        run_at: dt.datetime | None,
        delay: float | None,
        retry: RetryPolicy | None,
        timeout: float | None,
        now: dt.datetime,
    ) -> tuple[JobRecord, object]:
        check_name("job_id", job_id)
        spec = self._spec(handler)
        payload, json_args = self._serializer.dump_args_value(spec, args)
        if not isinstance(priority, Priority):
            raise TypeError(f"priority must be a Priority, not {priority!r}")
        due = self._due(run_at, delay, now)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {retry!r}")
        if timeout is not None:
            timeout = check_duration("timeout", timeout, allow_zero=False)
        policy = self._config.retry if retry is None else retry
        record = JobRecord(
            id=job_id,
            handler=handler,
            args=payload,
            state=JobState.PENDING,
            priority=int(priority),
            attempts=0,
            max_attempts=policy.max_attempts,
            created_at=now,
            run_at=due,
            timeout=timeout,
            retry=None if retry is None else RetrySpec.from_policy(retry).to_json(),
        )
        return record, json_args

    @staticmethod
    def _due(
        run_at: dt.datetime | None, delay: float | None, now: dt.datetime
    ) -> dt.datetime:
        if run_at is not None and delay is not None:
            raise ValueError("give run_at or delay, not both")
        if run_at is not None:
            if not isinstance(run_at, dt.datetime):
                raise TypeError(f"run_at must be a datetime, not {run_at!r}")
            if run_at.tzinfo is None:
                raise ValueError("run_at must be timezone-aware (e.g. datetime.UTC)")
            return run_at.astimezone(dt.UTC)
        if delay is not None:
            return _later(now, check_duration("delay", delay), "delay")
        return now

    async def _commit(self, record: JobRecord) -> tuple[JobRecord, bool]:
        if self._committer_done.is_set():
            # Only while the block exits: its caller is a task of its own.
            await trio.lowlevel.checkpoint()
            raise self._closing_error()
        submit = _Submit(record, trio.lowlevel.current_task())
        self._submits.append(submit)
        self._submit_ready.set()

        def abort(_: object) -> trio.lowlevel.Abort:
            # Not yet in a batch: withdraw it. In a batch being written: wait
            # for the commit (then the cancellation is delivered), so the
            # caller learns whether its job was stored.
            if submit.taken:
                return trio.lowlevel.Abort.FAILED
            self._submits.remove(submit)
            return trio.lowlevel.Abort.SUCCEEDED

        result: tuple[JobRecord, bool] = await trio.lowlevel.wait_task_rescheduled(
            abort
        )
        return result

    async def _group_commit(self) -> None:
        self._committer_started = True
        try:
            with self._commit_scope:
                await self._group_commit_loop()
        finally:
            # Whatever ended the committer, no submit waits for it forever.
            self._committer_done.set()
            waiting, self._submits = self._submits, []
            for submit in waiting:
                trio.lowlevel.reschedule(
                    submit.task, outcome.Error(self._closing_error())
                )

    def _closing_error(self) -> RunnerClosedError:
        return RunnerClosedError(
            f"{self!r} closed before this job was stored; open a new manager"
        )

    async def _group_commit_loop(self) -> None:
        # One store transaction per batch: the submits that came while the
        # previous batch was being written share the next commit. At exit
        # (``_closed``), the submits already made are written, then it ends.
        while True:
            if self._closed and not self._submits:
                return
            await self._submit_ready.wait()
            self._submit_ready = trio.Event()
            batch, self._submits = self._submits, []
            if not batch:
                continue  # every submit was withdrawn
            for submit in batch:
                submit.taken = True
            try:
                results = await self._store.insert([s.record for s in batch])
            except trio.Cancelled:
                # Closing, in the middle of a write: whether it committed is
                # unknown; say so to the waiting submitters.
                for submit in batch:
                    trio.lowlevel.reschedule(
                        submit.task,
                        outcome.Error(
                            RunnerClosedError(
                                f"{self!r} closed while job {submit.record.id!r} "
                                "was being stored; it may or may not be stored"
                            )
                        ),
                    )
                raise
            except Exception as error:
                if len(batch) == 1:
                    trio.lowlevel.reschedule(
                        batch[0].task, outcome.Error(_store_error(error))
                    )
                else:
                    await self._commit_one_by_one(batch, error)
                continue
            reschedule = trio.lowlevel.reschedule
            for submit, result in zip(batch, results, strict=True):
                if result[1]:  # inserted: published before anything can claim it
                    self._changes.publish_record(result[0])
                reschedule(submit.task, outcome.Value(result))

    async def _commit_one_by_one(self, batch: list[_Submit], error: Exception) -> None:
        """Insert the jobs of a failed batch alone: one bad job fails only itself.

        Two failures in a row mean the store itself fails (not one bad job):
        the rest of the batch then gets the batch's error at once, so that
        an unreachable store fails every submit within a bounded time.
        """
        failed_in_a_row = 0
        for index, submit in enumerate(batch):
            if failed_in_a_row >= 2:
                for rest in batch[index:]:
                    trio.lowlevel.reschedule(
                        rest.task, outcome.Error(_store_error(error))
                    )
                return
            try:
                (result,) = await self._store.insert([submit.record])
            except trio.Cancelled:
                for rest in batch[index:]:
                    trio.lowlevel.reschedule(
                        rest.task, outcome.Error(self._closing_error())
                    )
                raise
            except Exception as alone:
                failed_in_a_row += 1
                trio.lowlevel.reschedule(
                    submit.task, outcome.Error(_store_error(alone))
                )
            else:
                failed_in_a_row = 0
                if result[1]:
                    self._changes.publish_record(result[0])
                trio.lowlevel.reschedule(submit.task, outcome.Value(result))

    # ------------------------------------------------------------ inspecting

    async def get_job(self, job_id: str) -> JobInfo:
        """Return the job with that id.

        Raises:
            JobNotFoundError: if there is none.
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        check_name("job_id", job_id)
        record = await self._store.get(job_id)
        if record is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return record.info()

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
        records = await self._store.list(
            state=state, handler=handler, limit=count, offset=offset
        )
        return [record.info() for record in records]

    async def counts(self) -> JobCounts:
        """Return how many jobs the store holds in each state.

        Jobs whose stored state is not a `JobState` (corrupted, or written by
        a newer version) are in no state's count but in `JobCounts.unknown`.
        """
        self._check_open()
        counts = await self._store.counts()
        return counts if isinstance(counts, JobCounts) else JobCounts(counts)

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
        check_name("job_id", job_id)
        now = self.now()
        record = await self._store.request_cancel(job_id, now=now)
        if record is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        if record.state is JobState.CANCELLED and record.finished_at == now:
            self._changes.publish_record(record)  # it was pending: cancelled now
        running = self._running.get(job_id)
        if running is not None and record.state is JobState.RUNNING:
            self._stop(running, "cancel")
        elif record.state is JobState.RUNNING:
            record = await self._cancel_held(job_id, now) or record
        return record.info()

    async def _cancel_held(self, job_id: str, now: dt.datetime) -> JobRecord | None:
        """Cancel a job this worker holds but does not run; return it after."""
        if self._unready(job_id) is not None:
            # Claimed here (prefetched) but not started: it never starts.
            if await self._store.complete(
                job_id,
                worker=self._config.name,
                state=JobState.CANCELLED,
                finished_at=now,
            ):
                record = await self._store.get(job_id)
                if record is not None:
                    self._changes.publish_record(record)
                return record
        elif job_id in self._ending:
            # Its end is being stored (a release makes it CANCELLED): wait.
            with trio.move_on_after(self._config.lease):
                while job_id in self._ending:
                    await self._round_done.wait()
            return await self._store.get(job_id)
        return None

    async def retry_job(self, job_id: str) -> JobInfo:
        """Put a FAILED or CANCELLED job back to PENDING, with fresh attempts.

        Raises:
            JobNotFoundError: if there is no such job.
            JobStateError: if the job is in another state.
            RunnerClosedError: the manager's block has exited.
        """
        self._check_open()
        check_name("job_id", job_id)
        current = await self._store.get(job_id)
        if current is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        if current.state not in (JobState.FAILED, JobState.CANCELLED):
            raise JobStateError(
                f"job {job_id!r} is {current.state.value}; only failed or cancelled "
                "jobs can be retried"
            )
        record = await self._store.reset(job_id, now=self.now())
        if record is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        if record.state is not JobState.PENDING:
            raise JobStateError(
                f"job {job_id!r} changed state meanwhile; it is {record.state.value}"
            )
        self._changes.publish_record(record)
        self._want_pump()
        return record.info()

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
        check_name("job_id", job_id)
        if await self._store.delete(job_id):
            return
        record = await self._store.get(job_id)
        if record is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        raise JobStateError(
            f"job {job_id!r} is {record.state.value}; only finished (succeeded, "
            "failed, cancelled) or unreadable jobs can be deleted: cancel it first"
        )

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
        before = None
        if older_than is not None:
            before = _later(
                self.now(), -check_duration("older_than", older_than), "older_than"
            )
        wanted = None if states is None else _finished_states(states)
        return await self._store.purge(finished_before=before, states=wanted)

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
        check_name("name", name)
        if "@" in name:
            raise ValueError(f"a schedule's name cannot contain '@': {name!r}")
        if (cron is None) == (every is None):
            raise ValueError("give exactly one of cron= and every=")
        now = self.now()
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
            first = _later(now, period, "every")
        template, _ = self._new_record(
            f"{name}@", handler, args, priority, None, None, retry, timeout, now
        )
        await self._store.put_schedule(
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

    async def unschedule(self, name: str) -> bool:
        """Remove the schedule ``name``; return whether it existed."""
        self._check_open()
        check_name("name", name)
        return await self._store.delete_schedule(name)

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Return every stored schedule."""
        self._check_open()
        return await self._store.list_schedules()

    async def _fire_schedules(self) -> None:
        now = self.now()
        try:
            schedules = await self._store.list_schedules()
        except Exception as error:  # the next look is a second away
            self._schedule_failed("<every schedule>", error)
            return
        fired = False
        for schedule in schedules:
            if schedule.next_run_at > now:
                continue
            if schedule.handler not in self._registry:
                continue  # a worker that knows the handler will run it
            try:
                fired = await self._fire(schedule, now) or fired
            except Exception as error:  # the others still fire
                self._schedule_failed(schedule.name, error)
            else:
                self._bad_schedules.discard(schedule.name)
        if fired:
            self._want_pump()  # only then: poll_interval rules the idle polling

    async def _fire(self, schedule: ScheduleRecord, now: dt.datetime) -> bool:
        """Insert the job of the schedule's due tick and advance it; True if new."""
        tick = schedule.next_run_at
        next_run_at = _next_tick(schedule, now)
        policy = (
            self._config.retry
            if schedule.retry is None
            else _policy_from_spec(RetrySpec.from_json(schedule.retry))
        )
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
        ((_, inserted),) = await self._store.insert([job])
        await self._store.advance_schedule(
            schedule.name, expected=tick, next_run_at=next_run_at
        )
        return inserted

    def _schedule_failed(self, name: str, error: Exception) -> None:
        """Log a schedule that cannot fire: once, until it fires again."""
        if name in self._bad_schedules:
            logger.debug("schedule %r cannot fire: %r", name, error)
            return
        self._bad_schedules.add(name)
        logger.warning(
            "schedule %r cannot fire (logged once; retried every %s s): %r",
            name,
            SCHEDULE_INTERVAL,
            error,
            exc_info=error,
        )

    # ------------------------------------------------------------ running jobs
    #
    # One worker task (`_work`) makes every store call of the hot path: each
    # round is one `JobStore.complete_and_claim`, which commits the ends of
    # all the attempts that finished since the previous round (a grouped
    # completion: one transaction, one disk flush) and claims the next jobs in
    # the same transaction. Claimed jobs wait in `_ready` (a prefetch bounded
    # by `concurrency`) and start at once when a slot frees, without waiting
    # for the store; one not started within `PREFETCH_HOLD` seconds is handed
    # back. Ends are built on the Trio thread when a handler ends (its task's
    # done callback) and committed by the next round: a job is SUCCEEDED in the
    # store only once that commit returns, and a crash before it runs the job
    # again (at least once). Idle, the worker waits on the store's watcher (a
    # wake-up as soon as a job becomes PENDING), its own submits, or the next
    # due time, never longer than `poll_interval`.

    def _want_pump(self) -> None:
        """Wake the worker task: work may have arrived or ended. Not a checkpoint."""
        self._work.set()

    async def _worker(self) -> None:
        try:
            with self._worker_scope:
                await self._worker_body()
        finally:
            self._worker_done.set()

    async def _worker_body(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, name="jobs-watch")
            await self._work_rounds()
            nursery.cancel_scope.cancel()

    async def _watch(self) -> None:
        """Turn the store's wake-ups into wake-ups of the worker, for ever."""
        while True:
            try:
                async with self._store.watch(handlers=None) as watcher:
                    while True:
                        if await watcher.wait(_WATCH_WAIT):
                            self._work.set()
            except Exception as error:  # polling still finds the jobs
                logger.debug("the store's wake-ups failed: %r", error)
            await trio.sleep(self._config.poll_interval)

    def _capacity(self) -> int:
        """Jobs to claim now: free slots plus the free part of the prefetch.

        No prefetch after prefetched jobs were handed back unstarted, until a
        slot frees: the worker is busy with long jobs, and others may run them.
        """
        config = self._config
        prefetch = config.concurrency if self._prefetch else 0
        return config.concurrency + prefetch - len(self._running) - len(self._ready)

    def _take_ends(self) -> list[JobEnd]:
        """The ends to commit now, with the prefetched jobs to hand back."""
        ends, self._ends = self._ends, []
        ready = self._ready
        clock = trio.current_time()
        # The same comparison as `_rest`'s deadline (`claimed_at + PREFETCH_HOLD`):
        # `claimed_at <= clock - PREFETCH_HOLD` can round the other way, and
        # then `_rest` returns at once while nothing is handed back: a spin.
        if ready and (self._stopping or ready[0].claimed_at + PREFETCH_HOLD <= clock):
            now = self.now()
            self._prefetch = False
            while ready and (
                self._stopping or ready[0].claimed_at + PREFETCH_HOLD <= clock
            ):
                running = ready.popleft()
                self._ending[running.record.id] = running
                ends.append(JobEnd.released(running.record.id, at=now))
        return ends

    async def _work_rounds(self) -> None:
        config = self._config
        store = self._store
        while True:
            self._work = trio.Event()
            ends = self._take_ends()
            want = 0 if self._stopping else self._capacity()
            handlers = self._handler_names() if want > 0 else frozenset[str]()
            if not handlers:
                want = 0
            if not ends and want <= 0:
                if self._stopping and not self._running and not self._ending:
                    return
                await self._rest(config.poll_interval if not handlers else None)
                continue
            now = self.now()
            lease_until = now + dt.timedelta(seconds=config.lease)
            try:
                result = await store.complete_and_claim(
                    ends,
                    worker=config.name,
                    handlers=handlers,
                    now=now,
                    lease_until=lease_until,
                    limit=want,
                )
            except Exception as error:  # never stop: try again after a backoff
                self._rounded()
                self._ends[:0] = ends
                self._store_failed(
                    "claim jobs (and store the ends of finished ones)", error
                )
                if self._stopping and self._store_failures > _STOP_TRIES:
                    self._give_up_ends()
                    return
                with trio.move_on_after(self._store_backoff()):
                    await self._stopped.wait()
                continue
            self._store_answered()
            self._ended(ends, result.ended)
            self._rounded()
            claimed = result.claimed
            if claimed:
                ready = self._ready
                at = trio.current_time()
                for record in claimed:
                    self._changes.publish_record(record)
                    ready.append(
                        _Running(record, lease_until=lease_until, claimed_at=at)
                    )
                self._start_ready()
            if self._ends or self._stopping or (claimed and len(claimed) == want):
                # More ends to commit, maybe more jobs due, or a stop: the
                # round may have committed the last end, and the top of the
                # loop then returns (a stop's wake-up may have come before
                # this round began, so resting would wait for nothing).
                continue
            if want > 0 and not claimed:
                await self._rest(await self._idle_wait(handlers, now))
            else:
                await self._rest(None)

    async def _idle_wait(self, handlers: frozenset[str], now: dt.datetime) -> float:
        """Seconds to wait when nothing was due: until the next due job, or a poll."""
        try:
            due = await self._store.next_due(handlers=handlers)
        except Exception as error:
            self._store_failed("find the next due job", error)
            return self._store_backoff()
        wait = self._config.poll_interval
        if due is not None and due > now:
            wait = min(wait, max(0.0, self._seconds_until(due)))
        # Else a job due now was not claimed (a row the store cannot hand out,
        # or a race with another worker): wait for the next poll, never spin.
        return wait

    async def _rest(self, timeout: float | None) -> None:  # noqa: ASYNC109  # internal
        """Wait for work (an end, a submit, a wake-up), or ``timeout`` seconds."""
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        if self._ready:
            # A prefetched job not started in time is handed back. An absolute
            # deadline: `_take_ends` then sees it passed (a relative one can
            # round to no wait at all, and spin).
            deadline = min(deadline, self._ready[0].claimed_at + PREFETCH_HOLD)
        with trio.move_on_at(deadline):
            await self._work.wait()

    def _rounded(self) -> None:
        self._round_done.set()
        self._round_done = trio.Event()

    def _ended(self, ends: list[JobEnd], applied: tuple[bool, ...]) -> None:
        """Forget the jobs whose ends are committed."""
        for end, done in zip(ends, applied, strict=True):
            self._ending.pop(end.job_id, None)
            if not done:
                logger.info(
                    "job %r: its end was not stored, its lease was lost", end.job_id
                )
            self._changes.publish_later(end.job_id)
        if self._idle is not None and not self._running:
            self._idle.set()

    def _give_up_ends(self) -> None:
        """At exit, with the store failing: the ends not stored run again later."""
        for end in self._ends:
            logger.warning(
                "job %r ended, but its end could not be stored before the exit; "
                "it runs again once its lease expires",
                end.job_id,
            )
        self._ends = []
        self._ending.clear()

    def _store_failed(self, what: str, error: Exception) -> None:
        """Log a failed store call of the worker (the first one of a series)."""
        self._store_failures += 1
        failures = self._store_failures
        if failures == 1:
            logger.warning(
                "could not %s; trying again with backoff: %r",
                what,
                error,
                exc_info=error,
            )
        else:
            logger.debug("could not %s (%d failures in a row)", what, failures)

    def _store_backoff(self) -> float:
        """Seconds until the next try: doubles per failure in a row, capped."""
        exponent = min(self._store_failures - 1, 32)  # 2**32 * 0.1 s: far past the cap
        return min(STORE_RETRY_MAX, STORE_RETRY_INITIAL * 2.0**exponent)

    def _store_answered(self) -> None:
        if self._store_failures:
            logger.warning(
                "the store answers again after %d failed calls; resuming",
                self._store_failures,
            )
            self._store_failures = 0

    def _handler_names(self) -> frozenset[str]:
        return frozenset(self._registry.names())

    def _start_ready(self) -> None:
        """Start prefetched jobs while slots are free. Not a checkpoint."""
        ready = self._ready
        limit = self._config.concurrency
        while ready and len(self._running) < limit and not self._stopping:
            self._start(ready.popleft())

    def _start(self, running: _Running) -> None:
        record = running.record
        executor = self._executor
        assert executor is not None
        try:
            spec = self._registry.get(record.handler)
            call, args = self._serializer.prepare_call(spec, record)
        except Exception as error:
            # An undecodable payload fails its own job, never the others.
            self._end(running, self._failure(record, error, self.now()))
            return
        self._running[record.id] = running
        timeout = self._config.timeout if record.timeout is None else record.timeout
        traits = None if spec.is_async else _BLOCKING
        handle = executor.post_task(
            call, *args, name=record.id, timeout=timeout, traits=traits
        )
        running.handle = handle
        handle.add_done_callback(lambda _: self._done(running))

    def _done(self, running: _Running) -> None:
        """A handler ended (on the Trio thread): queue its end, start the next."""
        record = running.record
        self._running.pop(record.id, None)
        self._prefetch = True
        handle = running.handle
        assert handle is not None
        now = self.now()
        end: JobEnd | None
        state = handle.state
        if state is TaskState.SUCCEEDED:
            # Recorded even if a stop came too late to cancel it; a lost
            # lease makes the store refuse it, as it should.
            outcome = handle.outcome
            assert outcome is not None
            try:
                result = self._serializer.dump_result(outcome.unwrap())
            except SerializationError as error:
                end = self._failure(record, error, now)
            else:
                end = JobEnd.finished(
                    record.id, JobState.SUCCEEDED, at=now, result=result
                )
        elif state is not TaskState.CANCELLED:
            end = self._failed(record, handle._exception(), now)
        elif running.stop_reason == "stop":
            end = JobEnd.released(record.id, at=now)
        elif running.stop_reason != "lease":
            end = JobEnd.finished(record.id, JobState.CANCELLED, at=now)
        else:
            end = None  # a lost lease: another worker may hold the job
        if end is None:
            self._changes.publish_later(record.id)
        else:
            self._end(running, end)
        if self._idle is not None and not self._running:
            self._idle.set()
        self._start_ready()

    def _end(self, running: _Running, end: JobEnd) -> None:
        self._ending[running.record.id] = running
        self._ends.append(end)
        self._work.set()

    def _failed(
        self, record: JobRecord, error: BaseException, now: dt.datetime
    ) -> JobEnd:
        if isinstance(error, TaskTimeoutError):
            # Each attempt is a task of its own, so the runner's message says
            # "attempt 1 of task ...": say which attempt of the job it was.
            timeout = self._config.timeout if record.timeout is None else record.timeout
            error.args = (
                f"attempt {record.attempts} of {record.max_attempts} of job "
                f"{record.id!r} ran past its timeout of {timeout} s",
            )
        try:
            run_at = self._retry_at(record, error, now)
        except Exception as ours:  # a bad stored policy: the job fails with it
            ours.__context__ = error
            return self._failure(record, ours, now)
        if run_at is None:
            return self._failure(record, error, now)
        return JobEnd.retry(record.id, run_at=run_at, error=_error_text(error), at=now)

    def _retry_at(
        self, record: JobRecord, error: BaseException, now: dt.datetime
    ) -> dt.datetime | None:
        """When the failed attempt's job runs again, or None if it does not."""
        policy = (
            self._config.retry
            if record.retry is None
            else _policy_from_spec(RetrySpec.from_json(record.retry))
        )
        retried = isinstance(error, (Retry, *policy.retry_on))
        if not retried or record.attempts >= record.max_attempts:
            return None
        delay = (
            error.delay
            if isinstance(error, Retry) and error.delay is not None
            else None
        )
        # The policy caps its backoff at max_delay, whatever the attempt.
        wait = policy.backoff(record.attempts) if delay is None else delay
        return _later(now, wait, "the retry's backoff")

    @staticmethod
    def _failure(record: JobRecord, error: BaseException, now: dt.datetime) -> JobEnd:
        """A job's final failure, with the error's traceback as text."""
        return JobEnd.finished(
            record.id, JobState.FAILED, at=now, error=_error_text(error)
        )

    def _stop(self, running: _Running, reason: str) -> None:
        if running.stop_reason is None:
            running.stop_reason = reason
        if running.handle is not None:
            running.handle.cancel()

    async def _guard_leases(self) -> None:
        """Cancel a handler whose lease is about to end without a renewal.

        Renewals run on the control sequence, behind other store calls: while
        the store hangs (a network cut), each of those waits out its timeout,
        and a renewal may come too late to stop a handler in time. This task
        needs no store: it stops a handler once less than a sixth of its lease
        remains (a renewal every third keeps two thirds), so no handler
        outlives its lease however slow the store is.
        """
        lease = self._config.lease
        margin = dt.timedelta(seconds=lease / 6)
        with self._guard_scope:
            while True:
                await trio.sleep(lease / 12)
                now = self.now()
                for running in list(self._running.values()):
                    until = running.lease_until
                    if until is not None and until - margin <= now:
                        self._stop(running, "lease")

    def _unready(self, job_id: str) -> _Running | None:
        """Take a prefetched job out of the queue (to end it otherwise)."""
        for running in self._ready:
            if running.record.id == job_id:
                self._ready.remove(running)
                return running
        return None

    async def _renew(self) -> None:
        held_here = [*self._running, *(r.record.id for r in self._ready), *self._ending]
        if not held_here:
            return
        now = self.now()
        lease_until = now + dt.timedelta(seconds=self._config.lease)
        try:
            result = await self._store.renew(
                worker=self._config.name,
                job_ids=held_here,
                lease_until=lease_until,
            )
        except Exception:
            logger.exception("could not renew the leases of %d jobs", len(held_here))
            # A handler must not outlive its lease: stop those that would.
            margin = dt.timedelta(seconds=self._config.lease / 3)
            for running in list(self._running.values()):
                if running.lease_until is None or running.lease_until - margin <= now:
                    self._stop(running, "lease")
            return
        # Only the jobs asked about: the worker may claim others meanwhile.
        asked = set(held_here)
        for job_id, running in list(self._running.items()):
            if job_id not in asked:
                continue
            if job_id not in result.held:
                self._stop(running, "lease")
            elif job_id in result.cancel_requested:
                self._stop(running, "cancel")
            else:
                running.lease_until = lease_until
        for running in list(self._ready):
            job_id = running.record.id
            if job_id not in asked:
                continue
            if job_id not in result.held:
                self._ready.remove(running)
            elif job_id in result.cancel_requested:
                self._ready.remove(running)
                self._end(running, JobEnd.finished(job_id, JobState.CANCELLED, at=now))
            else:
                running.lease_until = lease_until

    async def _expire(self) -> None:
        try:
            expired = await self._store.expire_leases(now=self.now())
        except StoreError:
            logger.exception("could not take back expired leases")
            return
        for record in expired:
            self._changes.publish_record(record)
        if expired:
            logger.info("took back %d jobs whose lease expired", len(expired))
            self._want_pump()

    async def _retain(self) -> None:
        retention = self._config.retention
        assert retention is not None
        before = None
        if retention.ttl is not None:
            before = self.now() - dt.timedelta(seconds=retention.ttl)
        try:
            await self._store.purge(
                finished_before=before, keep_latest=retention.max_entries
            )
        except StoreError:
            logger.exception("retention could not delete finished jobs")

    # ------------------------------------------------------------ lifecycle

    @property
    def running(self) -> int:
        """How many jobs this worker runs now."""
        return len(self._running)

    def shutdown(self) -> None:
        """Stop this worker at once: claim nothing more, cancel running handlers.

        The cancelled jobs are handed back (PENDING, lease cleared, the attempt
        not counted) for this or another worker to run again; a handler that
        runs in a thread cannot be interrupted, and its end is recorded when it
        comes. Leaving the manager's block afterwards does not wait out the
        grace period. Not a checkpoint; idempotent.
        """
        self._stopping = True
        self._stopped.set()
        self._work.set()
        for running in list(self._running.values()):
            self._stop(running, "stop")

    async def _start_worker(self) -> None:
        control = self._control
        period = self._config.lease / 3
        control.post_repeating_task(self._renew, interval=period, initial_delay=period)
        control.post_repeating_task(self._expire, interval=period)
        control.post_repeating_task(self._fire_schedules, interval=SCHEDULE_INTERVAL)
        if self._config.retention is not None:
            ttl = self._config.retention.ttl
            every = min(60.0, ttl / 4) if ttl is not None else 10.0
            control.post_repeating_task(self._retain, interval=max(every, 0.1))
        self._scheduler._nursery.start_soon(self._worker, name="jobs-worker")
        await trio.lowlevel.checkpoint()

    async def _close(self) -> None:
        """Refuse every call from now on; write the submits already made first."""
        self._closed = True
        if self._committer_started:
            self._submit_ready.set()  # the committer sees _closed, flushes, ends
            with trio.move_on_after(_CLOSE_FLUSH_TIMEOUT):
                await self._committer_done.wait()
        self._commit_scope.cancel()
        self._guard_scope.cancel()

    async def _drain(self) -> None:
        """Stop claiming; give running jobs the grace period; hand back the rest.

        Then the worker stores the last ends (and hands back the prefetched
        jobs) and stops.
        """
        self._stopping = True
        self._stopped.set()
        self._work.set()
        if self._running:
            self._idle = trio.Event()
            if self._running:
                with trio.move_on_after(self._config.grace_period):
                    await self._idle.wait()
            for running in list(self._running.values()):
                self._stop(running, "stop")
            if self._running:
                with trio.move_on_after(self._config.grace_period + 5):
                    await self._idle.wait()
        if self._executor is not None:
            self._work.set()
            with trio.move_on_after(_CLOSE_FLUSH_TIMEOUT):
                await self._worker_done.wait()
        # Whatever it waits for, the worker ends with the block.
        self._worker_scope.cancel()


def _later(when: dt.datetime, seconds: float, what: str) -> dt.datetime:
    try:
        return when + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"{what}={abs(seconds)!r} s is beyond the dates a store can hold"
        ) from None


def _finished_states(states: object) -> frozenset[JobState]:
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


def _store_error(error: Exception) -> StoreError:
    """The `StoreError` a caller gets for ``error``, raised by a store call."""
    if isinstance(error, StoreError):
        return error
    failure = StoreError(f"the store failed: {error!r}")
    failure.__cause__ = error
    return failure


def _policy_from_spec(spec: RetrySpec) -> RetryPolicy:
    retry_on: list[type[BaseException]] = []
    for name in spec.retry_on:
        module, _, qualname = name.rpartition(".")
        try:
            obj: object = __import__(module, fromlist=[qualname])
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            logger.warning(
                "retry_on class %r cannot be imported; using Exception", name
            )
            obj = Exception
        if isinstance(obj, type) and issubclass(obj, BaseException):
            retry_on.append(obj)
    return RetryPolicy(
        max_attempts=spec.max_attempts,
        initial_delay=spec.initial_delay,
        multiplier=spec.multiplier,
        max_delay=spec.max_delay,
        jitter=spec.jitter,
        retry_on=tuple(retry_on) or (Exception,),
    )


def _next_tick(schedule: ScheduleRecord, now: dt.datetime) -> dt.datetime:
    """The schedule's first tick after ``now``: missed ticks collapse into one run."""
    if schedule.cron is not None:
        return CronExpression.parse(schedule.cron).next_after(now)
    assert schedule.every is not None
    period = dt.timedelta(seconds=schedule.every)
    missed = math.floor((now - schedule.next_run_at) / period) + 1
    return schedule.next_run_at + missed * period


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
        name=name or _default_worker_name(),
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
    async with open_scheduler() as scheduler:
        wall_clock = config.wall_clock
        manager = JobManager(
            store, registry if registry is not None else Registry(), scheduler, config
        )
        manager._wall0 = wall_clock()
        manager._epoch0 = manager._wall0.timestamp()
        manager._trio0 = trio.current_time()
        manager._changes = ChangeFeed(store, scheduler)
        await store.connect()
        try:
            manager._control = scheduler.create_sequenced_runner(name="jobs-control")
            scheduler._nursery.start_soon(
                manager._group_commit, name="jobs-group-commit"
            )
            if config.worker:
                manager._executor = scheduler.create_parallel_runner(
                    max_concurrency=config.concurrency,
                    name="jobs-executor",
                    on_error=_quiet,
                )
                await manager._start_worker()
                scheduler._nursery.start_soon(
                    manager._guard_leases, name="jobs-lease-guard"
                )
            try:
                yield manager
            finally:
                with trio.CancelScope(shield=True):
                    await manager._drain()
                    manager._control.shutdown()
                    if manager._executor is not None:
                        manager._executor.shutdown()
        finally:
            with trio.CancelScope(shield=True):
                await manager._close()
            with trio.CancelScope(shield=True), trio.move_on_after(30):
                await store.disconnect()


def _quiet(handle: TaskHandle[object], error: BaseException) -> None:
    # A job's failure is recorded in the store (and retried); log it at debug.
    del error
    logger.debug("job %r attempt failed", handle.name, exc_info=True)
