from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

import trunner
from trunner import ShutdownBehavior, TaskState, TaskTraits

BLOCK = TaskTraits(shutdown_behavior=ShutdownBehavior.BLOCK_SHUTDOWN)
SKIP = TaskTraits(shutdown_behavior=ShutdownBehavior.SKIP_ON_SHUTDOWN)
CONTINUE = TaskTraits(shutdown_behavior=ShutdownBehavior.CONTINUE_ON_SHUTDOWN)


@pytest.mark.parametrize("kind", ["sequenced", "parallel"])
async def test_close_applies_each_shutdown_behavior(
    autojump_clock: trio.abc.Clock, kind: str
) -> None:
    async with trunner.open_scheduler() as scheduler:
        if kind == "sequenced":
            runner: trunner.TaskRunner = scheduler.create_sequenced_runner()
        else:
            runner = scheduler.create_parallel_runner(max_concurrency=1)
        running = runner.post_task(trio.sleep, 1, traits=CONTINUE)
        block = runner.post_task(trio.sleep, 1, traits=BLOCK)
        skip = runner.post_task(trio.sleep, 1, traits=SKIP)
        cont = runner.post_task(trio.sleep, 1, traits=CONTINUE)
        await trio.testing.wait_all_tasks_blocked()

        await runner.aclose()

    assert running.state is TaskState.CANCELLED
    assert block.state is TaskState.SUCCEEDED
    assert skip.state is TaskState.SKIPPED
    assert cont.state is TaskState.SKIPPED
    assert trio.current_time() == 1


async def test_running_skip_on_shutdown_task_finishes(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner() as runner:
        running = runner.post_task(trio.sleep, 2, traits=SKIP)
        pending = runner.post_task(trio.sleep, 2, traits=SKIP)
        await trio.testing.wait_all_tasks_blocked()

    assert running.state is TaskState.SUCCEEDED
    assert pending.state is TaskState.SKIPPED
    assert trio.current_time() == 2


async def test_grace_period_cancels_what_still_runs(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()
        long = runner.post_task(trio.sleep, 100, traits=BLOCK)
        queued = runner.post_task(trio.sleep, 1, traits=BLOCK)
        await trio.testing.wait_all_tasks_blocked()

        await runner.aclose(grace_period=5)

        assert trio.current_time() == 5
    assert long.state is TaskState.CANCELLED
    assert queued.state is TaskState.SKIPPED


async def test_shutdown_is_immediate_whatever_the_traits(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner() as runner:
        running = runner.post_task(trio.sleep, 100, traits=BLOCK)
        pending = runner.post_task(trio.sleep, 1, traits=BLOCK)
        delayed = runner.post_delayed_task(trio.sleep, 1, delay=1)
        await trio.testing.wait_all_tasks_blocked()

        runner.shutdown()

        assert runner.closed
        with pytest.raises(trunner.RunnerClosedError):
            runner.post_task(trio.sleep, 0)
    assert trio.current_time() == 0
    assert running.state is TaskState.CANCELLED
    assert pending.state is TaskState.SKIPPED
    assert delayed.state is TaskState.SKIPPED


async def test_posting_after_close_raises_runner_closed_error() -> None:
    async with trunner.open_sequenced_runner() as runner:
        pass

    with pytest.raises(trunner.RunnerClosedError) as info:
        runner.post_task(trio.sleep, 0)
    assert isinstance(info.value, trio.ClosedResourceError)
    with pytest.raises(trunner.RunnerClosedError):
        runner.post_delayed_task(trio.sleep, 0, delay=1)
    with pytest.raises(trunner.RunnerClosedError):
        runner.post_repeating_task(trio.sleep, 0, interval=1)
    with pytest.raises(trunner.RunnerClosedError):
        await runner.send_task(trio.sleep, 0)


async def test_block_shutdown_task_may_post_follow_up_during_close(
    autojump_clock: trio.abc.Clock,
) -> None:
    log: list[str] = []
    async with trunner.open_sequenced_runner() as runner:

        async def first() -> None:
            await trio.sleep(1)
            log.append("first")
            runner.post_task(follow_up, traits=BLOCK)
            skipped.append(runner.post_task(log.append, "skipped", traits=SKIP))

        async def follow_up() -> None:
            log.append("follow-up")

        skipped: list[trunner.TaskHandle[object]] = []
        runner.post_task(first, traits=BLOCK)
        await trio.testing.wait_all_tasks_blocked()

    assert log == ["first", "follow-up"]
    assert skipped[0].state is TaskState.SKIPPED


async def test_posts_from_outside_are_refused_during_close(
    autojump_clock: trio.abc.Clock,
) -> None:
    refused: list[bool] = []
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()
        runner.post_task(trio.sleep, 1, traits=BLOCK)
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.aclose)
            await trio.testing.wait_all_tasks_blocked()

            assert runner.closed
            try:
                runner.post_task(trio.sleep, 0, traits=BLOCK)
            except trunner.RunnerClosedError:
                refused.append(True)

    assert refused == [True]


async def test_aclose_is_idempotent_and_refused_from_own_task() -> None:
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(RuntimeError, match="cannot wait"):
            await runner.run(runner.aclose)
        await runner.aclose()
        await runner.aclose()
        runner.shutdown()


async def test_cancelled_aclose_shuts_down(autojump_clock: trio.abc.Clock) -> None:
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()
        handle = runner.post_task(trio.sleep, 100, traits=BLOCK)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1):
            await runner.aclose()

        assert runner.closed
        await trio.testing.wait_all_tasks_blocked()
        assert handle.state is TaskState.CANCELLED


async def test_scheduler_exit_closes_created_runners_gracefully(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_scheduler() as scheduler:
        seq = scheduler.create_sequenced_runner()
        par = scheduler.create_parallel_runner(max_concurrency=2)
        a = seq.post_task(trio.sleep, 1, traits=BLOCK)
        b = par.post_task(trio.sleep, 2, traits=BLOCK)
        c = seq.post_task(trio.sleep, 1)

    assert (a.state, b.state, c.state) == (
        TaskState.SUCCEEDED,
        TaskState.SUCCEEDED,
        TaskState.SKIPPED,
    )
    assert trio.current_time() == 2
    assert scheduler.runners == ()


async def test_body_error_shuts_down_and_propagates_unwrapped(
    autojump_clock: trio.abc.Clock,
) -> None:
    handles: list[trunner.TaskHandle[object]] = []

    async def body() -> None:
        async with trunner.open_scheduler() as scheduler:
            runner = scheduler.create_sequenced_runner()
            handles.append(runner.post_task(trio.sleep, 10, traits=BLOCK))
            handles.append(runner.post_task(trio.sleep, 10, traits=BLOCK))
            await trio.testing.wait_all_tasks_blocked()
            raise KeyError("body")

    with pytest.raises(KeyError):
        await body()

    assert [h.state for h in handles] == [TaskState.CANCELLED, TaskState.SKIPPED]
    assert trio.current_time() == 0


async def test_outer_cancellation_leaves_no_task_behind(
    autojump_clock: trio.abc.Clock,
) -> None:
    handles: list[trunner.TaskHandle[object]] = []
    with trio.move_on_after(1):
        async with trunner.open_scheduler() as scheduler:
            seq = scheduler.create_sequenced_runner()
            par = scheduler.create_parallel_runner(max_concurrency=2)
            handles += [seq.post_task(trio.sleep, 10), seq.post_task(trio.sleep, 10)]
            handles += [par.post_task(trio.sleep, 10) for _ in range(3)]
            handles.append(seq.post_delayed_task(trio.sleep, 1, delay=5))
            await trio.sleep_forever()

    assert all(h.done for h in handles)
    assert [h.state for h in handles] == [
        TaskState.CANCELLED,
        TaskState.SKIPPED,
        TaskState.CANCELLED,
        TaskState.CANCELLED,
        TaskState.SKIPPED,
        TaskState.SKIPPED,
    ]


async def test_scheduler_block_leaves_no_thread_running() -> None:
    before = threading.active_count()
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_thread_runner(name="db")
        await runner.run(lambda: None)
        assert threading.active_count() == before + 1

    assert not runner.thread.is_alive()


async def test_nothing_runs_later_in_virtual_time_after_exit(
    autojump_clock: trio.abc.Clock,
) -> None:
    ran: list[float] = []
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()
        runner.post_delayed_task(lambda: ran.append(trio.current_time()), delay=5)
        repeating = runner.post_repeating_task(
            lambda: ran.append(trio.current_time()), interval=1
        )
        await trio.sleep(1.5)

    await trio.sleep(100)
    assert ran == [0, 1]
    assert repeating.stopped


async def test_subscription_ends_when_runner_closes() -> None:
    async with trunner.open_sequenced_runner() as runner:
        results = runner.subscribe_results()
        runner.post_task(lambda: 1)
        await runner.wait_idle()
        runner.post_task(lambda: 2)
    states = [result.state async for result in results]

    assert states == [TaskState.SUCCEEDED, TaskState.SKIPPED]


async def _hold_only_slot(scheduler: trunner.Scheduler) -> trunner.TaskHandle[None]:
    busy = scheduler.create_parallel_runner(max_concurrency=1)
    holder = busy.post_task(trio.sleep, 100)
    await trio.testing.wait_all_tasks_blocked()
    return holder


@pytest.mark.parametrize("kind", ["sequenced", "parallel", "thread"])
@pytest.mark.parametrize("how", ["shutdown", "cancel_all", "cancel", "aclose"])
async def test_task_waiting_for_a_worker_slot_stops_waiting_at_once(
    autojump_clock: trio.abc.Clock, kind: str, how: str
) -> None:
    # Issue 8, item 1: the consumer waiting for its slot made shutdown() raise
    # AttributeError ('_scope'), and aclose() then hung.
    with trio.fail_after(10):
        async with trunner.open_scheduler(max_workers=1) as scheduler:
            holder = await _hold_only_slot(scheduler)
            if kind == "sequenced":
                runner: trunner.TaskRunner = scheduler.create_sequenced_runner()
                waiting = runner.post_task(trio.sleep, 1)
            elif kind == "parallel":
                runner = scheduler.create_parallel_runner(max_concurrency=2)
                waiting = runner.post_task(trio.sleep, 1)
            else:
                runner = scheduler.create_thread_runner()
                waiting = runner.post_task(lambda: None)
            await trio.testing.wait_all_tasks_blocked()

            if how == "shutdown":
                runner.shutdown()
            elif how == "cancel_all":
                runner.cancel_all()
            elif how == "cancel":
                assert runner.cancel(waiting.id)
            else:
                await runner.aclose()
            await trio.testing.wait_all_tasks_blocked()

            expected = (
                TaskState.CANCELLED if how.startswith("cancel") else TaskState.SKIPPED
            )
            assert waiting.state is expected
            assert runner.statistics().pending == 0
            await runner.aclose()
            assert trio.current_time() == 0
            assert scheduler.statistics() == trunner.LimiterStatistics(1, 1, (0, 0, 0))
            holder.cancel()


@pytest.mark.parametrize("how", ["shutdown", "cancel_all"])
async def test_task_waiting_for_a_rate_limit_token_stops_waiting_at_once(
    autojump_clock: trio.abc.Clock, how: str
) -> None:
    limit = trunner.RateLimit(per_second=0.001, burst=1)
    with trio.fail_after(10):
        async with trunner.open_sequenced_runner(rate_limit=limit) as runner:
            first = runner.post_task(trio.sleep, 0)
            waiting = runner.post_task(trio.sleep, 0)
            await trio.testing.wait_all_tasks_blocked()

            if how == "shutdown":
                runner.shutdown()
            else:
                runner.cancel_all()
            await trio.testing.wait_all_tasks_blocked()

            assert first.state is TaskState.SUCCEEDED
            assert waiting.state in (TaskState.SKIPPED, TaskState.CANCELLED)
            await runner.aclose()
            assert trio.current_time() == 0


async def test_block_error_while_consumer_waits_for_a_slot_comes_out_as_itself(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def scenario() -> None:
        async with trunner.open_scheduler(max_workers=1) as scheduler:
            await _hold_only_slot(scheduler)
            async with scheduler.open_sequenced_runner() as runner:
                runner.post_task(trio.sleep, 1)
                await trio.testing.wait_all_tasks_blocked()
                raise KeyError("the block's own")

    with trio.fail_after(10), pytest.raises(KeyError, match="the block's own"):
        await scenario()

    assert trio.current_time() == 0


@pytest.mark.parametrize("kind", ["sequenced", "parallel", "thread", "may_block"])
@pytest.mark.parametrize("delay", [0, 0.5, 5])
async def test_delayed_task_posted_by_a_block_shutdown_task_during_close_is_skipped(
    autojump_clock: trio.abc.Clock, kind: str, delay: float
) -> None:
    # Issue 8, item 5: on a thread runner (or from a may_block task's thread)
    # the delayed task was armed on the closing runner and ran.
    ran: list[str] = []
    posted: list[trunner.TaskHandle[object]] = []
    block = TaskTraits(
        shutdown_behavior=ShutdownBehavior.BLOCK_SHUTDOWN, may_block=True
    )
    closing = threading.Event()

    def post_follow_up() -> None:
        assert closing.wait(10)
        runner = trunner.current_runner()
        posted.append(
            runner.post_delayed_task(ran.append, "late", delay=delay, traits=block)
        )

    async def post_follow_up_async() -> None:
        await trio.sleep(1)
        runner = trunner.current_runner()
        posted.append(
            runner.post_delayed_task(ran.append, "late", delay=delay, traits=block)
        )

    with trio.fail_after(60):
        async with trunner.open_scheduler() as scheduler:
            if kind == "thread":
                runner: trunner.TaskRunner = scheduler.create_thread_runner()
            elif kind == "parallel":
                runner = scheduler.create_parallel_runner(max_concurrency=2)
            else:
                runner = scheduler.create_sequenced_runner()
            if kind in ("thread", "may_block"):
                runner.post_task(post_follow_up, traits=block)
            else:
                runner.post_task(post_follow_up_async, traits=block)
            await trio.testing.wait_all_tasks_blocked()
            closing.set()
            await runner.aclose()

    assert ran == []
    assert [handle.state for handle in posted] == [TaskState.SKIPPED]


@pytest.mark.parametrize("kind", ["sequenced", "parallel"])
async def test_shutdown_stops_a_consumer_waiting_on_a_full_block_subscriber(
    autojump_clock: trio.abc.Clock, kind: str
) -> None:
    # Same class as issue 8, item 1: after a cancelled task, the consumer
    # waited for a BLOCK subscriber's room outside any scope shutdown() cancels.
    async with trunner.open_scheduler() as scheduler:
        if kind == "sequenced":
            runner: trunner.TaskRunner = scheduler.create_sequenced_runner()
        else:
            runner = scheduler.create_parallel_runner(max_concurrency=1)
        results = runner.subscribe_results(buffer=1, policy=trunner.DropPolicy.BLOCK)
        runner.post_task(trio.sleep, 0)
        stuck = runner.post_task(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        stuck.cancel()
        await trio.testing.wait_all_tasks_blocked()

        runner.shutdown()
        with trio.fail_after(10):
            await runner.aclose()

        assert [result.state async for result in results] == [
            TaskState.SUCCEEDED,
            TaskState.CANCELLED,
        ]
