from __future__ import annotations

import pytest
import trio
import trio.testing

import trunner
from trunner import Priority, TaskRunner, TaskTraits
from trunner._limiter import PriorityLimiter


async def test_max_workers_caps_tasks_across_runners(
    autojump_clock: trio.abc.Clock,
) -> None:
    running = 0
    peak = 0

    async def task() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        running -= 1

    async with trunner.open_scheduler(max_workers=2) as scheduler:
        runners: list[TaskRunner] = [
            scheduler.create_sequenced_runner() for _ in range(3)
        ]
        runners.append(scheduler.create_parallel_runner(max_concurrency=4))
        for runner in runners:
            for _ in range(3):
                runner.post_task(task)
        for runner in runners:
            await runner.wait_idle()

    assert peak == 2
    assert trio.current_time() == 12 / 2


async def test_waiting_runners_get_slots_in_priority_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    order: list[str] = []

    async with trunner.open_scheduler(max_workers=1) as scheduler:
        blocker = scheduler.create_sequenced_runner()
        blocker.post_task(trio.sleep, 1)
        await trio.testing.wait_all_tasks_blocked()
        for name, priority in [
            ("best", Priority.BEST_EFFORT),
            ("visible-1", Priority.USER_VISIBLE),
            ("blocking", Priority.USER_BLOCKING),
            ("visible-2", Priority.USER_VISIBLE),
        ]:
            runner = scheduler.create_sequenced_runner(
                traits=TaskTraits(priority=priority)
            )
            runner.post_task(order.append, name)
            await trio.testing.wait_all_tasks_blocked()

        stats = scheduler.statistics()
        assert stats is not None
        assert stats.waiting == (1, 2, 1)
        await trio.sleep(2)

    assert order == ["blocking", "visible-1", "visible-2", "best"]


async def test_priority_limiter_cancelled_waiter_takes_nothing() -> None:
    limiter = PriorityLimiter(1)
    assert limiter.acquire_nowait()
    with trio.move_on_after(0.01):
        await limiter.acquire(Priority.USER_BLOCKING)

    limiter.release()

    assert limiter.borrowed_tokens == 0
    assert limiter.total_tokens == 1


async def test_module_level_open_uses_current_scheduler() -> None:
    async with trunner.open_scheduler() as scheduler:
        assert trunner.current_scheduler() is scheduler
        async with (
            trunner.open_sequenced_runner() as seq,
            trunner.open_thread_runner() as thread,
        ):
            assert seq.scheduler is scheduler
            assert thread.scheduler is scheduler
            assert set(scheduler.runners) == {seq, thread}
            assert await seq.run(trunner.current_scheduler) is scheduler

    with pytest.raises(trunner.NoCurrentSchedulerError):
        trunner.current_scheduler()
    async with trunner.open_parallel_runner(max_concurrency=2) as private:
        assert private.scheduler is not scheduler


async def test_open_scheduler_validates_arguments() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        async with trunner.open_scheduler(max_workers=0):
            pass
    with pytest.raises(TypeError, match="hooks"):
        async with trunner.open_scheduler(hooks=print):  # type: ignore[arg-type]  # on purpose
            pass


async def test_runner_options_are_validated_naming_the_argument() -> None:
    async with trunner.open_scheduler() as scheduler:
        bad: list[tuple[dict[str, object], type[Exception], str]] = [
            ({"max_pending": 0}, ValueError, "max_pending"),
            ({"max_pending": "3"}, TypeError, "max_pending"),
            ({"traits": "fast"}, TypeError, "traits"),
            ({"timeout": -1}, ValueError, "timeout"),
            ({"timeout": 0}, ValueError, "timeout"),
            ({"middleware": [1]}, TypeError, "middleware"),
            ({"on_error": 3}, TypeError, "on_error"),
            ({"retry": 3}, TypeError, "retry"),
            ({"colour": "blue"}, TypeError, "colour"),
        ]
        for options, error, name in bad:
            with pytest.raises(error, match=name):
                scheduler.create_sequenced_runner(**options)  # type: ignore[arg-type]  # on purpose
        assert scheduler.runners == ()


async def test_post_task_validates_arguments() -> None:
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(TypeError, match="fn"):
            runner.post_task(42)  # type: ignore[call-overload]  # on purpose
        with pytest.raises(TypeError, match="traits"):
            runner.post_task(trio.sleep, 0, traits="x")  # type: ignore[call-overload]  # on purpose
        with pytest.raises(TypeError, match="name"):
            runner.post_task(trio.sleep, 0, name=3)  # type: ignore[call-overload]  # on purpose
        with pytest.raises(ValueError, match="timeout"):
            runner.post_task(trio.sleep, 0, timeout=-2)
        with pytest.raises(TypeError, match="retry"):
            runner.post_task(trio.sleep, 0, retry=5)  # type: ignore[call-overload]  # on purpose
        assert runner.statistics().pending == 0


async def test_traits_validate_their_fields() -> None:
    with pytest.raises(TypeError):
        TaskTraits(priority=3)  # type: ignore[arg-type]  # on purpose
    with pytest.raises(TypeError):
        TaskTraits(may_block="yes")  # type: ignore[arg-type]  # on purpose
    assert Priority.BEST_EFFORT < Priority.USER_VISIBLE < Priority.USER_BLOCKING


async def test_created_runner_after_scheduler_closed_is_refused() -> None:
    async with trunner.open_scheduler() as scheduler:
        pass
    with pytest.raises(trunner.RunnerClosedError):
        scheduler.create_sequenced_runner()
