# pyright: reportPrivateUsage=false
# A white-box test: it reads the rate limiter's buckets.
from __future__ import annotations

import functools
import logging
import threading
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trunner
from trunner import DropPolicy, RateLimit, RetryPolicy, TaskHooks, TaskState

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

EXACT = RetryPolicy(
    max_attempts=4, initial_delay=1, multiplier=2, max_delay=3, jitter=0
)


def flaky(
    failures: int, error: type[Exception] = OSError
) -> Callable[[], Awaitable[str]]:
    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise error(f"failure {calls}")
        return f"ok after {calls}"

    return fn


async def test_retry_backoff_schedule_is_exact_without_jitter(
    autojump_clock: trio.abc.Clock,
) -> None:
    attempts: list[float] = []

    async def fn() -> str:
        attempts.append(trio.current_time())
        if len(attempts) < 4:
            raise OSError("again")
        return "done"

    async with trunner.open_sequenced_runner() as runner:
        handle = runner.post_task(fn, retry=EXACT)

        assert await handle.wait() == "done"

    # Waits: 1, then 2, then min(3, 4) = 3.
    assert attempts == [0, 1, 3, 6]
    assert handle.attempts == 4
    assert runner.metrics().retries == 3


async def test_retry_gives_up_after_max_attempts_with_last_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:
        handle = runner.post_task(flaky(10), retry=EXACT)

        with pytest.raises(OSError, match="failure 4"):
            await handle.wait()

    assert handle.attempts == 4
    assert handle.state is TaskState.FAILED


async def test_retry_only_for_retry_on_exceptions(
    autojump_clock: trio.abc.Clock,
) -> None:
    policy = RetryPolicy(retry_on=(OSError,), jitter=0)
    async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:
        handle = runner.post_task(flaky(1, KeyError), retry=policy)

        with pytest.raises(KeyError):
            await handle.wait()

    assert handle.attempts == 1


async def test_runner_default_retry_and_per_task_override(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner(
        retry=EXACT, on_error=lambda h, e: None
    ) as runner:
        default = runner.post_task(flaky(2))
        override = runner.post_task(flaky(2), retry=RetryPolicy(max_attempts=1))
        await runner.wait_idle()

    assert default.state is TaskState.SUCCEEDED
    assert override.state is TaskState.FAILED


async def test_sequence_is_held_during_backoff(autojump_clock: trio.abc.Clock) -> None:
    order: list[str] = []

    async def first() -> None:
        order.append("first-attempt")
        if order.count("first-attempt") < 3:
            raise OSError

    async with trunner.open_sequenced_runner() as runner:
        runner.post_task(first, retry=EXACT)
        runner.post_task(order.append, "second")
        await runner.wait_idle()

    assert order == ["first-attempt"] * 3 + ["second"]


async def test_jitter_spreads_delays_within_bounds() -> None:
    policy = RetryPolicy(initial_delay=1, multiplier=1, jitter=0.5)
    delays = [policy.backoff(1) for _ in range(200)]

    assert all(0.5 <= d <= 1.5 for d in delays)
    assert max(delays) - min(delays) > 0.5


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"max_attempts": 0}, ValueError, "max_attempts"),
        ({"max_attempts": 1.5}, TypeError, "max_attempts"),
        ({"initial_delay": -1}, ValueError, "initial_delay"),
        ({"max_delay": -0.1}, ValueError, "max_delay"),
        ({"multiplier": 0.5}, ValueError, "multiplier"),
        ({"jitter": 1.5}, ValueError, "jitter"),
        ({"jitter": -0.1}, ValueError, "jitter"),
        ({"retry_on": "OSError"}, TypeError, "retry_on"),
    ],
)
def test_retry_policy_validation(
    kwargs: dict[str, object], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]  # on purpose


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()

    assert (policy.max_attempts, policy.initial_delay, policy.multiplier) == (
        3,
        0.1,
        2.0,
    )
    assert (policy.max_delay, policy.jitter, policy.retry_on) == (
        30.0,
        0.1,
        (Exception,),
    )
    assert RetryPolicy(retry_on=KeyError).retry_on == (KeyError,)


async def test_timeout_fails_attempt_with_task_timeout_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:
        handle = runner.post_task(trio.sleep, 10, timeout=2)
        after = runner.post_task(trio.current_time)

        with pytest.raises(trunner.TaskTimeoutError) as info:
            await handle.wait()
        assert isinstance(info.value, TimeoutError)
        assert await after.wait() == 2

    assert runner.metrics().timeouts == 1


async def test_timeout_retries_when_policy_covers_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    durations = iter([10, 10, 0.5])
    async with trunner.open_sequenced_runner() as runner:

        async def attempt() -> None:
            await trio.sleep(next(durations))

        handle = runner.post_task(attempt, timeout=1, retry=EXACT)
        await handle.wait()

    # Two timed-out attempts (1 s each) with waits of 1 and 2, then 0.5.
    assert trio.current_time() == 1 + 1 + 1 + 2 + 0.5
    assert runner.metrics().timeouts == 2


async def test_timeout_on_thread_runner_fails_at_deadline_and_waits_for_thread() -> (
    None
):
    import threading

    release = threading.Event()
    async with trunner.open_thread_runner(on_error=lambda h, e: None) as runner:
        slow = runner.post_task(lambda: release.wait(10) and "late", timeout=0.05)
        nxt = runner.post_task(lambda: "next")
        with pytest.raises(trunner.TaskTimeoutError):
            await slow.wait()

        assert not nxt.done
        release.set()
        assert await nxt.wait() == "next"


async def test_cancel_by_id_pending_running_unknown(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner() as runner:
        running = runner.post_task(trio.sleep, 10)
        pending = runner.post_task(trio.sleep, 10)
        await trio.testing.wait_all_tasks_blocked()

        assert runner.cancel(pending.id) is True
        assert runner.cancel(running.id) is True
        assert runner.cancel(12345678) is False
        await runner.wait_idle()
        assert runner.cancel(running.id) is False

    assert running.state is pending.state is TaskState.CANCELLED


async def test_cancel_during_retry_backoff_stops_retrying(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:
        handle = runner.post_task(flaky(10), retry=EXACT)
        await trio.sleep(0.5)
        handle.cancel()
        await runner.wait_idle()

    assert handle.state is TaskState.CANCELLED
    assert handle.attempts == 1


async def test_hooks_fire_once_each_in_order() -> None:
    events: list[tuple[str, str]] = []
    hooks = TaskHooks(
        on_queued=lambda t: events.append(("queued", t.name)),
        on_start=lambda t: events.append(("start", t.name)),
        on_finish=lambda t, r: events.append(("finish", r.state.value)),
    )
    async with trunner.open_sequenced_runner(hooks=hooks) as runner:
        await runner.post_task(
            flaky(1), name="job", retry=EXACT.__class__(jitter=0, initial_delay=0)
        ).wait()

    assert events == [("queued", "job"), ("start", "job"), ("finish", "succeeded")]


async def test_scheduler_and_runner_hooks_both_fire() -> None:
    seen: list[str] = []
    scheduler_hooks = TaskHooks(on_start=lambda t: seen.append("scheduler"))
    runner_hooks = TaskHooks(on_start=lambda t: seen.append("runner"))
    async with trunner.open_scheduler(hooks=scheduler_hooks) as scheduler:
        runner = scheduler.create_parallel_runner(max_concurrency=2, hooks=runner_hooks)
        await runner.run(trio.sleep, 0)

    assert seen == ["scheduler", "runner"]


async def test_hook_that_raises_is_logged_and_result_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad(*args: object) -> None:
        raise RuntimeError("hook broke")

    hooks = TaskHooks(on_queued=bad, on_start=bad, on_finish=bad)
    async with trunner.open_sequenced_runner(hooks=hooks) as runner:
        assert await runner.run(lambda: 42) == 42

    assert (
        sum("hook" in r.message for r in caplog.records if r.name == "trunner.hooks")
        == 3
    )


async def test_hooks_validate_callables() -> None:
    with pytest.raises(TypeError, match="on_start"):
        TaskHooks(on_start=3)  # type: ignore[arg-type]  # on purpose


async def test_on_finish_sees_skipped_and_cancelled_tasks() -> None:
    finished: list[TaskState] = []
    hooks = TaskHooks(on_finish=lambda t, r: finished.append(r.state))
    gate = trio.Event()
    async with trunner.open_sequenced_runner(hooks=hooks) as runner:
        runner.post_task(gate.wait)
        runner.post_task(trio.sleep, 0).cancel()
        runner.post_task(trio.sleep, 0)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
        await trio.testing.wait_all_tasks_blocked()

    assert sorted(s.value for s in finished) == ["cancelled", "succeeded", "succeeded"]


async def test_middleware_order_and_result_modification() -> None:
    trail: list[str] = []

    def tagging(tag: str) -> trunner.Middleware:
        async def mw(
            task: trunner.TaskHandle[object], call_next: Callable[[], Awaitable[object]]
        ) -> object:
            trail.append(f"{tag}>")
            result = await call_next()
            trail.append(f"<{tag}")
            return f"{tag}({result})"

        return mw

    async with trunner.open_sequenced_runner(
        middleware=[tagging("outer"), tagging("inner")]
    ) as runner:
        result = await runner.run(lambda: "x")

    assert result == "outer(inner(x))"
    assert trail == ["outer>", "inner>", "<inner", "<outer"]


async def test_middleware_can_short_circuit_and_retry() -> None:
    calls = 0

    def fn() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError
        return "second try"

    async def retry_once(
        task: trunner.TaskHandle[object], call_next: Callable[[], Awaitable[object]]
    ) -> object:
        try:
            return await call_next()
        except ConnectionError:
            return await call_next()

    async def cached(
        task: trunner.TaskHandle[object], call_next: Callable[[], Awaitable[object]]
    ) -> object:
        return "cached" if task.name == "cached" else await call_next()

    async with trunner.open_sequenced_runner(middleware=[cached, retry_once]) as runner:
        assert await runner.run(fn) == "second try"
        assert await runner.post_task(fn, name="cached").wait() == "cached"

    assert calls == 2


async def test_middleware_runs_inside_timeout_scope(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def slow_mw(
        task: trunner.TaskHandle[object], call_next: Callable[[], Awaitable[object]]
    ) -> object:
        await trio.sleep(5)
        return await call_next()

    async with trunner.open_sequenced_runner(
        middleware=[slow_mw], timeout=1, on_error=lambda h, e: None
    ) as runner:
        with pytest.raises(trunner.TaskTimeoutError):
            await runner.run(lambda: None)


async def test_rate_limit_exact_burst_semantics(autojump_clock: trio.abc.Clock) -> None:
    starts: list[float] = []
    async with trunner.open_parallel_runner(
        max_concurrency=10, rate_limit=RateLimit(per_second=4, burst=3)
    ) as runner:
        for _ in range(11):
            runner.post_task(lambda: starts.append(trio.current_time()))
        await runner.wait_idle()

    # (N - burst) / rate = (11 - 3) / 4 = 2 s for the lot.
    assert starts == [0, 0, 0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


async def test_rate_limit_refills_after_a_quiet_spell(
    autojump_clock: trio.abc.Clock,
) -> None:
    starts: list[float] = []
    async with trunner.open_sequenced_runner(
        rate_limit=RateLimit(per_second=1, burst=2)
    ) as runner:
        for _ in range(3):
            runner.post_task(lambda: starts.append(trio.current_time()))
        await runner.wait_idle()
        await trio.sleep(10)
        for _ in range(3):
            runner.post_task(lambda: starts.append(trio.current_time()))
        await runner.wait_idle()

    assert starts == [0, 0, 1, 11, 11, 12]


async def test_rate_limit_validation() -> None:
    with pytest.raises(ValueError, match="per_second"):
        RateLimit(per_second=0)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(per_second=1, burst=0)
    with pytest.raises(TypeError, match="burst"):
        RateLimit(per_second=1, burst=1.5)  # type: ignore[arg-type]  # on purpose


async def test_rate_limited_task_waiting_holds_no_worker_slot(
    autojump_clock: trio.abc.Clock,
) -> None:
    other_ran: list[float] = []
    async with trunner.open_scheduler(max_workers=1) as scheduler:
        limited = scheduler.create_sequenced_runner(
            rate_limit=RateLimit(per_second=0.1)
        )
        other = scheduler.create_sequenced_runner()
        limited.post_task(trio.sleep, 0)
        limited.post_task(trio.sleep, 0)  # waits 10 s for a token
        await trio.sleep(1)
        other.post_task(lambda: other_ran.append(trio.current_time()))
        await other.wait_idle()

    assert other_ran == [1]


async def test_subscription_delivers_every_result_with_timings(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with (
        trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner,
        runner.subscribe_results(buffer=10) as results,
    ):
        ok = runner.post_task(trio.sleep, 1, name="ok")
        bad = runner.post_task(flaky(5), name="bad")
        await runner.wait_idle()
        received = [await results.__anext__(), await results.__anext__()]

    first, second = received
    assert (first.task_id, first.name, first.state, first.value) == (
        ok.id,
        "ok",
        TaskState.SUCCEEDED,
        None,
    )
    assert (first.queued_at, first.started_at, first.finished_at, first.attempts) == (
        0,
        0,
        1,
        1,
    )
    assert second.task_id == bad.id
    assert isinstance(second.error, OSError)
    assert second.state is TaskState.FAILED


async def test_subscription_drop_newest_and_drop_oldest_count_drops() -> None:
    async with trunner.open_sequenced_runner() as runner:
        newest = runner.subscribe_results(buffer=2, policy=DropPolicy.DROP_NEWEST)
        oldest = runner.subscribe_results(buffer=2, policy=DropPolicy.DROP_OLDEST)
        handles = [runner.post_task(trio.sleep, 0) for _ in range(5)]
        await runner.wait_idle()
        kept_newest = [(await newest.__anext__()).task_id for _ in range(2)]
        kept_oldest = [(await oldest.__anext__()).task_id for _ in range(2)]
        newest.close()
        oldest.close()

        assert runner.metrics().dropped_results == 6
    assert kept_newest == [handles[0].id, handles[1].id]
    assert kept_oldest == [handles[3].id, handles[4].id]
    assert newest.dropped == oldest.dropped == 3


async def test_subscription_block_applies_backpressure_and_loses_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    received: list[int] = []
    async with trunner.open_sequenced_runner() as runner:
        results = runner.subscribe_results(buffer=1, policy=DropPolicy.BLOCK)
        handles = [runner.post_task(trio.sleep, 0) for _ in range(6)]
        await trio.testing.wait_all_tasks_blocked()

        # The buffer is full and the runner waits for the subscriber.
        assert runner.statistics().succeeded == 2
        async for result in results:
            received.append(result.task_id)
            await trio.sleep(1)
            if len(received) == 6:
                break

    assert received == [h.id for h in handles]
    assert runner.metrics().dropped_results == 0


async def test_closed_subscription_stops_receiving() -> None:
    async with trunner.open_sequenced_runner() as runner:
        async with runner.subscribe_results() as results:
            pass
        runner.post_task(trio.sleep, 0)
        await runner.wait_idle()

        assert [r async for r in results] == []
        with pytest.raises(ValueError, match="buffer"):
            runner.subscribe_results(buffer=0)
        with pytest.raises(TypeError, match="policy"):
            runner.subscribe_results(policy="drop")  # type: ignore[arg-type]  # on purpose


async def test_run_all_returns_values_in_input_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def value(v: int, delay: float) -> int:
        await trio.sleep(delay)
        return v

    async with trunner.open_parallel_runner(max_concurrency=3) as runner:
        values = await trunner.run_all(
            runner, [lambda: value(1, 3), lambda: value(2, 1), lambda: value(3, 2)]
        )

    assert values == [1, 2, 3]
    assert trio.current_time() == 3


async def test_run_all_first_failure_cancels_rest_and_is_raised_unwrapped(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def fail_after(delay: float) -> None:
        await trio.sleep(delay)
        raise ValueError(f"failed at {delay}")

    async with trunner.open_parallel_runner(
        max_concurrency=3, on_error=lambda h, e: None
    ) as runner:
        with pytest.raises(ValueError, match="failed at 1"):
            await trunner.run_all(
                runner,
                [
                    functools.partial(trio.sleep, 100),
                    functools.partial(fail_after, 1),
                    functools.partial(fail_after, 2),
                ],
            )

        assert trio.current_time() == 1
        assert runner.statistics().cancelled == 2


async def test_run_all_cancelled_caller_cancels_tasks(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_parallel_runner(max_concurrency=3) as runner:
        with trio.move_on_after(1):
            await trunner.run_all(runner, [functools.partial(trio.sleep, 100)] * 3)
        await runner.wait_idle()

        assert runner.statistics().cancelled == 3
        assert await trunner.run_all(runner, []) == []


async def test_post_tasks_is_all_or_nothing() -> None:
    gate = trio.Event()
    async with trunner.open_sequenced_runner(max_pending=3) as runner:
        runner.post_task(gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trunner.QueueFullError):
            runner.post_tasks([gate.wait] * 4)
        with pytest.raises(TypeError):
            runner.post_tasks([gate.wait, 3])  # type: ignore[arg-type]  # on purpose

        assert runner.statistics().pending == 0
        assert len(runner.post_tasks([gate.wait] * 3)) == 3
        gate.set()


async def test_metrics_summaries_and_rates(autojump_clock: trio.abc.Clock) -> None:
    async with trunner.open_sequenced_runner() as runner:
        for duration in [1, 2, 3, 4]:
            runner.post_task(trio.sleep, duration)
        await runner.wait_idle()
        metrics = runner.metrics()

    assert metrics.run_time.count == 4
    assert metrics.run_time.mean == 2.5
    assert (metrics.run_time.min, metrics.run_time.max) == (1, 4)
    assert metrics.run_time.p50 == pytest.approx(2, rel=0.03)
    assert metrics.run_time.p99 == pytest.approx(4, rel=0.03)
    assert metrics.wait_time.max == 6  # the fourth waited 1 + 2 + 3
    assert metrics.arrival_rate == pytest.approx(4 / 10)
    assert metrics.completion_rate == pytest.approx(4 / 10)
    assert metrics.succeeded == 4


def test_empty_summary_is_zeros() -> None:
    assert trunner.Summary() == trunner.Summary(
        count=0, mean=0, min=0, max=0, p50=0, p95=0, p99=0
    )


def test_duration_recorder_is_bounded_and_accurate() -> None:
    from trunner._metrics import DurationRecorder

    recorder = DurationRecorder()
    for i in range(1, 100_001):
        recorder.samples.append(i / 1000)
        recorder.maybe_fold()
    summary = recorder.summary()

    assert len(recorder.samples) == 0
    assert len(recorder._buckets) < 1000
    assert summary.count == 100_000
    assert summary.mean == pytest.approx(50.0005)
    assert summary.p50 == pytest.approx(50, rel=0.025)
    assert summary.p95 == pytest.approx(95, rel=0.025)
    assert summary.p99 == pytest.approx(99, rel=0.025)


async def test_logging_goes_through_trunner_loggers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom() -> None:
        raise RuntimeError("logged")

    with caplog.at_level(logging.ERROR):
        async with trunner.open_sequenced_runner() as runner:
            runner.post_task(boom)
            await runner.wait_idle()

    assert [r.name for r in caplog.records] == ["trunner.runner"]


class _BlockingCall:
    """A sync function for a worker thread that blocks until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.running = 0
        self.most_running = 0

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.started.set()
        self.release.wait(10)  # real seconds: a bound, never reached
        with self.lock:
            self.running -= 1
        return "done"

    async def wait_started(self) -> None:
        assert await trio.to_thread.run_sync(self.started.wait, 10)
        self.started.clear()


@pytest.mark.parametrize("kind", ["sequenced", "parallel", "thread"])
async def test_timed_out_thread_call_is_retried_only_once_it_has_ended(
    mock_clock: trio.testing.MockClock, kind: str
) -> None:
    # Issue 8, item 2: the retry started while the timed-out call still ran.
    call = _BlockingCall()
    policy = RetryPolicy(max_attempts=3, initial_delay=0, jitter=0)
    traits = trunner.TaskTraits(may_block=True)
    async with trunner.open_scheduler() as scheduler:
        if kind == "sequenced":
            runner: trunner.TaskRunner = scheduler.create_sequenced_runner()
        elif kind == "parallel":
            runner = scheduler.create_parallel_runner(max_concurrency=4)
        else:
            runner = scheduler.create_thread_runner()
        handle = runner.post_task(call, traits=traits, timeout=1, retry=policy)
        await call.wait_started()

        mock_clock.jump(1)
        await trio.testing.wait_all_tasks_blocked()
        attempts_while_running = handle.attempts
        call.release.set()
        result = await handle.wait()

    assert attempts_while_running == 1
    assert result == "done"
    assert call.calls == 2
    assert call.most_running == 1


@pytest.mark.parametrize("kind", ["sequenced", "parallel"])
async def test_timed_out_thread_call_keeps_its_worker_slot_until_it_ends(
    mock_clock: trio.testing.MockClock, kind: str
) -> None:
    call = _BlockingCall()
    traits = trunner.TaskTraits(may_block=True)
    async with trunner.open_scheduler(max_workers=1) as scheduler:
        if kind == "sequenced":
            runner: trunner.TaskRunner = scheduler.create_sequenced_runner()
        else:
            runner = scheduler.create_parallel_runner(max_concurrency=2)
        timed_out = runner.post_task(call, traits=traits, timeout=1)
        await call.wait_started()
        other = scheduler.create_sequenced_runner().post_task(trio.sleep, 0)

        mock_clock.jump(1)
        await trio.testing.wait_all_tasks_blocked()
        other_state_while_running = other.state
        call.release.set()
        await other.wait()

    assert timed_out.state is TaskState.FAILED
    assert other_state_while_running is TaskState.PENDING


@pytest.mark.parametrize("attempt", [1, 2, 10, 1024, 1025, 5000, 10**9])
def test_retry_backoff_is_capped_by_max_delay_at_every_attempt(attempt: int) -> None:
    # Issue 8, item 8: multiplier ** (attempt - 1) overflowed at attempt 1025.
    policy = RetryPolicy(max_attempts=5000, max_delay=0.01, jitter=0)
    unbounded = RetryPolicy(max_attempts=5000, max_delay=float("inf"), jitter=0)

    delay = policy.backoff(attempt)

    assert delay == min(0.01, 0.1 * 2.0 ** min(attempt - 1, 60))
    assert unbounded.backoff(attempt) == (
        0.1 * 2.0 ** (attempt - 1) if attempt <= 1024 else float("inf")
    )


async def test_task_retried_thousands_of_times_waits_max_delay_each_time(
    autojump_clock: trio.abc.Clock,
) -> None:
    policy = RetryPolicy(max_attempts=5000, max_delay=0.01, jitter=0)
    async with trunner.open_sequenced_runner() as runner:
        start = trio.current_time()

        result = await runner.post_task(flaky(4999), retry=policy).wait()

    assert result == "ok after 5000"
    assert trio.current_time() - start == pytest.approx(4999 * 0.01)


@pytest.mark.parametrize("kind", ["sequenced", "parallel"])
async def test_run_all_cancelled_caller_returns_once_its_tasks_have_ended(
    autojump_clock: trio.abc.Clock, kind: str
) -> None:
    # Issue 8: run_all returned at once while its tasks still ran (cleaning up).
    async def slow_to_stop() -> None:
        try:
            await trio.sleep(100)
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1)

    async with trunner.open_scheduler() as scheduler:
        if kind == "sequenced":
            runner: trunner.TaskRunner = scheduler.create_sequenced_runner()
        else:
            runner = scheduler.create_parallel_runner(max_concurrency=3)
        with trio.move_on_after(0.5):
            await trunner.run_all(runner, [slow_to_stop] * 3)

        assert trio.current_time() == 1.5
        assert runner.statistics().running == 0
        assert runner.statistics().pending == 0


async def test_run_cancelled_caller_returns_once_its_task_has_ended(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def slow_to_stop() -> None:
        try:
            await trio.sleep(100)
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1)

    async with trunner.open_sequenced_runner() as runner:
        with trio.move_on_after(0.5):
            await runner.run(slow_to_stop)

        assert trio.current_time() == 1.5
        assert runner.statistics().cancelled == 1
