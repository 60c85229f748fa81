from __future__ import annotations

import functools
import inspect
from typing import Protocol, cast

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


async def _async_noop() -> None:
    await trio.lowlevel.checkpoint()


def _make_runner(scheduler: trunner.Scheduler, kind: str) -> trunner.TaskRunner:
    if kind == "sequenced":
        return scheduler.create_sequenced_runner()
    if kind == "parallel":
        return scheduler.create_parallel_runner(max_concurrency=2)
    return scheduler.create_thread_runner()


class _PostWithReply(Protocol):
    # post_task_and_reply(_with_result), loosely typed: the tests give them
    # bad arguments.
    def __call__(
        self, task: object, reply: object, reply_runner: trunner.TaskRunner
    ) -> trunner.TaskHandle[object]: ...


def _post_with_reply(runner: trunner.TaskRunner, with_result: bool) -> _PostWithReply:
    if with_result:
        return cast("_PostWithReply", runner.post_task_and_reply_with_result)
    return cast("_PostWithReply", runner.post_task_and_reply)


@pytest.mark.parametrize("kind", ["sequenced", "parallel", "thread"])
@pytest.mark.parametrize("with_result", [False, True])
async def test_reply_that_is_not_callable_posts_nothing(
    kind: str, with_result: bool
) -> None:
    # Issue 8, item 4: the task was posted (and ran) before the reply was checked,
    # and the message named ``fn``.
    ran: list[str] = []
    async with trunner.open_scheduler() as scheduler:
        runner = _make_runner(scheduler, kind)
        post = _post_with_reply(runner, with_result)

        with pytest.raises(TypeError, match=r"^reply must be callable, not 42$"):
            post(lambda: ran.append("task"), 42, reply_runner=runner)

        await trunner.testing.run_until_idle()
        assert ran == []
        assert runner.statistics() == trunner.RunnerStatistics(0, 0, 0, 0, 0, 0, 0)


def _zero_arguments() -> None:
    pass


def _one_argument(result: object) -> None:
    del result


def _two_arguments(first: object, second: object) -> None:
    del first, second


@pytest.mark.parametrize("kind", ["sequenced", "parallel", "thread"])
@pytest.mark.parametrize(
    ("with_result", "task", "reply", "message"),
    [
        # The reply of post_task_and_reply_with_result gets the outcome.
        (
            True,
            _zero_arguments,
            _zero_arguments,
            r"^reply must take 1 positional argument, as in reply\(outcome\); "
            r"'_zero_arguments' does not$",
        ),
        # The reply of post_task_and_reply gets nothing.
        (
            False,
            _zero_arguments,
            _one_argument,
            r"^reply must take 0 positional arguments, as in reply\(\)",
        ),
        # The task of either gets nothing.
        (
            False,
            _one_argument,
            _zero_arguments,
            r"^task must take 0 positional arguments, as in task\(\)",
        ),
        (
            True,
            functools.partial(_two_arguments, 1),
            _one_argument,
            r"^task must take 0 positional arguments, as in task\(\)",
        ),
    ],
    ids=["reply-with-result", "reply", "task", "task-partial"],
)
async def test_task_and_reply_of_the_wrong_arity_post_nothing(
    kind: str,
    with_result: bool,
    task: object,
    reply: object,
    message: str,
) -> None:
    # The reply (or the task) failed only when it ran, TypeError from its call,
    # after the task had run.
    async with trunner.open_scheduler() as scheduler:
        runner = _make_runner(scheduler, kind)
        post = _post_with_reply(runner, with_result)
        with pytest.raises(TypeError, match=message):
            post(task, reply, reply_runner=runner)
        await trunner.testing.run_until_idle()
        assert runner.statistics() == trunner.RunnerStatistics(0, 0, 0, 0, 0, 0, 0)


async def test_builtins_whose_signature_cannot_be_read_are_accepted() -> None:
    # inspect.signature cannot read dir's: it may well take the arguments.
    with pytest.raises(ValueError, match="no signature found"):
        inspect.signature(dir)
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner()
        runner.post_task_and_reply(dir, dir, reply_runner=runner)
        runner.post_task_and_reply_with_result(dir, dir, reply_runner=runner)
        await trunner.testing.run_until_idle()
        assert runner.statistics().succeeded == 4


async def test_async_reply_for_a_thread_runner_posts_nothing() -> None:
    ran: list[str] = []
    async with trunner.open_scheduler() as scheduler:
        worker = scheduler.create_sequenced_runner()
        home = scheduler.create_thread_runner()

        with pytest.raises(TypeError, match=r"^reply must be a plain function"):
            worker.post_task_and_reply(
                lambda: ran.append("task"), _async_noop, reply_runner=home
            )

        await trunner.testing.run_until_idle()
        assert ran == []
        assert worker.statistics().succeeded == 0


async def test_batch_with_one_bad_function_posts_nothing() -> None:
    ran: list[str] = []
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_thread_runner()

        with pytest.raises(TypeError, match=r"^every item of fns must be a plain"):
            runner.post_tasks([lambda: ran.append("first"), _async_noop])

        await trunner.testing.run_until_idle()
        assert ran == []
        assert runner.statistics().succeeded == 0


async def test_send_task_checks_its_arguments_before_waiting_for_room() -> None:
    async with trunner.open_sequenced_runner(max_pending=1) as runner:
        blocker = runner.post_task(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        runner.post_task(trio.sleep, 0)

        with trio.fail_after(1), pytest.raises(TypeError, match=r"^timeout must be"):
            await runner.send_task(trio.sleep, 0, timeout="soon")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]  # the bad input under test

        blocker.cancel()
