"""A capacity limiter that serves waiters by priority, FIFO within a priority.

`trio.CapacityLimiter` is FIFO only. This one keeps one parking lot per
`Priority` and hands a released token straight to the oldest waiter of the
highest priority, so a newcomer can never barge ahead of a waiter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import attrs
import trio

if TYPE_CHECKING:
    from ._traits import Priority


@final
@attrs.frozen
class LimiterStatistics:
    """A snapshot of a scheduler's worker slots."""

    total_tokens: int
    borrowed_tokens: int
    #: Waiting tasks per priority, highest first.
    waiting: tuple[int, int, int]


@final
class PriorityLimiter:
    """``total`` worker slots, granted by priority, FIFO within a priority."""

    __slots__ = ("_borrowed", "_lots", "_total")

    def __init__(self, total: int) -> None:
        self._total = total
        self._borrowed = 0
        # Indexed by Priority value: BEST_EFFORT, USER_VISIBLE, USER_BLOCKING.
        self._lots = (
            trio.lowlevel.ParkingLot(),
            trio.lowlevel.ParkingLot(),
            trio.lowlevel.ParkingLot(),
        )

    @property
    def total_tokens(self) -> int:
        """How many slots there are."""
        return self._total

    @property
    def borrowed_tokens(self) -> int:
        """How many slots are taken."""
        return self._borrowed

    def acquire_nowait(self) -> bool:
        """Take a slot if one is free; never a checkpoint.

        A free slot with waiters cannot happen: `release` hands slots to
        waiters directly.
        """
        if self._borrowed < self._total:
            self._borrowed += 1
            return True
        return False

    async def acquire(self, priority: Priority) -> None:
        """Take a slot, waiting behind every waiter of the same or a higher priority.

        A checkpoint when it has to wait. Cancelled while waiting, it takes
        nothing.
        """
        if self.acquire_nowait():
            return
        # release() transfers its slot to us before waking us: no count change.
        await self._lots[priority].park()

    def release(self) -> None:
        """Give a slot back, to the best waiter if there is one."""
        for lot in reversed(self._lots):
            if lot:
                lot.unpark()
                return
        self._borrowed -= 1

    def statistics(self) -> LimiterStatistics:
        """Return the current counts."""
        high, mid, low = (len(lot) for lot in reversed(self._lots))
        return LimiterStatistics(self._total, self._borrowed, (high, mid, low))
