"""Tests of ResourcePool (DESIGN.md section 8)."""

# pyright: reportPrivateUsage=false
# White-box tests: they count the resources a pool made.

from __future__ import annotations

import functools
import logging
from collections import Counter
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given

from trunner import (
    PoolClosedError,
    PoolStatistics,
    ResourcePool,
    ResourceUnavailableError,
    RunnerClosedError,
    TaskCancelledError,
    TrunnerError,
    open_resource_pool,
)
from trunner._resource_pool import BACKOFF_MAX, CRASH_LOOP_FAILURES, DESTROY_TIMEOUT

from .strategies_pool import PoolScript, PoolTask, pool_scripts

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager


class CreateError(Exception):
    """create() failed."""


class Sick(Exception):
    """A task error that means the resource is broken."""


class TaskError(Exception):
    """A task error that says nothing about the resource."""


class Boom(BaseException):
    """Not an Exception: it crashes the pool's machinery."""


def health(error: Exception) -> bool:
    return not isinstance(error, Sick)


@attrs.define
class Tracker:
    """create/destroy hooks that record what they did and when."""

    fail: set[int] = attrs.field(factory=set[int])  # create() calls (from 1) that fail
    fail_from: int | None = None  # ... and every call from this one on
    create_delay: float = 0.0
    destroy_delay: float = 0.0
    calls: int = 0
    created: list[int] = attrs.field(factory=list[int])
    destroyed: list[int] = attrs.field(factory=list[int])
    create_times: list[float] = attrs.field(factory=list[float])
    destroy_times: list[float] = attrs.field(factory=list[float])

    def _next(self) -> int:
        self.calls += 1
        self.create_times.append(trio.current_time())
        return self.calls

    def _made(self, number: int) -> int:
        if number in self.fail or (
            self.fail_from is not None and number >= self.fail_from
        ):
            raise CreateError(number)
        self.created.append(number)
        return number

    def create(self) -> int:
        return self._made(self._next())

    async def acreate(self) -> int:
        number = self._next()
        await trio.sleep(self.create_delay)
        return self._made(number)

    def destroy(self, resource: int) -> None:
        self.destroyed.append(resource)
        self.destroy_times.append(trio.current_time())

    async def adestroy(self, resource: int) -> None:
        await trio.sleep(self.destroy_delay)
        self.destroy(resource)

    @property
    def live(self) -> set[int]:
        return set(self.created) - set(self.destroyed)

    def check_all_destroyed_once(self) -> None:
        assert sorted(self.destroyed) == sorted(self.created)


def ident(resource: int) -> int:
    return resource


async def aident(resource: int) -> int:
    await trio.lowlevel.checkpoint()
    return resource


async def sleep_then(resource: int, seconds: float, value: object = None) -> object:
    await trio.sleep(seconds)
    return value if value is not None else resource


def open_pool(
    tracker: Tracker,
    *,
    workers: int = 1,
    max_workers: int | None = None,
    check_health: Callable[[Exception], bool] | None = None,
    max_retries: int = 3,
    burst_interval: float = 0.1,
) -> AbstractAsyncContextManager[ResourcePool[int]]:
    return open_resource_pool(
        tracker.create,
        tracker.destroy,
        workers=workers,
        max_workers=max_workers,
        check_health=check_health,
        max_retries=max_retries,
        burst_interval=burst_interval,
    )


async def queue_sleep(pool: ResourcePool[int], seconds: float) -> None:
    """Queue a task that sleeps ``seconds``."""
    await pool.queue_task(sleep_then, seconds)


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def closed_ok(pool: ResourcePool[int], fn: Callable[[int], object]) -> None:
    """Queue ``fn``; a kill() is expected to answer it."""
    with pytest.raises(PoolClosedError):
        await pool.queue_task(fn)


# -------------------------------------------------- validation


@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": 1.5}, TypeError, "workers"),
        ({"workers": True}, TypeError, "workers"),
        ({"workers": 3, "max_workers": 2}, ValueError, "max_workers"),
        ({"max_workers": "8"}, TypeError, "max_workers"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": 2.0}, TypeError, "max_retries"),
        ({"burst_interval": 0}, ValueError, "burst_interval"),
        ({"burst_interval": -1.0}, ValueError, "burst_interval"),
        ({"burst_interval": "1"}, TypeError, "burst_interval"),
        ({"check_health": 3}, TypeError, "check_health"),
    ],
)
def test_open_resource_pool_rejects_bad_options(
    options: dict[str, object], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        open_resource_pool(lambda: 0, ident, **options)  # type: ignore[call-overload]  # bad on purpose


def test_open_resource_pool_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="create"):
        open_resource_pool(None, ident)  # type: ignore[call-overload]  # bad on purpose
    with pytest.raises(TypeError, match="destroy"):
        open_resource_pool(lambda: 0, 3)  # type: ignore[call-overload]  # bad on purpose


async def test_queue_task_and_run_task_check_their_arguments_up_front() -> None:
    # Issue 8: queue_task(42) was queued and failed on a worker.
    tracker = Tracker()
    async with open_pool(tracker) as pool:
        with pytest.raises(TypeError, match="fn must be callable as fn"):
            await pool.queue_task(42)  # type: ignore[call-overload]  # bad on purpose
        with pytest.raises(TypeError, match="priority must be True or False"):
            await pool.queue_task(sleep_then, 0, priority="high")  # type: ignore[call-overload]  # bad on purpose
        with pytest.raises(TypeError, match="fn must be callable as fn"):
            await pool.run_task(42)  # type: ignore[call-overload]  # bad on purpose

        assert pool.statistics().queued_tasks == 0
        assert pool.metrics().arrival_rate == 0


# ------------------------------------------------------ basics


async def test_queue_task_returns_results_of_sync_and_async_tasks() -> None:
    tracker = Tracker()
    with trio.fail_after(5):
        async with open_pool(tracker, workers=2) as pool:
            assert await pool.queue_task(ident) in {1, 2}
            assert await pool.queue_task(aident) in {1, 2}
            assert await pool.queue_task(lambda r, a, b: (a, b), "x", 2) == ("x", 2)
            assert (
                await pool.queue_task(functools.partial(sleep_then, seconds=0, value=7))
                == 7
            )
            # A sync function returning an awaitable is awaited too.
            assert await pool.queue_task(lambda r: aident(r)) in {1, 2}

    assert tracker.created == [1, 2]
    tracker.check_all_destroyed_once()


@pytest.mark.parametrize("async_create", [False, True])
@pytest.mark.parametrize("async_destroy", [False, True])
async def test_create_and_destroy_may_be_sync_or_async(
    async_create: bool, async_destroy: bool
) -> None:
    tracker = Tracker()
    create: Callable[[], object] = tracker.acreate if async_create else tracker.create
    destroy = tracker.adestroy if async_destroy else tracker.destroy

    with trio.fail_after(5):
        async with open_resource_pool(create, destroy, workers=3) as pool:  # type: ignore[arg-type]  # int resources
            assert await pool.queue_task(ident) in {1, 2, 3}

    assert sorted(tracker.created) == [1, 2, 3]
    tracker.check_all_destroyed_once()


async def test_task_error_reaches_caller_as_itself_and_worker_keeps_resource() -> None:
    tracker = Tracker()
    error = TaskError("no")

    def fail(resource: int) -> None:
        raise error

    with trio.fail_after(5):
        async with open_pool(tracker, check_health=health) as pool:
            with pytest.raises(TaskError) as info:
                await pool.queue_task(fail)
            assert await pool.queue_task(ident) == 1

    assert info.value is error
    assert tracker.created == [1]
    assert pool.metrics().failed == 1
    assert pool.metrics().retries == 0


async def test_queue_task_and_run_task_are_checkpoints() -> None:
    tracker = Tracker()
    async with open_pool(tracker) as pool:
        with trio.testing.assert_checkpoints():
            await pool.queue_task(ident)
        with trio.testing.assert_checkpoints():
            await pool.run_task(ident)
        with trio.testing.assert_checkpoints():
            await pool.stop()
        with trio.testing.assert_checkpoints(), pytest.raises(PoolClosedError):
            await pool.queue_task(ident)
        with trio.testing.assert_checkpoints(), pytest.raises(PoolClosedError):
            await pool.run_task(ident)


async def test_repr_shows_state() -> None:
    tracker = Tracker()
    async with open_pool(tracker, workers=2, max_workers=3) as pool:
        assert repr(pool) == "<ResourcePool open workers=2/3 queued=0>"
        pool.kill()
        assert repr(pool).startswith("<ResourcePool killed")
    assert repr(pool) == "<ResourcePool closed workers=0/3 queued=0>"


# ----------------------------------------------------- opening


async def test_create_failing_halfway_through_the_start_destroys_the_others() -> None:
    tracker = Tracker(fail={2})

    with trio.fail_after(5), pytest.raises(CreateError) as info:
        async with open_pool(tracker, workers=3):
            pytest.fail("the block must not run")  # pragma: no cover - it must not

    assert info.value.args == (2,)
    assert tracker.calls == 2  # the third worker did not even try
    assert tracker.destroyed == [1]
    tracker.check_all_destroyed_once()


async def test_failing_async_create_cancels_creates_in_progress(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker(fail={3})
    delays = iter([1.0, 5.0, 2.0])

    async def create() -> int:
        number = tracker._next()
        await trio.sleep(next(delays))
        return tracker._made(number)

    t0 = trio.current_time()
    with trio.fail_after(10), pytest.raises(CreateError):
        async with open_resource_pool(create, tracker.adestroy, workers=3):
            pytest.fail("the block must not run")  # pragma: no cover - it must not

    assert trio.current_time() - t0 == 2
    assert tracker.created == [1]  # the second was cancelled at 2 s
    assert tracker.destroyed == [1]


async def test_second_create_failure_at_start_is_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = Tracker()

    async def create() -> int:
        number = tracker._next()
        try:
            await trio.sleep(number)
        except trio.Cancelled:
            # A sloppy create() that turns its cancellation into an error.
            raise CreateError("interrupted") from None
        raise CreateError(number)

    with trio.fail_after(10), pytest.raises(CreateError) as info:
        async with open_resource_pool(create, tracker.destroy, workers=2):
            pytest.fail("the block must not run")  # pragma: no cover - it must not

    assert info.value.args == (1,)

    assert [r.name for r in caplog.records] == ["trunner.pool"]
    assert "also failed" in caplog.records[0].getMessage()
    assert tracker.created == []


async def test_cancelled_start_destroys_what_was_created(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    delays = iter([1.0, 5.0])

    async def create() -> int:
        number = tracker._next()
        await trio.sleep(next(delays))
        return tracker._made(number)

    with trio.move_on_after(2) as scope:
        async with open_resource_pool(create, tracker.adestroy, workers=2):
            pytest.fail("the block must not run")  # pragma: no cover - it must not

    assert scope.cancelled_caught
    assert tracker.created == [1]
    assert tracker.destroyed == [1]


# ----------------------------------- ordering and cancellation


async def test_priority_tasks_run_first_fifo_within_each_class() -> None:
    tracker = Tracker()
    order: list[str] = []
    gate = trio.Event()

    async def blocker(resource: int) -> None:
        await gate.wait()

    def record(resource: int, name: str) -> None:
        order.append(name)

    with trio.fail_after(5):
        async with open_pool(tracker) as pool, trio.open_nursery() as nursery:
            nursery.start_soon(pool.queue_task, blocker)
            await settle()

            async def post(name: str, priority: bool) -> None:
                await pool.queue_task(record, name, priority=priority)

            for name, priority in [
                ("n1", False),
                ("p1", True),
                ("n2", False),
                ("p2", True),
            ]:
                nursery.start_soon(post, name, priority)
                await settle()
            assert pool.statistics().queued_tasks == 4
            gate.set()

    assert order == ["p1", "p2", "n1", "n2"]


async def test_cancelling_a_queued_caller_removes_its_task() -> None:
    tracker = Tracker()
    ran: list[str] = []
    gate = trio.Event()

    async def blocker(resource: int) -> None:
        await gate.wait()

    def record(resource: int, name: str) -> None:
        ran.append(name)

    with trio.fail_after(5):
        async with open_pool(tracker) as pool, trio.open_nursery() as nursery:
            nursery.start_soon(pool.queue_task, blocker)
            await settle()
            scope = trio.CancelScope()
            nursery.start_soon(pool.queue_task, record, "kept")
            await settle()

            async def doomed() -> None:
                with scope:
                    await pool.queue_task(record, "dropped")

            nursery.start_soon(doomed)
            await settle()
            assert pool.statistics().queued_tasks == 2
            scope.cancel()
            await settle()
            assert pool.statistics().queued_tasks == 1
            gate.set()

    assert ran == ["kept"]
    assert pool.metrics().cancelled == 1


async def test_cancelled_caller_does_not_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    async with open_pool(tracker) as pool:
        with trio.CancelScope() as scope:
            scope.cancel()
            await pool.queue_task(ident)
        assert scope.cancelled_caught
        assert pool.metrics().wait_time.count == 0


async def test_cancelling_a_running_caller_cancels_its_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    seen: list[tuple[str, float]] = []

    async def long(resource: int) -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            seen.append(("cancelled", trio.current_time() - t0))
            raise

    t0 = trio.current_time()
    async with open_pool(tracker) as pool:
        with trio.move_on_after(1) as scope:
            await pool.queue_task(long)
        assert scope.cancelled_caught
        assert trio.current_time() - t0 == 1
        # The worker kept its resource and its next task runs at once.
        assert await pool.queue_task(ident) == 1

    assert seen == [("cancelled", 1)]
    assert tracker.created == [1]
    assert pool.metrics().cancelled == 1


async def test_cancelled_caller_gets_value_of_task_that_finished_anyway(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()

    async def stubborn(resource: int) -> str:
        with trio.CancelScope(shield=True):
            await trio.sleep(2)
        return "done"

    t0 = trio.current_time()
    async with open_pool(tracker) as pool:
        result = None
        with trio.move_on_after(1):
            result = await pool.queue_task(stubborn)
        assert result == "done"
        assert trio.current_time() - t0 == 2
        assert await pool.queue_task(ident) == 1


async def test_cancelled_caller_shielded_meanwhile_gets_task_cancelled_error() -> None:
    tracker = Tracker()
    started = trio.Event()

    async def long(resource: int) -> None:
        started.set()
        await trio.sleep_forever()

    with trio.fail_after(5):
        async with open_pool(tracker) as pool, trio.open_nursery() as nursery:
            outer = trio.CancelScope()
            inner = trio.CancelScope()
            errors: list[BaseException] = []

            async def caller() -> None:
                with outer, inner:
                    try:
                        await pool.queue_task(long)
                    except TaskCancelledError as exc:
                        errors.append(exc)

            nursery.start_soon(caller)
            await started.wait()
            outer.cancel()
            inner.shield = True

    assert len(errors) == 1


# ----------------------------------------------- health checks


async def test_sick_resource_is_replaced_and_task_retried() -> None:
    tracker = Tracker()

    def flaky(resource: int) -> int:
        if resource == 1:
            raise Sick
        return resource

    with trio.fail_after(5):
        async with open_pool(tracker, check_health=health) as pool:
            assert await pool.queue_task(flaky) == 2

    assert tracker.created == [1, 2]
    assert tracker.destroyed[0] == 1
    tracker.check_all_destroyed_once()
    assert pool.metrics().retries == 1
    assert pool.metrics().succeeded == 1


async def test_retries_stop_after_max_retries_with_the_last_error() -> None:
    tracker = Tracker()
    attempts: list[int] = []

    def always_sick(resource: int) -> None:
        attempts.append(resource)
        raise Sick(resource)

    with trio.fail_after(5):
        async with open_pool(tracker, check_health=health, max_retries=2) as pool:
            with pytest.raises(Sick) as info:
                await pool.queue_task(always_sick)

    assert attempts == [1, 2, 3]
    assert info.value.args == (3,)
    assert tracker.created == [1, 2, 3, 4]
    tracker.check_all_destroyed_once()
    assert pool.metrics().retries == 2
    assert pool.metrics().failed == 1


async def test_max_retries_zero_means_one_attempt() -> None:
    tracker = Tracker()
    attempts: list[int] = []

    def always_sick(resource: int) -> None:
        attempts.append(resource)
        raise Sick

    async with open_pool(tracker, check_health=health, max_retries=0) as pool:
        with pytest.raises(Sick):
            await pool.queue_task(always_sick)

    assert attempts == [1]
    assert tracker.created == [1, 2]  # the sick resource was still replaced


async def test_once_tasks_are_never_retried() -> None:
    tracker = Tracker()
    attempts: list[int] = []

    def sick(resource: int) -> None:
        attempts.append(resource)
        raise Sick

    async with open_pool(tracker, check_health=health) as pool:
        with pytest.raises(Sick):
            await pool.queue_task(sick, once=True)
        assert await pool.queue_task(ident) == 2

    assert attempts == [1]
    tracker.check_all_destroyed_once()
    assert pool.metrics().retries == 0


async def test_retried_task_keeps_its_place_at_the_front() -> None:
    tracker = Tracker()
    order: list[tuple[str, int]] = []
    gate = trio.Event()

    async def first(resource: int) -> None:
        order.append(("first", resource))
        await gate.wait()
        if resource == 1:
            raise Sick

    def second(resource: int) -> None:
        order.append(("second", resource))

    with trio.fail_after(5):
        async with (
            open_pool(tracker, check_health=health) as pool,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(pool.queue_task, first)
            await settle()
            nursery.start_soon(pool.queue_task, second)
            await settle()
            gate.set()

    assert order == [("first", 1), ("first", 2), ("second", 2)]


async def test_healthy_verdict_keeps_the_resource() -> None:
    tracker = Tracker()

    def fail(resource: int) -> None:
        raise TaskError

    async with open_pool(tracker, check_health=lambda error: True) as pool:
        with pytest.raises(TaskError):
            await pool.queue_task(fail)
        assert await pool.queue_task(ident) == 1

    assert tracker.created == [1]


async def test_check_health_that_raises_is_logged_and_means_sick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = Tracker()

    def broken_check(error: Exception) -> bool:
        raise RuntimeError("bad check")

    def fail(resource: int) -> int:
        if resource == 1:
            raise TaskError
        return resource

    async with open_pool(tracker, check_health=broken_check) as pool:
        assert await pool.queue_task(fail) == 2

    assert "check_health() raised" in caplog.text
    tracker.check_all_destroyed_once()


async def test_cancelled_caller_is_not_retried_after_a_health_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()

    async def converts_cancel(resource: int) -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            raise Sick from None

    async with open_pool(tracker, check_health=health) as pool:
        with trio.move_on_after(1), pytest.raises(Sick):
            await pool.queue_task(converts_cancel)

    assert tracker.created == [1, 2]
    assert pool.metrics().retries == 0


# ------------------------------------------------- crash loops


async def test_crash_looping_create_fails_callers_and_backs_off(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = Tracker(fail_from=2)
    answers: list[tuple[str, float, BaseException]] = []

    def sick(resource: int) -> None:
        raise Sick

    async def caller(pool: ResourcePool[int], name: str) -> None:
        try:
            await pool.queue_task(sick if name == "a" else ident)
        except ResourceUnavailableError as exc:
            answers.append((name, trio.current_time() - t0, exc))

    t0 = trio.current_time()
    with trio.fail_after(100):
        async with open_pool(tracker, check_health=health) as pool:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(caller, pool, "a")
                await settle()
                nursery.start_soon(caller, pool, "b")
            # Callers got a clear error once create() failed three times in a row.
            assert sorted(name for name, _, _ in answers) == ["a", "b"]
            assert [when for _, when, _ in answers] == pytest.approx([0.3, 0.3])
            error = answers[0][2]
            assert isinstance(error, TrunnerError)
            assert isinstance(error.__cause__, CreateError)
            assert "try again later" in str(error)
            # New callers are refused at once while no resource can be made ...
            with pytest.raises(ResourceUnavailableError):
                await pool.queue_task(ident)
            # ... while run_task tries a temporary resource, and says why not.
            with pytest.raises(CreateError):
                await pool.run_task(ident)
            # The pool keeps trying with capped exponential backoff.
            await trio.sleep_until(t0 + 20)
            tracker.fail_from = None
            await trio.sleep_until(t0 + 30)
            assert await pool.queue_task(ident) == tracker.created[-1]

    worker_creates = [t - t0 for t in tracker.create_times]
    del worker_creates[4]  # run_task's attempt at 0.3 s
    expected = [0.0, 0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3, 11.3, 16.3, 21.3]
    assert worker_creates == pytest.approx(expected)
    assert BACKOFF_MAX == 5.0
    assert CRASH_LOOP_FAILURES == 3
    failures = [r for r in caplog.records if "create() failed" in r.getMessage()]
    assert len(failures) == 9
    assert pool.metrics().skipped == 2
    assert pool.metrics().rejected == 1
    tracker.check_all_destroyed_once()


async def test_stop_during_crash_loop_with_empty_queue_ends_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker(fail_from=2)

    def sick(resource: int) -> None:
        raise Sick

    t0 = trio.current_time()
    async with open_pool(tracker, check_health=health, max_retries=0) as pool:
        with pytest.raises(Sick):
            await pool.queue_task(sick)
        await trio.sleep(1)  # the worker naps between failed creates
        await pool.stop()
        assert trio.current_time() - t0 == 1

    assert tracker.calls == 5  # at 0, 0, 0.1, 0.3, 0.7 and no more


async def test_cancelling_the_last_queued_caller_lets_stop_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker(fail_from=2)

    def sick(resource: int) -> None:
        raise Sick

    t0 = trio.current_time()
    async with (
        open_pool(tracker, check_health=health) as pool,
        trio.open_nursery() as nursery,
    ):
        scope = trio.CancelScope()

        async def caller() -> None:
            with scope:
                await pool.queue_task(sick)

        nursery.start_soon(caller)
        await trio.sleep(0.05)
        # The task waits in the queue for a replacement resource.
        assert pool.statistics().queued_tasks == 1
        nursery.start_soon(pool.stop)
        await trio.sleep(0.01)
        assert pool.statistics().active_workers == 1
        scope.cancel()
        await pool.stop()
        assert trio.current_time() - t0 == pytest.approx(0.06)


async def test_last_task_done_during_stop_ends_the_naps_of_failing_workers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker(fail_from=3)
    busy: list[int] = []

    async def long(resource: int) -> None:
        busy.append(resource)
        await trio.sleep(5)

    def sick_elsewhere(resource: int) -> int:
        if resource not in busy:
            raise Sick
        return resource

    t0 = trio.current_time()
    async with (
        open_pool(tracker, check_health=health, workers=2) as pool,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(pool.queue_task, long)
        await settle()

        async def stop_soon() -> None:
            await trio.sleep(1)
            await pool.stop()
            stopped.append(trio.current_time() - t0)

        stopped: list[float] = []
        nursery.start_soon(stop_soon)
        # The idle resource is sick: the task waits for the busy one, while
        # the other worker fails to replace its resource and naps, also
        # after the pool began to stop at 1 s.
        assert await pool.queue_task(sick_elsewhere) == busy[0]
        assert trio.current_time() - t0 == 5
    # The nap from 3.1 s to 6.3 s was cut short when the last task was done.
    assert stopped == [5]

    assert [t - t0 for t in tracker.create_times] == pytest.approx(
        [0, 0, 0, 0.1, 0.3, 0.7, 1.5, 3.1]
    )


async def test_crash_loop_during_stop_fails_queued_callers_and_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker(fail_from=3)
    answers: list[type[BaseException]] = []

    def sick(resource: int) -> None:
        raise Sick

    async def caller(pool: ResourcePool[int]) -> None:
        try:
            await pool.queue_task(sick)
        except ResourceUnavailableError as exc:
            answers.append(type(exc))

    t0 = trio.current_time()
    async with open_pool(tracker, check_health=health, workers=2) as pool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller, pool)
            nursery.start_soon(caller, pool)
            await trio.sleep(0.01)
            await pool.stop()
        # Both replacements failed at 0 s, the third failure at 0.1 s fails
        # the queued tasks, and the workers give up: nothing is left to run.
        assert trio.current_time() - t0 == pytest.approx(0.1)

    assert answers == [ResourceUnavailableError, ResourceUnavailableError]
    tracker.check_all_destroyed_once()


# ---------------------------------------------------- run_task


async def test_run_task_uses_an_idle_pooled_resource() -> None:
    tracker = Tracker()
    async with open_pool(tracker, workers=2) as pool:
        assert await pool.run_task(ident) in {1, 2}
        assert await pool.run_task(aident) in {1, 2}
        assert await pool.run_task(lambda r, x: x, "arg") == "arg"

    assert tracker.created == [1, 2]
    assert pool.metrics().succeeded == 3


async def test_run_task_never_waits_behind_queued_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    t0 = trio.current_time()
    async with (
        open_pool(tracker, max_workers=1) as pool,
        trio.open_nursery() as nursery,
    ):
        for _ in range(3):
            nursery.start_soon(queue_sleep, pool, 10)
        await settle()
        stats: list[PoolStatistics] = []

        def now(resource: int) -> int:
            stats.append(pool.statistics())
            return resource

        assert await pool.run_task(now) == 2  # a temporary resource
        assert trio.current_time() == t0
        assert tracker.live == {1}  # destroyed right after

    assert stats == [PoolStatistics(1, 0, 2, 0)]
    assert trio.current_time() - t0 == 30
    tracker.check_all_destroyed_once()


async def test_run_task_errors_and_create_errors_come_as_themselves() -> None:
    tracker = Tracker(fail={3})
    error = TaskError()

    def fail(resource: int) -> None:
        raise error

    async def hold(resource: int) -> None:
        await gate.wait()

    gate = trio.Event()
    async with open_pool(tracker) as pool:
        with pytest.raises(TaskError) as info:
            await pool.run_task(fail)  # on the pooled resource
        assert info.value is error
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.queue_task, hold)
            await settle()
            with pytest.raises(TaskError):
                await pool.run_task(fail)  # on temporary resource 2
            with pytest.raises(CreateError):
                await pool.run_task(fail)  # create() #3 fails
            gate.set()

    assert pool.metrics().failed == 2
    tracker.check_all_destroyed_once()


async def test_run_task_retries_health_failures_on_temporary_resources() -> None:
    tracker = Tracker()
    gate = trio.Event()
    attempts: list[int] = []

    async def hold(resource: int) -> None:
        await gate.wait()

    def flaky(resource: int) -> int:
        attempts.append(resource)
        if len(attempts) < 3:
            raise Sick
        return resource

    def sick(resource: int) -> None:
        raise Sick

    async with (
        open_pool(tracker, check_health=health) as pool,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(pool.queue_task, hold)
        await settle()
        assert await pool.run_task(flaky) == 4
        with pytest.raises(Sick):
            await pool.run_task(sick, once=True)
        gate.set()

    assert attempts == [2, 3, 4]
    assert pool.metrics().retries == 2
    tracker.check_all_destroyed_once()


async def test_run_task_retries_health_failures_after_a_pooled_attempt() -> None:
    tracker = Tracker()
    attempts: list[int] = []

    def flaky(resource: int) -> int:
        attempts.append(resource)
        if resource == 1:
            raise Sick
        return resource

    async with open_pool(tracker, check_health=health) as pool:
        assert await pool.run_task(flaky) == 2

    # With sync hooks, the worker replaced resource 1 before the caller woke
    # up to retry, so the retry ran on the pooled resource 2, not a temporary.
    assert attempts == [1, 2]
    assert tracker.created == [1, 2]
    assert pool.metrics().retries == 1
    tracker.check_all_destroyed_once()


async def test_run_task_cancelled_on_a_temporary_resource_destroys_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    async with (
        open_resource_pool(tracker.acreate, tracker.adestroy) as pool,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(queue_sleep, pool, 10)
        await settle()
        with trio.move_on_after(1) as scope:
            await pool.run_task(sleep_then, 5)
        assert scope.cancelled_caught
        assert tracker.destroyed == [2]

    assert pool.metrics().cancelled == 1


async def test_run_task_cancelled_on_a_pooled_resource(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    async with open_pool(tracker) as pool:
        with trio.move_on_after(1) as scope:
            await pool.run_task(sleep_then, 5)
        assert scope.cancelled_caught
        assert await pool.run_task(ident) == 1


# ----------------------------------------------- stop and kill


async def test_stop_lets_queued_and_running_tasks_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    results: list[tuple[object, float]] = []

    async def caller(pool: ResourcePool[int], value: int) -> None:
        results.append(
            (await pool.queue_task(sleep_then, 1, value), trio.current_time() - t0)
        )

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery, open_pool(tracker) as pool:
        for value in (10, 20, 30):
            nursery.start_soon(caller, pool, value)
            await settle()
        await trio.sleep(0.5)
        stopping = trio.Event()

        async def stop() -> None:
            stopping.set()
            await pool.stop()

        nursery.start_soon(stop)
        await stopping.wait()
        with pytest.raises(PoolClosedError, match=r"open_resource_pool\(\)"):
            await pool.queue_task(ident)
        with pytest.raises(PoolClosedError):
            await pool.run_task(ident)
        await pool.stop()
        assert trio.current_time() - t0 == 3
        assert tracker.destroyed == [1]

    assert results == [(10, 1), (20, 2), (30, 3)]


async def test_kill_fails_every_waiting_caller_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    cancelled: list[float] = []
    answers: dict[str, tuple[type[BaseException], float]] = {}

    async def long(resource: int) -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            cancelled.append(trio.current_time() - t0)
            raise

    async def caller(pool: ResourcePool[int], name: str) -> None:
        try:
            await pool.queue_task(long)
        except PoolClosedError as exc:
            answers[name] = (type(exc), trio.current_time() - t0)

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        async with open_resource_pool(tracker.create, tracker.adestroy) as pool:
            tracker.destroy_delay = 2
            for name in "abc":
                nursery.start_soon(caller, pool, name)
                await settle()
            await trio.sleep(1)
            pool.kill()
            pool.kill()  # idempotent
            with pytest.raises(PoolClosedError):
                await pool.queue_task(ident)
            with pytest.raises(RunnerClosedError):
                await pool.run_task(ident)
        # Leaving the block waited for the resource's destruction.
        assert trio.current_time() - t0 == 3

    assert answers == dict.fromkeys("abc", (PoolClosedError, 1))
    assert cancelled == [1]
    assert tracker.destroyed == [1]
    metrics = pool.metrics()
    assert (metrics.cancelled, metrics.skipped, metrics.rejected) == (1, 2, 2)


async def test_callers_that_left_the_queue_are_skipped_by_kill_and_crash_loops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def sick(resource: int) -> None:
        raise Sick

    async def refused(pool: ResourcePool[int], fn: Callable[[int], object]) -> None:
        with pytest.raises((PoolClosedError, ResourceUnavailableError)):
            await pool.queue_task(fn)

    for ending in ("kill", "crash loop"):
        tracker = Tracker(fail_from=2)
        async with (
            open_pool(tracker, check_health=health) as pool,
            trio.open_nursery() as nursery,
        ):
            scope = trio.CancelScope()

            async def leaves(scope: trio.CancelScope, pool: ResourcePool[int]) -> None:
                with scope:
                    await pool.queue_task(ident)

            nursery.start_soon(refused, pool, sick)
            await settle()  # replacing the sick resource fails: the queue waits
            nursery.start_soon(leaves, scope, pool)
            await settle()
            nursery.start_soon(refused, pool, ident)
            await settle()
            scope.cancel()
            await settle()
            assert pool.statistics().queued_tasks == 2
            if ending == "kill":
                pool.kill()
            else:
                await trio.sleep(1)
            assert pool.statistics().queued_tasks == 0
            pool.kill()

        assert pool.metrics().cancelled == 1
        tracker.check_all_destroyed_once()


async def test_kill_while_run_task_holds_a_temporary_resource(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    async with open_pool(tracker) as pool, trio.open_nursery() as nursery:
        nursery.start_soon(closed_ok, pool, functools.partial(sleep_then, seconds=10))
        await settle()
        errors: list[BaseException] = []

        async def runner() -> None:
            try:
                await pool.run_task(sleep_then, 10)
            except PoolClosedError as exc:
                errors.append(exc)

        nursery.start_soon(runner)
        await trio.sleep(1)
        assert tracker.live == {1, 2}
        pool.kill()
        await pool.stop()
        assert len(errors) == 1
        assert tracker.live == set()


async def test_kill_from_inside_tasks_wins_over_their_outcome() -> None:
    tracker = Tracker()

    async with open_pool(tracker, check_health=health, workers=2) as pool:

        def kill_then_return(resource: int) -> int:
            pool.kill()
            return resource

        with pytest.raises(PoolClosedError):
            await pool.queue_task(kill_then_return)

    async with open_pool(tracker, check_health=health) as pool:

        def kill_then_fail(resource: int) -> None:
            pool.kill()
            raise TaskError

        with pytest.raises(PoolClosedError):
            await pool.queue_task(kill_then_fail)

    async with open_pool(tracker, check_health=health) as pool:

        def kill_then_sick(resource: int) -> None:
            pool.kill()
            raise Sick

        with pytest.raises(PoolClosedError):
            await pool.queue_task(kill_then_sick)

    gate = trio.Event()
    async with open_pool(tracker) as pool, trio.open_nursery() as nursery:

        async def hold(resource: int) -> None:
            await gate.wait()

        def kill_on_temporary(resource: int) -> int:
            pool.kill()
            return resource

        nursery.start_soon(closed_ok, pool, hold)
        await settle()
        with pytest.raises(PoolClosedError):
            await pool.run_task(kill_on_temporary)

    assert pool.metrics().succeeded == 0
    tracker.check_all_destroyed_once()


async def test_kill_during_a_hand_off_and_during_a_retry() -> None:
    # A sick worker hands the retry to an idle worker and then destroys its
    # resource: a destroy hook that kills catches the call in between.
    tracker = Tracker()
    pool_box: list[ResourcePool[int]] = []

    def destroy(resource: int) -> None:
        tracker.destroy(resource)
        pool_box[0].kill()

    def sick_on_first(resource: int) -> int:
        if not tracker.destroyed:
            raise Sick
        return resource  # pragma: no cover - killed first

    for method in ("queue_task", "run_task"):
        tracker = Tracker()
        pool_box.clear()
        async with open_resource_pool(
            tracker.create, destroy, workers=2, check_health=health
        ) as pool:
            pool_box.append(pool)
            with pytest.raises(PoolClosedError):
                await getattr(pool, method)(sick_on_first)
        tracker.check_all_destroyed_once()


async def test_caller_cancelled_during_a_hand_off() -> None:
    tracker = Tracker()
    scope = trio.CancelScope()
    ran: list[int] = []

    def destroy(resource: int) -> None:
        tracker.destroy(resource)
        scope.cancel()

    def sick_on_first(resource: int) -> None:
        ran.append(resource)
        if len(ran) == 1:
            raise Sick

    async with open_resource_pool(
        tracker.create, destroy, workers=2, check_health=health
    ) as pool:
        with scope:
            await pool.queue_task(sick_on_first)
        assert scope.cancelled_caught
        assert await pool.queue_task(ident) in tracker.live

    assert ran == [ran[0]]
    assert pool.metrics().cancelled == 1


async def test_leaving_the_block_with_an_exception_kills(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    answers: list[type[BaseException]] = []

    async def caller(pool: ResourcePool[int]) -> None:
        try:
            await pool.queue_task(sleep_then, 10)
        except PoolClosedError as exc:
            answers.append(type(exc))

    async def body(nursery: trio.Nursery) -> None:
        async with open_pool(tracker, workers=2) as pool:
            for _ in range(3):
                nursery.start_soon(caller, pool)
            await trio.sleep(1)
            raise KeyError("body")

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        with pytest.raises(KeyError):
            await body(nursery)

    assert trio.current_time() - t0 == 1
    assert answers == [PoolClosedError] * 3
    tracker.check_all_destroyed_once()


async def test_cancelling_the_pool_block_from_outside_answers_callers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    answers: list[type[BaseException]] = []

    async def caller(pool: ResourcePool[int]) -> None:
        try:
            await pool.queue_task(sleep_then, 10)
        except PoolClosedError as exc:
            answers.append(type(exc))

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(1) as scope:
            async with open_pool(tracker, workers=2) as pool:
                for _ in range(3):
                    nursery.start_soon(caller, pool)
                await trio.sleep_forever()
        assert scope.cancelled_caught

    assert answers == [PoolClosedError] * 3
    tracker.check_all_destroyed_once()


async def test_cancelled_stop_leaves_the_pool_closing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    t0 = trio.current_time()
    async with open_pool(tracker) as pool, trio.open_nursery() as nursery:
        nursery.start_soon(queue_sleep, pool, 2)
        await settle()
        with trio.move_on_after(1):
            await pool.stop()
        assert trio.current_time() - t0 == 1
        with pytest.raises(PoolClosedError):
            await pool.queue_task(ident)
    assert trio.current_time() - t0 == 2


async def test_a_base_exception_from_a_task_crashes_the_pool() -> None:
    tracker = Tracker()
    answers: list[type[BaseException]] = []

    def crash(resource: int) -> None:
        raise Boom

    async def caller(pool: ResourcePool[int], fn: Callable[[int], object]) -> None:
        try:
            await pool.queue_task(fn)
        except PoolClosedError as exc:
            answers.append(type(exc))

    gate = trio.Event()

    async def hold(resource: int) -> None:
        await gate.wait()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            with pytest.RaisesGroup(Boom):
                async with open_pool(tracker, workers=2) as pool:
                    nursery.start_soon(caller, pool, hold)
                    await settle()
                    nursery.start_soon(caller, pool, crash)
                    await trio.sleep_forever()

    assert answers == [PoolClosedError, PoolClosedError]
    tracker.check_all_destroyed_once()


# ----------------------------------------------------- destroy


async def test_destroy_errors_are_logged_and_do_not_break_the_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = Tracker()

    def destroy(resource: int) -> None:
        tracker.destroy(resource)
        raise RuntimeError(f"cannot close {resource}")

    def sick_once(resource: int) -> int:
        if resource == 1:
            raise Sick
        return resource

    async with open_resource_pool(tracker.create, destroy, check_health=health) as pool:
        assert await pool.queue_task(sick_once) == 2
        assert await pool.queue_task(ident) == 2

    assert tracker.destroyed == [1, 2]
    logged = [r for r in caplog.records if r.name == "trunner.pool"]
    assert len(logged) == 2
    assert all(r.levelno == logging.ERROR and r.exc_info for r in logged)


async def test_destroy_that_hangs_is_bounded_and_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def destroy(resource: int) -> None:
        await trio.sleep_forever()

    t0 = trio.current_time()
    async with open_resource_pool(lambda: 1, destroy):
        pass

    assert trio.current_time() - t0 == DESTROY_TIMEOUT
    assert "took more than" in caplog.text


# ----------------------------------------------- burst scaling


async def test_burst_workers_scale_up_while_tasks_pile_up_and_retire_when_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    samples: dict[float, PoolStatistics] = {}

    async def watch(pool: ResourcePool[int]) -> None:
        for when in (0.5, 1.5, 2.5, 3.5, 50.5, 60.5, 61.5, 62.5, 63.5):
            await trio.sleep_until(t0 + when)
            samples[when] = pool.statistics()

    t0 = trio.current_time()
    async with (
        open_pool(tracker, max_workers=4, burst_interval=1.0) as pool,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(watch, pool)
        for _ in range(20):
            nursery.start_soon(queue_sleep, pool, 10)

    assert [t - t0 for t in tracker.create_times] == [0, 1, 2, 3]
    assert [t - t0 for t in tracker.destroy_times[:3]] == [61, 62, 63]
    assert samples == {
        0.5: PoolStatistics(1, 0, 19, 0),
        1.5: PoolStatistics(2, 1, 18, 0),
        2.5: PoolStatistics(3, 2, 17, 0),
        3.5: PoolStatistics(4, 3, 16, 0),
        50.5: PoolStatistics(4, 3, 0, 1),
        60.5: PoolStatistics(4, 3, 0, 4),
        61.5: PoolStatistics(3, 2, 0, 3),
        62.5: PoolStatistics(2, 1, 0, 2),
        63.5: PoolStatistics(1, 0, 0, 1),
    }
    tracker.check_all_destroyed_once()


async def test_no_burst_while_completions_outpace_arrivals_and_burst_create_backs_off(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = Tracker(fail={2})

    t0 = trio.current_time()
    async with (
        open_pool(tracker, max_workers=2, burst_interval=10.0) as pool,
        trio.open_nursery() as nursery,
    ):
        for _ in range(30):
            nursery.start_soon(queue_sleep, pool, 1)
        # Tick 10: arrivals (30) >= completions (10), a burst worker is
        # tried and its create() fails; tick 20: 0 arrivals < 10
        # completions over the last tick: no burst although 9 wait.
        await trio.sleep(25.5)
        assert pool.statistics().queued_tasks == 4
        for _ in range(30):
            nursery.start_soon(queue_sleep, pool, 1)
        # Tick 30: a new burst of arrivals: a burst worker is added.

    assert [t - t0 for t in tracker.create_times] == [0, 10, 30]
    assert "burst worker" in caplog.text


async def test_idle_base_workers_take_calls_before_burst_workers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    t0 = trio.current_time()
    async with open_pool(tracker, max_workers=2, burst_interval=1.0) as pool:
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(queue_sleep, pool, 2)
        # The base worker went idle at 2 s, the burst worker at 3 s.
        assert pool.statistics().active_workers == 2
        # Both idle: the base worker takes the calls, though it parked first,
        # so the burst worker stays idle and retires at 13 s.
        assert await pool.queue_task(ident) == 1
        await trio.sleep(9.5)
        assert await pool.queue_task(ident) == 1
        await trio.sleep(10.5)
        assert pool.statistics() == PoolStatistics(1, 0, 0, 1)

    assert trio.current_time() - t0 == 23


# -------------------------------------- statistics and metrics


async def test_statistics_and_metrics(autojump_clock: trio.testing.MockClock) -> None:
    tracker = Tracker()

    def fail(resource: int) -> None:
        raise TaskError

    t0 = trio.current_time()
    async with open_pool(tracker, workers=2) as pool:
        assert pool.statistics() == PoolStatistics(2, 0, 0, 2)
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(queue_sleep, pool, 1)
            await settle()
            assert pool.statistics() == PoolStatistics(2, 0, 2, 0)
        with pytest.raises(TaskError):
            await pool.queue_task(fail)
        metrics = pool.metrics()

    assert trio.current_time() - t0 == 2
    assert metrics.succeeded == 4
    assert metrics.failed == 1
    assert metrics.wait_time.count == 5
    assert metrics.wait_time.max == 1
    assert metrics.run_time.count == 5
    assert metrics.run_time.max == 1
    assert metrics.run_time.min == 0
    assert metrics.arrival_rate == 2.5  # 5 calls over 2 s
    assert metrics.completion_rate == 2.5
    assert (metrics.retries, metrics.timeouts, metrics.cancelled) == (0, 0, 0)
    assert (metrics.skipped, metrics.rejected, metrics.dropped_results) == (0, 0, 0)


async def test_many_quick_tasks_run_in_batches() -> None:
    tracker = Tracker()
    results: list[int] = []

    async def caller(pool: ResourcePool[int]) -> None:
        results.append(await pool.queue_task(ident))

    with trio.fail_after(10):
        async with open_pool(tracker) as pool, trio.open_nursery() as nursery:
            for _ in range(5000):
                nursery.start_soon(caller, pool)

    assert results == [1] * 5000
    assert pool.metrics().wait_time.count == 5000


# ----------------------------------------------- property test


def run_virtual(body: Callable[[], Awaitable[None]]) -> None:
    trio.run(body, clock=trio.testing.MockClock(autojump_threshold=0))


@given(script=pool_scripts())
def test_pool_invariants_under_random_scripts(script: PoolScript) -> None:
    created: list[int] = []
    destroyed: Counter[int] = Counter()
    answers: Counter[int] = Counter()
    in_run_task = 0
    most_live = 0
    calls = 0
    pool_box: list[ResourcePool[int]] = []

    def check_counts() -> None:
        nonlocal most_live
        live = len(created) - sum(destroyed.values())
        most_live = max(most_live, live - in_run_task)
        if pool_box:
            assert pool_box[0].statistics().active_workers <= script.max_workers

    def create() -> int:
        nonlocal calls
        calls += 1
        index = calls - script.workers - 1
        if 0 <= index < len(script.create_failures) and script.create_failures[index]:
            raise CreateError(calls)
        created.append(calls)
        check_counts()
        return calls

    def destroy(resource: int) -> None:
        destroyed[resource] += 1

    def make_fn(spec: PoolTask) -> Callable[[int], object]:
        def outcome(resource: int) -> int:
            check_counts()
            if spec.fails:
                raise (TaskError if spec.healthy else Sick)(resource)
            return resource

        async def slow(resource: int) -> int:
            await trio.sleep(spec.duration_ms / 1000)
            return outcome(resource)

        return slow if spec.is_async else outcome

    async def caller(pool: ResourcePool[int], index: int, spec: PoolTask) -> None:
        nonlocal in_run_task
        await trio.sleep(spec.arrival_ms / 1000)
        try:
            if spec.run_now:
                in_run_task += 1
                try:
                    result = await pool.run_task(make_fn(spec), once=spec.once)
                finally:
                    in_run_task -= 1
            else:
                result = await pool.queue_task(
                    make_fn(spec), priority=spec.priority, once=spec.once
                )
        except (TaskError, Sick, CreateError, TrunnerError):
            pass
        else:
            assert result in created
            assert not spec.fails
        answers[index] += 1

    async def body() -> None:
        with trio.fail_after(10**6):
            async with (
                trio.open_nursery() as nursery,
                open_resource_pool(
                    create,
                    destroy,
                    workers=script.workers,
                    max_workers=script.max_workers,
                    check_health=health,
                    max_retries=script.max_retries,
                    burst_interval=script.burst_interval_ms / 1000,
                ) as pool,
            ):
                pool_box.append(pool)
                for index, spec in enumerate(script.tasks):
                    nursery.start_soon(caller, pool, index, spec)
                await trio.sleep(script.end_ms / 1000)
                if script.end == "kill":
                    pool.kill()
                else:
                    await pool.stop()

    logging.disable(logging.CRITICAL)
    try:
        run_virtual(body)
    finally:
        logging.disable(logging.NOTSET)

    assert answers == Counter(range(len(script.tasks)))
    assert destroyed == Counter(created)
    assert most_live <= script.max_workers


async def test_burst_workers_retire_under_a_trickle_of_calls(
    autojump_clock: trio.abc.Clock,
) -> None:
    names = iter(range(1, 100))
    served: set[int] = set()

    async def work(resource: int) -> int:
        await trio.sleep(0.1)
        return resource

    async with open_resource_pool(
        lambda: next(names),
        lambda r: None,
        workers=2,
        max_workers=6,
        burst_interval=0.1,
    ) as pool:
        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(pool.queue_task, work)
        assert pool.statistics().burst_workers > 0
        for _ in range(100):  # one call every 0.2 s for 20 s
            served.add(await pool.queue_task(work))
            await trio.sleep(0.1)

        assert pool.statistics().active_workers == 2
        assert pool.statistics().burst_workers == 0
    assert served <= {1, 2}


def test_create_backoff_stays_capped_after_thousands_of_failures() -> None:
    # Issue 8, item 8, same class: 2.0 ** (failures - 1) overflowed at 1025.
    from trunner._resource_pool._records import backoff

    delays = [backoff(n) for n in (1, 2, 1025, 10**6)]

    assert delays == [0.1, 0.2, BACKOFF_MAX, BACKOFF_MAX]
