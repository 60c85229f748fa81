"""RateLimit: a token bucket on the trio clock."""

from __future__ import annotations

import math
from typing import final

import attrs
import trio


def _check_rate(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    del instance, attribute
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"per_second must be a number, not {value!r}")
    if not value > 0 or math.isinf(value):
        raise ValueError(f"per_second must be a finite number > 0, got {value!r}")


def _check_burst(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    del instance, attribute
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"burst must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"burst must be >= 1, got {value!r}")


@final
@attrs.frozen
class RateLimit:
    """At most ``per_second`` attempts per second, with bursts of ``burst``.

    A token bucket that starts full with ``burst`` tokens and refills at
    ``per_second``; each attempt of a task takes one token. So N attempts
    posted at once take ``(N - burst) / per_second`` seconds to start. A task
    waiting for a token holds no worker slot of the scheduler; on a sequenced
    runner it still holds the sequence, so FIFO order is kept.

    Args:
        per_second: the sustained rate (> 0).
        burst: how many attempts may start at once after a quiet spell (>= 1).
    """

    per_second: float = attrs.field(validator=_check_rate)
    burst: int = attrs.field(default=1, validator=_check_burst)


@final
class TokenBucket:
    """The state of a `RateLimit`, shared by the tasks of one runner.

    It is the generic cell rate algorithm: ``_tat`` is the theoretical arrival
    time of the next token. Each caller reserves its slot when it asks, so the
    tokens go out in FIFO order and each waiter sleeps once, until an absolute
    deadline.
    """

    __slots__ = ("_interval", "_tat", "_tolerance")

    def __init__(self, limit: RateLimit) -> None:
        self._interval = 1.0 / limit.per_second
        self._tolerance = (limit.burst - 1) * self._interval
        self._tat = -math.inf

    async def take(self) -> None:
        """Take a token, waiting until one is due. Always a checkpoint.

        Cancelling the wait gives the reserved token back when no later caller
        has reserved one behind it.
        """
        now = trio.current_time()
        tat = max(self._tat, now)
        self._tat = tat + self._interval
        allowed_at = tat - self._tolerance
        if allowed_at <= now:
            await trio.lowlevel.checkpoint()
            return
        try:
            await trio.sleep_until(allowed_at)
        except trio.Cancelled:
            if self._tat == tat + self._interval:
                self._tat = tat
            raise
