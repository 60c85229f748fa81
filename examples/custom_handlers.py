"""Hooks and middleware: watch each task's life, and wrap each attempt.

`trunner.TaskHooks` are plain callables told when a task is queued, starts and
finishes. Middleware, ``async def mw(task, call_next)``, wraps each attempt;
the first in the list is outermost. Here: a timing middleware, a retry-once
middleware, a caching one that short-circuits repeated work, and the logging
middleware of `trunner.contrib.middleware`.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import TYPE_CHECKING

import trio

import trunner
from trunner.contrib.middleware import logging_middleware

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Next = Callable[[], Awaitable[object]]


async def main() -> None:
    log = logging.getLogger("trunner.examples.custom_handlers")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("log: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    timings: list[str] = []
    cache: dict[str, object] = {}
    calls = 0

    async def timing(task: trunner.TaskHandle[object], call_next: Next) -> object:
        start = trio.current_time()
        try:
            return await call_next()
        finally:
            timings.append(f"{task.name}={trio.current_time() - start:.1f}s")

    async def retry_once(task: trunner.TaskHandle[object], call_next: Next) -> object:
        try:
            return await call_next()
        except ConnectionError as error:
            print(f"retry_once: {task.name} raised {error!r}; one more try")
            return await call_next()

    async def caching(task: trunner.TaskHandle[object], call_next: Next) -> object:
        if task.name in cache:
            print(f"caching: {task.name} served from the cache")
            return cache[task.name]
        cache[task.name] = result = await call_next()
        return result

    hooks = trunner.TaskHooks(
        on_queued=lambda task: print(f"queued {task.name}"),
        on_start=lambda task: print(f"start  {task.name}"),
        on_finish=lambda task, result: print(
            f"finish {task.name}: {result.state.name} value={result.value!r}"
        ),
    )

    async def square(n: int) -> int:
        nonlocal calls
        calls += 1
        await trio.sleep(0.1 * n)
        if calls == 2:
            raise ConnectionError("flaky link")
        return n * n

    middleware = [logging_middleware(log), timing, caching, retry_once]
    try:
        async with trunner.open_sequenced_runner(
            name="calc", hooks=hooks, middleware=middleware
        ) as runner:
            for n in (2, 3, 2):
                runner.post_task(functools.partial(square, n), name=f"square({n})")
            await runner.wait_idle()
    finally:
        log.removeHandler(handler)
    print(f"square ran {calls} times for 3 tasks (one retry, one cache hit)")
    print("timing middleware: " + ", ".join(timings))


if __name__ == "__main__":
    trio.run(main)
