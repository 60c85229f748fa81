"""TaskRunner: the protocol every runner implements, as a facade over its parts.

A runner is made of the parts in ``trunner/_runner/``: an `Intake` (the checks
of a post and the admission of its handle), `Sending` (the posts that wait:
``send_task``, ``run``), a `Ledger` (counts, live tasks, the start and end of
tasks), `TaskEnds` (who hears of each end), a `TimerHeap` (delayed and
repeating tasks), `Barriers` (flushes, idle waits), a `ResultFanout`
(subscriptions) and `Closing` (close, shutdown, cancel all), with the
`RunnerEnvironment` its scheduler hands it. Its base, `RunnerCore`, holds and
wires the parts and declares the hooks of each kind of runner; this class is
the public API, whose methods delegate to the parts. Subclasses bring the
queue and the task(s) that consume it: one consumer for a sequence, a pool of
workers for a parallel runner, one OS thread for a thread runner.

Everything here runs on the Trio thread, so no lock is needed; posts from other
threads are shipped to the Trio thread through the run's `trio.lowlevel.TrioToken`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

import attrs

from ._context import runner_var
from ._handle import RepeatingHandle, TaskHandle, next_id
from ._hooks import logger as hook_logger
from ._results import DropPolicy, ResultSubscription
from ._runner._core import RunnerCore
from ._runner._ledger import OPEN, RunnerStatistics
from ._traits import MissedTicks, RepeatMode, TaskTraits

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from typing import TypeVarTuple, Unpack

    import outcome

    from ._metrics import RunnerMetrics
    from ._retry import RetryPolicy
    from ._scheduler import Scheduler
    from ._util import AnyCallable

    ArgsT = TypeVarTuple("ArgsT")

__all__ = ["RunnerStatistics", "TaskRunner"]

T = TypeVar("T")

_get_ident: Final = threading.get_ident


@attrs.define(eq=False, repr=False)
class TaskRunner(RunnerCore):
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

    def __repr__(self) -> str:
        state = ("open", "closing", "closed")[self._ledger.phase]
        return f"<{type(self).__name__} {self._name!r} {state}>"

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
            TypeError: if ``fn`` is not callable, is a generator or async
                generator function (which would run none of its code), or an
                option has the wrong type.
            ValueError: for a non-positive ``timeout``.
        """
        # The hottest path after the consumers': it reads the intake's fields
        # and queues on an open runner itself, as Intake.post_checked would
        # (one Python call is a measurable part of a post). The function
        # posted last without options was checked then: it is not again.
        intake = self._intake
        if (
            fn is intake.checked_fn
            and traits is None
            and name is None
            and retry is None
            and timeout is None
        ):
            opts = intake.default_opts
        else:
            opts = intake.options_for(fn, args, traits, name, retry, timeout)
        ledger = intake.ledger
        if ledger.phase or _get_ident() != intake.trio_thread:
            return intake.post_checked(fn, args, opts)
        max_pending = ledger.max_pending
        if max_pending is not None and ledger.pending >= max_pending:
            raise intake.full()
        task_id = next_id()
        handle: TaskHandle[object] = TaskHandle(
            ledger, fn, args, task_id, opts, ledger.now()
        )
        ledger.live[task_id] = handle
        ledger.pending += 1
        intake.push(handle)
        if opts is not None and opts.on_queued:
            # fire_on_queued, inline: the call is 5% of what hooks cost a task.
            for hook in opts.on_queued:
                try:
                    hook(handle)
                except Exception:
                    hook_logger.exception("hook %r raised; the task goes on", hook)
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
        return self._intake.post_batch(fns, traits)

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
            RuntimeError: when a task of a full sequenced or thread runner
                sends to that same runner: no room would come while it runs.
        """
        return await self._sending.send(fn, args, traits, name, retry, timeout)

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
            RuntimeError: when called from a task of a sequenced or thread
                runner on that same runner: the task would start only once the
                caller has ended. Nothing is posted then.
        """
        return await self._sending.run(fn, args, traits)

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
        return self._intake.post_delayed(fn, args, delay, traits, name, retry, timeout)

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
        return self._intake.post_repeating(
            fn,
            args,
            interval,
            initial_delay,
            mode,
            missed,
            traits,
            name,
            retry,
            timeout,
        )

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
            TypeError: if ``task`` or ``reply`` is not a function its runner
                can run, or cannot be called without arguments; nothing is
                posted then.
        """
        target = self._reply_intake(reply_runner)
        return self._intake.post_with_reply(task, reply, target, with_result=False)

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

        Raises:
            NoCurrentRunnerError: without ``reply_runner``, outside any runner.
            TypeError: if ``task`` or ``reply`` is not a function its runner
                can run, or ``task`` cannot be called without arguments or
                ``reply`` with one; nothing is posted then.
        """
        target = self._reply_intake(reply_runner)
        return self._intake.post_with_reply(  # type: ignore[return-value]  # task is sync or async: either way its handle gives a T
            task, reply, target, with_result=True
        )

    # ------------------------------------------------------------ cancellation

    def cancel(self, task_id: int) -> bool:
        """Cancel the task with id ``task_id`` (see `TaskHandle.cancel`).

        Returns:
            False for an unknown or finished id, or a task in a thread that cannot
            be interrupted; True otherwise.
        """
        return self._closing.cancel(task_id)

    def cancel_all(self) -> None:
        """Cancel every pending, running and not-yet-due task; stop repeating ones.

        The runner stays open: tasks posted afterwards run as usual.
        """
        self._closing.cancel_all()

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
        await self._barriers.wait_idle()

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
        await self._barriers.flush()

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
        return self._intake.post_flush_soon(callback, args)

    # ------------------------------------------------------------ closing

    def shutdown(self) -> None:
        """Close at once: refuse posts, skip pending tasks, cancel running ones.

        Running tasks are cancelled whatever their traits (a function running
        in a thread cannot be interrupted and runs to its end). Not a
        checkpoint; `aclose` afterwards waits for the runner's machinery to end.
        Idempotent.
        """
        self._closing.shutdown()

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
        await self._closing.aclose(grace_period)

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
        return self._fanout.subscribe(buffer, policy)

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
