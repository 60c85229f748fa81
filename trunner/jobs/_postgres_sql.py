"""The statements of PostgresJobStore, and how its rows decode.

Every method of `Database` is synchronous and takes the psycopg connection to
use first: the store's pool runs it on a worker thread. Connections are in
autocommit mode, and nearly every method is one statement (hence one round
trip and one transaction); the few that need more run in a transaction.
"""

from __future__ import annotations

import builtins
import logging
from typing import TYPE_CHECKING, Final, final

from ._errors import SerializationError, StoreError
from ._job import JobCounts, JobRecord, JobState, ScheduleRecord
from ._postgres_claims import Claim, End, end_and_claim_sql
from ._postgres_rows import (
    COLUMNS,
    INSERT_COLUMNS,
    SCHEDULE_COLUMNS,
    STATES,
    check_time,
    decode,
    decode_schedule,
    opt_utc,
    sort_claimed,
    storable_names,
)
from ._postgres_schema import Connection, execute, quoted
from ._sqlite_codec import with_seq
from ._store import RenewResult

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Collection, Sequence


logger: Final = logging.getLogger("trunner.jobs")


@final
class Database:
    """The statements of one schema; every method runs on a pool thread."""

    __slots__ = ("_reported", "_s", "_statements", "schema")

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._s = quoted(schema)
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
        columns: builtins.list[builtins.list[object]] = [[] for _ in INSERT_COLUMNS]
        for job in fresh:
            for values, (name, _) in zip(columns, INSERT_COLUMNS, strict=True):
                value: object = getattr(job, name)
                values.append(value.value if name == "state" else value)  # type: ignore[attr-defined]  # a JobState
        statement = self._statement(
            "insert",
            "INSERT INTO {s}.jobs ("
            + ", ".join(name for name, _ in INSERT_COLUMNS)
            + ") SELECT "
            + ", ".join(name for name, _ in INSERT_COLUMNS)
            + " FROM unnest("
            + ", ".join(f"%s::{kind}[]" for _, kind in INSERT_COLUMNS)
            + ") WITH ORDINALITY AS t("
            + ", ".join(name for name, _ in INSERT_COLUMNS)
            + ", ord) ORDER BY ord ON CONFLICT (id) DO NOTHING RETURNING id, seq",
        )
        seqs: dict[str, int] = dict(execute(conn, statement, columns).fetchall())
        stored: dict[str, tuple[JobRecord, bool]] = {}
        there: dict[str, JobRecord] = {}
        missing = [job.id for job in fresh if job.id not in seqs]
        if missing:
            for row in execute(
                conn,
                self._q(f"SELECT {COLUMNS} FROM {{s}}.jobs WHERE id = ANY(%s)"),
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
        row = execute(
            conn,
            self._statement("get", f"SELECT {COLUMNS} FROM {{s}}.jobs WHERE id = %s"),
            (job_id,),
        ).fetchone()
        return None if row is None else decode(row)

    def by_seqs(
        self, conn: Connection, seqs: Sequence[int]
    ) -> builtins.list[JobRecord]:
        """Return the jobs of ``seqs`` still stored, in the order of ``seqs``."""
        rows = execute(
            conn,
            self._statement(
                "by_seqs",
                f"SELECT {COLUMNS} FROM {{s}}.jobs WHERE seq = ANY(%s::bigint[])",
            ),
            (builtins.list(seqs),),
        ).fetchall()
        order = {seq: index for index, seq in enumerate(seqs)}
        rows.sort(key=lambda row: order[row[0]])
        return self._readable(rows)

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
        rows = execute(
            conn,
            self._q(
                f"SELECT {COLUMNS} FROM {{s}}.jobs {clause}"
                "ORDER BY seq DESC LIMIT %s OFFSET %s"
            ),
            (*params, limit, offset),
        ).fetchall()
        return self._readable(rows)

    def counts(self, conn: Connection) -> JobCounts:
        counts = JobCounts()
        for state, count in execute(
            conn, self._q("SELECT state, count(*) FROM {s}.jobs GROUP BY state")
        ):
            known = STATES.get(state)
            if known is None:
                counts.unknown += count
            else:
                counts[known] = count
        return counts

    def next_due(
        self,
        conn: Connection,
        handlers: Collection[str] | None,
    ) -> dt.datetime | None:
        if handlers is None:
            row = execute(
                conn,
                self._q("SELECT min(run_at) FROM {s}.jobs WHERE state = 'pending'"),
            ).fetchone()
        else:
            row = execute(
                conn,
                self._q(
                    "SELECT min(run_at) FROM {s}.jobs "
                    "WHERE state = 'pending' AND handler = ANY(%s)"
                ),
                (storable_names(handlers),),
            ).fetchone()
        return None if row is None else opt_utc(row[0])

    def renew(
        self,
        conn: Connection,
        worker: str,
        job_ids: Sequence[str],
        lease_until: dt.datetime,
    ) -> RenewResult:
        held: set[str] = set()
        cancel: set[str] = set()
        for job_id, cancel_requested in execute(
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
            handlers = storable_names(handlers)
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
                end_and_claim_sql(
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
        for row in execute(conn, statement, params):
            if row[0] is None:
                ended.add(row[2])
            else:
                rows.append(row[1:])
        claimed = sort_claimed(self._readable(rows))
        return [end.job_id in ended for end in ends], claimed

    def expire_leases(
        self, conn: Connection, now: dt.datetime
    ) -> builtins.list[JobRecord]:
        rows = execute(
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
                f"RETURNING {COLUMNS}",
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
            f"c{n} AS ({change} RETURNING {COLUMNS})"
            for n, change in enumerate(changes)
        ]
        chosen = " UNION ALL ".join(
            f"SELECT {COLUMNS} FROM c{n}" for n in range(len(changes))
        )
        untouched = " AND ".join(
            f"NOT EXISTS (SELECT FROM c{n})" for n in range(len(changes))
        )
        statement = self._statement(
            ("change", *changes),
            f"WITH {', '.join(parts)} {chosen} UNION ALL "
            f"SELECT {COLUMNS} FROM {{s}}.jobs WHERE id = %(id)s AND {untouched}",
        )
        with conn.transaction():
            row = execute(conn, statement, {**params, "id": job_id}).fetchone()
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

    def delete(self, conn: Connection, job_id: str) -> bool:
        # Finished, or a state no one can read: never pending nor running.
        return (
            execute(
                conn,
                self._statement(
                    "delete",
                    "DELETE FROM {s}.jobs WHERE id = %s "
                    "AND state NOT IN ('pending', 'running')",
                ),
                (job_id,),
            ).rowcount
            == 1
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
        return execute(
            conn,
            self._q(f"DELETE FROM {{s}}.jobs WHERE {where}"),
            params,
        ).rowcount

    # ------------------------------------------------------------ schedules

    def put_schedule(self, conn: Connection, schedule: ScheduleRecord) -> None:
        execute(
            conn,
            self._statement(
                "put_schedule",
                f"INSERT INTO {{s}}.schedules ({SCHEDULE_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET "
                + ", ".join(
                    f"{name.strip()} = EXCLUDED.{name.strip()}"
                    for name in SCHEDULE_COLUMNS.split(",")[1:]
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
            execute(
                conn, self._q("DELETE FROM {s}.schedules WHERE name = %s"), (name,)
            ).rowcount
            == 1
        )

    def list_schedules(self, conn: Connection) -> builtins.list[ScheduleRecord]:
        rows = execute(
            conn,
            self._q(
                f"SELECT {SCHEDULE_COLUMNS} FROM {{s}}.schedules "
                'ORDER BY name COLLATE "C"'
            ),
        ).fetchall()
        return [decode_schedule(row) for row in rows]

    def advance_schedule(
        self,
        conn: Connection,
        name: str,
        expected: dt.datetime,
        next_run_at: dt.datetime,
    ) -> bool:
        return (
            execute(
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
