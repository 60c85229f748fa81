"""Metrics in bounded memory: summaries of durations and sliding-window rates.

The hot path of a runner only appends a float to a list per task and reads the
clock once; everything else happens when a chunk of samples is folded into a
histogram, in C: the chunk is sorted, and one ``bisect`` per histogram bucket
it touches counts its members. Folding a chunk of 4096 samples costs about as
much as 40 Python-level histogram updates would.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from typing import Final, final

import attrs

#: Histogram bucket bounds: 16 per octave from 1 ns to about 35 years, so an
#: estimated quantile is within 2.2% of a value the summary has seen.
_SUB: Final = 16
_BOUNDS: Final = tuple(1e-9 * 2 ** (i / _SUB) for i in range(60 * _SUB))
#: Samples held before they are folded into the histogram.
FOLD_AT: Final = 4096
#: Rates cover this many seconds.
RATE_WINDOW: Final = 10.0
#: The shortest span a rate is averaged over, so that a burst at start-up does
#: not read as an infinite rate.
_MIN_RATE_SPAN: Final = 1.0
_SNAPSHOT_EVERY: Final = 0.1


@final
@attrs.frozen
class Summary:
    """Statistics of a series of durations, in seconds.

    ``count``, ``mean``, ``min`` and ``max`` are exact. The percentiles come
    from a histogram with 16 buckets per octave: each is within about 2% of a
    value the series really contains, and never outside ``[min, max]``. An
    empty summary has ``count=0`` and zeros everywhere.
    """

    count: int = 0
    mean: float = 0.0
    min: float = 0.0
    max: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0


@final
@attrs.frozen(kw_only=True)
class RunnerMetrics:
    """A snapshot of a runner's (or a pool's) metrics, from `TaskRunner.metrics`.

    Rates are per second over the last 10 seconds (or the runner's life, if it
    is shorter, but at least one second). ``completion_rate`` counts tasks that
    ended SUCCEEDED or FAILED.
    """

    arrival_rate: float
    completion_rate: float
    #: Time from being queued (or falling due) to starting.
    wait_time: Summary
    #: Time from starting to ending, over all attempts and backoff waits.
    run_time: Summary
    succeeded: int
    failed: int
    #: Attempts that were retries (not first attempts).
    retries: int
    #: Attempts that ran past their timeout.
    timeouts: int
    cancelled: int
    skipped: int
    #: Posts refused by a full bounded runner (`QueueFullError`).
    rejected: int
    #: Results a subscriber missed because its buffer was full.
    dropped_results: int


@final
class DurationRecorder:
    """Collects durations; summarises them in bounded memory.

    ``samples`` is public to the package so that hot loops can bind
    ``samples.append`` once; call `maybe_fold` now and then to bound it.
    """

    __slots__ = ("_buckets", "_count", "_max", "_min", "_sum", "samples")

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._buckets = [0] * (len(_BOUNDS) + 1)
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = 0.0

    def maybe_fold(self) -> None:
        """Fold the held samples if there are enough of them."""
        if len(self.samples) >= FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Fold every held sample into the histogram."""
        chunk = self.samples
        if not chunk:
            return
        # The list object is shared with hot loops: empty it in place.
        chunk = sorted(chunk)
        self.samples.clear()
        count = len(chunk)
        self._count += count
        self._sum += math.fsum(chunk)
        self._min = min(self._min, chunk[0])
        self._max = max(self._max, chunk[-1])
        buckets = self._buckets
        bounds = _BOUNDS
        top = len(bounds)
        pos = 0
        while pos < count:
            index = bisect.bisect_right(bounds, chunk[pos])
            end = (
                count if index == top else bisect.bisect_left(chunk, bounds[index], pos)
            )
            buckets[index] += end - pos
            pos = end

    def summary(self) -> Summary:
        """Return the summary of every duration recorded so far."""
        self.fold()
        count = self._count
        if not count:
            return Summary()
        return Summary(
            count=count,
            mean=self._sum / count,
            min=self._min,
            max=self._max,
            p50=self._quantile(0.50),
            p95=self._quantile(0.95),
            p99=self._quantile(0.99),
        )

    def _quantile(self, q: float) -> float:
        rank = max(1, math.ceil(q * self._count))
        index = bisect.bisect_left(list(itertools.accumulate(self._buckets)), rank)
        low = _BOUNDS[index - 1] if index > 0 else 0.0
        high = _BOUNDS[index] if index < len(_BOUNDS) else self._max
        estimate = math.sqrt(low * high) if low > 0 else high / 2
        return min(self._max, max(self._min, estimate))


@final
class RateMeter:
    """Rates of two cumulative counters over a sliding window.

    It keeps snapshots ``(time, arrivals, completions)`` at least 0.1 s apart
    and interpolates between them, so its memory is bounded by
    ``RATE_WINDOW / 0.1`` snapshots whatever the load.
    """

    __slots__ = ("_born", "_snapshots")

    def __init__(self, now: float) -> None:
        self._born = now
        self._snapshots: deque[tuple[float, int, int]] = deque([(now, 0, 0)])

    def note(self, now: float, arrivals: int, completions: int) -> None:
        """Record the counters at ``now`` if the last snapshot is old enough."""
        snapshots = self._snapshots
        if now - snapshots[-1][0] < _SNAPSHOT_EVERY:
            return
        snapshots.append((now, arrivals, completions))
        while len(snapshots) > 2 and snapshots[1][0] <= now - RATE_WINDOW:
            snapshots.popleft()

    def rates(self, now: float, arrivals: int, completions: int) -> tuple[float, float]:
        """Return ``(arrival_rate, completion_rate)`` per second at ``now``."""
        self.note(now, arrivals, completions)
        start = max(self._born, now - RATE_WINDOW)
        past_arrivals, past_completions = self._at(start)
        span = max(now - start, _MIN_RATE_SPAN)
        return (arrivals - past_arrivals) / span, (
            completions - past_completions
        ) / span

    def _at(self, when: float) -> tuple[float, float]:
        # The counters at time `when`, interpolated between the snapshots around it.
        before = self._snapshots[0]
        for after in self._snapshots:
            if after[0] >= when:
                if after[0] == before[0]:
                    return after[1], after[2]
                share = (when - before[0]) / (after[0] - before[0])
                return (
                    before[1] + share * (after[1] - before[1]),
                    before[2] + share * (after[2] - before[2]),
                )
            before = after
        return before[1], before[2]
