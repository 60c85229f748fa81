"""Property tests of the JobManager's invariants, each example in its own trio run."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import attrs
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trunner import RetryPolicy
from trunner.jobs import (
    JobState,
    MemoryJobStore,
    Registry,
    open_job_manager,
)

from .._spin import spin_guard
from .test_manager import twin

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

WALL0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FINISHED = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


@attrs.frozen
class Plan:
    """What one job does: how long each attempt takes and how many fail."""

    duration_ms: int
    failures: int


plans = st.lists(
    st.tuples(
        st.builds(
            Plan,
            duration_ms=st.integers(min_value=0, max_value=3000),
            failures=st.integers(min_value=0, max_value=4),
        ),
        st.integers(min_value=0, max_value=2000),  # delay, ms
        st.booleans(),  # cancelled at some point
    ),
    min_size=1,
    max_size=15,
)


def run_virtual(body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` in virtual time; a livelock fails the example, never hangs it."""

    async def guarded() -> None:
        with spin_guard():
            await body()

    trio.run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(max_examples=40)
@given(
    jobs=plans,
    workers=st.integers(min_value=1, max_value=2),
    concurrency=st.integers(min_value=1, max_value=3),
    max_attempts=st.integers(min_value=1, max_value=3),
    cancel_after_ms=st.integers(min_value=0, max_value=3000),
)
def test_every_job_ends_once_within_its_attempts_never_run_twice_at_once(
    jobs: list[tuple[Plan, int, bool]],
    workers: int,
    concurrency: int,
    max_attempts: int,
    cancel_after_ms: int,
) -> None:
    store = MemoryJobStore()
    registry = Registry()
    running: set[str] = set()
    overlaps: list[str] = []
    calls: dict[str, int] = {}
    final: dict[str, tuple[JobState, int]] = {}

    @registry.handler("work")
    async def work(args: dict[str, int]) -> int:
        job = f"job-{args['index']}"
        if job in running:
            overlaps.append(job)
        running.add(job)
        calls[job] = calls.get(job, 0) + 1
        try:
            await trio.sleep(args["duration_ms"] / 1000)
        finally:
            running.discard(job)
        if calls[job] <= args["failures"]:
            raise OSError(f"{job} failed")
        return args["index"]

    policy = RetryPolicy(max_attempts=max_attempts, initial_delay=0.5, jitter=0)

    def wall() -> dt.datetime:
        return WALL0 + dt.timedelta(seconds=trio.current_time())

    async def body() -> None:
        async with (
            open_job_manager(
                store,
                registry,
                concurrency=concurrency,
                retry=policy,
                lease=30,
                wall_clock=wall,
                name="worker-1",
            ) as first,
            open_job_manager(
                twin(store),
                registry,
                concurrency=concurrency,
                retry=policy,
                lease=30,
                wall_clock=wall,
                worker=workers == 2,
                name="worker-2",
            ),
        ):
            for index, (plan, delay_ms, _) in enumerate(jobs):
                await first.submit_job(
                    f"job-{index}",
                    "work",
                    {
                        "index": index,
                        "duration_ms": plan.duration_ms,
                        "failures": plan.failures,
                    },
                    delay=delay_ms / 1000,
                )
            await trio.sleep(cancel_after_ms / 1000)
            for index, (_, _, cancelled) in enumerate(jobs):
                if cancelled:
                    await first.cancel_job(f"job-{index}")
            # Every attempt and backoff ends within this bound, even when one
            # worker runs the jobs one at a time: per job up to 3 attempts of
            # up to 3 s, 0.5 + 1 s of backoff, up to 2 s of delay, and a poll.
            bound = trio.current_time() + len(jobs) * 13 + 2
            while trio.current_time() < bound:
                infos = await first.list_jobs(limit=100)
                if all(info.state in FINISHED for info in infos):
                    break
                await trio.sleep(1)
            for info in await first.list_jobs(limit=100):
                final[info.id] = (info.state, info.attempts)

    run_virtual(body)

    assert overlaps == []
    assert sorted(final) == sorted(f"job-{i}" for i in range(len(jobs)))
    for index, (plan, _, cancelled) in enumerate(jobs):
        job = f"job-{index}"
        state, attempts = final[job]
        assert state in FINISHED, (job, state)
        assert attempts <= max_attempts
        if cancelled:
            # Cancelled right after a claim, a job counts an attempt that
            # never reached its handler.
            assert calls.get(job, 0) <= attempts
        else:
            assert calls.get(job, 0) == attempts
            expected = (
                JobState.SUCCEEDED if plan.failures < max_attempts else JobState.FAILED
            )
            assert state is expected, (job, state, plan)
