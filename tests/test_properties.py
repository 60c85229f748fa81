"""Property tests of the runners' invariants, each example in its own trio run."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

import trunner
from trunner import ShutdownBehavior, TaskState, TaskTraits

from .strategies import TaskSpec, close_modes, maybe_millis, millis, task_specs

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

BLOCK = ShutdownBehavior.BLOCK_SHUTDOWN
TERMINAL = {
    TaskState.SUCCEEDED,
    TaskState.FAILED,
    TaskState.CANCELLED,
    TaskState.SKIPPED,
}


def run_virtual(body: Callable[[], Awaitable[None]]) -> None:
    trio.run(body, clock=trio.testing.MockClock(autojump_threshold=0))


@given(
    tasks=st.lists(st.tuples(maybe_millis, maybe_millis, st.booleans()), max_size=40),
)
def test_sequence_is_fifo_and_one_at_a_time(
    tasks: list[tuple[float, float, bool]],
) -> None:
    # Each task: (duration, delay before posting the next, posted delayed by 1 s?)
    events: list[tuple[str, int]] = []
    expected_immediate: list[int] = []
    expected_delayed: list[int] = []

    async def body() -> None:
        async with trunner.open_sequenced_runner() as runner:

            async def task(index: int, duration: float) -> None:
                events.append(("start", index))
                await trio.sleep(duration)
                events.append(("end", index))

            for index, (duration, gap, delayed) in enumerate(tasks):
                if delayed:
                    runner.post_delayed_task(task, index, duration, delay=1.0)
                    expected_delayed.append(index)
                else:
                    runner.post_task(task, index, duration)
                    expected_immediate.append(index)
                await trio.sleep(gap)
            await trio.sleep(2.0)  # past the last delayed task's deadline
            await runner.wait_idle()

    run_virtual(body)

    starts = [index for kind, index in events if kind == "start"]
    # No overlap: every start is followed by its own end.
    assert events[0::2] == [("start", i) for i in starts]
    assert events[1::2] == [("end", i) for i in starts]
    # FIFO among the tasks posted directly, and among the delayed ones.
    assert [i for i in starts if i in expected_immediate] == expected_immediate
    assert [i for i in starts if i in expected_delayed] == expected_delayed


@given(
    max_concurrency=st.integers(min_value=1, max_value=8),
    durations=st.lists(
        st.tuples(maybe_millis, st.sampled_from(trunner.Priority)), max_size=60
    ),
    max_workers=st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
)
def test_parallel_bound_is_never_exceeded(
    max_concurrency: int,
    durations: list[tuple[float, trunner.Priority]],
    max_workers: int | None,
) -> None:
    running = 0
    peak = 0
    finished = 0

    async def body() -> None:
        nonlocal running, peak, finished
        async with trunner.open_scheduler(max_workers=max_workers) as scheduler:
            runner = scheduler.create_parallel_runner(max_concurrency=max_concurrency)
            other = scheduler.create_sequenced_runner()

            async def task(duration: float) -> None:
                nonlocal running, peak, finished
                running += 1
                peak = max(peak, running)
                await trio.sleep(duration)
                running -= 1
                finished += 1

            for duration, priority in durations:
                runner.post_task(task, duration, traits=TaskTraits(priority=priority))
                other.post_task(task, duration)
            await runner.wait_idle()
            await other.wait_idle()

    run_virtual(body)

    bound = max_concurrency + 1 if max_workers is None else max_workers
    assert peak <= bound
    assert finished == 2 * len(durations)


@given(
    specs=st.lists(task_specs, max_size=25),
    close_at=millis,
    close_mode=close_modes,
    parallel=st.booleans(),
)
def test_every_task_ends_once_and_nothing_runs_after_close(
    specs: list[TaskSpec], close_at: float, close_mode: str, parallel: bool
) -> None:
    handles: list[tuple[TaskSpec, trunner.TaskHandle[object]]] = []
    ends: dict[int, int] = {}
    starts: list[tuple[float, TaskTraits]] = []
    close_started = float("inf")
    close_done = float("inf")

    async def body() -> None:
        nonlocal close_started, close_done
        async with trunner.open_scheduler() as scheduler:
            if parallel:
                runner: trunner.TaskRunner = scheduler.create_parallel_runner(
                    max_concurrency=3
                )
            else:
                runner = scheduler.create_sequenced_runner()

            async def task(spec: TaskSpec) -> None:
                starts.append((trio.current_time(), spec.traits))
                if spec.follow_up:
                    # Posting from a task of the runner, possibly during its close.
                    follow = TaskSpec(
                        0, 0.001, spec.traits, None, None, follow_up=False
                    )
                    track(follow, runner.post_task(task, follow, traits=spec.traits))
                await trio.sleep(spec.duration)

            def track(spec: TaskSpec, handle: trunner.TaskHandle[object]) -> None:
                handles.append((spec, handle))
                ends[handle.id] = 0

                def ended(done: trunner.TaskHandle[object]) -> None:
                    ends[done.id] += 1

                handle.add_done_callback(ended)

            async def poster(spec: TaskSpec) -> None:
                await trio.sleep(spec.post_at)
                try:
                    if spec.delay is None:
                        handle = runner.post_task(task, spec, traits=spec.traits)
                    else:
                        handle = runner.post_delayed_task(
                            task, spec, delay=spec.delay, traits=spec.traits
                        )
                except trunner.RunnerClosedError:
                    assert trio.current_time() >= close_started
                    return
                track(spec, handle)
                if spec.cancel_at is not None:
                    await trio.sleep(spec.cancel_at)
                    handle.cancel()

            async def closer() -> None:
                nonlocal close_started, close_done
                await trio.sleep(close_at)
                close_started = trio.current_time()
                if close_mode == "aclose":
                    await runner.aclose()
                elif close_mode == "grace":
                    await runner.aclose(grace_period=0.05)
                elif close_mode == "shutdown":
                    runner.shutdown()
                    await runner.aclose()
                else:
                    with trio.move_on_after(0):
                        await runner.aclose()
                close_done = trio.current_time()

            async with trio.open_nursery() as nursery:
                for spec in specs:
                    nursery.start_soon(poster, spec)
                nursery.start_soon(closer)

    run_virtual(body)

    for _spec, handle in handles:
        assert handle.state in TERMINAL
        assert ends[handle.id] == 1
    # Nothing starts once the close has completed.
    assert all(when <= close_done for when, _ in starts)
    # After the close began, only BLOCK_SHUTDOWN tasks start, and not after shutdown().
    late = [traits for when, traits in starts if when > close_started]
    assert all(traits.shutdown_behavior is BLOCK for traits in late)
    if close_mode in ("shutdown", "cancel_scope"):
        assert not late
    if close_mode == "aclose":
        # Without a grace period every BLOCK_SHUTDOWN task posted directly ran.
        for spec, handle in handles:
            if (
                spec.traits.shutdown_behavior is BLOCK
                and spec.delay is None
                and spec.cancel_at is None
            ):
                assert handle.state is TaskState.SUCCEEDED, (spec, handle)


@given(
    posts=st.lists(
        st.tuples(maybe_millis, maybe_millis, st.booleans()), min_size=1, max_size=30
    ),
    close_at=maybe_millis,
    parallel=st.booleans(),
)
def test_block_shutdown_tasks_always_run_even_when_close_races_posting(
    posts: list[tuple[float, float, bool]], close_at: float, parallel: bool
) -> None:
    # Each post: (when, duration, posts a BLOCK_SHUTDOWN follow-up from the task).
    block = TaskTraits(shutdown_behavior=BLOCK)
    accepted: list[trunner.TaskHandle[object]] = []

    async def body() -> None:
        async with trunner.open_scheduler() as scheduler:
            if parallel:
                runner: trunner.TaskRunner = scheduler.create_parallel_runner(
                    max_concurrency=2
                )
            else:
                runner = scheduler.create_sequenced_runner()

            async def task(duration: float, follow_up: bool) -> None:
                await trio.sleep(duration)
                if follow_up:
                    accepted.append(
                        runner.post_task(task, duration, False, traits=block)
                    )

            async def poster(when: float, duration: float, follow_up: bool) -> None:
                await trio.sleep(when)
                with contextlib.suppress(trunner.RunnerClosedError):
                    accepted.append(
                        runner.post_task(task, duration, follow_up, traits=block)
                    )

            async def closer() -> None:
                await trio.sleep(close_at)
                await runner.aclose()

            async with trio.open_nursery() as nursery:
                for when, duration, follow_up in posts:
                    nursery.start_soon(poster, when, duration, follow_up)
                nursery.start_soon(closer)

    run_virtual(body)

    assert [h.state for h in accepted] == [TaskState.SUCCEEDED] * len(accepted)


@given(
    max_pending=st.integers(min_value=1, max_value=3),
    waiters=st.integers(min_value=2, max_value=6),
    parallel=st.booleans(),
    barges=st.lists(st.booleans(), max_size=40),
    cancelled=st.sets(st.integers(min_value=0, max_value=5)),
)
def test_send_task_waiters_get_room_in_fifo_order(
    max_pending: int,
    waiters: int,
    parallel: bool,
    barges: list[bool],
    cancelled: set[int],
) -> None:
    # Issue 8, item 6: a woken waiter beaten to the room by a post requeued at
    # the back. Barging posts come from on_start hooks, right when room frees.
    got: list[int] = []
    plan = iter(barges)
    armed = False
    lot = trio.lowlevel.ParkingLot()

    async def step() -> None:
        await lot.park()

    def barge(task: trunner.TaskHandle[object]) -> None:
        if armed and next(plan, False):
            with contextlib.suppress(trunner.QueueFullError):
                task.runner.post_task(step)

    async def body() -> None:
        with trio.fail_after(60):  # the clock is virtual: a hang fails at once
            await scenario()

    async def scenario() -> None:
        nonlocal armed
        hooks = trunner.TaskHooks(on_start=barge)
        async with trunner.open_scheduler() as scheduler:
            if parallel:
                runner: trunner.TaskRunner = scheduler.create_parallel_runner(
                    max_concurrency=1, max_pending=max_pending, hooks=hooks
                )
            else:
                runner = scheduler.create_sequenced_runner(
                    max_pending=max_pending, hooks=hooks
                )
            runner.post_task(step)
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(max_pending):
                runner.post_task(step)
            async with trio.open_nursery() as nursery:
                scopes: list[trio.CancelScope] = []

                async def wait(index: int, scope: trio.CancelScope) -> None:
                    with scope:
                        await runner.send_task(step)
                        got.append(index)

                for index in range(waiters):
                    scopes.append(trio.CancelScope())
                    nursery.start_soon(wait, index, scopes[index])
                    await trio.testing.wait_all_tasks_blocked()
                for index in cancelled & set(range(waiters)):
                    scopes[index].cancel()
                armed = True
                while runner.statistics().running or runner.statistics().pending:
                    lot.unpark()
                    await trio.testing.wait_all_tasks_blocked()

    trio.run(body, clock=trio.testing.MockClock(autojump_threshold=0))

    assert got == [index for index in range(waiters) if index not in cancelled]
