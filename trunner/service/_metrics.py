"""``GET /metrics``: the manager's runners through `trunner.contrib.prometheus`.

Adds the jobs of the store by state and the event stream's figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..contrib.prometheus import TrunnerCollector

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from ..jobs import JobManager, JobState
    from ._events import EventBroker


class _ServiceCollector:
    """The figures of one scrape: job counts by state, event-stream counters."""

    def __init__(self, counts: dict[JobState, int], broker: EventBroker) -> None:
        self._counts = counts
        self._broker = broker

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "trunner_jobs", "Jobs in the store, by state.", labels=["state"]
        )
        for state, count in sorted(self._counts.items(), key=lambda i: i[0].value):
            jobs.add_metric([state.value], count)
        yield jobs
        yield GaugeMetricFamily(
            "trunner_service_event_clients",
            "Clients connected to GET /events.",
            value=self._broker.subscribers,
        )
        yield CounterMetricFamily(
            "trunner_service_events",
            "Job change events published.",
            value=self._broker.published,
        )
        yield CounterMetricFamily(
            "trunner_service_event_clients_dropped",
            "Event clients disconnected for lagging behind.",
            value=self._broker.dropped,
        )


def metrics_text(
    manager: JobManager, counts: dict[JobState, int], broker: EventBroker
) -> bytes:
    """Return the Prometheus text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    TrunnerCollector(manager.scheduler, registry=registry)
    registry.register(_ServiceCollector(counts, broker))  # pyright: ignore[reportArgumentType]  # a duck-typed collector, as prometheus_client documents
    return generate_latest(registry)
