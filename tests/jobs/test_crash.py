"""Reliability with real processes: workers SIGKILLed mid-run lose no job.

Each test starts ``python -m trunner worker tests.jobs.crash_handlers:registry``
processes on one SQLite file and submits jobs from this process. The handlers
record every run in files of their own (see `crash_handlers`), so the tests
can tell how often each job ran, in which process, and when.

Timing: workers run with ``--lease 2``, so a running job's lease is renewed
every 2/3 s and a killed worker's jobs become pending again at most 2 s after
its last renewal; the surviving worker notices at its next lease check (every
2/3 s) and takes them. Handlers take 5-50 ms, so a kill lands mid-run of up to
``--concurrency`` jobs. These tests run on real time, which the worker
processes force on them, and each one stays under about 30 s.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import sys
import time
from collections import defaultdict
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from trunner import RetryPolicy
from trunner.jobs import JobManager, JobState, open_job_manager, open_store

from .crash_handlers import RUNS_ENV, Run, Work, read_runs, registry

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

ROOT = Path(__file__).parent.parent.parent
LEASE = 2
CONCURRENCY = 10
MAX_KILLS = 12


@attrs.define
class Worker:
    process: trio.Process
    log: Path


@attrs.define
class Workers:
    """Worker processes on one store; each one's stderr goes to its own file."""

    url: str
    directory: Path
    started: list[Worker] = attrs.field(factory=list[Worker])
    #: pid -> time.time() of its SIGKILL.
    killed: dict[int, float] = attrs.field(factory=dict[int, float])

    async def start(self) -> Worker:
        log = self.directory / f"worker-{len(self.started)}.log"
        with log.open("wb") as stderr:
            process = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-m",
                    "trunner",
                    "worker",
                    "tests.jobs.crash_handlers:registry",
                    "--store",
                    self.url,
                    "--concurrency",
                    str(CONCURRENCY),
                    "--lease",
                    str(LEASE),
                    "--grace-period",
                    "5",
                    "--poll-interval",
                    "0.1",
                ],
                cwd=ROOT,
                stderr=stderr,
                env={**os.environ, RUNS_ENV: str(self.directory)},
            )
        worker = Worker(process, log)
        self.started.append(worker)
        return worker

    async def kill(self, worker: Worker) -> None:
        worker.process.kill()
        self.killed[worker.process.pid] = time.time()
        await worker.process.wait()

    def is_up(self, worker: Worker) -> bool:
        """Whether the worker has opened its manager and runs jobs."""
        return "running jobs of" in worker.log.read_text()

    async def wait_up(self, worker: Worker) -> None:
        """Wait until the worker runs (a SIGINT before that is Python's, not ours)."""
        while not self.is_up(worker):  # noqa: ASYNC110  # another process: no event
            await trio.sleep(0.05)

    async def stop(self, worker: Worker) -> int:
        """Stop gracefully (SIGINT); return the exit code."""
        await self.wait_up(worker)
        worker.process.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            return await worker.process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {w.log.name} (pid {w.process.pid})\n{w.log.read_text()}"
            for w in self.started
        )


@asynccontextmanager
async def workers_on(url: str, directory: Path) -> AsyncGenerator[Workers]:
    workers = Workers(url, directory)
    try:
        yield workers
    finally:
        with trio.CancelScope(shield=True):
            for worker in workers.started:
                if worker.process.returncode is None:
                    worker.process.kill()
                    await worker.process.wait()


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


async def submit(
    manager: JobManager,
    count: int,
    rng: random.Random,
    durations: tuple[float, float] = (0.005, 0.05),
) -> set[str]:
    """Submit ``count`` ``work`` jobs concurrently; return their ids.

    Each one takes a random time within ``durations`` (seconds).
    """
    ids = {f"job-{i:05d}" for i in range(count)}
    async with trio.open_nursery() as nursery:  # concurrent submits share commits
        for job_id in sorted(ids):
            work = Work(job_id, round(rng.uniform(*durations), 4))
            nursery.start_soon(manager.submit_job, job_id, "work", work)
    return ids


async def succeeded(manager: JobManager) -> int:
    return (await manager.counts()).get(JobState.SUCCEEDED, 0)


def by_job(runs: list[Run]) -> dict[str, list[Run]]:
    jobs: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        jobs[run.job].append(run)
    return jobs


async def test_sigkilled_workers_lose_no_job(tmp_path: Path) -> None:
    jobs = 1000
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    store = url_of(tmp_path / "jobs.db")
    many_attempts = RetryPolicy(max_attempts=20)  # kills are not the jobs' fault
    started = time.monotonic()
    with trio.fail_after(150):
        async with (
            open_job_manager(
                open_store(store), registry, worker=False, retry=many_attempts
            ) as manager,
            workers_on(store, tmp_path) as workers,
        ):
            ids = await submit(manager, jobs, rng)
            running = [await workers.start(), await workers.start()]
            # Each worker is killed at a random moment once it is up (so that
            # the kill lands while it runs jobs), up to MAX_KILLS kills in all.
            kill_at: list[float | None] = [None, None]
            while await succeeded(manager) < jobs:
                now = trio.current_time()
                for slot, worker in enumerate(running):
                    if len(workers.killed) >= MAX_KILLS:
                        break
                    if kill_at[slot] is None and workers.is_up(worker):
                        kill_at[slot] = now + rng.uniform(0.1, 0.8)
                    deadline = kill_at[slot]
                    if deadline is not None and now >= deadline:
                        await workers.kill(worker)
                        running[slot] = await workers.start()
                        kill_at[slot] = None
                await trio.sleep(0.02)
            codes = [await workers.stop(worker) for worker in running]
            infos = await manager.list_jobs(limit=2 * jobs)
    took = time.monotonic() - started

    logs = workers.logs()
    assert codes == [0, 0], logs
    assert {info.id for info in infos} == ids
    assert {info.state for info in infos} == {JobState.SUCCEEDED}
    runs = by_job(read_runs(tmp_path))
    assert set(runs) == ids
    starts = {job: sum(run.event == "start" for run in r) for job, r in runs.items()}
    twice = sorted(job for job, count in starts.items() if count > 1)
    kills = len(workers.killed)
    ended = {
        (run.job, run.pid) for r in runs.values() for run in r if run.event == "end"
    }
    interrupted = [
        run
        for r in runs.values()
        for run in r
        if run.event == "start" and (run.job, run.pid) not in ended
    ]
    # A run that ended, but whose worker was killed before it stored the end.
    unrecorded = sum(starts[job] - 1 for job in twice) - len(interrupted)
    print(
        f"\ncrash test (seed {seed}): {jobs} jobs, {kills} workers SIGKILLed "
        f"({len(workers.started)} started), {sum(starts.values())} runs in all; "
        f"{len(twice)} jobs ran more than once (at most {max(starts.values())} "
        f"times): {len(interrupted)} runs were interrupted, {unrecorded} ended but "
        f"their end was not stored yet; {took:.1f} s"
    )
    assert {run.pid for run in interrupted} <= set(workers.killed)
    # Only the runs a kill interrupts or whose end it loses run again. A worker
    # commits its ends a round at a time: at the kill, the round in flight
    # holds the ends of at most the 2 * CONCURRENCY jobs it held when the
    # previous one started (running or prefetched), and at most as many again
    # ran since: a kill makes at most 4 * CONCURRENCY jobs run again.
    assert len(twice) <= kills * 4 * CONCURRENCY
    for job, job_runs in runs.items():
        check_runs(job, job_runs, workers.killed)
    # Each run is an attempt (a claim): some claims die before their run starts.
    for info in infos:
        assert info.attempts >= starts[info.id], (info, runs[info.id])


def check_runs(job: str, runs: list[Run], killed: dict[int, float]) -> None:
    """Check the runs of one job, in time order.

    Every run but the last was in a process that was killed afterwards (at
    least once delivery: only an interrupted run is repeated); the last one
    ended; and no two runs overlapped (never two live workers at once): a run
    starts after the previous one ended, or after its process was killed.
    """
    starts = [run for run in runs if run.event == "start"]
    ends = {run.pid: run for run in runs if run.event == "end"}
    assert starts, job
    assert starts[-1].pid in ends, (job, runs)
    for earlier, later in itertools.pairwise(starts):
        assert earlier.pid in killed, (job, runs, killed)
        ended = ends[earlier.pid].at if earlier.pid in ends else killed[earlier.pid]
        assert later.at >= ended, (job, runs, killed)


async def test_two_workers_run_each_job_once(tmp_path: Path) -> None:
    jobs = 300
    rng = random.Random(1)
    store = url_of(tmp_path / "jobs.db")
    with trio.fail_after(90):
        async with (
            open_job_manager(open_store(store), registry, worker=False) as manager,
            workers_on(store, tmp_path) as workers,
        ):
            running = [await workers.start(), await workers.start()]
            # Both are up (and polling) before the jobs come: both get some.
            for worker in running:
                await workers.wait_up(worker)
            ids = await submit(manager, jobs, rng)
            while await succeeded(manager) < jobs:  # noqa: ASYNC110  # see wait_up
                await trio.sleep(0.05)
            codes = [await workers.stop(worker) for worker in running]
            infos = await manager.list_jobs(limit=2 * jobs)

    assert codes == [0, 0], workers.logs()
    outcomes = {info.id: (info.state, info.attempts) for info in infos}
    assert outcomes == dict.fromkeys(ids, (JobState.SUCCEEDED, 1))
    runs = by_job(read_runs(tmp_path))
    assert {job: [run.event for run in job_runs] for job, job_runs in runs.items()} == {
        job: ["start", "end"] for job in ids
    }
    pids = {run.pid for job_runs in runs.values() for run in job_runs}
    assert pids == {worker.process.pid for worker in running}
