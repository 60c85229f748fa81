"""What the type checkers infer for posting and awaiting tasks (STYLE section 5).

Checked by ``nox -s typecheck`` (mypy and pyright); never executed.
"""

from __future__ import annotations

import functools
from typing import assert_type

import outcome

import trunner


async def fetch(url: str, retries: int) -> bytes:
    del url, retries
    return b""


def parse(data: bytes) -> dict[str, int]:
    del data
    return {}


async def nothing() -> None:
    pass


def answer() -> int:
    return 42


async def check_run(runner: trunner.TaskRunner) -> None:
    assert_type(await runner.run(fetch, "https://example.org", 3), bytes)
    assert_type(await runner.run(parse, b"{}"), dict[str, int])
    assert_type(await runner.run(nothing), None)
    assert_type(await runner.run(functools.partial(fetch, retries=1), "x"), bytes)


async def check_post_task(runner: trunner.SequencedTaskRunner) -> None:
    handle = runner.post_task(fetch, "https://example.org", 3)
    assert_type(handle, trunner.TaskHandle[bytes])
    assert_type(runner.post_task(parse, b"{}"), trunner.TaskHandle[dict[str, int]])
    assert_type(runner.post_delayed_task(answer, delay=1.0), trunner.TaskHandle[int])
    assert_type(await runner.send_task(answer), trunner.TaskHandle[int])
    assert_type(
        runner.post_repeating_task(nothing, interval=1.0), trunner.RepeatingHandle
    )


async def check_wait(runner: trunner.ParallelTaskRunner) -> None:
    handle = runner.post_task(fetch, "https://example.org", 3)
    assert_type(await handle.wait(), bytes)
    assert_type(handle.outcome, outcome.Outcome[bytes] | None)
    assert_type(await runner.post_task(nothing).wait(), None)


async def check_run_all(runner: trunner.TaskRunner) -> None:
    assert_type(await trunner.run_all(runner, [answer, answer]), list[int])
    tasks = [functools.partial(fetch, "a", 1), functools.partial(fetch, "b", 2)]
    assert_type(await trunner.run_all(runner, tasks), list[bytes])


async def check_pool(pool: trunner.ResourcePool[str]) -> None:
    def length(resource: str, extra: int) -> int:
        return len(resource) + extra

    async def upper(resource: str) -> str:
        return resource.upper()

    assert_type(await pool.queue_task(length, 1), int)
    assert_type(await pool.queue_task(upper, priority=True), str)
    assert_type(await pool.run_task(upper), str)
