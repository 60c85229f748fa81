"""Export runner metrics to Prometheus: a collector for ``prometheus_client``.

Install with ``pip install trunner[prometheus]``. Register a `TrunnerCollector`
with a ``prometheus_client.CollectorRegistry`` and every scrape reads the
current figures of its runners::

    registry = prometheus_client.CollectorRegistry()
    async with trunner.open_scheduler() as scheduler:
        TrunnerCollector(scheduler, registry=registry)
        prometheus_client.start_http_server(9000, registry=registry)
        ...

Each series carries a ``runner`` label with the runner's name (see
`TrunnerCollector` for the metric names).

**Why summaries.** trunner keeps each runner's wait and run times as a
`trunner.Summary`: exact count, mean, min and max, and the 50th, 95th and
99th percentiles of a bounded in-memory histogram. It does not keep
Prometheus-style cumulative buckets, so a histogram could only be faked. The
collector exports the summary as it is: a Prometheus summary whose
``quantile`` samples are ``0`` (the exact min), ``0.5``, ``0.95``, ``0.99``
and ``1`` (the exact max), plus ``_count`` and ``_sum``. As with every
Prometheus summary, quantiles cannot be aggregated across runners; unlike the
usual client-side summary they cover the runner's whole life, not a sliding
time window. Use ``rate(..._sum[5m]) / rate(..._count[5m])`` for a recent
mean. A runner that has not run a task yet reports ``NaN`` quantiles. For
aggregatable buckets, record durations yourself from a `trunner.TaskHooks`
``on_finish`` hook into a ``prometheus_client.Histogram``.
"""

from __future__ import annotations

# Imports under private names: the module's public names are its API (__all__).
import math as _math
import typing as _typing
from typing import Final as _Final
from typing import final as _final

from .._util import missing_extra as _missing_extra

try:
    from prometheus_client.core import REGISTRY as _REGISTRY
    from prometheus_client.core import CounterMetricFamily as _CounterMetricFamily
    from prometheus_client.core import GaugeMetricFamily as _GaugeMetricFamily
    from prometheus_client.core import SummaryMetricFamily as _SummaryMetricFamily
    from prometheus_client.samples import Sample as _Sample
except ModuleNotFoundError as _error:  # pragma: no cover  # tested in a subprocess
    raise _missing_extra(_error, "prometheus", "trunner.contrib.prometheus") from None

from ._runner_set import COUNTERS as _COUNTERS
from ._runner_set import GAUGES as _GAUGES
from ._runner_set import RunnerSet as _RunnerSet

__all__ = ["TrunnerCollector"]

if _typing.TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from .. import Scheduler, Summary, TaskRunner
    from ._runner_set import RunnerSnapshot as _RunnerSnapshot

#: The quantiles exported from a `trunner.Summary`, with how to read each one.
_QUANTILES: _Final = ("0", "0.5", "0.95", "0.99", "1")

_SUMMARIES: _Final = (
    (
        "task_wait_seconds",
        "Time from being queued (or falling due) to starting, over the "
        "runner's life; quantile 0 is the min and 1 the max.",
        "wait_time",
    ),
    (
        "task_run_seconds",
        "Time from starting to ending, all attempts and backoff included, over "
        "the runner's life; quantile 0 is the min and 1 the max.",
        "run_time",
    ),
)


def _metric_name(name: str) -> str:
    # The shared tables name metrics as OpenTelemetry does, with dots.
    return name.replace(".", "_")


def _quantiles(summary: Summary) -> tuple[float, ...]:
    if not summary.count:
        return (_math.nan,) * len(_QUANTILES)
    return (summary.min, summary.p50, summary.p95, summary.p99, summary.max)


@_final
class TrunnerCollector:
    """A Prometheus collector for the metrics of runners, read at each scrape.

    Give it runners, or schedulers to export every runner they have (runners
    made later included), now or later with `add`. It reads each runner's
    `~trunner.TaskRunner.metrics` and `~trunner.TaskRunner.statistics` on the
    runner's Trio thread: a scrape from another thread (``start_http_server``
    serves from its own threads) waits until the Trio thread has run the read.
    A Trio thread that does not answer within 5 seconds is taken as blocked:
    the scrape then reports its runners' previous values and logs a warning.

    Every series is labelled ``runner="<name>"``; with the default namespace:

    * counters ``trunner_tasks_succeeded_total``, ``trunner_tasks_failed_total``,
      ``trunner_tasks_cancelled_total``, ``trunner_tasks_skipped_total``,
      ``trunner_tasks_rejected_total``, ``trunner_task_retries_total``,
      ``trunner_task_timeouts_total``, ``trunner_results_dropped_total``;
    * gauges ``trunner_tasks_pending``, ``trunner_tasks_running``,
      ``trunner_tasks_delayed`` (from `~trunner.RunnerStatistics`);
    * summaries ``trunner_task_wait_seconds`` and ``trunner_task_run_seconds``,
      with quantiles 0 (min), 0.5, 0.95, 0.99 and 1 (max); see the module
      documentation for why these are summaries.

    Rates are left to PromQL's ``rate()`` over the counters.

    **Closed runners.** A runner is exported until it has finished closing;
    the first scrape after that exports its final values, and later scrapes
    leave it out (its series go stale). A runner that opens and closes between
    two scrapes of a scheduler is never seen. Runners should have unique
    names: of two runners with the same name only the first is exported, and
    a warning is logged once (logger ``trunner.contrib``).

    Args:
        *sources: `trunner.TaskRunner` and `trunner.Scheduler` objects.
        namespace: the prefix of every metric name.
        registry: the registry to register with (default: ``prometheus_client``'s
            global one); None registers nowhere.

    Raises:
        TypeError: if a source is neither a runner nor a scheduler.
        RuntimeError: if sources are given outside the Trio thread that runs
            them.
    """

    def __init__(
        self,
        *sources: TaskRunner | Scheduler,
        namespace: str = "trunner",
        registry: CollectorRegistry | None = _REGISTRY,
    ) -> None:
        self._namespace = namespace
        self._runners = _RunnerSet(sources)
        if registry is not None:
            registry.register(self)

    def add(self, source: TaskRunner | Scheduler) -> None:
        """Export ``source`` too: a runner, or every runner of a scheduler.

        Call it from the Trio thread that runs ``source``.

        Raises:
            TypeError: if ``source`` is neither a runner nor a scheduler.
            RuntimeError: outside a Trio thread.
        """
        self._runners.add(source)

    def remove(self, source: TaskRunner | Scheduler) -> None:
        """Stop exporting ``source``; unknown sources are ignored.

        A runner exported through a scheduler is left out only when the
        scheduler is removed.
        """
        self._runners.remove(source)

    def describe(self) -> Iterator[Metric]:
        """Yield the metric families without samples, for registration checks."""
        return self._families([])

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families with the current values of every runner.

        Called by ``prometheus_client`` at each scrape, from any thread.
        """
        return self._families(self._runners.snapshot())

    def _families(self, snapshots: list[_RunnerSnapshot]) -> Iterator[Metric]:
        prefix = f"{self._namespace}_" if self._namespace else ""
        for name, _unit, documentation, field in _COUNTERS:
            counter = _CounterMetricFamily(
                prefix + _metric_name(name), documentation, labels=["runner"]
            )
            for snapshot in snapshots:
                value: int = getattr(snapshot.metrics, field)
                counter.add_metric([snapshot.name], value)
            yield counter
        for name, documentation, field in _GAUGES:
            gauge = _GaugeMetricFamily(
                prefix + _metric_name(name), documentation, labels=["runner"]
            )
            for snapshot in snapshots:
                current: int = getattr(snapshot.statistics, field)
                gauge.add_metric([snapshot.name], current)
            yield gauge
        for name, documentation, field in _SUMMARIES:
            family = _SummaryMetricFamily(
                prefix + name, documentation, labels=["runner"], unit="seconds"
            )
            for snapshot in snapshots:
                summary: Summary = getattr(snapshot.metrics, field)
                for quantile, estimate in zip(
                    _QUANTILES, _quantiles(summary), strict=True
                ):
                    # SummaryMetricFamily.add_metric writes only _count and _sum.
                    family.samples.append(
                        _Sample(
                            family.name,
                            {"runner": snapshot.name, "quantile": quantile},
                            estimate,
                        )
                    )
                family.add_metric(
                    [snapshot.name], summary.count, summary.mean * summary.count
                )
            yield family
