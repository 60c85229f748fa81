"""ResourcePool: the facade over its hand-off, workers and burst scaling.

The pool's parts (DESIGN.md section 8) live in their own modules and talk
through plain fields and methods: `Handoff` (the queues of calls and the stack
of idle workers), `Workers` (the worker tasks, their resources, their health),
`BurstScaler` (extra workers while calls pile up) and the `PoolLedger` they
all count into. This module holds the public API: it admits calls, runs
``run_task`` calls on temporary resources, and closes the pool.
"""

from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Generic, TypeVar, cast, final, overload

import attrs
import outcome
import trio

from .._errors import PoolClosedError, TaskCancelledError, TrunnerError
from .._metrics import RunnerMetrics
from .._util import refuse_generator
from ._burst import BurstScaler
from ._handoff import Handoff
from ._records import (
    CANCELLED,
    CLOSING,
    KILLED,
    KILLED_MESSAGE,
    OPEN,
    RUNNING,
    Call,
    PoolLedger,
    Worker,
    closed_error,
)
from ._workers import Workers, dispose, is_sick, workers_var

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable
    from typing import NoReturn, TypeVarTuple, Unpack

    from ._records import TaskFn

    ArgsT = TypeVarTuple("ArgsT")

ResourceT = TypeVar("ResourceT")
RetT = TypeVar("RetT")


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


def _check_call(method: str, fn: object, *, priority: bool = False, once: bool) -> None:
    # Before anything is queued: a bad task fails its caller at once, not a
    # worker later (issue 8).
    if not callable(fn):
        raise TypeError(
            f"{method}(): fn must be callable as fn(resource, *args), not {fn!r}"
        )
    refuse_generator(f"{method}(): fn", fn, "fn(resource, *args)")
    for name, value in (("priority", priority), ("once", once)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, not {value!r}")


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
    _nursery: trio.Nursery
    _ledger: PoolLedger = attrs.field(init=False, factory=PoolLedger.on_current_clock)
    _handoff: Handoff = attrs.field(init=False)
    _workers: Workers = attrs.field(init=False)
    _burst: BurstScaler = attrs.field(init=False)
    # run_task calls under way: stop() waits for them too.
    _direct: int = attrs.field(init=False, default=0)
    # Set once the pool is closing and no worker or run_task call is left.
    _drained: trio.Event = attrs.field(init=False, factory=trio.Event)
    # The cancel scopes of run_task calls running on a temporary resource.
    _temp_scopes: set[trio.CancelScope] = attrs.field(
        init=False, factory=set[trio.CancelScope]
    )

    def __attrs_post_init__(self) -> None:
        # Every live worker: the hand-off wakes napping ones when the queue
        # empties while the pool closes.
        live: dict[Worker, None] = {}
        self._handoff = Handoff(self._ledger, live)
        self._workers = Workers(
            self._ledger,
            self._handoff,
            self._nursery,
            self._create_fn,
            cast("Callable[[object], object]", self._destroy_fn),
            self._check_health,
            self._max_retries,
            self._burst_interval,
            self.kill,
            self._check_drained,
            live=live,
        )
        self._burst = BurstScaler(
            self._ledger,
            self._handoff,
            self._workers,
            self._max_workers,
            self._burst_interval,
        )

    def __repr__(self) -> str:
        state = ("open", "closing", "killed")[self._ledger.status]
        if self._drained.is_set():
            state = "closed"
        return (
            f"<ResourcePool {state} workers={self._workers.count}"
            f"/{self._max_workers} queued={self._handoff.queued}>"
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
            RuntimeError: when called from a task of a pool of one worker
                (``max_workers=1``), whose only worker runs the caller and
                could never run the queued task; use `run_task` there.
            Exception: whatever ``fn`` raised, as itself (not in a group); after
                retries, the last attempt's error.
        """
        _check_call("queue_task", fn, priority=priority, once=once)
        if self._max_workers == 1 and workers_var.get(None) is self._workers:
            raise RuntimeError(
                "a task of a resource pool with max_workers=1 cannot queue_task on "
                "it: its only worker runs the caller and would wait for itself; use "
                "pool.run_task(), which runs at once on an idle or temporary resource"
            )
        if self._ledger.status != OPEN or self._workers.unavailable is not None:
            await trio.lowlevel.checkpoint()
            raise self._refusal()
        await trio.lowlevel.checkpoint_if_cancelled()
        call = Call(
            cast("TaskFn", fn),
            args,
            trio.lowlevel.current_task(),
            priority,
            once,
            True,
            self._ledger.now(),
        )
        self._ledger.arrivals += 1
        handoff = self._handoff
        handoff.submit(call)
        value = await trio.lowlevel.wait_task_rescheduled(
            lambda _raise_cancel: handoff.abort(call)
        )
        if value is CANCELLED:
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
        _check_call("run_task", fn, once=once)
        ledger = self._ledger
        if ledger.status != OPEN:
            await trio.lowlevel.checkpoint()
            ledger.rejected += 1
            raise closed_error()
        await trio.lowlevel.checkpoint_if_cancelled()
        call = Call(
            cast("TaskFn", fn),
            args,
            trio.lowlevel.current_task(),
            False,
            once,
            False,
            ledger.now(),
        )
        ledger.arrivals += 1
        self._direct += 1
        handoff = self._handoff
        try:
            while True:
                ledger.check_not_killed()
                if handoff.idle:
                    handoff.resubmit(call)
                    try:
                        value = await trio.lowlevel.wait_task_rescheduled(
                            lambda _raise_cancel: handoff.abort(call)
                        )
                    except Exception:
                        if not call.retry_wanted:
                            raise
                        call.retry_wanted = False
                        continue
                    if value is CANCELLED:
                        await self._raise_cancelled()
                    return value
                result = await self._run_temporary(call)
                if isinstance(result, outcome.Error):
                    error = cast("Exception", result.error)
                    if is_sick(self._check_health, error) and self._workers.may_retry(
                        call
                    ):
                        call.retries += 1
                        ledger.retries += 1
                        continue
                    ledger.failed += 1
                else:
                    ledger.succeeded += 1
                ledger.run_times.samples.append(ledger.now() - call.started_at)
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
        ``async with`` block.

        Raises:
            RuntimeError: when called from a task of the pool (or from its
                ``create`` or ``destroy``), which would wait for itself; then
                it does nothing. Use `kill` there, or stop the pool from outside.
        """
        if workers_var.get(None) is self._workers:
            raise RuntimeError(
                "a task of a resource pool cannot wait for the pool to stop (it "
                "would wait for itself); call pool.kill() or stop it from outside"
            )
        if self._ledger.status == OPEN:
            self._ledger.status = CLOSING
            self._burst.stop()
            self._handoff.wake_idle()
            if not self._handoff.queued:
                self._workers.wake_nappers()
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
        self._ledger.status = KILLED
        workers = self._workers
        workers.started.set()
        self._burst.stop()
        self._handoff.drop_queued(lambda: PoolClosedError(KILLED_MESSAGE))
        for worker in workers.live:
            workers.drop_calls_of(worker)
            worker.scope.cancel()
        for scope in list(self._temp_scopes):
            scope.cancel()
        self._check_drained()

    def statistics(self) -> PoolStatistics:
        """Return a cheap snapshot of the pool's counts."""
        return PoolStatistics(
            active_workers=self._workers.count,
            burst_workers=self._workers.burst_count,
            queued_tasks=self._handoff.queued,
            available_resources=len(self._handoff.idle),
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
        ledger = self._ledger
        completions = ledger.succeeded + ledger.failed
        arrival_rate, completion_rate = ledger.rates.rates(
            ledger.now(), ledger.arrivals, completions
        )
        return RunnerMetrics(
            arrival_rate=arrival_rate,
            completion_rate=completion_rate,
            wait_time=ledger.wait_times.summary(),
            run_time=ledger.run_times.summary(),
            succeeded=ledger.succeeded,
            failed=ledger.failed,
            retries=ledger.retries,
            timeouts=0,
            cancelled=ledger.cancelled,
            skipped=ledger.skipped,
            rejected=ledger.rejected,
            dropped_results=0,
        )

    # ------------------------------------------------------------------ internals

    async def _start(self) -> Exception | None:
        error = await self._workers.start(self._base_workers)
        if error is None and self._max_workers > self._base_workers:
            self._nursery.start_soon(self._burst.run)
        return error

    def _check_drained(self) -> None:
        if self._ledger.status != OPEN and not self._workers.count and not self._direct:
            self._drained.set()

    def _refusal(self) -> TrunnerError:
        self._ledger.rejected += 1
        if self._ledger.status != OPEN:
            return closed_error()
        return self._workers.unavailable_error()

    async def _raise_cancelled(self) -> NoReturn:
        # The caller's cancellation interrupted its running task; its cancel
        # scope is still cancelled, so this checkpoint raises Cancelled.
        await trio.lowlevel.checkpoint()
        # Only if another task shielded the caller in the meantime.
        raise TaskCancelledError("the task was cancelled while it ran")

    async def _run_temporary(self, call: Call) -> outcome.Outcome[object]:
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
                    self._ledger.cancelled += 1
                    raise
                finally:
                    await dispose(self._destroy_fn, cast("ResourceT", created))
        finally:
            self._temp_scopes.discard(scope)
        if result is None or scope.cancel_called:
            # Killed while it ran: whatever the task did, its caller hears so.
            raise PoolClosedError(KILLED_MESSAGE)
        return result

    async def _attempt(self, call: Call, resource: object) -> outcome.Outcome[object]:
        ledger = self._ledger
        call.state = RUNNING
        if call.started_at < 0:
            call.started_at = ledger.now()
            ledger.wait_times.samples.append(call.started_at - call.queued_at)
        try:
            value = call.fn(resource, *call.args)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            return outcome.Error(exc)
        return outcome.Value(value)


@asynccontextmanager
async def open_pool(
    create: Callable[[], object],
    destroy: Callable[[ResourceT], object],
    check_health: Callable[[Exception], bool] | None,
    workers: int,
    max_workers: int,
    max_retries: int,
    burst_interval: float,
) -> AsyncGenerator[ResourcePool[ResourceT], None]:
    """Open a pool of checked arguments; `open_resource_pool` documents it."""
    start_error: Exception | None = None
    body_error: BaseException | None = None
    pool: ResourcePool[ResourceT] | None = None
    try:
        async with trio.open_nursery() as nursery:
            pool = ResourcePool(
                create,
                destroy,
                check_health,
                workers,
                max_workers,
                max_retries,
                burst_interval,
                nursery,
            )
            try:
                start_error = await pool._start()  # pyright: ignore[reportPrivateUsage]  # its opener, in its module
                if start_error is None:
                    yield pool
                    await pool.stop()
            except BaseException as exc:  # re-raised below, after the nursery
                body_error = exc
                pool.kill()
    except BaseException:
        # The machinery crashed: nobody may be left waiting.
        # (pool is None only if the nursery itself failed to open.)
        if pool is not None:  # pragma: no branch
            pool.kill()
        raise
    if start_error is not None:
        raise start_error
    if body_error is not None:
        raise body_error
