"""SQLiteJobStore: jobs in one SQLite file, on a thread of their own.

The store is the async front: it checks arguments, runs each call on its
thread runner and wakes the watchers. Below it, `Database` (``_sqlite_db``)
holds the connection and the SQL, ``_sqlite_codec`` maps rows and records, and
``_sqlite_schema`` sets the file up.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING, Final, TypeVar, TypeVarTuple, final

import attrs
import trio

from .._context import current_scheduler
from .._errors import NoCurrentSchedulerError, RunnerClosedError
from .._util import check_duration
from ._errors import StoreError
from ._job import (
    FINISHED_STATES,
    JobCounts,
    JobRecord,
    JobState,
    ScheduleRecord,
    check_finished_state,
)
from ._sqlite_db import Database
from ._store import CompleteResult, RenewResult
from ._wakeup import Wakeups, shared_wakeups

if TYPE_CHECKING:
    import builtins
    import datetime as dt
    from collections.abc import (
        AsyncGenerator,
        Awaitable,
        Callable,
        Collection,
        Sequence,
    )

    from .._handle import TaskHandle
    from .._thread import SingleThreadTaskRunner
    from ._store import ChangeWatcher, JobEnd, WorkWatcher

T = TypeVar("T")
ArgsT = TypeVarTuple("ArgsT")


def _check_bound(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _quiet(handle: TaskHandle[object], error: BaseException) -> None:
    del handle, error


def _names(handlers: Collection[str] | None) -> tuple[str, ...] | None:
    return None if handlers is None else tuple(dict.fromkeys(handlers))


#: Rows a change watcher reads at most per look.
_CHANGES_READ: Final = 500


@final
class _ChangeWatcher:
    """Polls a `SQLiteJobStore` for other writers' changes (a `ChangeWatcher`)."""

    __slots__ = ("_last", "_poll", "_read")

    def __init__(
        self,
        read: Callable[
            [tuple[int, int]],
            Awaitable[tuple[tuple[int, int], builtins.list[JobRecord]]],
        ],
        last: tuple[int, int],
        poll_interval: float,
    ) -> None:
        self._read = read
        self._last = last
        self._poll = poll_interval

    async def changes(self, timeout: float) -> builtins.list[JobRecord]:  # noqa: ASYNC109  # the protocol's
        """Read the jobs changed since the last look, polling until ``timeout``."""
        deadline = trio.current_time() + check_duration("timeout", timeout)
        while True:
            before = self._last
            self._last, records = await self._read(before)
            if records:
                return records
            if self._last != before:
                continue  # only this store's own changes: there may be more
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                return []
            await trio.sleep(min(self._poll, remaining))


@final
@attrs.define(eq=False, repr=False, init=False)
class SQLiteJobStore:
    """A `JobStore` in one SQLite file: the embedded, durable default.

    The file is in WAL mode with ``synchronous=FULL``: a method returns once
    its transaction is committed and on disk. Several store objects, in one
    process or several, may share the file: each write takes SQLite's write
    lock first (``BEGIN IMMEDIATE``), waiting up to ``busy_timeout`` seconds
    for it, so that claims never overlap. `insert` writes a whole batch in one
    transaction: one disk flush for many jobs (group commit).

    The connection lives on its own `SingleThreadTaskRunner`, made on the
    current scheduler by `connect`, so the SQL never blocks the trio thread.
    Each method is a checkpoint; a call cancelled once its SQL has started on
    the thread waits for it to end (it then took effect). One store object
    serves one manager at a time; concurrent managers on the same file each
    use their own store object.

    Times are stored as epoch seconds (UTC, microsecond precision until 2106)
    and read back as timezone-aware UTC datetimes. Claims, lease expiry,
    `next_due` and purges use indexes; `counts` and `list` by state scan the
    table.

    A row that cannot be read (corrupted outside trunner) never stops the
    others: `get`, `request_cancel` and `reset` of that job raise
    `SerializationError` (changing nothing), and so does an `insert` batch
    with its id (inserting nothing); `list`, `claim` and `expire_leases` leave
    it out of their results, logging it once to the ``trunner.jobs`` logger; a
    claim that meets a corrupted due job makes it FAILED, with the reason as
    its error, and takes the next jobs instead; `next_due`
    ignores a ``run_at`` that is not a number; `counts` counts a row whose
    state is not a `JobState` as unknown; `list_schedules` leaves out a
    corrupted schedule.

    Args:
        path: the database file, made (with its tables) on first connection.
        busy_timeout: seconds to wait for another connection's lock before
            failing with `StoreError`.

    Raises:
        ValueError: for ``":memory:"`` or an empty path (an in-memory database
            cannot be shared nor outlive its connection; use `MemoryJobStore`),
            or a negative ``busy_timeout``.
        TypeError: if ``busy_timeout`` is not a number.
    """

    _path: str
    _busy_timeout: float
    _runner: SingleThreadTaskRunner | None
    _db: Database | None
    _lock: trio.Lock
    _wakeups: Wakeups

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0
    ) -> None:
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file::memory:"):
            raise ValueError(
                f"SQLiteJobStore needs a file, not {text!r}: an in-memory "
                "database cannot be shared nor outlive its connection; use "
                "MemoryJobStore (open_store('memory://')) instead"
            )
        self._path = text
        self._busy_timeout = check_duration("busy_timeout", busy_timeout)
        self._runner = None
        self._db = None
        self._lock = trio.Lock()
        # Shared with every store object on the same file in this process.
        self._wakeups = shared_wakeups(os.path.realpath(text))

    def __repr__(self) -> str:
        state = "connected" if self._runner is not None else "not connected"
        return f"<SQLiteJobStore {self._path!r} {state}>"

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    def _not_connected(self) -> StoreError:
        return StoreError(
            f"{self!r}: connect it first with 'await store.connect()' "
            "(a JobManager connects its store on entry)"
        )

    async def _nothing(self) -> None:
        """Checkpoint for a call with nothing to do (if the store is connected)."""
        await trio.lowlevel.checkpoint()
        if self._runner is None:
            raise self._not_connected()

    async def _run(self, fn: Callable[[Database, *ArgsT], T], *args: *ArgsT) -> T:
        """Run ``fn(database, *args)`` on the store's thread."""
        runner, db = self._runner, self._db
        if runner is None or db is None:
            await trio.lowlevel.checkpoint()
            raise self._not_connected()
        try:
            return await runner.run(fn, db, *args)
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self._path!r}: {error}") from error
        except RunnerClosedError as error:
            raise StoreError(
                f"{self!r}: its thread runner closed with its scheduler; "
                "connect the store again inside an open scheduler"
            ) from error

    # ------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Open the file (making it and its tables if needed). Idempotent.

        Must run inside an open scheduler: the connection's thread runner is
        made on `trunner.current_scheduler`, and closes at the latest with it.

        Raises:
            NoCurrentSchedulerError: outside any scheduler.
            StoreError: if the file cannot be opened or set up.
        """
        async with self._lock:
            if self._runner is not None:
                return
            try:
                scheduler = current_scheduler()
            except NoCurrentSchedulerError:
                raise NoCurrentSchedulerError(
                    "SQLiteJobStore.connect() needs an open scheduler, for the "
                    "thread its connection lives on; connect the store inside "
                    "'async with trunner.open_scheduler():' (open_job_manager "
                    "opens one)"
                ) from None
            # Errors reach the awaiting caller: the runner need not log them.
            runner = scheduler.create_thread_runner(
                name=f"sqlite:{self._path}", on_error=_quiet
            )
            try:
                self._db = await runner.run(
                    Database.open, self._path, self._busy_timeout
                )
            except BaseException as error:
                runner.shutdown()
                with trio.CancelScope(shield=True):
                    await runner.aclose()
                if isinstance(error, sqlite3.Error):
                    raise StoreError(
                        f"SQLite store {self._path!r} cannot be opened: {error}"
                    ) from error
                raise
            self._runner = runner

    async def disconnect(self) -> None:
        """Close the connection and its thread. Idempotent; connect again later."""
        async with self._lock:
            runner, db = self._runner, self._db
            if runner is None or db is None:
                return
            self._runner = self._db = None
            try:
                await runner.run(db.close)
            except RunnerClosedError:
                pass  # closed with its scheduler; the connection goes with it
            except sqlite3.Error as error:
                raise StoreError(f"SQLite store {self._path!r}: {error}") from error
            finally:
                with trio.CancelScope(shield=True):
                    await runner.aclose()

    # ------------------------------------------------------------ jobs

    async def insert(
        self, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        """Insert ``jobs`` in one transaction; see `JobStore.insert`."""
        if not jobs:
            await self._nothing()
            return []
        stored = await self._run(Database.insert, jobs)
        wakeups = self._wakeups
        if wakeups and any(inserted for _, inserted in stored):
            wakeups.notify()
        return stored

    async def get(self, job_id: str) -> JobRecord | None:
        """Return the job with that id, or None.

        Raises:
            SerializationError: if its row is corrupted.
        """
        return await self._run(Database.get, job_id)

    async def list(
        self,
        *,
        state: JobState | None = None,
        handler: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[JobRecord]:
        """Return jobs, newest (highest ``seq``) first, optionally filtered."""
        _check_bound("limit", limit)
        _check_bound("offset", offset)
        return await self._run(Database.list, state, handler, limit, offset)

    async def counts(self) -> JobCounts:
        """Return how many jobs there are in each state (every state present)."""
        return await self._run(Database.counts)

    async def claim(
        self,
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        """Take up to ``limit`` due jobs for ``worker``; see `JobStore.claim`."""
        names = _names(handlers)
        if limit <= 0 or names == ():
            await self._nothing()
            return []
        return await self._run(Database.claim, worker, names, now, lease_until, limit)

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
        """End ``ends``, then claim, in one transaction (see `JobStore`)."""
        names = _names(handlers)
        if not ends and (limit <= 0 or names == ()):
            await self._nothing()
            return CompleteResult((), ())
        ended, claimed = await self._run(
            Database.complete_and_claim, ends, worker, names, now, lease_until, limit
        )
        if self._wakeups and any(
            done and end.state is JobState.PENDING
            for done, end in zip(ended, ends, strict=True)
        ):
            self._wakeups.notify()
        return CompleteResult(ended, tuple(claimed))

    @contextlib.asynccontextmanager
    async def watch(
        self, *, handlers: Collection[str] | None
    ) -> AsyncGenerator[WorkWatcher]:
        """Subscribe to wake-ups; see `JobStore.watch`.

        Every store object on the same file in this process wakes the
        watcher when one of its calls makes a job PENDING, whatever the
        handler; jobs submitted by other processes are found by polling.
        """
        del handlers
        async with self._wakeups.watch() as watcher:
            yield watcher

    @contextlib.asynccontextmanager
    async def watch_changes(
        self, *, poll_interval: float
    ) -> AsyncGenerator[ChangeWatcher]:
        """Follow other writers' job changes; see `ChangeSource.watch_changes`.

        SQLite tells no one of a change: every write that changes jobs' states
        stamps them with the next change number (``change_seq``, indexed),
        and the watcher reads the jobs inserted after the last ``seq`` it saw
        and those stamped after the last number it saw, every
        ``poll_interval`` seconds, leaving out this store object's own
        writes. A change is seen within ``poll_interval``, from any process.

        Raises:
            StoreError: if the store is not connected.
        """
        poll = check_duration("poll_interval", poll_interval, allow_zero=False)
        last = await self._run(Database.follow)
        try:
            yield _ChangeWatcher(self._read_changes, last, poll)
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(StoreError):
                await self._run(Database.unfollow)

    async def _read_changes(
        self, last: tuple[int, int]
    ) -> tuple[tuple[int, int], builtins.list[JobRecord]]:
        return await self._run(Database.changes_since, last, _CHANGES_READ)

    async def next_due(self, *, handlers: Collection[str] | None) -> dt.datetime | None:
        """Return the earliest ``run_at`` among PENDING jobs of ``handlers``."""
        names = _names(handlers)
        if names == ():
            await self._nothing()
            return None
        return await self._run(Database.next_due, names)

    async def renew(
        self, *, worker: str, job_ids: Collection[str], lease_until: dt.datetime
    ) -> RenewResult:
        """Extend the leases of ``job_ids`` that ``worker`` still holds."""
        ids = tuple(dict.fromkeys(job_ids))
        if not ids:
            await self._nothing()
            return RenewResult(held=frozenset(), cancel_requested=frozenset())
        return await self._run(Database.renew, worker, ids, lease_until)

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
        """End a job that ``worker`` holds; see `JobStore.complete`.

        Raises:
            ValueError: if ``state`` is not a finished state.
        """
        check_finished_state(state)
        return await self._run(
            Database.complete, job_id, worker, state, finished_at, result, error
        )

    async def requeue(
        self,
        job_id: str,
        *,
        worker: str,
        run_at: dt.datetime,
        error: str | None,
        now: dt.datetime,
    ) -> bool:
        """Make a held job PENDING again, due at ``run_at``; the attempt counts."""
        held = await self._run(Database.requeue, job_id, worker, run_at, error, now)
        if held:
            self._wakeups.notify()
        return held

    async def release(self, job_id: str, *, worker: str, now: dt.datetime) -> bool:
        """Hand a held job back, PENDING; the attempt does not count."""
        held = await self._run(Database.release, job_id, worker, now)
        if held:
            self._wakeups.notify()
        return held

    async def expire_leases(self, *, now: dt.datetime) -> builtins.list[JobRecord]:
        """Take back RUNNING jobs whose lease ended before ``now``, by ``seq``."""
        expired = await self._run(Database.expire_leases, now)
        if any(job.state is JobState.PENDING for job in expired):
            self._wakeups.notify()
        return expired

    async def request_cancel(
        self, job_id: str, *, now: dt.datetime
    ) -> JobRecord | None:
        """Ask for a job to be cancelled; see `JobStore.request_cancel`.

        Raises:
            SerializationError: if its row is corrupted (nothing changes).
        """
        return await self._run(Database.request_cancel, job_id, now)

    async def reset(self, job_id: str, *, now: dt.datetime) -> JobRecord | None:
        """Put a FAILED or CANCELLED job back to PENDING with fresh attempts.

        Raises:
            SerializationError: if its row is corrupted (nothing changes).
        """
        record = await self._run(Database.reset, job_id, now)
        if record is not None and record.state is JobState.PENDING:
            self._wakeups.notify()
        return record

    async def purge(
        self,
        *,
        finished_before: dt.datetime | None = None,
        keep_latest: int | None = None,
        states: Collection[JobState] | None = None,
    ) -> int:
        """Delete finished jobs; see `JobStore.purge`.

        Jobs are ranked for ``keep_latest`` by ``finished_at`` (a job without
        one counts as the oldest), then by ``seq``.
        """
        if keep_latest is not None:
            _check_bound("keep_latest", keep_latest)
        wanted = (
            FINISHED_STATES if states is None else FINISHED_STATES & frozenset(states)
        )
        return await self._run(Database.purge, finished_before, keep_latest, wanted)

    # ------------------------------------------------------------ schedules

    async def delete(self, job_id: str) -> bool:
        """Delete the job if it is finished or its row is corrupted.

        See `JobStore.delete`.
        """
        return await self._run(Database.delete, job_id)

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Store ``schedule``, replacing one of the same name."""
        await self._run(Database.put_schedule, schedule)

    async def delete_schedule(self, name: str) -> bool:
        """Delete the schedule ``name``; return whether it existed."""
        return await self._run(Database.delete_schedule, name)

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Return every schedule, by name (corrupted rows left out and logged)."""
        return await self._run(Database.list_schedules)

    async def advance_schedule(
        self, name: str, *, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        """Move a schedule's ``next_run_at`` from ``expected`` (compare-and-set)."""
        return await self._run(Database.advance_schedule, name, expected, next_run_at)
