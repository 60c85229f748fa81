# pyright: reportPrivateUsage=false
# White-box tests: they reach into the stores' databases and connections.
from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import sqlite3
import sys
import threading
import types
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
import trio.lowlevel

import trunner
from trunner.jobs import _open
from trunner.jobs._errors import SerializationError, StoreError
from trunner.jobs._job import JobRecord, JobState, ScheduleRecord
from trunner.jobs._memory import MemoryJobStore
from trunner.jobs._open import open_store
from trunner.jobs._sqlite import SQLiteJobStore
from trunner.jobs._sqlite_db import Database
from trunner.jobs._urls import redact_url
from trunner.jobs._wakeup import shared_wakeups
from trunner.testing._store_checks import check_job_store, job_store_checks

if TYPE_CHECKING:
    import builtins
    from collections.abc import AsyncGenerator, Callable, Collection, Sequence
    from pathlib import Path

    from trunner.jobs._store import (
        CompleteResult,
        JobEnd,
        JobStore,
        RenewResult,
        WorkWatcher,
    )

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def job(
    job_id: str, *, handler: str = "h", priority: int = 0, run_at: float = 0.0
) -> JobRecord:
    return JobRecord(
        id=job_id,
        handler=handler,
        args="{}",
        state=JobState.PENDING,
        priority=priority,
        attempts=0,
        max_attempts=3,
        created_at=T0,
        run_at=at(run_at),
    )


async def claim(
    store: JobStore, worker: str = "w", *, limit: int = 100, now: float = 0.0
) -> list[JobRecord]:
    return await store.claim(
        worker=worker, handlers=None, now=at(now), lease_until=at(now + 30), limit=limit
    )


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


StoreKind = str


def make_factory(kind: StoreKind, tmp_path: Path) -> Callable[[], JobStore]:
    if kind == "memory":
        return MemoryJobStore
    counter = itertools.count()
    return lambda: SQLiteJobStore(tmp_path / f"jobs-{next(counter)}.db")


def write_unknown_state(store: JobStore, job_id: str) -> None:
    """Give a job of a SQLite store a state it does not know, with raw SQL."""
    assert isinstance(store, SQLiteJobStore)
    corrupt(store.path, "UPDATE trunner_jobs SET state = 'paused' WHERE id = ?", job_id)


# A MemoryJobStore's records are typed: none can hold an unknown state.
STATE_WRITERS = {"memory": None, "sqlite": write_unknown_state}


def same_file(store: JobStore) -> JobStore:
    """Another store object on the file of ``store``, as another process opens it."""
    assert isinstance(store, SQLiteJobStore)
    return SQLiteJobStore(store.path)


# A MemoryJobStore serves one manager: it has no other writers to follow.
OTHER_STORES = {"memory": None, "sqlite": same_file}


# ------------------------------------------------------------ conformance


@pytest.mark.parametrize("check", job_store_checks())
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_store_passes_check(kind: StoreKind, check: str, tmp_path: Path) -> None:
    async with trunner.open_scheduler():
        await check_job_store(
            make_factory(kind, tmp_path),
            only=[check],
            write_unknown_state=STATE_WRITERS[kind],
            other_store=OTHER_STORES[kind],
        )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_store_passes_whole_suite(kind: StoreKind, tmp_path: Path) -> None:
    async with trunner.open_scheduler():
        await check_job_store(
            make_factory(kind, tmp_path),
            write_unknown_state=STATE_WRITERS[kind],
            other_store=OTHER_STORES[kind],
        )


async def test_suite_under_autojump_clock(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with trunner.open_scheduler():
        await check_job_store(make_factory("sqlite", tmp_path))

    assert trio.current_time() == 0


async def test_suite_accepts_async_factory() -> None:
    async def factory() -> JobStore:
        await trio.lowlevel.checkpoint()
        return MemoryJobStore()

    await check_job_store(factory, only=["empty_store", "claim_order"])


def test_suite_names_its_checks() -> None:
    names = job_store_checks()

    assert len(names) == len(set(names)) > 30
    assert "claim_concurrent" in names
    assert "advance_schedule_concurrent" in names


async def test_suite_rejects_unknown_check() -> None:
    with pytest.raises(ValueError, match="unknown job store checks"):
        await check_job_store(MemoryJobStore, only=["claim_order", "nope"])


async def test_suite_rejects_factory_of_non_store() -> None:
    with pytest.raises(TypeError, match="must make a JobStore"):
        await check_job_store(lambda: object(), only=["empty_store"])  # type: ignore[arg-type]  # the wrong type on purpose


async def test_suite_wants_empty_store() -> None:
    store = MemoryJobStore()
    await store.connect()
    await store.insert([job("left-over")])
    await store.disconnect()

    with pytest.raises(AssertionError, match="must make an empty store"):
        await check_job_store(lambda: store, only=["claim_order"])


# A store that delegates to a MemoryJobStore; subclasses break one method, so
# that the suite's own checks are checked.


@attrs.define(eq=False)
class Delegate:
    inner: MemoryJobStore = attrs.field(factory=MemoryJobStore)

    async def connect(self) -> None:
        await self.inner.connect()

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    async def insert(self, jobs: Sequence[JobRecord]) -> list[tuple[JobRecord, bool]]:
        return await self.inner.insert(jobs)

    async def get(self, job_id: str) -> JobRecord | None:
        return await self.inner.get(job_id)

    async def list(
        self,
        *,
        state: JobState | None = None,
        handler: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobRecord]:
        return await self.inner.list(
            state=state, handler=handler, limit=limit, offset=offset
        )

    async def counts(self) -> dict[JobState, int]:
        return await self.inner.counts()

    async def claim(
        self,
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        return await self.inner.claim(
            worker=worker,
            handlers=handlers,
            now=now,
            lease_until=lease_until,
            limit=limit,
        )

    async def complete_and_claim(
        self,
        ends: Sequence[JobEnd],
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> CompleteResult:
        return await self.inner.complete_and_claim(
            ends,
            worker=worker,
            handlers=handlers,
            now=now,
            lease_until=lease_until,
            limit=limit,
        )

    @asynccontextmanager
    async def watch(
        self, *, handlers: Collection[str] | None
    ) -> AsyncGenerator[WorkWatcher]:
        async with self.inner.watch(handlers=handlers) as watcher:
            yield watcher

    async def next_due(self, *, handlers: Collection[str] | None) -> dt.datetime | None:
        return await self.inner.next_due(handlers=handlers)

    async def renew(
        self, *, worker: str, job_ids: Collection[str], lease_until: dt.datetime
    ) -> RenewResult:
        return await self.inner.renew(
            worker=worker, job_ids=job_ids, lease_until=lease_until
        )

    async def complete(
        self,
        job_id: str,
        *,
        worker: str,
        state: JobState,
        finished_at: dt.datetime,
        result: str | None = None,
        error: str | None = None,
    ) -> bool:
        return await self.inner.complete(
            job_id,
            worker=worker,
            state=state,
            finished_at=finished_at,
            result=result,
            error=error,
        )

    async def requeue(
        self,
        job_id: str,
        *,
        worker: str,
        run_at: dt.datetime,
        error: str | None,
        now: dt.datetime,
    ) -> bool:
        return await self.inner.requeue(
            job_id, worker=worker, run_at=run_at, error=error, now=now
        )

    async def release(self, job_id: str, *, worker: str, now: dt.datetime) -> bool:
        return await self.inner.release(job_id, worker=worker, now=now)

    async def expire_leases(self, *, now: dt.datetime) -> builtins.list[JobRecord]:
        return await self.inner.expire_leases(now=now)

    async def request_cancel(
        self, job_id: str, *, now: dt.datetime
    ) -> JobRecord | None:
        return await self.inner.request_cancel(job_id, now=now)

    async def reset(self, job_id: str, *, now: dt.datetime) -> JobRecord | None:
        return await self.inner.reset(job_id, now=now)

    async def purge(
        self,
        *,
        finished_before: dt.datetime | None = None,
        keep_latest: int | None = None,
        states: Collection[JobState] | None = None,
    ) -> int:
        return await self.inner.purge(
            finished_before=finished_before, keep_latest=keep_latest, states=states
        )

    async def delete(self, job_id: str) -> bool:
        return await self.inner.delete(job_id)

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        await self.inner.put_schedule(schedule)

    async def delete_schedule(self, name: str) -> bool:
        return await self.inner.delete_schedule(name)

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        return await self.inner.list_schedules()

    async def advance_schedule(
        self, name: str, *, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        return await self.inner.advance_schedule(
            name, expected=expected, next_run_at=next_run_at
        )


async def test_delegate_passes_suite() -> None:
    await check_job_store(Delegate)


class ReversedClaims(Delegate):
    async def claim(
        self,
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        taken = await super().claim(
            worker=worker,
            handlers=handlers,
            now=now,
            lease_until=lease_until,
            limit=limit,
        )
        return taken[::-1]


class DuplicatesInserted(Delegate):
    async def insert(
        self, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        return [(record, True) for record, _ in await super().insert(jobs)]


class NeverInserted(Delegate):
    async def insert(
        self, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        return [(record, False) for record, _ in await super().insert(jobs)]


class SparseCounts(Delegate):
    async def counts(self) -> dict[JobState, int]:
        return {state: n for state, n in (await super().counts()).items() if n}


class BlindAdvance(Delegate):
    async def advance_schedule(
        self, name: str, *, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        for schedule in await self.list_schedules():
            if schedule.name == name:
                await self.put_schedule(attrs.evolve(schedule, next_run_at=next_run_at))
                return True
        return False


class CountingRelease(Delegate):
    async def release(self, job_id: str, *, worker: str, now: dt.datetime) -> bool:
        before = await self.get(job_id)
        released = await super().release(job_id, worker=worker, now=now)
        if released and before is not None:
            stored = self.inner._jobs[job_id]
            self.inner._jobs[job_id] = attrs.evolve(stored, attempts=before.attempts)
        return released


class EagerGet(Delegate):
    async def get(self, job_id: str) -> JobRecord | None:
        return self.inner._jobs.get(job_id)  # no checkpoint


class LossyDisconnect(Delegate):
    async def disconnect(self) -> None:
        await super().disconnect()
        self.inner = MemoryJobStore()


class CompletesAnyHolder(Delegate):
    """Ends a job whoever holds it: the per-job worker check is missing."""

    async def complete_and_claim(
        self,
        ends: Sequence[JobEnd],
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> CompleteResult:
        ended: list[bool] = []
        for end in ends:
            current = self.inner._jobs.get(end.job_id)
            holder = (
                worker if current is None or current.worker is None else current.worker
            )
            result = await super().complete_and_claim(
                [end],
                worker=holder,
                handlers=handlers,
                now=now,
                lease_until=lease_until,
                limit=0,
            )
            ended.extend(result.ended)
        result = await super().complete_and_claim(
            [],
            worker=worker,
            handlers=handlers,
            now=now,
            lease_until=lease_until,
            limit=limit,
        )
        return attrs.evolve(result, ended=tuple(ended))


class RacyClaims(Delegate):
    """Picks jobs, yields, then takes them: concurrent calls overlap."""

    async def complete_and_claim(
        self,
        ends: Sequence[JobEnd],
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> CompleteResult:
        result = await super().complete_and_claim(
            ends,
            worker=worker,
            handlers=handlers,
            now=now,
            lease_until=lease_until,
            limit=0,
        )
        pending = await self.inner.list(state=JobState.PENDING, limit=100_000)
        pending.sort(key=lambda record: (-record.priority, record.run_at, record.seq))
        await trio.lowlevel.checkpoint()  # another caller picks the same jobs meanwhile
        claimed: list[JobRecord] = []
        for record in pending[:limit]:
            new = attrs.evolve(
                record,
                state=JobState.RUNNING,
                worker=worker,
                lease_until=lease_until,
                started_at=now,
                attempts=record.attempts + 1,
            )
            self.inner._put(new, self.inner._jobs[record.id])
            claimed.append(new)
        return attrs.evolve(result, claimed=tuple(claimed))


class DeafWatcher(Delegate):
    """Its watcher never wakes."""

    @asynccontextmanager
    async def watch(
        self, *, handlers: Collection[str] | None
    ) -> AsyncGenerator[WorkWatcher]:
        del handlers
        async with MemoryJobStore().watch(handlers=None) as watcher:
            yield watcher


class FailingNextDue(Delegate):
    async def next_due(self, *, handlers: Collection[str] | None) -> dt.datetime | None:
        raise RuntimeError("next_due is broken")


@pytest.mark.parametrize(
    ("store_class", "check"),
    [
        (ReversedClaims, "claim_order"),
        (ReversedClaims, "claim_handlers"),
        (DuplicatesInserted, "insert_duplicates"),
        (NeverInserted, "insert_concurrent"),
        (NeverInserted, "insert_assigns_seq"),
        (SparseCounts, "empty_store"),
        (SparseCounts, "counts"),
        (BlindAdvance, "advance_schedule"),
        (BlindAdvance, "advance_schedule_concurrent"),
        (CountingRelease, "release"),
        (EagerGet, "checkpoints"),
        (LossyDisconnect, "reconnect_keeps_data"),
        (LossyDisconnect, "connect_idempotent"),
        (CompletesAnyHolder, "complete_and_claim_holder_only"),
        (RacyClaims, "complete_and_claim_concurrent"),
        (DeafWatcher, "watch"),
    ],
)
async def test_suite_catches_broken_store(
    store_class: Callable[[], Delegate], check: str, autojump_clock: trio.abc.Clock
) -> None:
    with pytest.raises(AssertionError, match=f"fails job store check '{check}'"):
        await check_job_store(store_class, only=[check])


async def test_suite_catches_unknown_states_left_uncounted() -> None:
    # A writer that changes nothing: the check then finds no unknown job.
    with pytest.raises(AssertionError, match="fails job store check 'unknown_state'"):
        await check_job_store(
            MemoryJobStore,
            only=["unknown_state"],
            write_unknown_state=lambda store, job_id: None,
        )


async def test_suite_skips_the_unknown_state_check_without_a_writer() -> None:
    made: list[JobStore] = []

    def factory() -> JobStore:
        made.append(MemoryJobStore())
        return made[-1]

    await check_job_store(factory, only=["unknown_state", "counts"])

    assert len(made) == 1  # for "counts" only


async def test_suite_notes_the_check_of_a_store_error() -> None:
    with pytest.raises(RuntimeError, match="next_due is broken") as info:
        await check_job_store(FailingNextDue, only=["next_due"])

    assert "in job store check 'next_due' of FailingNextDue" in (
        info.value.__notes__ or []
    )


# ------------------------------------------------------------ both stores


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    kind: str = request.param
    return make_factory(kind, tmp_path)()


async def test_store_validates_arguments(store: JobStore) -> None:
    async with trunner.open_scheduler():
        await store.connect()
        with pytest.raises(ValueError, match="limit must be >= 0"):
            await store.list(limit=-1)
        with pytest.raises(ValueError, match="offset must be >= 0"):
            await store.list(offset=-1)
        with pytest.raises(ValueError, match="keep_latest must be >= 0"):
            await store.purge(keep_latest=-1)
        with pytest.raises(ValueError, match=r"not JobState\.PENDING"):
            await store.complete(
                "a", worker="w", state=JobState.PENDING, finished_at=at(0)
            )
        assert await claim(store, limit=-1) == []
        await store.disconnect()


async def test_purge_ranks_jobs_without_finish_time_oldest(store: JobStore) -> None:
    def finished(job_id: str, seconds: float | None) -> JobRecord:
        when = None if seconds is None else at(seconds)
        return attrs.evolve(job(job_id), state=JobState.SUCCEEDED, finished_at=when)

    async with trunner.open_scheduler():
        await store.connect()
        await store.insert([finished("timed", 5), finished("untimed", None)])

        assert await store.purge(finished_before=at(100)) == 1
        assert [r.id for r in await store.list()] == ["untimed"]
        await store.insert([finished("later", 7)])
        assert await store.purge(keep_latest=1) == 1
        assert [r.id for r in await store.list()] == ["later"]
        await store.disconnect()


async def test_claim_skips_jobs_of_other_handlers_by_heap(store: JobStore) -> None:
    async with trunner.open_scheduler():
        await store.connect()
        await store.insert([job(f"a{n}", handler="a", priority=5) for n in range(50)])
        await store.insert([job("b", handler="b", run_at=-1)])

        taken = await store.claim(
            worker="w", handlers={"b"}, now=at(0), lease_until=at(30), limit=5
        )

        assert [r.id for r in taken] == ["b"]
        assert await store.next_due(handlers=("b", "b")) is None
        await store.disconnect()


# ------------------------------------------------------------ MemoryJobStore


async def test_memory_store_rebuilds_its_heaps() -> None:
    store = MemoryJobStore()
    await store.connect()
    await store.insert([job(f"j{n}", handler=f"h{n % 3}") for n in range(3000)])
    for n in range(2990):
        await store.request_cancel(f"j{n}", now=at(1))

    await store.insert([job("fresh", handler="h0", priority=1)])

    assert store._queued == len(store._entries) == 11
    assert [r.id for r in await claim(store, limit=2)] == ["fresh", "j2990"]
    assert await store.next_due(handlers=None) == at(0)
    assert repr(store) == "<MemoryJobStore jobs=3001 schedules=0>"


async def test_memory_store_claims_from_a_large_backlog() -> None:
    store = MemoryJobStore()
    await store.connect()
    await store.insert([job(f"j{n:06}", run_at=n % 100) for n in range(20_000)])

    taken = await claim(store, limit=10, now=0)

    assert [r.id for r in taken] == [f"j{n:06}" for n in range(0, 1000, 100)]


async def test_memory_store_shared_by_two_managers_claims_once() -> None:
    store = MemoryJobStore()
    await store.connect()
    await store.insert([job(f"j{n}") for n in range(40)])
    taken: list[str] = []

    async def worker(name: str) -> None:
        while batch := await claim(store, name, limit=2):
            taken.extend(r.id for r in batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker, "a")
        nursery.start_soon(worker, "b")

    assert sorted(taken) == sorted(f"j{n}" for n in range(40))


# ------------------------------------------------------------ SQLiteJobStore


async def test_sqlite_store_settings(db_path: str) -> None:
    store = SQLiteJobStore(db_path)
    async with trunner.open_scheduler():
        await store.connect()
        assert store._runner is not None
        assert store._db is not None
        conn = store._db._conn

        def pragmas() -> tuple[str, int, int]:
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            (sync,) = conn.execute("PRAGMA synchronous").fetchone()
            (busy,) = conn.execute("PRAGMA busy_timeout").fetchone()
            return mode, sync, busy

        assert await store._runner.run(pragmas) == ("wal", 2, 10_000)
        assert store._runner.name == f"sqlite:{db_path}"
        assert repr(store) == f"<SQLiteJobStore {db_path!r} connected>"
        await store.disconnect()

    assert repr(store) == f"<SQLiteJobStore {db_path!r} not connected>"
    assert store.path == db_path


async def test_sqlite_store_uses_indexes(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        await store.disconnect()
    conn = sqlite3.connect(db_path)
    plans = {
        # As the store's own statements.
        "claim": "SELECT seq FROM trunner_jobs INDEXED BY trunner_jobs_claim "
        "WHERE state = 'pending' AND run_at <= ? ORDER BY priority DESC, run_at, seq "
        "LIMIT 5",
        "due": "SELECT min(run_at) FROM trunner_jobs WHERE state = 'pending'",
        "lease": "SELECT seq FROM trunner_jobs WHERE state = 'running' "
        "AND lease_until < ?",
        "finished": "SELECT seq FROM trunner_jobs WHERE state IN ('failed') "
        "AND finished_at < ?",
    }
    for name, sql in plans.items():
        plan = " ".join(
            row[3]
            for row in conn.execute(
                f"EXPLAIN QUERY PLAN {sql}", (1.0,) * sql.count("?")
            )
        )
        assert f"trunner_jobs_{name}" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    conn.close()


async def test_sqlite_store_accepts_path_like(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path / "x.db", busy_timeout=1.5)

    assert store.path == os.fspath(tmp_path / "x.db")


@pytest.mark.parametrize("path", ["", ":memory:", "file::memory:?cache=shared"])
def test_sqlite_store_refuses_memory_database(path: str) -> None:
    with pytest.raises(ValueError, match="use MemoryJobStore"):
        SQLiteJobStore(path)


def test_sqlite_store_refuses_negative_busy_timeout(db_path: str) -> None:
    with pytest.raises(ValueError, match=r"busy_timeout must be >= 0"):
        SQLiteJobStore(db_path, busy_timeout=-1)


async def test_sqlite_store_needs_a_scheduler(db_path: str) -> None:
    store = SQLiteJobStore(db_path)

    with pytest.raises(
        trunner.NoCurrentSchedulerError, match="needs an open scheduler"
    ):
        await store.connect()


async def test_sqlite_store_not_connected(db_path: str) -> None:
    store = SQLiteJobStore(db_path)

    with pytest.raises(StoreError, match="connect it first"):
        await store.get("a")
    with pytest.raises(StoreError, match="connect it first"):
        await store.insert([])
    with pytest.raises(StoreError, match="connect it first"):
        await store.claim(worker="w", handlers=[], now=T0, lease_until=at(30), limit=5)
    await store.disconnect()  # a no-op


async def test_sqlite_store_connects_once_when_raced(db_path: str) -> None:
    store = SQLiteJobStore(db_path)
    async with trunner.open_scheduler() as scheduler:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(store.connect)

        assert sum(r.name == f"sqlite:{db_path}" for r in scheduler.runners) == 1
        await store.disconnect()


async def test_sqlite_store_persists_across_objects_and_schedulers(
    db_path: str,
) -> None:
    async with trunner.open_scheduler():
        first = SQLiteJobStore(db_path)
        await first.connect()
        await first.insert([job("a"), job("b")])
        [running] = await claim(first, limit=1)
        await first.put_schedule(
            ScheduleRecord(
                name="s",
                handler="h",
                args="[]",
                cron="* * * * *",
                every=None,
                next_run_at=at(60),
                priority=0,
                created_at=T0,
            )
        )
        await first.disconnect()

    async with trunner.open_scheduler():
        second = SQLiteJobStore(db_path)
        await second.connect()

        assert await second.get("a") == running
        assert [r.id for r in await second.list()] == ["b", "a"]
        assert [s.name for s in await second.list_schedules()] == ["s"]
        [(c, inserted)] = await second.insert([job("c")])
        assert inserted
        assert c.seq == 3
        await second.disconnect()


async def test_sqlite_store_never_reuses_a_seq(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        await store.insert([job("a"), job("b")])
        await store.request_cancel("b", now=at(1))
        assert await store.purge() == 1

        [(c, _)] = await store.insert([job("c")])

        assert c.seq == 3
        await store.disconnect()


async def test_sqlite_file_shared_by_two_stores_claims_once(db_path: str) -> None:
    async with trunner.open_scheduler():
        one, two = SQLiteJobStore(db_path), SQLiteJobStore(db_path)
        await one.connect()
        await two.connect()
        await one.insert([job(f"j{n:03}", priority=n % 4) for n in range(300)])
        taken: dict[str, list[str]] = {}

        async def worker(store: SQLiteJobStore, name: str) -> None:
            while batch := await claim(store, name, limit=7):
                for record in batch:
                    taken.setdefault(record.id, []).append(name)

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(worker, one, f"one-{n}")
                nursery.start_soon(worker, two, f"two-{n}")

        assert sorted(taken) == [f"j{n:03}" for n in range(300)]
        assert all(len(workers) == 1 for workers in taken.values())
        assert (await two.counts())[JobState.RUNNING] == 300
        await one.disconnect()
        await two.disconnect()


async def test_sqlite_store_waits_for_the_write_lock(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path, busy_timeout=0.05)
        await store.connect()
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")

        with pytest.raises(StoreError, match="database is locked") as info:
            await store.insert([job("a")])

        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        other.execute("ROLLBACK")
        other.close()
        [(_, inserted)] = await store.insert([job("a")])
        assert inserted
        await store.disconnect()


async def test_sqlite_store_maps_errors_mid_use(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("DROP TABLE trunner_jobs")
        other.close()

        with pytest.raises(StoreError, match="no such table") as info:
            await store.insert([job("a")])

        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(StoreError, match="no such table"):
            await store.counts()
        await store.disconnect()


async def test_sqlite_store_refuses_a_corrupt_file(db_path: str) -> None:
    with open(db_path, "wb") as file:  # noqa: ASYNC230  # a test fixture file
        file.write(b"this is not a database, " * 100)
    store = SQLiteJobStore(db_path)
    async with trunner.open_scheduler() as scheduler:
        with pytest.raises(StoreError, match="cannot be opened") as info:
            await store.connect()

        assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
        assert not [r for r in scheduler.runners if r.name.startswith("sqlite:")]
        assert repr(store).endswith("not connected>")


async def test_sqlite_store_refuses_a_directory(tmp_path: Path) -> None:
    async with trunner.open_scheduler():
        with pytest.raises(StoreError, match="unable to open database file"):
            await SQLiteJobStore(tmp_path).connect()


async def test_sqlite_store_refuses_newer_schema(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        await store.disconnect()
        conn = sqlite3.connect(db_path, isolation_level=None)
        conn.execute("UPDATE trunner_meta SET value = '99' WHERE key = 'schema'")
        conn.close()

        with pytest.raises(StoreError, match="schema version 99"):
            await store.connect()


class _NoWalConnection:
    """A connection whose journal mode stays 'delete'."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str) -> sqlite3.Cursor:
        if sql.startswith("PRAGMA journal_mode"):
            return self.conn.execute("SELECT 'delete'")
        return self.conn.execute(sql)  # pragma: no cover - not reached

    def close(self) -> None:
        self.conn.close()


async def test_sqlite_store_needs_wal(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = sqlite3.connect

    def connect(path: str, **kwargs: float | None) -> _NoWalConnection:
        return _NoWalConnection(real_connect(path))

    monkeypatch.setattr(sqlite3, "connect", connect)
    async with trunner.open_scheduler():
        with pytest.raises(StoreError, match=r"could not put .* in WAL mode"):
            await SQLiteJobStore(db_path).connect()


async def test_sqlite_store_maps_close_errors(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def close(self: Database) -> None:
        self._conn.close()
        raise sqlite3.OperationalError("disk gone")

    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        monkeypatch.setattr(Database, "close", close)

        with pytest.raises(StoreError, match="disk gone"):
            await store.disconnect()

        assert repr(store).endswith("not connected>")


async def test_sqlite_store_outlived_by_its_scheduler(db_path: str) -> None:
    store = SQLiteJobStore(db_path)
    async with trunner.open_scheduler():
        await store.connect()
        await store.insert([job("a")])

    async with trunner.open_scheduler():
        with pytest.raises(StoreError, match="closed with its scheduler"):
            await store.get("a")
        await store.disconnect()  # the thread runner is gone already
        await store.connect()

        assert (await store.get("a")) is not None
        await store.disconnect()


async def test_sqlite_store_refuses_naive_times(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        naive = attrs.evolve(
            job("a"), run_at=dt.datetime(2030, 1, 1)
        )  # naive on purpose

        with pytest.raises(ValueError, match="timezone-aware"):
            await store.insert([naive])

        assert await store.list() == []
        await store.disconnect()


async def test_sqlite_store_under_autojump_clock(
    db_path: str, autojump_clock: trio.abc.Clock
) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        await store.insert([job("a")])
        await trio.sleep(5)

        assert [r.id for r in await claim(store)] == ["a"]
        assert trio.current_time() == 5
        await store.disconnect()


# Corrupted rows: written behind the store's back.


def corrupt(db_path: str, sql: str, *params: object) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute(sql, params)
    conn.close()


async def test_sqlite_store_skips_corrupted_rows(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        await store.insert(
            [
                job("bad-state", priority=9),
                job("bad-time", priority=8),
                job("bad-type", priority=7),
                job("bad-count", priority=6),
                job("good-1"),
                job("good-2"),
            ]
        )
        corrupt(
            db_path, "UPDATE trunner_jobs SET state = 'bogus' WHERE id = ?", "bad-state"
        )
        corrupt(
            db_path, "UPDATE trunner_jobs SET created_at = 'x' WHERE id = ?", "bad-time"
        )
        corrupt(
            db_path, "UPDATE trunner_jobs SET args = x'00' WHERE id = ?", "bad-type"
        )
        corrupt(
            db_path, "UPDATE trunner_jobs SET attempts = 'x' WHERE id = ?", "bad-count"
        )

        with caplog.at_level(logging.WARNING, logger="trunner.jobs"):
            taken = await claim(store, limit=1)
            assert [r.id for r in taken] == ["good-1"]
            assert [r.id for r in await store.list()] == ["good-2", "good-1"]
            assert [r.id for r in await claim(store, limit=5)] == ["good-2"]
            assert await claim(store, limit=5) == []
        for job_id in ("bad-state", "bad-time", "bad-type", "bad-count"):
            with pytest.raises(SerializationError, match=f"id '{job_id}'.* corrupted"):
                await store.get(job_id)
        counts = await store.counts()

        # A corrupted due job fails, once, when a claim meets it; a row whose
        # state is unknown is never due, and counted as unknown.
        assert counts[JobState.PENDING] == 0
        assert counts[JobState.RUNNING] == 2
        assert counts[JobState.FAILED] == 3
        assert counts.unknown == 1
        assert counts.total == 6
        failed = [r for r in caplog.records if "failing a corrupted" in r.getMessage()]
        assert len(failed) == 3
        skipped = [r for r in caplog.records if "skipping a job" in r.getMessage()]
        assert len(skipped) == 4  # each corrupted row is logged once by list()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        with pytest.raises(SerializationError):
            await store.request_cancel("bad-time", now=at(1))
        with pytest.raises(SerializationError):
            await store.reset("bad-time", now=at(1))
        with pytest.raises(SerializationError):
            await store.insert([job("new"), job("bad-time")])
        assert await store.get("new") is None  # the whole batch was refused
        await store.disconnect()


async def test_sqlite_store_expires_corrupted_rows_quietly(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        await store.insert([job("a"), job("b")])
        await claim(store)
        corrupt(db_path, "UPDATE trunner_jobs SET handler = x'00' WHERE id = 'a'")

        changed = await store.expire_leases(now=at(60))

        assert [r.id for r in changed] == ["b"]
        assert [r.id for r in await store.list(state=JobState.PENDING)] == ["b"]
        await store.disconnect()


async def test_sqlite_store_next_due_ignores_corrupted_times(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        await store.insert([job("text", run_at=-5), job("ok", run_at=10)])
        corrupt(db_path, "UPDATE trunner_jobs SET run_at = 'soon' WHERE id = 'text'")

        assert await store.next_due(handlers=None) == at(10)
        assert await store.next_due(handlers=["h"]) == at(10)
        corrupt(db_path, "UPDATE trunner_jobs SET run_at = -1e300 WHERE id = 'ok'")
        with pytest.raises(SerializationError, match="impossible time"):
            await store.next_due(handlers=None)
        await store.disconnect()


async def test_sqlite_store_skips_corrupted_schedules(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        for name in ("a", "b"):
            await store.put_schedule(
                ScheduleRecord(
                    name=name,
                    handler="h",
                    args="[]",
                    cron=None,
                    every=5,
                    next_run_at=at(5),
                    priority=0,
                    created_at=T0,
                )
            )
        corrupt(
            db_path,
            "UPDATE trunner_schedules SET next_run_at = 'soon' WHERE name = 'a'",
        )

        assert [s.name for s in await store.list_schedules()] == ["b"]
        await store.disconnect()


async def test_sqlite_store_inserts_large_batches_with_conflicts(db_path: str) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()
        await store.insert([job(f"j{n}") for n in range(0, 1200, 2)])

        results = await store.insert([job(f"j{n}") for n in range(1200)])

        assert sum(new for _, new in results) == 600
        # The conflicting jobs leave gaps: seqs grow, not always by one.
        assert [r.seq for r, _ in results[:4]] == [1, 602, 2, 604]
        renewed = await store.renew(
            worker="w",
            job_ids=[r.id for r in await claim(store, limit=1200)],
            lease_until=at(60),
        )
        assert len(renewed.held) == 1200
        await store.disconnect()


async def test_sqlite_store_insert_variants_round_trip(db_path: str) -> None:
    plain = job("plain")
    options = attrs.evolve(job("options"), timeout=1.5)
    retry = attrs.evolve(job("retry"), retry="{}")
    full = attrs.evolve(job("full"), worker="w")
    async with trunner.open_scheduler():
        store = SQLiteJobStore(db_path)
        await store.connect()

        results = await store.insert([plain, options, retry, full])

        assert [r.seq for r, _ in results] == [1, 2, 3, 4]
        for given, (stored, _) in zip(
            [plain, options, retry, full], results, strict=True
        ):
            assert stored == attrs.evolve(given, seq=stored.seq)
            assert await store.get(given.id) == stored
        await store.disconnect()


# ------------------------------------------------------------ open_store


def test_open_store_memory() -> None:
    assert isinstance(open_store("memory://"), MemoryJobStore)
    assert isinstance(open_store("MEMORY:///"), MemoryJobStore)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///jobs.db", "jobs.db"),
        ("sqlite:///data/jobs.db", "data/jobs.db"),
        ("sqlite:////var/lib/jobs.db", "/var/lib/jobs.db"),
    ],
)
def test_open_store_sqlite(url: str, path: str) -> None:
    store = open_store(url)

    assert isinstance(store, SQLiteJobStore)
    assert store.path == path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", "use 'memory://'"),
        ("sqlite://", "names a host"),
        ("sqlite:///", "use 'memory://'"),
        ("sqlite://host/jobs.db", "names a host"),
        ("sqlite:///jobs.db?mode=ro", "no query"),
        ("memory://somewhere", "takes no path"),
        ("jobs.db", "not a store URL"),
        ("ftp://host/jobs", "unsupported store URL scheme 'ftp'"),
    ],
)
def test_open_store_refuses(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://user:secret@host/jobs",
        "memory://user:secret@host",
        "sqlite://user:secret@host/jobs.db",
        "sqlite:///jobs.db?password=secret",
    ],
)
def test_open_store_messages_hide_passwords(url: str) -> None:
    with pytest.raises(ValueError, match=r"\*\*\*") as caught:
        open_store(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:p%40ss@h:1/0", "redis://u:***@h:1/0"),
        ("redis://secret@h", "redis://***@h"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://u:a@b@h/db?PassWord=x&sslmode=y",
            "postgresql://u:***@h/db?PassWord=***&sslmode=y",
        ),
        ("host=h password=se\\'cret port=1", "host=h password=*** port=1"),
        ("sqlite:///jobs.db", "sqlite:///jobs.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_open_store_wants_text() -> None:
    with pytest.raises(TypeError, match="url must be a str"):
        open_store(b"memory://")  # type: ignore[arg-type]  # the wrong type on purpose


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "postgresql+psycopg://u@h/db", "postgres://h"]
)
def test_open_store_backend_not_available(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        _open,
        "_LAZY",
        {
            "redis": ("trunner.jobs._no_such_redis", "Redis"),
            "postgresql": ("trunner.jobs._no_such_pg", "PostgreSQL"),
            "postgres": ("trunner.jobs._no_such_pg", "PostgreSQL"),
        },
    )

    with pytest.raises(ValueError, match="store is not available yet"):
        open_store(url)


def test_open_store_backend_without_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    def import_module(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'coredis'", name="coredis")

    monkeypatch.setattr(
        _open, "importlib", types.SimpleNamespace(import_module=import_module)
    )

    with pytest.raises(ModuleNotFoundError, match="coredis"):
        open_store("redis://localhost/0")


def test_open_store_backend_from_url(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def from_url(url: str) -> JobStore:
        made.append(url)
        return MemoryJobStore()

    module = types.ModuleType("trunner.jobs._fake_redis")
    module.from_url = from_url  # type: ignore[attr-defined]  # a fake backend module
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(_open, "_LAZY", {"redis": (module.__name__, "Redis")})

    store = open_store("redis://localhost:6379/2")

    assert isinstance(store, MemoryJobStore)
    assert made == ["redis://localhost:6379/2"]


async def test_sqlite_wakes_watchers_of_other_objects_on_the_file(
    db_path: str,
) -> None:
    async with trunner.open_scheduler():
        watched, other = SQLiteJobStore(db_path), SQLiteJobStore(db_path)
        await watched.connect()
        await other.connect()
        try:
            async with watched.watch(handlers=None) as watcher:
                assert not await watcher.wait(0)
                await other.insert([job("a")])
                assert await watcher.wait(5)
                assert not await watcher.wait(0)
        finally:
            await other.disconnect()
            await watched.disconnect()


async def test_sqlite_does_not_wake_watchers_of_another_file(tmp_path: Path) -> None:
    async with trunner.open_scheduler():
        watched = SQLiteJobStore(tmp_path / "a.db")
        other = SQLiteJobStore(tmp_path / "b.db")
        await watched.connect()
        await other.connect()
        try:
            async with watched.watch(handlers=None) as watcher:
                await other.insert([job("a")])
                assert not await watcher.wait(0)
        finally:
            await other.disconnect()
            await watched.disconnect()


def test_wakeups_reach_a_watcher_in_another_trio_run(db_path: str) -> None:
    hub = shared_wakeups(os.path.realpath(db_path))
    entered = threading.Event()
    woken: list[bool] = []

    async def watch() -> None:
        async with hub.watch() as watcher:
            entered.set()
            woken.append(await watcher.wait(10))

    thread = threading.Thread(target=trio.run, args=(watch,))
    thread.start()
    assert entered.wait(10)
    hub.notify()  # from this thread, outside any trio run
    thread.join(10)
    assert woken == [True]
