"""The schema of PostgresJobStore: its migrations, and how statements run.

A store's tables live in a schema of their own, created and migrated by
`migrate` with a versioned ``migrations`` table. The statements of the
``_postgres_*`` modules run through `execute`, and name the schema as ``{s}``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final, LiteralString, TypeAlias

import psycopg
from psycopg import sql

from ._errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from psycopg.rows import TupleRow

Connection: TypeAlias = "psycopg.Connection[TupleRow]"

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
    (
        2,
        "the NOTIFY triggers of job changes, for other processes' listeners",
        (
            # Each statement that inserts jobs, and each change of a job's
            # state or cancel request, notifies the schema's changes channel
            # (see `changes_channel`) with the writer's token (the
            # connection's trunner.writer setting, empty for other clients)
            # and the seqs of the jobs: an insert's in one message per 300
            # (well below PostgreSQL's 8000 bytes), an update's one per row
            # (a row trigger whose WHEN is checked without a call: a lease
            # renewal costs nothing, and it needs no transition tables).
            # PostgreSQL delivers them at commit, in commit order.
            """
            CREATE FUNCTION {s}.notify_changes(schema_name text, seqs bigint[])
                RETURNS void LANGUAGE plpgsql AS $$
            DECLARE
                channel text := 'trunner_changes_' || left(md5(schema_name), 16);
                writer text := coalesce(current_setting('trunner.writer', true), '');
                payload text;
            BEGIN
                FOR payload IN
                    SELECT writer || ' ' || string_agg(seq::text, ' ' ORDER BY n)
                    FROM unnest(seqs) WITH ORDINALITY AS t(seq, n)
                    GROUP BY (n - 1) / 300 ORDER BY (n - 1) / 300
                LOOP
                    PERFORM pg_notify(channel, payload);
                END LOOP;
            END
            $$
            """,
            """
            CREATE FUNCTION {s}.notify_inserted() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM {s}.notify_changes(
                    TG_TABLE_SCHEMA, ARRAY(SELECT seq FROM new_rows ORDER BY seq)
                );
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE FUNCTION {s}.notify_changed() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify(
                    'trunner_changes_' || left(md5(TG_TABLE_SCHEMA), 16),
                    coalesce(current_setting('trunner.writer', true), '')
                        || ' ' || NEW.seq
                );
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER jobs_inserted AFTER INSERT ON {s}.jobs
                REFERENCING NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION {s}.notify_inserted()
            """,
            """
            CREATE TRIGGER jobs_changed
                AFTER UPDATE OF state, cancel_requested ON {s}.jobs
                FOR EACH ROW WHEN (
                    OLD.state IS DISTINCT FROM NEW.state
                    OR OLD.cancel_requested IS DISTINCT FROM NEW.cancel_requested
                )
                EXECUTE FUNCTION {s}.notify_changed()
            """,
        ),
    ),
)

#: The newest schema version this module knows.
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]


def execute(
    conn: Connection,
    query: str,
    params: Sequence[object] | dict[str, object] | None = None,
) -> psycopg.Cursor[TupleRow]:
    """Execute ``query``: trunner's SQL, with the schema's name quoted in."""
    return conn.execute(literal(query), params)


def literal(query: str) -> LiteralString:
    # The statements are this module's (no user text but the schema's name,
    # which is checked and quoted): vouch for them to psycopg's typing.
    return query  # pyright: ignore[reportReturnType]


def listen(conn: Connection, channel: str) -> None:
    """LISTEN on ``channel`` (a checked schema name)."""
    execute(conn, f'LISTEN "{channel}"')


def changes_channel(schema: str) -> str:
    """The channel on which ``schema``'s job changes are notified (migration 2)."""
    digest = hashlib.md5(schema.encode(), usedforsecurity=False).hexdigest()
    return f"trunner_changes_{digest[:16]}"


def quoted(schema: str) -> str:
    """``schema`` as an SQL identifier."""
    return sql.Identifier(schema).as_string(None)


def _q(schema: str, text: str) -> str:
    return text.replace("{s}", quoted(schema))


def migrate(conn: Connection, schema: str) -> int:
    """Create or migrate the schema; return its version.

    Raises:
        StoreError: if the schema is newer than this module knows.
    """
    with conn.transaction():
        # One migrator at a time, whichever process: the lock is the
        # schema's, and goes with the transaction.
        execute(
            conn,
            "SELECT pg_advisory_xact_lock(hashtext('trunner.migrate'), hashtext(%s))",
            (schema,),
        )
        execute(conn, _q(schema, "CREATE SCHEMA IF NOT EXISTS {s}"))
        execute(
            conn,
            _q(
                schema,
                "CREATE TABLE IF NOT EXISTS {s}.migrations ("
                "version integer PRIMARY KEY, description text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
            ),
        )
        row = execute(
            conn, _q(schema, "SELECT max(version) FROM {s}.migrations")
        ).fetchone()
        current = 0 if row is None or row[0] is None else int(row[0])
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"PostgreSQL schema {schema!r} is at version {current}, "
                f"newer than the version {SCHEMA_VERSION} this trunner knows; "
                "upgrade trunner (a store never runs against a newer schema)"
            )
        for version, description, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                execute(conn, _q(schema, statement))
            execute(
                conn,
                _q(
                    schema,
                    "INSERT INTO {s}.migrations (version, description) VALUES (%s, %s)",
                ),
                (version, description),
            )
            current = version
    return current
