"""PostgresJobStore beside procrastinate: throughput, wake-up latency, scaling.

Needs the local PostgreSQL (127.0.0.1:5432, database ``test``; the
``TRUNNER_TEST_POSTGRES_*`` variables move it) and ``uv``, with which the
script installs procrastinate (and its psycopg) into a virtual environment of
its own in a temporary directory. Every system works in a schema of its own,
dropped at the end.

* End to end: ``Sizes.jobs`` trivial jobs (an async handler that returns its
  argument) submitted by ``SUBMITTERS`` concurrent tasks to one process that is
  also the only worker (concurrency ``CONCURRENCY``); the time runs from the
  first submit until every job has succeeded (polled every 0.1 s). trunner:
  `open_job_manager` on a `PostgresJobStore`; procrastinate: ``defer_async``
  and ``run_worker_async`` of one app, on asyncio (its own schema applied).
* Latency: an idle worker in another process, and ``Sizes.latency`` jobs submitted
  one at a time, each once the previous one has started; the handler writes
  the wall time at which it starts; latency is that minus the wall time just
  before the submit. Both systems wake their worker with LISTEN/NOTIFY.
* Scaling: ``Sizes.jobs`` jobs run by 1 and by 3 worker processes (trunner), each
  with concurrency ``CONCURRENCY``, submitted once the workers are up and idle.

Run: ``python tests/benchmarks/bench_postgres.py [--rounds N]`` (default: one
round; a round takes a few minutes, procrastinate's run most of it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import trio

from trunner.jobs import JobManager, JobState, Registry, open_job_manager, open_store

if TYPE_CHECKING:
    from collections.abc import Callable

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
GOAL_E2E_RATIO: Final = common.Goal(">=", 3.0)
HOST: Final = os.environ.get("TRUNNER_TEST_POSTGRES_HOST", "127.0.0.1")
PORT: Final = int(os.environ.get("TRUNNER_TEST_POSTGRES_PORT", "5432"))
DB: Final = os.environ.get("TRUNNER_TEST_POSTGRES_DB", "test")
USER: Final = os.environ.get("TRUNNER_TEST_POSTGRES_USER", "postgres")
URL: Final = f"postgresql://{USER}@{HOST}:{PORT}/{DB}"
HERE: Final = Path(__file__).resolve().parent

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


# ---------------------------------------------------------------- procrastinate

_PROCRASTINATE: Final = """
import asyncio, json, os, sys, time
import procrastinate, psycopg

MODE, URL, SCHEMA = sys.argv[1], sys.argv[2], sys.argv[3]
STAMPS = os.environ.get("BENCH_STAMPS", "")
app = procrastinate.App(connector=procrastinate.PsycopgConnector(
    conninfo=URL, kwargs={"options": f"-c search_path={SCHEMA}"}))

@app.task(name="noop")
async def noop(x: int) -> int:
    return x

@app.task(name="stamp")
async def stamp(job: str) -> None:
    with open(STAMPS, "a") as out:
        out.write(f"{job} {time.time()!r}\\n")

async def done() -> int:
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        cursor = await conn.execute(
            f"SELECT count(*) FROM {SCHEMA}.procrastinate_jobs "
            "WHERE status = 'succeeded'")
        return (await cursor.fetchone())[0]

async def main() -> None:
    async with app.open_async():
        if MODE == "setup":
            await app.schema_manager.apply_schema_async()
        elif MODE == "worker":
            await app.run_worker_async(concurrency=int(sys.argv[4]))
        elif MODE == "latency":
            n = int(sys.argv[4])
            for i in range(-1, n):
                before = time.time()
                await stamp.defer_async(job=str(i))
                print(f"{i} {before!r}", flush=True)
                await asyncio.sleep(0.05 if i >= 0 else 2.0)
        else:
            n, concurrency, submitters = (int(a) for a in sys.argv[4:7])
            worker = asyncio.create_task(app.run_worker_async(
                concurrency=concurrency, install_signal_handlers=False))
            started = time.perf_counter()
            async def submit(first: int) -> None:
                for i in range(first, n, submitters):
                    await noop.defer_async(x=i)
            await asyncio.gather(*(submit(k) for k in range(submitters)))
            while await done() < n:
                await asyncio.sleep(0.1)
            took = time.perf_counter() - started
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass
            print(json.dumps({"seconds": took}))

asyncio.run(main())
"""


class Procrastinate:
    """procrastinate in a virtual environment of its own, on its own schema."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.schema = f"bench_procrastinate_{uuid.uuid4().hex[:8]}"
        self.python = str(directory / "venv" / "bin" / "python")
        self.script = directory / "procrastinate_bench.py"

    def install(self) -> str:
        subprocess.run(
            ["uv", "venv", "-q", str(self.directory / "venv")],
            check=True,
        )
        subprocess.run(
            ["uv", "pip", "install", "-q", "--python", self.python, "procrastinate"],
            check=True,
        )
        self.script.write_text(_PROCRASTINATE)
        version = subprocess.run(
            [
                self.python,
                "-c",
                "import importlib.metadata as m; print(m.version('procrastinate'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        _sql(f"CREATE SCHEMA {self.schema}")
        self._run("setup")
        return version

    def _run(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [self.python, str(self.script), args[0], URL, self.schema, *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        return done.stdout

    def clear(self) -> None:
        _sql(f"TRUNCATE {self.schema}.procrastinate_jobs CASCADE")

    def e2e(self) -> float:
        self.clear()
        out = self._run("e2e", str(sizes.jobs), str(CONCURRENCY), str(SUBMITTERS))
        seconds: float = json.loads(out.strip().splitlines()[-1])["seconds"]
        return sizes.jobs / seconds

    def latency(self) -> list[float]:
        self.clear()
        stamps = self.directory / "procrastinate-stamps.txt"
        stamps.unlink(missing_ok=True)
        env = {"BENCH_STAMPS": str(stamps)}
        worker = subprocess.Popen(
            [self.python, str(self.script), "worker", URL, self.schema, "10"],
            env={**os.environ, **env},
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)  # up and idle
            out = self._run("latency", str(sizes.latency), env=env)
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(30)
        return _latencies(out, stamps)

    def drop(self) -> None:
        _sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def _latencies(submitted: str, stamps: Path) -> list[float]:
    before = dict(line.split() for line in submitted.splitlines() if line.strip())
    started = dict(line.split() for line in stamps.read_text().splitlines())
    return [
        float(started[job]) - float(at)
        for job, at in before.items()
        if int(job) >= 0 and job in started
    ]


def _sql(statement: str) -> None:
    import psycopg  # the benchmark's own, from trunner[postgres]

    from trunner.jobs._postgres_schema import literal

    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(literal(statement))


# ---------------------------------------------------------------- trunner


def _store_url(schema: str) -> str:
    return f"{URL}?schema={schema}"


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


def trunner_e2e(schema: str) -> float:
    async def run() -> float:
        store = open_store(_store_url(schema))
        async with open_job_manager(store, registry, concurrency=CONCURRENCY) as jm:
            await jm.purge()
            started = time.perf_counter()
            await _submit_noops(jm)
            await _wait_all_done(jm, sizes.jobs)
            took = time.perf_counter() - started
            await jm.purge()
        return sizes.jobs / took

    return trio.run(run)


class Workers:
    """trunner worker processes (this script with ``--worker``)."""

    def __init__(self, schema: str, count: int, stamps: Path | None = None) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ready: list[Path] = []
        for n in range(count):
            ready = Path(tempfile.mkdtemp()) / f"ready-{n}"
            self.ready.append(ready)
            args = [sys.executable, __file__, "--worker", schema, "--ready", str(ready)]
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


def trunner_scaling(schema: str, count: int) -> float:
    async def run() -> float:
        store = open_store(_store_url(schema))
        async with open_job_manager(store, registry, worker=False) as jm:
            await jm.purge()
            workers = Workers(schema, count)
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


def trunner_latency(schema: str, directory: Path) -> list[float]:
    stamps = directory / "trunner-stamps.txt"
    stamps.unlink(missing_ok=True)

    async def run() -> str:
        store = open_store(_store_url(schema))
        lines: list[str] = []
        async with open_job_manager(store, registry, worker=False) as jm:
            await jm.purge()
            workers = Workers(schema, 1, stamps)
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

    return _latencies(trio.run(run), stamps)


async def _worker_main(schema: str, ready: Path, stamps: str | None) -> None:
    global _stamps
    _stamps = None if stamps is None else Path(stamps)
    store = open_store(_store_url(schema))
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with open_job_manager(store, registry, concurrency=CONCURRENCY):
            await trio.Path(ready).touch()
            async for _ in signals:
                break


# ---------------------------------------------------------------- main


def _ms(values: list[float], q: float) -> str:
    return f"{common.percentile(values, q) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--worker", metavar="SCHEMA")
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--stamps")
    args = parser.parse_args()
    sizes.jobs = args.jobs
    sizes.latency = min(sizes.latency, max(10, sizes.jobs // 10))
    if args.worker:
        trio.run(_worker_main, args.worker, args.ready, args.stamps)
        return
    try:
        _sql("SELECT 1")
    except Exception as error:  # any failure: say so, skip
        print(f"bench_postgres: skipped, no PostgreSQL at {URL}: {error}")
        return
    schema = f"bench_trunner_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        peer = Procrastinate(directory)
        try:
            version = peer.install()
            print(f"procrastinate {version}", file=sys.stderr)
            variants: list[tuple[str, Callable[[], float]]] = [
                ("trunner", lambda: trunner_e2e(schema)),
                ("procrastinate", peer.e2e),
            ]
            e2e = common.interleave(variants, rounds=args.rounds, warmup=False)
            latency = {
                "trunner": trunner_latency(schema, directory),
                "procrastinate": peer.latency(),
            }
            scaling = common.interleave(
                [
                    ("1 worker", lambda: trunner_scaling(schema, 1)),
                    (f"{WORKERS} workers", lambda: trunner_scaling(schema, WORKERS)),
                ],
                rounds=args.rounds,
                warmup=False,
            )
        finally:
            peer.drop()
            _sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    ours, theirs = e2e["trunner"], e2e["procrastinate"]
    ratios = common.paired_ratios(ours, theirs)
    one, many = scaling["1 worker"], scaling[f"{WORKERS} workers"]
    rows = [
        common.Row(
            f"end to end: {sizes.jobs:,} trivial jobs, one worker, "
            f"concurrency {CONCURRENCY}",
            common.fmt_rate(common.median(ours)),
            f"procrastinate {version} {common.fmt_rate(common.median(theirs))}",
            f"{common.median(ratios):.2f}x",
            GOAL_E2E_RATIO.describe("x"),
            common.status(GOAL_E2E_RATIO, common.median(ratios)),
        ),
        common.Row(
            "submit -> start on an idle worker in another process, p50 / p99",
            f"{_ms(latency['trunner'], 50)} / {_ms(latency['trunner'], 99)}",
            f"procrastinate {_ms(latency['procrastinate'], 50)} / "
            f"{_ms(latency['procrastinate'], 99)}",
            "",
        ),
        common.Row(
            f"{WORKERS} worker processes / 1 ({sizes.jobs:,} jobs, concurrency "
            f"{CONCURRENCY} each)",
            common.fmt_rate(common.median(many)),
            f"1 worker {common.fmt_rate(common.median(one))}",
            f"{common.median(common.paired_ratios(many, one)):.2f}x",
        ),
    ]
    common.print_table("PostgresJobStore", rows)


if __name__ == "__main__":
    main()
