"""Burst scaling: one more worker while calls pile up faster than they finish."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import attrs
import trio

from ._records import BURST_WINDOW

if TYPE_CHECKING:
    from ._handoff import Handoff
    from ._records import PoolLedger
    from ._workers import Workers


@attrs.define(eq=False)
class BurstScaler:
    """The task that adds a burst worker each ``interval`` while calls pile up.

    A tick adds one when calls wait in the queue, arrivals over the last
    `BURST_WINDOW` seconds are at least completions, the pool has fewer than
    ``max_workers`` workers, and no burst worker failed to make a resource
    recently (`Workers.burst_not_before`).
    """

    ledger: PoolLedger
    handoff: Handoff
    workers: Workers
    max_workers: int
    interval: float
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    async def run(self) -> None:
        """Scale until `stop` is called; run it in the pool's nursery."""
        ledger, workers = self.ledger, self.workers
        interval = self.interval
        start = ledger.now()
        # (time, arrivals, completions) at each tick of the last second or so.
        samples: deque[tuple[float, int, int]] = deque([(start, 0, 0)])
        tick = 0
        with self.scope:
            while True:
                tick += 1
                await trio.sleep_until(start + tick * interval)
                now = ledger.now()
                arrivals = ledger.arrivals
                completions = ledger.succeeded + ledger.failed
                while len(samples) > 1 and samples[1][0] <= now - BURST_WINDOW:
                    samples.popleft()
                _, past_arrivals, past_completions = samples[0]
                samples.append((now, arrivals, completions))
                if (
                    self.handoff.queued
                    and arrivals - past_arrivals >= completions - past_completions
                    and workers.count < self.max_workers
                    and now >= workers.burst_not_before
                ):
                    workers.spawn(burst=True)

    def stop(self) -> None:
        """Stop scaling (the pool is closing). Idempotent."""
        self.scope.cancel()
