from __future__ import annotations

import pytest
import trio
import trio.testing

import trunner
from trunner import MissedTicks, RepeatMode, TaskState


async def test_delayed_task_runs_after_its_delay(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_sequenced_runner() as runner:
        t0 = trio.current_time()
        handle = runner.post_delayed_task(trio.current_time, delay=2.5)

        assert handle.state is TaskState.PENDING
        assert await handle.wait() - t0 == 2.5


async def test_delayed_tasks_fire_in_deadline_then_posting_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    order: list[str] = []
    async with trunner.open_sequenced_runner() as runner:
        runner.post_delayed_task(order.append, "late", delay=3)
        runner.post_delayed_task(order.append, "early", delay=1)
        runner.post_delayed_task(order.append, "tie-1", delay=2)
        runner.post_delayed_task(order.append, "tie-2", delay=2)
        runner.post_delayed_task(order.append, "zero", delay=0)
        await trio.sleep(5)

    assert order == ["zero", "early", "tie-1", "tie-2", "late"]


async def test_earlier_delayed_task_posted_later_moves_timer(
    autojump_clock: trio.abc.Clock,
) -> None:
    fired: list[tuple[str, float]] = []
    async with trunner.open_sequenced_runner() as runner:
        runner.post_delayed_task(
            lambda: fired.append(("far", trio.current_time())), delay=100
        )
        await trio.sleep(1)
        runner.post_delayed_task(
            lambda: fired.append(("near", trio.current_time())), delay=1
        )
        await trio.sleep(200)

    assert fired == [("near", 2.0), ("far", 100.0)]


async def test_cancel_delayed_task_before_due(autojump_clock: trio.abc.Clock) -> None:
    ran: list[int] = []
    async with trunner.open_sequenced_runner() as runner:
        handle = runner.post_delayed_task(ran.append, 1, delay=5)
        assert runner.statistics().delayed == 1

        assert runner.cancel(handle.id) is True
        assert runner.statistics().delayed == 0
        await trio.sleep(10)

    assert ran == []
    assert handle.state is TaskState.CANCELLED


async def test_negative_or_bad_delay_is_rejected() -> None:
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(ValueError, match="delay"):
            runner.post_delayed_task(trio.sleep, 0, delay=-1)
        with pytest.raises(ValueError, match="delay"):
            runner.post_delayed_task(trio.sleep, 0, delay=float("nan"))
        with pytest.raises(TypeError, match="delay"):
            runner.post_delayed_task(trio.sleep, 0, delay="1")  # type: ignore[call-overload]  # on purpose


async def test_delayed_tasks_not_yet_due_are_skipped_at_close(
    autojump_clock: trio.abc.Clock,
) -> None:
    block = trunner.TaskTraits(
        shutdown_behavior=trunner.ShutdownBehavior.BLOCK_SHUTDOWN
    )
    async with trunner.open_sequenced_runner() as runner:
        handle = runner.post_delayed_task(trio.sleep, 0, delay=10, traits=block)
    end = trio.current_time()

    assert handle.state is TaskState.SKIPPED
    assert end == 0


async def test_repeating_fixed_rate_has_no_drift(
    autojump_clock: trio.abc.Clock,
) -> None:
    times: list[float] = []

    async def tick() -> None:
        times.append(trio.current_time())
        await trio.sleep(0.3)  # work inside the slot does not shift the schedule

    async with trunner.open_sequenced_runner() as runner:
        repeating = runner.post_repeating_task(tick, interval=1, initial_delay=0.5)
        await trio.sleep(4.6)
        repeating.stop()

    assert times == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert repeating.runs == 5
    assert repeating.stopped


async def test_repeating_fixed_delay_waits_after_each_run(
    autojump_clock: trio.abc.Clock,
) -> None:
    times: list[float] = []

    async def tick() -> None:
        times.append(trio.current_time())
        await trio.sleep(0.5)

    async with trunner.open_sequenced_runner() as runner:
        repeating = runner.post_repeating_task(
            tick, interval=1, mode=RepeatMode.FIXED_DELAY
        )
        await trio.sleep(4.6)
        repeating.stop()

    assert times == [0, 1.5, 3.0, 4.5]


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        # Run 0 takes 2.5 s: ticks 1 and 2 are missed.
        (MissedTicks.SKIP, [0, 3, 4, 5]),
        (MissedTicks.COALESCE, [0, 2.5, 3, 4, 5]),
        (MissedTicks.BURST, [0, 2.5, 2.5, 3, 4, 5]),
    ],
)
async def test_repeating_missed_tick_policies(
    autojump_clock: trio.abc.Clock, missed: MissedTicks, expected: list[float]
) -> None:
    times: list[float] = []

    async def tick() -> None:
        times.append(trio.current_time())
        if len(times) == 1:
            await trio.sleep(2.5)

    async with trunner.open_sequenced_runner() as runner:
        repeating = runner.post_repeating_task(tick, interval=1, missed=missed)
        await trio.sleep(5.5)
        repeating.stop()

    assert times == expected


async def test_repeating_run_that_ends_exactly_on_next_tick_is_not_late(
    autojump_clock: trio.abc.Clock,
) -> None:
    times: list[float] = []

    async def tick() -> None:
        times.append(trio.current_time())
        await trio.sleep(1)

    async with trunner.open_sequenced_runner() as runner:
        repeating = runner.post_repeating_task(tick, interval=1)
        await trio.sleep(3.5)
        repeating.stop()

    assert times == [0, 1, 2, 3]


async def test_repeating_failures_are_reported_and_repetition_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    errors: list[BaseException] = []

    def fail() -> None:
        raise RuntimeError("tick failed")

    async with trunner.open_sequenced_runner(
        on_error=lambda h, e: errors.append(e)
    ) as runner:
        repeating = runner.post_repeating_task(fail, interval=1)
        await trio.sleep(2.5)
        repeating.stop()

    assert len(errors) == 3
    assert repeating.runs == 3


async def test_repeating_stop_cancels_queued_run_and_stops_at_close(
    autojump_clock: trio.abc.Clock,
) -> None:
    runs: list[float] = []
    async with trunner.open_sequenced_runner() as runner:
        repeating = runner.post_repeating_task(
            lambda: runs.append(trio.current_time()), interval=2
        )
        await trio.sleep(3)
    after_close = trio.current_time()

    assert runs == [0, 2]
    assert repeating.stopped
    assert after_close == 3


async def test_repeating_invalid_arguments() -> None:
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(ValueError, match="interval"):
            runner.post_repeating_task(trio.sleep, 0, interval=0)
        with pytest.raises(ValueError, match="interval"):
            runner.post_repeating_task(trio.sleep, 0, interval=float("inf"))
        with pytest.raises(ValueError, match="initial_delay"):
            runner.post_repeating_task(trio.sleep, 0, interval=1, initial_delay=-1)
        with pytest.raises(TypeError, match="mode"):
            runner.post_repeating_task(trio.sleep, 0, interval=1, mode="fast")  # type: ignore[arg-type]  # on purpose
        with pytest.raises(TypeError, match="missed"):
            runner.post_repeating_task(trio.sleep, 0, interval=1, missed="x")  # type: ignore[arg-type]  # on purpose


async def test_repeating_runs_are_named_after_the_function(
    autojump_clock: trio.abc.Clock,
) -> None:
    def heartbeat() -> None:
        pass

    async with trunner.open_sequenced_runner() as runner:
        results = runner.subscribe_results(buffer=10)
        repeating = runner.post_repeating_task(heartbeat, interval=1)
        await trio.sleep(1.5)
        repeating.stop()
    names = [result.name async for result in results]

    assert len(names) == 2
    assert all(name.endswith("heartbeat") for name in names)
    assert "heartbeat" in repr(repeating)


async def test_cancel_all_stops_timers_and_keeps_runner_open(
    autojump_clock: trio.abc.Clock,
) -> None:
    ran: list[str] = []
    async with trunner.open_sequenced_runner() as runner:
        delayed = runner.post_delayed_task(ran.append, "delayed", delay=1)
        repeating = runner.post_repeating_task(
            ran.append, "repeat", interval=1, initial_delay=1
        )
        sleeper = runner.post_task(trio.sleep, 10)
        queued = runner.post_task(ran.append, "queued")
        await trio.testing.wait_all_tasks_blocked()

        runner.cancel_all()
        await runner.wait_idle()
        await trio.sleep(5)
        after = runner.post_task(ran.append, "after")
        await after.wait()

    assert ran == ["after"]
    assert [h.state for h in (delayed, sleeper, queued)] == [TaskState.CANCELLED] * 3
    assert repeating.stopped


@pytest.mark.parametrize("how", ["handle", "runner", "repeating"])
async def test_cancelled_timers_free_their_heap_entries_soon(
    autojump_clock: trio.abc.Clock, how: str
) -> None:
    # Issue 8, item 7: cancelled hour-long timers kept their heap entries (and
    # memory) until their deadline.
    count = 20_000 if how != "runner" else 2_000
    async with trunner.open_sequenced_runner() as runner:
        keep = runner.post_delayed_task(trio.sleep, 0, delay=1800)
        if how == "repeating":
            repeating = [
                runner.post_repeating_task(
                    trio.sleep, 0, interval=3600, initial_delay=3600
                )
                for _ in range(count)
            ]
            for repeating_handle in repeating:
                repeating_handle.stop()
        else:
            handles = [
                runner.post_delayed_task(trio.sleep, 0, delay=3600)
                for _ in range(count)
            ]
            for handle in handles:
                if how == "handle":
                    assert handle.cancel()
                else:
                    assert runner.cancel(handle.id)

        assert runner.statistics().delayed == 1
        assert len(runner._timers.heap) <= 2 * 64 + 1  # pyright: ignore[reportPrivateUsage]  # white-box: the heap's size
        await keep.wait()
        assert trio.current_time() == 1800
