"""Durable acks per second of SQLiteJobStore: one commit per job, or group commit.

On a temporary file in WAL mode with ``synchronous=FULL`` (every commit is
flushed to disk before it returns), N jobs are submitted by 100 concurrent
trio tasks, each submitting its jobs one after the other and waiting for each
one's durable ack:

* one_by_one: each submitter calls ``store.insert([job])``: one transaction,
  hence one disk flush, per job (the baseline);
* group_commit: each submitter hands its job to a committer task, which
  inserts everything handed in while the previous commit was being written
  in one ``store.insert(batch)`` (at most 100 jobs: one per submitter), then
  acks them all; this is what ``JobManager.submit_job`` does;
* batch_insert: one task inserts the N jobs in batches of 100, back to back:
  the store's cost per job in a group commit, disk flush included;
* batch_no_flush: the same with ``synchronous=OFF`` (not durable): the
  store's own CPU cost per job, which does not depend on the disk.

The flush time per commit is what one_by_one spends per job (its commits run
one at a time on the store's thread): it sets how many commits per second the
disk allows, hence how large batches must be for a given rate of acks.
Run: ``python tests/benchmarks/bench_sqlite_commit.py [--rounds N]``.
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
from trunner.jobs._job import JobRecord, JobState
from trunner.jobs._sqlite import SQLiteJobStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
else:
    import _common as common

SUBMITTERS: Final = 100
BATCH: Final = 100
N_ONE_BY_ONE: Final = 3_000
N_GROUP: Final = 30_000
#: What the JobManager benchmark needs end to end; the store's part must be
#: well under the time per ack that this leaves.
GOAL_GROUP_ACKS: Final = common.Goal(">=", 35_000)
GOAL_STORE_US: Final = common.Goal("<=", 15.0)
GOAL_RATIO: Final = common.Goal(">=", 5.0)

T0: Final = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def make_jobs(n: int) -> list[JobRecord]:
    """Return ``n`` jobs as the manager submits them (a small JSON payload)."""
    return [
        JobRecord(
            id=f"job-{index:08d}",
            handler="send_email",
            args=f'{{"to": "user{index}@example.com", "template": "welcome"}}',
            state=JobState.PENDING,
            priority=2,
            attempts=0,
            max_attempts=3,
            created_at=T0,
            run_at=T0,
        )
        for index in range(n)
    ]


async def _on_store(
    n: int,
    body: Callable[[SQLiteJobStore, list[JobRecord]], Awaitable[None]],
    synchronous: str = "FULL",
) -> float:
    """Run ``body`` on a fresh store file; return durable acks per second."""
    jobs = make_jobs(n)
    with tempfile.TemporaryDirectory() as directory:
        async with trunner.open_scheduler():
            store = SQLiteJobStore(Path(directory) / "jobs.db")
            await store.connect()
            assert store._runner is not None
            assert store._db is not None
            conn = store._db._conn
            await store._runner.run(conn.execute, f"PRAGMA synchronous = {synchronous}")
            (level,) = await store._runner.run(
                lambda: conn.execute("PRAGMA synchronous").fetchone()
            )
            assert level == {"FULL": 2, "OFF": 0}[synchronous]
            start = time.perf_counter()
            await body(store, jobs)
            elapsed = time.perf_counter() - start
            stored = (await store.counts())[JobState.PENDING]
            await store.disconnect()
    if stored != n:
        raise RuntimeError(f"{stored} jobs stored, not {n}")
    return n / elapsed


async def _one_by_one(store: SQLiteJobStore, jobs: list[JobRecord]) -> None:
    async def submitter(mine: list[JobRecord]) -> None:
        for job in mine:
            await store.insert([job])

    async with trio.open_nursery() as nursery:
        for index in range(SUBMITTERS):
            nursery.start_soon(submitter, jobs[index::SUBMITTERS])


@attrs.define(eq=False)
class _GroupCommit:
    """A committer task batching the submits that wait for it, as the manager does."""

    store: SQLiteJobStore
    waiting: list[tuple[JobRecord, trio.Event]] = attrs.field(
        factory=list[tuple[JobRecord, trio.Event]]
    )
    ready: trio.Event = attrs.field(factory=trio.Event)

    async def submit(self, job: JobRecord) -> None:
        done = trio.Event()
        self.waiting.append((job, done))
        self.ready.set()
        await done.wait()

    async def run(self) -> None:
        while True:
            await self.ready.wait()
            self.ready = trio.Event()
            batch, self.waiting = self.waiting, []
            await self.store.insert([job for job, _ in batch])
            for _, done in batch:
                done.set()


async def _group_commit(store: SQLiteJobStore, jobs: list[JobRecord]) -> None:
    group = _GroupCommit(store)

    async def submitter(mine: list[JobRecord]) -> None:
        for job in mine:
            await group.submit(job)

    async with trio.open_nursery() as outer:
        outer.start_soon(group.run)
        async with trio.open_nursery() as nursery:
            for index in range(SUBMITTERS):
                nursery.start_soon(submitter, jobs[index::SUBMITTERS])
        outer.cancel_scope.cancel()


async def _batch_insert(store: SQLiteJobStore, jobs: list[JobRecord]) -> None:
    for start in range(0, len(jobs), BATCH):
        await store.insert(jobs[start : start + BATCH])


def one_by_one() -> float:
    """Return durable acks/s with one transaction per job."""
    return trio.run(_on_store, N_ONE_BY_ONE, _one_by_one)


def group_commit() -> float:
    """Return durable acks/s with concurrent submits sharing a transaction."""
    return trio.run(_on_store, N_GROUP, _group_commit)


def batch_insert() -> float:
    """Return jobs/s inserted in batches of 100, back to back."""
    return trio.run(_on_store, N_GROUP, _batch_insert)


def batch_no_flush() -> float:
    """Return jobs/s inserted in batches of 100 without flushing to disk."""
    return trio.run(_on_store, N_GROUP, _batch_insert, "OFF")


def main() -> None:
    rounds = common.parse_rounds(__doc__ or "", default=3)
    common.print_environment(
        f"bench_sqlite_commit ({SUBMITTERS} submitters, synchronous=FULL)", rounds
    )
    results = common.interleave(
        [
            ("one_by_one", one_by_one),
            ("group_commit", group_commit),
            ("batch_insert", batch_insert),
            ("batch_no_flush", batch_no_flush),
        ],
        rounds=rounds,
    )
    single, grouped, batched = (
        results["one_by_one"],
        results["group_commit"],
        results["batch_insert"],
    )
    store_us = [1e6 / rate for rate in batched]
    cpu_us = [1e6 / rate for rate in results["batch_no_flush"]]
    flush_ms = [1e3 / rate for rate in single]
    rows = [
        common.compare(
            "group commit / one by one (acks/s)",
            grouped,
            single,
            fmt=common.fmt_rate,
            goal=GOAL_RATIO,
        ),
        common.Row(
            metric="group commit acks/s",
            value=common.fmt_rate(common.median(grouped)),
            baseline="",
            ratio=common.fmt_spread(grouped),
            goal=GOAL_GROUP_ACKS.describe("/s"),
            status=common.status(GOAL_GROUP_ACKS, common.median(grouped)),
        ),
        common.Row(
            metric=f"store cost per job, batches of {BATCH}, flush included",
            value=common.fmt_us(common.median(store_us)),
            baseline="",
            ratio=common.fmt_spread(store_us),
        ),
        common.Row(
            metric=f"store CPU per job, batches of {BATCH}, no flush",
            value=common.fmt_us(common.median(cpu_us)),
            baseline="",
            ratio=common.fmt_spread(cpu_us),
            goal=GOAL_STORE_US.describe(" us"),
            status=common.status(GOAL_STORE_US, common.median(cpu_us)),
        ),
        common.Row(
            metric="time per commit of one job (the disk's flush)",
            value=common.fmt_ms(common.median(flush_ms)),
            baseline="",
            ratio=common.fmt_spread(flush_ms),
        ),
    ]
    common.print_table(
        f"SQLiteJobStore durable acks, N={N_ONE_BY_ONE:,} one by one, "
        f"N={N_GROUP:,} grouped",
        rows,
    )


if __name__ == "__main__":
    main()
