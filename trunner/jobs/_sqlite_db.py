"""The database of a SQLiteJobStore: its connection and its SQL.

A `Database` belongs to the store's thread: the store runs each of its
methods there (`SingleThreadTaskRunner`), one at a time, so the connection is
never shared. Every change is one transaction (`transaction`).

Each write transaction that changes jobs' states stamps the rows it changes
with its change number (``change_seq``): one more than the greatest number
ever handed out, read from an index under the write lock, so that the numbers
grow in commit order. An insert stamps nothing: new jobs are found by their
``seq``, which also grows in commit order, so the submit path pays nothing
for the feed. A follower (`changes_since`) reads the jobs inserted after the
last seq it saw and those stamped after the last number it saw, and leaves
out the writes of its own `Database`. Deleting rows keeps the greatest number
in ``trunner_meta`` (``change_floor``), so that a number is never handed out
twice.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from typing import TYPE_CHECKING, Final, final

from ._errors import SerializationError
from ._job import JobCounts, JobRecord, JobState, ScheduleRecord
from ._sqlite_codec import (
    ATTEMPTS,
    CANCEL,
    COLUMNS,
    DECODE_ERRORS,
    ID,
    LEASE,
    SCHEDULE_COLUMNS,
    SEQ,
    STARTED,
    STATE,
    STATES,
    WORKER,
    Params,
    decode,
    decode_schedule,
    insert_params,
    opt_dt,
    ts,
    with_seq,
)
from ._sqlite_schema import connect, transaction
from ._store import RenewResult

if TYPE_CHECKING:
    import datetime as dt
    import sqlite3
    from collections.abc import Collection, Generator, Iterator, Sequence

    from ._store import JobEnd

logger: Final = logging.getLogger("trunner.jobs")

#: Ids per ``IN (...)`` list, well below SQLite's limit on bound parameters.
_CHUNK: Final = 500

_LAST_SEQ: Final = "SELECT seq FROM sqlite_sequence WHERE name = 'trunner_jobs'"
# Claims walk this index in claim order, whatever statistics ANALYZE gathered:
# sorting every due job to take a few would cost more the longer the backlog.
_CLAIM_INDEX: Final = "INDEXED BY trunner_jobs_claim"
_GET: Final = f"SELECT {COLUMNS} FROM trunner_jobs WHERE id = ?"
# The next change number; see the module's docstring.
_FLOOR: Final = (
    "SELECT CAST(value AS INTEGER) FROM trunner_meta WHERE key = 'change_floor'"
)
_LAST_CHANGE: Final = (
    "SELECT change_seq FROM trunner_jobs WHERE change_seq IS NOT NULL "
    "ORDER BY change_seq DESC LIMIT 1"
)
_NEXT_CHANGE: Final = (
    f"SELECT max(coalesce(({_LAST_CHANGE}), 0), coalesce(({_FLOOR}), 0)) + 1"
)
_KEEP_FLOOR: Final = (
    "INSERT OR REPLACE INTO trunner_meta (key, value) VALUES ('change_floor', "
    f"max(coalesce(({_LAST_CHANGE}), 0), coalesce(({_FLOOR}), 0)))"
)
_STAMPED: Final = "SELECT 1 FROM trunner_jobs WHERE change_seq = ? LIMIT 1"
_INSERTED: Final = (
    f"SELECT {COLUMNS} FROM trunner_jobs WHERE seq > ? ORDER BY seq LIMIT ?"
)
_CHANGED: Final = (
    f"SELECT change_seq, {COLUMNS} FROM trunner_jobs "
    "WHERE change_seq > ? ORDER BY change_seq LIMIT ?"
)
# Every statement that changes a job's state sets change_seq first: its first
# parameter is the transaction's change number.
_STAMP: Final = "UPDATE trunner_jobs SET change_seq = ?, "
_CLAIM_UPDATE: Final = (
    _STAMP + "state = 'running', worker = ?, lease_until = ?, "
    "started_at = ?, attempts = attempts + 1, cancel_requested = 0 WHERE seq = ?"
)
_FAIL_CORRUPTED: Final = (
    _STAMP + "state = 'failed', error = ?, finished_at = ?, "
    "worker = ?, lease_until = NULL WHERE seq = ? AND state = 'pending'"
)
_HELD: Final = " WHERE id = ? AND state = 'running' AND worker = ?"
_COMPLETE: Final = (
    _STAMP + "state = ?, finished_at = ?, result = ?, "
    "error = ?, lease_until = NULL" + _HELD
)
# A job whose cancellation was requested while it ran ends CANCELLED
# instead of going back to PENDING: the request must not be lost.
_REQUEUE: Final = (
    _STAMP + "state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, "
    "run_at = CASE WHEN cancel_requested THEN run_at ELSE ? END, "
    "finished_at = CASE WHEN cancel_requested THEN ? ELSE finished_at END, "
    "error = ?, lease_until = NULL" + _HELD
)
_RELEASE: Final = (
    _STAMP + "state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, "
    "finished_at = CASE WHEN cancel_requested THEN ? ELSE finished_at END, "
    "attempts = CASE WHEN cancel_requested THEN attempts "
    "ELSE max(attempts - 1, 0) END, lease_until = NULL" + _HELD
)


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
class Database:
    """The connection and the SQL; every method runs on the store's thread."""

    __slots__ = (
        "_conn",
        "_followers",
        "_inserted",
        "_number",
        "_own",
        "_reported",
    )

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # Seqs of the corrupted rows already logged (once each).
        self._reported: set[object] = set()
        # The change number of the write transaction under way (0: none yet).
        self._number = 0
        # The change numbers this Database committed, while followed.
        self._own: set[int] = set()
        # The seqs of the jobs this Database inserted, while followed.
        self._inserted: set[int] = set()
        self._followers = 0

    @classmethod
    def open(cls, path: str, busy_timeout: float) -> Database:
        """Connect to ``path`` (see `connect`); runs on the store's thread."""
        return cls(connect(path, busy_timeout))

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _write(self) -> Generator[sqlite3.Connection]:
        """Run the block in one write transaction (taking the write lock first)."""
        self._number = own = 0
        with transaction(self._conn) as conn:
            yield conn
            # A number that stamped no row is handed out again: not ours.
            if (
                self._number
                and self._followers
                and conn.execute(_STAMPED, (self._number,)).fetchone()
            ):
                own = self._number
        if own:
            self._own.add(own)

    def _stamp(self, conn: sqlite3.Connection) -> int:
        """The change number of the write transaction under way."""
        if not self._number:
            (self._number,) = conn.execute(_NEXT_CHANGE).fetchone()
        return self._number

    # --------------------------------------------------------------- changes

    def follow(self) -> tuple[int, int]:
        """Start following changes; return the last seq and change number so far."""
        self._followers += 1
        row = self._conn.execute(_LAST_SEQ).fetchone()
        (change,) = self._conn.execute(_NEXT_CHANGE).fetchone()
        return (0 if row is None else int(row[0])), int(change) - 1

    def unfollow(self) -> None:
        self._followers = max(0, self._followers - 1)
        if not self._followers:
            self._own.clear()
            self._inserted.clear()

    def changes_since(
        self, last: tuple[int, int], limit: int
    ) -> tuple[tuple[int, int], builtins.list[JobRecord]]:
        """Return the jobs inserted or changed after ``last``, and the new ``last``.

        ``last`` is the last seq and the last change number read. The jobs are
        those other `Database` objects inserted or changed (in this process or
        another), as stored now: the new ones by seq, then the changed ones in
        the order of their last change, each once. At most ``limit`` rows of
        each kind are read; a caller that got that many asks again.
        """
        last_seq, last_change = last
        conn = self._conn
        inserted = conn.execute(_INSERTED, (last_seq, limit)).fetchall()
        changed = conn.execute(_CHANGED, (last_change, limit)).fetchall()
        if inserted:
            last_seq = inserted[-1][SEQ]
        if changed:
            last_change = changed[-1][0]
        own, mine = self._own, self._inserted
        rows: dict[object, Sequence[object]] = {
            row[SEQ]: row for row in inserted if row[SEQ] not in mine
        }
        for row in changed:
            if row[0] not in own:
                rows.pop(row[1 + SEQ], None)  # the later read, at its place
                rows[row[1 + SEQ]] = row[1:]
        if own:
            self._own = {number for number in own if number > last_change}
        if mine:
            self._inserted = {seq for seq in mine if seq > last_seq}
        return (last_seq, last_change), self._readable(builtins.list(rows.values()))

    def _readable(self, rows: Sequence[Sequence[object]]) -> builtins.list[JobRecord]:
        """Decode ``rows``, leaving out (and logging once) the corrupted ones."""
        records: builtins.list[JobRecord] = []
        for row in rows:
            try:
                records.append(decode(row))
            except SerializationError as error:
                if row[SEQ] not in self._reported:
                    self._reported.add(row[SEQ])
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
            for sql, params in insert_params(fresh, base).items():
                inserted += conn.executemany(sql, params).rowcount
            if inserted == len(fresh):
                stored = [
                    (with_seq(job, seq), True)
                    for seq, job in enumerate(fresh, base + 1)
                ]
            else:
                stored = self._read_back(fresh, base)
        if self._followers:  # its followers leave out its own jobs
            self._inserted.update(record.seq for record, new in stored if new)
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
                f"SELECT {COLUMNS} FROM trunner_jobs "
                f"WHERE id IN ({_marks(len(chunk))})",
                chunk,
            ):
                there[found[ID]] = found
        stored: builtins.list[tuple[JobRecord, bool]] = []
        for seq, job in enumerate(fresh, base + 1):
            found = there[job.id]
            if found[SEQ] == seq:
                stored.append((with_seq(job, seq), True))
            else:  # an older row keeps its own seq
                stored.append((decode(found), False))
        return stored

    def get(self, job_id: str) -> JobRecord | None:
        row = self._conn.execute(_GET, (job_id,)).fetchone()
        return None if row is None else decode(row)

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
            f"SELECT {COLUMNS} FROM trunner_jobs {clause}"
            "ORDER BY seq DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return self._readable(rows)

    def counts(self) -> JobCounts:
        counts = JobCounts()
        for state, count in self._conn.execute(
            "SELECT state, count(*) FROM trunner_jobs GROUP BY state"
        ):
            known = STATES.get(state)
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
        finished: builtins.list[Params] = []
        requeued: builtins.list[Params] = []
        released: builtins.list[Params] = []
        change = self._stamp(conn) if held else 0
        for end in ends:
            job_id = end.job_id
            if job_id not in held:
                ended.append(False)
                continue
            held.discard(job_id)
            ended.append(True)
            at = ts(end.at)
            if end.state is not JobState.PENDING:
                state = end.state._value_
                finished.append(
                    (change, state, at, end.result, end.error, job_id, worker)
                )
            elif end.run_at is not None:
                requeued.append((change, ts(end.run_at), at, end.error, job_id, worker))
            else:
                released.append((change, at, job_id, worker))
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
        now_ts = ts(now)
        lease_ts = ts(lease_until)
        if handlers is None:
            sql = (
                f"SELECT {COLUMNS} FROM trunner_jobs {_CLAIM_INDEX} "
                "WHERE state = 'pending' AND run_at <= ? "
                "ORDER BY priority DESC, run_at, seq LIMIT ?"
            )
            params: tuple[object, ...] = (now_ts,)
        else:
            sql = (
                f"SELECT {COLUMNS} FROM trunner_jobs {_CLAIM_INDEX} "
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
                claimed[STATE] = "running"
                claimed[WORKER] = worker
                claimed[LEASE] = lease_ts
                claimed[STARTED] = now_ts
                claimed[CANCEL] = 0
                attempts = claimed[ATTEMPTS]
                if isinstance(attempts, int):
                    claimed[ATTEMPTS] = attempts + 1
                try:
                    taken.append(decode(claimed))
                except SerializationError as error:
                    bad.append((row[SEQ], str(error)))
                    continue
                if len(taken) == limit:
                    break
            # Corrupted rows fail below: look further until enough are
            # taken or there are no more due jobs.
            if len(taken) == limit or len(rows) < window:
                break
            window = limit + len(rows) - len(taken)
        if not taken and not bad:
            return taken
        change = self._stamp(conn)
        conn.executemany(
            _CLAIM_UPDATE,
            [(change, worker, lease_ts, now_ts, job.seq) for job in taken],
        )
        if bad:
            # Left PENDING, a corrupted due row would be due for ever and
            # each claim would meet it again: it fails, once, saying why.
            conn.executemany(
                _FAIL_CORRUPTED,
                [(change, why, now_ts, worker, seq) for seq, why in bad],
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
            return opt_dt(row[0])
        except DECODE_ERRORS as error:
            raise SerializationError(
                f"a stored job is due at an impossible time: {row[0]!r}"
            ) from error

    def renew(
        self, worker: str, job_ids: tuple[str, ...], lease_until: dt.datetime
    ) -> RenewResult:
        lease_ts = ts(lease_until)
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
            count = conn.execute(sql, (self._stamp(conn), *params)).rowcount
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
            _COMPLETE, (state.value, ts(finished_at), result, error, job_id, worker)
        )

    def requeue(
        self,
        job_id: str,
        worker: str,
        run_at: dt.datetime,
        error: str | None,
        now: dt.datetime,
    ) -> bool:
        return self._update_held(_REQUEUE, (ts(run_at), ts(now), error, job_id, worker))

    def release(self, job_id: str, worker: str, now: dt.datetime) -> bool:
        return self._update_held(_RELEASE, (ts(now), job_id, worker))

    def expire_leases(self, now: dt.datetime) -> builtins.list[JobRecord]:
        now_ts = ts(now)
        with self._write() as conn:
            # Stamped only when a lease did expire (the usual answer is none).
            if not conn.execute(
                "SELECT 1 FROM trunner_jobs WHERE state = 'running' "
                "AND lease_until < ? LIMIT 1",
                (now_ts,),
            ).fetchone():
                return []
            change = self._stamp(conn)
            rows = conn.execute(
                _STAMP + "state = 'cancelled', finished_at = ?, "
                "lease_until = NULL WHERE state = 'running' AND lease_until < ? "
                f"AND cancel_requested RETURNING {COLUMNS}",
                (change, now_ts, now_ts),
            ).fetchall()
            rows += conn.execute(
                _STAMP + "state = 'failed', error = 'lease expired', "
                "finished_at = ?, lease_until = NULL WHERE state = 'running' "
                "AND lease_until < ? AND attempts >= max_attempts "
                f"RETURNING {COLUMNS}",
                (change, now_ts, now_ts),
            ).fetchall()
            rows += conn.execute(
                _STAMP + "state = 'pending', run_at = ?, "
                "lease_until = NULL WHERE state = 'running' AND lease_until < ? "
                f"RETURNING {COLUMNS}",
                (change, now_ts, now_ts),
            ).fetchall()
        rows.sort(key=lambda row: row[SEQ])
        return self._readable(rows)

    def _change(
        self, job_id: str, changes: Sequence[tuple[str, tuple[object, ...]]]
    ) -> JobRecord | None:
        """Run the first of ``changes`` that matches the job; return it after."""
        with self._write() as conn:
            for sql, params in changes:
                row = conn.execute(
                    f"{sql} RETURNING {COLUMNS}", (self._stamp(conn), *params)
                ).fetchone()
                if row is not None:
                    return decode(row)
            row = conn.execute(_GET, (job_id,)).fetchone()
            return None if row is None else decode(row)

    def request_cancel(self, job_id: str, now: dt.datetime) -> JobRecord | None:
        return self._change(
            job_id,
            [
                (
                    _STAMP + "state = 'cancelled', finished_at = ? "
                    "WHERE id = ? AND state = 'pending'",
                    (ts(now), job_id),
                ),
                (
                    _STAMP + "cancel_requested = 1 "
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
                    _STAMP + "state = 'pending', attempts = 0, "
                    "run_at = ?, result = NULL, error = NULL, started_at = NULL, "
                    "finished_at = NULL, worker = NULL, lease_until = NULL, "
                    "cancel_requested = 0 "
                    "WHERE id = ? AND state IN ('failed', 'cancelled')",
                    (ts(now), job_id),
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
            params.append(ts(finished_before))
        if keep_latest is not None:
            bounds.append(
                f"seq NOT IN (SELECT seq FROM trunner_jobs WHERE {where} "
                "ORDER BY finished_at DESC, seq DESC LIMIT ?)"
            )
            params.append(keep_latest)
        if bounds:
            where = f"{where} AND ({' OR '.join(bounds)})"
        with self._write() as conn:
            conn.execute(_KEEP_FLOOR)
            return conn.execute(
                f"DELETE FROM trunner_jobs WHERE {where}", params
            ).rowcount

    def delete(self, job_id: str) -> bool:
        with self._write() as conn:
            row = conn.execute(_GET, (job_id,)).fetchone()
            if row is None:
                return False
            try:
                state = decode(row).state
            except SerializationError:
                state = None  # unreadable: deleted whatever it holds
            if state is JobState.PENDING or state is JobState.RUNNING:
                return False
            conn.execute(_KEEP_FLOOR)
            conn.execute("DELETE FROM trunner_jobs WHERE seq = ?", (row[SEQ],))
        self._reported.discard(row[SEQ])
        return True

    # ------------------------------------------------------------- schedules

    def put_schedule(self, schedule: ScheduleRecord) -> None:
        with self._write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO trunner_schedules ({SCHEDULE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    schedule.name,
                    schedule.handler,
                    schedule.args,
                    schedule.cron,
                    schedule.every,
                    ts(schedule.next_run_at),
                    schedule.priority,
                    schedule.timeout,
                    schedule.retry,
                    ts(schedule.created_at),
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
            f"SELECT {SCHEDULE_COLUMNS} FROM trunner_schedules ORDER BY name"
        ):
            try:
                schedules.append(decode_schedule(row))
            except SerializationError as error:
                if ("schedule", row[0]) not in self._reported:  # once each
                    self._reported.add(("schedule", row[0]))
                    logger.warning("skipping a schedule: %s", error)
        return schedules

    def advance_schedule(
        self, name: str, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        with self._write() as conn:
            count = conn.execute(
                "UPDATE trunner_schedules SET next_run_at = ? "
                "WHERE name = ? AND next_run_at = ?",
                (ts(next_run_at), name, ts(expected)),
            ).rowcount
        return count == 1
