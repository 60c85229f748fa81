"""SQLiteJobStore: jobs in one SQLite file, on a thread of their own."""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import logging
import os
import sqlite3
from typing import (
    TYPE_CHECKING,
    Final,
    TypeAlias,
    TypeVar,
    TypeVarTuple,
    cast,
    final,
)

import attrs
import trio

from .._context import current_scheduler
from .._errors import NoCurrentSchedulerError, RunnerClosedError
from .._util import check_duration
from ._errors import SerializationError, StoreError
from ._job import (
    FINISHED_STATES,
    JobCounts,
    JobRecord,
    JobState,
    ScheduleRecord,
    check_finished_state,
)
from ._store import CompleteResult, RenewResult
from ._wakeup import Wakeups, shared_wakeups

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        Callable,
        Collection,
        Generator,
        Iterator,
        Sequence,
    )

    from .._handle import TaskHandle
    from .._thread import SingleThreadTaskRunner
    from ._store import JobEnd, WorkWatcher

T = TypeVar("T")
ArgsT = TypeVarTuple("ArgsT")

logger: Final = logging.getLogger("trunner.jobs")

#: The schema this module writes; a file of a newer one is refused.
SCHEMA_VERSION: Final = 1
#: Ids per ``IN (...)`` list, well below SQLite's limit on bound parameters.
_CHUNK: Final = 500

_SCHEMA: Final = (
    """
    CREATE TABLE IF NOT EXISTS trunner_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
    # seq is the rowid; AUTOINCREMENT never hands out a seq again, even after
    # the newest jobs were purged, so seq stays the submission order.
    """
    CREATE TABLE IF NOT EXISTS trunner_jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        handler TEXT NOT NULL,
        args TEXT NOT NULL,
        state TEXT NOT NULL,
        priority INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        created_at REAL NOT NULL,
        run_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        result TEXT,
        error TEXT,
        worker TEXT,
        lease_until REAL,
        cancel_requested INTEGER NOT NULL,
        timeout REAL,
        retry TEXT
    )
    """,
    # Partial indexes: each is maintained only for the rows it serves, so an
    # insert (a PENDING row) pays for the claim and due indexes only. Every
    # index ends with the rowid, hence the claim order (priority, run_at, seq)
    # needs no sort. Queries name the states literally, so that the planner
    # can use the partial indexes.
    """
    CREATE INDEX IF NOT EXISTS trunner_jobs_claim
        ON trunner_jobs (priority DESC, run_at) WHERE state = 'pending'
    """,
    """
    CREATE INDEX IF NOT EXISTS trunner_jobs_due
        ON trunner_jobs (run_at) WHERE state = 'pending'
    """,
    """
    CREATE INDEX IF NOT EXISTS trunner_jobs_lease
        ON trunner_jobs (lease_until) WHERE state = 'running'
    """,
    """
    CREATE INDEX IF NOT EXISTS trunner_jobs_finished
        ON trunner_jobs (finished_at) WHERE finished_at IS NOT NULL
    """,
    """
    CREATE TABLE IF NOT EXISTS trunner_schedules (
        name TEXT PRIMARY KEY,
        handler TEXT NOT NULL,
        args TEXT NOT NULL,
        cron TEXT,
        every REAL,
        next_run_at REAL NOT NULL,
        priority INTEGER NOT NULL,
        timeout REAL,
        retry TEXT,
        created_at REAL NOT NULL
    )
    """,
)

_COLUMNS: Final = (
    "seq, id, handler, args, state, priority, attempts, max_attempts, created_at, "
    "run_at, started_at, finished_at, result, error, worker, lease_until, "
    "cancel_requested, timeout, retry"
)
# Positions in a row of _COLUMNS.
_SEQ, _ID, _STATE, _ATTEMPTS = 0, 1, 4, 6
_STARTED, _WORKER, _LEASE, _CANCEL = 10, 14, 15, 16

_ON_CONFLICT: Final = " ON CONFLICT (id) DO NOTHING"
_INSERT: Final = (
    f"INSERT INTO trunner_jobs ({_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + _ON_CONFLICT
)
# A job as submitted has no attempt history: its NULL columns are left out of
# the statement, because the sqlite3 module binds None (and bool) through its
# adapter lookup, which costs as much as the rest of the row.
_NEW_COLUMNS: Final = (
    "seq, id, handler, args, state, priority, attempts, max_attempts, "
    "created_at, run_at, cancel_requested"
)
_INSERT_NEW: Final = (
    f"INSERT INTO trunner_jobs ({_NEW_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)" + _ON_CONFLICT
)
_INSERT_NEW_OPTIONS: Final = (
    f"INSERT INTO trunner_jobs ({_NEW_COLUMNS}, timeout, retry) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)" + _ON_CONFLICT
)
_LAST_SEQ: Final = "SELECT seq FROM sqlite_sequence WHERE name = 'trunner_jobs'"
# Claims walk this index in claim order, whatever statistics ANALYZE gathered:
# sorting every due job to take a few would cost more the longer the backlog.
_CLAIM_INDEX: Final = "INDEXED BY trunner_jobs_claim"
_GET: Final = f"SELECT {_COLUMNS} FROM trunner_jobs WHERE id = ?"
_CLAIM_UPDATE: Final = (
    "UPDATE trunner_jobs SET state = 'running', worker = ?, lease_until = ?, "
    "started_at = ?, attempts = attempts + 1, cancel_requested = 0 WHERE seq = ?"
)
_FAIL_CORRUPTED: Final = (
    "UPDATE trunner_jobs SET state = 'failed', error = ?, finished_at = ?, "
    "worker = ?, lease_until = NULL WHERE seq = ? AND state = 'pending'"
)
_HELD: Final = " WHERE id = ? AND state = 'running' AND worker = ?"
_COMPLETE: Final = (
    "UPDATE trunner_jobs SET state = ?, finished_at = ?, result = ?, "
    "error = ?, lease_until = NULL" + _HELD
)
# A job whose cancellation was requested while it ran ends CANCELLED
# instead of going back to PENDING: the request must not be lost.
_REQUEUE: Final = (
    "UPDATE trunner_jobs SET "
    "state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, "
    "run_at = CASE WHEN cancel_requested THEN run_at ELSE ? END, "
    "finished_at = CASE WHEN cancel_requested THEN ? ELSE finished_at END, "
    "error = ?, lease_until = NULL" + _HELD
)
_RELEASE: Final = (
    "UPDATE trunner_jobs SET "
    "state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, "
    "finished_at = CASE WHEN cancel_requested THEN ? ELSE finished_at END, "
    "attempts = CASE WHEN cancel_requested THEN attempts "
    "ELSE max(attempts - 1, 0) END, lease_until = NULL" + _HELD
)
_SCHEDULE_COLUMNS: Final = (
    "name, handler, args, cron, every, next_run_at, priority, timeout, retry, "
    "created_at"
)

_STATES: Final = {state.value: state for state in JobState}
_UTC: Final = dt.UTC
_from_timestamp: Final = dt.datetime.fromtimestamp
# What a corrupted row raises while it is decoded.
_DECODE_ERRORS: Final = (KeyError, TypeError, ValueError, OverflowError, OSError)


def _ts(value: dt.datetime) -> float:
    """Return ``value`` as epoch seconds; it must be timezone-aware."""
    if value.tzinfo is None:
        raise ValueError(
            f"store times must be timezone-aware UTC datetimes, not {value!r}"
        )
    return value.timestamp()


def _opt_ts(value: dt.datetime | None) -> float | None:
    return None if value is None else _ts(value)


def _opt_dt(value: float | None) -> dt.datetime | None:
    return None if value is None else _from_timestamp(value, _UTC)


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"expected text, found {value!r}")
    return value


def _opt_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, found {value!r}")
    return value


def _decode(row: Sequence[object]) -> JobRecord:
    """Make the record of a row of ``_COLUMNS``.

    Raises:
        SerializationError: if the row is corrupted.
    """
    try:
        (
            seq,
            job_id,
            handler,
            args,
            state,
            priority,
            attempts,
            max_attempts,
            created_at,
            run_at,
            started_at,
            finished_at,
            result,
            error,
            worker,
            lease_until,
            cancel_requested,
            timeout,
            retry,
        ) = row
        return JobRecord(
            id=_text(job_id),
            handler=_text(handler),
            args=_text(args),
            state=_STATES[state],  # type: ignore[index]  # a KeyError is a corrupted row
            priority=_int(priority),
            attempts=_int(attempts),
            max_attempts=_int(max_attempts),
            created_at=_from_timestamp(created_at, _UTC),  # type: ignore[arg-type]  # checked by the call
            run_at=_from_timestamp(run_at, _UTC),  # type: ignore[arg-type]  # checked by the call
            started_at=_opt_dt(started_at),  # type: ignore[arg-type]  # checked by the call
            finished_at=_opt_dt(finished_at),  # type: ignore[arg-type]  # checked by the call
            result=_opt_text(result),
            error=_opt_text(error),
            worker=_opt_text(worker),
            lease_until=_opt_dt(lease_until),  # type: ignore[arg-type]  # checked by the call
            cancel_requested=bool(cancel_requested),
            timeout=None if timeout is None else float(timeout),  # type: ignore[arg-type]  # checked by the call
            retry=_opt_text(retry),
            seq=_int(seq),
        )
    except _DECODE_ERRORS as cause:
        where = f"seq {row[0]!r}, id {row[1]!r}" if len(row) > 1 else repr(row)
        raise SerializationError(
            f"the stored job ({where}) is corrupted and cannot be read: {cause!r}"
        ) from cause


def _decode_schedule(row: Sequence[object]) -> ScheduleRecord:
    try:
        (
            name,
            handler,
            args,
            cron,
            every,
            next_run_at,
            priority,
            timeout,
            retry,
            created_at,
        ) = row
        return ScheduleRecord(
            name=_text(name),
            handler=_text(handler),
            args=_text(args),
            cron=_opt_text(cron),
            every=None if every is None else float(every),  # type: ignore[arg-type]  # checked by the call
            next_run_at=_from_timestamp(next_run_at, _UTC),  # type: ignore[arg-type]  # checked by the call
            priority=_int(priority),
            timeout=None if timeout is None else float(timeout),  # type: ignore[arg-type]  # checked by the call
            retry=_opt_text(retry),
            created_at=_from_timestamp(created_at, _UTC),  # type: ignore[arg-type]  # checked by the call
        )
    except _DECODE_ERRORS as cause:
        raise SerializationError(
            f"the stored schedule {row[0]!r} is corrupted and cannot be read: {cause!r}"
        ) from cause


def _make_copier() -> Callable[[JobRecord, int], JobRecord]:
    """Make ``copy(job, seq)``: ``attrs.evolve(job, seq=seq)``, three times faster.

    An insert returns a new record per job, and ``attrs.evolve`` (or the
    constructor) costs more than the rest of the insert's Python work. The copy
    is made like attrs makes its ``__init__``: generated code that sets each
    slot of a new instance through its descriptor, from the fields of
    `JobRecord` as they are (so a new field is copied too).
    """
    names = [field.name for field in attrs.fields(JobRecord)]
    namespace: dict[str, object] = {"_new": object.__new__, "_cls": JobRecord}
    lines = ["def copy(job, seq):", "    new = _new(_cls)"]
    for name in names:
        namespace[f"_set_{name}"] = getattr(JobRecord, name).__set__
        value = "seq" if name == "seq" else f"job.{name}"
        lines.append(f"    _set_{name}(new, {value})")
    lines.append("    return new")
    exec("\n".join(lines), namespace)  # trusted code, generated above
    return cast("Callable[[JobRecord, int], JobRecord]", namespace["copy"])


#: ``with_seq(job, seq)``: ``job`` with that ``seq`` (for the stores' inserts).
with_seq: Final = _make_copier()


_Params: TypeAlias = tuple[object, ...]


def _insert_params(
    jobs: Sequence[JobRecord], base: int
) -> dict[str, builtins.list[_Params]]:
    """Return the rows of ``jobs`` (seq ``base + 1`` on), by INSERT statement."""
    ts = _ts
    opt = _opt_ts
    plain: builtins.list[_Params] = []
    options: builtins.list[_Params] = []
    full: builtins.list[_Params] = []
    for seq, job in enumerate(jobs, base + 1):
        if (
            job.started_at is None
            and job.finished_at is None
            and job.result is None
            and job.error is None
            and job.worker is None
            and job.lease_until is None
            and not job.cancel_requested
        ):
            row = (
                seq,
                job.id,
                job.handler,
                job.args,
                job.state._value_,  # (.value is a slow property)
                job.priority,
                job.attempts,
                job.max_attempts,
                ts(job.created_at),
                ts(job.run_at),
            )
            if job.timeout is None and job.retry is None:
                plain.append(row)
            else:
                options.append((*row, job.timeout, job.retry))
        else:
            full.append(
                (
                    seq,
                    job.id,
                    job.handler,
                    job.args,
                    job.state._value_,
                    job.priority,
                    job.attempts,
                    job.max_attempts,
                    ts(job.created_at),
                    ts(job.run_at),
                    opt(job.started_at),
                    opt(job.finished_at),
                    job.result,
                    job.error,
                    job.worker,
                    opt(job.lease_until),
                    int(job.cancel_requested),
                    job.timeout,
                    job.retry,
                )
            )
    statements = {_INSERT_NEW: plain, _INSERT_NEW_OPTIONS: options, _INSERT: full}
    return {sql: rows for sql, rows in statements.items() if rows}


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _state_list(states: Collection[JobState]) -> str:
    # Literal values (enum constants, never user text) let the planner match
    # the partial indexes.
    return ", ".join(f"'{state.value}'" for state in sorted(states, key=_state_key))


def _state_key(state: JobState) -> str:
    return state.value


@final
class _Database:
    """The connection and the SQL; every method runs on the store's thread."""

    __slots__ = ("_conn", "_reported")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # Seqs of the corrupted rows already logged (once each).
        self._reported: set[object] = set()

    @classmethod
    def open(cls, path: str, busy_timeout: float) -> _Database:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, cached_statements=256
        )
        try:
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if mode != "wal":
                (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                raise StoreError(
                    f"SQLite could not put {path!r} in WAL mode (it stays in {mode!r} "
                    "mode); use a file on a local file system"
                )
            conn.execute("PRAGMA synchronous = FULL")
            database = cls(conn)
            with database._write():
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO trunner_meta (key, value) "
                    "VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
                (version,) = conn.execute(
                    "SELECT value FROM trunner_meta WHERE key = 'schema'"
                ).fetchone()
            if version != str(SCHEMA_VERSION):
                raise StoreError(
                    f"{path!r} holds jobs in schema version {version}, but this "
                    f"version of trunner reads version {SCHEMA_VERSION}; upgrade "
                    "trunner"
                )
        except BaseException:
            conn.close()
            raise
        return database

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _write(self) -> Generator[sqlite3.Connection]:
        """Run the block in one write transaction (taking the write lock first)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the first error matters
                conn.rollback()  # (a no-op if SQLite rolled back already)
            raise

    def _readable(self, rows: Sequence[Sequence[object]]) -> builtins.list[JobRecord]:
        """Decode ``rows``, leaving out (and logging once) the corrupted ones."""
        records: builtins.list[JobRecord] = []
        for row in rows:
            try:
                records.append(_decode(row))
            except SerializationError as error:
                if row[_SEQ] not in self._reported:
                    self._reported.add(row[_SEQ])
                    logger.warning("skipping a job: %s", error)
        return records

    # ------------------------------------------------------------------ jobs

    def insert(
        self, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        # The first job of each id is the one inserted; usually all are.
        unique = len({job.id for job in jobs}) == len(jobs)
        first: dict[str, int] = {}
        if not unique:
            for index, job in enumerate(jobs):
                first.setdefault(job.id, index)
        fresh = jobs if unique else [jobs[index] for index in first.values()]
        with self._write() as conn:
            row = conn.execute(_LAST_SEQ).fetchone()
            base = 0 if row is None else row[0]
            inserted = 0
            for sql, params in _insert_params(fresh, base).items():
                inserted += conn.executemany(sql, params).rowcount
            if inserted == len(fresh):
                stored = [
                    (with_seq(job, seq), True)
                    for seq, job in enumerate(fresh, base + 1)
                ]
            else:
                stored = self._read_back(fresh, base)
        if unique:
            return stored
        by_id = {record.id: (record, new) for record, new in stored}
        return [
            (by_id[job.id][0], by_id[job.id][1] and first[job.id] == index)
            for index, job in enumerate(jobs)
        ]

    def _read_back(
        self, fresh: Sequence[JobRecord], base: int
    ) -> builtins.list[tuple[JobRecord, bool]]:
        """Tell the jobs just inserted from those whose id was there already."""
        there: dict[str, Sequence[object]] = {}
        for chunk in _chunks([job.id for job in fresh]):
            for found in self._conn.execute(
                f"SELECT {_COLUMNS} FROM trunner_jobs "
                f"WHERE id IN ({_marks(len(chunk))})",
                chunk,
            ):
                there[found[_ID]] = found
        stored: builtins.list[tuple[JobRecord, bool]] = []
        for seq, job in enumerate(fresh, base + 1):
            found = there[job.id]
            if found[_SEQ] == seq:
                stored.append((with_seq(job, seq), True))
            else:  # an older row keeps its own seq
                stored.append((_decode(found), False))
        return stored

    def get(self, job_id: str) -> JobRecord | None:
        row = self._conn.execute(_GET, (job_id,)).fetchone()
        return None if row is None else _decode(row)

    def list(
        self, state: JobState | None, handler: str | None, limit: int, offset: int
    ) -> builtins.list[JobRecord]:
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        if handler is not None:
            where.append("handler = ?")
            params.append(handler)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM trunner_jobs {clause}"
            "ORDER BY seq DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return self._readable(rows)

    def counts(self) -> JobCounts:
        counts = JobCounts()
        for state, count in self._conn.execute(
            "SELECT state, count(*) FROM trunner_jobs GROUP BY state"
        ):
            known = _STATES.get(state)
            if known is None:
                counts.unknown += count
            else:
                counts[known] = count
        return counts

    def claim(
        self,
        worker: str,
        handlers: tuple[str, ...] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        with self._write() as conn:
            return self._claim(conn, worker, handlers, now, lease_until, limit)

    def complete_and_claim(
        self,
        ends: Sequence[JobEnd],
        worker: str,
        handlers: tuple[str, ...] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> tuple[tuple[bool, ...], builtins.list[JobRecord]]:
        with self._write() as conn:
            ended = self._end(conn, ends, worker) if ends else ()
            claimed = (
                self._claim(conn, worker, handlers, now, lease_until, limit)
                if limit > 0 and handlers != ()
                else []
            )
        return ended, claimed

    def _end(
        self, conn: sqlite3.Connection, ends: Sequence[JobEnd], worker: str
    ) -> tuple[bool, ...]:
        """Apply ``ends`` to the jobs ``worker`` holds, inside the transaction."""
        held: set[str] = set()
        ids = builtins.list(dict.fromkeys(end.job_id for end in ends))
        for chunk in _chunks(ids):
            held.update(
                job_id
                for (job_id,) in conn.execute(
                    "SELECT id FROM trunner_jobs WHERE state = 'running' "
                    f"AND worker = ? AND id IN ({_marks(len(chunk))})",
                    (worker, *chunk),
                )
            )
        # Each id ends once: a second end of the same id finds it not held.
        ended: builtins.list[bool] = []
        finished: builtins.list[_Params] = []
        requeued: builtins.list[_Params] = []
        released: builtins.list[_Params] = []
        for end in ends:
            job_id = end.job_id
            if job_id not in held:
                ended.append(False)
                continue
            held.discard(job_id)
            ended.append(True)
            at = _ts(end.at)
            if end.state is not JobState.PENDING:
                finished.append(
                    (end.state._value_, at, end.result, end.error, job_id, worker)
                )
            elif end.run_at is not None:
                requeued.append((_ts(end.run_at), at, end.error, job_id, worker))
            else:
                released.append((at, job_id, worker))
        if finished:
            conn.executemany(_COMPLETE, finished)
        if requeued:
            conn.executemany(_REQUEUE, requeued)
        if released:
            conn.executemany(_RELEASE, released)
        return tuple(ended)

    def _claim(
        self,
        conn: sqlite3.Connection,
        worker: str,
        handlers: tuple[str, ...] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        now_ts = _ts(now)
        lease_ts = _ts(lease_until)
        if handlers is None:
            sql = (
                f"SELECT {_COLUMNS} FROM trunner_jobs {_CLAIM_INDEX} "
                "WHERE state = 'pending' AND run_at <= ? "
                "ORDER BY priority DESC, run_at, seq LIMIT ?"
            )
            params: tuple[object, ...] = (now_ts,)
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM trunner_jobs {_CLAIM_INDEX} "
                "WHERE state = 'pending' AND run_at <= ? "
                f"AND handler IN ({_marks(len(handlers))}) "
                "ORDER BY priority DESC, run_at, seq LIMIT ?"
            )
            params = (now_ts, *handlers)
        window = limit
        # Corrupted due rows: (seq, why). Each fails its own job, once.
        bad: builtins.list[tuple[object, str]] = []
        while True:
            rows = conn.execute(sql, (*params, window)).fetchall()
            taken: builtins.list[JobRecord] = []
            bad = []
            for row in rows:
                # The record as the UPDATE below leaves the row.
                claimed: builtins.list[object] = builtins.list(row)
                claimed[_STATE] = "running"
                claimed[_WORKER] = worker
                claimed[_LEASE] = lease_ts
                claimed[_STARTED] = now_ts
                claimed[_CANCEL] = 0
                attempts = claimed[_ATTEMPTS]
                if isinstance(attempts, int):
                    claimed[_ATTEMPTS] = attempts + 1
                try:
                    taken.append(_decode(claimed))
                except SerializationError as error:
                    bad.append((row[_SEQ], str(error)))
                    continue
                if len(taken) == limit:
                    break
            # Corrupted rows fail below: look further until enough are
            # taken or there are no more due jobs.
            if len(taken) == limit or len(rows) < window:
                break
            window = limit + len(rows) - len(taken)
        conn.executemany(
            _CLAIM_UPDATE, [(worker, lease_ts, now_ts, job.seq) for job in taken]
        )
        if bad:
            # Left PENDING, a corrupted due row would be due for ever and
            # each claim would meet it again: it fails, once, saying why.
            conn.executemany(
                _FAIL_CORRUPTED, [(why, now_ts, worker, seq) for seq, why in bad]
            )
            for _, why in bad:
                logger.warning("failing a corrupted job: %s", why)
        return taken

    def next_due(self, handlers: tuple[str, ...] | None) -> dt.datetime | None:
        # A corrupted run_at (not a number) is never due: leave it out here too.
        sql = (
            "SELECT min(run_at) FROM trunner_jobs "
            "WHERE state = 'pending' AND typeof(run_at) = 'real'"
        )
        if handlers is None:
            row = self._conn.execute(sql).fetchone()
        else:
            row = self._conn.execute(
                f"{sql} AND handler IN ({_marks(len(handlers))})", handlers
            ).fetchone()
        try:
            return _opt_dt(row[0])
        except _DECODE_ERRORS as error:
            raise SerializationError(
                f"a stored job is due at an impossible time: {row[0]!r}"
            ) from error

    def renew(
        self, worker: str, job_ids: tuple[str, ...], lease_until: dt.datetime
    ) -> RenewResult:
        lease_ts = _ts(lease_until)
        held: set[str] = set()
        cancel: set[str] = set()
        with self._write() as conn:
            for chunk in _chunks(job_ids):
                for job_id, cancel_requested in conn.execute(
                    "UPDATE trunner_jobs SET lease_until = ? "
                    "WHERE state = 'running' AND worker = ? "
                    f"AND id IN ({_marks(len(chunk))}) RETURNING id, cancel_requested",
                    (lease_ts, worker, *chunk),
                ).fetchall():
                    held.add(job_id)
                    if cancel_requested:
                        cancel.add(job_id)
        return RenewResult(held=frozenset(held), cancel_requested=frozenset(cancel))

    def _update_held(self, sql: str, params: tuple[object, ...]) -> bool:
        with self._write() as conn:
            count = conn.execute(sql, params).rowcount
        return count == 1

    def complete(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        finished_at: dt.datetime,
        result: str | None,
        error: str | None,
    ) -> bool:
        return self._update_held(
            _COMPLETE, (state.value, _ts(finished_at), result, error, job_id, worker)
        )

    def requeue(
        self,
        job_id: str,
        worker: str,
        run_at: dt.datetime,
        error: str | None,
        now: dt.datetime,
    ) -> bool:
        return self._update_held(
            _REQUEUE, (_ts(run_at), _ts(now), error, job_id, worker)
        )

    def release(self, job_id: str, worker: str, now: dt.datetime) -> bool:
        return self._update_held(_RELEASE, (_ts(now), job_id, worker))

    def expire_leases(self, now: dt.datetime) -> builtins.list[JobRecord]:
        now_ts = _ts(now)
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE trunner_jobs SET state = 'cancelled', finished_at = ?, "
                "lease_until = NULL WHERE state = 'running' AND lease_until < ? "
                f"AND cancel_requested RETURNING {_COLUMNS}",
                (now_ts, now_ts),
            ).fetchall()
            rows += conn.execute(
                "UPDATE trunner_jobs SET state = 'failed', error = 'lease expired', "
                "finished_at = ?, lease_until = NULL WHERE state = 'running' "
                "AND lease_until < ? AND attempts >= max_attempts "
                f"RETURNING {_COLUMNS}",
                (now_ts, now_ts),
            ).fetchall()
            rows += conn.execute(
                "UPDATE trunner_jobs SET state = 'pending', run_at = ?, "
                "lease_until = NULL WHERE state = 'running' AND lease_until < ? "
                f"RETURNING {_COLUMNS}",
                (now_ts, now_ts),
            ).fetchall()
        rows.sort(key=lambda row: row[_SEQ])
        return self._readable(rows)

    def _change(
        self, job_id: str, changes: Sequence[tuple[str, tuple[object, ...]]]
    ) -> JobRecord | None:
        """Run the first of ``changes`` that matches the job; return it after."""
        with self._write() as conn:
            for sql, params in changes:
                row = conn.execute(f"{sql} RETURNING {_COLUMNS}", params).fetchone()
                if row is not None:
                    return _decode(row)
            row = conn.execute(_GET, (job_id,)).fetchone()
            return None if row is None else _decode(row)

    def request_cancel(self, job_id: str, now: dt.datetime) -> JobRecord | None:
        return self._change(
            job_id,
            [
                (
                    "UPDATE trunner_jobs SET state = 'cancelled', finished_at = ? "
                    "WHERE id = ? AND state = 'pending'",
                    (_ts(now), job_id),
                ),
                (
                    "UPDATE trunner_jobs SET cancel_requested = 1 "
                    "WHERE id = ? AND state = 'running' AND NOT cancel_requested",
                    (job_id,),
                ),
            ],
        )

    def reset(self, job_id: str, now: dt.datetime) -> JobRecord | None:
        return self._change(
            job_id,
            [
                (
                    "UPDATE trunner_jobs SET state = 'pending', attempts = 0, "
                    "run_at = ?, result = NULL, error = NULL, started_at = NULL, "
                    "finished_at = NULL, worker = NULL, lease_until = NULL, "
                    "cancel_requested = 0 "
                    "WHERE id = ? AND state IN ('failed', 'cancelled')",
                    (_ts(now), job_id),
                )
            ],
        )

    def purge(
        self,
        finished_before: dt.datetime | None,
        keep_latest: int | None,
        states: frozenset[JobState],
    ) -> int:
        if not states:
            return 0
        where = f"state IN ({_state_list(states)})"
        params: builtins.list[object] = []
        bounds: builtins.list[str] = []
        if finished_before is not None:
            bounds.append("finished_at < ?")
            params.append(_ts(finished_before))
        if keep_latest is not None:
            bounds.append(
                f"seq NOT IN (SELECT seq FROM trunner_jobs WHERE {where} "
                "ORDER BY finished_at DESC, seq DESC LIMIT ?)"
            )
            params.append(keep_latest)
        if bounds:
            where = f"{where} AND ({' OR '.join(bounds)})"
        with self._write() as conn:
            return conn.execute(
                f"DELETE FROM trunner_jobs WHERE {where}", params
            ).rowcount

    def delete(self, job_id: str) -> bool:
        with self._write() as conn:
            row = conn.execute(_GET, (job_id,)).fetchone()
            if row is None:
                return False
            try:
                state = _decode(row).state
            except SerializationError:
                state = None  # unreadable: deleted whatever it holds
            if state is JobState.PENDING or state is JobState.RUNNING:
                return False
            conn.execute("DELETE FROM trunner_jobs WHERE seq = ?", (row[_SEQ],))
        self._reported.discard(row[_SEQ])
        return True

    # ------------------------------------------------------------- schedules

    def put_schedule(self, schedule: ScheduleRecord) -> None:
        with self._write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO trunner_schedules ({_SCHEDULE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    schedule.name,
                    schedule.handler,
                    schedule.args,
                    schedule.cron,
                    schedule.every,
                    _ts(schedule.next_run_at),
                    schedule.priority,
                    schedule.timeout,
                    schedule.retry,
                    _ts(schedule.created_at),
                ),
            )

    def delete_schedule(self, name: str) -> bool:
        with self._write() as conn:
            count = conn.execute(
                "DELETE FROM trunner_schedules WHERE name = ?", (name,)
            ).rowcount
        return count == 1

    def list_schedules(self) -> builtins.list[ScheduleRecord]:
        schedules: builtins.list[ScheduleRecord] = []
        for row in self._conn.execute(
            f"SELECT {_SCHEDULE_COLUMNS} FROM trunner_schedules ORDER BY name"
        ):
            try:
                schedules.append(_decode_schedule(row))
            except SerializationError as error:
                if ("schedule", row[0]) not in self._reported:  # once each
                    self._reported.add(("schedule", row[0]))
                    logger.warning("skipping a schedule: %s", error)
        return schedules

    def advance_schedule(
        self, name: str, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        return self._update_held(
            "UPDATE trunner_schedules SET next_run_at = ? "
            "WHERE name = ? AND next_run_at = ?",
            (_ts(next_run_at), name, _ts(expected)),
        )


def _check_bound(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _quiet(handle: TaskHandle[object], error: BaseException) -> None:
    del handle, error


def _names(handlers: Collection[str] | None) -> tuple[str, ...] | None:
    return None if handlers is None else tuple(dict.fromkeys(handlers))


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
    ignores a ``run_at`` that is not a number; `counts` counts it only if its
    state is valid; `list_schedules` leaves out a corrupted schedule.

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
    _db: _Database | None
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

    async def _run(self, fn: Callable[[_Database, *ArgsT], T], *args: *ArgsT) -> T:
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
                    _Database.open, self._path, self._busy_timeout
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
        stored = await self._run(_Database.insert, jobs)
        wakeups = self._wakeups
        if wakeups and any(inserted for _, inserted in stored):
            wakeups.notify()
        return stored

    async def get(self, job_id: str) -> JobRecord | None:
        """Return the job with that id, or None.

        Raises:
            SerializationError: if its row is corrupted.
        """
        return await self._run(_Database.get, job_id)

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
        return await self._run(_Database.list, state, handler, limit, offset)

    async def counts(self) -> JobCounts:
        """Return how many jobs there are in each state (every state present)."""
        return await self._run(_Database.counts)

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
        return await self._run(_Database.claim, worker, names, now, lease_until, limit)

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
            _Database.complete_and_claim, ends, worker, names, now, lease_until, limit
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

    async def next_due(self, *, handlers: Collection[str] | None) -> dt.datetime | None:
        """Return the earliest ``run_at`` among PENDING jobs of ``handlers``."""
        names = _names(handlers)
        if names == ():
            await self._nothing()
            return None
        return await self._run(_Database.next_due, names)

    async def renew(
        self, *, worker: str, job_ids: Collection[str], lease_until: dt.datetime
    ) -> RenewResult:
        """Extend the leases of ``job_ids`` that ``worker`` still holds."""
        ids = tuple(dict.fromkeys(job_ids))
        if not ids:
            await self._nothing()
            return RenewResult(held=frozenset(), cancel_requested=frozenset())
        return await self._run(_Database.renew, worker, ids, lease_until)

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
            _Database.complete, job_id, worker, state, finished_at, result, error
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
        held = await self._run(_Database.requeue, job_id, worker, run_at, error, now)
        if held:
            self._wakeups.notify()
        return held

    async def release(self, job_id: str, *, worker: str, now: dt.datetime) -> bool:
        """Hand a held job back, PENDING; the attempt does not count."""
        held = await self._run(_Database.release, job_id, worker, now)
        if held:
            self._wakeups.notify()
        return held

    async def expire_leases(self, *, now: dt.datetime) -> builtins.list[JobRecord]:
        """Take back RUNNING jobs whose lease ended before ``now``, by ``seq``."""
        expired = await self._run(_Database.expire_leases, now)
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
        return await self._run(_Database.request_cancel, job_id, now)

    async def reset(self, job_id: str, *, now: dt.datetime) -> JobRecord | None:
        """Put a FAILED or CANCELLED job back to PENDING with fresh attempts.

        Raises:
            SerializationError: if its row is corrupted (nothing changes).
        """
        record = await self._run(_Database.reset, job_id, now)
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
        return await self._run(_Database.purge, finished_before, keep_latest, wanted)

    # ------------------------------------------------------------ schedules

    async def delete(self, job_id: str) -> bool:
        """Delete the job if it is finished or its row is corrupted.

        See `JobStore.delete`.
        """
        return await self._run(_Database.delete, job_id)

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Store ``schedule``, replacing one of the same name."""
        await self._run(_Database.put_schedule, schedule)

    async def delete_schedule(self, name: str) -> bool:
        """Delete the schedule ``name``; return whether it existed."""
        return await self._run(_Database.delete_schedule, name)

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Return every schedule, by name (corrupted rows left out and logged)."""
        return await self._run(_Database.list_schedules)

    async def advance_schedule(
        self, name: str, *, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        """Move a schedule's ``next_run_at`` from ``expected`` (compare-and-set)."""
        return await self._run(_Database.advance_schedule, name, expected, next_run_at)
