"""run_all: run a batch of tasks on a runner, all or nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, overload

import outcome
import trio

from ._handle import refuse_wait_in_sequence
from ._traits import TaskState

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from ._abc import TaskRunner
    from ._handle import TaskHandle
    from ._util import AnyCallable

T = TypeVar("T")


@overload
async def run_all(
    runner: TaskRunner, fns: Iterable[Callable[[], Awaitable[T]]]
) -> list[T]: ...
@overload
async def run_all(runner: TaskRunner, fns: Iterable[Callable[[], T]]) -> list[T]: ...
async def run_all(  # type: ignore[explicit-any]  # the overloads give the precise type
    runner: TaskRunner, fns: Iterable[AnyCallable]
) -> list[Any]:
    """Run every function of ``fns`` as a task of ``runner``; return their values.

    The first task to fail (in time, not in list order) cancels the others;
    once they have all ended, its exception is raised as itself (not wrapped
    in a group). Cancelling the caller cancels the tasks, and the call returns
    (raising `trio.Cancelled`) only once they have all ended; a task in a
    thread cannot be interrupted and is waited for. This is a checkpoint.

    Args:
        runner: the runner to post to.
        fns: functions taking no arguments (bind them with `functools.partial`).

    Returns:
        The values in the order of ``fns``.

    Raises:
        Exception: the first failure; `TaskCancelledError` if the first task to
            end unsuccessfully was cancelled or skipped.
        RuntimeError: when called from a task of a sequenced or thread runner
            on that same runner: the tasks would start only once the caller
            has ended. They are cancelled before they start.
    """
    handles = runner.post_tasks(fns)
    if not handles:
        await trio.lowlevel.checkpoint()
        return []
    try:
        refuse_wait_in_sequence(
            handles[0],
            "tasks it posts itself (run_all)",
            "call the functions directly, or post them without waiting for them",
        )
    except RuntimeError:
        for handle in handles:
            handle.cancel()
        raise
    first_error: list[BaseException] = []
    remaining = len(handles)
    all_done = trio.Event()

    def on_done(handle: TaskHandle[object]) -> None:
        nonlocal remaining
        remaining -= 1
        if handle.state is not TaskState.SUCCEEDED and not first_error:
            result = handle.outcome
            assert isinstance(result, outcome.Error)  # it has ended, unsuccessfully
            first_error.append(result.error)
            for other in handles:
                other.cancel()
        if not remaining:
            all_done.set()

    for handle in handles:
        handle.add_done_callback(on_done)
    try:
        await all_done.wait()
    except trio.Cancelled:
        for handle in handles:
            handle.cancel()
        # Return only once they have ended, as a nursery would: a task may
        # take time to unwind, and one in a thread runs to its end.
        with trio.CancelScope(shield=True):
            await all_done.wait()
        raise
    if first_error:
        raise first_error[0]
    return [_value_of(handle) for handle in handles]


def _value_of(handle: TaskHandle[T]) -> T:
    result = handle.outcome
    assert result is not None  # every handle has ended
    return result.unwrap()
