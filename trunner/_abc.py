"""TaskRunner: the protocol every runner implements, and the machinery they share.

A runner owns a state machine per task (``TaskHandle``), a heap of timers served
by one timer task, and the close protocol. Subclasses bring the queue and the
task(s) that consume it: one consumer for a sequence, a pool of workers for a
parallel runner, one OS thread for a thread runner.

Everything here runs on the Trio thread, so no lock is needed; posts from other
threads are shipped to the Trio thread through the run's `trio.lowlevel.TrioToken`.
"""

from __future__ import annotations

import abc
import functools
import heapq
import math
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, overload

import attrs
import trio

from ._context import runner_var
from ._errors import QueueFullError, RunnerClosedError, TaskCancelledError
from ._execute import offload_call
from ._handle import (
    CANCEL_REQUESTED,
    WAITS_ADMISSION,
    WAITS_BARRIER,
    WAITS_SLOT,
    WAITS_TIMER,
    RepeatingHandle,
    TaskHandle,
    next_id,
)
from ._hooks import logger as hook_logger
from ._metrics import DurationRecorder, RateMeter, RunnerMetrics
from ._options import TaskOptions, check_timeout, is_async_callable, log_task_error
from ._ratelimit import TokenBucket
from ._results import DropPolicy, ResultSubscription, TaskResult
from ._retry import RetryPolicy
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
    from ._scheduler import Scheduler

    ArgsT = TypeVarTuple("ArgsT")

T = TypeVar("T")

_OPEN: Final = 0
_CLOSING: Final = 1
_CLOSED: Final = 2

# What each barrier waits for, as named in the error from a task of the runner.
_OWN_WAITS: Final = {
    "aclose": "to close",
    "flush": "to flush",
    "wait_idle": "to be idle",
}

_PENDING: Final = TaskState.PENDING
_RUNNING: Final = TaskState.RUNNING
_SUCCEEDED: Final = TaskState.SUCCEEDED
_FAILED: Final = TaskState.FAILED
_CANCELLED: Final = TaskState.CANCELLED
_SKIPPED: Final = TaskState.SKIPPED
_BLOCK: Final = ShutdownBehavior.BLOCK_SHUTDOWN
_CONTINUE: Final = ShutdownBehavior.CONTINUE_ON_SHUTDOWN

# A timer: (deadline, sequence number, delayed task or repeating task).
_Timer = tuple[float, int, "TaskHandle[object] | RepeatingHandle"]

#: Dead heap entries tolerated before a compaction is considered.
_COMPACT_AT: Final = 64


async def _wait_ended(handle: TaskHandle[object]) -> None:
    # Wait for a handle to end, whatever its end (wait() would raise it).
    event = trio.Event()
    handle.add_done_callback(lambda _: event.set())
    await event.wait()


def _is_armed(entry: TaskHandle[object] | RepeatingHandle) -> bool:
    # Whether a heap entry will still fire.
    if isinstance(entry, TaskHandle):
        return entry._state is _PENDING
    return not entry._stopped


@attrs.frozen
class RunnerStatistics:
    """A cheap snapshot of a runner's task counts, from `TaskRunner.statistics`."""

    #: Tasks queued, waiting to start.
    pending: int
    #: Tasks started and not yet ended.
    running: int
    #: Delayed tasks not yet due.
    delayed: int
    succeeded: int
    failed: int
    cancelled: int
    skipped: int


@attrs.define(eq=False)
class _Barrier:
    # A flush: waits for the tasks that were unfinished when it was made.
    members: set[int]
    callback: TaskHandle[object] | None
    event: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class _RoomWaiter:
    # A send_task caller waiting for room; ``woken`` is replaced at each wait.
    woken: trio.Event = attrs.field(factory=trio.Event)


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
    # Tasks queued or running, by id. Delayed tasks live in _timers instead.
    _live: dict[int, TaskHandle[object]] = attrs.field(
        init=False, factory=dict[int, TaskHandle[object]]
    )
    _pending: int = attrs.field(init=False, default=0)
    _running: int = attrs.field(init=False, default=0)
    _delayed: int = attrs.field(init=False, default=0)
    _succeeded: int = attrs.field(init=False, default=0)
    _failed: int = attrs.field(init=False, default=0)
    _cancelled: int = attrs.field(init=False, default=0)
    _skipped: int = attrs.field(init=False, default=0)
    _rejected: int = attrs.field(init=False, default=0)
    _retries: int = attrs.field(init=False, default=0)
    _timeouts: int = attrs.field(init=False, default=0)
    _dropped: int = attrs.field(init=False, default=0)
    _phase: int = attrs.field(init=False, default=_OPEN)
    # True while someone must hear of every task's end (idle waiters, barriers,
    # subscribers); the hot path tests this one flag.
    _watching: bool = attrs.field(init=False, default=False)
    _finish_hooks: bool = attrs.field(init=False, default=False)
    _idle_event: trio.Event | None = attrs.field(init=False, default=None)
    _barriers: list[_Barrier] = attrs.field(init=False, factory=list[_Barrier])
    _subscriptions: list[ResultSubscription] = attrs.field(
        init=False, factory=list[ResultSubscription]
    )
    # Results a BLOCK subscriber had no room for, delivered by the consumers.
    _blocked: deque[tuple[ResultSubscription, TaskResult]] = attrs.field(
        init=False, factory=deque[tuple[ResultSubscription, TaskResult]]
    )
    # send_task callers waiting for room, in arrival order.
    _room_waiters: deque[_RoomWaiter] = attrs.field(
        init=False, factory=deque["_RoomWaiter"]
    )
    _timers: list[_Timer] = attrs.field(init=False, factory=list[_Timer])
    # Repeating tasks that have not stopped.
    _repeating: set[RepeatingHandle] = attrs.field(
        init=False, factory=set[RepeatingHandle]
    )
    _timer_scope: trio.CancelScope | None = attrs.field(init=False, default=None)
    _timer_active: bool = attrs.field(init=False, default=False)
    # Heap entries of cancelled delayed tasks and stopped repeating tasks, left
    # in place (lazy deletion) until the heap is compacted or they come up.
    _dead_timers: int = attrs.field(init=False, default=0)
    _machinery_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    _wait_times: DurationRecorder = attrs.field(init=False, factory=DurationRecorder)
    _run_times: DurationRecorder = attrs.field(init=False, factory=DurationRecorder)
    _rates: RateMeter = attrs.field(init=False)

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
        hooks = tuple(h for h in (self._scheduler.hooks, config.hooks) if h is not None)
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
        self._watching = self._finish_hooks
        self._inspect_fn = config.traits.may_block
        self._offload_opts = base.evolve(
            traits=config.traits,
            name=None,
            retry=config.retry,
            timeout=config.timeout,
            offload=True,
        )
        clock = trio.lowlevel.current_clock()
        self._now = clock.current_time
        self._rates = RateMeter(self._now())
        self._token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()
        self._push = self._enqueue
        self._start_machinery()
        self._scheduler._register(self)

    def __repr__(self) -> str:
        state = ("open", "closing", "closed")[self._phase]
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
        return await offload_call(self, handle)

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
        return self._phase != _OPEN

    @property
    def _fully_closed(self) -> bool:
        return self._phase == _CLOSED and self._machinery_done.is_set()

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
        self._rejected += 1
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
        if self._phase:
            return self._post_while_closing(fn, args, opts)
        if self._max_pending is not None and self._pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            self, fn, args, next_id(), opts, self._now()
        )
        self._live[handle._id] = handle
        self._pending += 1
        self._push(handle)
        if opts is not None and opts.on_queued:
            self._fire_on_queued(handle, opts)
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
        if self._phase:
            return self._post_while_closing(fn, args, opts)
        if self._max_pending is not None and self._pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            self, fn, args, next_id(), opts, self._now()
        )
        self._live[handle._id] = handle
        self._pending += 1
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
        if self._phase == _CLOSED or (self._phase and runner_var.get(None) is not self):
            raise self._refuse()
        if (
            self._max_pending is not None
            and self._pending + len(batch) > self._max_pending
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
        if self._phase == _CLOSED or runner_var.get(None) is not self:
            raise self._refuse()
        if self._max_pending is not None and self._pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            self, fn, args, next_id(), opts, self._now()
        )
        self._admit(handle)
        return handle

    def _admit(self, handle: TaskHandle[object]) -> None:
        """Queue a new handle, honouring a close under way; no max_pending check."""
        opts = handle._opts
        traits = self._traits if opts is None else opts.traits
        if self._phase and (
            self._phase == _CLOSED or traits.shutdown_behavior is not _BLOCK
        ):
            self._finish_unstarted(handle, _SKIPPED)
            return
        self._live[handle._id] = handle
        self._pending += 1
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
        if self._phase == _CLOSED or (self._phase and not own):
            raise self._refuse()
        if self._max_pending is not None and self._pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(self, fn, args, next_id(), opts, 0.0)
        handle._flags = WAITS_ADMISSION
        self._token.run_sync_soon(self._admit_from_thread, handle, delay, own)
        return handle

    def _admit_from_thread(
        self, handle: TaskHandle[object], delay: float | None, own: bool
    ) -> None:
        if handle._state is not _PENDING:  # cancelled before it got here
            return
        handle._flags = 0
        if self._phase and not own:
            self._finish_unstarted(handle, _SKIPPED)
        elif delay is not None:
            self._delay(handle, delay)
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
        if self._phase == _CLOSED:
            return None
        handle: TaskHandle[object] = TaskHandle(
            self, fn, args, next_id(), opts, self._now()
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
        waiters = self._room_waiters
        if (
            limit is not None
            and not self._phase
            and (waiters or self._pending >= limit)
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
        waiters = self._room_waiters
        waiter = _RoomWaiter()
        waiters.append(waiter)
        try:
            while not self._phase and (
                waiters[0] is not waiter or self._pending >= limit
            ):
                await waiter.woken.wait()
                waiter.woken = trio.Event()
        finally:
            waiters.remove(waiter)
            # The next waiter looks at what room is left once this one has
            # posted (no checkpoint comes between), or takes it if this one
            # was cancelled.
            self._wake_room()

    def _wake_room(self) -> None:
        if self._room_waiters:
            self._room_waiters[0].woken.set()

    def _wake_all_room(self) -> None:
        for waiter in self._room_waiters:
            waiter.woken.set()

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
        if self._phase and (self._phase == _CLOSED or runner_var.get(None) is not self):
            raise self._refuse()
        handle: TaskHandle[object] = TaskHandle(self, fn, args, next_id(), opts, 0.0)
        self._delay(handle, seconds)
        return handle

    def _delay(self, handle: TaskHandle[object], seconds: float) -> None:
        """Arm the timer of a new delayed task, however and wherever it was posted.

        The one place the rule is kept: a delayed task posted while the runner
        closes (by one of its own tasks, from any thread) is skipped at once,
        whatever its delay and traits, as those not yet due at the close were.
        """
        if self._phase:
            self._finish_unstarted(handle, _SKIPPED)
            return
        handle._flags = WAITS_TIMER
        self._delayed += 1
        self._push_timer(trio.current_time() + seconds, handle._id, handle)

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
        if self._phase == _CLOSED or (self._phase and not own):
            raise self._refuse()
        anchor = trio.current_time() + first
        repeating = RepeatingHandle(self, fn, args, opts, period, mode, missed, anchor)
        # Its runs count themselves as they start (on the Trio thread, wherever
        # they run), and call the user's function itself: a process runner
        # must be able to pickle it.
        assert opts is not None
        repeating._opts = opts.with_start_hook(repeating._count_run)
        if self._phase:
            repeating._stopped = True
        else:
            self._repeating.add(repeating)
            self._push_timer(anchor, next_id(), repeating)
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

    def _begin(
        self, handle: TaskHandle[object], scope: trio.CancelScope, now: float
    ) -> None:
        """Mark a PENDING handle RUNNING, started at ``now`` (the trio clock)."""
        self._pending -= 1
        self._running += 1
        handle._state = _RUNNING
        handle._scope = scope
        handle._attempts = 1
        handle._started_at = now
        self._wait_times.samples.append(now - handle._queued_at)
        if self._max_pending is not None:
            self._wake_room()

    def _end(
        self, handle: TaskHandle[object], state: TaskState, result: object
    ) -> float:
        """Record the end of a RUNNING handle; return the time it ended."""
        handle._result = result
        handle._state = state
        if state is _SUCCEEDED:
            self._succeeded += 1
        elif state is _FAILED:
            self._failed += 1
            assert isinstance(result, BaseException)
            handle._traceback = result.__traceback__
            self._report_error(handle, result)
        else:
            self._cancelled += 1
        self._running -= 1
        del self._live[handle._id]
        now = self._now()
        handle._finished_at = now
        self._run_times.samples.append(now - handle._started_at)
        handle._args = ()
        if handle._waiters is not None or self._watching:
            self._notify(handle)
        return now

    def _finish_unstarted(self, handle: TaskHandle[object], state: TaskState) -> None:
        """End a handle that never started (queued, delayed or new)."""
        what = "cancelled" if state is _CANCELLED else "skipped"
        handle._result = TaskCancelledError(
            f"task {handle.name!r} was {what} before it started"
        )
        handle._state = state
        if state is _CANCELLED:
            self._cancelled += 1
        else:
            self._skipped += 1
        handle._finished_at = self._now()
        handle._args = ()
        if handle._flags & WAITS_SLOT:
            handle._scope.cancel()  # its consumer stops waiting for its slot
        self._notify(handle)

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
                self._call_done_callback(callback, handle)
        opts = handle._opts
        if self._subscriptions or (opts is not None and opts.on_finish):
            result = self._result_of(handle)
            if opts is not None:
                for hook in opts.on_finish:
                    try:
                        hook(handle, result)
                    except Exception:
                        hook_logger.exception("hook %r raised; the task goes on", hook)
            self._publish(result)
        if self._barriers:
            self._advance_barriers(handle._id)
        if self._idle_event is not None and not self._pending and not self._running:
            self._idle_event.set()
            self._idle_event = None
            self._update_watching()

    def _call_done_callback(
        self, callback: Callable[[TaskHandle[T]], object], handle: TaskHandle[T]
    ) -> None:
        try:
            callback(handle)
        except Exception:
            from ._hooks import logger

            logger.exception("done callback %r of %r raised", callback, handle)

    def _update_watching(self) -> None:
        self._watching = bool(
            self._finish_hooks
            or self._idle_event is not None
            or self._barriers
            or self._subscriptions
        )

    def _result_of(self, handle: TaskHandle[object]) -> TaskResult:
        state = handle._state
        started = getattr(handle, "_started_at", None)
        return TaskResult(
            task_id=handle._id,
            name=handle.name,
            state=state,
            value=handle._result if state is _SUCCEEDED else None,
            error=None if state is _SUCCEEDED else handle._exception(),
            queued_at=handle._queued_at,
            started_at=started,
            finished_at=handle._finished_at,
            attempts=handle.attempts,
        )

    # ------------------------------------------------------------ cancellation

    def _cancel_handle(self, handle: TaskHandle[object]) -> bool:
        state = handle._state
        if state is _PENDING:
            flags = handle._flags
            handle._flags = flags | CANCEL_REQUESTED
            if flags & WAITS_TIMER:
                self._delayed -= 1
                self._timer_dropped()
            elif not flags & WAITS_ADMISSION:  # queued, or behind a barrier
                del self._live[handle._id]
                self._pending -= 1
                self._wake_room()
            self._finish_unstarted(handle, _CANCELLED)
            return True
        if state is _RUNNING:
            return self._cancel_running(handle)
        return False

    def cancel(self, task_id: int) -> bool:
        """Cancel the task with id ``task_id`` (see `TaskHandle.cancel`).

        Returns:
            False for an unknown or finished id, or a task in a thread that cannot
            be interrupted; True otherwise.
        """
        handle = self._live.get(task_id)
        if handle is None:
            for _, _, entry in self._timers:
                if isinstance(entry, TaskHandle) and entry._id == task_id:
                    handle = entry
                    break
            else:
                return False
        return self._cancel_handle(handle)

    def cancel_all(self) -> None:
        """Cancel every pending, running and not-yet-due task; stop repeating ones.

        The runner stays open: tasks posted afterwards run as usual.
        """
        self._clear_timers(_CANCELLED)
        for handle in [h for h in self._live.values() if h._state is _PENDING]:
            self._cancel_handle(handle)
        for handle in list(self._running_handles()):
            self._cancel_running(handle)

    # ------------------------------------------------------------ timers

    def _push_timer(
        self, deadline: float, seq: int, entry: TaskHandle[object] | RepeatingHandle
    ) -> None:
        heapq.heappush(self._timers, (deadline, seq, entry))
        if not self._timer_active:
            self._timer_active = True
            self._nursery.start_soon(self._timer_loop, name=f"{self._name}-timers")
        elif self._timer_scope is not None and deadline < self._timer_scope.deadline:
            self._timer_scope.deadline = deadline

    def _timer_dropped(self) -> None:
        """Count a heap entry that will never fire; compact when they abound.

        Cancelled timers are left in the heap (removing one is O(n)) and
        skipped when they come up; but 200k hour-long timers cancelled at once
        would hold their memory for an hour. Once dead entries are more than
        half the heap, it is rebuilt without them: O(n), amortised O(1) per
        cancel.
        """
        self._dead_timers += 1
        timers = self._timers
        if self._dead_timers > _COMPACT_AT and 2 * self._dead_timers > len(timers):
            # In place: the timer loop holds the same list.
            timers[:] = [entry for entry in timers if _is_armed(entry[2])]
            heapq.heapify(timers)
            self._dead_timers = 0

    async def _timer_loop(self) -> None:
        # One task serves every timer of the runner, from its first timer until
        # the runner closes: it sleeps in a cancel scope whose deadline tracks
        # the earliest entry of the heap (infinity when the heap is empty).
        timers = self._timers
        try:
            while self._phase != _CLOSED:
                deadline = timers[0][0] if timers else math.inf
                with trio.CancelScope(deadline=deadline) as scope:
                    self._timer_scope = scope
                    await trio.sleep_forever()
                self._timer_scope = None
                now = trio.current_time()
                while timers and timers[0][0] <= now:
                    _, _, entry = heapq.heappop(timers)
                    if isinstance(entry, TaskHandle):
                        self._fire_delayed(entry)
                    else:
                        self._fire_repeating(entry, now)
        finally:
            self._timer_scope = None
            self._timer_active = False

    def _fire_delayed(self, handle: TaskHandle[object]) -> None:
        if handle._state is not _PENDING:  # cancelled while it waited
            self._dead_timers = max(0, self._dead_timers - 1)
            return
        handle._flags = 0
        self._delayed -= 1
        handle._queued_at = self._now()
        self._admit(handle)

    def _fire_repeating(self, repeating: RepeatingHandle, now: float) -> None:
        if repeating._stopped:
            self._dead_timers = max(0, self._dead_timers - 1)
            return
        run = self._post_internal(repeating._fn, repeating._args, repeating._opts)
        if run is None:
            repeating.stop()
            return
        repeating._current = run
        run.add_done_callback(functools.partial(self._rearm, repeating))

    def _rearm(self, repeating: RepeatingHandle, run: TaskHandle[object]) -> None:
        if repeating._stopped or self._phase:
            repeating.stop()  # while _current is set: it is not in the heap
            repeating._current = None
            return
        repeating._current = None
        end = trio.current_time()
        interval = repeating._interval
        if repeating._mode is RepeatMode.FIXED_DELAY:
            repeating._tick += 1
            self._push_timer(end + interval, next_id(), repeating)
            return
        anchor = repeating._anchor
        tick = repeating._tick + 1
        deadline = anchor + tick * interval
        if end > deadline:
            # The run overran the next slot. The first tick not in the past:
            upcoming = tick + math.ceil((end - deadline) / interval)
            if repeating._missed is MissedTicks.SKIP:
                tick = upcoming
                deadline = anchor + tick * interval
            elif repeating._missed is MissedTicks.COALESCE:
                tick = upcoming - 1
                deadline = end
            # BURST: run the next tick now, and the ones after it back to back.
        repeating._tick = tick
        self._push_timer(deadline, next_id(), repeating)

    def _clear_timers(self, state: TaskState) -> None:
        """Drop every timer: delayed tasks end with ``state``, repeats stop."""
        # Emptied in place: the timer loop holds the same list and ends on it.
        timers = list(self._timers)
        self._timers.clear()
        for _, _, entry in timers:
            if isinstance(entry, TaskHandle) and entry._state is _PENDING:
                self._delayed -= 1
                entry._flags = 0
                self._finish_unstarted(entry, state)
        # Every repeating task stops, also those whose run is queued or running
        # (they are not in the heap then, and would re-arm at the run's end).
        for repeating in list(self._repeating):
            repeating.stop()
        self._dead_timers = 0
        if self._timer_scope is not None:
            self._timer_scope.cancel()

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
        while self._pending or self._running:
            if self._idle_event is None:
                self._idle_event = trio.Event()
                self._watching = True
            await self._idle_event.wait()
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
        barrier = self._add_barrier(None)
        if barrier is None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        try:
            await barrier.event.wait()
        finally:
            if barrier in self._barriers:
                self._barriers.remove(barrier)
                self._update_watching()

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
        if self._phase and (self._phase == _CLOSED or runner_var.get(None) is not self):
            raise self._refuse()
        if self._max_pending is not None and self._pending >= self._max_pending:
            raise self._full()
        handle: TaskHandle[object] = TaskHandle(
            self, callback, args, next_id(), opts, self._now()
        )
        if self._ordered or self._add_barrier(handle) is None:
            self._admit(handle)  # a sequence's FIFO is the barrier
            return handle
        # Live and pending from now on, queued when its barrier clears.
        handle._flags = WAITS_BARRIER
        self._live[handle._id] = handle
        self._pending += 1
        if opts is not None and opts.on_queued:
            self._fire_on_queued(handle, opts)
        return handle

    def _add_barrier(self, callback: TaskHandle[object] | None) -> _Barrier | None:
        members = set(self._live)
        if not members:
            return None
        barrier = _Barrier(members, callback)
        self._barriers.append(barrier)
        self._watching = True
        return barrier

    def _advance_barriers(self, task_id: int) -> None:
        cleared: list[_Barrier] = []
        for barrier in self._barriers:
            barrier.members.discard(task_id)
            if not barrier.members:
                cleared.append(barrier)
        if not cleared:
            return
        # Update the list first: admitting a callback may end it (skipped at
        # close), which comes back here.
        self._barriers = [barrier for barrier in self._barriers if barrier.members]
        self._update_watching()
        for barrier in cleared:
            barrier.event.set()
            callback = barrier.callback
            if callback is not None and callback._state is _PENDING:
                # Already live and counted; a close under way has already
                # skipped it unless it may still run (BLOCK_SHUTDOWN).
                callback._flags = 0
                self._push(callback)

    # ------------------------------------------------------------ closing

    def shutdown(self) -> None:
        """Close at once: refuse posts, skip pending tasks, cancel running ones.

        Running tasks are cancelled whatever their traits (a function running
        in a thread cannot be interrupted and runs to its end). Not a
        checkpoint; `aclose` afterwards waits for the runner's machinery to end.
        Idempotent.
        """
        if self._phase == _CLOSED:
            return
        self._phase = _CLOSED
        self._clear_timers(_SKIPPED)
        self._skip_pending(everything=True)
        for handle in list(self._running_handles()):
            self._cancel_running(handle)
        self._release_barriers()
        self._wake_all_room()
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
            if self._phase == _OPEN:
                self._begin_close()
            if self._phase == _CLOSING:
                with trio.move_on_after(grace):
                    while self._pending or self._running:
                        await self._idle_wait()
                if self._phase == _CLOSING and not (self._pending or self._running):
                    self._phase = _CLOSED
                    self._release_barriers()
                    self._stop_intake()
                else:
                    self.shutdown()
            await self._machinery_done.wait()
        except BaseException:
            self.shutdown()
            raise

    async def _idle_wait(self) -> None:
        if self._idle_event is None:
            self._idle_event = trio.Event()
            self._watching = True
        await self._idle_event.wait()

    def _begin_close(self) -> None:
        self._phase = _CLOSING
        self._clear_timers(_SKIPPED)
        self._skip_pending(everything=False)
        for handle in list(self._running_handles()):
            opts = handle._opts
            traits = self._traits if opts is None else opts.traits
            if traits.shutdown_behavior is _CONTINUE:
                self._cancel_running(handle)
        self._wake_all_room()

    def _skip_pending(self, *, everything: bool) -> None:
        for handle in [h for h in self._live.values() if h._state is _PENDING]:
            opts = handle._opts
            traits = self._traits if opts is None else opts.traits
            if everything or traits.shutdown_behavior is not _BLOCK:
                del self._live[handle._id]
                self._pending -= 1
                self._finish_unstarted(handle, _SKIPPED)

    def _release_barriers(self) -> None:
        # A closed runner will run nothing more: release flushes still waiting.
        barriers, self._barriers = self._barriers, []
        self._update_watching()
        for barrier in barriers:
            barrier.event.set()
            callback = barrier.callback
            if callback is not None and callback._state is _PENDING:
                del self._live[callback._id]
                self._pending -= 1
                self._finish_unstarted(callback, _SKIPPED)

    def _release_machinery(self) -> None:
        """Mark the machinery done; a subclass may first release what it holds."""
        self._machinery_done.set()

    def _machinery_exited(self) -> None:
        """Record that the consumers have all ended, however they ended."""
        if self._phase != _CLOSED:
            # Cancelled from outside (the nursery is going away): nothing runs again.
            self._phase = _CLOSED
            self._release_barriers()
        self._clear_timers(_SKIPPED)
        self._skip_pending(everything=True)
        self._wake_all_room()
        self._release_machinery()
        if self._idle_event is not None and not self._running:
            self._idle_event.set()
            self._idle_event = None
        for subscription in self._subscriptions:
            subscription.wake()
        self._scheduler._unregister(self)

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
        subscription = ResultSubscription(self, size, policy)
        self._subscriptions.append(subscription)
        self._watching = True
        return subscription

    def _unsubscribe(self, subscription: ResultSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        self._update_watching()

    def _count_dropped_result(self) -> None:
        self._dropped += 1

    def _publish(self, result: TaskResult) -> None:
        for subscription in self._subscriptions:
            if not subscription.offer(result):
                if self._in_consumer():
                    self._blocked.append((subscription, result))
                else:
                    subscription.force(result)

    def _in_consumer(self) -> bool:
        # Whether the caller is one of the runner's consumers, which can wait for
        # a BLOCK subscriber before going on.
        return (
            runner_var.get(None) is self and threading.get_ident() == self._trio_thread
        )

    async def _deliver_blocked(self) -> None:
        """Wait until BLOCK subscribers have taken the results they had no room for."""
        blocked = self._blocked
        try:
            while blocked:
                subscription, result = blocked[0]
                await subscription.wait_room()
                if blocked and blocked[0][1] is result:
                    blocked.popleft()
                    if not subscription.offer(result):
                        subscription.force(result)
        finally:
            # Cancelled: no result is lost, the subscribers get them all the same.
            while blocked:
                subscription, result = blocked.popleft()
                subscription.force(result)

    def statistics(self) -> RunnerStatistics:
        """Return a cheap snapshot of the runner's task counts."""
        return RunnerStatistics(
            pending=self._pending,
            running=self._running,
            delayed=self._delayed,
            succeeded=self._succeeded,
            failed=self._failed,
            cancelled=self._cancelled,
            skipped=self._skipped,
        )

    def metrics(self) -> RunnerMetrics:
        """Return the runner's metrics: rates, wait and run times, and counters.

        Metrics are always on. Per task they cost one clock read and two list
        appends; the consumers fold the samples into fixed-size histograms
        every few thousand tasks, so memory stays bounded. Call it on the Trio
        thread (from another thread, use ``trio.from_thread.run_sync``).
        """
        now = self._now()
        arrivals, completions = self._counters()
        arrival_rate, completion_rate = self._rates.rates(now, arrivals, completions)
        return RunnerMetrics(
            arrival_rate=arrival_rate,
            completion_rate=completion_rate,
            wait_time=self._wait_times.summary(),
            run_time=self._run_times.summary(),
            succeeded=self._succeeded,
            failed=self._failed,
            retries=self._retries,
            timeouts=self._timeouts,
            cancelled=self._cancelled,
            skipped=self._skipped,
            rejected=self._rejected,
            dropped_results=self._dropped,
        )

    def _counters(self) -> tuple[int, int]:
        completions = self._succeeded + self._failed
        arrivals = (
            completions
            + self._cancelled
            + self._skipped
            + self._pending
            + self._running
        )
        return arrivals, completions

    def _housekeeping(self) -> None:
        """Bound the metrics' memory; called by consumers between batches."""
        self._wait_times.maybe_fold()
        self._run_times.maybe_fold()
        arrivals, completions = self._counters()
        self._rates.note(self._now(), arrivals, completions)
