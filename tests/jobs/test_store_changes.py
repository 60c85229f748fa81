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
import itertools
import logging
import sqlite3
from typing import TYPE_CHECKING
from unittest.mock import patch

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import trunner
from trunner import RetryPolicy
from trunner.jobs import (
    ChangeSource,
    JobManager,
    JobRecord,
    JobState,
    MemoryJobStore,
    PostgresJobStore,
    SQLiteJobStore,
    StoreError,
    open_job_manager,
    open_store,
)
from trunner.jobs import _change_reader as change_reader
from trunner.jobs._change_reader import ChangeReader
from trunner.jobs._sqlite_schema import SCHEMA_VERSION

from .._services import require_redis, unique_name
from ._pg import fresh_schema, terminate_backends
from .crash_handlers import Work
from .crash_handlers import registry as crash_registry
from .redis_servers import DRIVER_GARBAGE, redis_server
from .test_crash import url_of, workers_on
from .test_redis_store import delete_prefix

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
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


async def heard(
    other: JobManager, prefix: str, seen: list[tuple[str, JobState]]
) -> None:
    """Submit jobs through ``other`` until ``seen`` has one: the feed listens.

    A change made before the front's feed listens (it starts with the first
    listener, and again after a fault) may be missed: submit until one is not.
    """
    for attempt in itertools.count():
        with contextlib.suppress(StoreError):  # (the store may be down still)
            await other.submit_job(f"{prefix}{attempt}", "ok", 1)
        with trio.move_on_after(0.5):
            await eventually(lambda: any(i.startswith(prefix) for i, _ in seen))
            return


def test_memory_store_has_no_feed() -> None:
    # One live manager per memory store: no other writer to follow.
    assert not isinstance(MemoryJobStore(), ChangeSource)


async def test_sqlite_migrates_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with trunner.open_scheduler():
        async with open_job_manager(SQLiteJobStore(path), worker=False) as jm:
            await jm.submit_job("old", "ok", 1)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("DROP INDEX trunner_jobs_changed")
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
        assert "trunner_jobs_changed" in str(plan)


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
                await heard(other, "a", seen)
                assert terminate_backends(url, schema) >= 2
                await heard(other, "b", seen)


@DRIVER_GARBAGE
@pytest.mark.usefixtures("collect_driver_garbage")
async def test_redis_front_sees_a_worker_process(tmp_path: Path) -> None:
    url = require_redis()
    prefix = unique_name("feed")
    try:
        await front_sees_a_worker_process(f"{url}?prefix={prefix}", tmp_path)
    finally:
        await delete_prefix(url, prefix)


@DRIVER_GARBAGE
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
            await heard(other, "a", seen)
            server.kill()
            await trio.sleep(1)
            server.start()
            await heard(other, "b", seen)


# ------------------------------------------------------------ the reader


def record(seq: int) -> JobRecord:
    return JobRecord(
        id=f"job-{seq}",
        handler="h",
        args="null",
        state=JobState.PENDING,
        priority=0,
        attempts=0,
        max_attempts=1,
        created_at=T0,
        run_at=T0,
        seq=seq,
    )


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.sampled_from(["me", "them", "ops"]),
            st.lists(st.integers(1, 30), max_size=8),
        ),
        max_size=20,
    ),
    gone=st.sets(st.integers(1, 30)),
    batch=st.integers(1, 7),
)
def test_reader_reports_each_job_of_others_once_in_last_change_order(
    messages: list[tuple[str, list[int]]], gone: set[int], batch: int
) -> None:
    # Whatever the messages, a reader reads back each job that another writer
    # changed (and that is still stored) once, in the order of its last change
    # by them, and never a job only its own writer changed.
    reads: list[list[int]] = []

    async def read(seqs: Sequence[int]) -> list[JobRecord]:
        reads.append(list(seqs))
        await trio.lowlevel.checkpoint()
        return [record(seq) for seq in seqs if seq not in gone]

    def parse(message: str) -> tuple[str, list[int]]:
        writer, _, seqs = message.partition(" ")
        return writer, [int(seq) for seq in seqs.split()]

    reader = ChangeReader("me", parse, read)
    reader.watcher = IdleWatcher()
    heard = [
        reader.accept(" ".join([writer, *map(str, seqs)])) for writer, seqs in messages
    ]
    assert not reader.accept("not a message: no seq")
    assert heard == [writer != "me" for writer, _ in messages]
    order: dict[int, None] = {}
    for writer, seqs in messages:
        if writer != "me":
            for seq in seqs:
                order.pop(seq, None)
                order[seq] = None
    got: list[int] = []

    async def main() -> None:
        with patch.object(change_reader, "_BATCH", batch):
            while answer := await reader.changes(0):
                got.extend(r.seq for r in answer)

    trio.run(main)
    assert got == [seq for seq in order if seq not in gone]
    assert all(len(seqs) <= batch for seqs in reads)


class IdleWatcher:
    """A watcher that hears nothing: every wait times out."""

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109  # the protocol's
        await trio.sleep(timeout)
        return False
