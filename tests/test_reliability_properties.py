"""Property tests of the reliability layer, each example in its own trio run."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import trio
import trio.testing
from hypothesis import example, given
from hypothesis import strategies as st

import trunner
import trunner.testing
from trunner import DropPolicy, RetryPolicy, TaskState

from .strategies import maybe_millis, millis

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def run_virtual(body: Callable[[], Awaitable[None]]) -> None:
    trio.run(body, clock=trio.testing.MockClock(autojump_threshold=0))


task_plans = st.lists(
    st.tuples(maybe_millis, st.booleans(), st.sampled_from(["run", "cancel", "fail"])),
    max_size=25,
)


@given(
    plans=task_plans,
    buffer=st.integers(min_value=1, max_value=4),
    read_delay=maybe_millis,
    parallel=st.booleans(),
    close_at=st.one_of(st.none(), millis),
)
# Three workers blocked on one full subscriber at shutdown: one of them missed
# its wake-up and the close hung (issue 8, item 0; --hypothesis-seed=12).
@example(
    plans=[
        (0.004, False, "run"),
        (0.004, False, "run"),
        (0.003, False, "run"),
        (0.0, False, "run"),
    ],
    buffer=1,
    read_delay=0.0,
    parallel=True,
    close_at=0.004,
)
def test_block_subscriber_loses_no_result(
    plans: list[tuple[float, bool, str]],
    buffer: int,
    read_delay: float,
    parallel: bool,
    close_at: float | None,
) -> None:
    posted: list[int] = []
    received: list[int] = []

    async def body() -> None:
        with trio.fail_after(3600):  # a deadlock fails at once under autojump
            await scenario()

    async def scenario() -> None:
        async with trunner.open_scheduler() as scheduler:
            if parallel:
                runner: trunner.TaskRunner = scheduler.create_parallel_runner(
                    max_concurrency=3, on_error=lambda h, e: None
                )
            else:
                runner = scheduler.create_sequenced_runner(on_error=lambda h, e: None)
            results = runner.subscribe_results(buffer=buffer, policy=DropPolicy.BLOCK)

            async def task(duration: float, fail: bool) -> None:
                await trio.sleep(duration)
                if fail:
                    raise ValueError("planned failure")

            async def reader() -> None:
                async for result in results:
                    received.append(result.task_id)
                    await trio.sleep(read_delay)

            async def closer() -> None:
                if close_at is not None:
                    await trio.sleep(close_at)
                    runner.shutdown()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                nursery.start_soon(closer)
                for duration, delayed, action in plans:
                    try:
                        if delayed:
                            handle = runner.post_delayed_task(
                                task, duration, action == "fail", delay=duration
                            )
                        else:
                            handle = runner.post_task(task, duration, action == "fail")
                    except trunner.RunnerClosedError:
                        continue
                    posted.append(handle.id)
                    if action == "cancel":
                        handle.cancel()
                    await trio.sleep(0.001)
                await trio.sleep(2)
                await runner.aclose()

    run_virtual(body)

    assert sorted(received) == sorted(posted)


@given(
    max_attempts=st.integers(min_value=1, max_value=5),
    failures=st.integers(min_value=0, max_value=8),
    timeout=st.one_of(st.none(), millis),
    duration=maybe_millis,
    retry_on_timeouts=st.booleans(),
)
def test_retries_never_exceed_max_attempts(
    max_attempts: int,
    failures: int,
    timeout: float | None,
    duration: float,
    retry_on_timeouts: bool,
) -> None:
    calls = 0
    policy = RetryPolicy(
        max_attempts=max_attempts,
        initial_delay=0.01,
        jitter=0.5,
        retry_on=(OSError,) if retry_on_timeouts else (ValueError,),
    )
    outcome: list[trunner.TaskHandle[None]] = []

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        await trio.sleep(duration)
        if calls <= failures:
            raise ValueError("planned failure")

    async def body() -> None:
        async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:
            handle = runner.post_task(attempt, retry=policy, timeout=timeout)
            outcome.append(handle)
            await runner.wait_idle()

    run_virtual(body)

    handle = outcome[0]
    assert 1 <= handle.attempts <= max_attempts
    assert calls == handle.attempts
    assert runner_metrics_consistent(handle)


def runner_metrics_consistent(handle: trunner.TaskHandle[None]) -> bool:
    metrics = handle.runner.metrics()
    return metrics.retries == handle.attempts - 1


@given(
    durations=st.lists(maybe_millis, max_size=20),
    delays=st.lists(millis, max_size=10),
    repeats=st.lists(millis, max_size=4),
    cancel_at=maybe_millis,
    parallel=st.booleans(),
)
def test_cancel_all_leaves_nothing_running(
    durations: list[float],
    delays: list[float],
    repeats: list[float],
    cancel_at: float,
    parallel: bool,
) -> None:
    starts_after_cancel: list[float] = []
    cancelled_at: list[float] = []

    async def body() -> None:
        async with trunner.open_scheduler() as scheduler:
            if parallel:
                runner: trunner.TaskRunner = scheduler.create_parallel_runner(
                    max_concurrency=4
                )
            else:
                runner = scheduler.create_sequenced_runner()

            async def task(duration: float) -> None:
                if cancelled_at:
                    starts_after_cancel.append(trio.current_time())
                await trio.sleep(duration)

            handles = [runner.post_task(task, d) for d in durations]
            handles += [runner.post_delayed_task(task, 0.001, delay=d) for d in delays]
            repeating = [
                runner.post_repeating_task(functools.partial(task, 0.001), interval=i)
                for i in repeats
            ]
            await trio.sleep(cancel_at)
            cancelled_at.append(trio.current_time())
            runner.cancel_all()
            await trunner.testing.run_until_idle(runner)
            stats = runner.statistics()

            assert (stats.pending, stats.running, stats.delayed) == (0, 0, 0)
            assert all(handle.done for handle in handles)
            assert all(r.stopped for r in repeating)
            assert all(
                handle.state in (TaskState.CANCELLED, TaskState.SUCCEEDED)
                for handle in handles
            )
            await trio.sleep(5)  # nothing of before the cancel comes back later

    run_virtual(body)

    assert starts_after_cancel == []
