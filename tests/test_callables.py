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
    from collections.abc import Awaitable, Callable, Iterator

    from trunner import TaskHandle


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
