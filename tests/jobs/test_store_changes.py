"""Changes made by other store objects (other processes): the stores' feeds.

The conformance check ``changes`` (`check_job_store` with ``other_store``)
covers each store's `ChangeWatcher`; here are what is each store's own (the
SQLite change counter and its migration) and the manager's side: a front end
(``worker=False``) hears the claims and ends of another manager, or of a
``trunner worker`` process, on the same store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import logging
import sqlite3
from typing import TYPE_CHECKING

import pytest
import trio

import trunner
from trunner import RetryPolicy
from trunner.jobs import (
    ChangeSource,
    JobState,
    MemoryJobStore,
    PostgresJobStore,
    SQLiteJobStore,
    StoreError,
    open_job_manager,
    open_store,
)
from trunner.jobs._sqlite_schema import SCHEMA_VERSION

from .._services import require_redis, unique_name
from ._pg import fresh_schema, terminate_backends
from .crash_handlers import Work
from .crash_handlers import registry as crash_registry
from .redis_servers import redis_server
from .test_crash import url_of, workers_on
from .test_redis_store import delete_prefix

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trunner.jobs import ChangeWatcher


T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


async def until(
    watcher: ChangeWatcher, want: set[tuple[str, JobState]]
) -> list[tuple[str, JobState]]:
    seen: list[tuple[str, JobState]] = []
    with trio.fail_after(10):
        while not want <= set(seen):
            seen += [(r.id, r.state) for r in await watcher.changes(10)]
    return seen


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()``: it is another process's or connection's doing."""
    while not condition():  # noqa: ASYNC110  # no event to wait on
        await trio.sleep(0.01)


def test_memory_store_has_no_feed() -> None:
    # One live manager per memory store: no other writer to follow.
    assert not isinstance(MemoryJobStore(), ChangeSource)


async def test_sqlite_migrates_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with trunner.open_scheduler():
        async with open_job_manager(SQLiteJobStore(path), worker=False) as jm:
            await jm.submit_job("old", "ok", 1)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("DROP INDEX trunner_jobs_changes")
        conn.execute("ALTER TABLE trunner_jobs DROP COLUMN change_seq")
        conn.execute("UPDATE trunner_meta SET value = '1' WHERE key = 'schema'")
        conn.close()

        first, second = SQLiteJobStore(path), SQLiteJobStore(path)
        await first.connect()
        await second.connect()
        try:
            async with first.watch_changes(poll_interval=0.01) as watcher:
                assert await second.request_cancel("old", now=T0) is not None
                assert await until(watcher, {("old", JobState.CANCELLED)}) == [
                    ("old", JobState.CANCELLED)
                ]
        finally:
            await first.disconnect()
            await second.disconnect()
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            (version,) = conn.execute(
                "SELECT value FROM trunner_meta WHERE key = 'schema'"
            ).fetchone()
            plan = conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM trunner_jobs "
                "WHERE change_seq > 0 ORDER BY change_seq"
            ).fetchall()
        finally:
            conn.close()
        assert version == str(SCHEMA_VERSION) == "2"
        assert "trunner_jobs_changes" in str(plan)


async def test_sqlite_change_numbers_are_not_handed_out_twice(tmp_path: Path) -> None:
    # Deleting the job stamped last must not let the next change take its
    # number: a follower that saw that number would miss the next change.
    path = tmp_path / "jobs.db"
    async with trunner.open_scheduler():
        follower, writer = SQLiteJobStore(path), SQLiteJobStore(path)
        await follower.connect()
        await writer.connect()
        try:
            async with open_job_manager(writer, worker=False) as jm:
                await jm.submit_job("a", "ok", 1)
                await jm.submit_job("b", "ok", 1)
                await jm.cancel_job("b")
                async with follower.watch_changes(poll_interval=0.01) as watcher:
                    await jm.cancel_job("a")
                    await until(watcher, {("a", JobState.CANCELLED)})
                    await jm.delete_job("a")  # the newest number goes
                    await jm.retry_job("b")
                    assert await until(watcher, {("b", JobState.PENDING)}) == [
                        ("b", JobState.PENDING)
                    ]
        finally:
            await follower.disconnect()


# ------------------------------------------------------------ across processes


async def front_sees_a_worker_process(url: str, directory: Path) -> None:
    """A ``worker=False`` manager's listener hears a worker process's changes."""
    seen: list[tuple[str, JobState]] = []
    once = RetryPolicy(max_attempts=1)
    with trio.fail_after(60):
        async with (
            open_job_manager(
                open_store(url), crash_registry, worker=False, poll_interval=0.05
            ) as front,
            workers_on(url, directory) as workers,
        ):
            front.add_listener(lambda info: seen.append((info.id, info.state)))
            worker = await workers.start()
            await workers.wait_up(worker)
            # Long enough for the front to read it back while it runs.
            await front.submit_job("ok", "work", Work("ok", 1.0))
            await front.submit_job("bad", "fail", "no", retry=once)
            want = {
                ("ok", JobState.RUNNING),
                ("ok", JobState.SUCCEEDED),
                ("bad", JobState.FAILED),
            }
            await eventually(lambda: want <= set(seen))
            code = await workers.stop(worker)
    assert code == 0, workers.logs()
    ok = [state for job_id, state in seen if job_id == "ok"]
    # Its submit (reported by the front itself), its claim and its end, each
    # once and in order: no change is reported twice, from both sides.
    assert ok == [JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED]
    assert seen.count(("bad", JobState.FAILED)) == 1


async def test_sqlite_front_sees_a_worker_process(tmp_path: Path) -> None:
    await front_sees_a_worker_process(url_of(tmp_path / "jobs.db"), tmp_path)


async def test_postgres_front_sees_a_worker_process(tmp_path: Path) -> None:
    with fresh_schema() as (url, schema):
        await front_sees_a_worker_process(f"{url}&schema={schema}", tmp_path)


async def test_postgres_feed_survives_killed_connections(tmp_path: Path) -> None:
    # The listening connection dies (pg_terminate_backend): the feed
    # reconnects, and the changes made after that are reported.
    del tmp_path
    with fresh_schema() as (url, schema):
        seen: list[tuple[str, JobState]] = []
        with trio.fail_after(30):
            async with (
                open_job_manager(
                    PostgresJobStore(url, schema=schema), worker=False
                ) as front,
                open_job_manager(
                    PostgresJobStore(url, schema=schema), worker=False
                ) as other,
            ):
                front.add_listener(lambda info: seen.append((info.id, info.state)))
                await other.submit_job("a", "ok", 1)
                await eventually(lambda: ("a", JobState.PENDING) in seen)
                assert terminate_backends(url, schema) >= 2
                for attempt in itertools.count():
                    # Changes made before the feed listens again may be missed.
                    await other.submit_job(f"b{attempt}", "ok", 1)
                    with trio.move_on_after(0.5):
                        await eventually(lambda: any(i[0] != "a" for i in seen))
                    if any(job_id != "a" for job_id, _ in seen):
                        break


# coredis leaves the anyio memory streams of a connection it could not make
# unclosed (see test_redis_store): collected after each Redis test, here.
REDIS_DRIVER_GARBAGE = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function MemoryObject"
    ":pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture
def collect_driver_garbage() -> Iterator[None]:
    yield
    gc.collect()


@REDIS_DRIVER_GARBAGE
@pytest.mark.usefixtures("collect_driver_garbage")
async def test_redis_front_sees_a_worker_process(tmp_path: Path) -> None:
    url = require_redis()
    prefix = unique_name("feed")
    try:
        await front_sees_a_worker_process(f"{url}?prefix={prefix}", tmp_path)
    finally:
        await delete_prefix(url, prefix)


@REDIS_DRIVER_GARBAGE
@pytest.mark.usefixtures("collect_driver_garbage")
async def test_redis_feed_survives_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The subscription is lost while the server is down: the feed subscribes
    # again, and the changes made after that are reported.
    caplog.set_level(logging.CRITICAL, logger="trunner.jobs")  # expected failures
    seen: list[tuple[str, JobState]] = []
    with redis_server(tmp_path / "redis") as server, trio.fail_after(60):
        url = f"{server.url}?timeout=1"
        async with (
            open_job_manager(open_store(url), worker=False) as front,
            open_job_manager(open_store(url), worker=False) as other,
        ):
            front.add_listener(lambda info: seen.append((info.id, info.state)))
            await other.submit_job("a", "ok", 1)
            await eventually(lambda: ("a", JobState.PENDING) in seen)
            server.kill()
            await trio.sleep(1)
            server.start()
            for attempt in itertools.count():
                # Changes made before the feed subscribes again may be missed.
                with contextlib.suppress(StoreError):
                    await other.submit_job(f"b{attempt}", "ok", 1)
                with trio.move_on_after(0.5):
                    await eventually(lambda: any(i[0] != "a" for i in seen))
                if any(job_id != "a" for job_id, _ in seen):
                    break
