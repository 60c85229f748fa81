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

Run: ``python tests/benchmarks/bench_jobs.py [--rounds N]``.
"""

# pyright: reportPrivateUsage=false
# The benchmark drives the SQLite store's database directly.

from __future__ import annotations

import datetime as dt
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
else:
    import _common as common

SUBMITTERS: Final = 100
N_SUBMIT: Final = 30_000
N_ONE_BY_ONE: Final = 3_000
N_E2E: Final = 10_000
E2E_CONCURRENCY: Final = 10
#: Seconds between looks at the counts in the end-to-end run.
POLL_INTERVAL: Final = 0.1
GOAL_ACKS: Final = common.Goal(">=", 35_000)
GOAL_RATIO: Final = common.Goal(">=", 8.0)

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


if __name__ == "__main__":
    main()
