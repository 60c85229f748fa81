"""The intake of a runner: the checks of a post, and the admission of its handle.

Every way a task enters a runner goes through here: `TaskRunner.post_task` and
its batch, delayed, repeating, reply and ``flush_soon`` variants, the posts of
other threads (admitted on the Trio thread through the run's
`trio.lowlevel.TrioToken`), and what the runner posts itself (replies, the runs
of repeating tasks, due timers). A post checks all its arguments before it
posts anything; a closed or full runner refuses it, a runner that is closing
gracefully admits only its own tasks' posts and applies their shutdown
behaviour at once.
"""

# pyright: reportPrivateUsage=false
# A post makes a TaskHandle record and writes its fields (flags, queue time),
# as the other parts of a runner do: posting is the hottest path after the
# consumers', and a property per field would cost a call each.

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Final

import attrs
import trio

from .._context import runner_var
from .._errors import QueueFullError, RunnerClosedError
from .._handle import (
    WAITS_ADMISSION,
    WAITS_BARRIER,
    RepeatingHandle,
    TaskHandle,
    next_id,
)
from .._hooks import logger as hook_logger
from .._options import TaskOptions, check_timeout
from .._ratelimit import TokenBucket
from .._retry import RetryPolicy
from .._traits import MissedTicks, RepeatMode, ShutdownBehavior, TaskState, TaskTraits
from .._util import check_arity, check_duration, describe, refuse_generator
from ._ledger import CLOSED

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._abc import TaskRunner
    from .._hooks import TaskHooks
    from .._options import RunnerConfig
    from .._util import AnyCallable
    from ._barriers import Barriers
    from ._ledger import Ledger
    from ._timers import TimerHeap

_PENDING: Final = TaskState.PENDING
_SKIPPED: Final = TaskState.SKIPPED
_BLOCK: Final = ShutdownBehavior.BLOCK_SHUTDOWN


def fire_on_queued(handle: TaskHandle[object], opts: TaskOptions) -> None:
    """Call the ``on_queued`` hooks of a handle just queued; log what they raise."""
    for hook in opts.on_queued:
        try:
            hook(handle)
        except Exception:
            hook_logger.exception("hook %r raised; the task goes on", hook)


def runner_options(
    config: RunnerConfig, scheduler_hooks: TaskHooks | None, *, offloads_all: bool
) -> tuple[TaskOptions | None, TaskOptions]:
    """Return the options of a runner's tasks posted without any: (default, offloaded).

    The default is None when such a task needs no option at all (the fast
    path), and the offloaded options when every task of the runner leaves the
    Trio thread (``offloads_all``: a thread or process runner).
    """
    traits = config.traits
    hooks = tuple(h for h in (scheduler_hooks, config.hooks) if h is not None)
    rate = config.rate_limit
    base = TaskOptions(
        traits=traits,
        name=None,
        retry=config.retry,
        timeout=config.timeout,
        offload=False,
        hooks=hooks,
        middleware=config.middleware,
        bucket=None if rate is None else TokenBucket(rate),
    )
    offloaded = base.evolve(
        traits=traits,
        name=None,
        retry=config.retry,
        timeout=config.timeout,
        offload=True,
    )
    if offloads_all:
        return offloaded, offloaded
    if not base.simple or base.on_queued or traits.may_block:
        return base, offloaded
    return None, offloaded


@attrs.define(eq=False)
class Intake:
    """How tasks enter a runner: checks, refusals, admission."""

    #: The runner whose posts these are: its own tasks may post while it closes.
    runner: TaskRunner
    name: str
    ledger: Ledger
    barriers: Barriers
    #: The runner's default traits, and the options of a post that gives none
    #: (None when the task needs no option at all) or that is offloaded.
    traits: TaskTraits
    default_opts: TaskOptions | None
    offload_opts: TaskOptions
    #: Whether each post must look at its function (may_block, thread runners).
    inspect_fn: bool
    #: Whether the runner runs its tasks one at a time in posting order, so
    #: that a task's FIFO place is a barrier behind every earlier task.
    ordered: bool
    # Callbacks of the runner: queue a handle already counted (its queue, or
    # straight to a sequence's channel), and tell whether a function runs in a
    # worker thread (raising TypeError, naming the argument, for a function the
    # runner cannot run).
    push: Callable[[TaskHandle[object]], None]
    offloads: Callable[[object, tuple[object, ...], TaskTraits, str], bool]
    token: trio.lowlevel.TrioToken
    #: Set by the runner once its timer heap, which admits through here, exists.
    timers: TimerHeap = attrs.field(init=False)
    #: The last function that passed the checks of a post without options,
    #: on a runner that does not look at each function (a fresh object that no
    #: caller holds until then). Held until the next one.
    checked_fn: object = attrs.field(init=False, factory=object)
    trio_thread: int = attrs.field(factory=threading.get_ident)

    # ------------------------------------------------------------ checks

    def options_for(
        self,
        fn: object,
        args: tuple[object, ...],
        traits: TaskTraits | None,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,
        what: str = "fn",
    ) -> TaskOptions | None:
        """Make every check of a post, before anything is posted.

        ``what`` names the function's argument in the messages.
        """
        if not callable(fn):
            raise TypeError(f"{what} must be callable, not {fn!r}")
        refuse_generator(what, fn)
        if traits is None and name is None and retry is None and timeout is None:
            if self.offloads(fn, args, self.traits, what):
                return self.offload_opts
            if not self.inspect_fn:
                # TaskRunner.post_task posts it again without these checks.
                self.checked_fn = fn
            return self.default_opts
        if traits is None:
            traits = self.traits
        elif not isinstance(traits, TaskTraits):
            raise TypeError(f"traits must be a TaskTraits, not {traits!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {name!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {retry!r}")
        offload = self.offloads(fn, args, traits, what)
        base = self.offload_opts
        return base.evolve(
            traits=traits,
            name=name,
            retry=base.retry if retry is None else retry,
            timeout=base.timeout if timeout is None else check_timeout(timeout),
            offload=offload,
        )

    def refuse(self) -> RunnerClosedError:
        """The error of a post to a closed runner."""
        return RunnerClosedError(
            f"runner {self.name!r} is closed; post to an open runner, or open a new "
            "one with scheduler.open_sequenced_runner() and friends"
        )

    def full(self) -> QueueFullError:
        """Count a post refused for want of room; return its error."""
        self.ledger.rejected += 1
        return QueueFullError(
            f"runner {self.name!r} already has max_pending={self.ledger.max_pending} "
            "tasks waiting; use 'await runner.send_task(...)' to wait for room"
        )

    def check_open(self) -> None:
        """Refuse a post to a closed runner, or to a closing one from outside it."""
        phase = self.ledger.phase
        if phase and (phase == CLOSED or runner_var.get(None) is not self.runner):
            raise self.refuse()

    def check_trio_thread(self, method: str, advice: str = "") -> None:
        """Refuse a call that belongs to the Trio thread from another thread."""
        if threading.get_ident() != self.trio_thread:
            raise RuntimeError(f"{method} must be called from the Trio thread{advice}")

    # ------------------------------------------------------------ posting

    def post_checked(
        self, fn: AnyCallable, args: tuple[object, ...], opts: TaskOptions | None
    ) -> TaskHandle[object]:
        """Post a task whose options were checked (`options_for`).

        `TaskRunner.post_task` queues on an open runner itself, and comes here
        from other threads and during a close. During a graceful close only
        the runner's own tasks may post; what they post follows its shutdown
        behaviour at once.
        """
        if threading.get_ident() != self.trio_thread:
            return self.post_from_thread(fn, args, opts, None)
        ledger = self.ledger
        if ledger.phase:
            self.check_open()
        if ledger.is_full():
            raise self.full()
        handle: TaskHandle[object] = TaskHandle(
            ledger, fn, args, next_id(), opts, ledger.now()
        )
        self.admit(handle)
        return handle

    def post_batch(
        self, fns: Iterable[AnyCallable], traits: TaskTraits | None
    ) -> list[TaskHandle[object]]:
        """Be `TaskRunner.post_tasks`: post every function, or none."""
        batch = list(fns)
        options = [
            self.options_for(fn, (), traits, None, None, None, "every item of fns")
            for fn in batch
        ]
        self.check_open()
        ledger = self.ledger
        if (
            ledger.max_pending is not None
            and ledger.pending + len(batch) > ledger.max_pending
        ):
            raise self.full()
        return [
            self.post_checked(fn, (), opts)
            for fn, opts in zip(batch, options, strict=True)
        ]

    def admit(self, handle: TaskHandle[object]) -> None:
        """Queue a new handle, honouring a close under way; no max_pending check."""
        opts = handle._opts
        traits = self.traits if opts is None else opts.traits
        ledger = self.ledger
        if ledger.phase and (
            ledger.phase == CLOSED or traits.shutdown_behavior is not _BLOCK
        ):
            ledger.finish_unstarted(handle, _SKIPPED)
            return
        ledger.live[handle._id] = handle
        ledger.pending += 1
        self.push(handle)
        if opts is not None and opts.on_queued:
            fire_on_queued(handle, opts)

    def post_internal(
        self, fn: AnyCallable, args: tuple[object, ...], opts: TaskOptions | None
    ) -> TaskHandle[object] | None:
        """Post a reply or a due run: never refused by ``max_pending``.

        A closed runner drops it (returns None); a closing one applies the
        shutdown behaviour of its traits.
        """
        ledger = self.ledger
        if ledger.phase == CLOSED:
            return None
        handle: TaskHandle[object] = TaskHandle(
            ledger, fn, args, next_id(), opts, ledger.now()
        )
        self.admit(handle)
        return handle

    # ------------------------------------------------------------ other threads

    def post_from_thread(
        self,
        fn: AnyCallable,
        args: tuple[object, ...],
        opts: TaskOptions | None,
        delay: float | None,
    ) -> TaskHandle[object]:
        """Post from another OS thread (for example a task of a thread runner).

        The handle is made here, and admitted by the Trio thread. ``delay`` is
        None for a task that is not delayed.
        """
        own = runner_var.get(None) is self.runner
        ledger = self.ledger
        if ledger.phase == CLOSED or (ledger.phase and not own):
            raise self.refuse()
        if ledger.is_full():
            raise self.full()
        handle: TaskHandle[object] = TaskHandle(ledger, fn, args, next_id(), opts, 0.0)
        handle._flags = WAITS_ADMISSION
        self.token.run_sync_soon(self.admit_from_thread, handle, delay, own)
        return handle

    def admit_from_thread(
        self, handle: TaskHandle[object], delay: float | None, own: bool
    ) -> None:
        """Admit on the Trio thread a handle posted from another thread."""
        if handle._state is not _PENDING:  # cancelled before it got here
            return
        handle._flags = 0
        ledger = self.ledger
        if ledger.phase and not own:
            ledger.finish_unstarted(handle, _SKIPPED)
        elif delay is not None:
            self.timers.delay(handle, delay)
        else:
            handle._queued_at = ledger.now()
            self.admit(handle)

    # ------------------------------------------------------------ timers, barriers

    def post_delayed(
        self,
        fn: AnyCallable,
        args: tuple[object, ...],
        delay: float,
        traits: TaskTraits | None,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,
    ) -> TaskHandle[object]:
        """Be `TaskRunner.post_delayed_task`."""
        seconds = check_duration("delay", delay)
        opts = self.options_for(fn, args, traits, name, retry, timeout)
        if threading.get_ident() != self.trio_thread:
            return self.post_from_thread(fn, args, opts, seconds)
        self.check_open()
        handle: TaskHandle[object] = TaskHandle(
            self.ledger, fn, args, next_id(), opts, 0.0
        )
        self.timers.delay(handle, seconds)
        return handle

    def post_repeating(
        self,
        fn: AnyCallable,
        args: tuple[object, ...],
        interval: float,
        initial_delay: float,
        mode: RepeatMode,
        missed: MissedTicks,
        traits: TaskTraits | None,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,
    ) -> RepeatingHandle:
        """Be `TaskRunner.post_repeating_task`."""
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
        run_opts = self.options_for(
            fn, args, traits, name or describe(fn), retry, timeout
        )
        self.check_trio_thread(
            "post_repeating_task",
            "; use trio.from_thread.run_sync(runner.post_repeating_task, ...)",
        )
        self.check_open()
        anchor = trio.current_time() + first
        repeating = RepeatingHandle(
            self.timers, fn, args, run_opts, period, mode, missed, anchor
        )
        # Its runs count themselves as they start (on the Trio thread, wherever
        # they run), and call the user's function itself: a process runner
        # must be able to pickle it.
        assert run_opts is not None
        repeating._opts = run_opts.with_start_hook(repeating._count_run)
        if self.ledger.phase:
            repeating._stopped = True
        else:
            self.timers.add_repeating(repeating, anchor)
        return repeating

    def post_flush_soon(
        self, callback: AnyCallable, args: tuple[object, ...]
    ) -> TaskHandle[object]:
        """Be `TaskRunner.flush_soon`: a task held back behind a barrier."""
        self.check_trio_thread("flush_soon")
        opts = self.options_for(callback, args, None, None, None, None, "callback")
        self.check_open()
        ledger = self.ledger
        if ledger.is_full():
            raise self.full()
        handle: TaskHandle[object] = TaskHandle(
            ledger, callback, args, next_id(), opts, ledger.now()
        )
        if self.ordered or self.barriers.add(handle) is None:
            self.admit(handle)  # a sequence's FIFO is the barrier
            return handle
        # Live and pending from now on, queued when its barrier clears.
        handle._flags = WAITS_BARRIER
        ledger.live[handle._id] = handle
        ledger.pending += 1
        if opts is not None and opts.on_queued:
            fire_on_queued(handle, opts)
        return handle

    # ------------------------------------------------------------ replies

    def post_with_reply(
        self,
        task: AnyCallable,
        reply: AnyCallable,
        target: Intake,
        *,
        with_result: bool,
    ) -> TaskHandle[object]:
        """Post ``task``; once it has ended, post ``reply`` through ``target``.

        With ``with_result`` the reply gets the task's outcome.
        """
        # Both run later, far from here: a wrong arity is refused now.
        opts = self.options_for(task, (), None, None, None, None, "task")
        check_arity("task", task, "task()")
        reply_opts = target.options_for(reply, (), None, None, None, None, "reply")
        check_arity("reply", reply, "reply(outcome)" if with_result else "reply()")
        handle = self.post_checked(task, (), opts)
        if with_result:

            def on_done(done: TaskHandle[object]) -> None:
                target.post_internal(reply, (done.outcome,), reply_opts)

        else:

            def on_done(done: TaskHandle[object]) -> None:
                del done
                target.post_internal(reply, (), reply_opts)

        # Handles belong to the Trio thread: from another thread, ship the call
        # there (after the handle's own admission, which was shipped first).
        if threading.get_ident() == self.trio_thread:
            handle.add_done_callback(on_done)
        else:
            self.token.run_sync_soon(handle.add_done_callback, on_done)
        return handle
