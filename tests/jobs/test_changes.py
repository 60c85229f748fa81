# pyright: reportPrivateUsage=false
# A white-box test: it reads a change feed's queue.
from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, cast

import pytest
import trio
import trio.testing

from trunner import Priority, RetryPolicy, open_scheduler
from trunner.jobs import (
    JobInfo,
    JobRecord,
    JobState,
    JobStore,
    MemoryJobStore,
    Registry,
    SQLiteJobStore,
    StoreError,
    open_job_manager,
)
from trunner.jobs._changes import ChangeFeed

if TYPE_CHECKING:
    from pathlib import Path

NO_JITTER = RetryPolicy(max_attempts=2, initial_delay=1, multiplier=2, jitter=0)
WALL0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    if request.param == "memory":
        return MemoryJobStore()
    return SQLiteJobStore(tmp_path / "jobs.db")


def make_registry() -> Registry:
    registry = Registry()

    @registry.handler("ok")
    async def ok(args: int) -> int:
        return args * 2

    @registry.handler("boom")
    async def boom(args: int) -> int:
        raise RuntimeError(f"boom {args}")

    @registry.handler("slow")
    async def slow(args: int) -> int:
        await trio.sleep(100)
        return args

    return registry


async def test_listener_sees_every_change_in_order(
    store: JobStore, autojump_clock: trio.testing.MockClock
) -> None:
    seen: list[tuple[str, JobState, int]] = []

    def listen(info: JobInfo) -> None:
        seen.append((info.id, info.state, info.attempts))

    with trio.fail_after(60):
        async with open_job_manager(
            store, make_registry(), retry=NO_JITTER, wall_clock=lambda: WALL0
        ) as jm:
            jm.add_listener(listen)
            await jm.submit_job("a", "ok", 1)
            await jm.submit_job("b", "boom", 2)
            await trio.sleep(10)  # "b" fails twice, 1 s of backoff apart
            assert (await jm.get_job("b")).state is JobState.FAILED
            await jm.retry_job("b")
            await jm.submit_job("c", "slow", 3, delay=50)
            await jm.cancel_job("c")
            await trio.sleep(1)
            await jm.cancel_job("c")  # already cancelled: no change, no event
            await trio.sleep(5)
            jm.remove_listener(listen)
            jm.remove_listener(listen)  # unknown: ignored
            await jm.submit_job("d", "ok", 4)

    by_job: dict[str, list[tuple[JobState, int]]] = {}
    for job_id, state, attempts in seen:
        by_job.setdefault(job_id, []).append((state, attempts))
    assert by_job["a"] == [
        (JobState.PENDING, 0),
        (JobState.RUNNING, 1),
        (JobState.SUCCEEDED, 1),
    ]
    assert by_job["b"][:5] == [
        (JobState.PENDING, 0),
        (JobState.RUNNING, 1),
        (JobState.PENDING, 1),
        (JobState.RUNNING, 2),
        (JobState.FAILED, 2),
    ]
    # Retried: pending with fresh attempts, then it runs and fails again.
    assert by_job["b"][5] == (JobState.PENDING, 0)
    assert by_job["c"] == [(JobState.PENDING, 0), (JobState.CANCELLED, 0)]
    assert "d" not in by_job


async def test_listener_that_raises_is_logged_and_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def bad(info: JobInfo) -> None:
        calls.append(info.id)
        raise ValueError("listener broke")

    async with open_job_manager(MemoryJobStore(), worker=False) as jm:
        jm.add_listener(bad)
        await jm.submit_job("x", "any", None)
        await jm.submit_job("y", "any", None)

    assert calls == ["x", "y"]
    assert "a job change listener failed" in caplog.text


async def test_add_listener_refuses_a_non_callable() -> None:
    async with open_job_manager(MemoryJobStore(), worker=False) as jm:
        with pytest.raises(TypeError, match="listener must be callable"):
            jm.add_listener(42)  # type: ignore[arg-type]  # the point of the test


async def test_no_listener_costs_no_read_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryJobStore()
    async with open_job_manager(store, make_registry()) as jm:
        await jm.submit_job("a", "ok", 1)
        await trio.sleep(1)
        assert (await jm.get_job("a")).state is JobState.SUCCEEDED

        names = [runner.name for runner in jm.scheduler.runners]
    assert "jobs-changes" not in names


class FailingGets:
    """Just enough of a store for the feed: every read fails."""

    async def get(self, job_id: str) -> JobRecord | None:
        await trio.lowlevel.checkpoint()
        raise StoreError("the store is down")


def make_info(job_id: str) -> JobInfo:
    return JobInfo(
        id=job_id,
        handler="h",
        args=None,
        state=JobState.PENDING,
        priority=Priority.USER_VISIBLE,
        attempts=0,
        max_attempts=1,
        created_at=WALL0,
        run_at=WALL0,
        started_at=None,
        finished_at=None,
        result=None,
        error=None,
        worker=None,
    )


async def test_feed_keeps_order_behind_read_backs() -> None:
    store = MemoryJobStore()
    seen: list[str] = []
    async with open_scheduler() as scheduler:
        feed = ChangeFeed(store, scheduler)
        feed.publish(make_info("unheard"))  # nobody listens yet
        feed.add(lambda info: seen.append(info.id))
        feed.publish_later("gone")  # no such job: nothing to publish
        feed.publish(make_info("after"))  # queued behind the read-back
        await trio.testing.wait_all_tasks_blocked()
        feed.publish(make_info("now"))  # nothing queued: at once
        assert seen == ["after", "now"]


async def test_feed_drops_a_read_back_the_store_refuses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    caplog.set_level(logging.DEBUG, logger="trunner.jobs")
    async with open_scheduler() as scheduler:
        feed = ChangeFeed(cast("JobStore", FailingGets()), scheduler)
        feed.add(lambda info: seen.append(info.id))
        feed.publish_later("x")
        feed.publish(make_info("y"))
        await trio.testing.wait_all_tasks_blocked()
    assert seen == ["y"]
    assert "could not read job 'x' back" in caplog.text


async def test_feed_after_its_scheduler_closed_drops_quietly() -> None:
    seen: list[str] = []
    async with open_scheduler() as scheduler:
        feed = ChangeFeed(MemoryJobStore(), scheduler)
        feed.add(lambda info: seen.append(info.id))
    feed.publish_later("x")
    feed.publish(make_info("y"))  # nothing queued: delivered inline
    feed._queued = 1  # as if a read-back were still queued
    feed.publish(make_info("z"))
    assert seen == ["y"]
