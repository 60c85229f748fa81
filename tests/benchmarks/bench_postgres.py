"""PostgresJobStore beside procrastinate: throughput, wake-up latency, scaling.

Needs the local PostgreSQL (127.0.0.1:5432, database ``test``; the
``TRUNNER_TEST_POSTGRES_*`` variables move it) and ``uv``, with which the
script installs procrastinate (and its psycopg) into a virtual environment of
its own in a temporary directory. Every system works in a schema of its own,
dropped at the end.

The three measures are those of `_workers_harness` (trunner's side, on a
`PostgresJobStore`); procrastinate runs the same end to end and latency ones:

* End to end: 10,000 trivial jobs submitted by 100 concurrent tasks to one
  process that is also the only worker (concurrency 10). procrastinate:
  ``defer_async`` and ``run_worker_async`` of one app, on asyncio (its own
  schema applied).
* Latency: an idle worker in another process, jobs submitted one at a time.
  Both systems wake their worker with LISTEN/NOTIFY.
* Scaling (trunner only): 1 and 3 worker processes.

Run: ``python tests/benchmarks/bench_postgres.py [--rounds N]`` (default: one
round; a round takes a few minutes, procrastinate's run most of it).
"""

from __future__ import annotations

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

if TYPE_CHECKING:
    from collections.abc import Callable

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
    from tests.benchmarks import _workers_harness as harness
else:
    import _common as common
    import _workers_harness as harness


GOAL_E2E_RATIO: Final = common.Goal(">=", 3.0)
HOST: Final = os.environ.get("TRUNNER_TEST_POSTGRES_HOST", "127.0.0.1")
PORT: Final = int(os.environ.get("TRUNNER_TEST_POSTGRES_PORT", "5432"))
DB: Final = os.environ.get("TRUNNER_TEST_POSTGRES_DB", "test")
USER: Final = os.environ.get("TRUNNER_TEST_POSTGRES_USER", "postgres")
URL: Final = f"postgresql://{USER}@{HOST}:{PORT}/{DB}"
HERE: Final = Path(__file__).resolve().parent

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
        jobs = harness.sizes.jobs
        out = self._run(
            "e2e", str(jobs), str(harness.CONCURRENCY), str(harness.SUBMITTERS)
        )
        seconds: float = json.loads(out.strip().splitlines()[-1])["seconds"]
        return jobs / seconds

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
            out = self._run("latency", str(harness.sizes.latency), env=env)
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(30)
        return harness.latencies(out, stamps)

    def drop(self) -> None:
        _sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def _sql(statement: str) -> None:
    import psycopg  # the benchmark's own, from trunner[postgres]

    from trunner.jobs._postgres_schema import literal

    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(literal(statement))


# ---------------------------------------------------------------- trunner


def _store_url(schema: str) -> str:
    return f"{URL}?schema={schema}"


# ---------------------------------------------------------------- main


def main() -> None:
    args = harness.parse_args((__doc__ or "").splitlines()[0], "procrastinate")
    try:
        _sql("SELECT 1")
    except Exception as error:  # any failure: say so, skip
        print(f"bench_postgres: skipped, no PostgreSQL at {URL}: {error}")
        return
    schema = f"bench_trunner_{uuid.uuid4().hex[:8]}"
    store = _store_url(schema)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        peer = Procrastinate(directory)
        try:
            version = peer.install()
            print(f"procrastinate {version}", file=sys.stderr)
            variants: list[tuple[str, Callable[[], float]]] = [
                ("trunner", lambda: harness.e2e(store)),
                ("procrastinate", peer.e2e),
            ]
            e2e = common.interleave(variants, rounds=args.rounds, warmup=False)
            latency = {
                "trunner": harness.latency(store, directory),
                "procrastinate": peer.latency(),
            }
            scaling = harness.scaling_rounds(store, args.rounds)
        finally:
            peer.drop()
            _sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    ours, theirs = e2e["trunner"], e2e["procrastinate"]
    ratios = common.paired_ratios(ours, theirs)
    rows = [
        common.Row(
            f"end to end: {harness.sizes.jobs:,} trivial jobs, one worker, "
            f"concurrency {harness.CONCURRENCY}",
            common.fmt_rate(common.median(ours)),
            f"procrastinate {version} {common.fmt_rate(common.median(theirs))}",
            f"{common.median(ratios):.2f}x",
            GOAL_E2E_RATIO.describe("x"),
            common.status(GOAL_E2E_RATIO, common.median(ratios)),
        ),
        common.Row(
            "submit -> start on an idle worker in another process, p50 / p99",
            harness.latency_cell(latency["trunner"]),
            f"procrastinate {harness.latency_cell(latency['procrastinate'])}",
            "",
        ),
        harness.scaling_row(scaling),
    ]
    common.print_table("PostgresJobStore", rows)


if __name__ == "__main__":
    main()
