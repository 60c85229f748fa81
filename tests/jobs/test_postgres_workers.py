"""Reliability on PostgreSQL with real processes: crashes, killed connections, cuts.

Worker processes (``python -m trunner worker tests.jobs.crash_handlers:registry``)
share one schema of the local PostgreSQL; their handlers record each run's
start and end (see `crash_handlers`), so the tests can tell that no job ran on
two live workers at once. They run on real time, with a short lease (2 s,
renewed every 2/3 s), and take a few seconds to a few tens of seconds each.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from typing import TYPE_CHECKING

import pytest
import trio

from trunner import RetryPolicy
from trunner.jobs import (
    JobManager,
    JobNotFoundError,
    JobState,
    Registry,
    StoreError,
    open_job_manager,
    open_store,
)

from ._pg import fresh_schema, open_proxy, sql, terminate_backends
from .crash_handlers import Run, Work, read_runs
from .test_crash import LEASE, by_job, check_runs, workers_on

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from trunner.jobs import JobInfo

MANY_ATTEMPTS = RetryPolicy(max_attempts=20)  # kills are not the jobs' fault


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    with fresh_schema() as (url, schema):
        yield url, schema


async def submit_all(manager: JobManager, count: int, rng: random.Random) -> set[str]:
    ids = {f"job-{i:05d}" for i in range(count)}
    async with trio.open_nursery() as nursery:  # concurrent submits share commits
        for job_id in sorted(ids):
            work = Work(job_id, round(rng.uniform(0.002, 0.010), 4))
            nursery.start_soon(manager.submit_job, job_id, "work", work)
    return ids


async def succeeded(manager: JobManager) -> int:
    return (await manager.counts())[JobState.SUCCEEDED]


def held_by(url: str, schema: str, pid: int) -> set[str]:
    """The jobs that the worker of process ``pid`` holds (RUNNING)."""
    rows = sql(
        url,
        f"SELECT id FROM \"{schema}\".jobs WHERE state = 'running' "
        "AND split_part(worker, ':', 2) = %s",
        str(pid),
    )
    return {str(row[0]) for row in rows}


def check_results(infos: Sequence[JobInfo], runs: dict[str, list[Run]]) -> None:
    """Each job's result is the pid of a process that ran it to its end."""
    for info in infos:
        ends = [run for run in runs[info.id] if run.event == "end"]
        assert ends, (info.id, runs[info.id])
        assert info.result in {run.pid for run in ends}, (info, runs[info.id])


async def test_three_workers_one_sigkilled(pg: tuple[str, str], tmp_path: Path) -> None:
    url, schema = pg
    store = f"{url}&schema={schema}"
    jobs = 5000
    rng = random.Random(7)
    with trio.fail_after(120):
        async with (
            open_job_manager(
                open_store(store), worker=False, retry=MANY_ATTEMPTS
            ) as manager,
            workers_on(store, tmp_path) as workers,
        ):
            running = [await workers.start() for _ in range(3)]
            for worker in running:
                await workers.wait_up(worker)
            ids = await submit_all(manager, jobs, rng)
            while await succeeded(manager) < jobs // 4:  # noqa: ASYNC110  # other processes
                await trio.sleep(0.02)
            victim = running.pop(0)
            pid = victim.process.pid
            while not held_by(url, schema, pid):  # noqa: ASYNC110  # another process
                await trio.sleep(0.01)
            await workers.kill(victim)
            held = held_by(url, schema, pid)
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
    assert 0 < len(held) <= 10  # its concurrency
    attempts = {info.id: info.attempts for info in infos}
    for job_id in held:
        assert attempts[job_id] >= 2, job_id
        again = [r for r in runs[job_id] if r.event == "start" and r.pid != pid]
        assert again, runs[job_id]
        assert again[0].at >= killed_at + LEASE * 2 / 3 - 0.1, (runs[job_id], killed_at)
    pids = {run.pid for job_runs in runs.values() for run in job_runs}
    assert pids == {w.process.pid for w in workers.started}  # all three took part


async def test_connections_killed_mid_run_lose_no_job(
    pg: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = pg
    store = f"{url}&schema={schema}"
    jobs = 1000
    rng = random.Random(8)
    with trio.fail_after(90):
        async with (
            open_job_manager(
                open_store(store), worker=False, retry=MANY_ATTEMPTS
            ) as manager,
            workers_on(store, tmp_path) as workers,
        ):
            worker = await workers.start()
            await workers.wait_up(worker)
            ids = await submit_all(manager, jobs, rng)
            killed = 0
            while (done := await succeeded(manager)) < jobs:
                if done > 0 and killed < 5:
                    # Every connection of the test, the worker's included.
                    killed += terminate_backends(url, schema)
                    await trio.sleep(0.3)
                else:
                    await trio.sleep(0.05)
            code = await workers.stop(worker)
            infos = await manager.list_jobs(limit=2 * jobs)

    assert code == 0, workers.logs()
    assert killed >= 5
    assert {info.id for info in infos} == ids
    assert {info.state for info in infos} == {JobState.SUCCEEDED}
    runs = by_job(read_runs(tmp_path))
    assert set(runs) == ids
    check_results(infos, runs)
    for job_runs in runs.values():
        starts = [run for run in job_runs if run.event == "start"]
        ends = [run for run in job_runs if run.event == "end"]
        # One process: a run again only after the previous one ended (a
        # completion lost with its connection: the lease expired first).
        assert len(starts) == len(ends), job_runs
        for earlier_end, later_start in zip(ends, starts[1:], strict=False):
            assert later_start.at >= earlier_end.at, job_runs


async def test_cut_off_worker_cancels_its_handlers_before_their_leases_end(
    pg: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, schema = pg
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
    async with open_proxy() as proxy:
        through = f"{proxy.url(url)}&schema={schema}"
        direct = open_store(f"{url}&schema={schema}")
        with trio.fail_after(60):
            async with (
                open_job_manager(
                    open_store(through), registry, lease=lease, poll_interval=0.2
                ),
                open_job_manager(direct, worker=False) as other,
                open_job_manager(open_store(through), worker=False) as cut_submitter,
            ):
                for n in range(3):
                    await other.submit_job(f"j{n}", "hold", f"j{n}")
                while len(events) < 3:  # noqa: ASYNC110  # the handlers' own record
                    await trio.sleep(0.02)
                leases = sql(url, f'SELECT id, lease_until FROM "{schema}".jobs')
                proxy.cut()
                cut_at = time.time()
                # Submits through the cut fail in bounded time, storing nothing.
                started = time.monotonic()
                with pytest.raises(StoreError):
                    await cut_submitter.submit_job("lost", "hold", "lost")
                assert time.monotonic() - started < 6
                while sum(kind == "cancelled" for kind, _, _ in events) < 3:  # noqa: ASYNC110
                    await trio.sleep(0.02)
                cancelled_by = time.time()
                # Every lease, as last renewed before the cut, was still valid.
                stored = sql(url, f'SELECT id, lease_until FROM "{schema}".jobs')
                for _, lease_until in stored:
                    assert isinstance(lease_until, dt.datetime)
                    assert cancelled_by < lease_until.timestamp(), (
                        cut_at,
                        cancelled_by,
                        stored,
                    )
                assert len(leases) == 3
                await proxy.restore()
                # The same worker resumes by itself: the leases expire, the
                # jobs are taken back and run again (the second run returns).
                while (  # noqa: ASYNC110  # the store
                    await other.counts()
                )[JobState.SUCCEEDED] < 3:
                    await trio.sleep(0.1)
                infos = await other.list_jobs()
    assert {info.id: (info.state, info.attempts) for info in infos} == {
        f"j{n}": (JobState.SUCCEEDED, 2) for n in range(3)
    }
    with pytest.raises(JobNotFoundError):
        await _get_lost(f"{url}&schema={schema}")


async def _get_lost(store: str) -> None:
    async with open_job_manager(open_store(store), worker=False) as manager:
        await manager.get_job("lost")
