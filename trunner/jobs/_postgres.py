"""PostgresJobStore: jobs in PostgreSQL, shared by workers on many machines.

psycopg (its sync API; the async one needs asyncio) is imported only when a
store is made, so that ``import trunner.jobs`` never needs it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import urllib.parse
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, TypeVar, TypeVarTuple, final

import trio

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
from ._store import CompleteResult, RenewResult
from ._urls import redact_url

if TYPE_CHECKING:
    import builtins
    import datetime as dt
    from collections.abc import AsyncGenerator, Callable, Collection, Sequence

    from ._postgres_claims import Claim, End
    from ._postgres_pool import Pool
    from ._postgres_schema import Connection
    from ._postgres_sql import Database
    from ._store import ChangeWatcher, JobEnd

T = TypeVar("T")
ArgsT = TypeVarTuple("ArgsT")

#: The schema a store uses unless its URL says otherwise.
DEFAULT_SCHEMA: Final = "trunner"
# Unquoted-identifier rules, lower case (so psql users need no quotes), at most
# 63 bytes (PostgreSQL's NAMEDATALEN - 1): the schema names the NOTIFY channel.
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _check_schema(schema: object) -> str:
    if not isinstance(schema, str):
        raise TypeError(f"schema must be a str, not {schema!r}")
    if not _SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_"):
        raise ValueError(
            f"schema must be a lower-case PostgreSQL name (letters, digits and "
            f"underscores, not starting with a digit nor 'pg_', at most 63 "
            f"characters), not {schema!r}"
        )
    return schema


def _check_count(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return value


def _check_bound(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def from_url(url: str) -> PostgresJobStore:
    """Make the store of ``postgresql://user[:password]@host[:port]/dbname[?schema=s]``.

    The query may also hold libpq parameters (``sslmode=require``...), passed
    on to the driver.

    Raises:
        ValueError: for a URL without a host or a database name, a bad port
            or a bad schema.
    """
    shown = redact_url(url)  # messages never show the password
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {shown!r}")
    if not parts.hostname or parts.path in ("", "/"):
        raise ValueError(
            f"{shown!r} needs a host and a database: "
            "postgresql://user[:password]@host[:port]/dbname[?schema=trunner]"
        )
    for host in parts.netloc.rpartition("@")[2].split(","):  # libpq: h1:p1,h2:p2
        port = host.rpartition("]")[2].partition(":")[2]
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"the port in {shown!r} must be 1..65535, not {port!r}")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise ValueError(f"{shown!r} names more than one schema")
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"])
    conninfo = urllib.parse.urlunsplit(parts._replace(query=rest, fragment=""))
    return PostgresJobStore(conninfo, schema=schemas[0] if schemas else DEFAULT_SCHEMA)


def _parse_change(message: str) -> tuple[str, builtins.list[int]]:
    """The writer and the seqs of a message of the changes channel."""
    writer, _, seqs = message.partition(" ")
    return writer, [int(seq) for seq in seqs.split()]


def _names(handlers: Collection[str] | None) -> tuple[str, ...] | None:
    return None if handlers is None else tuple(dict.fromkeys(handlers))


@final
class PostgresJobStore:
    """A `JobStore` in a PostgreSQL database, shared by workers on many machines.

    The store keeps its tables in its own schema (``trunner`` by default),
    which `connect` creates and migrates: the schema's ``migrations`` table
    records each version applied, migrations run under an advisory lock (so
    workers starting together migrate once), and a store refuses a schema
    newer than it knows with `StoreError`.

    psycopg 3's sync API runs on trio's worker threads: the store owns a pool
    of up to ``pool_size`` connections, made on demand by the calls and closed
    by `disconnect`, one call per connection at a time. Every method is a
    checkpoint and returns once its transaction is committed. Nearly every
    method is one statement: a claim takes due jobs with ``FOR UPDATE SKIP
    LOCKED`` and marks them RUNNING in the same statement, so concurrent
    workers never wait for each other nor take the same job; an insert writes
    a whole batch in one statement (group commit); a schedule advances by
    compare-and-set.

    Cancelling a call sends PostgreSQL a cancel request for its statement
    (``cancel_safe``) and waits for the statement to end (it may have taken
    effect); a call that gets no answer within ``timeout`` seconds is
    cancelled that way and raises `StoreError`. A call raises `StoreError`
    within about ``connect_timeout`` seconds while the server is unreachable,
    and stores nothing; a connection the server killed
    (``pg_terminate_backend``, a restart) is replaced: a call that finds its
    pooled connection dead runs once more on a new one (an insert then counts
    a job it finds stored exactly as given as its own: the first attempt's
    commit may have happened before the connection died).

    Jobs that become PENDING (inserted, retried, released, reset, taken back
    from an expired lease, by any client) are announced with ``NOTIFY`` on the
    channel named after the schema; `watch` listens on a connection of its
    own.

    Args:
        conninfo: a libpq connection string or
            ``postgresql://user[:password]@host[:port]/dbname`` URL.
        schema: the schema of the store's tables.
        pool_size: connections at most, besides each watcher's own.
        connect_timeout: seconds to wait for a new connection (libpq counts
            whole seconds, at least 2).
        timeout: seconds a call may wait for an answer.

    Raises:
        ValueError: for a bad schema name, or a pool size or timeout out of
            range.
        ImportError: if psycopg is not installed (``pip install
            'trunner[postgres]'``).
    """

    __slots__ = (
        "_connect_timeout",
        "_conninfo",
        "_db",
        "_lock",
        "_pool",
        "_pool_size",
        "_schema",
        "_timeout",
        "_writer",
    )

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        timeout: float = 30.0,  # a setting, not a call's
    ) -> None:
        if not isinstance(conninfo, str):
            raise TypeError(f"conninfo must be a str, not {conninfo!r}")
        self._schema = _check_schema(schema)
        self._pool_size = _check_count("pool_size", pool_size)
        self._connect_timeout = check_duration(
            "connect_timeout", connect_timeout, allow_zero=False
        )
        self._timeout = check_duration("timeout", timeout, allow_zero=False)
        try:
            from ._postgres_sql import Database
        except ModuleNotFoundError as error:
            if error.name is None or not error.name.startswith("psycopg"):
                raise
            raise ImportError(
                "PostgresJobStore needs psycopg 3: pip install 'trunner[postgres]'"
            ) from error
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(conninfo)
        except ProgrammingError as error:
            raise ValueError(
                f"conninfo is not a PostgreSQL connection string or URL: {error}"
            ) from None
        self._conninfo = conninfo
        self._db: Database = Database(self._schema)
        self._pool: Pool | None = None
        self._lock = trio.Lock()
        # Names this store object's changes in their NOTIFY (see watch_changes).
        self._writer = secrets.token_hex(8)

    def __repr__(self) -> str:
        state = "connected" if self._pool is not None else "not connected"
        return (
            f"<PostgresJobStore {redact_url(self._conninfo)!r} "
            f"schema={self._schema!r} {state}>"
        )

    @property
    def schema(self) -> str:
        """The schema that holds the store's tables."""
        return self._schema

    def _label(self) -> str:
        return f"PostgreSQL store {redact_url(self._conninfo)} (schema {self._schema})"

    def _not_connected(self) -> StoreError:
        return StoreError(
            f"{self!r}: connect it first with 'await store.connect()' "
            "(a JobManager connects its store on entry)"
        )

    async def _run(
        self,
        fn: Callable[[Connection, *ArgsT], T],
        *args: *ArgsT,
        again: Callable[[Connection, *ArgsT], T] | None = None,
    ) -> T:
        pool = self._pool
        if pool is None:
            await trio.lowlevel.checkpoint()
            raise self._not_connected()
        return await pool.run(fn, *args, again=again)

    async def _nothing(self) -> None:
        """Checkpoint for a call with nothing to do (if the store is connected)."""
        await trio.lowlevel.checkpoint()
        if self._pool is None:
            raise self._not_connected()

    # ------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Connect, and create or migrate the schema. Idempotent.

        Raises:
            StoreError: if the server cannot be reached, or the schema is newer
                than this version of trunner knows.
        """
        from ._postgres_pool import Pool
        from ._postgres_schema import migrate

        async with self._lock:
            if self._pool is not None:
                await trio.lowlevel.checkpoint()
                return
            pool = Pool(
                self._conninfo,
                size=self._pool_size,
                connect_timeout=self._connect_timeout,
                timeout=self._timeout,
                label=self._label(),
                writer=self._writer,
            )
            try:
                await pool.run(migrate, self._schema)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await pool.aclose()
                raise
            self._pool = pool

    async def disconnect(self) -> None:
        """Close the connections. Idempotent; connect again later."""
        async with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None:
                await pool.aclose()
            else:
                await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------ jobs

    async def insert(
        self, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        """Insert ``jobs`` in one statement; see `JobStore.insert`.

        Raises:
            SerializationError: if a job has text PostgreSQL cannot store (a
                NUL character); nothing is inserted.
        """
        from ._postgres_rows import check_storable

        if not jobs:
            await self._nothing()
            return []
        for job in jobs:
            check_storable(job)
        return await self._run(self._db.insert, jobs, again=self._db.insert_again)

    async def get(self, job_id: str) -> JobRecord | None:
        """Return the job with that id, or None."""
        if "\x00" in job_id:
            await self._nothing()
            return None
        return await self._run(self._db.get, job_id)

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
        if handler is not None and "\x00" in handler:
            await self._nothing()
            return []
        return await self._run(self._db.list, state, handler, limit, offset)

    async def counts(self) -> JobCounts:
        """Return how many jobs there are in each state (every state present)."""
        return await self._run(self._db.counts)

    async def claim(
        self,
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        """Take up to ``limit`` due jobs for ``worker``; see `JobStore.claim`.

        One statement: ``SELECT ... FOR UPDATE SKIP LOCKED`` in claim order,
        and the ``UPDATE`` of the rows it picked.
        """
        from ._postgres_claims import Claim

        names = _names(handlers)
        if limit <= 0 or names == ():
            await self._nothing()
            return []
        claim = Claim(handlers=names, now=now, lease_until=lease_until, limit=limit)
        _, claimed = await self._end_and_claim(worker, [], claim)
        return claimed

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
        """End ``ends``, then claim, in one transaction; see `JobStore`.

        One statement for the ends of each kind and the claim.
        """
        from ._postgres_claims import Claim, End

        names = _names(handlers)
        claim = (
            None
            if limit <= 0 or names == ()
            else Claim(handlers=names, now=now, lease_until=lease_until, limit=limit)
        )
        # An id PostgreSQL cannot hold (a NUL) is never held, and a second end
        # of an id finds the job ended by the first: their flags are False.
        seen: set[str] = set()
        first: builtins.list[bool] = []
        for end in ends:
            first.append("\x00" not in end.job_id and end.job_id not in seen)
            seen.add(end.job_id)
        wanted = [end for end, keep in zip(ends, first, strict=True) if keep]
        if not wanted and claim is None:
            await self._nothing()
            return CompleteResult((False,) * len(ends), ())
        converted = [
            End(
                end.job_id,
                "finished"
                if end.state in FINISHED_STATES
                else ("release" if end.run_at is None else "retry"),
                at=end.at,
                state=end.state.value if end.state in FINISHED_STATES else None,
                result=end.result,
                error=end.error,
                run_at=end.run_at,
            )
            for end in wanted
        ]
        applied, claimed = await self._end_and_claim(worker, converted, claim)
        flags = iter(applied)
        ended = tuple(next(flags) if keep else False for keep in first)
        return CompleteResult(ended, tuple(claimed))

    async def _end_and_claim(
        self, worker: str, ends: Sequence[End], claim: Claim | None
    ) -> tuple[builtins.list[bool], builtins.list[JobRecord]]:
        return await self._run(self._db.end_and_claim, worker, ends, claim)

    async def next_due(self, *, handlers: Collection[str] | None) -> dt.datetime | None:
        """Return the earliest ``run_at`` among PENDING jobs of ``handlers``."""
        names = _names(handlers)
        if names == ():
            await self._nothing()
            return None
        return await self._run(self._db.next_due, names)

    async def renew(
        self, *, worker: str, job_ids: Collection[str], lease_until: dt.datetime
    ) -> RenewResult:
        """Extend the leases of ``job_ids`` that ``worker`` still holds."""
        ids = tuple(job_id for job_id in dict.fromkeys(job_ids) if "\x00" not in job_id)
        if not ids:
            await self._nothing()
            return RenewResult(held=frozenset(), cancel_requested=frozenset())
        return await self._run(self._db.renew, worker, ids, lease_until)

    async def _end_one(self, worker: str, end: End) -> bool:
        if "\x00" in end.job_id:
            await self._nothing()
            return False
        (ended,), _ = await self._end_and_claim(worker, [end], None)
        return ended

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
        from ._postgres_claims import End

        check_finished_state(state)
        end = End(
            job_id,
            "finished",
            at=finished_at,
            state=state.value,
            result=result,
            error=error,
        )
        return await self._end_one(worker, end)

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
        from ._postgres_claims import End

        end = End(job_id, "retry", at=now, run_at=run_at, error=error)
        return await self._end_one(worker, end)

    async def release(self, job_id: str, *, worker: str, now: dt.datetime) -> bool:
        """Hand a held job back, PENDING; the attempt does not count."""
        from ._postgres_claims import End

        return await self._end_one(worker, End(job_id, "release", at=now))

    async def expire_leases(self, *, now: dt.datetime) -> builtins.list[JobRecord]:
        """Take back RUNNING jobs whose lease ended before ``now``, by ``seq``."""
        return await self._run(self._db.expire_leases, now)

    async def request_cancel(
        self, job_id: str, *, now: dt.datetime
    ) -> JobRecord | None:
        """Ask for a job to be cancelled; see `JobStore.request_cancel`."""
        if "\x00" in job_id:
            await self._nothing()
            return None
        return await self._run(self._db.request_cancel, job_id, now)

    async def reset(self, job_id: str, *, now: dt.datetime) -> JobRecord | None:
        """Put a FAILED or CANCELLED job back to PENDING with fresh attempts."""
        if "\x00" in job_id:
            await self._nothing()
            return None
        return await self._run(self._db.reset, job_id, now)

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
        return await self._run(self._db.purge, finished_before, keep_latest, wanted)

    async def delete(self, job_id: str) -> bool:
        """Delete the job if it is finished (or its state unreadable).

        See `JobStore.delete`.
        """
        if "\x00" in job_id:
            await self._nothing()
            return False
        return await self._run(self._db.delete, job_id)

    # ------------------------------------------------------------ wake-ups

    @asynccontextmanager
    async def watch(
        self, *, handlers: Collection[str] | None
    ) -> AsyncGenerator[PostgresWatcher, None]:
        """Listen for jobs becoming PENDING, for the ``async with`` block.

        The watcher has a connection of its own, which ``LISTEN``s on the
        store's channel (named after the schema) before the block starts: a
        job that becomes PENDING in any process, from then on, wakes it. Only
        jobs of ``handlers`` wake it (all, for None).

        Raises:
            StoreError: if the store is not connected, or its server cannot be
                reached.
        """
        pool = self._pool
        if pool is None:
            await trio.lowlevel.checkpoint()
            raise self._not_connected()
        watcher = PostgresWatcher(self._listener(), self._schema, _names(handlers))
        await watcher.listen()
        try:
            yield watcher
        finally:
            watcher.close()

    @asynccontextmanager
    async def watch_changes(
        self, *, poll_interval: float
    ) -> AsyncGenerator[ChangeWatcher, None]:
        """Follow other writers' job changes; see `ChangeSource.watch_changes`.

        Triggers on the jobs table notify a channel of the schema at each
        commit that inserts jobs or changes their state (or cancel request),
        by any client, with the seqs of the jobs and the writer's token; the
        watcher listens on a connection of its own, leaves out this store
        object's own changes, and reads the jobs back (one query per batch).
        Changes arrive as they commit (``poll_interval`` is not used); while
        the listening connection is lost and re-established (with a backoff,
        up to 5 s apart), changes may be missed.

        Raises:
            StoreError: if the store is not connected, or its server cannot be
                reached.
        """
        from ._change_reader import ChangeReader
        from ._postgres_schema import changes_channel

        check_duration("poll_interval", poll_interval, allow_zero=False)
        if self._pool is None:
            await trio.lowlevel.checkpoint()
            raise self._not_connected()
        reader = ChangeReader(self._writer, _parse_change, self._read_seqs)
        watcher = PostgresWatcher(
            self._listener(),
            self._schema,
            None,
            channel=changes_channel(self._schema),
            accept=reader.accept,
        )
        await watcher.listen()
        reader.watcher = watcher
        try:
            yield reader
        finally:
            watcher.close()

    def _listener(self) -> Pool:
        """A pool of the one connection a watcher listens on."""
        from ._postgres_pool import Pool

        return Pool(
            self._conninfo,
            size=1,
            connect_timeout=self._connect_timeout,
            timeout=self._timeout,
            label=self._label(),
        )

    async def _read_seqs(self, seqs: Sequence[int]) -> builtins.list[JobRecord]:
        return await self._run(self._db.by_seqs, seqs)

    # ------------------------------------------------------------ schedules

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Store ``schedule``, replacing one of the same name."""
        await self._run(self._db.put_schedule, schedule)

    async def delete_schedule(self, name: str) -> bool:
        """Delete the schedule ``name``; return whether it existed."""
        if "\x00" in name:
            await self._nothing()
            return False
        return await self._run(self._db.delete_schedule, name)

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Return every schedule, by name."""
        return await self._run(self._db.list_schedules)

    async def advance_schedule(
        self, name: str, *, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        """Move a schedule's ``next_run_at`` from ``expected`` (compare-and-set)."""
        if "\x00" in name:
            await self._nothing()
            return False
        return await self._run(self._db.advance_schedule, name, expected, next_run_at)


@final
class PostgresWatcher:
    """Wake-ups of a `PostgresJobStore`, from its `~PostgresJobStore.watch`.

    One task waits at a time. The connection that listens is re-established
    when the server kills it; the wait after that returns True at once, since
    notifications may have been missed meanwhile.

    Internally, it also listens on another ``channel`` (the schema's by
    default), waking for the payloads that ``accept`` takes (it is given
    each one).
    """

    __slots__ = ("_accept", "_conn", "_handlers", "_heard", "_pool", "_schema")

    def __init__(
        self,
        pool: Pool,
        schema: str,
        handlers: tuple[str, ...] | None,
        *,
        channel: str | None = None,
        accept: Callable[[str], bool] | None = None,
    ) -> None:
        self._pool = pool
        self._schema = schema if channel is None else channel
        self._accept = accept
        self._handlers = None if handlers is None else frozenset(handlers)
        self._conn: Connection | None = None
        # Notifications psycopg read while it ran a statement on the connection.
        self._heard = False

    async def listen(self) -> None:
        """Connect and LISTEN (again).

        Raises:
            StoreError: if the server cannot be reached.
        """
        from ._postgres_pool import call_in_thread
        from ._postgres_schema import listen

        self.close()
        conn = await self._pool.connect()
        conn.add_notify_handler(self._on_notify)
        try:
            await call_in_thread(listen, conn, self._schema)
        except BaseException as error:
            conn.close()
            import psycopg

            if isinstance(error, psycopg.Error):
                raise StoreError(f"cannot LISTEN for wake-ups: {error}") from error
            raise
        self._conn = conn

    def _on_notify(self, notify: object) -> None:
        if self._wanted(getattr(notify, "payload", None)):
            self._heard = True

    def _wanted(self, payload: object) -> bool:
        if self._accept is not None:
            return isinstance(payload, str) and self._accept(payload)
        return self._handlers is None or payload in self._handlers

    def close(self) -> None:
        """Close the listening connection. Not a checkpoint; idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            import psycopg

            with contextlib.suppress(psycopg.Error, OSError):
                trio.lowlevel.notify_closing(conn.fileno())
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()

    def _drain(self, conn: Connection) -> bool:
        """Read what arrived; return whether a wanted notification did.

        Raises:
            psycopg.OperationalError: if the connection is lost.
        """
        pgconn = conn.pgconn
        pgconn.consume_input()
        heard, self._heard = self._heard, False
        while (notify := pgconn.notifies()) is not None:
            # Each payload is looked at: accept may keep what it says.
            wanted = self._wanted(notify.extra.decode("utf-8", "replace"))
            heard = heard or wanted
        return heard

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109  # the protocol's
        """Wait for a job to become PENDING, or for ``timeout`` seconds.

        A checkpoint. When the connection was lost, this reconnects (retrying
        until the timeout passes) and returns True: work may have come
        meanwhile.

        Returns:
            True when woken (maybe spuriously), False when the timeout passed.
        """
        import psycopg

        deadline = trio.current_time() + check_duration("timeout", timeout)
        backoff = 0.1
        while True:
            conn = self._conn
            if conn is None:
                try:
                    await self.listen()
                except StoreError:
                    remaining = deadline - trio.current_time()
                    if remaining <= 0:
                        return False
                    await trio.sleep(min(backoff, remaining))
                    backoff = min(backoff * 2, 5.0)
                    continue
                await trio.lowlevel.checkpoint()
                return True
            try:
                if self._drain(conn):
                    await trio.lowlevel.checkpoint()
                    return True
                with trio.move_on_after(max(0.0, deadline - trio.current_time())):
                    await trio.lowlevel.wait_readable(conn.fileno())
                    if self._drain(conn):
                        return True
                    continue
                return False
            except psycopg.Error:
                self.close()  # lost: reconnect, and report a wake-up
