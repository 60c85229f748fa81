"""Running one task: the fast path, and the full path of the reliability layer.

A task whose options are None (or ``simple``) is called and recorded, nothing
else: that is what most tasks are, and what the throughput figures measure.
Every other task goes through `run_full`, which adds attempts, per-attempt
timeouts, middleware, retries with backoff, rate limits, hooks and thread
offload.
"""

# pyright: reportPrivateUsage=false
# The execution paths drive a TaskHandle record from start to end: they read
# and write its fields once or twice per task, on the runners' hot paths.

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Final

import attrs
import trio

from ._context import sequence_var
from ._errors import TaskCancelledError, TaskTimeoutError
from ._handle import CANCEL_REQUESTED, WAITS_SLOT
from ._hooks import logger as hook_logger
from ._traits import TaskState
from ._util import describe

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._handle import TaskHandle
    from ._hooks import Middleware
    from ._limiter import PriorityLimiter
    from ._options import TaskOptions
    from ._runner._environment import RunnerEnvironment
    from ._runner._ledger import Ledger
    from ._util import AnyCallable

_SUCCEEDED: Final = TaskState.SUCCEEDED
_FAILED: Final = TaskState.FAILED
_CANCELLED: Final = TaskState.CANCELLED
_isawaitable: Final = inspect.isawaitable


def cancelled_error(handle: TaskHandle[object]) -> TaskCancelledError:
    """The error a task that was cancelled while running ends with."""
    return TaskCancelledError(f"task {handle.name!r} was cancelled while running")


@attrs.frozen
class Execution:
    """What running a task needs of its runner; the runner makes one."""

    ledger: Ledger
    #: The scheduler's worker slots, or None without a cap.
    limiter: PriorityLimiter | None
    #: Makes one attempt of an offloaded (``may_block``) task: a worker thread,
    #: the runner's own thread, or a worker process.
    call_offloaded: Callable[[TaskHandle[object]], Awaitable[object]]


async def run_task(
    ex: Execution, handle: TaskHandle[object], scope: trio.CancelScope
) -> None:
    """Run a PENDING handle to its end in ``scope`` and record how it ended.

    Re-raises `trio.Cancelled` (after recording the task CANCELLED) so that the
    scope unwinds; any other error of the task is recorded, never raised,
    except the non-`Exception` ones such as `KeyboardInterrupt`.
    """
    opts = handle._opts
    if opts is not None and not opts.simple:
        await run_full(ex, handle, scope, opts, None)
        return
    ledger = ex.ledger
    ledger.begin(handle, scope, ledger.now())
    try:
        result = handle._fn(*handle._args)
        if _isawaitable(result):
            result = await result
    except trio.Cancelled:
        ledger.end(handle, _CANCELLED, cancelled_error(handle))
        raise
    except BaseException as error:  # recorded, and re-raised if not an Exception
        end_with_error(ledger, handle, error)
    else:
        ledger.end(handle, _SUCCEEDED, result)


def end_with_error(
    ledger: Ledger, handle: TaskHandle[object], error: BaseException
) -> None:
    """Record a task that raised ``error``; re-raise what must not be swallowed."""
    if isinstance(error, Exception):
        ledger.end(handle, _FAILED, error)
        return
    if isinstance(error, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = error  # pyright: ignore[reportUnknownVariableType]  # any group
        cancelled, rest = group.split(trio.Cancelled)
        if rest is None:
            # Only cancellations (from a nursery inside the task): a cancel.
            ledger.end(handle, _CANCELLED, cancelled_error(handle))
            raise error
        ledger.end(handle, _FAILED, rest)
        if cancelled is not None:
            raise cancelled from None  # unwinds the scope; the failure is recorded
    else:
        ledger.end(handle, _FAILED, error)
    raise error  # KeyboardInterrupt, SystemExit and their groups end the run


async def offload_call(
    env: RunnerEnvironment, token: trio.lowlevel.TrioToken, handle: TaskHandle[object]
) -> object:
    """Make one attempt of a ``may_block`` task: its function in a worker thread."""
    opts = handle._opts
    return await offload(
        env,
        token,
        handle._fn,
        handle._args,
        abandon=opts is not None and opts.timeout is not None,
    )


async def offload(
    env: RunnerEnvironment,
    token: trio.lowlevel.TrioToken,
    fn: AnyCallable,
    args: tuple[object, ...],
    *,
    abandon: bool,
) -> object:
    """Run a sync function in a worker thread.

    A function in a thread cannot be interrupted. Without a timeout
    (``abandon=False``) a cancellation waits for it to end, as `trio.to_thread`
    does. With a timeout the caller stops waiting at the deadline, but the
    sequence (or worker) it runs on does not move on until the thread has
    ended: the consumer joins it through ``SequenceSlot.stragglers``.
    """
    finished = trio.Event()
    thread_call_ended = env.thread_call_ended

    def ended() -> None:
        thread_call_ended()
        finished.set()

    def work() -> object:
        try:
            result = fn(*args)
        finally:
            token.run_sync_soon(ended)
        if _isawaitable(result):
            # Said here, naming the user's function: trio would name ``work``.
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError(
                f"{describe(fn)!r} returned an awaitable, but a may_block task runs "
                "a plain function in a worker thread; post the async function "
                "without may_block"
            )
        return result

    env.thread_call_started()
    if not abandon:
        return await trio.to_thread.run_sync(work)

    try:
        return await trio.to_thread.run_sync(work, abandon_on_cancel=True)
    except trio.Cancelled:
        slot = sequence_var.get(None)
        if slot is not None:
            slot.stragglers.append(finished)
        raise


async def join_stragglers(stragglers: list[trio.Event]) -> None:
    """Wait, shielded, for abandoned thread calls to end.

    Deliberately unbounded: returning earlier would leave a thread of the
    runner running after it has moved on (or closed).
    """
    with trio.CancelScope(shield=True):
        while stragglers:
            await stragglers.pop().wait()


async def wait_stragglers() -> None:
    """Wait, cancellably, for the current sequence's abandoned thread calls to end.

    Unlike `join_stragglers` it leaves them in the list: if it is cancelled,
    the consumer still joins them before it moves on.
    """
    slot = sequence_var.get(None)
    if slot is not None:
        for finished in list(slot.stragglers):
            await finished.wait()


async def acquire_slot(
    limiter: PriorityLimiter | None, handle: TaskHandle[object]
) -> bool:
    """Before a task starts: take a rate-limit token, then a scheduler slot.

    The token comes first, so that a task waiting for one holds no slot. The
    consumer's `SequenceSlot` records whether it holds a scheduler slot.

    Returns:
        Whether the task may start: False if it ended (cancelled, skipped)
        while it waited, and then no slot is held.
    """
    opts = handle._opts
    bucket = None if opts is None else opts.bucket
    if bucket is None and (limiter is None or limiter.acquire_nowait()):
        if limiter is not None:
            sequence_var.get().holds_slot = True
        return True
    # The handle is still PENDING, so a cancel or a close ends it without
    # touching the consumer: it cancels this scope instead (WAITS_SLOT).
    handle._flags |= WAITS_SLOT
    with trio.CancelScope() as wait:
        handle._scope = wait
        if bucket is not None:
            await bucket.take()
        await _acquire(limiter, handle)
    handle._flags &= ~WAITS_SLOT
    if handle.done:
        release_slot(limiter)
        return False
    return True


async def _acquire(limiter: PriorityLimiter | None, handle: TaskHandle[object]) -> None:
    if limiter is None:
        return
    if not limiter.acquire_nowait():
        await limiter.acquire(handle.traits.priority)
    sequence_var.get().holds_slot = True


def release_slot(limiter: PriorityLimiter | None) -> None:
    """Give back the scheduler slot the current consumer holds, if any."""
    slot = sequence_var.get()
    if slot.holds_slot:
        slot.holds_slot = False
        assert limiter is not None
        limiter.release()


def start_attempt(handle: TaskHandle[object], opts: TaskOptions) -> object:
    """Start the one attempt of a light task (see `TaskOptions.light`).

    Calls its on_start hooks, then its middleware (first outermost) around
    the task's function, and returns what the outermost layer returned: the
    coroutine of the middleware, or the function's result if there is none.
    The caller awaits it if it is awaitable, like the result of a plain call.
    """
    for hook in opts.on_start:
        try:
            hook(handle)
        except Exception:
            hook_logger.exception("hook %r raised; the task goes on", hook)
    middleware = opts.middleware
    if not middleware:
        return handle._fn(*handle._args)
    outer = middleware[0]
    call: Callable[[], Awaitable[object]] = handle._call_fn
    if len(middleware) > 1:
        call = wrap_inner_layers(handle, call, middleware)
    return outer(handle, call)


def wrap_inner_layers(
    handle: TaskHandle[object],
    call: Callable[[], Awaitable[object]],
    middleware: tuple[Middleware, ...],
) -> Callable[[], Awaitable[object]]:
    """Wrap ``call`` in every middleware layer but the outermost, in a partial each.

    The caller calls the outermost layer itself, with what this returns as its
    ``call_next``: with one middleware, the common case, no partial is made.
    """
    for layer in reversed(middleware[1:]):
        call = functools.partial(layer, handle, call)
    return call


async def run_full(
    ex: Execution,
    handle: TaskHandle[object],
    scope: trio.CancelScope,
    opts: TaskOptions,
    now: float | None,
) -> float | None:
    """Run a task with the whole reliability layer and record how it ended.

    Each attempt runs its middleware (first outermost) around the call, inside
    the attempt's timeout scope. A failed attempt is retried as its policy says,
    after a cancellable backoff on the trio clock; a retry takes a new rate
    limit token, giving back the scheduler slot while it waits for it.

    ``now`` is the start time if the caller has read the clock already (None
    otherwise). Returns the time the task ended, or None if it was cancelled.
    """
    ledger = ex.ledger
    ledger.begin(handle, scope, ledger.now() if now is None else now)
    for hook in opts.on_start:
        try:
            hook(handle)
        except Exception:
            hook_logger.exception("hook %r raised; the task goes on", hook)
    # The innermost call of an attempt: the function (or its offload), a bound
    # method. The middleware get it as their call_next: the outermost layer is
    # called directly each attempt, the inner layers through partials.
    call: Callable[[], Awaitable[object]]
    if opts.offload:
        call = functools.partial(ex.call_offloaded, handle)
    else:
        call = handle._call_fn
    middleware = opts.middleware
    outer: Middleware | None = None
    if middleware:
        outer = middleware[0]
        call = wrap_inner_layers(handle, call, middleware)
    attempt = 1
    try:
        while True:
            error: BaseException | None = None
            result: object = None
            if opts.timeout is None:
                try:
                    if outer is None:
                        result = await call()
                    else:
                        result = await outer(handle, call)
                except Exception as exc:  # the attempt's failure
                    error = exc
            else:
                with trio.CancelScope(
                    deadline=trio.current_time() + opts.timeout
                ) as attempt_scope:
                    handle._scope = attempt_scope
                    try:
                        if outer is None:
                            result = await call()
                        else:
                            result = await outer(handle, call)
                    except Exception as exc:  # the attempt's failure
                        error = exc
                handle._scope = scope
                if attempt_scope.cancelled_caught:
                    if handle._flags & CANCEL_REQUESTED:
                        ledger.end(handle, _CANCELLED, cancelled_error(handle))
                        return None
                    ledger.timeouts += 1
                    error = TaskTimeoutError(
                        f"attempt {attempt} of task {handle.name!r} ran past its "
                        f"timeout of {opts.timeout} s"
                    )
            if error is None:
                return ledger.end(handle, _SUCCEEDED, result)
            policy = opts.retry
            cancelled = handle._flags & CANCEL_REQUESTED
            if policy is None or cancelled or not policy.should_retry(error, attempt):
                return ledger.end(handle, _FAILED, error)
            await trio.sleep(policy.backoff(attempt))
            # An attempt that timed out in a thread is still running there: the
            # next attempt (and any slot given back below) waits for its end.
            await wait_stragglers()
            attempt += 1
            ledger.retries += 1
            handle._attempts = attempt
            if opts.bucket is not None:
                await _take_token_without_slot(ex.limiter, handle, opts)
    except trio.Cancelled:
        ledger.end(handle, _CANCELLED, cancelled_error(handle))
        raise
    except BaseException as exc:  # recorded, and re-raised if not an Exception
        end_with_error(ledger, handle, exc)
    return None


async def _take_token_without_slot(
    limiter: PriorityLimiter | None, handle: TaskHandle[object], opts: TaskOptions
) -> None:
    assert opts.bucket is not None
    release_slot(limiter)
    await opts.bucket.take()
    await _acquire(limiter, handle)
