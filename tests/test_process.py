from __future__ import annotations

import os
import threading

import pytest
import trio
import trio.testing

import trunner
from trunner import TaskState

from . import _process_work as work
from ._helpers import state_of

pytest.importorskip("trio_parallel")


async def test_process_runner_runs_functions_in_other_processes() -> None:
    async with trunner.open_process_runner(max_workers=2) as runner:
        handles = [runner.post_task(work.square, i) for i in range(5)]
        pids = {await runner.run(work.pid) for _ in range(4)}

        assert [await h.wait() for h in handles] == [0, 1, 4, 9, 16]
        assert os.getpid() not in pids
        assert runner.max_workers == 2


async def test_process_runner_task_error_goes_to_handle() -> None:
    async with trunner.open_process_runner(
        max_workers=1, on_error=lambda h, e: None
    ) as runner:
        handle = runner.post_task(work.fail, "bad input")
        with pytest.raises(ValueError, match="bad input"):
            await handle.wait()

    assert handle.state is TaskState.FAILED


async def test_cancelling_a_running_task_kills_its_worker() -> None:
    async with trunner.open_process_runner(max_workers=1) as runner:
        first_pid = await runner.run(work.pid)
        handle = runner.post_task(work.spin, 30.0)
        await trio.testing.wait_all_tasks_blocked()  # its worker waits for the process

        assert handle.state is TaskState.RUNNING
        assert handle.cancel() is True
        with trio.fail_after(20):
            await runner.wait_idle()
        second_pid = await runner.run(work.pid)

    assert state_of(handle) is TaskState.CANCELLED
    assert second_pid != first_pid  # the worker that ran it was killed


async def test_process_task_timeout_kills_the_worker() -> None:
    # Real time: a virtual clock stands still while a process works.
    async with trunner.open_process_runner(
        max_workers=1, on_error=lambda h, e: None
    ) as runner:
        first_pid = await runner.run(work.pid)
        handle = runner.post_task(work.spin, 30.0, timeout=0.3)
        with trio.fail_after(20), pytest.raises(trunner.TaskTimeoutError):
            await handle.wait()

        assert await runner.run(work.pid) != first_pid


async def test_process_runner_holds_virtual_clock_while_working(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_process_runner(max_workers=1) as runner:
        t0 = trio.current_time()
        handle = runner.post_task(work.spin, 0.2, timeout=5)

        assert await handle.wait() == 0.2
        assert trio.current_time() - t0 < 5


async def test_process_runner_repeating_and_delayed_tasks(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_process_runner(max_workers=1) as runner:
        delayed = runner.post_delayed_task(work.square, 7, delay=1)
        repeating = runner.post_repeating_task(work.square, 3, interval=1)
        assert await delayed.wait() == 49
        await trio.sleep(1.5)
        repeating.stop()

    assert repeating.runs >= 2


async def test_process_runner_validates_max_workers() -> None:
    async with trunner.open_scheduler() as scheduler:
        with pytest.raises(ValueError, match="max_workers"):
            scheduler.create_process_runner(max_workers=0)
        runner = scheduler.create_process_runner()

        assert runner.max_workers == (os.cpu_count() or 1)
        assert await runner.run(work.square, 3) == 9


async def test_process_runner_refuses_unpicklable_work_at_post_time() -> None:
    lock = threading.Lock()
    async with trunner.open_process_runner(max_workers=1) as runner:
        with pytest.raises(TypeError, match="pickled"):
            runner.post_task(lambda: 1)
        with pytest.raises(TypeError, match="pickled"):
            runner.post_task(work.square, lock)  # type: ignore[arg-type]  # on purpose
        with pytest.raises(TypeError, match="async function"):
            # On purpose; the types accept it: an async function is a callable too.
            runner.post_task(trio.sleep, 1)

        assert runner.statistics().pending == 0
