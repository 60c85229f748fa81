from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trunner
from trunner import TaskState

from ._helpers import state_of

if TYPE_CHECKING:
    import outcome


async def test_thread_runner_runs_every_task_on_one_thread() -> None:
    async with trunner.open_thread_runner(name="db") as runner:
        idents = [await runner.run(threading.get_ident) for _ in range(5)]

        assert len(set(idents)) == 1
        assert idents[0] != threading.get_ident()
        assert runner.thread.name == "trunner:db"
    assert not runner.thread.is_alive()


async def test_thread_runner_owns_a_sqlite_connection() -> None:
    async with trunner.open_thread_runner() as runner:
        connection = await runner.run(sqlite3.connect, ":memory:")
        await runner.run(connection.execute, "create table t (x)")
        for i in range(3):
            runner.post_task(connection.execute, "insert into t values (?)", (i,))
        rows = await runner.run(
            lambda: connection.execute("select sum(x) from t").fetchone()
        )
        await runner.run(connection.close)

    assert rows == (3,)


async def test_thread_runner_refuses_async_functions() -> None:
    async with trunner.open_thread_runner() as runner:
        with pytest.raises(TypeError, match="plain functions"):
            # On purpose; the types accept it: an async function is a callable too.
            runner.post_task(trio.sleep, 0)


async def test_thread_runner_task_error_goes_to_handle() -> None:
    def fail() -> None:
        raise OSError("disk")

    async with trunner.open_thread_runner(on_error=lambda h, e: None) as runner:
        handle = runner.post_task(fail)
        with pytest.raises(OSError, match="disk"):
            await handle.wait()
        assert await runner.run(lambda: "next") == "next"

    assert handle.state is TaskState.FAILED


async def test_thread_runner_current_runner_and_sequence_on_the_thread() -> None:
    async with trunner.open_thread_runner() as runner:
        checker = trunner.SequenceChecker()
        assert await runner.run(trunner.current_runner) is runner
        assert await runner.run(trunner.current_scheduler) is runner.scheduler
        await runner.run(checker.check)
        await runner.run(checker.check)
        assert await runner.run(runner.runs_tasks_in_current_sequence)
        with pytest.raises(trunner.SequenceViolationError):
            checker.check()


async def test_thread_task_running_cannot_be_cancelled_and_runs_to_end() -> None:
    release = threading.Event()
    async with trunner.open_thread_runner() as runner:
        handle = runner.post_task(lambda: release.wait(5) and "finished")
        await trio.testing.wait_all_tasks_blocked()  # the consumer waits for the thread

        assert handle.state is TaskState.RUNNING
        assert handle.cancel() is False
        runner.shutdown()
        release.set()

    assert state_of(handle) is TaskState.SUCCEEDED
    result = handle.outcome
    assert result is not None
    assert result.unwrap() == "finished"


async def test_thread_runner_post_task_and_reply_from_its_own_thread() -> None:
    got: list[object] = []
    async with trunner.open_scheduler() as scheduler:
        thread = scheduler.create_thread_runner()
        seq = scheduler.create_sequenced_runner()
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def reply(result: outcome.Outcome[str]) -> None:
            # The reply runs back on the thread runner, whose task posted it.
            got.append((result.unwrap(), threading.current_thread() is thread.thread))
            token.run_sync_soon(done.set)

        def on_thread() -> None:
            seq.post_task_and_reply_with_result(lambda: "computed", reply)

        thread.post_task(on_thread)
        with trio.fail_after(5):
            await done.wait()

    assert got == [("computed", True)]


async def test_thread_runner_sync_function_returning_awaitable_fails_clearly() -> None:
    async def coro() -> None:
        pass

    async with trunner.open_thread_runner(on_error=lambda h, e: None) as runner:
        handle = runner.post_task(lambda: coro())
        with pytest.raises(TypeError, match="awaitable"):
            await handle.wait()


async def test_thread_work_does_not_let_an_autojump_clock_run_ahead(
    autojump_clock: trio.abc.Clock,
) -> None:
    import time

    async with trunner.open_thread_runner() as runner:
        handle = runner.post_task(time.sleep, 0.05, timeout=5)
        t0 = trio.current_time()
        await handle.wait()

        assert trio.current_time() - t0 < 5
        assert handle.state is TaskState.SUCCEEDED
        runner.post_delayed_task(time.sleep, 0.01, delay=3)
        await trio.sleep(4)
        assert trio.current_time() - t0 == 4
