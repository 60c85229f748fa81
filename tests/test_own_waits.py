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


# A task of a sequenced runner that waited for a task of the same runner (one
# posted after it, a delayed one, its own) hung forever: that task starts only
# once the waiting one has ended.

SEQUENCE_DEADLOCK = "the runner runs one task at a time, so that starts only once"


async def test_waiting_for_a_later_task_of_the_sequence_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()
        later_ran: list[str] = []

        async def waits_for_a_later_task() -> None:
            later = runner.post_task(lambda: later_ran.append("later"))
            with trio.fail_after(60):
                await later.wait()

        handle = runner.post_task(waits_for_a_later_task)
        with pytest.raises(RuntimeError, match=SEQUENCE_DEADLOCK):
            await handle.wait()
        await runner.wait_idle()
        assert later_ran == ["later"]  # it runs once the waiting task has ended


@pytest.mark.parametrize("which", ["own", "delayed", "from-child-task"])
async def test_other_waits_in_the_sequence_raise(
    autojump_clock: trio.testing.MockClock, which: str
) -> None:
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()
        own: list[trunner.TaskHandle[None]] = []

        async def wait_for(handle: trunner.TaskHandle[object]) -> None:
            with trio.fail_after(60):
                await handle.wait()

        async def waits() -> None:
            if which == "own":
                await wait_for(own[0])
            elif which == "delayed":
                await wait_for(runner.post_delayed_task(lambda: None, delay=1))
            else:
                later = runner.post_task(lambda: None)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(wait_for, later)
                except ExceptionGroup as group:  # the child task's error
                    (error,) = group.exceptions
                    raise error from None

        own.append(runner.post_task(waits))
        with pytest.raises(RuntimeError, match=SEQUENCE_DEADLOCK):
            await own[0].wait()


async def test_run_and_run_all_on_the_own_sequence_raise_and_run_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ran: list[str] = []
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()

        async def runs_on_its_own_runner() -> None:
            with trio.fail_after(60):
                await runner.run(lambda: ran.append("run"))

        async def runs_all_on_its_own_runner() -> None:
            with trio.fail_after(60):
                await trunner.run_all(runner, [lambda: ran.append("run_all")])

        for fn in (runs_on_its_own_runner, runs_all_on_its_own_runner):
            with pytest.raises(RuntimeError, match=SEQUENCE_DEADLOCK):
                await runner.post_task(fn).wait()
        await runner.wait_idle()
    assert ran == []


async def test_send_task_on_a_full_own_sequence_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner(max_pending=1)

        async def sends_to_its_own_full_runner() -> None:
            runner.post_task(lambda: None)  # now full
            with trio.fail_after(60):
                await runner.send_task(lambda: None)

        handle = runner.post_task(sends_to_its_own_full_runner)
        with pytest.raises(RuntimeError, match=SEQUENCE_DEADLOCK):
            await handle.wait()


async def test_waits_that_end_are_fine(autojump_clock: trio.testing.MockClock) -> None:
    async with (
        trunner.open_scheduler() as scheduler,
        trio.open_nursery() as outside,
    ):
        sequenced = scheduler.create_sequenced_runner()
        other = scheduler.create_sequenced_runner()
        parallel = scheduler.create_parallel_runner(max_concurrency=2)
        got: list[object] = []

        async def waits_elsewhere() -> None:
            # Another runner's task, and a parallel runner's own task.
            got.append(await other.post_task(lambda: "other").wait())
            got.append(await other.run(lambda: "run"))
            got.append(await parallel.post_task(lambda: "parallel").wait())

        async def parallel_waits_for_its_own() -> None:
            got.append(await parallel.post_task(lambda: "own parallel").wait())

        async def leaves_a_waiter_behind() -> None:
            # A trio task started in a nursery from outside outlives this task:
            # the later task runs once this one has ended, and its wait ends.
            later = sequenced.post_task(lambda: "later")
            outside.start_soon(wait_and_keep, later)

        async def wait_and_keep(handle: trunner.TaskHandle[str]) -> None:
            got.append(await handle.wait())

        with trio.fail_after(60):
            await sequenced.post_task(waits_elsewhere).wait()
            await parallel.post_task(parallel_waits_for_its_own).wait()
            await sequenced.post_task(leaves_a_waiter_behind).wait()
            await sequenced.wait_idle()
            await trio.testing.wait_all_tasks_blocked()
    assert got == ["other", "run", "parallel", "own parallel", "later"]


async def test_one_worker_parallel_runner_is_a_sequence_for_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # With max_concurrency=1 a parallel runner also runs one task at a time.
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_parallel_runner(max_concurrency=1)

        async def waits_for_a_later_task() -> None:
            with trio.fail_after(60):
                await runner.post_task(lambda: None).wait()

        with pytest.raises(RuntimeError, match=SEQUENCE_DEADLOCK):
            await runner.post_task(waits_for_a_later_task).wait()
        assert await runner.run(lambda: 5) == 5  # from outside: fine
