"""The manager's worker: grouped completions, claims by capacity, prefetch, wake-ups."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from trunner.jobs import (
    CompleteResult,
    JobEnd,
    JobState,
    JobStore,
    MemoryJobStore,
    SQLiteJobStore,
)
from trunner.jobs._worker import PREFETCH_HOLD

from .._spin import spin_guard
from .test_manager import Handlers, manager, twin

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from trunner.jobs import WorkWatcher


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    if request.param == "memory":
        return MemoryJobStore()
    return SQLiteJobStore(tmp_path / "jobs.db")


class Rounds:
    """A store that records each `complete_and_claim` call (its ends, its limit).

    With ``gate`` set, each call waits for the gate before it reaches the store.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.rounds: list[tuple[list[JobEnd], int]] = []
        self.gate: trio.Event | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def watch(
        self, *, handlers: Collection[str] | None
    ) -> AbstractAsyncContextManager[WorkWatcher]:
        return self.store.watch(handlers=handlers)

    async def complete_and_claim(
        self, ends: Sequence[JobEnd], *, limit: int, **kwargs: object
    ) -> CompleteResult:
        self.rounds.append((list(ends), limit))
        if self.gate is not None:
            await self.gate.wait()
        return await self.store.complete_and_claim(ends, limit=limit, **kwargs)  # type: ignore[arg-type]  # passed through

    def ended(self) -> list[int]:
        """How many ends each round committed, for the rounds that had some."""
        return [len(ends) for ends, _ in self.rounds if ends]


async def test_ends_ready_together_are_committed_in_one_round(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    rounds = Rounds(store)
    async with manager(rounds, Handlers(), concurrency=10, worker=False) as admin:  # type: ignore[arg-type]  # duck-typed
        for n in range(10):
            await admin.submit_job(f"j{n}", "sleep", 1.0)
    async with manager(rounds, Handlers(), concurrency=10) as jm:  # type: ignore[arg-type]  # duck-typed
        while any(i.state is not JobState.SUCCEEDED for i in await jm.list_jobs()):  # noqa: ASYNC110  # polls the store
            await trio.sleep(0.1)
    # Ten jobs claimed in one round, ended at the same instant: one commit.
    assert rounds.ended() == [10]


async def test_claims_are_sized_by_free_slots_plus_a_bounded_prefetch(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    rounds = Rounds(store)
    async with manager(rounds, Handlers(), worker=False) as admin:  # type: ignore[arg-type]  # duck-typed
        for n in range(20):
            await admin.submit_job(f"j{n}", "sleep", 0.5)
    async with manager(rounds, Handlers(), concurrency=3) as jm:  # type: ignore[arg-type]  # duck-typed
        await trio.sleep(0.25)
        running = await jm.list_jobs(JobState.RUNNING)
    first_limit = rounds.rounds[0][1]
    assert first_limit == 6  # three free slots and three prefetched
    assert len(running) == 6  # never more held than that, while all run


async def test_a_prefetched_job_not_started_in_time_is_handed_back(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, concurrency=1, name="busy") as busy:
        await busy.submit_job("long", "sleep", 30.0)
        await busy.submit_job("next", "sleep", 0.0)
        await trio.sleep(PREFETCH_HOLD / 2)
        assert (await busy.get_job("next")).state is JobState.RUNNING  # prefetched
        await trio.sleep(PREFETCH_HOLD)
        handed_back = await busy.get_job("next")
        # Another worker runs it while the first is still busy with "long".
        async with manager(twin(store), handlers, name="free") as free:
            while (await free.get_job("next")).state is not JobState.SUCCEEDED:  # noqa: ASYNC110  # polls the store
                await trio.sleep(0.1)
        long = await busy.get_job("long")
    assert (handed_back.state, handed_back.attempts) == (JobState.PENDING, 0)
    assert long.state is JobState.RUNNING
    assert handlers.runs("sleep") == [30.0, 0.0]


@pytest.mark.parametrize("claimed_at", [0.001, 0.003, 0.2])
async def test_the_prefetch_hold_never_makes_the_worker_spin(
    store: JobStore, autojump_clock: trio.abc.Clock, claimed_at: float
) -> None:
    # claimed_at + PREFETCH_HOLD - PREFETCH_HOLD < claimed_at in floating point
    # for 0.001 and 0.003: the hand-back must compare as the wait's deadline did.
    handlers = Handlers()
    with spin_guard():
        async with manager(store, handlers, concurrency=1) as jm:
            await trio.sleep_until(claimed_at)
            await jm.submit_job("long", "sleep", 5.0)
            await jm.submit_job("next", "sleep", 0.0)
            await trio.sleep(PREFETCH_HOLD + 0.5)
            assert (await jm.get_job("next")).state is JobState.PENDING
            await trio.sleep(10)
            assert (await jm.get_job("next")).state is JobState.SUCCEEDED


async def test_a_submit_wakes_an_idle_worker_at_once(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with manager(store, handlers, poll_interval=60) as jm:
        await trio.sleep(5)  # idle, waiting for work
        submitted = trio.current_time()
        await jm.submit_job("now", "email", {"to": "a"})
        while not handlers.runs("email"):  # noqa: ASYNC110  # polls a log
            await trio.sleep(0.001)
        started = handlers.log[0][2]
    assert started == submitted  # no poll waited for, not even a virtual millisecond


async def test_a_submit_by_another_manager_on_the_store_wakes_the_worker(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    async with (
        manager(store, handlers, poll_interval=60) as _worker,
        manager(twin(store), handlers, worker=False) as client,
    ):
        await trio.sleep(5)
        submitted = trio.current_time()
        await client.submit_job("now", "email", {"to": "a"})
        while not handlers.runs("email"):  # noqa: ASYNC110  # polls a log
            await trio.sleep(0.001)
        started = handlers.log[0][2]
    assert started == submitted


async def test_a_job_is_succeeded_only_once_its_end_is_committed(
    store: JobStore, autojump_clock: trio.abc.Clock
) -> None:
    handlers = Handlers()
    rounds = Rounds(store)
    async with (
        manager(rounds, handlers) as jm,  # type: ignore[arg-type]  # duck-typed
        manager(twin(store), None, worker=False) as reader,
    ):
        await jm.submit_job("j", "sleep", 1.0)
        while not handlers.runs("sleep"):  # noqa: ASYNC110  # polls a log
            await trio.sleep(0.01)
        rounds.gate = trio.Event()  # the round that would store the end waits
        await trio.sleep(5)  # the handler ended at 1 s
        during = await reader.get_job("j")
        rounds.gate.set()
        rounds.gate = None
        while (await reader.get_job("j")).state is JobState.RUNNING:  # noqa: ASYNC110  # polls the store
            await trio.sleep(0.01)
        after = await reader.get_job("j")
    assert during.state is JobState.RUNNING
    assert (after.state, after.result) == (JobState.SUCCEEDED, 1.0)
    assert handlers.runs("sleep") == [1.0]


async def test_an_end_never_committed_runs_the_job_again_after_its_lease(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    # A crash between the handler's end and the commit: the end is lost, the
    # job is still RUNNING, its lease expires and it runs again (at least once).
    path = tmp_path / "jobs.db"
    handlers = Handlers()
    rounds = Rounds(SQLiteJobStore(path))
    with trio.CancelScope() as crash:
        async with manager(rounds, handlers, lease=30) as jm:  # type: ignore[arg-type]  # duck-typed
            await jm.submit_job("j", "sleep", 1.0)
            while not handlers.runs("sleep"):  # noqa: ASYNC110  # polls a log
                await trio.sleep(0.01)
            rounds.gate = trio.Event()  # never set: the commit never happens
            await trio.sleep(5)  # the handler ended at 1 s
            crash.cancel()  # the process dies (its lease is no longer renewed)
    async with manager(SQLiteJobStore(path), handlers, lease=30) as again:
        await trio.sleep(60)
        info = await again.get_job("j")
    assert handlers.runs("sleep") == [1.0, 1.0]
    assert (info.state, info.attempts) == (JobState.SUCCEEDED, 2)


async def test_block_exits_once_the_last_end_is_committed(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A job ending during the drain wakes the drain and the worker at once, in
    # an order Trio picks at random. When the drain ran first, the worker
    # committed that last end and then rested with no timeout, and the block
    # waited the 30 s flush timeout (`trunner serve` stopped 30 s late). Many
    # rounds, so both orders are met.
    for _ in range(20):
        store = MemoryJobStore()
        async with manager(store, Handlers(), grace_period=5.0) as jm:
            await jm.submit_job("slow", "sleep", 0.5)
            while (await jm.get_job("slow")).state is not JobState.RUNNING:  # noqa: ASYNC110  # polls the store
                await trio.sleep(0.01)
            leaving = trio.current_time()
        assert trio.current_time() - leaving < 1.0
        async with manager(store, worker=False) as admin:
            assert (await admin.get_job("slow")).state is JobState.SUCCEEDED
