"""Reliability on Redis with real processes: crashes, a server restart, a cut.

Worker processes (``python -m trunner worker tests.jobs.crash_handlers:registry``)
share one Redis store; their handlers record each run's start and end (see
`crash_handlers`), so the tests can tell that no job ran on two live workers
at once. They run on real time, with a short lease (2 s, renewed every 2/3 s).
The tests that stop or pause a server run their own ``redis-server`` (with
``appendonly yes`` and ``appendfsync always``) in a temporary directory.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from typing import TYPE_CHECKING

import pytest
import trio

from trunner import RetryPolicy
from trunner.jobs import (
    JobInfo,
    JobManager,
    JobNotFoundError,
    JobState,
    RedisJobStore,
    Registry,
    StoreError,
    open_job_manager,
    open_store,
)

from .._services import REDIS_PORT, require_redis, unique_name
from .crash_handlers import Run, Work, read_runs
from .redis_servers import redis_proxy, redis_server
from .test_crash import LEASE, by_job, check_runs, workers_on
from .test_redis_store import delete_prefix

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence
    from pathlib import Path

pytest.importorskip("coredis")

# coredis 6.9 leaves the anyio streams of a connection that never came up
# unclosed (a server down); their __del__ warns. Collected after each test.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function MemoryObject"
    ":pytest.PytestUnraisableExceptionWarning"
)


MANY_ATTEMPTS = RetryPolicy(max_attempts=20)  # kills are not the jobs' fault


@pytest.fixture(autouse=True)
def _collect_driver_garbage() -> Iterator[None]:
    yield
    gc.collect()


@pytest.fixture
async def shared_store() -> AsyncIterator[str]:
    """A store of its own on the shared Redis, deleted afterwards."""
    url = require_redis()
    prefix = unique_name("workers")
    try:
        yield f"{url}?prefix={prefix}"
    finally:
        await delete_prefix(url, prefix)


async def submit_all(manager: JobManager, count: int, rng: random.Random) -> set[str]:
    ids = {f"job-{i:05d}" for i in range(count)}
    async with trio.open_nursery() as nursery:  # concurrent submits share commits
        for job_id in sorted(ids):
            work = Work(job_id, round(rng.uniform(0.002, 0.010), 4))
            nursery.start_soon(manager.submit_job, job_id, "work", work)
    return ids


async def succeeded(manager: JobManager) -> int:
    return (await manager.counts())[JobState.SUCCEEDED]


def check_results(infos: Sequence[JobInfo], runs: dict[str, list[Run]]) -> None:
    """Each job's result is the pid of a process that ran it to its end."""
    for info in infos:
        ends = [run for run in runs[info.id] if run.event == "end"]
        assert ends, (info.id, runs[info.id])
        assert info.result in {run.pid for run in ends}, (info, runs[info.id])


async def held_by(url: str, pid: int) -> set[str]:
    """The jobs that the worker of process ``pid`` holds (RUNNING)."""
    store = open_store(url)
    async with open_job_manager(store, worker=False) as manager:
        infos = await manager.list_jobs(state=JobState.RUNNING, limit=10_000)
    return {
        info.id
        for info in infos
        if info.worker is not None and info.worker.split(":")[1:2] == [str(pid)]
    }


async def test_three_workers_one_sigkilled(shared_store: str, tmp_path: Path) -> None:
    jobs = 5000
    rng = random.Random(11)
    with trio.fail_after(120):
        async with (
            open_job_manager(
                open_store(shared_store), worker=False, retry=MANY_ATTEMPTS
            ) as manager,
            workers_on(shared_store, tmp_path) as workers,
        ):
            running = [await workers.start() for _ in range(3)]
            for worker in running:
                await workers.wait_up(worker)
            ids = await submit_all(manager, jobs, rng)
            while await succeeded(manager) < jobs // 4:  # noqa: ASYNC110  # other processes
                await trio.sleep(0.02)
            victim = running.pop(0)
            pid = victim.process.pid
            while not await held_by(shared_store, pid):  # noqa: ASYNC110  # another process
                await trio.sleep(0.01)
            await workers.kill(victim)
            held = await held_by(shared_store, pid)
            while await succeeded(manager) < jobs:  # noqa: ASYNC110  # other processes
                await trio.sleep(0.05)
            codes = [await workers.stop(worker) for worker in running]
            infos = await manager.list_jobs(limit=2 * jobs)

    assert codes == [0, 0], workers.logs()
    assert {info.id for info in infos} == ids
    assert {info.state for info in infos} == {JobState.SUCCEEDED}
    runs = by_job(read_runs(tmp_path))
    assert set(runs) == ids
    check_results(infos, runs)
    for job_id, job_runs in runs.items():
        check_runs(job_id, job_runs, workers.killed)  # never two live workers at once
    # The jobs the killed worker held ran again, but only once their lease
    # had expired: its last renewal was at most LEASE / 3 before the kill.
    killed_at = workers.killed[pid]
    assert 0 < len(held) <= 2 * 10  # its concurrency, and as many prefetched
    attempts = {info.id: info.attempts for info in infos}
    for job_id in held:
        assert attempts[job_id] >= 2, job_id
        again = [r for r in runs[job_id] if r.event == "start" and r.pid != pid]
        assert again, runs[job_id]
        assert again[0].at >= killed_at + LEASE * 2 / 3 - 0.1, (runs[job_id], killed_at)
    pids = {run.pid for job_runs in runs.values() for run in job_runs}
    assert pids == {w.process.pid for w in workers.started}  # all three took part


async def test_redis_restart_loses_no_acknowledged_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="trunner.jobs")  # expected failures
    rng = random.Random(12)
    with redis_server(tmp_path / "redis") as server:
        url = f"{server.url}?timeout=1"
        with trio.fail_after(90):
            async with (
                open_job_manager(
                    open_store(url), worker=False, retry=MANY_ATTEMPTS
                ) as manager,
                workers_on(url, tmp_path) as workers,
            ):
                worker = await workers.start()
                await workers.wait_up(worker)
                acknowledged = await submit_all(manager, 300, rng)
                while await succeeded(manager) < 100:  # noqa: ASYNC110  # another process
                    await trio.sleep(0.02)
                server.kill()
                # Submits during the outage fail, within the timeout.
                refused = 0
                for n in range(5):
                    started = time.monotonic()
                    with pytest.raises(StoreError):
                        await manager.submit_job(
                            f"outage-{n}", "work", Work("x", 0.002)
                        )
                    assert time.monotonic() - started < 3
                    refused += 1
                await trio.sleep(1.5)  # the worker's calls fail meanwhile
                server.start()  # the same port and append-only file
                for n in range(100):
                    job_id = f"after-{n}"
                    await manager.submit_job(job_id, "work", Work(job_id, 0.002))
                    acknowledged.add(job_id)
                total = len(acknowledged)
                while await succeeded(manager) < total:  # noqa: ASYNC110  # another process
                    await trio.sleep(0.05)
                code = await workers.stop(worker)
                infos = await manager.list_jobs(limit=1000)
    assert refused == 5
    assert code == 0, workers.logs()
    # Every acknowledged job is there and ran; none of the refused ones is.
    assert {info.id for info in infos} == acknowledged
    assert {info.state for info in infos} == {JobState.SUCCEEDED}
    runs = by_job(read_runs(tmp_path))
    assert set(runs) == acknowledged
    # The same worker process ran the jobs submitted after the restart.
    assert {run.pid for run in runs["after-99"]} == {worker.process.pid}


async def test_cut_off_worker_cancels_its_handlers_before_their_leases_end(
    shared_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    lease = 3.0
    registry = Registry()
    events: list[tuple[str, str, float]] = []

    @registry.handler("hold")
    async def hold(job_id: str) -> str:
        events.append(("start", job_id, time.time()))
        try:
            if sum(kind == "start" and j == job_id for kind, j, _ in events) == 1:
                await trio.sleep(60)  # the first attempt runs until cut off
            return job_id
        except trio.Cancelled:
            events.append(("cancelled", job_id, time.time()))
            raise

    caplog.set_level(logging.CRITICAL, logger="trunner.jobs")  # expected failures
    prefix = shared_store.partition("?")[2]
    async with redis_proxy(REDIS_PORT) as proxy:
        through = proxy.url(f"?{prefix}&timeout=0.5")
        with trio.fail_after(60):
            async with (
                open_job_manager(
                    open_store(through), registry, lease=lease, poll_interval=0.2
                ),
                open_job_manager(open_store(shared_store), worker=False) as other,
                open_job_manager(open_store(through), worker=False) as cut_submitter,
            ):
                for n in range(3):
                    await other.submit_job(f"j{n}", "hold", f"j{n}")
                while len(events) < 3:  # noqa: ASYNC110  # the handlers' own record
                    await trio.sleep(0.02)
                proxy.cut()
                cut_at = time.time()
                # Submits through the cut fail in bounded time, storing nothing.
                started = time.monotonic()
                with pytest.raises(StoreError):
                    await cut_submitter.submit_job("lost", "hold", "lost")
                assert time.monotonic() - started < 3
                while sum(kind == "cancelled" for kind, _, _ in events) < 3:  # noqa: ASYNC110
                    await trio.sleep(0.02)
                cancelled_by = time.time()
                # Every lease, as last renewed before the cut, was still valid.
                leases = [await _lease_of(shared_store, f"j{n}") for n in range(3)]
                assert all(until is not None for until in leases), leases
                assert all(cancelled_by < until for until in leases if until), (
                    cut_at,
                    cancelled_by,
                    leases,
                )
                proxy.restore()
                # The same worker resumes by itself: the leases expire, the
                # jobs are taken back and run again (the second run returns).
                while (await other.counts())[JobState.SUCCEEDED] < 3:  # noqa: ASYNC110
                    await trio.sleep(0.1)
                infos = await other.list_jobs()
                with pytest.raises(JobNotFoundError):
                    await other.get_job("lost")
    assert {info.id: (info.state, info.attempts) for info in infos} == {
        f"j{n}": (JobState.SUCCEEDED, 2) for n in range(3)
    }


async def _lease_of(url: str, job_id: str) -> float | None:
    """The job's stored lease end (epoch seconds), or None when it has none."""
    store = RedisJobStore(url)
    async with open_job_manager(store, worker=False):
        record = await store.get(job_id)
    assert record is not None
    return None if record.lease_until is None else record.lease_until.timestamp()
