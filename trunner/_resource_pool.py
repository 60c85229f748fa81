"""ResourcePool: workers that each own an expensive resource (DESIGN.md section 8).

Each worker is a task of the pool's nursery holding one resource made by
``create()``. Calls wait in two FIFOs (priority first) and idle workers park in
a stack: base workers on top of burst workers, the most recently idle on top
within each kind. A call that finds an idle worker is handed to it directly, so
the queues are non-empty only while every worker is busy (or making a
resource). This order keeps surplus burst workers idle long enough to retire,
even under a trickle of calls.

A caller sleeps in `trio.lowlevel.wait_task_rescheduled` and the worker
reschedules it with the outcome, so a call costs no `trio.Event`, no channel
and no cancel scope. A worker runs its calls inside one long-lived cancel scope
that a caller's cancellation cancels (then the worker opens a fresh one), and
yields to the scheduler every `BATCH` calls when the calls themselves do not.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, Generic, TypeVar, cast, final, overload

import attrs
import outcome
import trio

from ._errors import (
    PoolClosedError,
    ResourceUnavailableError,
    TaskCancelledError,
    TrunnerError,
)
from ._metrics import DurationRecorder, RateMeter, RunnerMetrics
from ._util import check_duration

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable
    from contextlib import AbstractAsyncContextManager
    from typing import NoReturn, TypeAlias, TypeVarTuple, Unpack

    ArgsT = TypeVarTuple("ArgsT")
    # A task as the pool stores it: fn(resource, *args).
    _TaskFn: TypeAlias = Callable[[object, Unpack[tuple[object, ...]]], object]

logger: Final = logging.getLogger("trunner.pool")

ResourceT = TypeVar("ResourceT")
RetT = TypeVar("RetT")

#: Calls a worker runs back to back before it yields to the trio scheduler,
#: when the calls themselves do not yield.
BATCH: Final = 32
#: Seconds a ``destroy()`` may take before the pool gives up on it (and logs).
DESTROY_TIMEOUT: Final = 10.0
#: Backoff between attempts to replace a resource: doubling from the first
#: value, capped at the second (seconds, trio clock).
BACKOFF_INITIAL: Final = 0.1
BACKOFF_MAX: Final = 5.0
#: Consecutive failed ``create()`` calls, with no worker holding a resource,
#: after which waiting callers get `ResourceUnavailableError`.
CRASH_LOOP_FAILURES: Final = 3
#: A burst worker idle for this many ``burst_interval`` retires.
RETIRE_INTERVALS: Final = 10
#: Burst scaling compares arrivals and completions over this many seconds.
BURST_WINDOW: Final = 1.0

# Pool states.
_OPEN: Final = 0
_CLOSING: Final = 1
_KILLED: Final = 2

# Call states.
_QUEUED: Final = 0  # in a queue
_HANDED: Final = 1  # handed to an idle worker that has not started it yet
_RUNNING: Final = 2
_DONE: Final = 3  # answered (or abandoned by its cancelled caller)

# The answer to a caller whose cancellation interrupted its running task.
_CANCELLED: Final = object()

_KILLED_MESSAGE: Final = (
    "the resource pool was killed before this task finished; "
    "open a new pool with open_resource_pool() to run it"
)


@final
@attrs.frozen
class PoolStatistics:
    """A snapshot of a `ResourcePool`, from `ResourcePool.statistics`."""

    #: Live workers, base and burst, including those making a resource.
    active_workers: int
    #: Live burst workers (counted in ``active_workers`` too).
    burst_workers: int
    #: Tasks waiting in the queue.
    queued_tasks: int
    #: Idle workers holding a resource, ready to run a task at once.
    available_resources: int


@attrs.define(eq=False)
class _Worker:
    burst: bool
    # The pool's idle list, so that a parked worker can take itself off it.
    idle: list[_Worker]
    # Whether its first resource is one of the pool's start.
    starting: bool
    # Cancelled by kill(): the worker stops and destroys its resource.
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    task: trio.lowlevel.Task = attrs.field(init=False)
    # The scope the worker runs calls in; a cancelled caller cancels it.
    task_scope: trio.CancelScope | None = None
    # The sleep between two failed create() calls; stop() cuts it short.
    nap: trio.CancelScope | None = None
    call: _Call | None = None
    handoff: _Call | None = None

    def abort_park(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self.idle.remove(self)
        return trio.lowlevel.Abort.SUCCEEDED


@attrs.define(eq=False)
class _Call:
    fn: _TaskFn
    args: tuple[object, ...]
    task: trio.lowlevel.Task
    priority: bool
    once: bool
    # queue_task calls are re-queued after a health failure; run_task calls
    # are handed back to their caller, which retries them "now".
    requeue: bool
    queued_at: float
    state: int = _QUEUED
    retries: int = 0
    started_at: float = -1.0
    worker: _Worker | None = None
    cancel_requested: bool = False
    retry_wanted: bool = False


def _backoff(failures: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (failures - 1))


def _closed_error() -> PoolClosedError:
    return PoolClosedError(
        "the resource pool is closed; open a new one with open_resource_pool()"
    )


@final
@attrs.define(eq=False, repr=False)
class ResourcePool(Generic[ResourceT]):
    """Workers that each own a resource, such as a connection or a client.

    Tasks are functions of the resource, ``fn(resource, *args)``, sync or
    async. `queue_task` queues them (priority tasks first, FIFO within each
    class) for the pool's workers; `run_task` runs one at once, on an idle
    pooled resource or on a temporary one. A task whose error the
    ``check_health`` hook judges fatal for its resource gets a fresh resource
    and is retried. Extra "burst" workers are added while tasks pile up and
    retire when idle.

    Every resource is destroyed exactly once: when its worker stops, retires or
    finds it sick, whether the pool closes, is killed or is cancelled.

    Made by `open_resource_pool`; the constructor is internal.
    """

    _create_fn: Callable[[], object]
    _destroy_fn: Callable[[ResourceT], object]
    _check_health: Callable[[Exception], bool] | None
    _base_workers: int
    _max_workers: int
    _max_retries: int
    _burst_interval: float
    _nursery: trio.Nursery = attrs.field(init=False)
    _state: int = attrs.field(init=False, default=_OPEN)
    _urgent: deque[_Call] = attrs.field(init=False, factory=deque[_Call])
    _normal: deque[_Call] = attrs.field(init=False, factory=deque[_Call])
    # Live calls in the two queues (cancelled ones are dropped lazily).
    _queued: int = attrs.field(init=False, default=0)
    # Parked workers holding a resource; the last one parked is woken first.
    _idle: list[_Worker] = attrs.field(init=False, factory=list[_Worker])
    _live: dict[_Worker, None] = attrs.field(init=False, factory=dict[_Worker, None])
    _worker_count: int = attrs.field(init=False, default=0)
    _burst_count: int = attrs.field(init=False, default=0)
    # Workers holding a resource, busy or idle.
    _ready: int = attrs.field(init=False, default=0)
    # run_task calls under way: stop() waits for them too.
    _direct: int = attrs.field(init=False, default=0)
    # Set once the pool is closing and no worker or run_task call is left.
    _drained: trio.Event = attrs.field(init=False, factory=trio.Event)
    # The cancel scopes of run_task calls running on a temporary resource.
    _temp_scopes: set[trio.CancelScope] = attrs.field(
        init=False, factory=set[trio.CancelScope]
    )
    _monitor_scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    _starting: int = attrs.field(init=False, default=0)
    _started: trio.Event = attrs.field(init=False, factory=trio.Event)
    _start_error: Exception | None = attrs.field(init=False, default=None)
    _create_failures: int = attrs.field(init=False, default=0)
    # The last create() error, while the pool refuses tasks for lack of resources.
    _unavailable: Exception | None = attrs.field(init=False, default=None)
    _burst_failures: int = attrs.field(init=False, default=0)
    _burst_not_before: float = attrs.field(init=False, default=float("-inf"))
    _arrivals: int = attrs.field(init=False, default=0)
    _succeeded: int = attrs.field(init=False, default=0)
    _failed: int = attrs.field(init=False, default=0)
    _retries: int = attrs.field(init=False, default=0)
    _cancelled: int = attrs.field(init=False, default=0)
    _skipped: int = attrs.field(init=False, default=0)
    _rejected: int = attrs.field(init=False, default=0)
    _wait_times: DurationRecorder = attrs.field(init=False, factory=DurationRecorder)
    _run_times: DurationRecorder = attrs.field(init=False, factory=DurationRecorder)
    _now: Callable[[], float] = attrs.field(init=False)
    _rates: RateMeter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._now = trio.lowlevel.current_clock().current_time
        self._rates = RateMeter(self._now())

    def __repr__(self) -> str:
        state = ("open", "closing", "killed")[self._state]
        if self._drained.is_set():
            state = "closed"
        return (
            f"<ResourcePool {state} workers={self._worker_count}"
            f"/{self._max_workers} queued={self._queued}>"
        )

    # ------------------------------------------------------------------ public API

    @overload
    async def queue_task(
        self,
        fn: Callable[[ResourceT, Unpack[ArgsT]], Awaitable[RetT]],
        *args: *ArgsT,
        priority: bool = False,
        once: bool = False,
    ) -> RetT: ...

    @overload
    async def queue_task(
        self,
        fn: Callable[[ResourceT, Unpack[ArgsT]], RetT],
        *args: *ArgsT,
        priority: bool = False,
        once: bool = False,
    ) -> RetT: ...

    async def queue_task(
        self,
        fn: Callable[[ResourceT, Unpack[ArgsT]], object],
        *args: *ArgsT,
        priority: bool = False,
        once: bool = False,
    ) -> object:
        """Queue ``fn(resource, *args)`` for a worker and return its result.

        A sync ``fn`` runs inline on the Trio thread; an async one (or one
        returning an awaitable) is awaited on the worker. Priority tasks are
        taken before normal ones, FIFO within each class.

        When ``fn`` raises and ``check_health(error)`` returns False, the
        worker's resource is destroyed and replaced, and the task goes back to
        the front of its queue, up to ``max_retries`` times; with
        ``once=True`` it is never retried.

        This is a checkpoint. Cancelling the caller while the task waits in
        the queue removes it; while it runs, cancels it, and returns once it
        has stopped.

        Args:
            fn: the task, called with the resource and ``args``.
            *args: positional arguments after the resource; bind keywords
                with `functools.partial`.
            priority: queue ahead of every task queued without it.
            once: at most once: never retry after a health failure.

        Returns:
            What ``fn`` returned.

        Raises:
            PoolClosedError: the pool is stopping or stopped, or was killed
                before the task finished.
            ResourceUnavailableError: the pool cannot make resources (see
                `open_resource_pool`).
            Exception: whatever ``fn`` raised, as itself (not in a group); after
                retries, the last attempt's error.
        """
        if self._state != _OPEN or self._unavailable is not None:
            await trio.lowlevel.checkpoint()
            raise self._refusal()
        await trio.lowlevel.checkpoint_if_cancelled()
        call = _Call(
            cast("_TaskFn", fn),
            args,
            trio.lowlevel.current_task(),
            priority,
            once,
            True,
            self._now(),
        )
        self._arrivals += 1
        idle = self._idle
        if idle:
            worker = idle.pop()
            worker.handoff = call
            call.state = _HANDED
            trio.lowlevel.reschedule(worker.task)
        else:
            (self._urgent if priority else self._normal).append(call)
            self._queued += 1
        value = await trio.lowlevel.wait_task_rescheduled(
            lambda _raise_cancel: self._abort_call(call)
        )
        if value is _CANCELLED:
            await self._raise_cancelled()
        return value

    @overload
    async def run_task(
        self,
        fn: Callable[[ResourceT, Unpack[ArgsT]], Awaitable[RetT]],
        *args: *ArgsT,
        once: bool = False,
    ) -> RetT: ...

    @overload
    async def run_task(
        self,
        fn: Callable[[ResourceT, Unpack[ArgsT]], RetT],
        *args: *ArgsT,
        once: bool = False,
    ) -> RetT: ...

    async def run_task(
        self,
        fn: Callable[[ResourceT, Unpack[ArgsT]], object],
        *args: *ArgsT,
        once: bool = False,
    ) -> object:
        """Run ``fn(resource, *args)`` now and return its result.

        The task never waits behind queued ones: it runs on an idle pooled
        resource if there is one, else on a temporary resource made by
        ``create()`` for it (in the caller's task) and destroyed right after.
        Temporary resources do not count against ``max_workers``. Health
        failures are retried as in `queue_task`, each time on an idle or
        temporary resource.

        This is a checkpoint. Cancelling the caller cancels the task; a
        temporary resource is still destroyed.

        Args:
            fn: the task, called with the resource and ``args``.
            *args: positional arguments after the resource.
            once: at most once: never retry after a health failure.

        Returns:
            What ``fn`` returned.

        Raises:
            PoolClosedError: the pool is stopping or stopped, or was killed
                before the task finished.
            Exception: whatever ``fn`` raised, or the error of ``create()``
                for a temporary resource, as itself (not in a group).
        """
        if self._state != _OPEN:
            await trio.lowlevel.checkpoint()
            self._rejected += 1
            raise _closed_error()
        await trio.lowlevel.checkpoint_if_cancelled()
        call = _Call(
            cast("_TaskFn", fn),
            args,
            trio.lowlevel.current_task(),
            False,
            once,
            False,
            self._now(),
        )
        self._arrivals += 1
        self._direct += 1
        try:
            while True:
                self._check_not_killed()
                if self._idle:
                    self._resubmit(call)
                    try:
                        value = await trio.lowlevel.wait_task_rescheduled(
                            lambda _raise_cancel: self._abort_call(call)
                        )
                    except Exception:
                        if not call.retry_wanted:
                            raise
                        call.retry_wanted = False
                        continue
                    if value is _CANCELLED:
                        await self._raise_cancelled()
                    return value
                result = await self._run_temporary(call)
                if isinstance(result, outcome.Error):
                    error = cast("Exception", result.error)
                    if self._is_sick(error) and self._may_retry(call):
                        call.retries += 1
                        self._retries += 1
                        continue
                    self._failed += 1
                else:
                    self._succeeded += 1
                self._run_times.samples.append(self._now() - call.started_at)
                return result.unwrap()
        finally:
            self._direct -= 1
            self._check_drained()

    async def stop(self) -> None:
        """Close the pool gracefully and wait until it has closed.

        New tasks are refused with `PoolClosedError` at once; queued and
        running tasks (and `run_task` calls) run to their end; then every
        worker destroys its resource. Idempotent: later calls wait for the
        same end. Leaving the ``async with`` block calls it.

        This is a checkpoint. Cancelling the caller stops the wait, not the
        closing, which goes on. It raises nothing itself: tasks' errors go to
        their callers, and errors of the pool's machinery come out of the
        ``async with`` block. Do not call it from a task of the pool: it would
        wait for itself.
        """
        if self._state == _OPEN:
            self._state = _CLOSING
            self._monitor_scope.cancel()
            idle = self._idle
            while idle:
                trio.lowlevel.reschedule(idle.pop().task)
            if not self._queued:
                self._wake_nappers()
            self._check_drained()
        await self._drained.wait()

    def kill(self) -> None:
        """Close the pool at once. Not a checkpoint; idempotent.

        Running tasks are cancelled, queued ones dropped, and every waiting
        caller, running or queued, gets `PoolClosedError` right away. New
        tasks are refused. The workers still destroy their resources (exactly
        once each) in the background; leaving the ``async with`` block, or
        `stop`, waits for that. Leaving the block with an exception calls it.
        """
        self._state = _KILLED
        self._started.set()
        self._monitor_scope.cancel()
        for queue in (self._urgent, self._normal):
            while queue:
                call = queue.popleft()
                if call.state == _QUEUED:
                    self._skipped += 1
                    self._answer(call, outcome.Error(PoolClosedError(_KILLED_MESSAGE)))
        self._queued = 0
        for worker in self._live:
            self._drop_calls_of(worker)
            worker.scope.cancel()
        for scope in list(self._temp_scopes):
            scope.cancel()
        self._check_drained()

    def statistics(self) -> PoolStatistics:
        """Return a cheap snapshot of the pool's counts."""
        return PoolStatistics(
            active_workers=self._worker_count,
            burst_workers=self._burst_count,
            queued_tasks=self._queued,
            available_resources=len(self._idle),
        )

    def metrics(self) -> RunnerMetrics:
        """Return the pool's metrics: rates, wait and run times, and counters.

        As for runners: ``arrival_rate`` counts accepted `queue_task` and
        `run_task` calls, ``completion_rate`` the tasks that succeeded or
        failed, per second over the last 10 seconds. ``wait_time`` runs from
        the call to the first start, ``run_time`` from the first start to the
        end, across retries. ``retries`` counts health-failure retries;
        ``cancelled`` tasks whose caller was cancelled or that `kill`
        interrupted; ``skipped`` queued tasks dropped without running (by
        `kill`, or for lack of resources); ``rejected`` calls refused because
        the pool was closed or out of resources. ``timeouts`` and
        ``dropped_results`` are always 0.
        """
        completions = self._succeeded + self._failed
        arrival_rate, completion_rate = self._rates.rates(
            self._now(), self._arrivals, completions
        )
        return RunnerMetrics(
            arrival_rate=arrival_rate,
            completion_rate=completion_rate,
            wait_time=self._wait_times.summary(),
            run_time=self._run_times.summary(),
            succeeded=self._succeeded,
            failed=self._failed,
            retries=self._retries,
            timeouts=0,
            cancelled=self._cancelled,
            skipped=self._skipped,
            rejected=self._rejected,
            dropped_results=0,
        )

    # ------------------------------------------------------------------ callers

    def _check_not_killed(self) -> None:
        if self._state == _KILLED:
            raise PoolClosedError(_KILLED_MESSAGE)

    def _check_drained(self) -> None:
        if self._state != _OPEN and not self._worker_count and not self._direct:
            self._drained.set()

    def _refusal(self) -> TrunnerError:
        self._rejected += 1
        if self._state != _OPEN:
            return _closed_error()
        return self._unavailable_error()

    def _unavailable_error(self) -> ResourceUnavailableError:
        error = ResourceUnavailableError(
            f"the resource pool cannot create a resource: {self._create_failures} "
            f"attempts in a row failed, the last with {self._unavailable!r}; it "
            "keeps trying in the background, try again later"
        )
        error.__cause__ = self._unavailable
        return error

    async def _raise_cancelled(self) -> NoReturn:
        # The caller's cancellation interrupted its running task; its cancel
        # scope is still cancelled, so this checkpoint raises Cancelled.
        await trio.lowlevel.checkpoint()
        # Only if another task shielded the caller in the meantime.
        raise TaskCancelledError("the task was cancelled while it ran")

    def _abort_call(self, call: _Call) -> trio.lowlevel.Abort:
        state = call.state
        if state == _RUNNING:
            # Cancel it where it runs; the caller is answered once it stopped.
            call.cancel_requested = True
            worker = cast("_Worker", call.worker)
            cast("trio.CancelScope", worker.task_scope).cancel()
            return trio.lowlevel.Abort.FAILED
        if state == _QUEUED:
            self._queued -= 1
            if self._state == _CLOSING and not self._queued:
                self._wake_nappers()
        # Queued or handed to a worker: the worker skips it.
        call.state = _DONE
        self._cancelled += 1
        return trio.lowlevel.Abort.SUCCEEDED

    def _resubmit(self, call: _Call) -> None:
        """Hand ``call`` to an idle worker, or queue it at the front."""
        idle = self._idle
        if idle:
            worker = idle.pop()
            worker.handoff = call
            call.state = _HANDED
            trio.lowlevel.reschedule(worker.task)
            return
        call.state = _QUEUED
        (self._urgent if call.priority else self._normal).appendleft(call)
        self._queued += 1

    def _answer(self, call: _Call, result: outcome.Outcome[object]) -> None:
        # Only for calls not answered yet: each caller is rescheduled once.
        call.state = _DONE
        trio.lowlevel.reschedule(call.task, result)

    def _fail(self, call: _Call, error: Exception) -> None:
        # The task failed on a pooled resource, unless kill() answered first.
        # (Success is handled inline in _serve, the hot path.)
        if call.state == _RUNNING:
            self._failed += 1
            self._run_times.samples.append(self._now() - call.started_at)
            self._answer(call, outcome.Error(error))

    def _drop_calls_of(self, worker: _Worker) -> None:
        handoff, running = worker.handoff, worker.call
        if handoff is not None and handoff.state != _DONE:
            self._skipped += 1
            self._answer(handoff, outcome.Error(PoolClosedError(_KILLED_MESSAGE)))
        if running is not None and running.state != _DONE:
            self._cancelled += 1
            self._answer(running, outcome.Error(PoolClosedError(_KILLED_MESSAGE)))

    def _is_sick(self, error: Exception) -> bool:
        check = self._check_health
        if check is None:
            return False
        try:
            return not check(error)
        except Exception:
            logger.exception("check_health() raised; treating the resource as sick")
            return True

    def _may_retry(self, call: _Call) -> bool:
        return (
            not call.once
            and not call.cancel_requested
            and call.retries < self._max_retries
        )

    def _on_sick(self, call: _Call, error: Exception) -> None:
        if call.state == _RUNNING and self._may_retry(call):
            call.retries += 1
            self._retries += 1
            if call.requeue:
                self._resubmit(call)
            else:
                call.retry_wanted = True
                call.state = _DONE
                trio.lowlevel.reschedule(call.task, outcome.Error(error))
            return
        self._fail(call, error)

    async def _run_temporary(self, call: _Call) -> outcome.Outcome[object]:
        """Run ``call`` once on a resource made for it, in the caller's task.

        Returns the task's outcome; raises the error of ``create()`` as
        itself, and `PoolClosedError` if `kill` interrupted it.
        """
        scope = trio.CancelScope()
        self._temp_scopes.add(scope)
        result: outcome.Outcome[object] | None = None
        try:
            with scope:
                created = self._create_fn()
                if inspect.isawaitable(created):
                    created = await created
                try:
                    result = await self._attempt(call, created)
                except trio.Cancelled:
                    self._cancelled += 1
                    raise
                finally:
                    await self._dispose(cast("ResourceT", created))
        finally:
            self._temp_scopes.discard(scope)
        if result is None or scope.cancel_called:
            # Killed while it ran: whatever the task did, its caller hears so.
            raise PoolClosedError(_KILLED_MESSAGE)
        return result

    async def _attempt(self, call: _Call, resource: object) -> outcome.Outcome[object]:
        call.state = _RUNNING
        if call.started_at < 0:
            call.started_at = self._now()
            self._wait_times.samples.append(call.started_at - call.queued_at)
        try:
            value = call.fn(resource, *call.args)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            return outcome.Error(exc)
        return outcome.Value(value)

    # ------------------------------------------------------------------ workers

    def _spawn(self, *, burst: bool, starting: bool = False) -> None:
        worker = _Worker(burst, self._idle, starting)
        self._live[worker] = None
        self._worker_count += 1
        if burst:
            self._burst_count += 1
        self._nursery.start_soon(self._work, worker)

    async def _work(self, worker: _Worker) -> None:
        worker.task = trio.lowlevel.current_task()
        try:
            with worker.scope:
                held = await self._obtain(worker)
                while held is not None:
                    resource = held[0]
                    try:
                        sick = await self._serve(worker, resource)
                    finally:
                        await self._dispose(resource)
                    if not sick:
                        return
                    held = await self._obtain(worker)
        except BaseException as exc:
            if not isinstance(exc, trio.Cancelled):
                # A BaseException from a task or a hook, or a bug: every
                # caller hears of it, and the nursery raises it.
                self.kill()
            raise
        finally:
            del self._live[worker]
            if worker.burst:
                self._burst_count -= 1
            self._worker_count -= 1
            # Cancelled from outside the pool before kill() ran.
            self._drop_calls_of(worker)
            self._check_drained()

    async def _obtain(self, worker: _Worker) -> tuple[ResourceT] | None:
        """Make the worker's resource, or return None if it should stop.

        A worker's first attempt is its only one at the pool's start (the
        error goes to `open_resource_pool`) and for a burst worker; a
        replacement is retried with capped exponential backoff.
        """
        failures = 0
        delay = 0.0
        while True:
            if self._state == _KILLED or (self._state == _CLOSING and not self._queued):
                return None
            if delay:
                # stop() cuts the nap short when nothing is left to run.
                with trio.move_on_after(delay) as nap:
                    worker.nap = nap
                    await trio.sleep_forever()
                worker.nap = None
                delay = 0.0
                continue
            try:
                created = self._create_fn()
                if inspect.isawaitable(created):
                    created = await created
            except Exception as exc:
                if worker.starting:
                    self._start_failed(exc)
                    return None
                failures += 1
                self._create_failed(exc, worker, failures)
                if worker.burst:
                    return None
                delay = _backoff(failures)
                continue
            self._create_failures = 0
            self._unavailable = None
            if worker.burst:
                self._burst_failures = 0
            if worker.starting:
                worker.starting = False
                self._starting -= 1
                if not self._starting:
                    self._started.set()
            return (cast("ResourceT", created),)

    def _start_failed(self, error: Exception) -> None:
        if self._start_error is None:
            self._start_error = error
            self.kill()
        else:
            logger.error(
                "create() also failed while the resource pool opened", exc_info=error
            )

    def _create_failed(self, error: Exception, worker: _Worker, failures: int) -> None:
        self._create_failures += 1
        if worker.burst:
            self._burst_failures += 1
            delay = _backoff(self._burst_failures)
            self._burst_not_before = self._now() + delay
            logger.warning(
                "create() failed for a burst worker; no burst worker for %.3g s",
                delay,
                exc_info=error,
            )
        else:
            logger.warning(
                "create() failed (%d in a row for this worker); retrying in %.3g s",
                failures,
                _backoff(failures),
                exc_info=error,
            )
        if self._create_failures >= CRASH_LOOP_FAILURES and not self._ready:
            # Crash loop: do not leave callers waiting for a resource that may
            # never come.
            self._unavailable = error
            for queue in (self._urgent, self._normal):
                while queue:
                    call = queue.popleft()
                    if call.state == _QUEUED:
                        self._skipped += 1
                        self._answer(call, outcome.Error(self._unavailable_error()))
            self._queued = 0
            if self._state == _CLOSING:
                self._wake_nappers()

    def _wake_nappers(self) -> None:
        for worker in self._live:
            if worker.nap is not None:
                worker.nap.cancel()

    async def _serve(self, worker: _Worker, resource: ResourceT) -> bool:
        """Run calls on ``resource``; return True if it is sick, False to stop."""
        self._ready += 1
        urgent, normal = self._urgent, self._normal
        now = self._now
        wait_samples = self._wait_times.samples
        run_samples = self._run_times.samples
        reschedule = trio.lowlevel.reschedule
        isawaitable = inspect.isawaitable
        Value = outcome.Value
        budget = BATCH
        try:
            while True:
                with trio.CancelScope() as scope:
                    worker.task_scope = scope
                    while True:
                        call = worker.handoff
                        if call is not None:
                            worker.handoff = None
                            if call.state != _HANDED:
                                continue
                        else:
                            queue = urgent or normal
                            if not queue:
                                if self._state != _OPEN:
                                    # Closing, and nothing is left to run: a
                                    # worker waiting to retry create() can stop.
                                    self._wake_nappers()
                                    return False
                                if not await self._park(worker):
                                    return False
                                budget = BATCH
                                continue
                            call = queue.popleft()
                            if call.state != _QUEUED:
                                continue
                            self._queued -= 1
                        call.state = _RUNNING
                        call.worker = worker
                        worker.call = call
                        started = now()
                        if call.started_at < 0:
                            call.started_at = started
                            wait_samples.append(started - call.queued_at)
                        try:
                            value = call.fn(resource, *call.args)
                            if isawaitable(value):
                                value = await value
                        except Exception as exc:
                            worker.call = None
                            if self._check_health is not None and self._is_sick(exc):
                                self._on_sick(call, exc)
                                return True
                            self._fail(call, exc)
                        else:
                            worker.call = None
                            if call.state == _RUNNING:
                                call.state = _DONE
                                self._succeeded += 1
                                run_samples.append(now() - call.started_at)
                                reschedule(call.task, Value(value))
                        if scope.cancel_called:
                            break
                        budget -= 1
                        if not budget:
                            budget = BATCH
                            self._housekeeping()
                            await trio.lowlevel.checkpoint()
                # A cancelled caller interrupted its task; answer it now that
                # the task has stopped. (Had kill() answered it, the worker's
                # own scope would be cancelled too, and we would not be here.)
                call = worker.call
                if call is not None:
                    worker.call = None
                    self._cancelled += 1
                    self._answer(call, Value(_CANCELLED))
        finally:
            self._ready -= 1
            worker.task_scope = None

    async def _park(self, worker: _Worker) -> bool:
        """Wait for a call; return False if a burst worker idled out."""
        self._housekeeping()
        if worker.burst:
            # At the bottom of the stack: calls go to idle base workers first,
            # so a trickle of calls cannot keep a surplus burst worker alive.
            self._idle.insert(0, worker)
        else:
            self._idle.append(worker)
        if not worker.burst:
            await trio.lowlevel.wait_task_rescheduled(worker.abort_park)
            return True
        with trio.move_on_after(RETIRE_INTERVALS * self._burst_interval):
            await trio.lowlevel.wait_task_rescheduled(worker.abort_park)
            return True
        # Idle for too long: retire. (A call queued since the deadline passed
        # waits for a busy worker, or makes the monitor add a burst worker.)
        return False

    async def _dispose(self, resource: ResourceT) -> None:
        """Destroy ``resource``: shielded, bounded, errors logged."""
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(DESTROY_TIMEOUT) as bound,
        ):
            try:
                result = self._destroy_fn(resource)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception(
                    "destroy(%r) raised; the resource is dropped", resource
                )
        if bound.cancelled_caught:
            logger.error(
                "destroy(%r) took more than %g s; the resource is dropped",
                resource,
                DESTROY_TIMEOUT,
            )

    def _housekeeping(self) -> None:
        self._wait_times.maybe_fold()
        self._run_times.maybe_fold()
        self._rates.note(self._now(), self._arrivals, self._succeeded + self._failed)

    async def _monitor(self) -> None:
        """Add a burst worker each ``burst_interval`` while tasks pile up."""
        interval = self._burst_interval
        start = self._now()
        # (time, arrivals, completions) at each tick of the last second or so.
        samples: deque[tuple[float, int, int]] = deque([(start, 0, 0)])
        tick = 0
        with self._monitor_scope:
            while True:
                tick += 1
                await trio.sleep_until(start + tick * interval)
                now = self._now()
                arrivals = self._arrivals
                completions = self._succeeded + self._failed
                while len(samples) > 1 and samples[1][0] <= now - BURST_WINDOW:
                    samples.popleft()
                _, past_arrivals, past_completions = samples[0]
                samples.append((now, arrivals, completions))
                if (
                    self._queued
                    and arrivals - past_arrivals >= completions - past_completions
                    and self._worker_count < self._max_workers
                    and now >= self._burst_not_before
                ):
                    self._spawn(burst=True)

    async def _start(self) -> Exception | None:
        self._starting = self._base_workers
        for _ in range(self._base_workers):
            self._spawn(burst=False, starting=True)
        await self._started.wait()
        if self._start_error is None and self._max_workers > self._base_workers:
            self._nursery.start_soon(self._monitor)
        return self._start_error


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


@overload
def open_resource_pool(
    create: Callable[[], Awaitable[ResourceT]],
    destroy: Callable[[ResourceT], object],
    *,
    workers: int = 1,
    max_workers: int | None = None,
    check_health: Callable[[Exception], bool] | None = None,
    max_retries: int = 3,
    burst_interval: float = 0.1,
) -> AbstractAsyncContextManager[ResourcePool[ResourceT]]: ...


@overload
def open_resource_pool(
    create: Callable[[], ResourceT],
    destroy: Callable[[ResourceT], object],
    *,
    workers: int = 1,
    max_workers: int | None = None,
    check_health: Callable[[Exception], bool] | None = None,
    max_retries: int = 3,
    burst_interval: float = 0.1,
) -> AbstractAsyncContextManager[ResourcePool[ResourceT]]: ...


def open_resource_pool(
    create: Callable[[], Awaitable[ResourceT]] | Callable[[], ResourceT],
    destroy: Callable[[ResourceT], object],
    *,
    workers: int = 1,
    max_workers: int | None = None,
    check_health: Callable[[Exception], bool] | None = None,
    max_retries: int = 3,
    burst_interval: float = 0.1,
) -> AbstractAsyncContextManager[ResourcePool[ResourceT]]:
    """Open a `ResourcePool` for an ``async with`` block.

    Use it as ``async with open_resource_pool(create, destroy) as pool:``.
    Entering makes the ``workers`` base resources, concurrently; if one
    ``create()`` fails, the others are cancelled or destroyed and that error
    is raised as itself. Leaving the block calls `ResourcePool.stop` (queued
    and running tasks finish, then every resource is destroyed); leaving it
    with an exception calls `ResourcePool.kill` first, and the exception
    propagates as itself. Errors of the pool's own machinery (such as a
    `KeyboardInterrupt` raised by a task) come out as a `BaseExceptionGroup`,
    like a nursery's, after every waiting caller got `PoolClosedError`.

    ``create``, ``destroy`` and the tasks may be sync or async. ``destroy``
    runs exactly once per resource, shielded from cancellation and bounded
    to 10 seconds; its errors (and its timeouts) are logged to the
    ``trunner.pool`` logger.

    When a resource turns out sick, its worker replaces it, retrying
    ``create()`` with backoff from 0.1 s doubling to 5 s and logging each
    failure. After three failures in a row while no worker holds a
    resource, queued callers and new `ResourcePool.queue_task` calls get
    `ResourceUnavailableError` (from the ``create()`` error) instead of
    waiting for a resource that may never come; the pool keeps trying.

    Burst scaling: every ``burst_interval`` seconds, while tasks wait in the
    queue and arrivals over the last second are at least completions, one
    burst worker is added, up to ``max_workers`` workers in all. A burst worker
    idle for ``10 * burst_interval`` retires; base workers never do.

    Args:
        create: makes a resource, ``create() -> resource``.
        destroy: releases one, ``destroy(resource)``.
        workers: base workers, always running (>= 1; default 1).
        max_workers: the most workers, base and burst (>= ``workers``);
            None (the default) means ``workers``: no burst scaling.
        check_health: ``check_health(error) -> bool``, called when a task
            raises; False means the resource is sick. None (the default)
            treats every error as the task's own. If it raises, the error is
            logged and the resource treated as sick.
        max_retries: retries of a task after health failures (>= 0; default
            3, so 4 attempts).
        burst_interval: seconds between burst scaling decisions (> 0;
            default 0.1).

    Returns:
        An async context manager that yields the pool.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range.
    """
    if not callable(create):
        raise TypeError(f"create must be callable, not {create!r}")
    if not callable(destroy):
        raise TypeError(f"destroy must be callable, not {destroy!r}")
    if check_health is not None and not callable(check_health):
        raise TypeError(f"check_health must be callable or None, not {check_health!r}")
    base = _check_count("workers", workers, 1)
    most = (
        base if max_workers is None else _check_count("max_workers", max_workers, base)
    )
    retries = _check_count("max_retries", max_retries, 0)
    interval = check_duration("burst_interval", burst_interval, allow_zero=False)
    return _open_pool(
        cast("Callable[[], object]", create),
        destroy,
        check_health,
        base,
        most,
        retries,
        interval,
    )


@asynccontextmanager
async def _open_pool(
    create: Callable[[], object],
    destroy: Callable[[ResourceT], object],
    check_health: Callable[[Exception], bool] | None,
    workers: int,
    max_workers: int,
    max_retries: int,
    burst_interval: float,
) -> AsyncGenerator[ResourcePool[ResourceT], None]:
    start_error: Exception | None = None
    body_error: BaseException | None = None
    pool = ResourcePool(
        create, destroy, check_health, workers, max_workers, max_retries, burst_interval
    )
    try:
        async with trio.open_nursery() as nursery:
            pool._nursery = nursery
            try:
                start_error = await pool._start()
                if start_error is None:
                    yield pool
                    await pool.stop()
            except BaseException as exc:  # re-raised below, after the nursery
                body_error = exc
                pool.kill()
    except BaseException:
        # The machinery crashed: nobody may be left waiting.
        pool.kill()
        raise
    if start_error is not None:
        raise start_error
    if body_error is not None:
        raise body_error
