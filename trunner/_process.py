"""ProcessTaskRunner: CPU-bound functions in worker processes, through trio-parallel."""

# pyright: reportPrivateUsage=false
# A process call reads the function and arguments of its TaskHandle record,
# and cancels it through the record's scope.

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, ClassVar, Final, Protocol, final

import attrs
import trio

from ._options import is_async_callable
from ._parallel import WorkerPoolRunner

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._handle import TaskHandle
    from ._traits import TaskTraits
    from ._util import AnyCallable

#: Seconds a worker process may take to exit when the runner closes, before it
#: is killed.
WORKER_GRACE_PERIOD: Final = 10.0


class _WorkerContext(Protocol):
    # What trunner uses of trio_parallel.WorkerContext (trio-parallel ships no
    # type information).
    async def run_sync(
        self,
        sync_fn: AnyCallable,
        *args: object,
        kill_on_cancel: bool = ...,
        limiter: trio.CapacityLimiter = ...,
    ) -> object: ...


def _import_trio_parallel() -> None:
    try:
        import trio_parallel  # type: ignore[import-untyped]  # noqa: F401  # pyright: ignore[reportMissingTypeStubs]  # optional: trunner[process], untyped
    except ImportError as error:  # pragma: no cover - installed with the tests
        raise ImportError(
            "process runners need trio-parallel: pip install 'trunner[process]'"
        ) from error


@final
@attrs.define(eq=False, repr=False)
class ProcessTaskRunner(WorkerPoolRunner):
    """Runs plain, picklable functions in worker processes, up to N at once.

    Python runs one thread of bytecode at a time, so CPU-bound work needs
    processes. Tasks are plain functions and their arguments, pickled to a
    worker process (`trio-parallel <https://trio-parallel.readthedocs.io>`_);
    a function or argument that cannot be pickled, or an async function, is
    refused with `TypeError` when it is posted. Cancelling a running task (its
    handle, a timeout, `TaskRunner.shutdown`, CONTINUE_ON_SHUTDOWN at close)
    kills its worker process. The runner's worker processes are shut down when
    it closes. Each task is a sequence of its own.

    Made by `Scheduler.open_process_runner` and friends (needs the
    ``trunner[process]`` extra); the constructor is internal.
    """

    _context: _WorkerContext | None = attrs.field(init=False, default=None)
    _context_ready: trio.Event = attrs.field(init=False, factory=trio.Event)
    _workers_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    _processes: trio.CapacityLimiter = attrs.field(init=False)

    @property
    def max_workers(self) -> int:
        """How many worker processes may run tasks at once."""
        return self._max_concurrency

    _offloads_all: ClassVar[bool] = True

    def _start_machinery(self) -> Callable[[TaskHandle[object]], None]:
        _import_trio_parallel()
        push = super()._start_machinery()
        self._processes = trio.CapacityLimiter(self._max_concurrency)
        self._nursery.start_soon(self._host, name=f"{self._name}-processes")
        return push

    def _offloads(
        self, fn: object, args: tuple[object, ...], traits: TaskTraits, what: str
    ) -> bool:
        if is_async_callable(fn):
            raise TypeError(
                f"{what} must be a plain function: {fn!r} is an async function, and "
                "a ProcessTaskRunner runs plain functions in worker processes"
            )
        try:
            pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            raise TypeError(
                f"{what} {fn!r} or its arguments cannot be pickled, so they cannot "
                f"be sent to a worker process ({error}); use a module-level "
                "function and picklable arguments"
            ) from error
        return True

    async def _host(self) -> None:
        # The worker processes belong to a trio-parallel context that this task
        # holds open until the runner's workers have all ended.
        import trio_parallel  # pyright: ignore[reportMissingTypeStubs]  # no type information

        holding_clock = False
        try:
            async with trio_parallel.open_worker_context(  # pyright: ignore[reportUnknownMemberType]  # untyped
                grace_period=WORKER_GRACE_PERIOD
            ) as context:
                self._context = context  # pyright: ignore[reportUnknownMemberType]  # untyped
                self._context_ready.set()
                await self._workers_done.wait()
                # Shutting the processes down takes real time: hold a virtual
                # clock still meanwhile, as for any thread or process call.
                self._env.thread_call_started()
                holding_clock = True
        finally:
            if holding_clock:
                self._env.thread_call_ended()
            self._context = None
            self._closing.machinery_done.set()

    def _release_machinery(self) -> None:
        # The host task shuts the processes down, then marks the machinery done.
        self._workers_done.set()

    async def _call(self, handle: TaskHandle[object]) -> object:
        await self._context_ready.wait()
        context = self._context
        if context is None:  # pragma: no cover - the host ends after the workers
            raise trio.ClosedResourceError("the runner's worker processes are gone")
        self._env.thread_call_started()
        try:
            return await context.run_sync(
                handle._fn, *handle._args, kill_on_cancel=True, limiter=self._processes
            )
        finally:
            self._env.thread_call_ended()

    def _cancel_running(self, handle: TaskHandle[object]) -> bool:
        # Unlike a thread, a worker process can be stopped: it is killed.
        return self._ledger.stop_in_scope(handle, offloaded_too=True)
