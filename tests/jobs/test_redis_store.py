"""RedisJobStore on real servers: conformance (a server, a cluster), URLs, faults."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

import pytest
import trio

import trunner
import trunner.testing
from trunner.jobs import (
    JobRecord,
    JobState,
    RedisJobStore,
    SerializationError,
    StoreError,
    open_store,
)

from .._services import require_program, require_redis, unique_name
from .redis_servers import DRIVER_GARBAGE, RedisServer, redis_cluster, redis_server

if TYPE_CHECKING:
    import pathlib
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from trunner.jobs import JobStore

pytest.importorskip("coredis")

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def job(job_id: str, *, handler: str = "h", priority: int = 0) -> JobRecord:
    return JobRecord(
        id=job_id,
        handler=handler,
        args="{}",
        state=JobState.PENDING,
        priority=priority,
        attempts=0,
        max_attempts=3,
        created_at=T0,
        run_at=T0,
    )


async def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key of the store with that prefix."""
    import coredis

    host_port = url.partition("://")[2].partition("/")[0]
    host, _, port = host_port.partition(":")
    async with coredis.Redis(host=host, port=int(port)) as client:
        keys = [key async for key in client.scan_iter(match=f"{{{prefix}}}:*")]
        if keys:
            await client.delete(keys)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The shared Redis; the test's keys (prefix ``prefix``) go afterwards."""
    url = require_redis()
    prefix = unique_name("jobs")
    try:
        yield f"{url}?prefix={prefix}"
    finally:
        await delete_prefix(url, prefix)


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """A 3-node Redis Cluster of the module's own (started once, 1 to 2 s)."""
    require_program("redis-server")
    require_program("redis-cli")
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as ports:
        yield ports


pytestmark = DRIVER_GARBAGE


def state_writer(url: str) -> Callable[[JobStore, str], Awaitable[None]]:
    """Give a stored job a state its store does not know, with raw writes.

    As a newer version would write a state of its own: the job leaves its
    state's indexes and enters a ``state:paused`` set.
    """
    import coredis

    host_port = url.partition("://")[2].partition("/")[0]
    host, _, port = host_port.partition(":")

    async def write(store: JobStore, job_id: str) -> None:
        assert isinstance(store, RedisJobStore)
        p, key = store.key_prefix, f"{store.key_prefix}job:{job_id}"
        async with coredis.Redis(
            host=host, port=int(port), decode_responses=True
        ) as client:
            state, seq, priority, handler = await client.hmget(
                key, ["state", "seq", "priority", "handler"]
            )
            assert state is not None
            assert seq is not None
            await client.zrem(f"{p}state:{state}", [job_id])
            if state == "pending":
                await client.zrem(
                    f"{p}q:{priority}:{handler}", [seq.rjust(16, "0") + job_id]
                )
            await client.hset(key, {"state": "paused"})
            await client.zadd(f"{p}state:paused", {job_id: float(seq)})

    return write


# ---------------------------------------------------------------- conformance


def same_prefix(url: str) -> Callable[[JobStore], RedisJobStore]:
    """Another store object on the keys of a store, as another process opens it."""

    def other_store(store: JobStore) -> RedisJobStore:
        assert isinstance(store, RedisJobStore)
        return RedisJobStore(url, prefix=store.prefix)

    return other_store


@pytest.mark.parametrize("check", trunner.testing.job_store_checks())
async def test_check_job_store(check: str) -> None:
    url = require_redis()
    prefixes: list[str] = []

    def factory() -> RedisJobStore:
        prefixes.append(unique_name("jobs"))
        return RedisJobStore(url, prefix=prefixes[-1])

    try:
        async with trunner.open_scheduler():
            await trunner.testing.check_job_store(
                factory,
                only=[check],
                write_unknown_state=state_writer(url),
                other_store=same_prefix(url),
            )
    finally:
        for prefix in prefixes:
            await delete_prefix(url, prefix)


@pytest.mark.usefixtures("collect_driver_garbage")
async def test_check_job_store_on_a_cluster(cluster_ports: list[int]) -> None:
    nodes = ",".join(f"127.0.0.1:{port}" for port in cluster_ports[:2])
    # Several prefixes: their stores land in different slots, on different nodes.
    async with trunner.open_scheduler():
        await trunner.testing.check_job_store(
            lambda: RedisJobStore(f"redis+cluster://{nodes}", prefix=unique_name("c")),
            other_store=same_prefix(f"redis+cluster://{nodes}"),
        )


@pytest.mark.usefixtures("collect_driver_garbage")
async def test_cluster_keys_share_one_slot(cluster_ports: list[int]) -> None:
    import coredis
    from coredis.connection import TCPLocation

    url = f"redis+cluster://127.0.0.1:{cluster_ports[0]}?prefix=one"
    async with trunner.open_scheduler():
        store = open_store(url)
        await store.connect()
        try:
            await store.insert([job("a"), job("b", handler="other", priority=5)])
            assert [j.id for j in await store.list()] == ["b", "a"]
        finally:
            await store.disconnect()
    location = TCPLocation("127.0.0.1", cluster_ports[0])
    async with coredis.RedisCluster(startup_nodes=[location]) as client:
        keys = [key async for key in client.scan_iter(match="{one}:*")]
        slots = {await client.cluster_keyslot(key) for key in keys}
        assert len(keys) > 5
        assert len(slots) == 1
        await client.delete(keys)


# ---------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", "redis://localhost:6379/0?prefix=trunner"),
        ("redis://h:7000/3?prefix=app", "redis://h:7000/3?prefix=app"),
        ("rediss://user:secret@h/1", "rediss://h:6379/1?prefix=trunner"),
        ("redis://:secret@h", "redis://h:6379/0?prefix=trunner"),
        ("redis://[::1]:7000/1", "redis://[::1]:7000/1?prefix=trunner"),
        (
            "redis+cluster://a:7000,b:7001?prefix=x",
            "redis+cluster://a:7000,b:7001?prefix=x",
        ),
    ],
)
def test_urls(url: str, expected: str) -> None:
    store = open_store(url)
    assert isinstance(store, RedisJobStore)
    assert expected in repr(store)
    assert "secret" not in repr(store)


def test_url_credentials() -> None:
    from trunner.jobs._redis_codec import parse_url

    address = parse_url("rediss://us%40er:p%3Ass@h:1/2?timeout=0.5")
    assert (address.username, address.password, address.tls) == ("us@er", "p:ss", True)
    assert (address.nodes, address.db, address.timeout) == ((("h", 1),), 2, 0.5)
    assert parse_url("redis://pw@h").password == "pw"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://", "names no host"),
        ("redis://h:0", "port"),
        ("redis://h:99999", "port"),
        ("redis://h/x", "database"),
        ("redis://a,b", "redis\\+cluster://"),
        ("redis+cluster://a:1/0", "no database"),
        ("redis://h?prefix=", "prefix"),
        ("redis://h?prefix={x}", "prefix"),
        ("redis://h?timeout=0", "timeout"),
        ("redis://h?timeout=abc", "timeout"),
        ("redis://h?db=1", "unknown option 'db'"),
        ("redis://h?prefix=a&prefix=b", "gives prefix= more than once"),
        ("redis://h?timeout=1&timeout=2", "gives timeout= more than once"),
        ("redis://[::1", r"an IPv6 host is written \[address\]:port"),
        ("redis://[::1]6379", r"an IPv6 host is written \[address\]:port"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:secret@h:abc/0",
        "redis://secret@h/x",
        "rediss://:secret@h?bogus=1",
        "redis://user:secret@h?timeout=-1",
        "redis://user:secret@a,b",
    ],
)
def test_bad_url_messages_hide_the_password(url: str) -> None:
    with pytest.raises(ValueError, match=r"\*\*\*@") as caught:
        open_store(url)
    assert "secret" not in str(caught.value)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisJobStore("redis://h", prefix="a}b")
    with pytest.raises(ValueError, match="timeout"):
        RedisJobStore("redis://h", timeout=-1)
    with pytest.raises(TypeError, match="url"):
        RedisJobStore(b"redis://h")  # type: ignore[arg-type]


# ---------------------------------------------------------------- behaviour


async def test_connect_needs_a_scheduler(redis_url: str) -> None:
    with pytest.raises(trunner.NoCurrentSchedulerError, match="open_scheduler"):
        await RedisJobStore(redis_url).connect()


async def test_not_connected(redis_url: str) -> None:
    store = RedisJobStore(redis_url)
    with pytest.raises(StoreError, match="connect it first"):
        await store.get("x")
    with pytest.raises(StoreError, match="connect it first"):
        await store.insert([])


async def test_corrupted_job_fails_alone(redis_url: str) -> None:
    import coredis

    store = RedisJobStore(redis_url)
    async with trunner.open_scheduler():
        await store.connect()
        try:
            await store.insert([job("a"), job("bad"), job("c")])
            host, port = store._address.nodes[0]  # pyright: ignore[reportPrivateUsage]
            async with coredis.Redis(host=host, port=port) as client:
                await client.hset(
                    f"{store.key_prefix}job:bad", {"created_at": "not a time"}
                )
            claimed = await store.claim(
                worker="w", handlers=None, now=T0, lease_until=T0, limit=10
            )
            assert [j.id for j in claimed] == ["a", "c"]
            counts = await store.counts()
            assert counts[JobState.FAILED] == 1
            assert counts[JobState.RUNNING] == 2
            # list leaves it out; get says what is wrong.
            assert sorted(j.id for j in await store.list()) == ["a", "c"]
            with pytest.raises(SerializationError, match="'bad'"):
                await store.get("bad")
        finally:
            await store.disconnect()


async def test_durability_warning(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "trunner.jobs")
    with redis_server(tmp_path / "durable") as durable:
        async with trunner.open_scheduler():
            store = RedisJobStore(durable.url)
            await store.connect()
            await store.disconnect()
    assert "appendfsync" not in caplog.text
    with redis_server(tmp_path / "fast", "--appendfsync", "everysec") as fast:
        async with trunner.open_scheduler():
            store = RedisJobStore(fast.url)
            await store.connect()
            await store.disconnect()
    warnings = [r for r in caplog.records if "can lose" in r.getMessage()]
    assert len(warnings) == 1
    assert "appendfsync=everysec" in warnings[0].getMessage()


@pytest.mark.usefixtures("collect_driver_garbage")
async def test_unreachable_fails_fast(tmp_path: pathlib.Path) -> None:
    server = RedisServer(tmp_path)  # never started: nothing listens on its port
    async with trunner.open_scheduler():
        store = RedisJobStore(server.url, timeout=1.0)
        start = time.monotonic()
        with pytest.raises(StoreError, match="connect"):
            await store.connect()
        assert time.monotonic() - start < 3
        assert "not connected" in repr(store)


@pytest.mark.usefixtures("collect_driver_garbage")
async def test_outage_and_restart(tmp_path: pathlib.Path) -> None:
    """Calls fail with StoreError while Redis is down, and work again after."""
    with redis_server(tmp_path) as server:
        async with trunner.open_scheduler():
            store = RedisJobStore(server.url, timeout=1.0)
            await store.connect()
            try:
                await store.insert([job("before")])
                server.kill()
                start = time.monotonic()
                with pytest.raises(StoreError):
                    await store.insert([job("during")])
                with pytest.raises(StoreError):
                    await store.get("before")
                assert time.monotonic() - start < 4
                server.start()  # the same port, the same append-only file
                assert (await store.get("before")) is not None
                assert await store.get("during") is None
                await store.insert([job("after")])
                assert [j.id for j in await store.list()] == ["after", "before"]
            finally:
                await store.disconnect()


async def test_paused_server_times_out(tmp_path: pathlib.Path) -> None:
    with redis_server(tmp_path) as server:
        async with trunner.open_scheduler():
            store = RedisJobStore(server.url, timeout=0.3)
            await store.connect()
            try:
                await store.insert([job("a")])
                server.cli("client", "pause", "1500", "all")
                start = time.monotonic()
                with pytest.raises(StoreError, match="did not answer"):
                    await store.get("a")
                assert time.monotonic() - start < 2
                server.cli("client", "unpause")
                assert (await store.get("a")) is not None
            finally:
                await store.disconnect()


async def test_big_insert_is_one_transaction(redis_url: str) -> None:
    store = RedisJobStore(redis_url)
    async with trunner.open_scheduler():
        await store.connect()
        try:
            jobs = [job(f"j{i}") for i in range(1200)] + [job("j5")]
            results = await store.insert(jobs)
            assert [inserted for _, inserted in results] == [True] * 1200 + [False]
            assert [r.seq for r, _ in results[:1200]] == list(range(1, 1201))
            assert results[-1][0].seq == 6
            assert (await store.counts())[JobState.PENDING] == 1200
        finally:
            await store.disconnect()


async def test_disconnect_with_the_scheduler_gone(redis_url: str) -> None:
    store = RedisJobStore(redis_url)
    async with trunner.open_scheduler():
        await store.connect()
    # The scheduler closed, and the connection task with it.
    with trio.fail_after(5):
        await store.disconnect()
    async with trunner.open_scheduler():
        await store.connect()
        assert await store.get("x") is None
        await store.disconnect()
