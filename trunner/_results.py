"""Task results and the subscriptions that fan them out."""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, final

import attrs
import trio

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Self

    from ._traits import TaskState


@final
@attrs.frozen(kw_only=True)
class TaskResult:
    """How a task ended: what `TaskRunner.subscribe_results` and ``on_finish`` get.

    Times are on the trio clock. ``started_at`` is None for a task that never
    started (SKIPPED, or CANCELLED while pending); ``value`` is None unless the
    task SUCCEEDED and ``error`` is None if it did.
    """

    task_id: int
    name: str
    state: TaskState
    value: object = None
    error: BaseException | None = None
    queued_at: float
    started_at: float | None
    finished_at: float
    #: Attempts started (0 for a task that never started, > 1 after retries).
    attempts: int


@final
class DropPolicy(enum.Enum):
    """What a result subscription does when its buffer is full."""

    #: The subscriber misses the new result (the default).
    DROP_NEWEST = "drop_newest"
    #: The oldest buffered result makes room for the new one.
    DROP_OLDEST = "drop_oldest"
    #: The runner waits until the subscriber has room. Results produced outside
    #: any task, such as tasks skipped at close, are buffered instead.
    BLOCK = "block"


@final
class ResultSubscription:
    """A stream of the `TaskResult` of every task of a runner that ends.

    Made by `TaskRunner.subscribe_results`; its constructor is internal. It is
    subscribed from the moment it is made. Iterate it with ``async for``, which
    ends when the runner has closed and the buffer is empty, or when the
    subscription is closed. Leaving its ``async with`` block (or `close`)
    unsubscribes.
    """

    __slots__ = (
        "_buffer",
        "_capacity",
        "_closed",
        "_count_dropped",
        "_data",
        "_policy",
        "_room",
        "_source_closed",
        "_unsubscribe",
        "dropped",
    )

    def __init__(
        self,
        buffer: int,
        policy: DropPolicy,
        *,
        unsubscribe: Callable[[ResultSubscription], None],
        count_dropped: Callable[[], None],
        source_closed: Callable[[], bool],
    ) -> None:
        # Callbacks of the runner's result fan-out: leave it, count a drop, and
        # whether the runner has closed (no result will come any more).
        self._unsubscribe = unsubscribe
        self._count_dropped = count_dropped
        self._source_closed = source_closed
        self._capacity = buffer
        self._policy = policy
        self._buffer: deque[TaskResult] = deque()
        self._data = trio.lowlevel.ParkingLot()
        self._room = trio.lowlevel.ParkingLot()
        self._closed = False
        #: Results this subscriber missed because its buffer was full.
        self.dropped: int = 0

    @property
    def policy(self) -> DropPolicy:
        """What happens when the buffer is full."""
        return self._policy

    @property
    def closed(self) -> bool:
        """Whether the subscription has been closed."""
        return self._closed

    def offer(self, result: TaskResult) -> bool:
        """Take ``result``; return False only when a BLOCK subscriber is full."""
        if self._closed:
            return True
        buffer = self._buffer
        if len(buffer) >= self._capacity:
            if self._policy is DropPolicy.BLOCK:
                return False
            self.dropped += 1
            self._count_dropped()
            if self._policy is DropPolicy.DROP_NEWEST:
                return True
            buffer.popleft()
        buffer.append(result)
        self._data.unpark()
        return True

    def force(self, result: TaskResult) -> None:
        """Take ``result`` even beyond the buffer size (results made outside a task)."""
        if not self._closed:
            self._buffer.append(result)
            self._data.unpark()

    async def wait_room(self) -> None:
        """Wait until the buffer has room or the subscription is closed.

        The consumers of a runner call it for a `DropPolicy.BLOCK` subscriber
        whose buffer was full, before they run their next task.

        This is a checkpoint, also when there is room already. Cancelling it
        mid-wait leaves the subscription as it was: nothing is taken or
        dropped, and the runner still delivers the result it had no room for.
        It raises nothing but `trio.Cancelled`, so it has no exception-group
        policy.
        """
        if not self._is_full():
            await trio.lowlevel.checkpoint()
            return
        while self._is_full():
            await self._room.park()

    def _is_full(self) -> bool:
        # Full, and open: a reader is still expected to make room.
        return not self._closed and len(self._buffer) >= self._capacity

    def wake(self) -> None:
        """Wake readers so that they notice a closed runner."""
        self._data.unpark_all()

    def close(self) -> None:
        """Unsubscribe. Buffered results are dropped; iteration ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._unsubscribe(self)
        self._data.unpark_all()
        self._room.unpark_all()

    async def aclose(self) -> None:
        """Unsubscribe, like `close`. A checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Self:
        """Enter the ``async with`` block: the subscription is already live.

        A checkpoint (so entering can be cancelled, like any trio ``async
        with``). The subscription was made by `TaskRunner.subscribe_results`,
        before entering; cancelling the entry therefore leaves it subscribed
        until `close` is called, so enter it right where it is made. Leaving
        the block closes it, whatever the block raised; it raises no error of
        its own and never wraps the block's error in a group.
        """
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TaskResult:
        """Wait for the next result. A checkpoint.

        Raises:
            StopAsyncIteration: once the subscription is closed, or the runner
                has closed and every buffered result has been read.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._buffer:
            if self._closed or self._source_closed():
                await trio.lowlevel.cancel_shielded_checkpoint()
                raise StopAsyncIteration
            await self._data.park()
        result = self._buffer.popleft()
        # Wake every consumer waiting for room, not one: a woken consumer may
        # find its result already delivered by another and leave, taking the
        # only wake-up with it while a third one still waits (issue 8, item 0).
        # Waiters are the runner's consumers: a few at most.
        self._room.unpark_all()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return result
