"""The pool's workers: making, serving and destroying resources, and their health.

Each worker is a task of the pool's nursery holding one resource made by
``create()``. It runs calls inside one long-lived cancel scope that a caller's
cancellation cancels (then the worker opens a fresh one), and yields to the
scheduler every `BATCH` calls when the calls themselves do not. A call whose
error ``check_health`` judges fatal makes the worker destroy its resource and
make another, retrying ``create()`` with capped exponential backoff.
"""

from __future__ import annotations

import inspect
import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final, TypeVar

import attrs
import outcome
import trio

from .._errors import PoolClosedError, ResourceUnavailableError
from ._records import (
    BATCH,
    CANCELLED,
    CLOSING,
    CRASH_LOOP_FAILURES,
    DESTROY_TIMEOUT,
    DONE,
    HANDED,
    KILLED,
    KILLED_MESSAGE,
    OPEN,
    QUEUED,
    RETIRE_INTERVALS,
    RUNNING,
    Worker,
    backoff,
    wake_nappers,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._handoff import Handoff
    from ._records import Call, PoolLedger

logger: Final = logging.getLogger("trunner.pool")

ResourceT = TypeVar("ResourceT")

# The pool a worker task (and any trio task it starts) belongs to: its tasks,
# create() and destroy() see it, so the pool can refuse the waits they could
# never see the end of.
workers_var: Final[ContextVar[Workers]] = ContextVar("trunner.pool_workers")


async def dispose(destroy: Callable[[ResourceT], object], resource: ResourceT) -> None:
    """Destroy ``resource``: shielded, bounded, errors logged."""
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(DESTROY_TIMEOUT) as bound,
    ):
        try:
            result = destroy(resource)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("destroy(%r) raised; the resource is dropped", resource)
    if bound.cancelled_caught:
        logger.error(
            "destroy(%r) took more than %g s; the resource is dropped",
            resource,
            DESTROY_TIMEOUT,
        )


def is_sick(check_health: Callable[[Exception], bool] | None, error: Exception) -> bool:
    """Return whether ``error`` means the resource that raised it is sick."""
    if check_health is None:
        return False
    try:
        return not check_health(error)
    except Exception:
        logger.exception("check_health() raised; treating the resource as sick")
        return True


@attrs.define(eq=False)
class Workers:
    """The pool's worker tasks, their resources and the health of ``create()``."""

    ledger: PoolLedger
    handoff: Handoff
    nursery: trio.Nursery
    create_fn: Callable[[], object]
    # The resource is opaque here: the facade casts ``destroy`` to take any.
    destroy_fn: Callable[[object], object]
    check_health: Callable[[Exception], bool] | None
    max_retries: int
    burst_interval: float
    # Callbacks of the pool: kill it (a worker crashed, or the start failed),
    # and see whether it has drained (a worker stopped).
    kill: Callable[[], None]
    worker_stopped: Callable[[], None]
    live: dict[Worker, None] = attrs.field(factory=dict[Worker, None])
    count: int = 0
    burst_count: int = 0
    # Workers holding a resource, busy or idle.
    ready: int = 0
    starting: int = 0
    started: trio.Event = attrs.field(factory=trio.Event)
    start_error: Exception | None = None
    create_failures: int = 0
    # The last create() error, while the pool refuses tasks for lack of resources.
    unavailable: Exception | None = None
    burst_failures: int = 0
    # No burst worker before this time: the last one could not make a resource.
    burst_not_before: float = float("-inf")

    async def start(self, workers: int) -> Exception | None:
        """Start ``workers`` base workers; return the first ``create()`` error."""
        self.starting = workers
        for _ in range(workers):
            self.spawn(burst=False, starting=True)
        await self.started.wait()
        return self.start_error

    def spawn(self, *, burst: bool, starting: bool = False) -> None:
        """Start a worker in the pool's nursery."""
        worker = Worker(burst, self.handoff.idle, starting)
        self.live[worker] = None
        self.count += 1
        if burst:
            self.burst_count += 1
        self.nursery.start_soon(self.work, worker)

    def wake_nappers(self) -> None:
        """Cut short the naps of workers waiting to retry ``create()``."""
        wake_nappers(self.live)

    def unavailable_error(self) -> ResourceUnavailableError:
        """Return the error for calls refused for lack of resources."""
        error = ResourceUnavailableError(
            f"the resource pool cannot create a resource: {self.create_failures} "
            f"attempts in a row failed, the last with {self.unavailable!r}; it "
            "keeps trying in the background, try again later"
        )
        error.__cause__ = self.unavailable
        return error

    def may_retry(self, call: Call) -> bool:
        """Return whether ``call`` may run again after a health failure."""
        return (
            not call.once
            and not call.cancel_requested
            and call.retries < self.max_retries
        )

    def drop_calls_of(self, worker: Worker) -> None:
        """Answer the calls ``worker`` holds with `PoolClosedError`."""
        handoff, running = worker.handoff, worker.call
        if handoff is not None and handoff.state != DONE:
            self.ledger.skipped += 1
            self.handoff.answer(handoff, outcome.Error(PoolClosedError(KILLED_MESSAGE)))
        if running is not None and running.state != DONE:
            self.ledger.cancelled += 1
            self.handoff.answer(running, outcome.Error(PoolClosedError(KILLED_MESSAGE)))

    async def work(self, worker: Worker) -> None:
        """Be ``worker``: make a resource, serve calls on it, replace it if sick."""
        worker.task = trio.lowlevel.current_task()
        workers_var.set(self)  # in the worker task's own context
        try:
            with worker.scope:
                held = await self._obtain(worker)
                while held is not None:
                    resource = held[0]
                    try:
                        sick = await self._serve(worker, resource)
                    finally:
                        await dispose(self.destroy_fn, resource)
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
            del self.live[worker]
            if worker.burst:
                self.burst_count -= 1
            self.count -= 1
            # Cancelled from outside the pool before kill() ran.
            self.drop_calls_of(worker)
            self.worker_stopped()

    async def _obtain(self, worker: Worker) -> tuple[object] | None:
        """Make the worker's resource, or return None if it should stop.

        A worker's first attempt is its only one at the pool's start (the
        error goes to `open_resource_pool`) and for a burst worker; a
        replacement is retried with capped exponential backoff.
        """
        ledger = self.ledger
        failures = 0
        delay = 0.0
        while True:
            if ledger.status == KILLED or (
                ledger.status == CLOSING and not self.handoff.queued
            ):
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
                created = self.create_fn()
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
                delay = backoff(failures)
                continue
            self.create_failures = 0
            self.unavailable = None
            if worker.burst:
                self.burst_failures = 0
            if worker.starting:
                worker.starting = False
                self.starting -= 1
                if not self.starting:
                    self.started.set()
            return (created,)

    def _start_failed(self, error: Exception) -> None:
        if self.start_error is None:
            self.start_error = error
            self.kill()
        else:
            logger.error(
                "create() also failed while the resource pool opened", exc_info=error
            )

    def _create_failed(self, error: Exception, worker: Worker, failures: int) -> None:
        self.create_failures += 1
        if worker.burst:
            self.burst_failures += 1
            delay = backoff(self.burst_failures)
            self.burst_not_before = self.ledger.now() + delay
            logger.warning(
                "create() failed for a burst worker; no burst worker for %.3g s",
                delay,
                exc_info=error,
            )
        else:
            logger.warning(
                "create() failed (%d in a row for this worker); retrying in %.3g s",
                failures,
                backoff(failures),
                exc_info=error,
            )
        if self.create_failures >= CRASH_LOOP_FAILURES and not self.ready:
            # Crash loop: do not leave callers waiting for a resource that may
            # never come.
            self.unavailable = error
            self.handoff.drop_queued(self.unavailable_error)
            if self.ledger.status == CLOSING:
                self.wake_nappers()

    async def _serve(self, worker: Worker, resource: object) -> bool:
        """Run calls on ``resource``; return True if it is sick, False to stop."""
        self.ready += 1
        ledger = self.ledger
        handoff = self.handoff
        urgent, normal = handoff.urgent, handoff.normal
        now = ledger.now
        wait_samples = ledger.wait_times.samples
        run_samples = ledger.run_times.samples
        check_health = self.check_health
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
                            if call.state != HANDED:
                                continue
                        else:
                            queue = urgent or normal
                            if not queue:
                                if ledger.status != OPEN:
                                    # Closing, and nothing is left to run: a
                                    # worker waiting to retry create() can stop.
                                    self.wake_nappers()
                                    return False
                                if not await self._park(worker):
                                    return False
                                budget = BATCH
                                continue
                            call = queue.popleft()
                            if call.state != QUEUED:
                                continue
                            handoff.queued -= 1
                        call.state = RUNNING
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
                            if check_health is not None and is_sick(check_health, exc):
                                self._on_sick(call, exc)
                                return True
                            self.fail(call, exc)
                        else:
                            worker.call = None
                            if call.state == RUNNING:
                                call.state = DONE
                                ledger.succeeded += 1
                                run_samples.append(now() - call.started_at)
                                reschedule(call.task, Value(value))
                        if scope.cancel_called:
                            break
                        budget -= 1
                        if not budget:
                            budget = BATCH
                            ledger.housekeeping()
                            await trio.lowlevel.checkpoint()
                # A cancelled caller interrupted its task; answer it now that
                # the task has stopped. (Had kill() answered it, the worker's
                # own scope would be cancelled too, and we would not be here.)
                call = worker.call
                if call is not None:
                    worker.call = None
                    ledger.cancelled += 1
                    handoff.answer(call, Value(CANCELLED))
        finally:
            self.ready -= 1
            worker.task_scope = None

    def fail(self, call: Call, error: Exception) -> None:
        """Answer ``call`` with ``error``, unless kill() answered it first."""
        # (Success is handled inline in _serve, the hot path.)
        if call.state == RUNNING:
            ledger = self.ledger
            ledger.failed += 1
            ledger.run_times.samples.append(ledger.now() - call.started_at)
            self.handoff.answer(call, outcome.Error(error))

    def _on_sick(self, call: Call, error: Exception) -> None:
        if call.state == RUNNING and self.may_retry(call):
            call.retries += 1
            self.ledger.retries += 1
            if call.requeue:
                self.handoff.resubmit(call)
            else:
                call.retry_wanted = True
                call.state = DONE
                trio.lowlevel.reschedule(call.task, outcome.Error(error))
            return
        self.fail(call, error)

    async def _park(self, worker: Worker) -> bool:
        """Wait for a call; return False if a burst worker idled out."""
        self.ledger.housekeeping()
        if worker.burst:
            # At the bottom of the stack: calls go to idle base workers first,
            # so a trickle of calls cannot keep a surplus burst worker alive.
            self.handoff.idle.insert(0, worker)
        else:
            self.handoff.idle.append(worker)
        if not worker.burst:
            await trio.lowlevel.wait_task_rescheduled(worker.abort_park)
            return True
        with trio.move_on_after(RETIRE_INTERVALS * self.burst_interval):
            await trio.lowlevel.wait_task_rescheduled(worker.abort_park)
            return True
        # Idle for too long: retire. (A call queued since the deadline passed
        # waits for a busy worker, or makes the monitor add a burst worker.)
        return False
