"""trunner's side of the distributed-store benchmarks, on any store URL.

bench_postgres and bench_redis measure a `JobManager` on their store the same
way; what differs between them is the store's URL and the peers they measure
beside it. This module holds the common part:

* `e2e`: ``sizes.jobs`` trivial jobs (``noop``, an async handler that returns
  its argument) submitted by ``SUBMITTERS`` concurrent tasks to one process
  that is also the only worker (concurrency ``CONCURRENCY``); the time runs
  from the first submit until every job has succeeded (polled every 0.1 s).
* `latency`: an idle worker in another process, and ``sizes.latency`` jobs
  submitted one at a time, 50 ms apart; the handler (``stamp``) writes the
  wall time at which it starts; latency is that minus the wall time just
  before the submit.
* `scaling`: ``sizes.jobs`` jobs run by 1 and by ``WORKERS`` worker processes,
  each with concurrency ``CONCURRENCY``, submitted once the workers are up
  and idle.

The worker processes run this module as a script:
``python _workers_harness.py --worker URL --ready PATH [--stamps PATH]``; each
one touches ``PATH`` once its manager is open, and stops on SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import trio

from trunner.jobs import JobManager, JobState, Registry, open_job_manager, open_store

if TYPE_CHECKING:
    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
else:
    import _common as common


@attrs.define
class Sizes:
    """How many jobs each part runs (``--jobs`` lowers them, for a quick look)."""

    jobs: int = 10_000
    latency: int = 200


sizes = Sizes()
CONCURRENCY: Final = 10
SUBMITTERS: Final = 100
WORKERS: Final = 3

registry = Registry()
_stamps: Path | None = None


@registry.handler("noop")
async def noop(x: int) -> int:
    """A trivial job."""
    return x


@registry.handler("stamp")
async def stamp(job: str) -> None:
    """Write when this job started (wall time) to the stamps file."""
    assert _stamps is not None
    with _stamps.open("a") as out:
        out.write(f"{job} {time.time()!r}\n")


def parse_args(description: str, peers: str) -> argparse.Namespace:
    """Parse a benchmark's command line (``--rounds``) and size the runs.

    ``peers`` names what the benchmark measures beside trunner, for the help.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--rounds", type=int, default=1, help=f"interleaved rounds of trunner, {peers}"
    )
    parser.add_argument("--jobs", type=int, default=10_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes.jobs = args.jobs
    sizes.latency = min(sizes.latency, max(10, sizes.jobs // 10))
    return args


def latencies(submitted: str, stamps: Path) -> list[float]:
    """Submit -> start latencies from the submitter's and the handlers' records.

    Both are lines ``<job> <wall time>``; job ``-1`` is the warm-up, left out.
    """
    before = dict(line.split() for line in submitted.splitlines() if line.strip())
    started = dict(line.split() for line in stamps.read_text().splitlines())
    return [
        float(started[job]) - float(at)
        for job, at in before.items()
        if int(job) >= 0 and job in started
    ]


def latency_cell(values: list[float]) -> str:
    """``p50 / p99`` of latencies in seconds, as table text in milliseconds."""
    p50, p99 = (common.percentile(values, q) * 1000 for q in (50, 99))
    return f"{p50:.1f} ms / {p99:.1f} ms"


async def _wait_all_done(manager: JobManager, count: int) -> None:
    while (await manager.counts())[JobState.SUCCEEDED] < count:  # noqa: ASYNC110
        await trio.sleep(0.1)


async def _submit_noops(manager: JobManager) -> None:
    async def submit(first: int) -> None:
        for i in range(first, sizes.jobs, SUBMITTERS):
            await manager.submit_job(f"j{i}", "noop", i)

    async with trio.open_nursery() as nursery:
        for first in range(SUBMITTERS):
            nursery.start_soon(submit, first)


def e2e(url: str) -> float:
    """Jobs per second, one process submitting and working (see the module)."""

    async def run() -> float:
        async with open_job_manager(
            open_store(url), registry, concurrency=CONCURRENCY
        ) as jm:
            await jm.purge()
            started = time.perf_counter()
            await _submit_noops(jm)
            await _wait_all_done(jm, sizes.jobs)
            took = time.perf_counter() - started
            await jm.purge()
        return sizes.jobs / took

    return trio.run(run)


class Workers:
    """trunner worker processes (this module as a script, with ``--worker``)."""

    def __init__(self, url: str, count: int, stamps: Path | None = None) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ready: list[Path] = []
        for n in range(count):
            ready = Path(tempfile.mkdtemp()) / f"ready-{n}"
            self.ready.append(ready)
            args = [sys.executable, __file__, "--worker", url, "--ready", str(ready)]
            if stamps is not None:
                args += ["--stamps", str(stamps)]
            self.processes.append(subprocess.Popen(args))

    def wait_ready(self) -> None:
        while not all(path.exists() for path in self.ready):
            time.sleep(0.05)
        time.sleep(0.5)  # idle

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            process.wait(60)


def scaling(url: str, count: int) -> float:
    """Jobs per second run by ``count`` worker processes (see the module)."""

    async def run() -> float:
        async with open_job_manager(open_store(url), registry, worker=False) as jm:
            await jm.purge()
            workers = Workers(url, count)
            try:
                await trio.to_thread.run_sync(workers.wait_ready)
                started = time.perf_counter()
                await _submit_noops(jm)
                await _wait_all_done(jm, sizes.jobs)
                took = time.perf_counter() - started
            finally:
                await trio.to_thread.run_sync(workers.stop)
            await jm.purge()
        return sizes.jobs / took

    return trio.run(run)


def scaling_rounds(url: str, rounds: int) -> dict[str, list[float]]:
    """`scaling` with 1 and with ``WORKERS`` processes, interleaved."""
    return common.interleave(
        [
            ("1 worker", lambda: scaling(url, 1)),
            (f"{WORKERS} workers", lambda: scaling(url, WORKERS)),
        ],
        rounds=rounds,
        warmup=False,
    )


def scaling_row(results: dict[str, list[float]]) -> common.Row:
    """The table's row for `scaling_rounds`' results."""
    one, many = results["1 worker"], results[f"{WORKERS} workers"]
    return common.Row(
        f"{WORKERS} worker processes / 1 ({sizes.jobs:,} jobs, concurrency "
        f"{CONCURRENCY} each)",
        common.fmt_rate(common.median(many)),
        f"1 worker {common.fmt_rate(common.median(one))}",
        f"{common.median(common.paired_ratios(many, one)):.2f}x",
    )


def latency(url: str, directory: Path) -> list[float]:
    """Submit -> start latencies on an idle worker process (see the module)."""
    stamps = directory / "trunner-stamps.txt"
    stamps.unlink(missing_ok=True)

    async def run() -> str:
        lines: list[str] = []
        async with open_job_manager(open_store(url), registry, worker=False) as jm:
            await jm.purge()
            workers = Workers(url, 1, stamps)
            try:
                await trio.to_thread.run_sync(workers.wait_ready)
                for i in range(-1, sizes.latency):
                    before = time.time()
                    await jm.submit_job(f"l{i}", "stamp", str(i))
                    lines.append(f"{i} {before!r}")
                    await trio.sleep(0.05 if i >= 0 else 2.0)
            finally:
                await trio.to_thread.run_sync(workers.stop)
            await jm.purge()
        return "\n".join(lines)

    return latencies(trio.run(run), stamps)


async def _worker_main(url: str, ready: Path, stamps: str | None) -> None:
    global _stamps
    _stamps = None if stamps is None else Path(stamps)
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with open_job_manager(open_store(url), registry, concurrency=CONCURRENCY):
            await trio.Path(ready).touch()
            async for _ in signals:
                break


def _worker() -> None:
    parser = argparse.ArgumentParser(description="a benchmark's worker process")
    parser.add_argument("--worker", metavar="URL", required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--stamps")
    args = parser.parse_args()
    trio.run(_worker_main, args.worker, args.ready, args.stamps)


if __name__ == "__main__":
    _worker()
