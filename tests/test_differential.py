"""The runners' fast path and their full path must be indistinguishable.

The sequenced consumer inlines the start and the successful end of a task
(the fast path); it also runs there, through ``start_attempt``, a task whose
options are light (hooks and middleware, but no retry, timeout, offload or
rate limit); every runner sends the other tasks with options through
``run_full`` (the full path of the reliability layer). This test runs the
same workloads, in virtual time, on a bare runner (fast path), on one with
no-op hooks and a no-op middleware (the light path), and on one with those
and a retry policy that never retries (every task on the full path), and
checks that the statistics, the metrics, every field of every handle, the
errors reported to ``on_error`` and the result stream are identical.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Final

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given

import trunner
from tests.strategies import differential_workloads

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

#: Fields of a handle that name objects which differ between two runs (the
#: runner, the function, a cancel scope, callbacks) or are ids of the run.
_OPAQUE: Final = frozenset(
    {"_ledger", "_fn", "_opts", "_scope", "_waiters", "_traceback", "_id"}
)
_MISSING: Final = "<unset>"

Workload = list[tuple[str, int]]

#: The ways a task can run: plain, with light options, with full options.
PATHS: Final = ("fast", "light", "full")


#: The frames that awaited noop_middleware: which path ran the task.
awaited_by: list[str] = []


async def noop_middleware(
    task: trunner.TaskHandle[object], call_next: Callable[[], Awaitable[object]]
) -> object:
    del task
    frame = inspect.currentframe()
    assert frame is not None
    assert frame.f_back is not None
    awaited_by.append(frame.f_back.f_code.co_name)
    return await call_next()


def noop_hook(*args: object) -> None:
    del args


NOOP_HOOKS: Final = trunner.TaskHooks(
    on_queued=noop_hook, on_start=noop_hook, on_finish=noop_hook
)


def normalize(value: object, ids: dict[int, int]) -> object:
    """Make ``value`` comparable across runs: errors by type and text, ids by index."""
    if isinstance(value, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = value  # pyright: ignore[reportUnknownVariableType]  # any group
        return (
            type(group).__name__,
            group.message,
            tuple(normalize(e, ids) for e in group.exceptions),
        )
    if isinstance(value, BaseException):
        return (type(value).__name__, tuple(str(arg) for arg in value.args))
    if isinstance(value, trunner.TaskResult):
        return tuple(
            ids.get(v, v) if f.name == "task_id" else normalize(v, ids)
            for f in attrs.fields(trunner.TaskResult)
            for v in [getattr(value, f.name)]
        )
    return value


def handle_fields(handle: trunner.TaskHandle[object], ids: dict[int, int]) -> object:
    return tuple(
        (field.name, normalize(getattr(handle, field.name, _MISSING), ids))
        for field in attrs.fields(type(handle))
        if field.name not in _OPAQUE
    )


async def value_after(index: int, seconds: int) -> int:
    await trio.sleep(seconds)
    return index


def value_now(index: int) -> int:
    return index


async def error_after(index: int, seconds: int) -> int:
    await trio.sleep(seconds)
    raise ValueError(f"task {index} failed")


def error_now(index: int) -> int:
    raise KeyError(index)


async def group_after(index: int, seconds: int) -> int:
    await trio.sleep(seconds)
    raise ExceptionGroup(f"task {index}", [ValueError(index), KeyError(index)])


async def run_workload(
    workload: Workload, *, path: str, parallel: bool, subscribe: bool
) -> object:
    """Run ``workload`` and return everything observable about how it ran."""
    reported: list[tuple[int, object]] = []
    handles: list[trunner.TaskHandle[object]] = []
    ids: dict[int, int] = {}

    def on_error(handle: trunner.TaskHandle[object], error: BaseException) -> None:
        reported.append((ids[handle.id], normalize(error, ids)))

    async def cancel_self(index: int, seconds: int) -> int:
        await trio.sleep(seconds)
        handles[index].cancel()
        await trio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover  # cancelled above

    options: trunner.RunnerOptions = {"on_error": on_error}
    if path != "fast":
        options["middleware"] = [noop_middleware]
        options["hooks"] = NOOP_HOOKS
    if path == "full":
        options["retry"] = trunner.RetryPolicy(max_attempts=1)
    opener = (
        functools.partial(trunner.open_parallel_runner, max_concurrency=2)
        if parallel
        else trunner.open_sequenced_runner
    )
    stream: list[trunner.TaskResult] = []
    async with opener(**options) as runner:
        subscription = runner.subscribe_results(buffer=1000) if subscribe else None
        for index, (kind, seconds) in enumerate(workload):
            handle: trunner.TaskHandle[object]
            if kind == "return":
                handle = runner.post_task(value_now, index)
            elif kind == "sleep_return":
                handle = runner.post_task(value_after, index, seconds)
            elif kind == "raise":
                handle = runner.post_task(error_now, index)
            elif kind == "sleep_raise":
                handle = runner.post_task(error_after, index, seconds)
            elif kind == "cancel_running":
                handle = runner.post_task(cancel_self, index, seconds)
            elif kind == "cancel_pending":
                handle = runner.post_task(value_after, index, seconds)
                handle.cancel()
            elif kind == "timeout":
                handle = runner.post_task(
                    value_after, index, seconds + 1, timeout=seconds
                )
            else:
                assert kind == "group"
                handle = runner.post_task(group_after, index, seconds)
            ids[handle.id] = index
            handles.append(handle)
        await runner.wait_idle()
        statistics = runner.statistics()
        metrics = runner.metrics()
    if subscription is not None:
        # The runner has closed: iteration ends once the buffer is empty.
        stream.extend([result async for result in subscription])
    results = [normalize(result, ids) for result in stream]
    if parallel:
        # Two tasks may end at the same virtual time, in either order.
        results.sort(key=repr)
        reported.sort(key=repr)
    return (
        statistics,
        metrics,
        [handle_fields(handle, ids) for handle in handles],
        reported,
        results,
    )


def observe(
    workload: Workload, *, path: str, parallel: bool, subscribe: bool
) -> object:
    return trio.run(
        functools.partial(
            run_workload,
            workload,
            path=path,
            parallel=parallel,
            subscribe=subscribe,
        ),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )


EVERY_KIND: Final[Workload] = [
    ("return", 1),
    ("sleep_return", 2),
    ("raise", 1),
    ("sleep_raise", 3),
    ("cancel_running", 2),
    ("cancel_pending", 1),
    ("timeout", 2),
    ("group", 1),
    ("return", 1),
]


@pytest.mark.parametrize("parallel", [False, True], ids=["sequenced", "parallel"])
@pytest.mark.parametrize("subscribe", [False, True], ids=["quiet", "subscribed"])
def test_fast_path_matches_full_path(parallel: bool, subscribe: bool) -> None:
    fast, light, full = (
        observe(EVERY_KIND, path=path, parallel=parallel, subscribe=subscribe)
        for path in PATHS
    )

    assert fast == light
    assert fast == full


@pytest.mark.parametrize(
    ("path", "expected"),
    [("light", {"_consume"}), ("full", {"run_full"})],
)
def test_each_path_runs_where_it_is_named(path: str, expected: set[str]) -> None:
    # The comparisons above are not between one path and itself: the light
    # options' tasks are awaited by the sequenced consumer itself (but for the
    # one with a timeout), the full options' tasks by run_full.
    workload = [kind for kind in EVERY_KIND if kind[0] != "timeout"]
    awaited_by.clear()
    observe(workload, path=path, parallel=False, subscribe=False)

    assert set(awaited_by) == expected


def test_differential_observation_sees_differences() -> None:
    # The comparison is not vacuous: a different workload is seen as different.
    first = observe(EVERY_KIND, path="fast", parallel=False, subscribe=True)
    other = observe(EVERY_KIND[:-1], path="fast", parallel=False, subscribe=True)

    assert first != other


@given(workload=differential_workloads)
def test_fast_path_matches_full_path_property(workload: Workload) -> None:
    for parallel in (False, True):
        fast, light, full = (
            observe(workload, path=path, parallel=parallel, subscribe=True)
            for path in PATHS
        )

        assert fast == light
        assert fast == full
