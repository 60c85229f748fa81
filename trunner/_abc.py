"""TaskRunner: the protocol every runner implements, as a facade over its parts.

A runner is made of the parts in ``trunner/_runner/``: a `Ledger` (counts, live
tasks, the start and end of tasks), a `TimerHeap` (delayed and repeating
tasks), `Barriers` (flushes, idle waits) and a `ResultFanout` (subscriptions),
with the `RunnerEnvironment` its scheduler hands it. This class holds the
public API: posting, cancelling, closing. Subclasses bring the queue and the
task(s) that consume it: one consumer for a sequence, a pool of workers for a
parallel runner, one OS thread for a thread runner.

Everything here runs on the Trio thread, so no lock is needed; posts from other
threads are shipped to the Trio thread through the run's `trio.lowlevel.TrioToken`.
"""

# pyright: reportPrivateUsage=false
# The facade creates, admits and cancels TaskHandle records, whose fields the
# parts of a runner share; posting is the hottest path after the consumers'.

from __future__ import annotations

import abc
import math
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, overload

import attrs
import trio

from ._context import runner_var
from ._errors import QueueFullError, RunnerClosedError
from ._execute import Execution, offload_call
from ._handle import (
    CANCEL_REQUESTED,
    WAITS_ADMISSION,
    WAITS_BARRIER,
    RepeatingHandle,
    TaskHandle,
    call_done_callback,
    next_id,
)
from ._hooks import logger as hook_logger
from ._metrics import RateMeter, RunnerMetrics
from ._options import TaskOptions, check_timeout, is_async_callable, log_task_error
from ._ratelimit import TokenBucket
from ._results import DropPolicy, ResultSubscription
from ._retry import RetryPolicy
from ._runner._barriers import Barriers
from ._runner._fanout import ResultFanout, result_of
from ._runner._ledger import (
    CLOSED,
    CLOSING,
    OPEN,
    Ledger,
    RoomWaiter,
    RunnerStatistics,
)
from ._runner._timers import TimerHeap
from ._traits import (
    MissedTicks,
    RepeatMode,
    ShutdownBehavior,
    TaskState,
    TaskTraits,
)
from ._util import AnyCallable, check_duration, check_optional_count, describe

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from typing import TypeVarTuple, Unpack

    import outcome

    from ._options import RunnerConfig
    from ._runner._environment import RunnerEnvironment
    from ._scheduler import Scheduler

    ArgsT = TypeVarTuple("ArgsT")

__all__ = ["RunnerStatistics", "TaskRunner"]

T = TypeVar("T")

# What each barrier waits for, as named in the error from a task of the runner.
_OWN_WAITS: Final = {
    "aclose": "to close",
    "flush": "to flush",
    "wait_idle": "to be idle",
}

_PENDING: Final = TaskState.PENDING
_RUNNING: Final = TaskState.RUNNING
_CANCELLED: Final = TaskState.CANCELLED
_SKIPPED: Final = TaskState.SKIPPED
_BLOCK: Final = ShutdownBehavior.BLOCK_SHUTDOWN
_CONTINUE: Final = ShutdownBehavior.CONTINUE_ON_SHUTDOWN


async def _wait_ended(handle: TaskHandle[object]) -> None:
    # Wait for a handle to end, whatever its end (wait() would raise it).
    event = trio.Event()
    handle.add_done_callback(lambda _: event.set())
    await event.wait()


@attrs.define(eq=False, repr=False)
class TaskRunner(abc.ABC):
    """The TaskRunner protocol: what every runner of trunner does.

    Runners are made by a `Scheduler` (``open_*_runner`` / ``create_*_runner``)
    or by the module-level ``trunner.open_*_runner`` helpers; their constructors
    are internal.

    Posting never blocks and may be done from any thread; everything else is
    for the Trio thread. A post from another thread is checked (closed, full)
    when it is made and admitted on the Trio thread soon after, so posts made
    in other threads at the same moment may briefly take a bounded runner past
    ``max_pending``. A task that raises does not kill its runner: the error
    goes to its handle, to the runner's ``on_error`` (default: log it) and to
    the statistics.
    """

    _scheduler: Scheduler
    _nursery: trio.Nursery
    _config: RunnerConfig
    # What the scheduler provides: slot limiter, hooks, thread calls, close.
    _env: RunnerEnvironment
    _name: str = attrs.field(init=False)
    _traits: TaskTraits = attrs.field(init=False)
    _max_pending: int | None = attrs.field(init=False)
    _default_opts: TaskOptions | None = attrs.field(init=False)
    _offload_opts: TaskOptions = attrs.field(init=False)
    # Whether each post must look at its function (may_block, thread runners).
    _inspect_fn: bool = attrs.field(init=False)
    # Queues a handle: _enqueue, or straight to the channel of a sequence (one
    # Python call less on the hottest path).
    _push: Callable[[TaskHandle[object]], None] = attrs.field(init=False)
    _bucket: TokenBucket | None = attrs.field(init=False)
    _on_error: Callable[[TaskHandle[object], BaseException], object] = attrs.field(
        init=False
    )
    _now: Callable[[], float] = attrs.field(init=False)
    _token: trio.lowlevel.TrioToken = attrs.field(init=False)
    _trio_thread: int = attrs.field(init=False)
    _finish_hooks: bool = attrs.field(init=False, default=False)
    # The last function whose name a TaskResult needed, and that name.
    _named_fn: object = attrs.field(init=False, default=None)
    _named: str = attrs.field(init=False, default="")
    # The parts.
    _ledger: Ledger = attrs.field(init=False)
    _timers: TimerHeap = attrs.field(init=False)
    _barriers: Barriers = attrs.field(init=False)
    _fanout: ResultFanout = attrs.field(init=False)
    # What the execution paths need: the ledger, the limiter, the offload.
    _execution: Execution = attrs.field(init=False)
    _machinery_done: trio.Event = attrs.field(init=False, factory=trio.Event)

    #: Whether the runner runs its tasks one at a time in posting order, so
    #: that a task's FIFO place is a barrier behind every earlier task.
    _ordered: ClassVar[bool] = False

    def __attrs_post_init__(self) -> None:
        config = self._config
        self._traits = config.traits
        self._max_pending = config.max_pending
        self._name = config.name or f"{type(self).__name__}-{next_id()}"
        self._on_error = config.on_error or log_task_error
        self._bucket = (
            None if config.rate_limit is None else TokenBucket(config.rate_limit)
        )
        hooks = tuple(h for h in (self._env.hooks, config.hooks) if h is not None)
        base = TaskOptions(
            traits=config.traits,
            name=None,
            retry=config.retry,
            timeout=config.timeout,
            offload=False,
            hooks=hooks,
            middleware=config.middleware,
            bucket=self._bucket,
        )
        needs_opts = not base.simple or base.on_queued or config.traits.may_block
        self._default_opts = base if needs_opts else None
        # on_finish hooks hear of every task's end, like subscribers.
        self._finish_hooks = bool(base.on_finish)
        self._inspect_fn = config.traits.may_block
        self._offload_opts = base.evolve(
            traits=config.traits,
            name=None,
            retry=config.retry,
            timeout=config.timeout,
            offload=True,
        )
        clock = trio.lowlevel.current_clock()
        self._now = now = clock.current_time
        self._ledger = ledger = Ledger(
            self,
            now,
            self._max_pending,
            self._report_error,
            self._notify,
            self._cancel_running,
            RateMeter(now()),
        )
        ledger.watching = self._finish_hooks
        self._timers = TimerHeap(
            self._nursery, self._name, ledger, self._admit, self._post_internal
        )
        ledger.timer_dropped = self._timers.dropped
        # A cleared flush_soon callback is queued as it is: already counted.
        self._barriers = Barriers(
            ledger, lambda handle: self._push(handle), self._update_watching
        )
        self._fanout = ResultFanout(self._is_fully_closed, self._update_watching)
        self._token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()
        self._execution = Execution(ledger, self._env.limiter, self._call)
        self._push = self._enqueue
        self._start_machinery()

    def __repr__(self) -> str:
        state = ("open", "closing", "closed")[self._ledger.phase]
        return f"<{type(self).__name__} {self._name!r} {state}>"

    # ------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def _start_machinery(self) -> None:
        """Start the task(s) that consume the queue, in ``self._nursery``."""

    @abc.abstractmethod
    def _enqueue(self, handle: TaskHandle[object]) -> None:
        """Queue a PENDING handle that is already counted in ``_pending``."""

    @abc.abstractmethod
    def _stop_intake(self) -> None:
        """No task will be enqueued any more: let the consumers exit once idle."""

    @abc.abstractmethod
    def _running_handles(self) -> Iterable[TaskHandle[object]]:
        """The handles that are RUNNING now."""

    async def _call(self, handle: TaskHandle[object]) -> object:
        """Make one attempt of an offloaded task (overridden by thread runners)."""
        return await offload_call(self._env, self._token, handle)

    def _cancel_running(self, handle: TaskHandle[object]) -> bool:
        """Cancel a RUNNING handle through its cancel scope."""
        opts = handle._opts
        if opts is not None and opts.offload:
            return False  # a function in a thread runs to its end
        handle._flags |= CANCEL_REQUESTED
        handle._scope.cancel()
        return True

    # ------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        """The runner's name (``name=``), or a generated one."""
        return self._name

    @property
    def traits(self) -> TaskTraits:
        """The default traits of the runner's tasks."""
        return self._traits

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler the runner belongs to."""
        return self._scheduler

    @property
    def closed(self) -> bool:
        """Whether the runner has begun closing (it then refuses posts from outside)."""
        return self._ledger.phase != OPEN

    def runs_tasks_in_current_sequence(self) -> bool:
        """Whether the caller is a task of this runner.

        For a sequenced or thread runner this means "on this runner's sequence":
        code that touches the runner's state may do so without a lock.
        """
        return runner_var.get(None) is self

    # ------------------------------------------------------------ posting

    def _options_for(
        self,
        fn: object,
        args: tuple[object, ...],
        traits: TaskTraits | None,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,
        what: str = "fn",
    ) -> TaskOptions | None:
        # Every check of a post, made before anything is posted; ``what``
        # names the function's argument in the messages.
        if not callable(fn):
            raise TypeError(f"{what} must be callable, not {fn!r}")
        if traits is None and name is None and retry is None and timeout is None:
            if self._offloads(fn, args, self._traits, what):
                return self._offload_opts
            return self._default_opts
        if traits is None:
            traits = self._traits
        elif not isinstance(traits, TaskTraits):
            raise TypeError(f"traits must be a TaskTraits, not {traits!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {name!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {retry!r}")
        offload = self._offloads(fn, args, traits, what)
        base = self._offload_opts
        return base.evolve(
            traits=traits,
            name=name,
            retry=base.retry if retry is None else retry,
            timeout=base.timeout if timeout is None else check_timeout(timeout),
            offload=offload,
        )

    def _offloads(
        self, fn: object, args: tuple[object, ...], traits: TaskTraits, what: str
    ) -> bool:
        """Whether ``fn`` runs in a worker thread (``may_block`` on a sync function).

        A runner that cannot run ``fn`` raises `TypeError` naming ``what``.
        """
        return traits.may_block and not is_async_callable(fn)

    def _refuse(self) -> RunnerClosedError:
        return RunnerClosedError(
            f"runner {self._name!r} is closed; post to an open runner, or open a new "
            "one with scheduler.open_sequenced_runner() and friends"
        )

    def _full(self) -> QueueFullError:
        self._ledger.rejected += 1
        return QueueFullError(
            f"runner {self._name!r} already has max_pending={self._max_pending} tasks "
            "waiting; use 'await runner.send_task(...)' to wait for room"
        )

    @overload
    def post_task(
        self,
        fn: Callable[[Unpack[ArgsT]], Awaitable[T]],
        *args: *ArgsT,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> TaskHandle[T]: ...
    @overload
    def post_task(
        self,
        fn: Callable[[Unpack[ArgsT]], T],
        *args: *ArgsT,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> TaskHandle[T]: ...
    def post_task(
        self,
        fn: AnyCallable,
        *args: object,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> TaskHandle[object]:
        """Post ``fn(*args)`` to run as soon as the runner gets to it. Never blocks.

        ``fn`` is an async function; a plain function runs inline on the Trio
        thread, or in a worker thread if its traits have ``may_block``. Bind
        keyword arguments with `functools.partial`.

        Args:
            fn: the function to run.
            *args: its positional arguments.
            traits: traits for this task, replacing the runner's.
            name: a name for the task (default: the function's name).
            retry: a `RetryPolicy` for this task, replacing the runner's.
            timeout: seconds each attempt may take, replacing the runner's.

        Returns:
            The task's `TaskHandle`.

        Raises:
            RunnerClosedError: if the runner is closed (a task of the runner
                may still post while a graceful `aclose` is under way).
            QueueFullError: if ``max_pending`` tasks are already waiting.
            TypeError: if ``fn`` is not callable or an option has the wrong type.
            ValueError: for a non-positive ``timeout``.
        """
        if (
            traits is None
            and name is None
            and retry is None
            and timeout is None
            and not self._inspect_fn
            and callable(fn)
        ):
            opts = self._default_opts
        else:
            opts = self._options_for(fn, args, traits, name, retry, timeout)
        if threading.get_ident() != self._trio_thread:
            return self._post_from_thread(fn, args, opts, None)
        ledger = self._ledger
        if ledger.phase:
            return self._post_while_closing(fn, args, opts)
        if self._max_pending is not None and ledger.pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            ledger, fn, args, next_id(), opts, self._now()
        )
        ledger.live[handle._id] = handle
        ledger.pending += 1
        self._push(handle)
        if opts is not None and opts.on_queued:
            for hook in opts.on_queued:
                try:
                    hook(handle)
                except Exception:
                    hook_logger.exception("hook %r raised; the task goes on", hook)
        return handle

    def _post_checked(
        self, fn: AnyCallable, args: tuple[object, ...], opts: TaskOptions | None
    ) -> TaskHandle[object]:
        """Post a task whose options were checked: `post_task` past its checks.

        `post_task` keeps its own copy of these lines: it is the hottest path,
        and one Python call is a measurable part of a post.
        """
        if threading.get_ident() != self._trio_thread:
            return self._post_from_thread(fn, args, opts, None)
        if self._ledger.phase:
            return self._post_while_closing(fn, args, opts)
        if self._max_pending is not None and self._ledger.pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            self._ledger, fn, args, next_id(), opts, self._now()
        )
        self._ledger.live[handle._id] = handle
        self._ledger.pending += 1
        self._push(handle)
        if opts is not None and opts.on_queued:
            self._fire_on_queued(handle, opts)
        return handle

    @overload
    def post_tasks(
        self,
        fns: Iterable[Callable[[], Awaitable[T]]],
        *,
        traits: TaskTraits | None = None,
    ) -> list[TaskHandle[T]]: ...
    @overload
    def post_tasks(
        self, fns: Iterable[Callable[[], T]], *, traits: TaskTraits | None = None
    ) -> list[TaskHandle[T]]: ...
    def post_tasks(  # type: ignore[explicit-any]  # the overloads give the precise type
        self, fns: Iterable[AnyCallable], *, traits: TaskTraits | None = None
    ) -> list[TaskHandle[Any]]:
        """Post a batch of functions, all or none. Never blocks.

        Returns:
            Their handles, in order.

        Raises:
            QueueFullError: if a bounded runner has no room for the whole batch;
                nothing is posted then.
            RunnerClosedError: if the runner is closed.
            TypeError: if one of ``fns`` is not callable; nothing is posted then.
        """
        batch = list(fns)
        options = [
            self._options_for(fn, (), traits, None, None, None, "every item of fns")
            for fn in batch
        ]
        if self._ledger.phase == CLOSED or (
            self._ledger.phase and runner_var.get(None) is not self
        ):
            raise self._refuse()
        if (
            self._max_pending is not None
            and self._ledger.pending + len(batch) > self._max_pending
        ):
            raise self._full()
        return [
            self._post_checked(fn, (), opts)
            for fn, opts in zip(batch, options, strict=True)
        ]

    def _post_while_closing(
        self,
        fn: AnyCallable,
        args: tuple[object, ...],
        opts: TaskOptions | None,
    ) -> TaskHandle[object]:
        # During a graceful close only the runner's own tasks may post; what
        # they post follows its shutdown behaviour at once.
        if self._ledger.phase == CLOSED or runner_var.get(None) is not self:
            raise self._refuse()
        if self._max_pending is not None and self._ledger.pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            self._ledger, fn, args, next_id(), opts, self._now()
        )
        self._admit(handle)
        return handle

    def _admit(self, handle: TaskHandle[object]) -> None:
        """Queue a new handle, honouring a close under way; no max_pending check."""
        opts = handle._opts
        traits = self._traits if opts is None else opts.traits
        if self._ledger.phase and (
            self._ledger.phase == CLOSED or traits.shutdown_behavior is not _BLOCK
        ):
            self._ledger.finish_unstarted(handle, _SKIPPED)
            return
        self._ledger.live[handle._id] = handle
        self._ledger.pending += 1
        self._push(handle)
        if opts is not None and opts.on_queued:
            self._fire_on_queued(handle, opts)

    def _post_from_thread(
        self,
        fn: AnyCallable,
        args: tuple[object, ...],
        opts: TaskOptions | None,
        delay: float | None,
    ) -> TaskHandle[object]:
        # Another OS thread (for example a task of a SingleThreadTaskRunner):
        # make the handle here, and let the Trio thread admit it. ``delay`` is
        # None for a task that is not delayed.
        own = runner_var.get(None) is self
        if self._ledger.phase == CLOSED or (self._ledger.phase and not own):
            raise self._refuse()
        if self._max_pending is not None and self._ledger.pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            self._ledger, fn, args, next_id(), opts, 0.0
        )
        handle._flags = WAITS_ADMISSION
        self._token.run_sync_soon(self._admit_from_thread, handle, delay, own)
        return handle

    def _admit_from_thread(
        self, handle: TaskHandle[object], delay: float | None, own: bool
    ) -> None:
        if handle._state is not _PENDING:  # cancelled before it got here
            return
        handle._flags = 0
        if self._ledger.phase and not own:
            self._ledger.finish_unstarted(handle, _SKIPPED)
        elif delay is not None:
            self._timers.delay(handle, delay)
        else:
            handle._queued_at = self._now()
            self._admit(handle)

    def _fire_on_queued(self, handle: TaskHandle[object], opts: TaskOptions) -> None:
        for hook in opts.on_queued:
            try:
                hook(handle)
            except Exception:
                hook_logger.exception("hook %r raised; the task goes on", hook)

    def _post_internal(
        self,
        fn: AnyCallable,
        args: tuple[object, ...],
        opts: TaskOptions | None,
    ) -> TaskHandle[object] | None:
        """Post a reply or a due run: never refused by ``max_pending``.

        A closed runner drops it (returns None); a closing one applies the
        shutdown behaviour of its traits.
        """
        if self._ledger.phase == CLOSED:
            return None
        handle: TaskHandle[object] = TaskHandle(
            self._ledger, fn, args, next_id(), opts, self._now()
        )
        self._admit(handle)
        return handle

    @overload
    async def send_task(
        self,
        fn: Callable[[*ArgsT], Awaitable[T]],
        *args: *ArgsT,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the task's timeout
    ) -> TaskHandle[T]: ...
    @overload
    async def send_task(
        self,
        fn: Callable[[*ArgsT], T],
        *args: *ArgsT,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the task's timeout
    ) -> TaskHandle[T]: ...
    async def send_task(
        self,
        fn: AnyCallable,
        *args: object,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the task's timeout
    ) -> TaskHandle[object]:
        """Post like `post_task`, but wait for room in a full bounded runner.

        This is a checkpoint. Waiters get room in FIFO order; cancelling the
        wait posts nothing.

        Returns:
            The task's `TaskHandle`.

        Raises:
            RunnerClosedError: if the runner is closed, also while waiting.
        """
        opts = self._options_for(fn, args, traits, name, retry, timeout)
        await trio.lowlevel.checkpoint_if_cancelled()
        limit = self._max_pending
        waiters = self._ledger.room_waiters
        if (
            limit is not None
            and not self._ledger.phase
            and (waiters or self._ledger.pending >= limit)
        ):
            await self._wait_room(limit)
        handle = self._post_checked(fn, args, opts)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return handle

    async def _wait_room(self, limit: int) -> None:
        # Strict FIFO: only the first waiter may take room. A first waiter that
        # is woken but beaten to the room by a post keeps its place at the
        # head (a parking lot would requeue it at the back); a newcomer queues
        # behind the waiters even when there is room.
        waiters = self._ledger.room_waiters
        waiter = RoomWaiter()
        waiters.append(waiter)
        try:
            while not self._ledger.phase and (
                waiters[0] is not waiter or self._ledger.pending >= limit
            ):
                await waiter.woken.wait()
                waiter.woken = trio.Event()
        finally:
            waiters.remove(waiter)
            # The next waiter looks at what room is left once this one has
            # posted (no checkpoint comes between), or takes it if this one
            # was cancelled.
            self._ledger.wake_room()

    @overload
    async def run(
        self,
        fn: Callable[[Unpack[ArgsT]], Awaitable[T]],
        *args: *ArgsT,
        traits: TaskTraits | None = None,
    ) -> T: ...
    @overload
    async def run(
        self,
        fn: Callable[[Unpack[ArgsT]], T],
        *args: *ArgsT,
        traits: TaskTraits | None = None,
    ) -> T: ...
    async def run(
        self, fn: AnyCallable, *args: object, traits: TaskTraits | None = None
    ) -> object:
        """Post ``fn(*args)`` and wait for its result.

        This is a checkpoint. Cancelling the caller cancels the task, and the
        call returns (raising `trio.Cancelled`) once the task has ended. The
        task's own exception is raised as itself (not wrapped in a group).

        Returns:
            What ``fn`` returned.

        Raises:
            TaskCancelledError: if the task was cancelled or skipped.
            RunnerClosedError: if the runner is closed.
            QueueFullError: if the runner is bounded and full.
        """
        handle = self.post_task(fn, *args, traits=traits)
        try:
            return await handle.wait()
        except trio.Cancelled:
            handle.cancel()
            if not handle.done:
                # Return only once it has ended, as run_all does: it may take
                # time to unwind, and a function in a thread runs to its end.
                with trio.CancelScope(shield=True):
                    await _wait_ended(handle)
            raise

    @overload
    def post_delayed_task(
        self,
        fn: Callable[[*ArgsT], Awaitable[T]],
        *args: *ArgsT,
        delay: float,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> TaskHandle[T]: ...
    @overload
    def post_delayed_task(
        self,
        fn: Callable[[*ArgsT], T],
        *args: *ArgsT,
        delay: float,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> TaskHandle[T]: ...
    def post_delayed_task(
        self,
        fn: AnyCallable,
        *args: object,
        delay: float,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> TaskHandle[object]:
        """Post ``fn(*args)`` to be queued ``delay`` seconds from now (trio clock).

        Delayed tasks fall due in deadline order, then posting order. A due task
        is queued like a posted one, but never refused by ``max_pending``. A
        delayed task not yet due when the runner closes is skipped, whatever
        its traits.

        Args:
            fn: the function to run.
            *args: its positional arguments.
            delay: seconds to wait, >= 0.
            traits: as for `post_task`.
            name: as for `post_task`.
            retry: as for `post_task`.
            timeout: as for `post_task`.

        Returns:
            The task's `TaskHandle`; it is PENDING while it waits.

        Raises:
            ValueError: for a negative or NaN ``delay``.
            RunnerClosedError: if the runner is closed.
        """
        seconds = check_duration("delay", delay)
        opts = self._options_for(fn, args, traits, name, retry, timeout)
        if threading.get_ident() != self._trio_thread:
            return self._post_from_thread(fn, args, opts, seconds)
        if self._ledger.phase and (
            self._ledger.phase == CLOSED or runner_var.get(None) is not self
        ):
            raise self._refuse()
        handle: TaskHandle[object] = TaskHandle(
            self._ledger, fn, args, next_id(), opts, 0.0
        )
        self._timers.delay(handle, seconds)
        return handle

    def post_repeating_task(
        self,
        fn: Callable[[*ArgsT], object],
        *args: *ArgsT,
        interval: float,
        initial_delay: float = 0.0,
        mode: RepeatMode = RepeatMode.FIXED_RATE,
        missed: MissedTicks = MissedTicks.SKIP,
        traits: TaskTraits | None = None,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> RepeatingHandle:
        """Run ``fn(*args)`` again and again until stopped or the runner closes.

        By default the rate is fixed on absolute deadlines: run k = 0, 1, 2, ...
        is due at ``post_time + initial_delay + k * interval``, whatever each run
        took, so there is no drift. ``mode=RepeatMode.FIXED_DELAY`` waits
        ``interval`` after each run ends instead. Runs never overlap. When a
        fixed-rate run overruns its slot, ``missed`` decides: `MissedTicks.SKIP`
        (default) goes on with the next deadline not in the past,
        `MissedTicks.COALESCE` runs once at once then resumes the schedule, and
        `MissedTicks.BURST` runs every missed tick back to back.

        Args:
            fn: the function to run.
            *args: its positional arguments.
            interval: seconds between deadlines, > 0.
            initial_delay: seconds before the first run, >= 0.
            mode: fixed rate or fixed delay.
            missed: the overrun policy of a fixed rate.
            traits: as for `post_task`.
            name: as for `post_task`.
            retry: as for `post_task`, per run.
            timeout: as for `post_task`, per run.

        Returns:
            A `RepeatingHandle` to stop it and count its runs.

        Raises:
            ValueError: for a non-positive ``interval`` or a negative
                ``initial_delay``.
            RunnerClosedError: if the runner is closed.
        """
        period = check_duration("interval", interval, allow_zero=False)
        if math.isinf(period):
            raise ValueError(
                "interval must be finite; use post_delayed_task for a single run"
            )
        first = check_duration("initial_delay", initial_delay)
        if not isinstance(mode, RepeatMode):
            raise TypeError(f"mode must be a RepeatMode, not {mode!r}")
        if not isinstance(missed, MissedTicks):
            raise TypeError(f"missed must be a MissedTicks, not {missed!r}")
        opts = self._options_for(fn, args, traits, name or describe(fn), retry, timeout)
        if threading.get_ident() != self._trio_thread:
            raise RuntimeError(
                "post_repeating_task must be called from the Trio thread; use "
                "trio.from_thread.run_sync(runner.post_repeating_task, ...)"
            )
        own = runner_var.get(None) is self
        if self._ledger.phase == CLOSED or (self._ledger.phase and not own):
            raise self._refuse()
        anchor = trio.current_time() + first
        repeating = RepeatingHandle(
            self._timers, fn, args, opts, period, mode, missed, anchor
        )
        # Its runs count themselves as they start (on the Trio thread, wherever
        # they run), and call the user's function itself: a process runner
        # must be able to pickle it.
        assert opts is not None
        repeating._opts = opts.with_start_hook(repeating._count_run)
        if self._ledger.phase:
            repeating._stopped = True
        else:
            self._timers.add_repeating(repeating, anchor)
        return repeating

    def post_task_and_reply(
        self,
        task: Callable[[], object],
        reply: Callable[[], object],
        reply_runner: TaskRunner | None = None,
    ) -> TaskHandle[object]:
        """Post ``task``; once it has ended, however it ended, post ``reply``.

        The reply goes to ``reply_runner``, by default the runner of the caller
        (`current_runner`). It runs after a failed, cancelled or skipped task
        too. It is never refused by ``max_pending``; only a closed reply runner
        drops it.

        Returns:
            The `TaskHandle` of ``task``.

        Raises:
            NoCurrentRunnerError: without ``reply_runner``, outside any runner.
        """
        target = self._reply_runner(reply_runner)
        opts = self._options_for(task, (), None, None, None, None, "task")
        reply_opts = target._options_for(reply, (), None, None, None, None, "reply")
        handle = self._post_checked(task, (), opts)
        self._when_done(handle, lambda _: target._post_internal(reply, (), reply_opts))
        return handle

    def post_task_and_reply_with_result(
        self,
        task: Callable[[], Awaitable[T]] | Callable[[], T],
        reply: Callable[[outcome.Outcome[T]], object],
        reply_runner: TaskRunner | None = None,
    ) -> TaskHandle[T]:
        """Post ``task``; once it has ended, post ``reply(outcome)``.

        ``outcome`` is an `outcome.Value` with the result, or an `outcome.Error`
        with the exception (`TaskCancelledError` for a cancelled or skipped
        task); ``outcome.unwrap()`` returns the value or raises. Delivery is as
        for `post_task_and_reply`.

        Returns:
            The `TaskHandle` of ``task``.
        """
        target = self._reply_runner(reply_runner)
        opts = self._options_for(task, (), None, None, None, None, "task")
        reply_opts = target._options_for(reply, (), None, None, None, None, "reply")
        handle: TaskHandle[T] = self._post_checked(task, (), opts)  # type: ignore[assignment]  # task is sync or async: either way its handle gives a T
        self._when_done(
            handle,
            lambda done: target._post_internal(reply, (done.outcome,), reply_opts),
        )
        return handle

    def _when_done(
        self, handle: TaskHandle[T], callback: Callable[[TaskHandle[T]], object]
    ) -> None:
        # Handles belong to the Trio thread: from another thread, ship the call
        # there (after the handle's own admission, which was shipped first).
        if threading.get_ident() == self._trio_thread:
            handle.add_done_callback(callback)
        else:
            self._token.run_sync_soon(handle.add_done_callback, callback)

    def _reply_runner(self, reply_runner: TaskRunner | None) -> TaskRunner:
        if reply_runner is None:
            from ._context import current_runner  # a cycle at import time

            return current_runner()
        if not isinstance(reply_runner, TaskRunner):
            raise TypeError(f"reply_runner must be a TaskRunner, not {reply_runner!r}")
        return reply_runner

    # ------------------------------------------------------------ task ends

    def _report_error(self, handle: TaskHandle[object], error: BaseException) -> None:
        try:
            self._on_error(handle, error)
        except Exception:
            log_task_error(handle, error)

    def _notify(self, handle: TaskHandle[object]) -> None:
        waiters = handle._waiters
        if waiters is not None:
            handle._waiters = None
            for callback in waiters:
                call_done_callback(callback, handle)
        opts = handle._opts
        subscriptions = self._fanout.subscriptions
        if subscriptions or (opts is not None and opts.on_finish):
            # The task's name (handle.name), with the last function's name
            # cached: a runner mostly runs a few functions, and describing one
            # costs a microsecond.
            if opts is not None and opts.name is not None:
                name = opts.name
            elif handle._fn is self._named_fn:
                name = self._named
            else:
                self._named_fn = handle._fn
                self._named = name = describe(handle._fn)
            result = result_of(handle, name)
            if opts is not None:
                for hook in opts.on_finish:
                    try:
                        hook(handle, result)
                    except Exception:
                        hook_logger.exception("hook %r raised; the task goes on", hook)
            if subscriptions:
                self._fanout.publish(result, in_consumer=self._in_consumer())
        barriers = self._barriers
        if barriers.barriers:
            barriers.advance(handle._id)
        if barriers.idle_event is not None:
            ledger = self._ledger
            if not ledger.pending and not ledger.running:
                barriers.note_idle()

    def _update_watching(self) -> None:
        self._ledger.watching = bool(
            self._finish_hooks
            or self._barriers.idle_event is not None
            or self._barriers.barriers
            or self._fanout.subscriptions
        )

    # ------------------------------------------------------------ cancellation

    def cancel(self, task_id: int) -> bool:
        """Cancel the task with id ``task_id`` (see `TaskHandle.cancel`).

        Returns:
            False for an unknown or finished id, or a task in a thread that cannot
            be interrupted; True otherwise.
        """
        handle = self._ledger.live.get(task_id)
        if handle is None:
            handle = self._timers.find(task_id)
            if handle is None:
                return False
        return self._ledger.cancel(handle)

    def cancel_all(self) -> None:
        """Cancel every pending, running and not-yet-due task; stop repeating ones.

        The runner stays open: tasks posted afterwards run as usual.
        """
        self._timers.clear(_CANCELLED)
        ledger = self._ledger
        for handle in [h for h in ledger.live.values() if h._state is _PENDING]:
            ledger.cancel(handle)
        for handle in list(self._running_handles()):
            self._cancel_running(handle)

    # ------------------------------------------------------------ waiting

    async def wait_idle(self) -> None:
        """Wait until no task is pending or running. A checkpoint.

        Delayed tasks not yet due and future runs of repeating tasks do not
        count; tasks posted while waiting do.

        Raises:
            RuntimeError: when called from one of the runner's own tasks (code
                for which `current_runner` is this runner), on every kind of
                runner: the caller is itself running, so the runner is never
                idle while it waits.
        """
        self._refuse_own_wait("wait_idle")
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._ledger.pending or self._ledger.running:
            await self._barriers.idle_wait()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def flush(self) -> None:
        """Wait until every task posted before the call has ended. A checkpoint.

        A barrier: unlike `wait_idle`, tasks posted after the call are not
        waited for. Delayed tasks not yet due do not count.

        Raises:
            RuntimeError: when called from one of the runner's own tasks (code
                for which `current_runner` is this runner), on every kind of
                runner: the caller was posted before the call and is still
                running, so it is one of the tasks it would wait for. On a
                sequenced or thread runner the tasks after it cannot start
                either. Use `flush_soon` there, which waits without blocking
                the task.
        """
        self._refuse_own_wait("flush")
        await trio.lowlevel.checkpoint_if_cancelled()
        barrier = self._barriers.add(None)
        if barrier is None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        try:
            await barrier.event.wait()
        finally:
            self._barriers.discard(barrier)

    def _refuse_own_wait(self, method: str) -> None:
        # A task of this runner waiting for the runner to be idle, flushed or
        # closed waits for itself (it is one of the tasks waited for), forever.
        if runner_var.get(None) is not self:
            return
        if method == "aclose":
            advice = "call runner.shutdown() or close it from outside"
        elif method == "flush":
            advice = "use runner.flush_soon(callback) or wait from outside the runner"
        else:
            advice = "wait from outside the runner"
        raise RuntimeError(
            f"a task of runner {self._name!r} cannot wait for the runner "
            f"{_OWN_WAITS[method]} (it would wait for itself); {advice}"
        )

    def flush_soon(
        self, callback: Callable[[*ArgsT], object], *args: *ArgsT
    ) -> TaskHandle[object]:
        """Post ``callback(*args)`` to run once every task posted before has ended.

        The callback is a task of the runner like any other from this call on:
        a closed or full runner refuses it now, and `cancel`, `cancel_all` and
        ``statistics().pending`` see it. On a sequenced or thread runner it
        simply keeps its FIFO place (after the tasks posted before it, before
        those posted after it); on a parallel runner it starts once every task
        posted before it has ended. Call it on the Trio thread.

        Returns:
            The callback's `TaskHandle`.

        Raises:
            RunnerClosedError: if the runner is closed.
            QueueFullError: if ``max_pending`` tasks are already waiting.
            TypeError: if ``callback`` is not callable, or not a function this
                runner can run.
        """
        if threading.get_ident() != self._trio_thread:
            raise RuntimeError("flush_soon must be called from the Trio thread")
        opts = self._options_for(callback, args, None, None, None, None, "callback")
        if self._ledger.phase and (
            self._ledger.phase == CLOSED or runner_var.get(None) is not self
        ):
            raise self._refuse()
        if self._max_pending is not None and self._ledger.pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            self._ledger, callback, args, next_id(), opts, self._now()
        )
        if self._ordered or self._barriers.add(handle) is None:
            self._admit(handle)  # a sequence's FIFO is the barrier
            return handle
        # Live and pending from now on, queued when its barrier clears.
        handle._flags = WAITS_BARRIER
        self._ledger.live[handle._id] = handle
        self._ledger.pending += 1
        if opts is not None and opts.on_queued:
            self._fire_on_queued(handle, opts)
        return handle

    # ------------------------------------------------------------ closing

    def shutdown(self) -> None:
        """Close at once: refuse posts, skip pending tasks, cancel running ones.

        Running tasks are cancelled whatever their traits (a function running
        in a thread cannot be interrupted and runs to its end). Not a
        checkpoint; `aclose` afterwards waits for the runner's machinery to end.
        Idempotent.
        """
        if self._ledger.phase == CLOSED:
            return
        self._ledger.phase = CLOSED
        self._timers.clear(_SKIPPED)
        self._skip_pending(everything=True)
        for handle in list(self._running_handles()):
            self._cancel_running(handle)
        self._barriers.release()
        self._ledger.wake_all_room()
        self._stop_intake()

    async def aclose(self, *, grace_period: float | None = None) -> None:
        """Close gracefully, applying each task's shutdown behaviour.

        New posts are refused, except from the runner's own tasks; delayed tasks
        not yet due are skipped and repeating tasks stop; pending tasks are
        skipped unless BLOCK_SHUTDOWN; running CONTINUE_ON_SHUTDOWN tasks are
        cancelled; the others run to their end. After ``grace_period`` seconds
        (if given), what still runs is cancelled and what is pending skipped.
        Leaving the runner's ``async with`` block does this too.

        This is a checkpoint; it returns once the runner's machinery has ended
        (a thread runner's thread is joined). If the caller is cancelled, the
        runner is shut down (see `shutdown`) and closed all the same.
        Idempotent.

        Raises:
            RuntimeError: when called from one of the runner's own tasks, which
                would wait for itself; use `shutdown` there.
        """
        grace = (
            math.inf
            if grace_period is None
            else check_duration("grace_period", grace_period)
        )
        self._refuse_own_wait("aclose")
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._ledger.phase == OPEN:
                self._begin_close()
            if self._ledger.phase == CLOSING:
                with trio.move_on_after(grace):
                    while self._ledger.pending or self._ledger.running:
                        await self._barriers.idle_wait()
                if self._ledger.phase == CLOSING and not (
                    self._ledger.pending or self._ledger.running
                ):
                    self._ledger.phase = CLOSED
                    self._barriers.release()
                    self._stop_intake()
                else:
                    self.shutdown()
            await self._machinery_done.wait()
        except BaseException:
            self.shutdown()
            raise

    def _begin_close(self) -> None:
        self._ledger.phase = CLOSING
        self._timers.clear(_SKIPPED)
        self._skip_pending(everything=False)
        for handle in list(self._running_handles()):
            opts = handle._opts
            traits = self._traits if opts is None else opts.traits
            if traits.shutdown_behavior is _CONTINUE:
                self._cancel_running(handle)
        self._ledger.wake_all_room()

    def _skip_pending(self, *, everything: bool) -> None:
        for handle in [h for h in self._ledger.live.values() if h._state is _PENDING]:
            opts = handle._opts
            traits = self._traits if opts is None else opts.traits
            if everything or traits.shutdown_behavior is not _BLOCK:
                del self._ledger.live[handle._id]
                self._ledger.pending -= 1
                self._ledger.finish_unstarted(handle, _SKIPPED)

    def _release_machinery(self) -> None:
        """Mark the machinery done; a subclass may first release what it holds."""
        self._machinery_done.set()

    def _machinery_exited(self) -> None:
        """Record that the consumers have all ended, however they ended."""
        if self._ledger.phase != CLOSED:
            # Cancelled from outside (the nursery is going away): nothing runs again.
            self._ledger.phase = CLOSED
            self._barriers.release()
        self._timers.clear(_SKIPPED)
        self._skip_pending(everything=True)
        self._ledger.wake_all_room()
        self._release_machinery()
        self._barriers.wake_idle_waiters()
        self._fanout.wake()
        self._env.closed(self)

    # ------------------------------------------------------------ results, metrics

    def subscribe_results(
        self, buffer: int = 100, policy: DropPolicy = DropPolicy.DROP_NEWEST
    ) -> ResultSubscription:
        """Subscribe to the `TaskResult` of every task of this runner that ends.

        Use it as ``async with runner.subscribe_results(...) as results:`` and
        read with ``async for r in results``; it is subscribed from this call on.
        Every subscriber gets every result unless its buffer overflows, which
        ``policy`` handles (see `DropPolicy`); drops are counted in `metrics`.

        Args:
            buffer: results held for a slow subscriber (>= 1).
            policy: what to do when the buffer is full.

        Returns:
            The subscription, an async context manager and async iterator.
        """
        size = check_optional_count("buffer", buffer)
        if size is None:
            raise TypeError("buffer must be a positive int")
        if not isinstance(policy, DropPolicy):
            raise TypeError(f"policy must be a DropPolicy, not {policy!r}")
        return self._fanout.subscribe(size, policy)

    def _is_fully_closed(self) -> bool:
        return self._ledger.phase == CLOSED and self._machinery_done.is_set()

    def _in_consumer(self) -> bool:
        # Whether the caller is one of the runner's consumers, which can wait for
        # a BLOCK subscriber before going on.
        return (
            runner_var.get(None) is self and threading.get_ident() == self._trio_thread
        )

    def statistics(self) -> RunnerStatistics:
        """Return a cheap snapshot of the runner's task counts."""
        return self._ledger.statistics()

    def metrics(self) -> RunnerMetrics:
        """Return the runner's metrics: rates, wait and run times, and counters.

        Metrics are always on. Per task they cost one clock read and two list
        appends; the consumers fold the samples into fixed-size histograms
        every few thousand tasks, so memory stays bounded. Call it on the Trio
        thread (from another thread, use ``trio.from_thread.run_sync``).
        """
        return self._ledger.metrics(dropped_results=self._fanout.dropped)
