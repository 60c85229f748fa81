"""The core of every runner: its parts, wired together, and what its kind provides.

`TaskRunner` (``_abc``) is the public protocol, a facade whose methods call
into the parts; `RunnerCore`, its base, holds the parts and makes them when
the runner is made, and declares the hooks through which each kind of runner
(sequenced, parallel, thread, process) brings its queue and its consumers:
the parts reach those hooks only as callbacks handed to them here.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar, cast

import attrs
import trio

from .._context import current_runner
from .._execute import Execution, offload_call
from .._handle import next_id
from .._metrics import RateMeter
from .._options import is_async_callable, log_task_error
from ._barriers import Barriers
from ._closing import Closing
from ._ends import TaskEnds
from ._fanout import ResultFanout
from ._intake import Intake, runner_options
from ._ledger import Ledger
from ._sending import Sending
from ._timers import TimerHeap

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._abc import TaskRunner
    from .._handle import TaskHandle
    from .._options import RunnerConfig
    from .._scheduler import Scheduler
    from .._traits import TaskTraits
    from ._environment import RunnerEnvironment


@attrs.define(eq=False, repr=False)
class RunnerCore(abc.ABC):
    """The parts of a runner and the hooks of its kind; `TaskRunner` is the API."""

    _scheduler: Scheduler
    _nursery: trio.Nursery
    _config: RunnerConfig
    # What the scheduler provides: slot limiter, hooks, thread calls, close.
    _env: RunnerEnvironment
    _name: str = attrs.field(init=False)
    _traits: TaskTraits = attrs.field(init=False)
    _token: trio.lowlevel.TrioToken = attrs.field(init=False)
    # The parts (trunner/_runner/).
    _ledger: Ledger = attrs.field(init=False)
    _barriers: Barriers = attrs.field(init=False)
    _fanout: ResultFanout = attrs.field(init=False)
    _intake: Intake = attrs.field(init=False)
    _timers: TimerHeap = attrs.field(init=False)
    _closing: Closing = attrs.field(init=False)
    _sending: Sending = attrs.field(init=False)
    # What the execution paths need: the ledger, the limiter, the offload.
    _execution: Execution = attrs.field(init=False)

    #: Whether the runner runs its tasks one at a time in posting order, so
    #: that a task's FIFO place is a barrier behind every earlier task.
    _ordered: ClassVar[bool] = False
    #: Whether every task runs outside the Trio thread (a thread or a process
    #: runner): each post then looks at its function.
    _offloads_all: ClassVar[bool] = False

    def __attrs_post_init__(self) -> None:
        config = self._config
        self._traits = traits = config.traits
        self._name = name = config.name or f"{type(self).__name__}-{next_id()}"
        default_opts, offload_opts = runner_options(
            config, self._env.hooks, offloads_all=self._offloads_all
        )
        now = trio.lowlevel.current_clock().current_time
        # The parts. Those made first reach those made later through a lambda,
        # on cold paths only: the hot ones are bound directly.
        # Every RunnerCore is a TaskRunner (its one subclass): the parts know
        # the runner by its public type.
        runner = cast("TaskRunner", self)
        self._ledger = ledger = Ledger(
            runner,
            now,
            config.max_pending,
            config.on_error or log_task_error,
            self._cancel_running,
            RateMeter(now()),
        )
        self._barriers = barriers = Barriers(
            ledger, lambda handle: intake.push(handle), lambda: ends.update_watching()
        )
        self._fanout = fanout = ResultFanout(
            lambda: closing.is_fully_closed(), lambda: ends.update_watching()
        )
        # on_finish hooks hear of every task's end, like subscribers.
        ends = TaskEnds(
            runner, ledger, barriers, fanout, finish_hooks=bool(offload_opts.on_finish)
        )
        ledger.notify = ends.notify
        ledger.watching = ends.finish_hooks
        self._token = trio.lowlevel.current_trio_token()
        self._intake = intake = Intake(
            runner,
            name,
            ledger,
            barriers,
            traits,
            default_opts,
            offload_opts,
            inspect_fn=self._offloads_all or traits.may_block,
            ordered=self._ordered,
            push=self._start_machinery(),
            offloads=self._offloads,
            token=self._token,
        )
        self._timers = timers = TimerHeap(
            self._nursery, name, ledger, intake.admit, intake.post_internal
        )
        intake.timers = timers
        ledger.timer_dropped = timers.dropped
        self._closing = closing = Closing(
            ledger,
            timers,
            barriers,
            fanout,
            traits,
            self._running_handles,
            self._cancel_running,
            self._stop_intake,
            self._release_machinery,
            lambda: self._env.closed(runner),
        )
        self._sending = Sending(intake, ledger)
        self._execution = Execution(ledger, self._env.limiter, self._call)

    # ------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def _start_machinery(self) -> Callable[[TaskHandle[object]], None]:
        """Start the task(s) that consume the queue, in ``self._nursery``.

        Returns:
            How to queue a PENDING handle that is already counted pending.
        """

    @abc.abstractmethod
    def _stop_intake(self) -> None:
        """No task will be enqueued any more: let the consumers exit once idle."""

    @abc.abstractmethod
    def _running_handles(self) -> Iterable[TaskHandle[object]]:
        """The handles that are RUNNING now."""

    def _offloads(
        self, fn: object, args: tuple[object, ...], traits: TaskTraits, what: str
    ) -> bool:
        """Whether ``fn`` runs in a worker thread (``may_block`` on a sync function).

        A runner that cannot run ``fn`` raises `TypeError` naming ``what``.
        """
        return traits.may_block and not is_async_callable(fn)

    async def _call(self, handle: TaskHandle[object]) -> object:
        """Make one attempt of an offloaded task (overridden by thread runners)."""
        return await offload_call(self._env, self._token, handle)

    def _cancel_running(self, handle: TaskHandle[object]) -> bool:
        """Cancel a RUNNING handle (a function in a thread runs to its end)."""
        return self._ledger.stop_in_scope(handle)

    def _release_machinery(self) -> None:
        """Mark the machinery done; a subclass may first release what it holds."""
        self._closing.machinery_done.set()

    def _machinery_exited(self) -> None:
        """Record that the consumers have all ended, however they ended."""
        self._closing.machinery_exited()

    # ------------------------------------------------------------ for the facade

    def _reply_intake(self, reply_runner: object) -> Intake:
        """The intake of the runner a reply goes to (None: the caller's runner)."""
        if reply_runner is None:
            reply_runner = current_runner()
        elif not isinstance(reply_runner, RunnerCore):
            raise TypeError(f"reply_runner must be a TaskRunner, not {reply_runner!r}")
        return reply_runner._intake
