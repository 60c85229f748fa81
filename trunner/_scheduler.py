"""Scheduler: the nursery and worker slots that every runner of it draws from."""

from __future__ import annotations

import os
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Final, TypedDict, TypeVar, final

import attrs
import trio

from ._context import scheduler_var
from ._errors import RunnerClosedError
from ._hooks import TaskHooks
from ._limiter import LimiterStatistics, PriorityLimiter
from ._options import RunnerConfig
from ._parallel import ParallelTaskRunner
from ._process import ProcessTaskRunner
from ._runner._environment import RunnerEnvironment
from ._sequenced import SequencedTaskRunner
from ._thread import SingleThreadTaskRunner
from ._util import check_optional_count, clock_autojumps, wait_all_tasks_blocked

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Sequence
    from typing import Unpack

    from ._abc import TaskRunner
    from ._handle import TaskHandle
    from ._hooks import Middleware
    from ._ratelimit import RateLimit
    from ._retry import RetryPolicy
    from ._traits import TaskTraits

RunnerT = TypeVar("RunnerT", bound="TaskRunner")

#: Real seconds of quiet between two looks at the threads while holding the clock.
_HOLD_CUSHION: Final = 0.0005


class RunnerOptions(TypedDict, total=False):
    """The keyword options of every ``open_*_runner`` and ``create_*_runner``.

    Attributes:
        traits: default `TaskTraits` of the runner's tasks.
        name: a name for logs, reprs and metrics (default: generated).
        max_pending: bound on tasks waiting to start (default: None, unbounded);
            a full runner refuses `~TaskRunner.post_task` with `QueueFullError`.
        retry: default `RetryPolicy` of the runner's tasks (default: none).
        timeout: default seconds per attempt (default: None, no timeout).
        hooks: `TaskHooks` for the runner's tasks.
        middleware: async middleware around each attempt, first outermost.
        rate_limit: a `RateLimit` shared by the runner's tasks.
        on_error: ``on_error(handle, exc)`` for each failed task (default: log
            it to the ``trunner.runner`` logger).
    """

    traits: TaskTraits
    name: str | None
    max_pending: int | None
    retry: RetryPolicy | None
    timeout: float | None
    hooks: TaskHooks | None
    middleware: Sequence[Middleware] | None
    rate_limit: RateLimit | None
    on_error: Callable[[TaskHandle[object], BaseException], object] | None


def _check_concurrency(value: object, name: str = "max_concurrency") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return value


def _process_count(max_workers: int | None) -> int:
    if max_workers is None:
        return os.cpu_count() or 1
    return _check_concurrency(max_workers, "max_workers")


@final
@attrs.define(eq=False, repr=False)
class Scheduler:
    """The "thread pool": a nursery, and worker slots every runner of it shares.

    With ``max_workers`` set, at most that many tasks of all its runners run at
    once, and runners waiting for a slot get one in priority order
    (USER_BLOCKING > USER_VISIBLE > BEST_EFFORT), FIFO within a priority.

    Made by `open_scheduler`; its constructor is internal.
    """

    _nursery: trio.Nursery
    _max_workers: int | None
    hooks: TaskHooks | None
    _limiter: PriorityLimiter | None = attrs.field(init=False)
    # Every runner whose machinery is alive, in creation order.
    _runners: dict[TaskRunner, None] = attrs.field(
        init=False, factory=dict["TaskRunner", None]
    )
    # Runners made by create_*_runner: closed when the scheduler closes.
    _owned: list[TaskRunner] = attrs.field(init=False, factory=list["TaskRunner"])
    _closed: bool = attrs.field(init=False, default=False)
    # Calls running in threads (thread runners, may_block tasks): the part of
    # the scheduler's work that trio's quiescence cannot see.
    _thread_calls: int = attrs.field(init=False, default=0)
    _threads_idle: trio.Event | None = attrs.field(init=False, default=None)
    _holding_clock: bool = attrs.field(init=False, default=False)
    # What every runner of the scheduler gets from it (the runners never reach
    # into the scheduler itself).
    _env: RunnerEnvironment = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._limiter = (
            None if self._max_workers is None else PriorityLimiter(self._max_workers)
        )
        self._env = RunnerEnvironment(
            limiter=self._limiter,
            hooks=self.hooks,
            thread_call_started=self._thread_call_started,
            thread_call_ended=self._thread_call_ended,
            closed=self._unregister,
        )

    def __repr__(self) -> str:
        return (
            f"<Scheduler max_workers={self._max_workers} runners={len(self._runners)}>"
        )

    @property
    def max_workers(self) -> int | None:
        """The cap on tasks running at once, or None for no cap."""
        return self._max_workers

    @property
    def runners(self) -> tuple[TaskRunner, ...]:
        """The scheduler's runners that have not finished closing."""
        return tuple(self._runners)

    def statistics(self) -> LimiterStatistics | None:
        """Return the worker slots' counts, or None when there is no cap."""
        return None if self._limiter is None else self._limiter.statistics()

    def _thread_call_started(self) -> None:
        """Count a call handed to a thread (for `trunner.testing.run_until_idle`)."""
        self._thread_calls += 1
        if not self._holding_clock and clock_autojumps(trio.lowlevel.current_clock()):
            self._holding_clock = True
            self._nursery.start_soon(self._hold_clock, name="trunner-hold-clock")

    async def _hold_clock(self) -> None:
        # An autojumping MockClock jumps to the next deadline as soon as every
        # trio task is blocked, even while a thread is working for one of them:
        # a 10 ms call would then time out in virtual time. Trio serves
        # wait_all_tasks_blocked() waiters before it autojumps, so a task
        # waiting there keeps the clock still until the threads are done.
        try:
            while self._thread_calls:
                await wait_all_tasks_blocked(_HOLD_CUSHION)
        finally:
            self._holding_clock = False

    def _thread_call_ended(self) -> None:
        """Count a thread call that has ended."""
        self._thread_calls -= 1
        if not self._thread_calls and self._threads_idle is not None:
            self._threads_idle.set()
            self._threads_idle = None

    async def _wait_threads_idle(self) -> None:
        """Wait until no call of the scheduler runs in a thread."""
        while self._thread_calls:
            if self._threads_idle is None:
                self._threads_idle = trio.Event()
            await self._threads_idle.wait()

    def _unregister(self, runner: TaskRunner) -> None:
        self._runners.pop(runner, None)

    # ------------------------------------------------------------------ create_*

    def _create(
        self,
        factory: Callable[[trio.Nursery, RunnerConfig], RunnerT],
        nursery: trio.Nursery | None,
        options: RunnerOptions,
        where: str,
    ) -> RunnerT:
        if self._closed:
            raise RunnerClosedError(
                "the scheduler is closed; "
                "open runners inside 'async with open_scheduler()'"
            )
        config = RunnerConfig.from_options(options, where)
        runner = factory(self._nursery if nursery is None else nursery, config)
        self._runners[runner] = None
        if nursery is None:
            self._owned.append(runner)
        return runner

    def create_sequenced_runner(
        self, **options: Unpack[RunnerOptions]
    ) -> SequencedTaskRunner:
        """Make a `SequencedTaskRunner` that lives until the scheduler closes.

        Args:
            **options: see `RunnerOptions`.
        """
        return self._create(self._sequenced, None, options, "create_sequenced_runner()")

    def create_parallel_runner(
        self, *, max_concurrency: int, **options: Unpack[RunnerOptions]
    ) -> ParallelTaskRunner:
        """Make a `ParallelTaskRunner` that lives until the scheduler closes.

        Args:
            max_concurrency: how many of its tasks may run at once (>= 1).
            **options: see `RunnerOptions`.
        """
        limit = _check_concurrency(max_concurrency)
        return self._create(
            self._parallel(limit), None, options, "create_parallel_runner()"
        )

    def create_thread_runner(
        self, **options: Unpack[RunnerOptions]
    ) -> SingleThreadTaskRunner:
        """Make a `SingleThreadTaskRunner` that lives until the scheduler closes.

        Its thread starts now and is joined when the scheduler closes.

        Args:
            **options: see `RunnerOptions`.
        """
        return self._create(self._thread, None, options, "create_thread_runner()")

    def _sequenced(
        self, nursery: trio.Nursery, config: RunnerConfig
    ) -> SequencedTaskRunner:
        return SequencedTaskRunner(self, nursery, config, self._env)

    def _parallel(
        self, limit: int
    ) -> Callable[[trio.Nursery, RunnerConfig], ParallelTaskRunner]:
        def make(nursery: trio.Nursery, config: RunnerConfig) -> ParallelTaskRunner:
            return ParallelTaskRunner(
                self, nursery, config, self._env, max_concurrency=limit
            )

        return make

    def create_process_runner(
        self, *, max_workers: int | None = None, **options: Unpack[RunnerOptions]
    ) -> ProcessTaskRunner:
        """Make a `ProcessTaskRunner` that lives until the scheduler closes.

        Needs the ``trunner[process]`` extra (trio-parallel).

        Args:
            max_workers: worker processes running tasks at once (default: the
                number of CPUs).
            **options: see `RunnerOptions`.
        """
        limit = _process_count(max_workers)
        return self._create(
            self._process(limit), None, options, "create_process_runner()"
        )

    def _process(
        self, limit: int
    ) -> Callable[[trio.Nursery, RunnerConfig], ProcessTaskRunner]:
        def make(nursery: trio.Nursery, config: RunnerConfig) -> ProcessTaskRunner:
            return ProcessTaskRunner(
                self, nursery, config, self._env, max_concurrency=limit
            )

        return make

    def _thread(
        self, nursery: trio.Nursery, config: RunnerConfig
    ) -> SingleThreadTaskRunner:
        return SingleThreadTaskRunner(self, nursery, config, self._env)

    # ------------------------------------------------------------------ open_*

    @asynccontextmanager
    async def _open(
        self,
        factory: Callable[[trio.Nursery, RunnerConfig], RunnerT],
        options: RunnerOptions,
        where: str,
    ) -> AsyncGenerator[RunnerT, None]:
        async with owning_nursery() as nursery:
            runner = self._create(factory, nursery, options, where)
            async with close_on_exit(runner):
                yield runner

    def open_sequenced_runner(
        self, **options: Unpack[RunnerOptions]
    ) -> AbstractAsyncContextManager[SequencedTaskRunner]:
        """Open a `SequencedTaskRunner` for the ``async with`` block.

        Leaving the block closes the runner gracefully (`TaskRunner.aclose`); if
        the block raises, the runner is shut down at once (`TaskRunner.shutdown`)
        and the block's exception propagates as itself.

        Entering is not a checkpoint; leaving is (it is `TaskRunner.aclose`).
        Cancelling the exit mid-way shuts the runner down at once, and the
        exit still returns only once its machinery has ended. A task's error
        never comes out of the block (it goes to the task's handle and to
        ``on_error``); errors of trunner's own machinery come out as an
        `ExceptionGroup`, like a nursery's.

        Args:
            **options: see `RunnerOptions`.
        """
        return self._open(self._sequenced, options, "open_sequenced_runner()")

    def open_parallel_runner(
        self, *, max_concurrency: int, **options: Unpack[RunnerOptions]
    ) -> AbstractAsyncContextManager[ParallelTaskRunner]:
        """Open a `ParallelTaskRunner` for the ``async with`` block.

        Closing is as for `open_sequenced_runner`.

        Args:
            max_concurrency: how many of its tasks may run at once (>= 1).
            **options: see `RunnerOptions`.
        """
        limit = _check_concurrency(max_concurrency)
        return self._open(self._parallel(limit), options, "open_parallel_runner()")

    def open_thread_runner(
        self, **options: Unpack[RunnerOptions]
    ) -> AbstractAsyncContextManager[SingleThreadTaskRunner]:
        """Open a `SingleThreadTaskRunner` for the ``async with`` block.

        Its thread starts now and is joined when the block is left. Closing is as
        for `open_sequenced_runner`.

        Args:
            **options: see `RunnerOptions`.
        """
        return self._open(self._thread, options, "open_thread_runner()")

    def open_process_runner(
        self, *, max_workers: int | None = None, **options: Unpack[RunnerOptions]
    ) -> AbstractAsyncContextManager[ProcessTaskRunner]:
        """Open a `ProcessTaskRunner` for the ``async with`` block.

        Its worker processes are shut down when the block is left. Closing is
        as for `open_sequenced_runner`. Needs the ``trunner[process]`` extra.

        Args:
            max_workers: worker processes running tasks at once (default: the
                number of CPUs).
            **options: see `RunnerOptions`.
        """
        limit = _process_count(max_workers)
        return self._open(self._process(limit), options, "open_process_runner()")

    # ------------------------------------------------------------------ closing

    async def _aclose_owned(self) -> None:
        # Concurrently: a BLOCK_SHUTDOWN task of one runner may wait on another.
        async with trio.open_nursery() as nursery:
            for runner in self._owned:
                nursery.start_soon(runner.aclose)

    def _shutdown_all(self) -> None:
        for runner in list(self._runners):
            runner.shutdown()


@asynccontextmanager
async def owning_nursery() -> AsyncGenerator[trio.Nursery, None]:
    """A nursery whose block's own exception propagates as itself.

    Trio wraps an exception of a nursery's body in an `ExceptionGroup`; for a
    construct that runs no user code in its children, the body's exception is
    the only user error, so it is raised unwrapped. Errors of the children
    (trunner's own machinery) still come out as a group.
    """
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        except BaseException as exc:  # re-raised below, after the nursery
            body_error = exc
            nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error


@asynccontextmanager
async def close_on_exit(runner: TaskRunner) -> AsyncGenerator[TaskRunner, None]:
    """Close ``runner`` gracefully when the block ends, or at once if it raises."""
    try:
        yield runner
    except BaseException:
        runner.shutdown()
        raise
    await runner.aclose()


@asynccontextmanager
async def open_scheduler(
    max_workers: int | None = None, *, hooks: TaskHooks | None = None
) -> AsyncGenerator[Scheduler, None]:
    """Open a `Scheduler` for the ``async with`` block.

    Runners made with ``scheduler.create_*_runner()`` live until the block
    ends; leaving it closes them gracefully, all at once, and waits for their
    tasks and threads. If the block raises, every runner is shut down at once
    and the exception propagates as itself. Inside the block,
    `current_scheduler` returns the scheduler.

    Entering is not a checkpoint (as for `trio.open_nursery`); leaving is one
    whenever it has runners to close. Cancelling the exit mid-way turns the
    graceful close into `TaskRunner.shutdown` of every runner; the block still
    waits for their consumers and threads to end before `trio.Cancelled`
    propagates. The body's exception propagates as itself, never wrapped;
    errors of trunner's own machinery come out as an `ExceptionGroup`, like a
    nursery's.

    Args:
        max_workers: the most tasks of all the scheduler's runners that may run
            at once; None (the default) means no cap.
        hooks: `TaskHooks` called for every task of every runner.
    """
    workers = check_optional_count("max_workers", max_workers)
    if hooks is not None and not isinstance(hooks, TaskHooks):
        raise TypeError(f"hooks must be a TaskHooks, not {hooks!r}")
    async with owning_nursery() as nursery:
        scheduler = Scheduler(nursery, workers, hooks)
        token = scheduler_var.set(scheduler)
        try:
            yield scheduler
        except BaseException:
            scheduler._shutdown_all()  # pyright: ignore[reportPrivateUsage]  # its opener, in its module
            raise
        else:
            await scheduler._aclose_owned()  # pyright: ignore[reportPrivateUsage]  # its opener, in its module
        finally:
            scheduler._closed = True  # pyright: ignore[reportPrivateUsage]  # its opener, in its module
            scheduler_var.reset(token)


@asynccontextmanager
async def _scheduler_for_block() -> AsyncGenerator[Scheduler, None]:
    scheduler = scheduler_var.get(None)
    if scheduler is not None and not scheduler._closed:  # pyright: ignore[reportPrivateUsage]  # its opener, in its module
        yield scheduler
        return
    async with open_scheduler() as private:
        yield private


@asynccontextmanager
async def open_sequenced_runner(
    **options: Unpack[RunnerOptions],
) -> AsyncGenerator[SequencedTaskRunner, None]:
    """Open a `SequencedTaskRunner` on the current scheduler, or on a private one.

    Uses `current_scheduler` if one is open around the caller, else opens a
    scheduler for the block. See `Scheduler.open_sequenced_runner`.

    Entering is not a checkpoint; leaving is. Cancelling the exit shuts the
    runner down at once and still waits for its machinery to end. The body's
    exception propagates as itself; errors of trunner's machinery come out as
    an `ExceptionGroup`. The same holds for `open_parallel_runner`,
    `open_thread_runner` and `open_process_runner`.
    """
    async with AsyncExitStack() as stack:
        scheduler = await stack.enter_async_context(_scheduler_for_block())
        yield await stack.enter_async_context(
            scheduler.open_sequenced_runner(**options)
        )


@asynccontextmanager
async def open_parallel_runner(
    *, max_concurrency: int, **options: Unpack[RunnerOptions]
) -> AsyncGenerator[ParallelTaskRunner, None]:
    """Open a `ParallelTaskRunner` on the current scheduler, or on a private one.

    See `open_sequenced_runner` and `Scheduler.open_parallel_runner`. Entering
    is not a checkpoint; leaving is, and cancelling it shuts the runner down
    and still waits for its workers; the body's exception propagates as itself.
    """
    async with AsyncExitStack() as stack:
        scheduler = await stack.enter_async_context(_scheduler_for_block())
        yield await stack.enter_async_context(
            scheduler.open_parallel_runner(max_concurrency=max_concurrency, **options)
        )


@asynccontextmanager
async def open_thread_runner(
    **options: Unpack[RunnerOptions],
) -> AsyncGenerator[SingleThreadTaskRunner, None]:
    """Open a `SingleThreadTaskRunner` on the current scheduler, or on a private one.

    See `open_sequenced_runner` and `Scheduler.open_thread_runner`. Entering
    is not a checkpoint; leaving is, and cancelling it shuts the runner down
    and still joins its thread (a function running there cannot be
    interrupted); the body's exception propagates as itself.
    """
    async with AsyncExitStack() as stack:
        scheduler = await stack.enter_async_context(_scheduler_for_block())
        yield await stack.enter_async_context(scheduler.open_thread_runner(**options))


@asynccontextmanager
async def open_process_runner(
    *, max_workers: int | None = None, **options: Unpack[RunnerOptions]
) -> AsyncGenerator[ProcessTaskRunner, None]:
    """Open a `ProcessTaskRunner` on the current scheduler, or on a private one.

    See `open_sequenced_runner` and `Scheduler.open_process_runner`. Entering
    is not a checkpoint; leaving is, and cancelling it shuts the runner down
    and still shuts its worker processes down; the body's exception
    propagates as itself.
    """
    async with AsyncExitStack() as stack:
        scheduler = await stack.enter_async_context(_scheduler_for_block())
        yield await stack.enter_async_context(
            scheduler.open_process_runner(max_workers=max_workers, **options)
        )
