# pyright: reportPrivateUsage=false
# A white-box test: it reads the runner's channel.
from __future__ import annotations

import math
import threading

import pytest
import trio
import trio.testing

import trunner
from trunner import TaskState

from ._helpers import state_of


async def test_sequenced_runs_tasks_in_fifo_order_one_at_a_time() -> None:
    log: list[str] = []

    async def task(name: str, delay: float) -> None:
        log.append(f"start {name}")
        await trio.sleep(delay)
        log.append(f"end {name}")

    async with trunner.open_sequenced_runner() as runner:
        for name, delay in [("a", 0.3), ("b", 0.1), ("c", 0.2)]:
            runner.post_task(task, name, delay)
        await runner.wait_idle()

    assert log == ["start a", "end a", "start b", "end b", "start c", "end c"]


async def test_sequenced_awaiting_task_holds_the_sequence(
    autojump_clock: trio.abc.Clock,
) -> None:
    started: list[float] = []

    async def task() -> None:
        started.append(trio.current_time())
        await trio.sleep(1)

    async with trunner.open_sequenced_runner() as runner:
        t0 = trio.current_time()
        for _ in range(3):
            runner.post_task(task)
        await runner.wait_idle()

    assert [t - t0 for t in started] == [0, 1, 2]


async def test_sequenced_sync_function_runs_inline_and_returns_value() -> None:
    async with trunner.open_sequenced_runner() as runner:
        handle = runner.post_task(lambda x: x * 2, 21)

        assert await handle.wait() == 42
        assert handle.state is TaskState.SUCCEEDED
        assert handle.done


async def test_sequenced_failing_task_does_not_kill_runner() -> None:
    errors: list[BaseException] = []

    async def boom() -> None:
        raise ValueError("boom")

    async with trunner.open_sequenced_runner(
        on_error=lambda h, e: errors.append(e)
    ) as runner:
        failed = runner.post_task(boom)
        ok = runner.post_task(lambda: "still alive")

        with pytest.raises(ValueError, match="boom"):
            await failed.wait()
        assert await ok.wait() == "still alive"

    assert failed.state is TaskState.FAILED
    assert [str(e) for e in errors] == ["boom"]
    assert runner.statistics().failed == 1


async def test_sequenced_many_tasks_all_run_in_order() -> None:
    seen: list[int] = []

    async def task(i: int) -> None:
        seen.append(i)

    async with trunner.open_sequenced_runner() as runner:
        for i in range(1000):
            runner.post_task(task, i)
        await runner.wait_idle()

    assert seen == list(range(1000))
    assert runner.statistics().succeeded == 1000


async def test_sequenced_yields_to_other_tasks_while_draining() -> None:
    ticks = 0
    seen_ticks: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    def task() -> None:
        seen_ticks.append(ticks)

    async with (
        trio.open_nursery() as nursery,
        trunner.open_sequenced_runner() as runner,
    ):
        nursery.start_soon(ticker)
        for _ in range(1000):
            runner.post_task(task)
        await runner.wait_idle()
        nursery.cancel_scope.cancel()

    # A batch of 64 tasks runs back to back, then the consumer yields.
    assert seen_ticks[-1] - seen_ticks[0] >= 1000 // 64 - 1
    assert seen_ticks[63] == seen_ticks[0]


async def test_handle_cancel_pending_task_never_starts() -> None:
    ran: list[str] = []
    gate = trio.Event()

    async def first() -> None:
        await gate.wait()

    async with trunner.open_sequenced_runner() as runner:
        runner.post_task(first)
        doomed = runner.post_task(lambda: ran.append("doomed"))

        assert doomed.cancel() is True
        assert doomed.state is TaskState.CANCELLED
        assert doomed.cancel() is False
        gate.set()
        await runner.wait_idle()

    assert ran == []
    with pytest.raises(trunner.TaskCancelledError):
        await doomed.wait()


async def test_handle_cancel_running_task_ends_cancelled_and_next_runs(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner() as runner:
        sleeper = runner.post_task(trio.sleep, 100)
        after = runner.post_task(trio.current_time)
        await trio.sleep(1)

        assert sleeper.state is TaskState.RUNNING
        assert sleeper.cancel() is True
        t = await after.wait()

    assert state_of(sleeper) is TaskState.CANCELLED
    assert t == pytest.approx(1)
    with pytest.raises(trunner.TaskCancelledError):
        await sleeper.wait()


async def test_run_returns_value_and_raises_error_unwrapped() -> None:
    async def fail() -> None:
        raise KeyError("k")

    async with trunner.open_sequenced_runner() as runner:
        result: object = await runner.run(trio.sleep, 0)
        assert result is None
        with pytest.raises(KeyError):
            await runner.run(fail)


async def test_run_cancelled_caller_cancels_task(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner() as runner:
        with trio.move_on_after(1):
            await runner.run(trio.sleep, 100)
        await runner.wait_idle()

        assert runner.statistics().cancelled == 1
        assert trio.current_time() == 1


async def test_wait_idle_counts_tasks_posted_by_tasks() -> None:
    seen: list[int] = []

    async with trunner.open_sequenced_runner() as runner:

        def chain(n: int) -> None:
            seen.append(n)
            if n < 5:
                runner.post_task(chain, n + 1)

        runner.post_task(chain, 0)
        await runner.wait_idle()

        assert seen == [0, 1, 2, 3, 4, 5]


async def test_wait_idle_is_a_checkpoint_when_idle() -> None:
    async with trunner.open_sequenced_runner() as runner:
        with trio.testing.assert_checkpoints():
            await runner.wait_idle()
        with trio.testing.assert_checkpoints():
            await runner.flush()


async def test_flush_waits_only_for_tasks_posted_before(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner() as runner:
        runner.post_task(trio.sleep, 1)
        runner.post_task(trio.sleep, 2)
        t0 = trio.current_time()
        async with trio.open_nursery() as nursery:

            async def flusher() -> None:
                await runner.flush()
                runner.post_task(trio.sleep, 5)

            nursery.start_soon(flusher)
        flushed_at = trio.current_time() - t0
        await runner.wait_idle()

    assert flushed_at == 3


async def test_flush_soon_runs_callback_after_earlier_tasks(
    autojump_clock: trio.abc.Clock,
) -> None:
    log: list[str] = []

    async def slow(name: str) -> None:
        await trio.sleep(1)
        log.append(name)

    async with trunner.open_parallel_runner(max_concurrency=4) as runner:
        runner.post_task(slow, "a")
        runner.post_task(slow, "b")
        handle = runner.flush_soon(lambda: log.append("flushed"))
        runner.post_task(lambda: log.append("later"))
        await runner.wait_idle()

    assert log == ["later", "a", "b", "flushed"] or log == [
        "later",
        "b",
        "a",
        "flushed",
    ]
    assert handle.state is TaskState.SUCCEEDED


async def test_max_pending_refuses_with_queue_full_error() -> None:
    gate = trio.Event()
    async with trunner.open_sequenced_runner(max_pending=2) as runner:
        runner.post_task(gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        runner.post_task(trio.sleep, 0)
        runner.post_task(trio.sleep, 0)

        with pytest.raises(trunner.QueueFullError) as info:
            runner.post_task(trio.sleep, 0)
        assert isinstance(info.value, trio.WouldBlock)
        assert runner.metrics().rejected == 1
        gate.set()


async def test_send_task_waits_for_room(autojump_clock: trio.abc.Clock) -> None:
    async with trunner.open_sequenced_runner(max_pending=1) as runner:
        runner.post_task(trio.sleep, 1)
        await trio.testing.wait_all_tasks_blocked()
        runner.post_task(trio.sleep, 1)
        t0 = trio.current_time()

        handle = await runner.send_task(trio.sleep, 1)

        assert trio.current_time() - t0 == 1
        await handle.wait()
        assert trio.current_time() - t0 == 3


async def test_replies_and_due_timers_ignore_max_pending(
    autojump_clock: trio.abc.Clock,
) -> None:
    done: list[str] = []
    async with trunner.open_sequenced_runner(max_pending=1) as runner:
        runner.post_task(trio.sleep, 1)
        await trio.testing.wait_all_tasks_blocked()
        runner.post_task(trio.sleep, 0)
        for i in range(3):
            # Bound first: pyright misses names read in an f-string argument
            # of an overloaded call (reportUnusedVariable).
            label = f"timer{i}"
            runner.post_delayed_task(done.append, label, delay=0.5)
        await runner.wait_idle()
        await trio.sleep(1)

    assert done == ["timer0", "timer1", "timer2"]


async def test_runs_tasks_in_current_sequence() -> None:
    async with trunner.open_scheduler() as scheduler:
        a = scheduler.create_sequenced_runner()
        b = scheduler.create_sequenced_runner()

        assert not a.runs_tasks_in_current_sequence()
        assert await a.run(a.runs_tasks_in_current_sequence) is True
        assert await a.run(b.runs_tasks_in_current_sequence) is False


async def test_current_runner_inside_and_outside() -> None:
    with pytest.raises(trunner.NoCurrentRunnerError):
        trunner.current_runner()
    async with trunner.open_sequenced_runner() as runner:
        assert await runner.run(trunner.current_runner) is runner


async def test_statistics_counts_every_state(autojump_clock: trio.abc.Clock) -> None:
    async def fail() -> None:
        raise RuntimeError

    async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:
        runner.post_task(trio.sleep, 1)
        runner.post_task(fail)
        cancelled = runner.post_task(trio.sleep, 1)
        cancelled.cancel()
        runner.post_delayed_task(trio.sleep, 1, delay=10)
        await trio.testing.wait_all_tasks_blocked()

        stats = runner.statistics()
        assert (stats.pending, stats.running, stats.delayed) == (1, 1, 1)
        await runner.wait_idle()

    stats = runner.statistics()
    assert stats == trunner.RunnerStatistics(
        pending=0, running=0, delayed=0, succeeded=1, failed=1, cancelled=1, skipped=1
    )


async def test_task_names() -> None:
    async def named_fn() -> None:
        pass

    async with trunner.open_sequenced_runner() as runner:
        default = runner.post_task(named_fn)
        custom = runner.post_task(named_fn, name="custom")
        await runner.wait_idle()

    assert default.name.endswith("named_fn")
    assert custom.name == "custom"
    assert "custom" in repr(custom)


async def test_handle_outcome_and_fresh_outcomes() -> None:
    async with trunner.open_sequenced_runner() as runner:
        handle = runner.post_task(lambda: 5)
        assert handle.outcome is None or handle.done
        await handle.wait()

    first = handle.outcome
    second = handle.outcome
    assert first is not None
    assert second is not None
    assert first.unwrap() == 5
    assert second.unwrap() == 5


async def test_posting_from_a_thread_task_is_thread_safe() -> None:
    async with trunner.open_scheduler() as scheduler:
        seq = scheduler.create_sequenced_runner()
        thread = scheduler.create_thread_runner()
        posted = await thread.run(lambda: seq.post_task(trunner.current_runner))

        assert await posted.wait() is seq


async def test_infinite_buffer_constant() -> None:
    # The sequence is unbounded unless max_pending says otherwise.
    async with trunner.open_sequenced_runner() as runner:
        assert runner._send.statistics().max_buffer_size == math.inf


def _runner_of_kind(scheduler: trunner.Scheduler, kind: str) -> trunner.TaskRunner:
    if kind == "sequenced":
        return scheduler.create_sequenced_runner()
    if kind == "thread":
        return scheduler.create_thread_runner()
    return scheduler.create_parallel_runner(max_concurrency=1)


@pytest.mark.parametrize("kind", ["sequenced", "thread"])
async def test_flush_soon_keeps_its_fifo_place_on_a_sequence(kind: str) -> None:
    # Issue 8, item 3: a, b, cb ran instead of a, cb, b.
    log: list[str] = []
    async with trunner.open_scheduler() as scheduler:
        runner = _runner_of_kind(scheduler, kind)
        runner.post_task(log.append, "a")
        runner.flush_soon(log.append, "cb")
        runner.post_task(log.append, "b")
        await runner.wait_idle()

    assert log == ["a", "cb", "b"]


@pytest.mark.parametrize("kind", ["sequenced", "thread", "parallel"])
async def test_waiting_flush_soon_callback_is_a_task_like_any_other(
    kind: str,
) -> None:
    ran: list[str] = []
    gate = threading.Event()
    async with trunner.open_scheduler() as scheduler:
        runner = _runner_of_kind(scheduler, kind)
        runner.post_task(gate.wait, traits=trunner.TaskTraits(may_block=True))
        await trio.testing.wait_all_tasks_blocked()
        by_id = runner.flush_soon(ran.append, "by id")
        by_all = runner.flush_soon(ran.append, "by cancel_all")

        pending = runner.statistics().pending
        cancelled_by_id = runner.cancel(by_id.id)
        after_cancel = runner.statistics().pending
        runner.cancel_all()
        gate.set()
        await runner.wait_idle()

    assert pending == 2
    assert cancelled_by_id is True
    assert after_cancel == 1
    assert by_id.state is TaskState.CANCELLED
    assert by_all.state is TaskState.CANCELLED
    assert ran == []


async def test_flush_soon_on_parallel_runner_waits_for_earlier_tasks_only(
    autojump_clock: trio.abc.Clock,
) -> None:
    log: list[tuple[str, float]] = []

    async def task(name: str, seconds: float) -> None:
        await trio.sleep(seconds)
        log.append((name, trio.current_time()))

    async with trunner.open_parallel_runner(max_concurrency=4) as runner:
        runner.post_task(task, "a", 2)
        runner.flush_soon(task, "cb", 0)
        flush_soon_pending = runner.statistics().pending
        runner.post_task(task, "b", 1)
        await runner.wait_idle()

    assert flush_soon_pending == 2  # "a" has not started yet, and the callback
    assert log == [("b", 1), ("a", 2), ("cb", 2)]
