"""PostgresJobStore against the local PostgreSQL: conformance, schema, faults.

Each test uses a schema of its own (dropped afterwards). The fault tests cut
the store off through a TCP proxy of their own, or kill its connections with
``pg_terminate_backend``; they run on real time, a few seconds each.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

import psycopg
import pytest
import trio

from trunner.jobs import (
    JobState,
    PostgresJobStore,
    SerializationError,
    StoreError,
    _postgres_schema,
    open_store,
)
from trunner.jobs._job import JobRecord
from trunner.testing._store_checks import check_job_store, job_store_checks

from ._pg import fresh_schema, open_proxy, sql, terminate_backends

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from trunner.jobs import JobStore

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def job(job_id: str, *, handler: str = "h", run_at: float = 0.0) -> JobRecord:
    return JobRecord(
        id=job_id,
        handler=handler,
        args="{}",
        state=JobState.PENDING,
        priority=0,
        attempts=0,
        max_attempts=3,
        created_at=T0,
        run_at=at(run_at),
    )


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    with fresh_schema() as (url, schema):
        yield url, schema


@pytest.fixture(scope="module")
def shared_schema() -> Iterator[tuple[str, str]]:
    with fresh_schema() as (url, schema):
        yield url, schema


# ------------------------------------------------------------ conformance


def emptied(
    url: str, schema: str, *, timeout: float = 30.0
) -> Callable[[], Awaitable[PostgresJobStore]]:
    """A factory of stores on ``schema``, migrated once, emptied for each check."""

    async def factory() -> PostgresJobStore:
        await trio.to_thread.run_sync(
            lambda: sql(
                url,
                f"DO $$ BEGIN IF to_regclass('\"{schema}\".jobs') IS NOT NULL "
                f'THEN TRUNCATE "{schema}".jobs, "{schema}".schedules; END IF; END $$',
            )
        )
        return PostgresJobStore(url, schema=schema, timeout=timeout)

    return factory


def same_schema(url: str) -> Callable[[JobStore], PostgresJobStore]:
    """Another store object on the schema of a store, as another process opens it."""

    def other_store(store: JobStore) -> PostgresJobStore:
        assert isinstance(store, PostgresJobStore)
        return PostgresJobStore(url, schema=store.schema)

    return other_store


def state_writer(url: str) -> Callable[[JobStore, str], Awaitable[None]]:
    """Give a stored job a state its store does not know, with raw SQL.

    As a newer version would: its migration widens the states' CHECK.
    """

    def write(schema: str, job_id: str) -> None:
        sql(
            url,
            f'ALTER TABLE "{schema}".jobs DROP CONSTRAINT IF EXISTS jobs_state_check',
        )
        sql(url, f"UPDATE \"{schema}\".jobs SET state = 'paused' WHERE id = %s", job_id)

    async def write_unknown_state(store: JobStore, job_id: str) -> None:
        assert isinstance(store, PostgresJobStore)
        await trio.to_thread.run_sync(write, store.schema, job_id)

    return write_unknown_state


@pytest.mark.parametrize("check", job_store_checks())
async def test_store_passes_check(check: str, shared_schema: tuple[str, str]) -> None:
    await check_job_store(
        emptied(*shared_schema),
        only=[check],
        write_unknown_state=state_writer(shared_schema[0]),
        other_store=same_schema(shared_schema[0]),
    )


async def test_suite_under_autojump_clock(
    pg: tuple[str, str], autojump_clock: trio.abc.Clock
) -> None:
    # Virtual time stands still while a statement runs: no call times out,
    # and the whole suite takes no virtual time but the checks' own waits.
    url, schema = pg
    await check_job_store(
        emptied(url, schema, timeout=1.0),
        only=["insert_concurrent", "claim_concurrent", "advance_schedule_concurrent"],
    )

    assert trio.current_time() < 1.0


# ------------------------------------------------------------ URLs


def test_url_parsing() -> None:
    store = open_store("postgresql://alice:secret@db.local:6543/jobs?schema=work")
    assert isinstance(store, PostgresJobStore)
    assert store.schema == "work"
    assert "secret" not in repr(store)
    assert "alice:***@db.local:6543/jobs" in repr(store)
    default = open_store("postgres://db.local/jobs?sslmode=disable")
    assert isinstance(default, PostgresJobStore)
    assert default.schema == "trunner"
    assert "sslmode=disable" in repr(default)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db.local", "needs a host and a database"),
        ("postgresql:///jobs", "needs a host and a database"),
        ("postgresql://h/db?schema=Bad-Name", "schema must be a lower-case"),
        ("postgresql://h/db?schema=pg_catalog", "schema must be a lower-case"),
        ("postgresql://h/db?schema=a&schema=b", "more than one schema"),
        ("postgresql://h:abc/db", "the port in .* must be 1..65535, not 'abc'"),
        ("postgresql://h:99999/db", "must be 1..65535, not '99999'"),
        ("postgresql://h:0/db", "must be 1..65535, not '0'"),
        ("postgresql://a:1,b:x/db", "not 'x'"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://alice:secret@h:abc/db", "port"),
        ("postgresql://alice:secret@h/db?schema=a&schema=b", "more than one schema"),
        ("postgresql://alice:secret@h/db?schema=Bad", "schema must be"),
        ("postgresql://alice:secret@/db", "needs a host"),
    ],
)
def test_bad_url_messages_hide_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        open_store(url)
    assert "secret" not in str(caught.value)


def test_repr_hides_a_password_in_the_query_or_a_keyword_string() -> None:
    store = open_store("postgresql://alice@h/db?password=secret&sslmode=disable")
    assert "secret" not in repr(store)
    assert "password=***&sslmode=disable" in repr(store)
    keywords = PostgresJobStore("host=h dbname=db password='se cret' user=alice")
    assert "se cret" not in repr(keywords)
    assert "password=*** user=alice" in repr(keywords)


def test_several_hosts_keep_their_ports() -> None:
    store = open_store("postgresql://a:5432,b:5433/db")
    assert "a:5432,b:5433/db" in repr(store)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        PostgresJobStore("postgresql://h/db", pool_size=0)
    with pytest.raises(ValueError, match="connect_timeout"):
        PostgresJobStore("postgresql://h/db", connect_timeout=-1)
    with pytest.raises(ValueError, match="conninfo is not a PostgreSQL"):
        PostgresJobStore("host=a =b")
    with pytest.raises(TypeError, match="conninfo"):
        PostgresJobStore(b"postgresql://h/db")  # type: ignore[arg-type]  # on purpose


async def test_calls_before_connect_raise() -> None:
    store = PostgresJobStore("postgresql://h/db")
    with pytest.raises(StoreError, match="connect it first"):
        await store.get("a")
    with pytest.raises(StoreError, match="connect it first"):
        await store.insert([])


# ------------------------------------------------------------ schema and migrations


async def test_fresh_schema_is_created_and_versioned(pg: tuple[str, str]) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    await store.connect()  # idempotent
    await store.insert([job("a")])
    await store.disconnect()
    await store.disconnect()

    rows = sql(url, f'SELECT version, description FROM "{schema}".migrations')
    assert [row[0] for row in rows] == list(
        range(1, _postgres_schema.SCHEMA_VERSION + 1)
    )
    tables = sql(
        url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "ORDER BY table_name",
        schema,
    )
    assert [row[0] for row in tables] == ["jobs", "migrations", "schedules"]


async def test_reopen_keeps_data_and_migrates_once(pg: tuple[str, str]) -> None:
    url, schema = pg
    starting = [PostgresJobStore(url, schema=schema) for _ in range(3)]
    async with trio.open_nursery() as nursery:  # workers starting together
        for each in starting:
            nursery.start_soon(each.connect)
    for each in starting:
        await each.disconnect()
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    await store.insert([job("a")])
    await store.disconnect()
    again = PostgresJobStore(url, schema=schema)
    await again.connect()
    record = await again.get("a")
    await again.disconnect()

    assert record is not None
    assert record.id == "a"
    assert sql(url, f'SELECT count(*) FROM "{schema}".migrations') == [
        (_postgres_schema.SCHEMA_VERSION,)
    ]


async def test_new_migration_applies_on_reopen(
    pg: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    await store.insert([job("a")])
    await store.disconnect()
    new = _postgres_schema.SCHEMA_VERSION + 1
    extra = (new, "a test column", ("ALTER TABLE {s}.jobs ADD COLUMN note text",))
    monkeypatch.setattr(
        _postgres_schema, "MIGRATIONS", (*_postgres_schema.MIGRATIONS, extra)
    )
    monkeypatch.setattr(_postgres_schema, "SCHEMA_VERSION", new)
    await store.connect()
    assert (await store.get("a")) is not None
    await store.disconnect()

    assert sql(url, f'SELECT version FROM "{schema}".migrations ORDER BY 1') == [
        (version,) for version in range(1, new + 1)
    ]
    assert sql(url, f'SELECT note FROM "{schema}".jobs') == [(None,)]


async def test_newer_schema_is_refused(pg: tuple[str, str]) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    await store.insert([job("a")])
    await store.disconnect()
    sql(
        url,
        f'INSERT INTO "{schema}".migrations (version, description) '
        "VALUES (99, 'from the future')",
    )

    with pytest.raises(StoreError, match=r"version 99, newer than the version 2"):
        await store.connect()
    with pytest.raises(StoreError, match="connect it first"):
        await store.get("a")
    assert sql(url, f'SELECT count(*) FROM "{schema}".jobs') == [(1,)]


# ------------------------------------------------------------ bad rows


async def test_text_postgresql_refuses_fails_only_its_job(pg: tuple[str, str]) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    try:
        with pytest.raises(SerializationError, match="NUL character"):
            await store.insert([job("good"), job("bad\x00id")])
        assert await store.list() == []
        assert await store.get("bad\x00id") is None
        [(_, new)] = await store.insert([job("good")])
        assert new
        assert await store.claim(
            worker="w", handlers=["h", "nul\x00"], now=at(0), lease_until=at(9), limit=5
        ) == [await store.get("good")]
    finally:
        await store.disconnect()


async def test_unreadable_row_is_skipped(
    pg: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    try:
        await store.insert([job("a"), job("b")])
        # An operator dropped the CHECK and wrote a state trunner never writes.
        sql(url, f'ALTER TABLE "{schema}".jobs DROP CONSTRAINT jobs_state_check')
        sql(url, f"UPDATE \"{schema}\".jobs SET state = 'weird' WHERE id = 'a'")
        assert [record.id for record in await store.list()] == ["b"]
        assert (await store.counts())[JobState.PENDING] == 1
        with pytest.raises(SerializationError, match="unknown state 'weird'"):
            await store.get("a")
    finally:
        await store.disconnect()
    assert "skipping a job" in caplog.text


# ------------------------------------------------------------ cancellation and timeouts


def _active_queries(url: str, application_name: str) -> int:
    rows = sql(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
        "AND state = 'active' AND pid <> pg_backend_pid()",
        application_name,
    )
    count: int = rows[0][0]  # type: ignore[assignment]  # a bigint
    return count


async def test_cancelled_call_cancels_its_query(pg: tuple[str, str]) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    try:
        await store.insert([job("a")])
        locker = await trio.to_thread.run_sync(
            lambda: __import__("psycopg").connect(url)
        )
        try:
            # Another transaction holds the row: request_cancel blocks on it.
            await trio.to_thread.run_sync(
                locker.execute, f'SELECT * FROM "{schema}".jobs FOR UPDATE'
            )
            started = time.monotonic()
            with trio.move_on_after(0.5) as scope:
                await store.request_cancel("a", now=at(1))
            took = time.monotonic() - started
            assert scope.cancelled_caught
            assert took < 3
            assert _active_queries(url, schema) == 0
        finally:
            await trio.to_thread.run_sync(locker.close)
        record = await store.get("a")  # the store goes on, the change was undone
        assert record is not None
        assert record.state is JobState.PENDING
    finally:
        await store.disconnect()


async def test_call_without_answer_times_out(pg: tuple[str, str]) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema, timeout=0.5)
    await store.connect()
    try:
        await store.insert([job("a")])
        locker = await trio.to_thread.run_sync(
            lambda: __import__("psycopg").connect(url)
        )
        try:
            await trio.to_thread.run_sync(
                locker.execute, f'SELECT * FROM "{schema}".jobs FOR UPDATE'
            )
            with pytest.raises(StoreError, match=r"no answer within 0\.5 s"):
                await store.request_cancel("a", now=at(1))
        finally:
            await trio.to_thread.run_sync(locker.close)
        assert await store.get("a") is not None
    finally:
        await store.disconnect()


# ------------------------------------------------------------ faults


async def test_connections_killed_by_the_server_are_replaced(
    pg: tuple[str, str],
) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    try:
        await store.insert([job("a")])
        for round_ in range(3):
            assert terminate_backends(url, schema) >= 1
            # Idle connections the server closed are noticed and replaced.
            [(_, new)] = await store.insert([job(f"b{round_}")])
            assert new
            assert (await store.counts())[JobState.PENDING] == 2 + round_
    finally:
        await store.disconnect()


async def test_unreachable_store_fails_fast_and_stores_nothing(
    pg: tuple[str, str],
) -> None:
    url, schema = pg
    async with open_proxy() as proxy:
        store = PostgresJobStore(proxy.url(url), schema=schema, connect_timeout=2)
        await store.connect()
        try:
            await store.insert([job("before")])
            proxy.cut()
            for call in (
                lambda: store.insert([job("during")]),
                lambda: store.get("before"),
                lambda: store.claim(
                    worker="w", handlers=None, now=at(0), lease_until=at(9), limit=1
                ),
            ):
                started = time.monotonic()
                with pytest.raises(StoreError):
                    await call()
                assert time.monotonic() - started < 5
            assert sql(url, f'SELECT id FROM "{schema}".jobs') == [("before",)]
            await proxy.restore()
            [(_, new)] = await store.insert([job("after")])
            assert new
        finally:
            await store.disconnect()


async def test_watch_hears_jobs_from_other_connections(pg: tuple[str, str]) -> None:
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    other = PostgresJobStore(url, schema=schema)
    await store.connect()
    await other.connect()
    try:
        async with store.watch(handlers=["h"]) as watcher:
            assert not await watcher.wait(0.05)
            await other.insert([job("elsewhere", handler="x")])
            assert not await watcher.wait(0.2)  # not a handler of ours
            await other.insert([job("a")])
            with trio.fail_after(5):
                assert await watcher.wait(10)
            assert not await watcher.wait(0.05)  # heard once
            # A job back to PENDING (released) wakes it too.
            [claimed] = await other.claim(
                worker="w", handlers=["h"], now=at(0), lease_until=at(9), limit=1
            )
            assert not await watcher.wait(0.05)
            assert await other.release(claimed.id, worker="w", now=at(1))
            with trio.fail_after(5):
                assert await watcher.wait(10)
            # Its connection killed: it reconnects, and wakes (it may have
            # missed something meanwhile).
            terminate_backends(url, schema)
            with trio.fail_after(5):
                assert await watcher.wait(10)
            await other.insert([job("b")])
            with trio.fail_after(5):
                assert await watcher.wait(10)
    finally:
        await other.disconnect()
        await store.disconnect()


async def test_watch_needs_a_connected_store() -> None:
    store = PostgresJobStore("postgresql://h/db")
    with pytest.raises(StoreError, match="connect it first"):
        async with store.watch(handlers=None):
            pass  # pragma: no cover


async def test_insert_run_again_counts_its_own_commit(pg: tuple[str, str]) -> None:
    # After a connection died under an insert, the insert runs again; a job
    # found stored exactly as given was the first attempt's: it is new.
    url, schema = pg
    store = PostgresJobStore(url, schema=schema)
    await store.connect()
    try:
        [(first, new)] = await store.insert([job("a")])
        assert new
        database = store._db  # pyright: ignore[reportPrivateUsage]  # white-box: the store's database
        with psycopg.connect(url, autocommit=True) as conn:
            [(again, mine)] = database.insert_again(conn, [job("a")])
            [(other, theirs)] = database.insert_again(conn, [job("a", run_at=5)])
            [(_, plain)] = database.insert(conn, [job("a")])
        assert (again, mine) == (first, True)
        assert (other, theirs) == (first, False)  # not the same job: a duplicate
        assert not plain
    finally:
        await store.disconnect()
