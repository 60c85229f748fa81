"""Durable acks and end-to-end throughput of the JobManager on SQLite.

Every store is a `SQLiteJobStore` on a new temporary file, with its defaults:
WAL mode and ``synchronous=FULL``, so every commit is flushed to disk before
it returns (the script checks the setting through the store's connection).

Durable acks: ``SUBMITTERS`` concurrent trio tasks each submit their share of
the jobs one after the other, each waiting for its job's durable ack before
the next one:

* submit_job: ``await jm.submit_job(id, "send_email", SendEmail(...))`` on a
  manager opened with ``worker=False`` and a registry, so each submit checks
  the handler's name and its attrs argument, serialises it and builds the
  record; the manager's group commit puts every submit that arrives while a
  commit is written into the next one (the candidate);
* one_by_one: ``await store.insert([record])`` on a `SQLiteJobStore`: one
  transaction, hence one disk flush, per job (the baseline). Its records are
  built before the clock starts, the cheapest one-by-one possible, so the
  ratio is if anything understated.

For scale, the same submits to a `MemoryJobStore` (no disk, no thread) show
what the manager itself costs per submit.

End to end: ``N_E2E`` trivial jobs (an async handler that returns its
argument) are submitted by ``SUBMITTERS`` concurrent tasks to one manager
that is also the only worker (``concurrency=E2E_CONCURRENCY``); the time runs
from the first submit until `JobManager.counts` (polled every
``POLL_INTERVAL`` seconds) shows every job SUCCEEDED. Each job costs a
submit, a claim (shared by the jobs claimed together) and a completion, each
a committed transaction. For scale, the same run on a `MemoryJobStore` (no
disk) and the same calls on a plain `trunner.ParallelTaskRunner` (no store)
are reported beside it.

Worker throughput: ``N_E2E`` jobs are stored first (not timed), then one
worker (``concurrency=E2E_CONCURRENCY``) runs them all; the time runs from the
worker's start until every job is SUCCEEDED. Baselines, in the same run:

* one_per_job: a hand-written SQLite loop on a thread (claim one job in one
  transaction, run it, complete it in another): the one-transaction-per-step
  path a JobManager took before grouped completions;
* batched: a hand-written SQLite loop that completes a batch and claims the
  next one in one transaction (``E2E_CONCURRENCY`` jobs a batch);
* saq: the same ``N_E2E`` jobs submitted by ``SUBMITTERS`` tasks to saq on the
  local Redis and run by a saq worker (concurrency ``E2E_CONCURRENCY``), from
  the first submit until none is incomplete: compared with trunner's end to end
  run (which also includes the submits). saq runs in a virtual environment of
  its own that the benchmark makes with uv (see ``_jobs_baselines``).

Latency: from ``submit_job`` to the first line of the handler on an idle
worker (it waits on the store's wake-ups), ``N_LATENCY`` jobs one at a time.

Memory: the RSS growth per pending job of a manager holding ``N_MEMORY``
pending jobs in a `MemoryJobStore` (measured in a process of its own).

Run: ``python tests/benchmarks/bench_jobs.py [--rounds N]``.
"""

# pyright: reportPrivateUsage=false
# The benchmark drives the SQLite store's database directly.

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import trio

import trunner
from trunner.jobs import (
    JobManager,
    JobRecord,
    JobState,
    JobStore,
    MemoryJobStore,
    Registry,
    SQLiteJobStore,
    open_job_manager,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
    from tests.benchmarks import _jobs_baselines as baselines
else:
    import _common as common
    import _jobs_baselines as baselines

SUBMITTERS: Final = 100
N_SUBMIT: Final = 30_000
N_ONE_BY_ONE: Final = 3_000
N_E2E: Final = 10_000
E2E_CONCURRENCY: Final = 10
#: Seconds between looks at the counts in the end-to-end run.
POLL_INTERVAL: Final = 0.1
GOAL_ACKS: Final = common.Goal(">=", 35_000)
GOAL_RATIO: Final = common.Goal(">=", 8.0)
GOAL_ONE_PER_JOB: Final = common.Goal(">=", 4.0)
GOAL_BATCHED: Final = common.Goal(">=", 0.7)
GOAL_SAQ: Final = common.Goal(">=", 5.0)
N_LATENCY: Final = 200
N_MEMORY: Final = 100_000
GOAL_MEMORY: Final = common.Goal("<=", 600)
REDIS_URL: Final = "redis://127.0.0.1:6379/0"

T0: Final = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@attrs.frozen
class SendEmail:
    """A small attrs argument, as a real handler takes."""

    to: str
    template: str


registry = Registry()


@registry.handler("send_email")
async def send_email(email: SendEmail) -> None:
    del email  # never runs: the submit benchmark's manager is not a worker


@registry.handler("echo")
async def echo(value: int) -> int:
    return value


def _synchronous_level(store: SQLiteJobStore) -> Awaitable[int]:
    """Read the connection's ``PRAGMA synchronous`` (2 is FULL)."""
    assert store._runner is not None
    assert store._db is not None
    conn = store._db._conn

    def read() -> int:
        (level,) = conn.execute("PRAGMA synchronous").fetchone()
        assert isinstance(level, int)
        return level

    return store._runner.run(read)


async def _durable(store: SQLiteJobStore) -> None:
    level = await _synchronous_level(store)
    if level != 2:
        raise RuntimeError(f"the store runs with synchronous={level}, not FULL (2)")


async def _in_submitters(n: int, submit: Callable[[int], Awaitable[object]]) -> float:
    """Run ``submit(i)`` for i < n from SUBMITTERS concurrent tasks; return seconds."""

    async def submitter(first: int) -> None:
        for index in range(first, n, SUBMITTERS):
            await submit(index)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for first in range(SUBMITTERS):
            nursery.start_soon(submitter, first)
    return time.perf_counter() - start


# ---------------------------------------------------------------- durable acks


async def _submit_job(directory: str) -> float:
    return await _submit_to(SQLiteJobStore(Path(directory) / "jobs.db"))


async def _submit_job_memory(directory: str) -> float:
    del directory
    return await _submit_to(MemoryJobStore())


async def _submit_to(store: JobStore) -> float:
    async with open_job_manager(store, registry, worker=False) as jm:
        if isinstance(store, SQLiteJobStore):
            await _durable(store)

        def submit(index: int) -> Awaitable[object]:
            email = SendEmail(f"user{index}@example.com", "welcome")
            return jm.submit_job(f"job-{index:08d}", "send_email", email)

        elapsed = await _in_submitters(N_SUBMIT, submit)
        stored = (await jm.counts())[JobState.PENDING]
    if stored != N_SUBMIT:
        raise RuntimeError(f"{stored} jobs stored, not {N_SUBMIT}")
    return N_SUBMIT / elapsed


def _record(index: int) -> JobRecord:
    """Return the record that submit_job stores for job ``index``."""
    return JobRecord(
        id=f"job-{index:08d}",
        handler="send_email",
        args=f'{{"to":"user{index}@example.com","template":"welcome"}}',
        state=JobState.PENDING,
        priority=2,
        attempts=0,
        max_attempts=3,
        created_at=T0,
        run_at=T0,
    )


async def _one_by_one(directory: str) -> float:
    records = [_record(index) for index in range(N_ONE_BY_ONE)]
    async with trunner.open_scheduler():
        store = SQLiteJobStore(Path(directory) / "jobs.db")
        await store.connect()
        try:
            await _durable(store)

            def insert(index: int) -> Awaitable[object]:
                return store.insert([records[index]])

            elapsed = await _in_submitters(N_ONE_BY_ONE, insert)
            stored = (await store.counts())[JobState.PENDING]
        finally:
            await store.disconnect()
    if stored != N_ONE_BY_ONE:
        raise RuntimeError(f"{stored} jobs stored, not {N_ONE_BY_ONE}")
    return N_ONE_BY_ONE / elapsed


def in_temporary_directory(
    body: Callable[[str], Awaitable[float]],
) -> Callable[[], float]:
    """Return a function that runs ``body(directory)`` in a new trio run."""

    def run() -> float:
        with tempfile.TemporaryDirectory() as directory:
            return trio.run(body, directory)

    return run


# ---------------------------------------------------------------- end to end


async def _until_done(jm: JobManager) -> None:
    while True:
        counts = await jm.counts()
        if counts[JobState.SUCCEEDED] == N_E2E:
            return
        if counts[JobState.FAILED] or counts[JobState.CANCELLED]:
            raise RuntimeError(f"jobs did not succeed: {counts}")
        await trio.sleep(POLL_INTERVAL)


async def _end_to_end(store: JobStore) -> float:
    async with open_job_manager(store, registry, concurrency=E2E_CONCURRENCY) as jm:
        if isinstance(store, SQLiteJobStore):
            await _durable(store)

        def submit(index: int) -> Awaitable[object]:
            return jm.submit_job(f"echo-{index:08d}", "echo", index)

        start = time.perf_counter()
        await _in_submitters(N_E2E, submit)
        await _until_done(jm)
        elapsed = time.perf_counter() - start
        assert (await jm.get_job("echo-00000042")).result == 42
    return N_E2E / elapsed


async def _e2e_sqlite(directory: str) -> float:
    return await _end_to_end(SQLiteJobStore(Path(directory) / "jobs.db"))


async def _e2e_memory(directory: str) -> float:
    del directory
    return await _end_to_end(MemoryJobStore())


async def _plain_runner(directory: str) -> float:
    """The same calls on a ParallelTaskRunner: no store, no durability."""
    del directory
    async with trunner.open_parallel_runner(max_concurrency=E2E_CONCURRENCY) as runner:

        def run(index: int) -> Awaitable[int]:
            return runner.run(echo, index)

        elapsed = await _in_submitters(N_E2E, run)
    return N_E2E / elapsed


# ---------------------------------------------------------------- worker throughput


async def _worker_sqlite(directory: str) -> float:
    """Store N_E2E jobs, then time one worker running them all."""
    path = Path(directory) / "jobs.db"
    async with open_job_manager(SQLiteJobStore(path), registry, worker=False) as jm:

        def submit(index: int) -> Awaitable[object]:
            return jm.submit_job(f"echo-{index:08d}", "echo", index)

        await _in_submitters(N_E2E, submit)
    store = SQLiteJobStore(path)
    start = time.perf_counter()
    async with open_job_manager(store, registry, concurrency=E2E_CONCURRENCY) as jm:
        await _durable(store)
        await _until_done(jm)
        elapsed = time.perf_counter() - start
    return N_E2E / elapsed


def _hand_written(batch: int | None) -> Callable[[], float]:
    def run() -> float:
        with tempfile.TemporaryDirectory() as directory:
            path = str(Path(directory) / "hand.db")
            baselines.prepare(path, N_E2E)
            return baselines.run_loop(path, N_E2E, batch=batch)

    return run


# ---------------------------------------------------------------- latency


async def _latency(store: JobStore) -> list[float]:
    """Seconds from submit_job to the handler's first line, on an idle worker."""
    started: dict[int, float] = {}
    latency_registry = Registry()

    @latency_registry.handler("mark")
    async def mark(index: int) -> None:
        started[index] = time.perf_counter()

    delays: list[float] = []
    async with open_job_manager(store, latency_registry, concurrency=1) as jm:
        await trio.sleep(0.2)  # idle: the worker waits for work
        for index in range(N_LATENCY):
            before = time.perf_counter()
            await jm.submit_job(f"mark-{index}", "mark", index)
            while index not in started:  # a tight look
                await trio.lowlevel.checkpoint()
            delays.append(started[index] - before)
            await trio.sleep(0.005)  # idle again
    return delays


def _latencies(make: Callable[[str], JobStore]) -> list[float]:
    with tempfile.TemporaryDirectory() as directory:
        return trio.run(_latency, make(directory))


# ---------------------------------------------------------------- memory

_MEMORY_CHILD: Final = """
import gc, os, sys, trio
from trunner.jobs import MemoryJobStore, open_job_manager

N = int(sys.argv[1])

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

async def main():
    store = MemoryJobStore()
    async with open_job_manager(store, worker=False) as jm:
        await jm.submit_job("warm-up", "h", {"n": -1})
        gc.collect()
        before = rss()
        async def submitter(first):
            for i in range(first, N, 100):
                await jm.submit_job(f"job-{i:08d}", "h", {"n": i})
        async with trio.open_nursery() as nursery:
            for first in range(100):
                nursery.start_soon(submitter, first)
        gc.collect()
        print((rss() - before) / N)

trio.run(main)
"""


def _memory_per_job() -> float:
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(N_MEMORY)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    return float(done.stdout.strip().splitlines()[-1])


def worker_tables(rounds: int) -> None:
    """Worker throughput against the hand-written loops and saq; latency; memory."""
    saq = baselines.Saq()
    have_saq = baselines.redis_reachable() and saq.install()
    if not have_saq and not saq.why_not:
        saq.why_not = "no Redis at 127.0.0.1:6379"
    variants: list[tuple[str, Callable[[], float]]] = [
        ("trunner", in_temporary_directory(_worker_sqlite)),
        ("one_per_job", _hand_written(None)),
        ("batched", _hand_written(E2E_CONCURRENCY)),
        ("e2e", in_temporary_directory(_e2e_sqlite)),
    ]
    if have_saq:
        variants.append(
            ("saq", lambda: saq.run(N_E2E, SUBMITTERS, E2E_CONCURRENCY, REDIS_URL))
        )
    try:
        runs = common.interleave(variants, rounds=rounds)
    finally:
        saq.close()
    trunner_runs = runs["trunner"]
    rows = [
        common.Row(
            metric="trunner worker on SQLite (jobs/s)",
            value=common.fmt_rate(common.median(trunner_runs)),
            baseline="",
            ratio=common.fmt_spread(trunner_runs),
        ),
        common.compare(
            "trunner / hand-written loop, one transaction per step",
            trunner_runs,
            runs["one_per_job"],
            fmt=common.fmt_rate,
            goal=GOAL_ONE_PER_JOB,
        ),
        common.compare(
            "trunner / hand-written loop, batches in one transaction",
            trunner_runs,
            runs["batched"],
            fmt=common.fmt_rate,
            goal=GOAL_BATCHED,
        ),
    ]
    if have_saq:
        rows.append(
            common.compare(
                "trunner end to end (with submits) / saq on Redis",
                runs["e2e"],
                runs["saq"],
                fmt=common.fmt_rate,
                goal=GOAL_SAQ,
            )
        )
    else:
        rows.append(
            common.Row(
                metric="trunner / saq on Redis",
                value=common.fmt_rate(common.median(runs["e2e"])),
                baseline=f"saq unavailable: {saq.why_not}",
                ratio="",
                goal=GOAL_SAQ.describe(),
                status="SKIP",
            )
        )
    common.print_table(
        f"Worker throughput: {N_E2E:,} trivial jobs stored first, one worker, "
        f"concurrency={E2E_CONCURRENCY}, SQLite synchronous=FULL",
        rows,
    )

    def memory(directory: str) -> JobStore:
        del directory
        return MemoryJobStore()

    def sqlite(directory: str) -> JobStore:
        return SQLiteJobStore(Path(directory) / "jobs.db")

    latency_rows: list[common.Row] = []
    for name, make in (("MemoryJobStore", memory), ("SQLiteJobStore", sqlite)):
        delays = [1e3 * d for d in _latencies(make)]
        latency_rows.append(
            common.Row(
                metric=f"submit -> handler start, idle worker, {name} (p50 / p99)",
                value=f"{common.fmt_ms(common.percentile(delays, 50))} / "
                f"{common.fmt_ms(common.percentile(delays, 99))}",
                baseline="",
                ratio="",
            )
        )
    per_job = common.median([_memory_per_job() for _ in range(min(rounds, 3))])
    latency_rows.append(
        common.Row(
            metric=f"RSS per pending job, MemoryJobStore, {N_MEMORY:,} jobs",
            value=common.fmt_bytes(per_job),
            baseline="",
            ratio="",
            goal=GOAL_MEMORY.describe(" B"),
            status=common.status(GOAL_MEMORY, per_job),
        )
    )
    common.print_table(f"Latency ({N_LATENCY} jobs) and memory", latency_rows)


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "", default=3)
    common.print_environment(
        f"bench_jobs (SQLite synchronous=FULL, {SUBMITTERS} submitters)", rounds
    )
    acks = common.interleave(
        [
            ("one_by_one", in_temporary_directory(_one_by_one)),
            ("submit_job", in_temporary_directory(_submit_job)),
            ("submit_job_memory", in_temporary_directory(_submit_job_memory)),
        ],
        rounds=rounds,
    )
    grouped, single = acks["submit_job"], acks["one_by_one"]
    common.print_table(
        f"Durable acks: submit_job N={N_SUBMIT:,}, one by one N={N_ONE_BY_ONE:,}",
        [
            common.Row(
                metric="submit_job acks/s (group commit)",
                value=common.fmt_rate(common.median(grouped)),
                baseline="",
                ratio=common.fmt_spread(grouped),
                goal=GOAL_ACKS.describe("/s"),
                status=common.status(GOAL_ACKS, common.median(grouped)),
            ),
            common.compare(
                "submit_job / one-by-one insert (acks/s)",
                grouped,
                single,
                fmt=common.fmt_rate,
                goal=GOAL_RATIO,
            ),
            common.Row(
                metric="submit_job time per ack",
                value=common.fmt_us(1e6 / common.median(grouped)),
                baseline=common.fmt_us(1e6 / common.median(single)),
                ratio="",
            ),
            common.compare(
                "submit_job on SQLite / on MemoryJobStore (no disk)",
                grouped,
                acks["submit_job_memory"],
                fmt=common.fmt_rate,
            ),
        ],
    )

    e2e = common.interleave(
        [
            ("sqlite", in_temporary_directory(_e2e_sqlite)),
            ("memory", in_temporary_directory(_e2e_memory)),
            ("plain", in_temporary_directory(_plain_runner)),
        ],
        rounds=rounds,
    )
    sqlite = e2e["sqlite"]
    common.print_table(
        f"End to end: {N_E2E:,} trivial jobs, one worker, "
        f"concurrency={E2E_CONCURRENCY}, first submit to all SUCCEEDED",
        [
            common.Row(
                metric="SQLite jobs/s",
                value=common.fmt_rate(common.median(sqlite)),
                baseline="",
                ratio=common.fmt_spread(sqlite),
            ),
            common.Row(
                metric="SQLite time per job",
                value=common.fmt_us(1e6 / common.median(sqlite)),
                baseline="",
                ratio="",
            ),
            common.compare(
                "SQLite / MemoryJobStore (jobs/s)",
                sqlite,
                e2e["memory"],
                fmt=common.fmt_rate,
            ),
            common.compare(
                "SQLite / plain ParallelTaskRunner (calls/s)",
                sqlite,
                e2e["plain"],
                fmt=common.fmt_rate,
            ),
        ],
    )

    worker_tables(rounds)


if __name__ == "__main__":
    main()
