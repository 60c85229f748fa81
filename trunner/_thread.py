"""SingleThreadTaskRunner: every task on one dedicated OS thread."""

# pyright: reportPrivateUsage=false
# A thread call reads the function, arguments and scope of its TaskHandle
# record, which the parts of a runner share.

from __future__ import annotations

import inspect
import queue
import threading
from typing import TYPE_CHECKING, ClassVar, Final, final

import attrs
import outcome
import trio

from ._context import SequenceSlot, runner_var, scheduler_var, sequence_var
from ._options import is_async_callable
from ._sequenced import ChannelRunner
from ._util import AnyCallable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._handle import TaskHandle
    from ._traits import TaskTraits

_Abort: Final = trio.lowlevel.Abort


@final
class _ThreadCall:
    """One call handed to the thread, and who waits for it."""

    __slots__ = ("abandoned", "finished", "task")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.abandoned = False
        self.finished = trio.Event()


_Item = tuple[AnyCallable, tuple[object, ...], _ThreadCall]


@final
@attrs.define(eq=False, repr=False)
class SingleThreadTaskRunner(ChannelRunner):
    """Runs every task on one dedicated OS thread, one at a time, in FIFO order.

    Thread affinity for blocking I/O and thread-bound objects (a `sqlite3`
    connection, a C library with thread-local state). Tasks are plain
    functions; posting an async function raises `TypeError`. The thread starts
    when the runner opens and is joined when it closes. Delays and timeouts
    follow the trio clock.

    A running function cannot be interrupted: `~TaskRunner.shutdown` and
    cancellation let it run to its end. With ``timeout=``, its handle fails at
    the deadline, the function still runs to its end, and the next task starts
    only after that.
    Tasks on the thread may post to any runner (posting is thread-safe) and
    `current_runner` there returns this runner. Made by
    `Scheduler.open_thread_runner` and friends; the constructor is internal.
    """

    _inbox: queue.SimpleQueue[_Item | None] = attrs.field(
        init=False, factory=queue.SimpleQueue["_Item | None"]
    )
    _thread: threading.Thread = attrs.field(init=False)

    _offloads_all: ClassVar[bool] = True

    def _start_machinery(self) -> Callable[[TaskHandle[object]], None]:
        self._thread = threading.Thread(
            target=self._thread_main, name=f"trunner:{self._name}", daemon=True
        )
        self._thread.start()
        return super()._start_machinery()

    @property
    def thread(self) -> threading.Thread:
        """The runner's thread."""
        return self._thread

    def _offloads(
        self, fn: object, args: tuple[object, ...], traits: TaskTraits, what: str
    ) -> bool:
        if is_async_callable(fn):
            raise TypeError(
                f"{what} must be a plain function: {fn!r} is an async function, and "
                "a SingleThreadTaskRunner runs plain functions on its thread; post "
                "it to a sequenced or parallel runner"
            )
        return True

    def _thread_main(self) -> None:
        runner_var.set(self)
        scheduler_var.set(self._scheduler)
        sequence_var.set(SequenceSlot(self))
        inbox = self._inbox
        token = self._token
        while (item := inbox.get()) is not None:
            fn, args, call = item
            result = outcome.capture(fn, *args)
            if isinstance(result, outcome.Value) and inspect.isawaitable(result.value):
                value = result.value
                if inspect.iscoroutine(value):
                    value.close()
                result = outcome.Error(
                    TypeError(
                        f"{fn!r} returned an awaitable; "
                        "thread runners run plain functions"
                    )
                )
            try:
                token.run_sync_soon(self._deliver, call, result)
            except (
                trio.RunFinishedError
            ):  # pragma: no cover - the consumer joins us first
                return

    def _deliver(self, call: _ThreadCall, result: outcome.Outcome[object]) -> None:
        self._env.thread_call_ended()
        if call.abandoned:
            call.finished.set()
        else:
            trio.lowlevel.reschedule(call.task, result)

    async def _call(self, handle: TaskHandle[object]) -> object:
        fn = handle._fn
        call = _ThreadCall(trio.lowlevel.current_task())
        slot = sequence_var.get()
        opts = handle._opts
        timed = opts is not None and opts.timeout is not None

        def abort(_: object) -> trio.lowlevel.Abort:
            # Only a timeout lets the waiter go (the handle fails at the
            # deadline); the consumer then joins the call before its next task.
            if timed and trio.current_time() >= handle._scope.deadline:
                call.abandoned = True
                slot.stragglers.append(call.finished)
                return _Abort.SUCCEEDED
            return _Abort.FAILED

        self._env.thread_call_started()
        self._inbox.put((fn, handle._args, call))
        # The thread's outcome is unwrapped by trio: its value, or its error raised.
        return await trio.lowlevel.wait_task_rescheduled(abort)

    def _cancel_running(self, handle: TaskHandle[object]) -> bool:
        return False  # a function on the thread runs to its end

    async def _stop_machinery(self) -> None:
        self._inbox.put(None)
        self._env.thread_call_started()  # joining takes real time too
        try:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._thread.join)
        finally:
            self._env.thread_call_ended()
