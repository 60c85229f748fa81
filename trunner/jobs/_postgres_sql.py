"""The SQL of PostgresJobStore: schema migrations, statements, row decoding.

Every method of `Database` is synchronous and takes the psycopg connection to
use first: the store's pool runs it on a worker thread. Connections are in
autocommit mode, and nearly every method is one statement (hence one round
trip and one transaction); the few that need more run in a transaction.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
from typing import TYPE_CHECKING, Final, LiteralString, TypeAlias, final

import psycopg
from psycopg import sql

from ._errors import SerializationError, StoreError
from ._job import JobRecord, JobState, ScheduleRecord
from ._sqlite import with_seq
from ._store import RenewResult

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from psycopg.rows import TupleRow

logger: Final = logging.getLogger("trunner.jobs")

Connection: TypeAlias = "psycopg.Connection[TupleRow]"

_STATES: Final = {state.value: state for state in JobState}
_UTC: Final = dt.UTC

#: The migrations, in order: (version, what it does, its statements). Each runs
#: in the transaction that records it in the schema's ``migrations`` table.
#: ``{s}`` is the store's schema. Append new ones; never change a shipped one.
MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (
        1,
        "jobs, schedules, and the NOTIFY trigger of jobs becoming pending",
        (
            """
            CREATE TABLE {s}.jobs (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                handler text NOT NULL,
                args text NOT NULL,
                state text NOT NULL CHECK (state IN
                    ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
                priority integer NOT NULL,
                attempts integer NOT NULL,
                max_attempts integer NOT NULL,
                created_at timestamptz NOT NULL,
                run_at timestamptz NOT NULL,
                started_at timestamptz,
                finished_at timestamptz,
                result text,
                error text,
                worker text,
                lease_until timestamptz,
                cancel_requested boolean NOT NULL DEFAULT false,
                timeout double precision,
                retry text
            )
            """,
            # Partial indexes: an insert (a PENDING row) pays for the claim and
            # due indexes only. The claim index is in claim order.
            """
            CREATE INDEX jobs_claim ON {s}.jobs (priority DESC, run_at, seq)
                WHERE state = 'pending'
            """,
            "CREATE INDEX jobs_due ON {s}.jobs (run_at) WHERE state = 'pending'",
            """
            CREATE INDEX jobs_lease ON {s}.jobs (lease_until)
                WHERE state = 'running'
            """,
            """
            CREATE INDEX jobs_finished ON {s}.jobs (finished_at)
                WHERE finished_at IS NOT NULL
            """,
            """
            CREATE TABLE {s}.schedules (
                name text PRIMARY KEY,
                handler text NOT NULL,
                args text NOT NULL,
                cron text,
                every double precision,
                next_run_at timestamptz NOT NULL,
                priority integer NOT NULL,
                timeout double precision,
                retry text,
                created_at timestamptz NOT NULL
            )
            """,
            # Wake-ups: a job that becomes PENDING, by any client (an operator's
            # SQL too), notifies the channel named after the schema, with its
            # handler as payload. PostgreSQL sends them at commit, once per
            # distinct payload per transaction.
            """
            CREATE FUNCTION {s}.notify_pending() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify(TG_TABLE_SCHEMA, NEW.handler);
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER jobs_pending AFTER INSERT OR UPDATE OF state ON {s}.jobs
                FOR EACH ROW WHEN (NEW.state = 'pending')
                EXECUTE FUNCTION {s}.notify_pending()
            """,
        ),
    ),
)

#: The newest schema version this module knows.
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]

_COLUMNS: Final = (
    "seq, id, handler, args, state, priority, attempts, max_attempts, created_at, "
    "run_at, started_at, finished_at, result, error, worker, lease_until, "
    "cancel_requested, timeout, retry"
)
_J_COLUMNS: Final = ", ".join(f"j.{name.strip()}" for name in _COLUMNS.split(","))
_SCHEDULE_COLUMNS: Final = (
    "name, handler, args, cron, every, next_run_at, priority, timeout, retry, "
    "created_at"
)
# The columns an insert writes (seq comes from the identity), with their types.
_INSERT_COLUMNS: Final = (
    ("id", "text"),
    ("handler", "text"),
    ("args", "text"),
    ("state", "text"),
    ("priority", "int4"),
    ("attempts", "int4"),
    ("max_attempts", "int4"),
    ("created_at", "timestamptz"),
    ("run_at", "timestamptz"),
    ("started_at", "timestamptz"),
    ("finished_at", "timestamptz"),
    ("result", "text"),
    ("error", "text"),
    ("worker", "text"),
    ("lease_until", "timestamptz"),
    ("cancel_requested", "bool"),
    ("timeout", "float8"),
    ("retry", "text"),
)
_TEXT_FIELDS: Final = ("id", "handler", "args", "result", "error", "worker", "retry")


def _exec(
    conn: Connection,
    query: str,
    params: Sequence[object] | dict[str, object] | None = None,
) -> psycopg.Cursor[TupleRow]:
    """Execute ``query``: SQL of this module, with the schema's name quoted in."""
    return conn.execute(literal(query), params)


def literal(query: str) -> LiteralString:
    # The statements are this module's (no user text but the schema's name,
    # which is checked and quoted): vouch for them to psycopg's typing.
    return query  # pyright: ignore[reportReturnType]


def listen(conn: Connection, channel: str) -> None:
    """LISTEN on ``channel`` (a checked schema name)."""
    _exec(conn, f'LISTEN "{channel}"')


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is _UTC else value.astimezone(_UTC)


def _opt_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _utc(value)


def check_time(value: dt.datetime) -> dt.datetime:
    """Return ``value`` if it is timezone-aware, else raise `ValueError`."""
    if value.tzinfo is None:
        raise ValueError(
            f"store times must be timezone-aware UTC datetimes, not {value!r}"
        )
    return value


def decode(row: Sequence[object]) -> JobRecord:
    """Make the record of a row of ``_COLUMNS``.

    Raises:
        SerializationError: if the row cannot be read (a state that the
            schema's CHECK should have refused).
    """
    state = _STATES.get(row[4])  # type: ignore[call-overload]  # any value: checked here
    if state is None:
        raise SerializationError(
            f"the stored job (seq {row[0]!r}, id {row[1]!r}) is corrupted and "
            f"cannot be read: unknown state {row[4]!r}"
        )
    return JobRecord(
        seq=row[0],  # type: ignore[arg-type]  # typed by the column
        id=row[1],  # type: ignore[arg-type]
        handler=row[2],  # type: ignore[arg-type]
        args=row[3],  # type: ignore[arg-type]
        state=state,
        priority=row[5],  # type: ignore[arg-type]
        attempts=row[6],  # type: ignore[arg-type]
        max_attempts=row[7],  # type: ignore[arg-type]
        created_at=_utc(row[8]),  # type: ignore[arg-type]
        run_at=_utc(row[9]),  # type: ignore[arg-type]
        started_at=_opt_utc(row[10]),  # type: ignore[arg-type]
        finished_at=_opt_utc(row[11]),  # type: ignore[arg-type]
        result=row[12],  # type: ignore[arg-type]
        error=row[13],  # type: ignore[arg-type]
        worker=row[14],  # type: ignore[arg-type]
        lease_until=_opt_utc(row[15]),  # type: ignore[arg-type]
        cancel_requested=row[16],  # type: ignore[arg-type]
        timeout=row[17],  # type: ignore[arg-type]
        retry=row[18],  # type: ignore[arg-type]
    )


def _decode_schedule(row: Sequence[object]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row[0],  # type: ignore[arg-type]  # typed by the column
        handler=row[1],  # type: ignore[arg-type]
        args=row[2],  # type: ignore[arg-type]
        cron=row[3],  # type: ignore[arg-type]
        every=row[4],  # type: ignore[arg-type]
        next_run_at=_utc(row[5]),  # type: ignore[arg-type]
        priority=row[6],  # type: ignore[arg-type]
        timeout=row[7],  # type: ignore[arg-type]
        retry=row[8],  # type: ignore[arg-type]
        created_at=_utc(row[9]),  # type: ignore[arg-type]
    )


def check_storable(job: JobRecord) -> None:
    """Refuse a job that PostgreSQL cannot store (a NUL character in its text).

    Raises:
        SerializationError: naming the job and the field.
    """
    for name in _TEXT_FIELDS:
        value = getattr(job, name)
        if value is not None and "\x00" in value:
            raise SerializationError(
                f"job {job.id!r} cannot be stored in PostgreSQL: its {name} "
                "contains a NUL character (\\x00), which PostgreSQL text refuses"
            )
    for name in ("created_at", "run_at", "started_at", "finished_at", "lease_until"):
        value = getattr(job, name)
        if value is not None:
            check_time(value)


def _storable_names(handlers: Collection[str]) -> builtins.list[str]:
    # A name with a NUL can be no stored job's handler: leave it out.
    return [name for name in dict.fromkeys(handlers) if "\x00" not in name]


def _sort_claimed(records: builtins.list[JobRecord]) -> builtins.list[JobRecord]:
    records.sort(key=lambda job: (-job.priority, job.run_at, job.seq))
    return records


@final
class Database:
    """The statements of one schema; every method runs on a pool thread."""

    __slots__ = ("_reported", "_s", "_statements", "schema")

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._s = sql.Identifier(schema).as_string(None)
        self._statements: dict[object, str] = {}
        # Seqs of the unreadable rows already logged (once each).
        self._reported: set[object] = set()

    def _q(self, text: str) -> str:
        return text.replace("{s}", self._s)

    def _statement(self, key: object, text: str) -> str:
        cached = self._statements.get(key)
        if cached is None:
            cached = self._statements[key] = self._q(text)
        return cached

    def _readable(self, rows: Sequence[Sequence[object]]) -> builtins.list[JobRecord]:
        """Decode ``rows``, leaving out (and logging once) unreadable ones."""
        records: builtins.list[JobRecord] = []
        for row in rows:
            try:
                records.append(decode(row))
            except SerializationError as error:
                if row[0] not in self._reported:
                    self._reported.add(row[0])
                    logger.warning("skipping a job: %s", error)
        return records

    # ------------------------------------------------------------ schema

    def migrate(self, conn: Connection) -> int:
        """Create or migrate the schema; return its version.

        Raises:
            StoreError: if the schema is newer than this module knows.
        """
        with conn.transaction():
            # One migrator at a time, whichever process: the lock is the
            # schema's, and goes with the transaction.
            _exec(
                conn,
                "SELECT pg_advisory_xact_lock(hashtext('trunner.migrate'), "
                "hashtext(%s))",
                (self.schema,),
            )
            _exec(conn, self._q("CREATE SCHEMA IF NOT EXISTS {s}"))
            _exec(
                conn,
                self._q(
                    "CREATE TABLE IF NOT EXISTS {s}.migrations ("
                    "version integer PRIMARY KEY, description text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())"
                ),
            )
            row = _exec(
                conn, self._q("SELECT max(version) FROM {s}.migrations")
            ).fetchone()
            current = 0 if row is None or row[0] is None else int(row[0])
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"PostgreSQL schema {self.schema!r} is at version {current}, "
                    f"newer than the version {SCHEMA_VERSION} this trunner knows; "
                    "upgrade trunner (a store never runs against a newer schema)"
                )
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    _exec(conn, self._q(statement))
                _exec(
                    conn,
                    self._q(
                        "INSERT INTO {s}.migrations (version, description) "
                        "VALUES (%s, %s)"
                    ),
                    (version, description),
                )
                current = version
        return current

    # ------------------------------------------------------------ jobs

    def insert_again(
        self, conn: Connection, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        """`insert` after an attempt whose connection died: it may have committed.

        A job found stored exactly as given (same fields, to the microsecond)
        counts as inserted by this call.
        """
        return self.insert(conn, jobs, mine=True)

    def insert(
        self,
        conn: Connection,
        jobs: Sequence[JobRecord],
        *,
        mine: bool = False,
    ) -> builtins.list[tuple[JobRecord, bool]]:
        # The first job of each id is the one inserted; usually all are.
        first: dict[str, JobRecord] = {}
        for job in jobs:
            first.setdefault(job.id, job)
        fresh = builtins.list(first.values())
        columns: builtins.list[builtins.list[object]] = [[] for _ in _INSERT_COLUMNS]
        for job in fresh:
            for values, (name, _) in zip(columns, _INSERT_COLUMNS, strict=True):
                value: object = getattr(job, name)
                values.append(value.value if name == "state" else value)  # type: ignore[attr-defined]  # a JobState
        statement = self._statement(
            "insert",
            "INSERT INTO {s}.jobs ("
            + ", ".join(name for name, _ in _INSERT_COLUMNS)
            + ") SELECT "
            + ", ".join(name for name, _ in _INSERT_COLUMNS)
            + " FROM unnest("
            + ", ".join(f"%s::{kind}[]" for _, kind in _INSERT_COLUMNS)
            + ") WITH ORDINALITY AS t("
            + ", ".join(name for name, _ in _INSERT_COLUMNS)
            + ", ord) ORDER BY ord ON CONFLICT (id) DO NOTHING RETURNING id, seq",
        )
        seqs: dict[str, int] = dict(_exec(conn, statement, columns).fetchall())
        stored: dict[str, tuple[JobRecord, bool]] = {}
        there: dict[str, JobRecord] = {}
        missing = [job.id for job in fresh if job.id not in seqs]
        if missing:
            for row in _exec(
                conn,
                self._q(f"SELECT {_COLUMNS} FROM {{s}}.jobs WHERE id = ANY(%s)"),
                (missing,),
            ):
                there[row[1]] = decode(row)
        for job in fresh:
            seq = seqs.get(job.id)
            if seq is not None:
                stored[job.id] = (with_seq(job, seq), True)
            elif job.id in there:
                found = there[job.id]
                same = mine and found == with_seq(job, found.seq)
                stored[job.id] = (found, same)
            else:
                raise StoreError(
                    f"job {job.id!r} was there at insert, and gone right after "
                    "(purged meanwhile); submit it again"
                )
        result: builtins.list[tuple[JobRecord, bool]] = []
        for job in jobs:
            record, new = stored[job.id]
            # A later duplicate in the same batch was not inserted.
            result.append((record, new and first[job.id] is job))
        return result

    def get(self, conn: Connection, job_id: str) -> JobRecord | None:
        row = _exec(
            conn,
            self._statement("get", f"SELECT {_COLUMNS} FROM {{s}}.jobs WHERE id = %s"),
            (job_id,),
        ).fetchone()
        return None if row is None else decode(row)

    def list(
        self,
        conn: Connection,
        state: JobState | None,
        handler: str | None,
        limit: int,
        offset: int,
    ) -> builtins.list[JobRecord]:
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        if state is not None:
            where.append("state = %s")
            params.append(state.value)
        if handler is not None:
            where.append("handler = %s")
            params.append(handler)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = _exec(
            conn,
            self._q(
                f"SELECT {_COLUMNS} FROM {{s}}.jobs {clause}"
                "ORDER BY seq DESC LIMIT %s OFFSET %s"
            ),
            (*params, limit, offset),
        ).fetchall()
        return self._readable(rows)

    def counts(self, conn: Connection) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for state, count in _exec(
            conn, self._q("SELECT state, count(*) FROM {s}.jobs GROUP BY state")
        ):
            known = _STATES.get(state)
            if known is not None:
                counts[known] = count
        return counts

    def next_due(
        self,
        conn: Connection,
        handlers: Collection[str] | None,
    ) -> dt.datetime | None:
        if handlers is None:
            row = _exec(
                conn,
                self._q("SELECT min(run_at) FROM {s}.jobs WHERE state = 'pending'"),
            ).fetchone()
        else:
            row = _exec(
                conn,
                self._q(
                    "SELECT min(run_at) FROM {s}.jobs "
                    "WHERE state = 'pending' AND handler = ANY(%s)"
                ),
                (_storable_names(handlers),),
            ).fetchone()
        return None if row is None else _opt_utc(row[0])

    def renew(
        self,
        conn: Connection,
        worker: str,
        job_ids: Sequence[str],
        lease_until: dt.datetime,
    ) -> RenewResult:
        held: set[str] = set()
        cancel: set[str] = set()
        for job_id, cancel_requested in _exec(
            conn,
            self._statement(
                "renew",
                "UPDATE {s}.jobs SET lease_until = %s "
                "WHERE state = 'running' AND worker = %s AND id = ANY(%s) "
                "RETURNING id, cancel_requested",
            ),
            (check_time(lease_until), worker, builtins.list(job_ids)),
        ):
            held.add(job_id)
            if cancel_requested:
                cancel.add(job_id)
        return RenewResult(held=frozenset(held), cancel_requested=frozenset(cancel))

    # ------------------------------------------------------------ ends and claims

    def end_and_claim(
        self,
        conn: Connection,
        worker: str,
        ends: Sequence[End],
        claim: Claim | None,
    ) -> tuple[builtins.list[bool], builtins.list[JobRecord]]:
        """Apply ``ends`` of jobs ``worker`` holds, then ``claim``: one statement.

        One statement is one transaction and one round trip. Its parts see the
        same snapshot, so a job that ``ends`` makes PENDING is not claimed
        again by the same call (the protocol allows either).

        Returns:
            Whether each end applied, and the jobs claimed in claim order.
        """
        finished = [end for end in ends if end.kind == "finished"]
        retried = [end for end in ends if end.kind == "retry"]
        released = [end for end in ends if end.kind == "release"]
        handlers = None if claim is None else claim.handlers
        if claim is not None and handlers is not None:
            handlers = _storable_names(handlers)
            if not handlers:
                claim = None
        key = (
            "end_and_claim",
            bool(finished),
            bool(retried),
            bool(released),
            None if claim is None else handlers is None,
        )
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = self._q(
                _end_and_claim_sql(
                    bool(finished),
                    bool(retried),
                    bool(released),
                    None if claim is None else handlers is None,
                )
            )
        params: dict[str, object] = {"worker": worker}
        if finished:
            params["f_id"] = [end.job_id for end in finished]
            params["f_state"] = [end.state for end in finished]
            params["f_at"] = [end.at for end in finished]
            params["f_result"] = [end.result for end in finished]
            params["f_error"] = [end.error for end in finished]
        if retried:
            params["q_id"] = [end.job_id for end in retried]
            params["q_run_at"] = [end.run_at for end in retried]
            params["q_at"] = [end.at for end in retried]
            params["q_error"] = [end.error for end in retried]
        if released:
            params["r_id"] = [end.job_id for end in released]
            params["r_at"] = [end.at for end in released]
        if claim is not None:
            params["now"] = claim.now
            params["lease_until"] = claim.lease_until
            params["limit"] = claim.limit
            if handlers is not None:
                params["handlers"] = handlers
        ended: set[str] = set()
        rows: builtins.list[tuple[object, ...]] = []
        for row in _exec(conn, statement, params):
            if row[0] is None:
                ended.add(row[2])
            else:
                rows.append(row[1:])
        claimed = _sort_claimed(self._readable(rows))
        return [end.job_id in ended for end in ends], claimed

    def expire_leases(
        self, conn: Connection, now: dt.datetime
    ) -> builtins.list[JobRecord]:
        rows = _exec(
            conn,
            self._statement(
                "expire",
                "UPDATE {s}.jobs SET state = CASE WHEN cancel_requested "
                "THEN 'cancelled' WHEN attempts >= max_attempts THEN 'failed' "
                "ELSE 'pending' END, "
                "finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts "
                "THEN %(now)s ELSE finished_at END, "
                "error = CASE WHEN NOT cancel_requested AND attempts >= max_attempts "
                "THEN 'lease expired' ELSE error END, "
                "run_at = CASE WHEN cancel_requested OR attempts >= max_attempts "
                "THEN run_at ELSE %(now)s END, lease_until = NULL "
                "WHERE state = 'running' AND lease_until < %(now)s "
                f"RETURNING {_COLUMNS}",
            ),
            {"now": check_time(now)},
        ).fetchall()
        return sorted(self._readable(rows), key=lambda job: job.seq)

    def _change(
        self,
        conn: Connection,
        job_id: str,
        changes: Sequence[str],
        params: dict[str, object],
    ) -> JobRecord | None:
        """Apply the first of ``changes`` (UPDATEs) that matches; return the job.

        In one transaction: a row that cannot be read changes nothing.
        """
        parts = [
            f"c{n} AS ({change} RETURNING {_COLUMNS})"
            for n, change in enumerate(changes)
        ]
        chosen = " UNION ALL ".join(
            f"SELECT {_COLUMNS} FROM c{n}" for n in range(len(changes))
        )
        untouched = " AND ".join(
            f"NOT EXISTS (SELECT FROM c{n})" for n in range(len(changes))
        )
        statement = self._statement(
            ("change", *changes),
            f"WITH {', '.join(parts)} {chosen} UNION ALL "
            f"SELECT {_COLUMNS} FROM {{s}}.jobs WHERE id = %(id)s AND {untouched}",
        )
        with conn.transaction():
            row = _exec(conn, statement, {**params, "id": job_id}).fetchone()
            return None if row is None else decode(row)

    def request_cancel(
        self, conn: Connection, job_id: str, now: dt.datetime
    ) -> JobRecord | None:
        return self._change(
            conn,
            job_id,
            (
                "UPDATE {s}.jobs SET state = 'cancelled', finished_at = %(now)s "
                "WHERE id = %(id)s AND state = 'pending'",
                "UPDATE {s}.jobs SET cancel_requested = true "
                "WHERE id = %(id)s AND state = 'running' AND NOT cancel_requested",
            ),
            {"now": check_time(now)},
        )

    def reset(
        self, conn: Connection, job_id: str, now: dt.datetime
    ) -> JobRecord | None:
        return self._change(
            conn,
            job_id,
            (
                "UPDATE {s}.jobs SET state = 'pending', attempts = 0, "
                "run_at = %(now)s, result = NULL, error = NULL, started_at = NULL, "
                "finished_at = NULL, worker = NULL, lease_until = NULL, "
                "cancel_requested = false "
                "WHERE id = %(id)s AND state IN ('failed', 'cancelled')",
            ),
            {"now": check_time(now)},
        )

    def purge(
        self,
        conn: Connection,
        finished_before: dt.datetime | None,
        keep_latest: int | None,
        states: frozenset[JobState],
    ) -> int:
        if not states:
            return 0
        names = sorted(state.value for state in states)
        where = "state = ANY(%(states)s)"
        params: dict[str, object] = {"states": names}
        bounds: builtins.list[str] = []
        if finished_before is not None:
            bounds.append("finished_at < %(before)s")
            params["before"] = check_time(finished_before)
        if keep_latest is not None:
            bounds.append(
                f"seq NOT IN (SELECT seq FROM {{s}}.jobs WHERE {where} "
                "ORDER BY finished_at DESC NULLS LAST, seq DESC LIMIT %(keep)s)"
            )
            params["keep"] = keep_latest
        if bounds:
            where = f"{where} AND ({' OR '.join(bounds)})"
        return _exec(
            conn,
            self._q(f"DELETE FROM {{s}}.jobs WHERE {where}"),
            params,
        ).rowcount

    # ------------------------------------------------------------ schedules

    def put_schedule(self, conn: Connection, schedule: ScheduleRecord) -> None:
        _exec(
            conn,
            self._statement(
                "put_schedule",
                f"INSERT INTO {{s}}.schedules ({_SCHEDULE_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET "
                + ", ".join(
                    f"{name.strip()} = EXCLUDED.{name.strip()}"
                    for name in _SCHEDULE_COLUMNS.split(",")[1:]
                ),
            ),
            (
                schedule.name,
                schedule.handler,
                schedule.args,
                schedule.cron,
                schedule.every,
                check_time(schedule.next_run_at),
                schedule.priority,
                schedule.timeout,
                schedule.retry,
                check_time(schedule.created_at),
            ),
        )

    def delete_schedule(self, conn: Connection, name: str) -> bool:
        return (
            _exec(
                conn, self._q("DELETE FROM {s}.schedules WHERE name = %s"), (name,)
            ).rowcount
            == 1
        )

    def list_schedules(self, conn: Connection) -> builtins.list[ScheduleRecord]:
        rows = _exec(
            conn,
            self._q(
                f"SELECT {_SCHEDULE_COLUMNS} FROM {{s}}.schedules "
                'ORDER BY name COLLATE "C"'
            ),
        ).fetchall()
        return [_decode_schedule(row) for row in rows]

    def advance_schedule(
        self,
        conn: Connection,
        name: str,
        expected: dt.datetime,
        next_run_at: dt.datetime,
    ) -> bool:
        return (
            _exec(
                conn,
                self._statement(
                    "advance",
                    "UPDATE {s}.schedules SET next_run_at = %s "
                    "WHERE name = %s AND next_run_at = %s",
                ),
                (check_time(next_run_at), name, check_time(expected)),
            ).rowcount
            == 1
        )


@final
class End:
    """One held job's end, as `Database.end_and_claim` applies it."""

    __slots__ = ("at", "error", "job_id", "kind", "result", "run_at", "state")

    def __init__(
        self,
        job_id: str,
        kind: str,
        *,
        at: dt.datetime,
        state: str | None = None,
        result: str | None = None,
        error: str | None = None,
        run_at: dt.datetime | None = None,
    ) -> None:
        self.job_id = job_id
        #: "finished", "retry" or "release".
        self.kind = kind
        self.at = check_time(at)
        self.state = state
        self.result = result
        self.error = error
        self.run_at = None if run_at is None else check_time(run_at)


@final
class Claim:
    """What `Database.end_and_claim` claims after the ends."""

    __slots__ = ("handlers", "lease_until", "limit", "now")

    def __init__(
        self,
        *,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> None:
        self.handlers = handlers
        self.now = check_time(now)
        self.lease_until = check_time(lease_until)
        self.limit = limit


# Rows of an end-and-claim statement: (ended id) rows have a NULL first column;
# claimed rows have true, then the _COLUMNS of the job.
_NULLS: Final = (
    "NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::int4, "
    "NULL::int4, NULL::int4, NULL::timestamptz, NULL::timestamptz, "
    "NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::text, NULL::text, "
    "NULL::timestamptz, NULL::bool, NULL::float8, NULL::text"
)


def _end_and_claim_sql(
    finished: bool, retried: bool, released: bool, claim_all: bool | None
) -> str:
    held = "j.id = e.id AND j.state = 'running' AND j.worker = %(worker)s"
    parts: builtins.list[str] = []
    ended: builtins.list[str] = []
    if finished:
        parts.append(
            "f AS (UPDATE {s}.jobs j SET state = e.state, finished_at = e.at, "
            "result = e.result, error = e.error, lease_until = NULL "
            "FROM unnest(%(f_id)s::text[], %(f_state)s::text[], "
            "%(f_at)s::timestamptz[], %(f_result)s::text[], %(f_error)s::text[]) "
            f"AS e(id, state, at, result, error) WHERE {held} RETURNING j.id)"
        )
        ended.append("f")
    if retried:
        # A job whose cancellation was requested ends CANCELLED instead: the
        # request is never lost.
        parts.append(
            "q AS (UPDATE {s}.jobs j SET "
            "state = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'pending' END, "
            "run_at = CASE WHEN j.cancel_requested THEN j.run_at ELSE e.run_at END, "
            "finished_at = CASE WHEN j.cancel_requested THEN e.at "
            "ELSE j.finished_at END, error = e.error, lease_until = NULL "
            "FROM unnest(%(q_id)s::text[], %(q_run_at)s::timestamptz[], "
            "%(q_at)s::timestamptz[], %(q_error)s::text[]) "
            f"AS e(id, run_at, at, error) WHERE {held} RETURNING j.id)"
        )
        ended.append("q")
    if released:
        parts.append(
            "r AS (UPDATE {s}.jobs j SET "
            "state = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'pending' END, "
            "finished_at = CASE WHEN j.cancel_requested THEN e.at "
            "ELSE j.finished_at END, attempts = CASE WHEN j.cancel_requested "
            "THEN j.attempts ELSE greatest(j.attempts - 1, 0) END, "
            "lease_until = NULL "
            "FROM unnest(%(r_id)s::text[], %(r_at)s::timestamptz[]) AS e(id, at) "
            f"WHERE {held} RETURNING j.id)"
        )
        ended.append("r")
    selects = [
        f"SELECT NULL::bool, {_NULLS.replace('NULL::text', 'id', 1)} FROM {name}"
        for name in ended
    ]
    # (the id is the second column of _COLUMNS: replace its NULL above)
    if claim_all is not None:
        handler = "" if claim_all else "AND handler = ANY(%(handlers)s) "
        parts.append(
            "p AS (SELECT seq FROM {s}.jobs "
            f"WHERE state = 'pending' AND run_at <= %(now)s {handler}"
            "ORDER BY priority DESC, run_at, seq LIMIT %(limit)s "
            "FOR UPDATE SKIP LOCKED)"
        )
        parts.append(
            "c AS (UPDATE {s}.jobs j SET state = 'running', worker = %(worker)s, "
            "lease_until = %(lease_until)s, started_at = %(now)s, "
            "attempts = j.attempts + 1, cancel_requested = false "
            f"FROM p WHERE j.seq = p.seq RETURNING {_J_COLUMNS})"
        )
        selects.append(f"SELECT true, {_COLUMNS} FROM c")
    if not selects:
        return "SELECT NULL WHERE false"
    prefix = f"WITH {', '.join(parts)} " if parts else ""
    return prefix + " UNION ALL ".join(selects)
