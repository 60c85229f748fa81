"""Crash recovery: a worker process is killed mid-job, and another one finishes it.

Two ``trunner worker`` processes run, one after the other, on a temporary
SQLite file; this program submits a job that takes two seconds. The first
worker claims it and is killed with SIGKILL while it runs: it cannot hand the
job back, so the job stays RUNNING under its name until its lease (two
seconds here, ``--lease 2``; renewed every third of that while the worker
lives) expires. The second worker then takes it back (pending again, at once)
and runs it: the job ends SUCCEEDED on the second worker, after two attempts.
Delivery is at least once: the part of the job that ran before the kill runs
again.

The workers are real processes, which live in real time. This program waits
for them on a thread (a `trunner.SingleThreadTaskRunner`): while a call runs
there, an autojumping test clock stands still, so the program also runs under
the virtual clock of ``tests/test_examples.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import trio

import trunner
from trunner.jobs import JobInfo, JobState, Registry, open_job_manager, open_store

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from trunner.jobs import JobManager

registry = Registry()
HERE = Path(__file__).parent
LEASE = 2.0


@registry.handler("report")
async def report(seconds: float) -> str:
    await trio.sleep(seconds)  # the worker runs on real time
    return f"done by pid {os.getpid()}"


def start_worker(
    workers: list[subprocess.Popen[bytes]], url: str, name: str, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``trunner worker crash_recovery:registry``; its log goes to ``log``."""
    command = [
        sys.executable, "-m", "trunner", "worker", "crash_recovery:registry",
        "--store", url, "--name", name, "--lease", str(LEASE), "--poll-interval", "0.1",
    ]  # fmt: skip
    with log.open("wb") as stderr:
        # The worker imports this file as the module crash_recovery.
        worker = subprocess.Popen(command, cwd=HERE, stderr=stderr)
    workers.append(worker)
    return worker


@contextlib.contextmanager
def reaping() -> Generator[list[subprocess.Popen[bytes]]]:
    """Collect worker processes; kill those still running at the end (on errors)."""
    workers: list[subprocess.Popen[bytes]] = []
    try:
        yield workers
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()


def stop(worker: subprocess.Popen[bytes], signum: int) -> int:
    """Send ``signum`` to the worker and wait for it to exit."""
    worker.send_signal(signum)
    return worker.wait(timeout=30)


def describe(job: JobInfo) -> str:
    text = (
        f"{job.state.name} on {job.worker}, attempt {job.attempts}/{job.max_attempts}"
    )
    return text if job.result is None else f"{text}, result {job.result!r}"


async def wait_for(
    manager: JobManager,
    threads: trunner.SingleThreadTaskRunner,
    job_id: str,
    condition: Callable[[JobInfo], bool],
) -> JobInfo:
    """Look at the job every 50 ms of real time until ``condition`` holds."""
    deadline = time.monotonic() + 30
    while not condition(job := await manager.get_job(job_id)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} is still {describe(job)}")
        await threads.run(time.sleep, 0.05)
    return job


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory, reaping() as workers:
        url = f"sqlite:///{Path(directory) / 'jobs.db'}"
        logs = [Path(directory) / f"worker-{n}.log" for n in (1, 2)]
        async with (
            open_job_manager(open_store(url), registry, worker=False) as manager,
            trunner.open_thread_runner(name="processes") as threads,
        ):
            job = await manager.submit_job("nightly-report", "report", 2.0)
            print(f"submitted {job.id}: {job.state.name}")

            first = await threads.run(start_worker, workers, url, "worker-1", logs[0])
            job = await wait_for(
                manager, threads, job.id, lambda j: j.state is JobState.RUNNING
            )
            print(f"worker-1 (pid {first.pid}) runs it: {describe(job)}")

            status = await threads.run(stop, first, signal.SIGKILL)
            job = await manager.get_job(job.id)
            print(f"worker-1 killed with SIGKILL (exit status {status})")
            print(f"  the job is still {describe(job)}, until its lease expires")

            second = await threads.run(start_worker, workers, url, "worker-2", logs[1])
            print(f"worker-2 (pid {second.pid}) started")
            job = await wait_for(
                manager, threads, job.id, lambda j: j.worker == "worker-2"
            )
            print(f"worker-2 took it back: {describe(job)}")
            job = await wait_for(
                manager, threads, job.id, lambda j: j.state is JobState.SUCCEEDED
            )
            print(f"finished: {describe(job)}")

            status = await threads.run(stop, second, signal.SIGINT)
            print(f"worker-2 stopped with SIGINT (exit status {status}); its log:")
            for line in logs[1].read_text().splitlines():
                print("  " + line.split(" ", 2)[2])  # without the date and time


if __name__ == "__main__":
    trio.run(main)
