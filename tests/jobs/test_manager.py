# pyright: reportPrivateUsage=false
# A white-box test: it reads the manager's running jobs.
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, TypedDict, cast

import attrs
import pytest
import trio

from trunner import Priority, RetryPolicy
from trunner.jobs import (
    JobExistsError,
    JobManager,
    JobNotFoundError,
    JobRecord,
    JobState,
    JobStateError,
    JobStore,
    MemoryJobStore,
    Registry,
    Retention,
    Retry,
    SerializationError,
    SQLiteJobStore,
    StoreError,
    UnknownHandlerError,
    open_job_manager,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path
    from typing import Unpack

NO_JITTER = RetryPolicy(max_attempts=3, initial_delay=1, multiplier=2, jitter=0)
WALL0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@attrs.frozen
class Email:
    to: str
    subject: str = "hello"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    if request.param == "memory":
        return MemoryJobStore()
    return SQLiteJobStore(tmp_path / "jobs.db")


class SharedMemory:
    """A second store object on the jobs of a `MemoryJobStore` (tests only).

    A store object serves one manager at a time; two managers in one process
    share a SQLite file through two store objects, and a memory store through
    this: it leaves the disconnection to the first manager's store.
    """

    def __init__(self, inner: MemoryJobStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def disconnect(self) -> None:
        await trio.lowlevel.checkpoint()


def twin(store: JobStore) -> JobStore:
    """Another store object on the same jobs, for a second manager at once."""
    if isinstance(store, SQLiteJobStore):
        return SQLiteJobStore(store.path)
    assert isinstance(store, MemoryJobStore)
    return cast("JobStore", SharedMemory(store))


class Handlers:
    """A registry whose handlers record what they did."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.log: list[tuple[str, object, float]] = []
        self.failures: dict[str, int] = {}
        registry = self.registry

        @registry.handler("email")
        async def email(args: Email) -> dict[str, str]:
            self.log.append(("email", args.to, trio.current_time()))
            return {"sent": args.to}

        @registry.handler("sleep")
        async def sleep(seconds: float) -> float:
            self.log.append(("sleep", seconds, trio.current_time()))
            await trio.sleep(seconds)
            return seconds

        @registry.handler("sync")
        def sync(n: int) -> int:  # runs on a worker thread
            self.log.append(("sync", n, trio.from_thread.run_sync(trio.current_time)))
            return n * 2

        @registry.handler("flaky")
        async def flaky(name: str) -> str:
            count = self.failures.get(name, 0)
            self.log.append(("flaky", name, trio.current_time()))
            if count > 0:
                self.failures[name] = count - 1
                raise OSError(f"{name} failed")
            return name

        @registry.handler("retry")
        async def retry(delay: float) -> str:
            self.log.append(("retry", delay, trio.current_time()))
            if len([e for e in self.log if e[0] == "retry"]) < 2:
                raise Retry("not yet", delay=delay)
            return "done"

        @registry.handler("fail")
        async def fail(message: str) -> None:
            raise ValueError(message)

    def runs(self, kind: str) -> list[object]:
        return [value for name, value, _ in self.log if name == kind]

    def sleeps(self) -> list[float]:
        """The seconds each ``sleep`` run was given, in run order."""
        seconds: list[float] = []
        for value in self.runs("sleep"):
            assert isinstance(value, int | float)
            seconds.append(value)
        return seconds


class ManagerOptions(TypedDict, total=False):
    """`open_job_manager`'s keyword options, for `manager`."""

    concurrency: int
    worker: bool
    lease: float
    grace_period: float
    retry: RetryPolicy | None
    timeout: float | None
    retention: Retention | None
    poll_interval: float
    wall_clock: Callable[[], dt.datetime]
    name: str | None


def manager(
    store: JobStore, handlers: Handlers | None = None, **options: Unpack[ManagerOptions]
) -> AbstractAsyncContextManager[JobManager]:
    # Wall time follows trio time, as a real clock would: managers opened one
    # after the other share one timeline.
    options.setdefault(
        "wall_clock", lambda: WALL0 + dt.timedelta(seconds=trio.current_time())
    )
    options.setdefault("retry", NO_JITTER)
    return open_job_manager(
        store, None if handlers is None else handlers.registry, **options
    )


# ---------------------------------------------------------------- submitting


async def test_submit_returns_the_stored_job(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, worker=False) as jm:
        await trio.sleep(5)
        info = await jm.submit_job(
            "j1", "email", Email("a@example.com"), priority=Priority.USER_BLOCKING
        )

        assert info.id == "j1"
        assert info.handler == "email"
        assert info.args == {"to": "a@example.com", "subject": "hello"}
        assert info.state is JobState.PENDING
        assert info.priority is Priority.USER_BLOCKING
        assert (info.attempts, info.max_attempts) == (0, 3)
        assert info.created_at == info.run_at == WALL0 + dt.timedelta(seconds=5)
        assert (info.started_at, info.finished_at, info.result, info.error) == (
            None,
            None,
            None,
            None,
        )
        assert await jm.get_job("j1") == info


async def test_submit_refuses_bad_input_and_stores_nothing(store: JobStore) -> None:
    handlers = Handlers()
    async with manager(store, handlers, worker=False) as jm:
        with pytest.raises(UnknownHandlerError):
            await jm.submit_job("a", "no-such-handler", {})
        with pytest.raises(SerializationError):
            await jm.submit_job("b", "email", 42)
        with pytest.raises(SerializationError):
            await jm.submit_job("c", "sleep", "not a number")
        with pytest.raises(ValueError, match="job_id"):
            await jm.submit_job("", "email", Email("x"))
        with pytest.raises(TypeError, match="job_id"):
            await jm.submit_job(7, "email", Email("x"))  # type: ignore[arg-type]  # on purpose
        with pytest.raises(ValueError, match="both"):
            await jm.submit_job("d", "email", Email("x"), delay=1, run_at=WALL0)
        with pytest.raises(ValueError, match="timezone"):
            await jm.submit_job(
                "e", "email", Email("x"), run_at=dt.datetime(2026, 1, 1)
            )  # on purpose
        with pytest.raises(ValueError, match="if_exists"):
            await jm.submit_job("f", "email", Email("x"), if_exists="replace")  # type: ignore[arg-type]  # on purpose

        assert await jm.list_jobs() == []


async def test_duplicate_id_raises_or_returns_existing(store: JobStore) -> None:
    handlers = Handlers()
    async with manager(store, handlers, worker=False) as jm:
        first = await jm.submit_job("dup", "email", Email("first"))
        with pytest.raises(JobExistsError):
            await jm.submit_job("dup", "email", Email("second"))
        again = await jm.submit_job("dup", "email", Email("second"), if_exists="ignore")

        assert again == first
        assert len(await jm.list_jobs()) == 1


async def test_without_registry_args_need_only_be_json(store: JobStore) -> None:
    async with manager(store, worker=False) as jm:
        info = await jm.submit_job("free", "anything", {"a": [1, 2.5, None, "x"]})

        assert info.args == {"a": [1, 2.5, None, "x"]}
        with pytest.raises(SerializationError):
            await jm.submit_job("bad", "anything", object())


async def test_concurrent_submits_share_commits(tmp_path: Path) -> None:
    inner = SQLiteJobStore(tmp_path / "jobs.db")
    batches: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(inner, name)

        async def insert(self, jobs: list[JobRecord]) -> list[tuple[JobRecord, bool]]:
            batches.append(len(jobs))
            return await inner.insert(jobs)

    async with open_job_manager(Counting(), worker=False) as jm:  # type: ignore[arg-type]  # a duck-typed store
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(jm.submit_job, f"job-{i}", "h", i)

        assert sum(batches) == 200
        assert len(batches) < 50
        assert len(await jm.list_jobs(limit=1000)) == 200


# ---------------------------------------------------------------- running


async def test_jobs_run_and_results_are_stored(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers) as jm:
        await jm.submit_job("e", "email", Email("a@example.com"))
        await jm.submit_job("s", "sync", 21)
        await trio.sleep(1)

        email = await jm.get_job("e")
        sync = await jm.get_job("s")
    assert email.state is JobState.SUCCEEDED
    assert email.result == {"sent": "a@example.com"}
    assert email.attempts == 1
    assert email.worker == jm.name
    assert email.started_at is not None
    assert email.finished_at is not None
    assert sync.result == 42


async def test_due_jobs_run_by_priority_then_run_at_then_submission(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, worker=False) as submitter:
        await submitter.submit_job(
            "low", "email", Email("low"), priority=Priority.BEST_EFFORT
        )
        await submitter.submit_job("normal-1", "email", Email("normal-1"))
        await submitter.submit_job(
            "late", "email", Email("late"), run_at=WALL0 - dt.timedelta(seconds=1)
        )
        await submitter.submit_job("normal-2", "email", Email("normal-2"))
        await submitter.submit_job(
            "urgent", "email", Email("urgent"), priority=Priority.USER_BLOCKING
        )
    async with manager(store, handlers, concurrency=1) as jm:
        await trio.sleep(1)
        assert await jm.counts() == {
            **dict.fromkeys(JobState, 0),
            JobState.SUCCEEDED: 5,
        }

    assert handlers.runs("email") == ["urgent", "late", "normal-1", "normal-2", "low"]


async def test_delayed_and_run_at_jobs_wait_for_their_time(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers) as jm:
        await jm.submit_job("later", "email", Email("later"), delay=30)
        await jm.submit_job(
            "at", "email", Email("at"), run_at=WALL0 + dt.timedelta(seconds=10)
        )
        await trio.sleep(60)

    assert [(to, when) for _, to, when in handlers.log] == [
        ("at", 10),
        ("later", 30),
    ]


async def test_failures_retry_with_durable_backoff(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    handlers.failures["twice"] = 2
    handlers.failures["always"] = 10
    async with manager(store, handlers) as jm:
        await jm.submit_job("twice", "flaky", "twice")
        await jm.submit_job("always", "flaky", "always")
        await trio.sleep(10)

        twice = await jm.get_job("twice")
        always = await jm.get_job("always")
    # Attempts at 0, then after 1 s, then after 2 s more.
    assert [when for _, name, when in handlers.log if name == "twice"] == [0, 1, 3]
    assert (twice.state, twice.attempts, twice.result) == (
        JobState.SUCCEEDED,
        3,
        "twice",
    )
    assert (always.state, always.attempts) == (JobState.FAILED, 3)
    assert always.error is not None
    assert "OSError: always failed" in always.error
    assert "Traceback" in always.error


async def test_retry_signal_and_per_job_policy(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    handlers.failures["once"] = 1
    async with manager(store, handlers) as jm:
        await jm.submit_job("r", "retry", 7.0)
        await jm.submit_job(
            "no-retry", "flaky", "once", retry=RetryPolicy(max_attempts=1)
        )
        await jm.submit_job("bad", "fail", "broken")
        await trio.sleep(20)

        assert (await jm.get_job("r")).state is JobState.SUCCEEDED
        assert (await jm.get_job("no-retry")).state is JobState.FAILED
        bad = await jm.get_job("bad")
    assert [when for kind, _, when in handlers.log if kind == "retry"] == [0, 7]
    assert (
        bad.attempts == 3
    )  # ValueError is an Exception: the default policy retries it


async def test_attempt_timeout_fails_the_attempt(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, retry=RetryPolicy(max_attempts=1)) as jm:
        await jm.submit_job("slow", "sleep", 100.0, timeout=5)
        await trio.sleep(10)

        slow = await jm.get_job("slow")
    assert slow.state is JobState.FAILED
    assert slow.error is not None
    assert "TaskTimeoutError" in slow.error


async def test_corrupted_payload_fails_its_job_only(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    now = WALL0
    bad = JobRecord(
        id="corrupt",
        handler="email",
        args='{"to": ',
        state=JobState.PENDING,
        priority=1,
        attempts=0,
        max_attempts=3,
        created_at=now,
        run_at=now,
    )
    async with manager(store, handlers) as jm:
        await store.insert([bad])
        await jm.submit_job("fine", "email", Email("fine"))
        await trio.sleep(2)

        corrupt = await jm.get_job("corrupt")
        fine = await jm.get_job("fine")
    assert corrupt.state is JobState.FAILED
    assert corrupt.error is not None
    assert "SerializationError" in corrupt.error
    assert fine.state is JobState.SUCCEEDED


async def test_worker_false_runs_nothing(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, worker=False) as jm:
        await jm.submit_job("idle", "email", Email("x"))
        await trio.sleep(10)

        assert (await jm.get_job("idle")).state is JobState.PENDING
    assert handlers.log == []


async def test_handler_registered_while_running(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    async with manager(store, Handlers()) as jm:

        @jm.handler("late-comer")
        async def late_comer(value: int) -> int:
            return value + 1

        await jm.submit_job("late", "late-comer", 1)
        await trio.sleep(2)

        assert (await jm.get_job("late")).result == 2


# ---------------------------------------------------------------- cancel, retry


async def test_cancel_pending_running_finished_and_unknown(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, concurrency=1) as jm:
        await jm.submit_job("running", "sleep", 100.0)
        await jm.submit_job("pending", "email", Email("never"))
        await jm.submit_job("done", "sync", 1, run_at=WALL0)
        await trio.sleep(1)

        assert (await jm.cancel_job("pending")).state is JobState.CANCELLED
        await jm.cancel_job("running")
        await trio.sleep(1)
        running = await jm.get_job("running")
        with pytest.raises(JobNotFoundError):
            await jm.cancel_job("nope")
    assert running.state is JobState.CANCELLED
    assert "never" not in handlers.runs("email")


async def test_cancel_running_job_of_another_worker(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with (
        manager(store, handlers, lease=30) as worker,
        manager(twin(store), handlers, worker=False) as admin,
    ):
        await admin.submit_job("long", "sleep", 1000.0)
        await trio.sleep(2)  # the worker finds it at its next poll (every 1 s)
        assert (await admin.get_job("long")).state is JobState.RUNNING

        await admin.cancel_job("long")
        await trio.sleep(10)  # the worker sees it at its next renewal (every 10 s)

        long = await admin.get_job("long")
        assert long.state is JobState.CANCELLED
        assert long.worker == worker.name


async def test_retry_job_puts_failed_back_and_refuses_others(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    handlers.failures["again"] = 3
    async with manager(store, handlers) as jm:
        await jm.submit_job("again", "flaky", "again")
        await jm.submit_job("ok", "sync", 1)
        await trio.sleep(10)
        assert (await jm.get_job("again")).state is JobState.FAILED

        retried = await jm.retry_job("again")
        assert (retried.state, retried.attempts) == (JobState.PENDING, 0)
        await trio.sleep(1)
        assert (await jm.get_job("again")).state is JobState.SUCCEEDED
        with pytest.raises(JobStateError):
            await jm.retry_job("ok")
        with pytest.raises(JobNotFoundError):
            await jm.retry_job("missing")


# ---------------------------------------------------------------- leases


async def test_expired_lease_makes_job_pending_and_it_runs_again(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, worker=False) as admin:
        await admin.submit_job("orphan", "email", Email("orphan"))
        await admin.submit_job(
            "doomed", "email", Email("doomed"), retry=RetryPolicy(max_attempts=1)
        )
        # A worker claims both and dies: nobody renews its leases.
        now = admin.now()
        claimed = await store.claim(
            worker="dead-worker",
            handlers=None,
            now=now,
            lease_until=now + dt.timedelta(seconds=30),
            limit=10,
        )
        assert len(claimed) == 2
    async with manager(store, handlers, lease=30) as jm:
        await trio.sleep(5)
        assert handlers.log == []  # the lease has not expired yet
        await trio.sleep(40)

        orphan = await jm.get_job("orphan")
        doomed = await jm.get_job("doomed")
    assert (orphan.state, orphan.attempts, orphan.worker) == (
        JobState.SUCCEEDED,
        2,
        jm.name,
    )
    assert doomed.state is JobState.FAILED
    assert doomed.error == "lease expired"


async def test_lost_renewal_cancels_handler_before_lease_ends(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    failing = {"on": False}

    class Unreachable:
        # The store, but renewals fail once `failing["on"]` is set.
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        async def renew(self, **kwargs: object) -> object:
            if failing["on"]:
                raise StoreError("the store is unreachable")
            return await store.renew(**kwargs)  # type: ignore[arg-type]  # passed through

    async with manager(Unreachable(), handlers, lease=30) as jm:  # type: ignore[arg-type]  # duck-typed
        await jm.submit_job("long", "sleep", 1000.0)
        await trio.sleep(1)
        failing["on"] = True
        t0 = trio.current_time()
        while (
            await jm.get_job("long")
        ).state is JobState.RUNNING and trio.current_time() - t0 < 60:
            await trio.sleep(1)
            if jm.running == 0:
                break
        stopped_after = trio.current_time() - t0
    assert stopped_after < 30  # cancelled before its lease ended


async def test_graceful_exit_hands_back_unfinished_jobs(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, grace_period=5) as jm:
        await jm.submit_job("short", "sleep", 3.0)
        await jm.submit_job("long", "sleep", 100.0)
        await trio.sleep(1)
    exit_time = trio.current_time()
    async with manager(store, handlers, worker=False) as admin:
        short = await admin.get_job("short")
        long = await admin.get_job("long")

    assert exit_time == 6
    assert short.state is JobState.SUCCEEDED
    assert (long.state, long.attempts) == (JobState.PENDING, 0)


async def test_two_workers_never_run_a_job_twice(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with (
        manager(store, handlers, concurrency=3) as a,
        manager(twin(store), handlers, concurrency=3) as b,
    ):
        for i in range(40):
            await a.submit_job(f"job-{i}", "sleep", float(i % 3 + 1))
        await trio.sleep(60)

        workers = {(await a.get_job(f"job-{i}")).worker for i in range(40)}
    assert sorted(handlers.sleeps()) == sorted(float(i % 3 + 1) for i in range(40))
    assert workers == {a.name, b.name}


# ---------------------------------------------------------------- schedules


async def test_schedule_every_runs_once_per_tick_across_workers(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers) as a, manager(twin(store), handlers) as b:
        await a.schedule("digest", "email", Email("digest"), every=10)
        await trio.sleep(35)
        await b.unschedule("digest")
        await trio.sleep(30)

    times = [when for _, to, when in handlers.log if to == "digest"]
    assert len(times) == 3
    assert [round(t) for t in times] == [10, 20, 30]


async def test_schedule_after_downtime_runs_once_for_missed_ticks(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, worker=False) as admin:
        await admin.schedule("report", "email", Email("report"), every=10)
    await trio.sleep(100)  # no worker for ten ticks
    async with manager(store, handlers) as jm:
        await trio.sleep(5)
        schedules = await jm.list_schedules()

    assert handlers.runs("email") == ["report"]
    assert schedules[0].next_run_at > jm.now() - dt.timedelta(seconds=5)


async def test_schedule_cron_and_validation(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers) as jm:
        await jm.schedule("hourly", "email", Email("hourly"), cron="0 * * * *")
        with pytest.raises(ValueError, match="exactly one"):
            await jm.schedule("both", "email", Email("x"), cron="* * * * *", every=5)
        with pytest.raises(ValueError, match="minute"):
            await jm.schedule("bad", "email", Email("x"), cron="61 * * * *")
        with pytest.raises(UnknownHandlerError):
            await jm.schedule("ghost", "ghost", None, every=5)
        await trio.sleep(2 * 3600 + 60)

    assert handlers.runs("email") == ["hourly", "hourly"]


# ---------------------------------------------------------------- retention


async def test_retention_deletes_finished_jobs_only(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, retention=Retention(ttl=60)) as jm:
        await jm.submit_job("old", "sync", 1)
        await jm.submit_job("waiting", "sync", 2, delay=1000)
        await trio.sleep(30)
        assert (await jm.get_job("old")).state is JobState.SUCCEEDED
        await trio.sleep(60)

        with pytest.raises(JobNotFoundError):
            await jm.get_job("old")
        assert (await jm.get_job("waiting")).state is JobState.PENDING


async def test_retention_keeps_the_latest_entries(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, retention=Retention(max_entries=3)) as jm:
        for i in range(6):
            await jm.submit_job(f"j{i}", "sync", i)
            await trio.sleep(1)
        await trio.sleep(15)

        kept = sorted(job.id for job in await jm.list_jobs())
    assert kept == ["j3", "j4", "j5"]


async def test_purge_by_age(store: JobStore, autojump_clock: trio.abc.Clock) -> None:
    handlers = Handlers()
    async with manager(store, handlers) as jm:
        await jm.submit_job("a", "sync", 1)
        await trio.sleep(100)
        await jm.submit_job("b", "sync", 2)
        await trio.sleep(1)

        assert await jm.purge(older_than=50) == 1
        assert [j.id for j in await jm.list_jobs()] == ["b"]
        with pytest.raises(ValueError, match="finished"):
            await jm.purge(states=frozenset({JobState.PENDING}))


# ---------------------------------------------------------------- time


async def test_manager_time_follows_trio_clock_from_wall_clock(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    async with manager(store, worker=False) as jm:
        assert jm.now() == WALL0
        await trio.sleep(90)

        assert jm.now() == WALL0 + dt.timedelta(seconds=90)


async def test_open_job_manager_validates_options(store: JobStore) -> None:
    bad: list[tuple[dict[str, object], type[Exception]]] = [
        ({"concurrency": 0}, ValueError),
        ({"lease": 0}, ValueError),
        ({"grace_period": -1}, ValueError),
        ({"retention": 5}, TypeError),
        ({"retry": 3}, TypeError),
        ({"poll_interval": 0}, ValueError),
    ]
    for options, error in bad:
        with pytest.raises(error):
            async with open_job_manager(store, **options):  # type: ignore[arg-type]  # on purpose
                pass
    with pytest.raises(TypeError, match="registry"):
        async with open_job_manager(store, registry={}):  # type: ignore[arg-type]  # on purpose
            pass


async def test_huge_delays_are_value_errors(store: JobStore) -> None:
    async with manager(store, Handlers(), worker=False) as jm:
        with pytest.raises(ValueError, match="delay"):
            await jm.submit_job("far", "email", Email("x"), delay=1e12)
        with pytest.raises(ValueError, match="older_than"):
            await jm.purge(older_than=1e12)


async def test_shutdown_hands_running_jobs_back_without_grace(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, grace_period=600) as jm:
        await jm.submit_job("long", "sleep", 1000.0)
        await trio.sleep(1)
        assert jm.running == 1

        jm.shutdown()
        jm.shutdown()
    left_at = trio.current_time()
    async with manager(store, handlers, worker=False) as admin:
        long = await admin.get_job("long")

    assert left_at < 2
    assert (long.state, long.attempts) == (JobState.PENDING, 0)


async def test_idle_worker_polls_at_its_poll_interval(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    claims = 0

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def watch(self, **kwargs: object) -> object:
            return store.watch(**kwargs)  # type: ignore[arg-type]  # passed through

        async def complete_and_claim(self, *args: object, **kwargs: object) -> object:
            nonlocal claims
            claims += 1
            return await store.complete_and_claim(*args, **kwargs)  # type: ignore[arg-type]  # passed through

    async with manager(Counting(), Handlers(), poll_interval=10) as jm:  # type: ignore[arg-type]  # duck-typed
        await trio.sleep(60)
        del jm

    assert 1 <= claims <= 8  # about one per 10 s, not one per second
