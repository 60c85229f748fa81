"""The schema of SQLiteJobStore's file, and the connection's set-up.

`connect` opens the file in WAL mode with ``synchronous=FULL``, makes the
tables and indexes if they are missing, and refuses a file written in a newer
schema (`SCHEMA_VERSION`, kept in ``trunner_meta``), migrating an older one
(`MIGRATIONS`). `transaction` is the one way to write: it takes the write lock
first (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Final

from ._errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Generator

#: The schema this module writes; a file of a newer one is refused.
SCHEMA_VERSION: Final = 2

#: The migrations of a file made by an older version, in order: (the version
#: it brings the file to, its statements). Append new ones; never change one.
MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    # The change counter: every write that changes jobs' states stamps them
    # with the next number (see ``Database``), which other processes follow
    # (with the seqs of new jobs).
    (2, ("ALTER TABLE trunner_jobs ADD COLUMN change_seq INTEGER",)),
)

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
        retry TEXT,
        change_seq INTEGER
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


# Made once the column is there (a migrated file gets it with the migration).
# Partial: an insert leaves change_seq NULL, so the submit path does not pay
# for this index (followers find new jobs by seq).
_CHANGES_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS trunner_jobs_changed ON trunner_jobs (change_seq) "
    "WHERE change_seq IS NOT NULL"
)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Generator[sqlite3.Connection]:
    """Run the block in one write transaction (taking the write lock first)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # the first error matters
            conn.rollback()  # (a no-op if SQLite rolled back already)
        raise


def _migrate(conn: sqlite3.Connection, version: str) -> str:
    """Bring a file of an older schema to `SCHEMA_VERSION`; return its version."""
    for target, statements in MIGRATIONS:
        if not version.isdigit() or int(version) >= target:
            continue
        for statement in statements:
            conn.execute(statement)
        version = str(target)
        conn.execute(
            "UPDATE trunner_meta SET value = ? WHERE key = 'schema'", (version,)
        )
    if version == str(SCHEMA_VERSION):
        conn.execute("DROP INDEX IF EXISTS trunner_jobs_changes")  # (unreleased)
        conn.execute(_CHANGES_INDEX)
    return version


def connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path``, set it up and check its schema; return the connection.

    Raises:
        StoreError: if the file cannot be put in WAL mode, or holds a newer
            schema.
        sqlite3.Error: if SQLite fails.
    """
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
        with transaction(conn):
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO trunner_meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
            (version,) = conn.execute(
                "SELECT value FROM trunner_meta WHERE key = 'schema'"
            ).fetchone()
            version = _migrate(conn, version)
        if version != str(SCHEMA_VERSION):
            raise StoreError(
                f"{path!r} holds jobs in schema version {version}, but this "
                f"version of trunner reads version {SCHEMA_VERSION}; upgrade "
                "trunner"
            )
    except BaseException:
        conn.close()
        raise
    return conn
