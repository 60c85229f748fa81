"""Reliability scenarios with real worker processes, on any distributed store.

test_postgres_workers and test_redis_workers run the same scenarios on their
store; each gives the store's URL (and, to cut a worker off, a `Link` it
controls), and keeps only what is its store's own (killed connections, a
server restart).

Worker processes (``python -m trunner worker tests.jobs.crash_handlers:registry``)
share the store; their handlers record each run's start and end (see
`crash_handlers`), so the scenarios can tell that no job ran on two live
workers at once. They run on real time, with a short lease (2 s, renewed
every 2/3 s).
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

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

from .crash_handlers import Run, read_runs
from .test_crash import LEASE, by_job, check_runs, submit, succeeded, workers_on

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence
    from pathlib import Path

    from trunner.jobs import JobInfo

    from .test_crash import Workers

MANY_ATTEMPTS = RetryPolicy(max_attempts=20)  # kills are not the jobs' fault


class Link(Protocol):
    """The way from a worker to its store (a proxy), which a test can cut."""

    def cut(self) -> None:
        """Let nothing through any more, at once."""

    async def restore(self) -> None:
        """Let new connections through again."""


#: How long the scenarios' ``work`` jobs take (seconds): short, so that many run.
SHORT_WORK = (0.002, 0.010)


@asynccontextmanager
async def submitter_and_workers(
    store: str, directory: Path
) -> AsyncGenerator[tuple[JobManager, Workers]]:
    """A manager that only submits, and worker processes to start, on ``store``.

    The workers record their runs in ``directory`` (`read_runs`).
    """
    async with (
        open_job_manager(
            open_store(store), worker=False, retry=MANY_ATTEMPTS
        ) as manager,
        workers_on(store, directory) as workers,
    ):
        yield manager, workers


def check_results(infos: Sequence[JobInfo], runs: dict[str, list[Run]]) -> None:
    """Each job's result is the pid of a process that ran it to its end."""
    for info in infos:
        ends = [run for run in runs[info.id] if run.event == "end"]
        assert ends, (info.id, runs[info.id])
        assert info.result in {run.pid for run in ends}, (info, runs[info.id])


async def held_by(url: str, pid: int) -> set[str]:
    """The jobs that the worker of process ``pid`` holds (RUNNING)."""
    async with open_job_manager(open_store(url), worker=False) as manager:
        infos = await manager.list_jobs(state=JobState.RUNNING, limit=10_000)
    return {
        info.id
        for info in infos
        if info.worker is not None and info.worker.split(":")[1:2] == [str(pid)]
    }


async def three_workers_one_sigkilled(
    store: str, directory: Path, *, seed: int, most_held: int
) -> None:
    """3 workers, 5,000 jobs, one worker SIGKILLed mid-way: every job succeeds.

    No job ever ran on two live workers at once; the killed worker's jobs
    (at most ``most_held``: its concurrency, and what it prefetches) ran
    again only once their leases had expired; all three workers took part.
    """
    jobs = 5000
    rng = random.Random(seed)
    with trio.fail_after(120):
        async with submitter_and_workers(store, directory) as (manager, workers):
            running = [await workers.start() for _ in range(3)]
            for worker in running:
                await workers.wait_up(worker)
            ids = await submit(manager, jobs, rng, SHORT_WORK)
            while await succeeded(manager) < jobs // 4:  # noqa: ASYNC110  # other processes
                await trio.sleep(0.02)
            victim = running.pop(0)
            pid = victim.process.pid
            while not await held_by(store, pid):  # noqa: ASYNC110  # another process
                await trio.sleep(0.01)
            await workers.kill(victim)
            held = await held_by(store, pid)
            while await succeeded(manager) < jobs:  # noqa: ASYNC110  # other processes
                await trio.sleep(0.05)
            codes = [await workers.stop(worker) for worker in running]
            infos = await manager.list_jobs(limit=2 * jobs)

    assert codes == [0, 0], workers.logs()
    assert {info.id for info in infos} == ids
    assert {info.state for info in infos} == {JobState.SUCCEEDED}
    runs = by_job(read_runs(directory))
    assert set(runs) == ids
    check_results(infos, runs)
    for job_id, job_runs in runs.items():
        check_runs(job_id, job_runs, workers.killed)  # never two live workers at once
    # The jobs the killed worker held ran again, but only once their lease
    # had expired: its last renewal was at most LEASE / 3 before the kill.
    killed_at = workers.killed[pid]
    assert 0 < len(held) <= most_held
    attempts = {info.id: info.attempts for info in infos}
    for job_id in held:
        assert attempts[job_id] >= 2, job_id
        again = [r for r in runs[job_id] if r.event == "start" and r.pid != pid]
        assert again, runs[job_id]
        assert again[0].at >= killed_at + LEASE * 2 / 3 - 0.1, (runs[job_id], killed_at)
    pids = {run.pid for job_runs in runs.values() for run in job_runs}
    assert pids == {w.process.pid for w in workers.started}  # all three took part


async def _lease_of(url: str, job_id: str) -> float | None:
    """The job's stored lease end (epoch seconds), or None when it has none."""
    store = open_store(url)
    async with open_job_manager(store, worker=False):
        record = await store.get(job_id)
    assert record is not None
    return None if record.lease_until is None else record.lease_until.timestamp()


async def cut_off_worker_cancels_its_handlers(
    direct: str,
    through: str,
    link: Link,
    caplog: pytest.LogCaptureFixture,
    *,
    submit_within: float,
) -> None:
    """A worker cut off from its store cancels its handlers before their leases end.

    The worker runs in this process on ``through`` (the store behind
    ``link``); the jobs are submitted and watched on ``direct`` (the same
    store, not through the link). Once the link is cut, a submit through it
    fails with StoreError within ``submit_within`` seconds and stores
    nothing; once it is restored, the same worker resumes by itself.
    """
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
    with trio.fail_after(60):
        async with (
            open_job_manager(
                open_store(through), registry, lease=lease, poll_interval=0.2
            ),
            open_job_manager(open_store(direct), worker=False) as other,
            open_job_manager(open_store(through), worker=False) as cut_submitter,
        ):
            for n in range(3):
                await other.submit_job(f"j{n}", "hold", f"j{n}")
            while len(events) < 3:  # noqa: ASYNC110  # the handlers' own record
                await trio.sleep(0.02)
            link.cut()
            cut_at = time.time()
            # Submits through the cut fail in bounded time, storing nothing.
            started = time.monotonic()
            with pytest.raises(StoreError):
                await cut_submitter.submit_job("lost", "hold", "lost")
            assert time.monotonic() - started < submit_within
            while sum(kind == "cancelled" for kind, _, _ in events) < 3:  # noqa: ASYNC110
                await trio.sleep(0.02)
            cancelled_by = time.time()
            # Every lease, as last renewed before the cut, was still valid.
            leases = [await _lease_of(direct, f"j{n}") for n in range(3)]
            assert all(until is not None for until in leases), leases
            assert all(cancelled_by < until for until in leases if until), (
                cut_at,
                cancelled_by,
                leases,
            )
            await link.restore()
            # The same worker resumes by itself: the leases expire, the jobs
            # are taken back and run again (the second run returns).
            while await succeeded(other) < 3:  # noqa: ASYNC110  # the store
                await trio.sleep(0.1)
            infos = await other.list_jobs()
            with pytest.raises(JobNotFoundError):
                await other.get_job("lost")
    assert {info.id: (info.state, info.attempts) for info in infos} == {
        f"j{n}": (JobState.SUCCEEDED, 2) for n in range(3)
    }
