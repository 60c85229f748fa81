"""The posts that wait: `TaskRunner.send_task` for room, `TaskRunner.run` to end.

Both post through the `Intake`, with its checks; ``send`` first waits, in strict
FIFO order, for room in a full bounded runner, and ``run`` waits for the task
it posted to end. Neither may wait from the task that holds a sequenced or
thread runner's sequence when that wait could only end after the task itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

from ._ledger import RoomWaiter

if TYPE_CHECKING:
    from .._handle import TaskHandle
    from .._retry import RetryPolicy
    from .._traits import TaskTraits
    from .._util import AnyCallable
    from ._intake import Intake
    from ._ledger import Ledger


async def wait_ended(handle: TaskHandle[object]) -> None:
    """Wait for ``handle`` to end, whatever its end (``wait()`` would raise it)."""
    event = trio.Event()
    handle.add_done_callback(lambda _: event.set())
    await event.wait()


@attrs.define(eq=False)
class Sending:
    """How a runner posts for callers that wait."""

    intake: Intake
    ledger: Ledger

    async def send(
        self,
        fn: AnyCallable,
        args: tuple[object, ...],
        traits: TaskTraits | None,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,  # noqa: ASYNC109  # the task's timeout
    ) -> TaskHandle[object]:
        """Be `TaskRunner.send_task`: post, waiting for room in a full runner."""
        intake = self.intake
        opts = intake.options_for(fn, args, traits, name, retry, timeout)
        await trio.lowlevel.checkpoint_if_cancelled()
        ledger = self.ledger
        limit = ledger.max_pending
        if (
            limit is not None
            and not ledger.phase
            and (ledger.room_waiters or ledger.pending >= limit)
        ):
            if ledger.pending + len(ledger.room_waiters) >= limit:
                # No room will be left for it while it holds a sequence.
                ledger.refuse_wait_in_sequence(
                    "room in its full queue (send_task)",
                    "post_task raises QueueFullError at once instead",
                )
            await self.wait_room(limit)
        handle = intake.post_checked(fn, args, opts)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return handle

    async def wait_room(self, limit: int) -> None:
        """Wait, in strict FIFO order, until fewer than ``limit`` tasks are pending.

        Only the first waiter may take room. A first waiter that is woken but
        beaten to the room by a post keeps its place at the head (a parking lot
        would requeue it at the back); a newcomer queues behind the waiters
        even when there is room.
        """
        ledger = self.ledger
        waiters = ledger.room_waiters
        waiter = RoomWaiter()
        waiters.append(waiter)
        try:
            while not ledger.phase and (
                waiters[0] is not waiter or ledger.pending >= limit
            ):
                await waiter.woken.wait()
                waiter.woken = trio.Event()
        finally:
            waiters.remove(waiter)
            # The next waiter looks at what room is left once this one has
            # posted (no checkpoint comes between), or takes it if this one
            # was cancelled.
            ledger.wake_room()

    async def run(
        self, fn: AnyCallable, args: tuple[object, ...], traits: TaskTraits | None
    ) -> object:
        """Be `TaskRunner.run`: post ``fn(*args)`` and wait for its result.

        Cancelling the caller cancels the task, and returns only once the task
        has ended.
        """
        self.ledger.refuse_wait_in_sequence(
            "a task it posts itself (run)",
            "call the function directly, or post it without waiting for it",
        )
        intake = self.intake
        opts = intake.options_for(fn, args, traits, None, None, None)
        handle = intake.post_checked(fn, args, opts)
        try:
            return await handle.wait()
        except trio.Cancelled:
            handle.cancel()
            if not handle.done:
                # Return only once it has ended, as run_all does: it may take
                # time to unwind, and a function in a thread runs to its end.
                with trio.CancelScope(shield=True):
                    await wait_ended(handle)
            raise
