from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trunner
from trunner import Priority, TaskRunner, TaskTraits
from trunner._limiter import PriorityLimiter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


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


def _message(call: Callable[[], object]) -> str:
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert type(info.value) in (TypeError, ValueError)  # no attrs error classes
    return str(info.value)


async def test_bad_options_read_in_a_users_words() -> None:
    # Issue 8: attrs' tuple-shaped messages, NotCallableError and
    # "RunnerConfig.__init__" reached users.
    async with trunner.open_scheduler() as scheduler:
        create = scheduler.create_sequenced_runner
        expected: list[tuple[Callable[[], object], str]] = [
            (lambda: create(traits=5), "traits must be a TaskTraits, not 5"),  # type: ignore[arg-type]  # on purpose
            (lambda: create(name=5), "name must be a str or None, not 5"),  # type: ignore[arg-type]  # on purpose
            (lambda: create(hooks=5), "hooks must be a TaskHooks or None, not 5"),  # type: ignore[arg-type]  # on purpose
            (lambda: create(retry=5), "retry must be a RetryPolicy or None, not 5"),  # type: ignore[arg-type]  # on purpose
            (
                lambda: create(rate_limit=5),  # type: ignore[arg-type]  # on purpose
                "rate_limit must be a RateLimit or None, not 5",
            ),
            (
                lambda: create(on_error=5),  # type: ignore[arg-type]  # on purpose
                "on_error must be callable as on_error(handle, exc) or None, not 5",
            ),
            (
                lambda: create(colour="blue"),  # type: ignore[call-arg]  # on purpose
                "create_sequenced_runner() got an unexpected keyword argument "
                "'colour'; the runner options are traits, name, max_pending, "
                "retry, timeout, hooks, middleware, rate_limit, on_error",
            ),
            (
                lambda: TaskTraits(priority=3),  # type: ignore[arg-type]  # on purpose
                "priority must be a Priority (such as "
                "trunner.Priority.USER_BLOCKING), not 3",
            ),
            (
                lambda: TaskTraits(shutdown_behavior="block"),  # type: ignore[arg-type]  # on purpose
                "shutdown_behavior must be a ShutdownBehavior (such as "
                "trunner.ShutdownBehavior.BLOCK_SHUTDOWN), not 'block'",
            ),
            (
                lambda: TaskTraits(may_block="yes"),  # type: ignore[arg-type]  # on purpose
                "may_block must be True or False, not 'yes'",
            ),
        ]
        for call, message in expected:
            assert _message(call) == message

    async with trunner.open_scheduler() as scheduler:
        with pytest.raises(TypeError, match=r"^open_parallel_runner\(\) got an"):
            async with scheduler.open_parallel_runner(max_concurrency=1, size=3):  # type: ignore[call-arg]  # on purpose
                pass


async def test_may_block_function_returning_an_awaitable_is_named() -> None:
    async def work() -> None:
        await trio.lowlevel.checkpoint()

    def not_plain() -> Awaitable[None]:
        return work()

    traits = TaskTraits(may_block=True)
    async with trunner.open_sequenced_runner(on_error=lambda h, e: None) as runner:
        with pytest.raises(TypeError, match=r"'.*not_plain' returned an awaitable"):
            await runner.post_task(not_plain, traits=traits).wait()
