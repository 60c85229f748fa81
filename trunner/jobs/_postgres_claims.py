"""Ends and claims of PostgresJobStore: the worker's hot path as one statement.

`end_and_claim_sql` builds the statement that applies a worker's ends of jobs
(finished, retried, released), then claims the next due jobs with ``FOR
UPDATE SKIP LOCKED``, in one statement: one round trip, one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

from ._postgres_rows import COLUMNS, J_COLUMNS, check_time

if TYPE_CHECKING:
    import builtins
    import datetime as dt
    from collections.abc import Collection


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
# claimed rows have true, then the COLUMNS of the job.
_NULLS: Final = (
    "NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::int4, "
    "NULL::int4, NULL::int4, NULL::timestamptz, NULL::timestamptz, "
    "NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::text, NULL::text, "
    "NULL::timestamptz, NULL::bool, NULL::float8, NULL::text"
)


def end_and_claim_sql(
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
    # (the id is the second column of COLUMNS: replace its NULL above)
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
            f"FROM p WHERE j.seq = p.seq RETURNING {J_COLUMNS})"
        )
        selects.append(f"SELECT true, {COLUMNS} FROM c")
    if not selects:
        return "SELECT NULL WHERE false"
    prefix = f"WITH {', '.join(parts)} " if parts else ""
    return prefix + " UNION ALL ".join(selects)
