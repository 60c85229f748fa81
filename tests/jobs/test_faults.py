"""The manager against a failing store, bad rows, bad ids and a closed block."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

import pytest
import trio

import trunner
from trunner import RetryPolicy
from trunner.jobs import (
    ChangeWatcher,
    CompleteResult,
    JobCounts,
    JobEnd,
    JobNotFoundError,
    JobRecord,
    JobState,
    JobStateError,
    JobStore,
    MemoryJobStore,
    Registry,
    SerializationError,
    SQLiteJobStore,
    StoreError,
    StoreInUseError,
    WorkWatcher,
    open_job_manager,
)
from trunner.jobs._failures import STORE_RETRY_MAX, describe_error
from trunner.jobs._job import FINISHED_STATES

from .test_manager import WALL0, Handlers, manager

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        Awaitable,
        Callable,
        Collection,
        Sequence,
    )
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path


def _wall() -> dt.datetime:
    return WALL0 + dt.timedelta(seconds=trio.current_time())


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    if request.param == "memory":
        return MemoryJobStore()
    return SQLiteJobStore(tmp_path / "jobs.db")


class Faulty:
    """A store whose calls can be made to fail, and that counts them."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.failing: set[str] = set()
        self.calls: dict[str, int] = {}
        self.poison: set[str] = set()

    def __getattr__(self, name: str) -> object:
        method = getattr(self.store, name)

        async def call(*args: object, **kwargs: object) -> object:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name in self.failing:
                await trio.lowlevel.checkpoint()
                raise StoreError("database is locked")
            return await method(*args, **kwargs)

        return call

    def watch(
        self, *, handlers: Collection[str] | None
    ) -> AbstractAsyncContextManager[WorkWatcher]:
        self.calls["watch"] = self.calls.get("watch", 0) + 1
        return self.store.watch(handlers=handlers)

    async def insert(self, jobs: Sequence[JobRecord]) -> object:
        self.calls["insert"] = self.calls.get("insert", 0) + 1
        if "insert" in self.failing:
            await trio.lowlevel.checkpoint()
            raise StoreError("database is locked")
        if any(job.id in self.poison for job in jobs):
            await trio.lowlevel.checkpoint()
            raise StoreError("the backend refuses this id")
        return await self.store.insert(jobs)


# ---------------------------------------------------------------- item 9


async def test_failed_claims_never_stop_the_worker(
    store: JobStore, autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = Handlers()
    faulty = Faulty(store)
    with caplog.at_level(logging.WARNING, logger="trunner.jobs"):
        async with manager(faulty, handlers, poll_interval=1) as jm:  # type: ignore[arg-type]  # duck-typed
            faulty.failing.add("complete_and_claim")
            await jm.submit_job("during", "email", {"to": "a"})
            await trio.sleep(120)  # two minutes of "database is locked"
            claims_while_failing = faulty.calls["complete_and_claim"]
            assert handlers.runs("email") == []
            faulty.failing.clear()
            t0 = trio.current_time()
            await jm.submit_job("after", "email", {"to": "b"})
            while len(handlers.runs("email")) < 2:  # noqa: ASYNC110  # polls a log
                await trio.sleep(0.01)
            resumed_after = trio.current_time() - t0
            assert (await jm.get_job("after")).state is JobState.SUCCEEDED

    assert resumed_after <= STORE_RETRY_MAX  # by itself, within the capped backoff
    # Capped exponential backoff: neither a spin nor a give-up.
    assert 120 / STORE_RETRY_MAX <= claims_while_failing <= 120 / STORE_RETRY_MAX + 10
    warnings = [r for r in caplog.records if "could not claim" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per try
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_failed_renewals_and_expiries_are_logged_once_per_outage(
    store: JobStore, autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # They were logged with a traceback at every try (every lease / 3 s).
    faulty = Faulty(store)
    with caplog.at_level(logging.DEBUG, logger="trunner.jobs"):
        async with manager(faulty, Handlers(), lease=6.0) as jm:  # type: ignore[arg-type]  # duck-typed
            await jm.submit_job("long", "sleep", 100.0)
            while (await jm.get_job("long")).state is not JobState.RUNNING:  # noqa: ASYNC110  # polls the store
                await trio.sleep(0.01)
            faulty.failing.update({"renew", "expire_leases"})
            await trio.sleep(30)
            tries = faulty.calls["renew"], faulty.calls["expire_leases"]
            faulty.failing.clear()
            await jm.submit_job("more", "sleep", 100.0)  # something to renew
            await trio.sleep(10)
            jm.shutdown()

    # Renewals stop once the lease guard has stopped the handler (no lease
    # held); expiries go on every 2 s.
    assert tries[0] >= 2
    assert tries[1] >= 10
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for what in ("renew the leases", "take back expired leases"):
        assert sum(f"could not {what}" in m for m in warned) == 1, warned
        assert sum("answers again" in m and what in m for m in warned) == 1, warned
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert sum("failures in a row" in r.getMessage() for r in debug) >= 10


async def test_failed_completion_is_stored_once_the_store_answers(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    faulty = Faulty(store)
    async with manager(faulty, handlers, lease=30) as jm:  # type: ignore[arg-type]  # duck-typed
        await jm.submit_job("job", "sleep", 1.0)
        await trio.sleep(0.5)
        faulty.failing.add("complete_and_claim")  # ends and claims, grouped
        await trio.sleep(5)
        assert (await jm.get_job("job")).state is JobState.RUNNING
        faulty.failing.clear()
        await trio.sleep(STORE_RETRY_MAX)
        info = await jm.get_job("job")
    assert (info.state, info.attempts) == (JobState.SUCCEEDED, 1)
    assert handlers.sleeps() == [1.0]  # stored, not run again after its lease


async def test_failed_schedule_look_never_stops_the_schedules(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    faulty = Faulty(store)
    async with manager(faulty, handlers) as jm:  # type: ignore[arg-type]  # duck-typed
        await jm.schedule("tick", "email", {"to": "tick"}, every=10)
        faulty.failing.add("list_schedules")
        await trio.sleep(25)
        faulty.failing.clear()
        await trio.sleep(10)
    times = [round(when) for kind, _, when in handlers.log if kind == "email"]
    assert times == [25, 30]  # the two missed ticks once, then the next tick


# ---------------------------------------------------------------- item 10


def _corrupt(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(sql)
    conn.close()


async def test_a_corrupted_due_row_fails_once_and_the_worker_keeps_its_pace(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    path = tmp_path / "jobs.db"
    handlers = Handlers()
    async with trunner.open_scheduler():
        store = SQLiteJobStore(path)
        async with manager(store, handlers, worker=False) as admin:
            await admin.submit_job("bad", "email", {"to": "bad"})
    _corrupt(path, "UPDATE trunner_jobs SET created_at = 'garbage' WHERE id = 'bad'")

    faulty = Faulty(SQLiteJobStore(path))
    async with manager(faulty, handlers, poll_interval=1) as jm:  # type: ignore[arg-type]  # duck-typed
        await trio.sleep(30)
        await jm.submit_job("good", "email", {"to": "good"})
        await trio.sleep(1)
        counts = await jm.counts()
        good = await jm.get_job("good")
    assert good.state is JobState.SUCCEEDED
    assert handlers.runs("email") == ["good"]
    assert counts[JobState.FAILED] == 1  # the corrupted job, failed once
    assert counts[JobState.PENDING] == 0
    # About one claim per poll_interval, not thousands.
    assert faulty.calls["complete_and_claim"] <= 40

    conn = sqlite3.connect(path)
    state, error = conn.execute(
        "SELECT state, error FROM trunner_jobs WHERE id = 'bad'"
    ).fetchone()
    conn.close()
    assert state == "failed"
    assert "corrupted" in error


async def test_a_due_job_that_is_never_handed_out_does_not_make_the_worker_spin(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    # Whatever the store (Redis, PostgreSQL, ...), a due job that claims never
    # return makes the worker wait for its next poll, not look again at once.
    class Stuck(Faulty):
        async def complete_and_claim(
            self, ends: Sequence[JobEnd], **kwargs: object
        ) -> CompleteResult:
            self.calls["claim"] = self.calls.get("claim", 0) + 1
            await trio.lowlevel.checkpoint()
            return CompleteResult((False,) * len(ends), ())

    stuck = Stuck(store)
    async with manager(stuck, Handlers(), poll_interval=1) as jm:  # type: ignore[arg-type]  # duck-typed
        await jm.submit_job("due", "email", {"to": "a"})
        await trio.sleep(10)
    assert stuck.calls["claim"] <= 15


# ---------------------------------------------------------------- item 11


@pytest.mark.parametrize("bad", ["bad-\ud800", "nul-\x00", "\udfff"])
async def test_ids_a_store_cannot_keep_are_refused_at_submit(
    store: JobStore, bad: str, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    results: dict[str, object] = {}
    async with manager(store, handlers, worker=False) as jm:

        async def submit(job_id: str) -> None:
            try:
                results[job_id] = (await jm.submit_job(job_id, "email", {"to": "x"})).id
            except ValueError as error:
                results[job_id] = error

        async with trio.open_nursery() as nursery:
            for job_id in ["a", "b", bad, "c", "d"]:
                nursery.start_soon(submit, job_id)
        error = results.pop(bad)
        stored = [info.id for info in await jm.list_jobs()]
        with pytest.raises(ValueError, match="job_id"):
            await jm.get_job(bad)
    assert isinstance(error, ValueError)
    assert "job_id" in str(error)
    assert results == {"a": "a", "b": "b", "c": "c", "d": "d"}
    assert sorted(stored) == ["a", "b", "c", "d"]


async def test_one_refused_job_fails_only_its_own_submit(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    faulty = Faulty(store)
    faulty.poison.add("poison")
    results: dict[str, object] = {}
    async with manager(faulty, Handlers(), worker=False) as jm:  # type: ignore[arg-type]  # duck-typed

        async def submit(job_id: str) -> None:
            try:
                results[job_id] = (await jm.submit_job(job_id, "email", {"to": "x"})).id
            except StoreError as error:
                results[job_id] = error

        async with trio.open_nursery() as nursery:
            for job_id in ["a", "b", "poison", "c", "d"]:
                nursery.start_soon(submit, job_id)
        stored = sorted(info.id for info in await jm.list_jobs())
    assert isinstance(results.pop("poison"), StoreError)
    assert results == {"a": "a", "b": "b", "c": "c", "d": "d"}
    assert stored == ["a", "b", "c", "d"]
    assert faulty.calls["insert"] <= 2 + 5  # a batch, then one by one


async def test_an_unreachable_store_fails_a_batch_at_once(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    faulty = Faulty(store)
    async with manager(faulty, Handlers(), worker=False) as jm:  # type: ignore[arg-type]  # duck-typed
        faulty.failing.add("insert")
        errors: list[BaseException] = []

        async def submit(job_id: str) -> None:
            try:
                await jm.submit_job(job_id, "email", {"to": "x"})
            except StoreError as error:
                errors.append(error)

        async with trio.open_nursery() as nursery:
            for index in range(20):
                nursery.start_soon(submit, f"job-{index}")
        faulty.failing.clear()
    assert len(errors) == 20
    assert faulty.calls["insert"] <= 1 + 2  # not one try per job


# ---------------------------------------------------------------- item 12


async def test_every_call_after_the_block_raises_runner_closed(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    async with manager(store, Handlers()) as jm:
        await jm.submit_job("done", "email", {"to": "x"})
        await trio.sleep(1)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "submit_job": lambda: jm.submit_job("new", "email", {"to": "x"}),
        "get_job": lambda: jm.get_job("done"),
        "list_jobs": lambda: jm.list_jobs(),
        "counts": lambda: jm.counts(),
        "cancel_job": lambda: jm.cancel_job("done"),
        "retry_job": lambda: jm.retry_job("done"),
        "purge": lambda: jm.purge(),
        "schedule": lambda: jm.schedule("s", "email", {"to": "x"}, every=5),
        "unschedule": lambda: jm.unschedule("s"),
        "list_schedules": lambda: jm.list_schedules(),
    }
    closed = trunner.RunnerClosedError
    for call in calls.values():
        with trio.fail_after(5), pytest.raises(closed, match="closed"):
            await call()


async def test_a_submit_racing_the_exit_is_stored_or_refused_never_hung(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    outcomes: list[object] = []
    with trio.fail_after(60):
        async with (
            trio.open_nursery() as nursery,
            manager(store, Handlers(), worker=False) as jm,
        ):

            async def submit(job_id: str) -> None:
                try:
                    info = await jm.submit_job(job_id, "email", {"to": job_id})
                except trunner.RunnerClosedError as error:
                    outcomes.append(error)
                else:
                    outcomes.append(info.id)

            for index in range(6):
                nursery.start_soon(submit, f"job-{index}")
                if index % 2:
                    await trio.lowlevel.checkpoint()
            # The block exits while the submits are being made.
        async with manager(store, Handlers(), worker=False) as check:
            stored = sorted(info.id for info in await check.list_jobs())
    assert len(outcomes) == 6
    made = sorted(o for o in outcomes if isinstance(o, str))
    assert made  # those that reached the manager before its exit are stored
    assert stored == made  # each acknowledged submit is stored; the rest not


# ---------------------------------------------------------------- item 14


async def test_schedule_every_infinity_is_a_value_error(store: JobStore) -> None:
    async with manager(store, Handlers(), worker=False) as jm:
        for every in (math.inf, 1e300):
            with pytest.raises(ValueError, match="every"):
                await jm.schedule("s", "email", {"to": "x"}, every=every)
        assert await jm.list_schedules() == []


async def test_a_worker_fires_only_the_schedules_its_registry_knows(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, worker=False) as admin:  # no registry: no checks
        await admin.schedule("known", "email", {"to": "known"}, every=10)
        await admin.schedule("unknown", "nobody-runs-this", {"to": "x"}, every=10)
    # A worker without a registry knows no handler: it fires no schedule.
    async with open_job_manager(store, wall_clock=_wall) as bare:
        await trio.sleep(25)
        assert await bare.list_jobs() == []
    async with manager(store, handlers) as jm:
        await trio.sleep(5)
        fired = sorted(info.handler for info in await jm.list_jobs())
    assert fired == ["email"]


# ---------------------------------------------------------------- user errors


async def test_delete_job_deletes_finished_jobs_only(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers) as jm:
        await jm.submit_job("done", "email", {"to": "x"})
        await jm.submit_job("later", "email", {"to": "y"}, delay=3600)
        await trio.sleep(1)
        await jm.delete_job("done")
        with pytest.raises(JobNotFoundError):
            await jm.get_job("done")
        with pytest.raises(JobNotFoundError, match="'done'"):
            await jm.delete_job("done")
        with pytest.raises(JobStateError, match=r"pending.*cancel it first"):
            await jm.delete_job("later")
        await jm.cancel_job("later")
        await jm.delete_job("later")
        assert await jm.list_jobs() == []


async def test_delete_job_deletes_a_corrupted_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with manager(SQLiteJobStore(path), Handlers(), worker=False) as jm:
        await jm.submit_job("bad", "email", {"to": "x"}, delay=60)
        _corrupt(path, "UPDATE trunner_jobs SET created_at = 'x' WHERE id = 'bad'")
        with pytest.raises(SerializationError):
            await jm.get_job("bad")
        await jm.delete_job("bad")
        with pytest.raises(JobNotFoundError):
            await jm.get_job("bad")


async def test_counts_name_the_jobs_of_an_unknown_state(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with manager(SQLiteJobStore(path), Handlers(), worker=False) as jm:
        for job_id in ("a", "b", "c"):
            await jm.submit_job(job_id, "email", {"to": job_id}, delay=60)
        _corrupt(path, "UPDATE trunner_jobs SET state = 'paused' WHERE id = 'b'")
        counts = await jm.counts()

    assert counts == JobCounts({JobState.PENDING: 2}, unknown=1)
    assert counts.total == 3


async def test_counts_of_a_store_that_returns_a_plain_dict(tmp_path: Path) -> None:
    # The protocol lets a store return a plain dict: the manager still
    # returns a JobCounts, with no unknown job.
    class PlainCounts(Faulty):
        async def counts(self) -> dict[JobState, int]:
            return {JobState.PENDING: 1}

    store = PlainCounts(SQLiteJobStore(tmp_path / "jobs.db"))
    async with manager(store, Handlers(), worker=False) as jm:  # type: ignore[arg-type]  # duck-typed
        counts = await jm.counts()

    assert type(counts) is JobCounts
    assert counts == {**dict.fromkeys(JobState, 0), JobState.PENDING: 1}
    assert counts.unknown == 0


async def test_purge_and_list_jobs_name_their_bad_arguments(store: JobStore) -> None:
    async with manager(store, Handlers(), worker=False) as jm:
        assert await jm.purge(states=[JobState.FAILED]) == 0  # any collection
        assert await jm.purge(states=(JobState.FAILED, JobState.CANCELLED)) == 0
        with pytest.raises(ValueError, match=r"states: only finished.*pending"):
            await jm.purge(states=[JobState.PENDING])
        with pytest.raises(TypeError, match="states must be a collection"):
            await jm.purge(states=JobState.FAILED)  # type: ignore[arg-type]  # on purpose
        with pytest.raises(TypeError, match="states must hold JobState"):
            await jm.purge(states=["failed"])  # type: ignore[list-item]  # on purpose
        with pytest.raises(TypeError, match="handler must be a non-empty str, not 5"):
            await jm.list_jobs(handler=5)  # type: ignore[arg-type]  # on purpose
        with pytest.raises(ValueError, match="offset must be >= 0"):
            await jm.list_jobs(offset=-1)


# ---------------------------------------------------------------- stores


async def test_one_store_object_serves_one_open_manager(store: JobStore) -> None:
    async with manager(store, Handlers(), worker=False):
        with pytest.raises(StoreInUseError, match="one manager at a time"):
            async with manager(store, Handlers(), worker=False):
                pass  # pragma: no cover
    async with manager(store, Handlers(), worker=False) as again:  # in turn: fine
        assert await again.list_jobs() == []


async def test_a_store_refuses_calls_once_its_manager_closed(store: JobStore) -> None:
    async with manager(store, Handlers(), worker=False) as jm:
        await jm.submit_job("a", "email", {"to": "x"})
    with pytest.raises(StoreError, match="not connected"):
        await store.get("a")
    with pytest.raises(StoreError, match="not connected"):
        await store.insert([])


# ---------------------------------------------------------------- item 13


async def test_durable_retries_past_attempt_1024_keep_their_capped_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    attempts = 1100
    policy = RetryPolicy(
        max_attempts=attempts, initial_delay=0.01, max_delay=0.01, jitter=0
    )
    handlers = Handlers()
    async with manager(MemoryJobStore(), handlers, retry=policy, lease=30) as jm:
        await jm.submit_job("stubborn", "fail", "again")
        t0 = trio.current_time()
        while (await jm.get_job("stubborn")).state is not JobState.FAILED:  # noqa: ASYNC110  # polls the store
            await trio.sleep(1)
        elapsed = trio.current_time() - t0
        info = await jm.get_job("stubborn")
    assert info.attempts == attempts
    assert "ValueError: again" in (info.error or "")
    assert elapsed < 30  # never waited for a lease to expire
    assert dt.timedelta(0) <= info.finished_at - info.created_at  # type: ignore[operator]  # finished


# ---------------------------------------------------------------- thread handlers


async def test_a_timed_out_sync_handler_is_not_run_again_while_its_thread_runs(
    autojump_clock: trio.abc.Clock,
) -> None:
    registry = Registry()
    lock = threading.Lock()
    running = 0
    most = 0
    runs = 0

    @registry.handler("slow")
    def slow(seconds: float) -> None:  # runs on a thread; it cannot be interrupted
        nonlocal running, most, runs
        with lock:
            running += 1
            runs += 1
            most = max(most, running)
        try:
            time.sleep(seconds)
        finally:
            with lock:
                running -= 1

    policy = RetryPolicy(max_attempts=3, initial_delay=0, jitter=0)
    async with open_job_manager(
        MemoryJobStore(), registry, retry=policy, timeout=0.01, wall_clock=_wall
    ) as jm:
        await jm.submit_job("slow", "slow", 0.2)
        info = await jm.get_job("slow")
        for _ in range(60):
            info = await jm.get_job("slow")
            if info.state in FINISHED_STATES:
                break
            await trio.sleep(1)
    assert info.state in FINISHED_STATES
    assert runs == info.attempts <= 3
    assert most == 1  # an attempt never starts while the thread of another runs


async def test_a_timed_out_attempt_names_the_jobs_attempt(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Issue 8: each attempt runs as a task of its own, so every timeout said
    # "attempt 1 of task ...", the third attempt included.
    registry = Registry()

    @registry.handler("stuck")
    async def stuck() -> None:
        await trio.sleep_forever()

    policy = RetryPolicy(max_attempts=3, initial_delay=1, jitter=0)
    async with open_job_manager(
        MemoryJobStore(), registry, retry=policy, timeout=5, wall_clock=_wall
    ) as jm:
        await jm.submit_job("job", "stuck", None)
        seen: list[str] = []
        info = await jm.get_job("job")
        while info.state is not JobState.FAILED:
            await trio.sleep(0.5)
            info = await jm.get_job("job")
            if info.error is not None and (not seen or seen[-1] != info.error):
                seen.append(info.error)

    assert info.attempts == 3
    lines = [text.splitlines()[-1] for text in seen]
    assert lines == [
        f"trunner.TaskTimeoutError: attempt {n} of 3 of job 'job' ran past its "
        "timeout of 5.0 s"
        for n in (1, 2, 3)
    ]


class FailingFeed:
    """A store whose change feed fails while ``failing`` is set."""

    def __init__(self, store: SQLiteJobStore) -> None:
        self.store = store
        self.failing = True
        self.opened = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    @contextlib.asynccontextmanager
    async def watch_changes(
        self, *, poll_interval: float
    ) -> AsyncGenerator[ChangeWatcher]:
        self.opened += 1
        if self.failing:
            await trio.lowlevel.checkpoint()
            # As coredis raises it: wrapped in a group by its task group.
            raise ExceptionGroup("Exceptions from Trio nursery", [StoreError("gone")])
        async with self.store.watch_changes(poll_interval=poll_interval) as watcher:
            yield watcher


async def test_a_failing_change_feed_is_logged_once_per_outage(
    tmp_path: Path, autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # It logged at every try (every 5 s at most), and a group of one error as
    # "Exceptions from Trio nursery (1 sub-exception)".
    store = FailingFeed(SQLiteJobStore(tmp_path / "jobs.db"))
    with caplog.at_level(logging.WARNING, logger="trunner.jobs"):
        async with manager(store, worker=False) as jm:  # type: ignore[arg-type]  # duck-typed
            jm.add_listener(lambda info: None)
            await trio.sleep(60)
            tries = store.opened
            store.failing = False
            await trio.sleep(60)
    warned = [r.getMessage() for r in caplog.records]
    assert tries >= 10
    assert warned == [
        "could not follow the store's changes; trying again with backoff: "
        "StoreError: gone",
        "the store answers again after "
        f"{tries} failed calls to follow the store's changes; resuming",
    ]


def test_describe_error_shows_the_one_error_of_a_group() -> None:
    inner = ConnectionError("Connection refused")
    nested = BaseExceptionGroup("outer", [ExceptionGroup("inner", [inner])])
    assert describe_error(nested) == "ConnectionError: Connection refused"
    assert describe_error(ExceptionGroup("two", [inner, inner])).startswith(
        "ExceptionGroup: two"
    )
    assert describe_error(EOFError()) == "EOFError"
