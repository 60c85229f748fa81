"""Less travelled paths: threads, closing races, barriers, failing callbacks."""

# pyright: reportPrivateUsage=false
# White-box tests: they post as another thread would and read the barriers.

from __future__ import annotations

import logging
import threading

import pytest
import trio
import trio.lowlevel
import trio.testing

import trunner
from trunner import ShutdownBehavior, TaskHandle, TaskHooks, TaskState, TaskTraits

BLOCK = TaskTraits(shutdown_behavior=ShutdownBehavior.BLOCK_SHUTDOWN)


async def test_runner_repr_name_and_closed_state() -> None:
    async with trunner.open_sequenced_runner(name="ledger") as runner:
        assert runner.name == "ledger"
        assert repr(runner) == "<SequencedTaskRunner 'ledger' open>"
    assert repr(runner) == "<SequencedTaskRunner 'ledger' closed>"
    async with trunner.open_parallel_runner(max_concurrency=1) as unnamed:
        assert unnamed.name.startswith("ParallelTaskRunner-")


async def test_posts_from_a_foreign_thread() -> None:
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner(max_pending=1)
        gate = trio.Event()
        runner.post_task(gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        runner.post_task(gate.wait)

        with pytest.raises(trunner.QueueFullError):
            await trio.to_thread.run_sync(runner.post_task, lambda: "refused")
        gate.set()
        await runner.wait_idle()

        def from_thread() -> tuple[trunner.TaskHandle[str], trunner.TaskHandle[object]]:
            return (
                runner.post_task(lambda: "first"),
                runner.post_delayed_task(lambda: "delayed", delay=0.01),
            )

        first, delayed = await trio.to_thread.run_sync(from_thread)
        assert await first.wait() == "first"
        assert await delayed.wait() == "delayed"
        await runner.aclose()

        with pytest.raises(trunner.RunnerClosedError):
            await trio.to_thread.run_sync(runner.post_task, lambda: None)


async def test_cancel_before_admission_or_barrier_keeps_counts_right() -> None:
    async with trunner.open_parallel_runner(max_concurrency=1) as runner:
        gate = trio.Event()
        runner.post_task(gate.wait)
        # A post from another thread, cancelled before the Trio thread admits it.
        inbound = runner._intake.post_from_thread(lambda: "never", (), None, None)
        inbound.cancel()
        behind_barrier = runner.flush_soon(lambda: "never")
        behind_barrier.cancel()
        await trio.testing.wait_all_tasks_blocked()

        stats = runner.statistics()
        assert (stats.pending, stats.delayed, stats.cancelled) == (0, 0, 2)
        gate.set()
        await runner.wait_idle()

    assert inbound.state is behind_barrier.state is TaskState.CANCELLED


async def test_thread_post_admitted_after_close_began_is_skipped() -> None:
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()
        gate = trio.Event()
        runner.post_task(gate.wait, traits=BLOCK)
        await trio.testing.wait_all_tasks_blocked()
        handle = runner._intake.post_from_thread(lambda: None, (), None, None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.aclose)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()

    assert handle.state is TaskState.SKIPPED


async def test_repeating_posts_must_come_from_the_trio_thread() -> None:
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(RuntimeError, match="Trio thread"):
            await trio.to_thread.run_sync(
                lambda: runner.post_repeating_task(print, interval=1)
            )
        with pytest.raises(RuntimeError, match="Trio thread"):
            await trio.to_thread.run_sync(lambda: runner.flush_soon(print))


async def test_own_task_posts_during_close_follow_shutdown_behavior(
    autojump_clock: trio.abc.Clock,
) -> None:
    results: dict[str, object] = {}
    async with trunner.open_sequenced_runner(max_pending=1) as runner:

        async def closing_time() -> None:
            await trio.sleep(1)
            results["delayed"] = runner.post_delayed_task(print, delay=1)
            results["repeating"] = runner.post_repeating_task(print, interval=1)
            results["flush"] = runner.flush_soon(print)
            results["block"] = runner.post_task(trio.sleep, 0, traits=BLOCK)
            try:
                runner.post_task(trio.sleep, 0, traits=BLOCK)
            except trunner.QueueFullError:
                results["full"] = True

        runner.post_task(closing_time, traits=BLOCK)
        await trio.testing.wait_all_tasks_blocked()

    delayed = results["delayed"]
    repeating = results["repeating"]
    flush = results["flush"]
    block = results["block"]
    assert isinstance(delayed, trunner.TaskHandle)
    assert isinstance(repeating, trunner.RepeatingHandle)
    assert isinstance(flush, trunner.TaskHandle)
    assert isinstance(block, trunner.TaskHandle)
    assert delayed.state is TaskState.SKIPPED
    assert repeating.stopped
    assert flush.state is TaskState.SKIPPED
    assert block.state is TaskState.SUCCEEDED
    assert results["full"] is True


async def test_flush_soon_refused_when_closed_or_full() -> None:
    gate = trio.Event()
    async with trunner.open_sequenced_runner(max_pending=1) as runner:
        runner.post_task(gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        runner.post_task(gate.wait)
        with pytest.raises(trunner.QueueFullError):
            runner.flush_soon(print)
        gate.set()
    with pytest.raises(trunner.RunnerClosedError):
        runner.flush_soon(print)


async def test_flush_soon_on_idle_runner_runs_at_once() -> None:
    async with trunner.open_sequenced_runner() as runner:
        assert await runner.flush_soon(lambda: "now").wait() == "now"


async def test_several_barriers_clear_in_turn_and_cancelled_flush_cleans_up(
    autojump_clock: trio.abc.Clock,
) -> None:
    cleared: list[float] = []
    async with trunner.open_parallel_runner(max_concurrency=4) as runner:
        runner.post_task(trio.sleep, 1)

        async def flush() -> None:
            await runner.flush()
            cleared.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flush)
            await trio.testing.wait_all_tasks_blocked()
            runner.post_task(trio.sleep, 3)
            nursery.start_soon(flush)
            with trio.move_on_after(0.5):
                await runner.flush()
            assert len(runner._barriers.barriers) == 2

    assert cleared == [1, 3]
    assert runner._barriers.barriers == []


async def test_shutdown_releases_barriers_and_skips_waiting_callbacks(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_parallel_runner(max_concurrency=1) as runner:
        runner.post_task(trio.sleep, 10)
        callback = runner.flush_soon(print)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.flush)
            await trio.testing.wait_all_tasks_blocked()
            runner.shutdown()

    assert callback.state is TaskState.SKIPPED
    assert trio.current_time() == 0


async def test_on_error_that_raises_falls_back_to_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_on_error(
        handle: trunner.TaskHandle[object], error: BaseException
    ) -> None:
        raise RuntimeError("on_error broke")

    async with trunner.open_sequenced_runner(on_error=broken_on_error) as runner:
        handle = runner.post_task(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            await handle.wait()

    assert [r.name for r in caplog.records if r.levelno == logging.ERROR] == [
        "trunner.runner"
    ]


async def test_done_callback_that_raises_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(handle: trunner.TaskHandle[object]) -> None:
        raise RuntimeError("callback broke")

    async with trunner.open_sequenced_runner() as runner:
        handle = runner.post_task(lambda: 1)
        handle.add_done_callback(broken)
        await handle.wait()
        handle.add_done_callback(broken)  # already done: runs at once

    assert sum("done callback" in r.message for r in caplog.records) == 2


async def test_on_queued_hook_fires_for_posts_during_close() -> None:
    queued: list[str] = []
    hooks = TaskHooks(on_queued=lambda t: queued.append(t.name))
    async with trunner.open_sequenced_runner(hooks=hooks) as runner:

        async def first() -> None:
            await trio.lowlevel.checkpoint()
            runner.post_task(print, traits=BLOCK, name="during-close")

        runner.post_task(first, traits=BLOCK, name="first")
        await trio.testing.wait_all_tasks_blocked()

    assert queued == ["first", "during-close"]


async def test_task_raising_exception_group_with_cancelled_records_failure(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def nursery_task() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)

            async def fail() -> None:
                await trio.sleep(1)
                raise ValueError("child failed")

            nursery.start_soon(fail)

    async def cancelled_nursery() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(trio.sleep_forever)

    async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:
        failing = runner.post_task(nursery_task)
        with pytest.RaisesGroup(ValueError):
            await failing.wait()
        stuck = runner.post_task(cancelled_nursery)
        await trio.sleep(1)
        stuck.cancel()
        await runner.wait_idle()

    assert failing.state is TaskState.FAILED
    assert stuck.state is TaskState.CANCELLED


async def test_keyboard_interrupt_in_task_is_recorded_and_propagates() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    handle: TaskHandle[None] | None = None
    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        async with trunner.open_scheduler() as scheduler:
            runner = scheduler.create_sequenced_runner(on_error=lambda h, e: None)
            handle = runner.post_task(interrupt)
            await trio.sleep_forever()
    assert handle is not None
    assert handle.state is TaskState.FAILED


async def test_may_block_timeout_fails_at_deadline_and_sequence_waits() -> None:
    release = threading.Event()
    order: list[str] = []
    blocking = TaskTraits(may_block=True)
    async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:

        def slow_work() -> None:
            release.wait(10)
            order.append("slow end")

        slow = runner.post_task(slow_work, traits=blocking, timeout=0.05)
        after = runner.post_task(lambda: order.append("after"))
        with pytest.raises(trunner.TaskTimeoutError):
            await slow.wait()

        assert not after.done
        release.set()
        await after.wait()

    assert order == ["slow end", "after"]


async def test_may_block_task_cannot_be_cancelled_while_in_thread() -> None:
    release = threading.Event()
    blocking = TaskTraits(may_block=True)
    async with trunner.open_parallel_runner(max_concurrency=1) as runner:
        handle = runner.post_task(lambda: release.wait(10) and "done", traits=blocking)
        await trio.testing.wait_all_tasks_blocked()  # the worker waits for its thread

        assert handle.state is TaskState.RUNNING
        assert handle.cancel() is False
        release.set()

        assert await handle.wait() == "done"


async def test_rate_limited_retry_gives_back_the_slot_while_waiting(
    autojump_clock: trio.abc.Clock,
) -> None:
    policy = trunner.RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)
    other_ran: list[float] = []
    calls = 0

    def fails_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError

    async with trunner.open_scheduler(max_workers=1) as scheduler:
        limited = scheduler.create_sequenced_runner(
            rate_limit=trunner.RateLimit(per_second=0.1), retry=policy
        )
        other = scheduler.create_sequenced_runner()
        handle = limited.post_task(fails_once)
        await trio.sleep(1)
        other.post_task(lambda: other_ran.append(trio.current_time()))
        await handle.wait()

    assert other_ran == [1]
    assert trio.current_time() == 10


async def test_timeout_cancel_request_during_attempt_ends_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner() as runner:
        handle = runner.post_task(trio.sleep, 10, timeout=5)
        await trio.sleep(1)
        handle.cancel()
        await runner.wait_idle()

    assert handle.state is TaskState.CANCELLED
    assert runner.metrics().timeouts == 0


async def test_block_subscriber_results_made_outside_tasks_are_buffered() -> None:
    async with trunner.open_sequenced_runner() as runner:
        results = runner.subscribe_results(buffer=1, policy=trunner.DropPolicy.BLOCK)
        gate = trio.Event()
        runner.post_task(gate.wait)
        for _ in range(3):
            runner.post_task(print)
        await trio.testing.wait_all_tasks_blocked()
        runner.cancel_all()  # three results made outside any task: no waiting
        await runner.wait_idle()
        states = [(await results.__anext__()).state for _ in range(4)]

    assert sorted(s.value for s in states) == ["cancelled"] * 4


async def test_blocked_results_are_delivered_when_consumer_is_cancelled() -> None:
    async with trunner.open_sequenced_runner() as runner:
        results = runner.subscribe_results(buffer=1, policy=trunner.DropPolicy.BLOCK)
        for _ in range(3):
            runner.post_task(trio.sleep, 0)
        await trio.testing.wait_all_tasks_blocked()
        runner.shutdown()
    states = [r.state async for r in results]

    assert states.count(TaskState.SUCCEEDED) == 2
    assert len(states) == 3


async def test_post_tasks_on_a_closed_runner_is_refused() -> None:
    async with trunner.open_sequenced_runner() as runner:
        pass
    with pytest.raises(trunner.RunnerClosedError):
        runner.post_tasks([print])


async def test_send_task_waiters_are_refused_when_the_runner_closes() -> None:
    refused: list[int] = []
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner(max_pending=1)
        runner.post_task(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        runner.post_task(trio.sleep, 0)

        async def wait(index: int) -> None:
            with pytest.raises(trunner.RunnerClosedError):
                await runner.send_task(trio.sleep, 0)
            refused.append(index)

        async with trio.open_nursery() as nursery:
            for index in range(3):
                nursery.start_soon(wait, index)
                await trio.testing.wait_all_tasks_blocked()
            runner.shutdown()

    assert sorted(refused) == [0, 1, 2]


async def test_on_queued_fires_for_replies_and_flush_soon_callbacks() -> None:
    queued: list[str] = []
    hooks = trunner.TaskHooks(on_queued=lambda task: queued.append(task.name))
    async with trunner.open_parallel_runner(max_concurrency=1, hooks=hooks) as runner:
        gate = trio.Event()
        runner.post_task(gate.wait, name="gate")
        runner.post_task_and_reply(print, print, reply_runner=runner)
        runner.flush_soon(print)
        gate.set()

    assert queued[:3] == ["gate", "print", "print"]
