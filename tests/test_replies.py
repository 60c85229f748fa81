from __future__ import annotations

import functools

import outcome
import pytest
import trio
import trio.testing

import trunner
import trunner.testing
from trunner import TaskState


async def test_reply_runs_on_reply_runner_after_task() -> None:
    log: list[tuple[str, trunner.TaskRunner]] = []
    async with trunner.open_scheduler() as scheduler:
        worker = scheduler.create_parallel_runner(max_concurrency=2)
        home = scheduler.create_sequenced_runner()

        def start() -> None:
            worker.post_task_and_reply(
                lambda: log.append(("task", trunner.current_runner())),
                lambda: log.append(("reply", trunner.current_runner())),
            )

        home.post_task(start)
        await trunner.testing.run_until_idle()

    assert log == [("task", worker), ("reply", home)]


async def test_reply_with_result_gets_value_and_error_outcomes() -> None:
    got: list[outcome.Outcome[int]] = []

    def fail() -> int:
        raise ValueError("bad")

    async with trunner.open_scheduler() as scheduler:
        home = scheduler.create_sequenced_runner()
        other = scheduler.create_sequenced_runner(on_error=lambda h, e: None)
        other.post_task_and_reply_with_result(lambda: 7, got.append, reply_runner=home)
        other.post_task_and_reply_with_result(fail, got.append, reply_runner=home)
        await trunner.testing.run_until_idle()

    assert got[0] == outcome.Value(7)
    assert isinstance(got[1], outcome.Error)
    with pytest.raises(ValueError, match="bad"):
        got[1].unwrap()


async def test_reply_comes_after_failed_cancelled_and_skipped_tasks(
    autojump_clock: trio.abc.Clock,
) -> None:
    replies: list[str] = []
    results: list[outcome.Outcome[object]] = []
    async with trunner.open_scheduler() as scheduler:
        home = scheduler.create_sequenced_runner()
        worker = scheduler.create_sequenced_runner(on_error=lambda h, e: None)
        failing = worker.post_task_and_reply(
            lambda: 1 / 0, lambda: replies.append("after-fail"), home
        )
        worker.post_task_and_reply_with_result(
            functools.partial(trio.sleep, 10), results.append, reply_runner=home
        )
        skipped = worker.post_task_and_reply_with_result(
            lambda: 3, results.append, reply_runner=home
        )
        await trio.sleep(1)
        worker.shutdown()  # cancels the running task, skips the pending one
        await trunner.testing.run_until_idle()

    assert failing.state is TaskState.FAILED
    assert replies == ["after-fail"]
    assert [type(r) for r in results] == [outcome.Error, outcome.Error]
    for result in results:
        with pytest.raises(trunner.TaskCancelledError):
            result.unwrap()
    assert skipped.state is TaskState.SKIPPED


async def test_reply_to_closed_runner_is_dropped() -> None:
    replies: list[str] = []
    async with trunner.open_scheduler() as scheduler:
        home = scheduler.create_sequenced_runner()
        worker = scheduler.create_sequenced_runner()
        gate = trio.Event()
        worker.post_task_and_reply(gate.wait, lambda: replies.append("reply"), home)
        await trio.testing.wait_all_tasks_blocked()
        await home.aclose()
        gate.set()
        await trunner.testing.run_until_idle()

    assert replies == []


async def test_reply_runner_defaults_to_current_runner() -> None:
    with pytest.raises(trunner.NoCurrentRunnerError):
        async with trunner.open_sequenced_runner() as runner:
            runner.post_task_and_reply(lambda: None, lambda: None)
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(TypeError, match="reply_runner"):
            runner.post_task_and_reply(lambda: None, lambda: None, reply_runner=3)  # type: ignore[arg-type]  # on purpose
