"""Callbacks are checked at construction: async where awaited, plain where called.

An async function given as a hook or ``on_error`` was accepted and never ran
(only a "coroutine never awaited" warning), and a plain function given as
middleware passed the check and then failed every task. Each is refused with a
TypeError naming the argument, before anything is built.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pytest

import trunner
from trunner import TaskHooks

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from trunner import TaskHandle, TaskRunner


async def async_hook(task: TaskHandle[object]) -> None:
    del task


def generator_hook(task: TaskHandle[object]) -> Iterator[None]:
    del task
    yield


async def async_on_error(handle: TaskHandle[object], exc: BaseException) -> None:
    del handle, exc


@pytest.mark.parametrize("hook", ["on_queued", "on_start"])
@pytest.mark.parametrize("fn", [async_hook, generator_hook])
def test_hooks_refuse_async_and_generator_functions(hook: str, fn: object) -> None:
    with pytest.raises(TypeError, match=rf"^{hook} must be a plain callable"):
        TaskHooks(**{hook: fn})  # type: ignore[arg-type]  # bad on purpose


def test_on_finish_refuses_an_async_function() -> None:
    async def on_finish(task: object, result: object) -> None:
        del task, result

    with pytest.raises(TypeError, match=r"^on_finish must be a plain callable"):
        TaskHooks(on_finish=on_finish)


def test_hooks_check_their_arguments() -> None:
    def no_arguments() -> None:
        pass

    with pytest.raises(TypeError, match=r"on_start must take 1 positional argument"):
        TaskHooks(on_start=no_arguments)  # type: ignore[arg-type]  # bad on purpose
    # Plain callables of every kind pass.
    TaskHooks(
        on_queued=print,
        on_start=functools.partial(print, "started"),
        on_finish=lambda task, result: None,
    )


async def test_on_error_refuses_an_async_function() -> None:
    async with trunner.open_scheduler() as scheduler:
        with pytest.raises(TypeError, match=r"^on_error must be a plain callable"):
            scheduler.create_sequenced_runner(on_error=async_on_error)
        with pytest.raises(TypeError, match=r"^on_error must be a plain callable"):
            scheduler.create_parallel_runner(
                max_concurrency=2, on_error=functools.partial(async_on_error)
            )


class AsyncMiddleware:
    async def __call__(
        self, task: TaskHandle[object], call_next: Callable[[], Awaitable[object]]
    ) -> object:
        del task
        return await call_next()


async def tagging(
    tag: str, task: TaskHandle[object], call_next: Callable[[], Awaitable[object]]
) -> object:
    del tag, task
    return await call_next()


def sync_middleware(
    task: TaskHandle[object], call_next: Callable[[], Awaitable[object]]
) -> Awaitable[object]:
    del task
    return call_next()


async def one_argument(task: TaskHandle[object]) -> object:
    del task
    return None


async def test_middleware_must_be_async_callables() -> None:
    async with trunner.open_scheduler() as scheduler:
        with pytest.raises(TypeError, match=r"^middleware\[1\] must be an async"):
            scheduler.create_sequenced_runner(
                middleware=[AsyncMiddleware(), sync_middleware]
            )
        with pytest.raises(TypeError, match=r"^middleware\[0\] must take 2 positional"):
            scheduler.create_sequenced_runner(middleware=[one_argument])  # type: ignore[list-item]  # bad on purpose
        # Async functions, objects with an async __call__, and partials of
        # either are async callables.
        runner = scheduler.create_sequenced_runner(
            middleware=[
                AsyncMiddleware(),
                functools.partial(tagging, "a"),
                functools.partial(AsyncMiddleware()),
            ]
        )
        assert await runner.run(lambda: 5) == 5


async def test_pool_callables_are_checked() -> None:
    async def async_check_health(error: Exception) -> bool:
        del error
        return True

    def generator_create() -> Iterator[int]:
        yield 1

    def create() -> object:
        return object()

    def no_argument() -> None:
        pass

    with pytest.raises(TypeError, match=r"^check_health must be a plain callable"):
        trunner.open_resource_pool(create, print, check_health=async_check_health)  # type: ignore[arg-type]  # bad on purpose
    with pytest.raises(TypeError, match=r"^create must be a plain or async function"):
        trunner.open_resource_pool(generator_create, print)
    with pytest.raises(TypeError, match=r"^destroy must take 1 positional argument"):
        trunner.open_resource_pool(create, no_argument)  # type: ignore[arg-type]  # bad on purpose
    destroyed: list[object] = []
    async with trunner.open_resource_pool(
        create, functools.partial(destroyed.append), check_health=lambda error: True
    ) as pool:
        assert await pool.queue_task(lambda resource: 3) == 3
    assert len(destroyed) == 1


async def async_generator_task() -> AsyncIterator[int]:
    yield 1


def generator_task() -> Iterator[int]:
    yield 1


async def async_generator_of_resource(resource: object) -> AsyncIterator[object]:
    yield resource


async def noop() -> None:
    pass


async def assert_every_post_refuses(
    runner: TaskRunner, fn: Callable[[], object]
) -> None:
    refused = r"must be a plain or async function; the (async )?generator function"
    # A function posted fine just before is no shortcut past the check.
    runner.post_task(noop)
    posts: list[tuple[Callable[[], object], str]] = [
        (lambda: runner.post_task(fn), "fn"),
        (lambda: runner.post_task(fn, traits=trunner.TaskTraits()), "fn"),
        (lambda: runner.post_tasks([noop, fn]), "every item of fns"),
        (lambda: runner.post_delayed_task(fn, delay=1), "fn"),
        (lambda: runner.post_repeating_task(fn, interval=1), "fn"),
        (lambda: runner.post_task_and_reply(fn, print, runner), "task"),
        (lambda: runner.post_task_and_reply(print, fn, runner), "reply"),
        (lambda: runner.flush_soon(fn), "callback"),
    ]
    for post, what in posts:
        with pytest.raises(TypeError, match=rf"^{what} {refused}"):
            post()
    with pytest.raises(TypeError, match=rf"^fn {refused}"):
        await runner.send_task(fn)
    with pytest.raises(TypeError, match=rf"^fn {refused}"):
        await runner.run(fn)
    await runner.wait_idle()
    assert runner.statistics().succeeded == 1  # noop only


@pytest.mark.parametrize(
    "fn",
    [async_generator_task, generator_task, functools.partial(async_generator_task)],
    ids=["async-generator", "generator", "partial"],
)
async def test_posts_refuse_generator_functions_naming_the_argument(
    fn: Callable[[], object],
) -> None:
    # A generator function posted as a task ran none of its code: its task
    # "succeeded" with the generator object as its result.
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner() as sequenced,
        scheduler.open_parallel_runner(max_concurrency=2) as parallel,
    ):
        await assert_every_post_refuses(sequenced, fn)
        await assert_every_post_refuses(parallel, fn)


async def test_a_function_that_returns_a_generator_is_a_task() -> None:
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner() as runner,
    ):
        made = await runner.run(lambda: generator_task())
        assert list(made) == [1]


async def test_thread_runner_refuses_generator_functions() -> None:
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_thread_runner() as runner,
    ):
        for fn in (generator_task, async_generator_task):
            with pytest.raises(TypeError, match=r"^fn must be a plain or async"):
                runner.post_task(fn)


async def test_pool_tasks_refuse_generator_functions() -> None:
    async with trunner.open_resource_pool(object, print) as pool:
        with pytest.raises(TypeError, match=r"fn must be a plain or async function"):
            await pool.queue_task(async_generator_of_resource)
        with pytest.raises(TypeError, match=r"fn must be a plain or async function"):
            await pool.run_task(async_generator_of_resource)
        assert await pool.queue_task(lambda resource: 3) == 3
