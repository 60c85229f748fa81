"""RedisJobStore: jobs in Redis (one server or a cluster), through coredis.

The driver is imported when a store connects, never when trunner is imported.
The key layout and the scripts are in `._redis_lua`; records are encoded by
`._redis_codec`.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import json
import logging
import secrets
from typing import TYPE_CHECKING, Final, cast, final

import attrs
import trio

from .._context import current_scheduler
from .._errors import NoCurrentSchedulerError
from .._traits import ShutdownBehavior, TaskTraits
from .._util import check_duration
from . import _redis_lua as lua
from ._change_reader import ChangeReader
from ._errors import SerializationError, StoreError
from ._job import (
    FINISHED_STATES,
    JobCounts,
    JobRecord,
    JobState,
    ScheduleRecord,
    check_finished_state,
)
from ._redis_client import Connection, Reply, text
from ._redis_codec import (
    check_prefix,
    decode_job,
    decode_schedule,
    from_micros,
    job_fields,
    job_id_of,
    micros,
    optional,
    parse_url,
    replies,
    schedule_json,
)
from ._redis_watch import RedisWatcher
from ._sqlite_codec import with_seq
from ._store import CompleteResult, RenewResult

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncGenerator, Collection, Sequence

    from .._handle import TaskHandle
    from .._sequenced import SequencedTaskRunner
    from ._store import ChangeWatcher, JobEnd

logger: Final = logging.getLogger("trunner.jobs")

#: Jobs per script call of an insert; a bigger batch is several calls in one
#: transaction (MULTI/EXEC), so it stays one atomic step.
_INSERT_CHUNK: Final = 500
_CONNECTION_TRAITS: Final = TaskTraits(
    shutdown_behavior=ShutdownBehavior.CONTINUE_ON_SHUTDOWN
)
_STATE_OF: Final = {state.value: state for state in JobState}


def from_url(url: str) -> RedisJobStore:
    """Make a `RedisJobStore` from its URL (for `open_store`)."""
    return RedisJobStore(url)


def _quiet(handle: TaskHandle[object], error: BaseException) -> None:
    del handle, error  # the connection task's errors reach the caller of connect()


@final
class RedisJobStore:
    """A `JobStore` in Redis: workers on many machines share one store.

    Made unconnected from a URL (`open_store` does the same):

    * ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS;
    * ``redis+cluster://host:port[,host:port...]``: a Redis Cluster, reached
      through any of the nodes given;
    * options: ``?prefix=trunner`` (every key of the store starts with
      ``{prefix}:``, a Redis Cluster hash tag, so a store lives in one slot)
      and ``?timeout=5`` (seconds a call, and a connection attempt, may take).

    Every change of a job is one Lua script, atomic on the server: a claim
    picks due jobs by priority, ``run_at`` and ``seq`` and leases them in one
    step, so two claims never take the same job. A call returns once Redis
    has acknowledged it. Redis acknowledges before its disk has the change
    unless it runs with ``appendonly yes`` and ``appendfsync always``:
    `connect` logs a warning when the server's configuration can lose
    acknowledged jobs.

    While Redis is unreachable, every call raises `StoreError` within
    ``timeout`` seconds; connections dropped by a server restart are made
    again by the next call.

    The connection lives in a task of the current scheduler
    (`trunner.current_scheduler`), as `SQLiteJobStore`'s thread does:
    connect the store inside ``async with trunner.open_scheduler():``
    (`open_job_manager` opens one). Its time-outs run on trio's clock, so a
    Redis store cannot be used under an autojumping clock.

    Args:
        url: the store's URL, as above.
        prefix: the key prefix, instead of the URL's (default ``trunner``).
        timeout: seconds a call may take, instead of the URL's (default 5).

    Raises:
        ValueError: for a malformed URL or option, naming it.
    """

    __slots__ = ("_address", "_connection", "_lock", "_runner", "_seq_key", "_writer")

    def __init__(
        self, url: str, *, prefix: str | None = None, timeout: float | None = None
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {url!r}")
        address = parse_url(url)
        _require_driver()
        if prefix is not None:
            address = attrs.evolve(address, prefix=check_prefix(prefix))
        if timeout is not None:
            address = attrs.evolve(
                address, timeout=check_duration("timeout", timeout, allow_zero=False)
            )
        self._address = address
        self._seq_key = f"{{{address.prefix}}}:seq"
        self._connection: Connection | None = None
        self._runner: SequencedTaskRunner | None = None
        self._lock = trio.Lock()
        # Names this store object's changes on the changes channel.
        self._writer = secrets.token_hex(8)

    def __repr__(self) -> str:
        state = "connected" if self._connection is not None else "not connected"
        return f"<RedisJobStore {self._address.describe()} {state}>"

    @property
    def prefix(self) -> str:
        """The prefix that every key of the store starts with, as ``{prefix}:``."""
        return self._address.prefix

    @property
    def key_prefix(self) -> str:
        """The text that every key of the store starts with (``{prefix}:``)."""
        return f"{{{self._address.prefix}}}:"

    # ------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Connect to Redis and check that it answers. Idempotent.

        Must run inside an open scheduler: the connection pool lives in a task
        of `trunner.current_scheduler`, ended by `disconnect` or at the latest
        with the scheduler. Logs one warning if the server can lose
        acknowledged writes (not ``appendonly yes`` with ``appendfsync
        always``).

        Raises:
            NoCurrentSchedulerError: outside any scheduler.
            StoreError: if Redis does not answer within the timeout.
            ImportError: if coredis is not installed (``trunner[redis]``).
        """
        async with self._lock:
            if self._connection is not None:
                await trio.lowlevel.checkpoint()
                return
            try:
                scheduler = current_scheduler()
            except NoCurrentSchedulerError:
                raise NoCurrentSchedulerError(
                    "RedisJobStore.connect() needs an open scheduler, for the task "
                    "its connections live in; connect the store inside "
                    "'async with trunner.open_scheduler():' (open_job_manager "
                    "opens one)"
                ) from None
            connection = Connection(
                self._address,
                seq_key=self._seq_key,
                head=f"{self.key_prefix}\n{self._writer}",
            )
            # Cancelled when the scheduler closes, if nobody disconnected first.
            runner = scheduler.create_sequenced_runner(
                name=f"redis-store:{self._address.describe()}",
                traits=_CONNECTION_TRAITS,
                on_error=_quiet,
            )
            await connection.open(runner, {n: getattr(lua, n) for n in _SCRIPTS})
            self._connection = connection
            self._runner = runner

    async def disconnect(self) -> None:
        """Close the connections. Idempotent; the store may be connected again."""
        async with self._lock:
            connection, runner = self._connection, self._runner
            self._connection = self._runner = None
            if connection is None:
                await trio.lowlevel.checkpoint()
                return
            connection.closing.set()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(self._address.timeout):
                    await connection.done.wait()
                if runner is not None:
                    runner.shutdown()
                    await runner.aclose()

    # ------------------------------------------------------------ calls

    def _not_connected(self) -> StoreError:
        return StoreError(
            f"{self!r}: connect it first with 'await store.connect()' "
            "(a JobManager connects its store on entry)"
        )

    def _connected(self) -> Connection:
        connection = self._connection
        if connection is None:
            raise self._not_connected()
        return connection

    async def _script(self, name: str, *args: str | int) -> Reply:
        connection = self._connection
        if connection is None:
            await trio.lowlevel.checkpoint()
            raise self._not_connected()
        return await connection.script(name, *args)

    # ------------------------------------------------------------ jobs

    async def insert(
        self, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        """Insert ``jobs`` in one atomic step; see `JobStore.insert`.

        The whole batch is one script call (a transaction of several for a big
        batch): a group commit in one round trip.
        """
        chunks: builtins.list[builtins.list[str]] = []
        args: builtins.list[str] = []
        count = 0
        for job in jobs:
            fields = job_fields(job)
            args += (job.id, job.state.value, str(len(fields) // 2), *fields)
            count += 1
            if count == _INSERT_CHUNK:
                chunks.append(args)
                args, count = [], 0
        if args:
            chunks.append(args)
        if not chunks:
            await self._nothing()
            return []
        if len(chunks) == 1:
            answers = replies(await self._script("INSERT", *chunks[0]))
        else:
            await self._nothing()  # (raises if not connected)
            answers = await self._connected().script_chunks("INSERT", chunks)
        results: builtins.list[tuple[JobRecord, bool]] = []
        for job, reply in zip(jobs, answers, strict=True):
            if isinstance(reply, int):
                results.append((with_seq(job, reply), True))
            else:
                results.append((decode_job(reply), False))
        return results

    async def _nothing(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._connection is None:
            raise self._not_connected()

    async def get(self, job_id: str) -> JobRecord | None:
        """Return the job with that id, or None.

        Raises:
            SerializationError: if its hash is corrupted.
        """
        connection = self._connection
        if connection is None:
            await trio.lowlevel.checkpoint()
            raise self._not_connected()
        key = f"{self.key_prefix}job:{job_id}"
        fields = await connection.call("get", lambda: connection.client.hgetall(key))
        return decode_job(fields) if fields else None

    async def list(
        self,
        *,
        state: JobState | None = None,
        handler: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[JobRecord]:
        """Return jobs, newest (highest ``seq``) first; corrupted ones left out."""
        _check_bound("limit", limit)
        _check_bound("offset", offset)
        reply = await self._script(
            "LIST",
            "" if state is None else state.value,
            "" if handler is None else handler,
            offset,
            limit,
        )
        return self._readable(reply)

    def _readable(self, reply: Reply) -> builtins.list[JobRecord]:
        records: builtins.list[JobRecord] = []
        for flat in replies(reply):
            try:
                records.append(decode_job(flat))
            except SerializationError as error:
                logger.warning("skipping a job: %s", error)
        return records

    async def counts(self) -> JobCounts:
        """Return how many jobs there are in each state (every state present).

        A job in none of the known states' indexes (one whose state a newer
        version wrote) counts as unknown.
        """
        reply = replies(await self._script("COUNTS"))
        *sizes, total = (int(cast("int", size)) for size in reply)
        return JobCounts(
            {
                _STATE_OF[name]: size
                for name, size in zip(lua.STATES, sizes, strict=True)
            },
            unknown=max(0, total - sum(sizes)),
        )

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

        One script picks and leases them. A claimed job whose hash is
        corrupted fails at once (FAILED, with the reason), alone.
        """
        names = _names(handlers)
        if limit <= 0 or names == ():
            await self._nothing()
            return []
        now_text = micros(now)
        reply = await self._script(
            "CLAIM", worker, now_text, micros(lease_until), limit, *(names or ())
        )
        taken: builtins.list[JobRecord] = []
        for flat in replies(reply):
            try:
                taken.append(decode_job(flat))
            except SerializationError as error:
                await self._fail_corrupted(flat, worker, now_text, error)
        return taken

    async def _fail_corrupted(
        self, flat: Reply, worker: str, now: str, error: SerializationError
    ) -> None:
        job_id = job_id_of(flat)
        logger.error("failing a claimed job: %s", error)
        if job_id is None:
            return
        await self._script(
            "COMPLETE",
            job_id,
            worker,
            "failed",
            now,
            "",
            optional(str(error)),
        )

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
        """End ``ends``, then claim: one script, one round trip; see `JobStore`."""
        names = _names(handlers)
        if names == ():
            limit = 0
        if not ends and limit <= 0:
            await self._nothing()
            return CompleteResult((), ())
        args: builtins.list[str | int] = [
            worker,
            micros(now),
            micros(lease_until),
            max(limit, 0),
            len(ends),
        ]
        for end in ends:
            if end.state is not JobState.PENDING:
                kind = "f"
            elif end.run_at is None:
                kind = "l"
            else:
                kind = "r"
            args += (
                end.job_id,
                kind,
                end.state.value,
                micros(end.at),
                "" if end.run_at is None else micros(end.run_at),
                optional(end.result),
                optional(end.error),
            )
        ended, taken = replies(
            await self._script("COMPLETE_AND_CLAIM", *args, *(names or ()))
        )
        claimed: builtins.list[JobRecord] = []
        for flat in replies(taken):
            try:
                claimed.append(decode_job(flat))
            except SerializationError as error:
                await self._fail_corrupted(flat, worker, micros(now), error)
        return CompleteResult(
            tuple(bool(flag) for flag in replies(ended)), tuple(claimed)
        )

    @contextlib.asynccontextmanager
    async def watch(
        self, *, handlers: Collection[str] | None
    ) -> AsyncGenerator[RedisWatcher]:
        """Subscribe to the store's wake-up channel for the ``async with`` block.

        Every script that makes a job PENDING (from any process) publishes on
        ``{prefix}:wake``; the watcher hears it at once. ``handlers`` is
        ignored: every arrival wakes. The subscription has a connection of its
        own, made again (with one spurious wake-up) after a Redis restart.

        Raises:
            StoreError: if the store is not connected, or the subscription is
                not in place within the timeout.
        """
        del handlers
        connection = self._connection
        if connection is None:
            await trio.lowlevel.checkpoint()
            raise self._not_connected()
        client = connection.client
        watcher = RedisWatcher(
            lambda: client.pubsub(retry_policy=None), f"{self.key_prefix}wake"
        )
        async with watcher.running(self._address.timeout, self._address.describe()):
            yield watcher

    @contextlib.asynccontextmanager
    async def watch_changes(
        self, *, poll_interval: float
    ) -> AsyncGenerator[ChangeWatcher]:
        """Follow other writers' job changes; see `ChangeSource.watch_changes`.

        Every script that inserts jobs or changes their state (or cancel
        request) publishes their ids on ``{prefix}:changes``, naming the
        store object that called it; the watcher, subscribed on a connection
        of its own, leaves out this store object's own changes and reads the
        jobs back (one script call per batch). Changes arrive at once
        (``poll_interval`` is not used); those published while the
        subscription is lost (a Redis restart) are missed.

        Raises:
            StoreError: if the store is not connected, or the subscription is
                not in place within the timeout.
        """
        check_duration("poll_interval", poll_interval, allow_zero=False)
        client = self._connected().client
        reader = ChangeReader(self._writer, _parse_change, self._read_ids)
        reader.watcher = watcher = RedisWatcher(
            lambda: client.pubsub(retry_policy=None),
            f"{self.key_prefix}changes",
            accept=reader.accept,
        )
        async with watcher.running(self._address.timeout, self._address.describe()):
            yield reader

    async def _read_ids(self, ids: Sequence[str]) -> builtins.list[JobRecord]:
        return self._readable(
            [f for f in replies(await self._script("GET_MANY", *ids)) if f]
        )

    async def next_due(self, *, handlers: Collection[str] | None) -> dt.datetime | None:
        """Return the earliest ``run_at`` among PENDING jobs of ``handlers``."""
        names = _names(handlers)
        if names == ():
            await self._nothing()
            return None
        due = await self._script("NEXT_DUE", *(names or ()))
        return from_micros(cast("bytes", due)) if due else None

    async def renew(
        self, *, worker: str, job_ids: Collection[str], lease_until: dt.datetime
    ) -> RenewResult:
        """Extend, in one script, the leases of ``job_ids`` that ``worker`` holds."""
        ids = builtins.list(dict.fromkeys(job_ids))
        if not ids:
            await self._nothing()
            return RenewResult(held=frozenset(), cancel_requested=frozenset())
        held, cancel = replies(
            await self._script("RENEW", worker, micros(lease_until), *ids)
        )
        return RenewResult(
            held=frozenset(map(text, replies(held))),
            cancel_requested=frozenset(map(text, replies(cancel))),
        )

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
        done = await self._script(
            "COMPLETE",
            job_id,
            worker,
            state.value,
            micros(finished_at),
            optional(result),
            optional(error),
        )
        return bool(done)

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
        done = await self._script(
            "REQUEUE", job_id, worker, micros(run_at), optional(error), micros(now)
        )
        return bool(done)

    async def release(self, job_id: str, *, worker: str, now: dt.datetime) -> bool:
        """Hand a held job back, PENDING; the attempt does not count."""
        done = await self._script("RELEASE", job_id, worker, micros(now))
        return bool(done)

    async def expire_leases(self, *, now: dt.datetime) -> builtins.list[JobRecord]:
        """Take back RUNNING jobs whose lease ended before ``now``, by ``seq``."""
        return self._readable(await self._script("EXPIRE", micros(now)))

    async def request_cancel(
        self, job_id: str, *, now: dt.datetime
    ) -> JobRecord | None:
        """Ask for a job to be cancelled; see `JobStore.request_cancel`."""
        flat = await self._script("REQUEST_CANCEL", job_id, micros(now))
        return decode_job(flat) if flat else None

    async def reset(self, job_id: str, *, now: dt.datetime) -> JobRecord | None:
        """Put a FAILED or CANCELLED job back to PENDING with fresh attempts."""
        flat = await self._script("RESET", job_id, micros(now))
        return decode_job(flat) if flat else None

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
        wanted = FINISHED_STATES if states is None else FINISHED_STATES & set(states)
        if not wanted:
            await self._nothing()
            return 0
        count = await self._script(
            "PURGE",
            "" if finished_before is None else micros(finished_before),
            "" if keep_latest is None else str(keep_latest),
            *sorted(state.value for state in wanted),
        )
        return int(cast("int", count))

    async def delete(self, job_id: str) -> bool:
        """Delete the job if it is finished, or if its hash cannot be read.

        Returns:
            Whether a job was deleted (False: no such job, or a pending or
            running one).
        """
        try:
            record = await self.get(job_id)
        except SerializationError:
            force = "1"  # a corrupted job goes, whatever its state
        else:
            if record is None or record.state not in FINISHED_STATES:
                return False
            force = "0"
        return bool(await self._script("DELETE", job_id, force))

    # ------------------------------------------------------------ schedules

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Store ``schedule``, replacing one of the same name."""
        await self._script(
            "PUT_SCHEDULE",
            schedule.name,
            schedule_json(schedule),
            micros(schedule.next_run_at),
        )

    async def delete_schedule(self, name: str) -> bool:
        """Delete the schedule ``name``; return whether it existed."""
        return bool(await self._script("DELETE_SCHEDULE", name))

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Return every schedule, by name (corrupted ones left out and logged)."""
        texts, nexts = map(replies, replies(await self._script("LIST_SCHEDULES")))
        next_by_name = dict(zip(map(text, nexts[::2]), nexts[1::2], strict=True))
        schedules: builtins.list[ScheduleRecord] = []
        pairs = zip(map(text, texts[::2]), texts[1::2], strict=True)
        for name, json_text in sorted(pairs, key=_first):
            try:
                schedules.append(
                    decode_schedule(name, json_text, next_by_name.get(name, b""))
                )
            except SerializationError as error:
                logger.warning("skipping a schedule: %s", error)
        return schedules

    async def advance_schedule(
        self, name: str, *, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        """Move a schedule's ``next_run_at`` from ``expected`` (compare-and-set)."""
        done = await self._script(
            "ADVANCE_SCHEDULE", name, micros(expected), micros(next_run_at)
        )
        return bool(done)


_SCRIPTS: Final = (
    "INSERT",
    "CLAIM",
    "NEXT_DUE",
    "RENEW",
    "COMPLETE",
    "COMPLETE_AND_CLAIM",
    "REQUEUE",
    "RELEASE",
    "EXPIRE",
    "REQUEST_CANCEL",
    "RESET",
    "PURGE",
    "DELETE",
    "LIST",
    "COUNTS",
    "PUT_SCHEDULE",
    "DELETE_SCHEDULE",
    "ADVANCE_SCHEDULE",
    "LIST_SCHEDULES",
    "GET_MANY",
)


def _require_driver() -> None:
    try:
        importlib.import_module("coredis")
    except ModuleNotFoundError as error:
        if error.name != "coredis":
            raise
        raise ModuleNotFoundError(
            "RedisJobStore needs the coredis driver: pip install 'trunner[redis]'",
            name="coredis",
        ) from None


def _first(pair: tuple[str, object]) -> str:
    return pair[0]


def _parse_change(message: str) -> tuple[str, builtins.list[str]]:
    """The writer and the ids of a message of the changes channel."""
    writer, _, ids = message.partition(" ")
    parsed: object = json.loads(ids)
    if not isinstance(parsed, list):
        raise ValueError(f"not a list of ids: {ids!r}")
    return writer, [str(job_id) for job_id in cast("list[object]", parsed)]


def _names(handlers: Collection[str] | None) -> tuple[str, ...] | None:
    return None if handlers is None else tuple(dict.fromkeys(handlers))


def _check_bound(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value
