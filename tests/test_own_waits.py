"""A task of a runner cannot wait for that runner's barriers: it would wait for itself.

``flush()``, ``wait_idle()`` and ``aclose()`` wait for tasks that include the
caller when the caller is a task of the runner (on a sequenced or thread runner
the tasks after it cannot start either; on a parallel runner the caller itself
was posted before the call and is still running). Each raises RuntimeError at
once instead of hanging forever. Tests run in virtual time: a hang fails the
``fail_after`` at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.lowlevel
import trio.testing

import trunner
from trunner import TaskRunner

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

BARRIERS: list[tuple[str, str]] = [
    ("flush", "to flush"),
    ("wait_idle", "to be idle"),
    ("aclose", "to close"),
]


def _barrier(runner: TaskRunner, name: str) -> Callable[[], Awaitable[None]]:
    method: Callable[[], Awaitable[None]] = getattr(runner, name)
    return method


@pytest.mark.parametrize(("name", "what"), BARRIERS)
@pytest.mark.parametrize("kind", ["sequenced", "parallel"])
async def test_own_task_barrier_raises(
    autojump_clock: trio.testing.MockClock, kind: str, name: str, what: str
) -> None:
    async with trunner.open_scheduler() as scheduler:
        runner: TaskRunner = (
            scheduler.create_sequenced_runner()
            if kind == "sequenced"
            else scheduler.create_parallel_runner(max_concurrency=4)
        )

        async def waits_for_own_runner() -> None:
            with trio.fail_after(60):
                await _barrier(trunner.current_runner(), name)()

        handle = runner.post_task(waits_for_own_runner)
        with pytest.raises(RuntimeError, match=f"cannot wait for the runner {what}"):
            await handle.wait()
        # The runner still works, and the same barrier from outside returns.
        assert await runner.post_task(lambda: 7).wait() == 7
        await _barrier(runner, name)()


@pytest.mark.parametrize(("name", "what"), BARRIERS[:2])
async def test_own_child_task_barrier_raises(
    autojump_clock: trio.testing.MockClock, name: str, what: str
) -> None:
    # A trio task started inside a task of the runner is part of that task.
    async with trunner.open_parallel_runner(max_concurrency=4) as runner:
        errors: list[BaseException] = []

        async def child() -> None:
            try:
                with trio.fail_after(60):
                    await _barrier(runner, name)()
            except RuntimeError as exc:
                errors.append(exc)

        async def parent() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)

        await runner.post_task(parent).wait()
        assert len(errors) == 1
        assert f"cannot wait for the runner {what}" in str(errors[0])


@pytest.mark.parametrize(("name", "what"), BARRIERS)
async def test_thread_runner_task_barrier_raises(name: str, what: str) -> None:
    token = trio.lowlevel.current_trio_token()
    async with trunner.open_thread_runner() as runner:

        def waits_for_own_runner() -> None:
            trio.from_thread.run(_barrier(runner, name), trio_token=token)

        handle = runner.post_task(waits_for_own_runner)
        with (
            trio.fail_after(10),
            pytest.raises(RuntimeError, match=f"cannot wait for the runner {what}"),
        ):
            await handle.wait()


async def test_other_runner_barrier_is_fine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Only the runner's own tasks are refused: a task of another runner waits.
    async with trunner.open_scheduler() as scheduler:
        first = scheduler.create_sequenced_runner()
        second = scheduler.create_sequenced_runner()
        first.post_task(trio.sleep, 5)

        async def waits_for_first() -> str:
            await first.flush()
            await first.wait_idle()
            return "waited"

        assert await second.post_task(waits_for_first).wait() == "waited"


async def test_pool_task_cannot_stop_its_pool(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trunner.open_resource_pool(object, lambda _: None, workers=2) as pool:

        async def stops_own_pool(_resource: object) -> None:
            with trio.fail_after(60):
                await pool.stop()

        with pytest.raises(RuntimeError, match="cannot wait for the pool to stop"):
            await pool.queue_task(stops_own_pool)
        # The refused call did nothing: the pool is still open.
        assert await pool.queue_task(lambda _: 5) == 5


async def test_one_worker_pool_task_cannot_queue_on_its_pool(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trunner.open_resource_pool(object, lambda _: None) as pool:

        async def queues_on_own_pool(_resource: object) -> int:
            with trio.fail_after(60):
                return await pool.queue_task(lambda _: 1)

        async def runs_on_own_pool(_resource: object) -> int:
            return await pool.run_task(lambda _: 2)

        with pytest.raises(RuntimeError, match="max_workers=1 cannot queue_task"):
            await pool.queue_task(queues_on_own_pool)
        # run_task never waits behind the queue: it is the way from inside.
        assert await pool.queue_task(runs_on_own_pool) == 2


async def test_pool_task_may_queue_when_other_workers_exist(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trunner.open_resource_pool(object, lambda _: None, workers=2) as pool:

        async def queues_on_own_pool(_resource: object) -> int:
            return await pool.queue_task(lambda _: 1)

        assert await pool.queue_task(queues_on_own_pool) == 1
