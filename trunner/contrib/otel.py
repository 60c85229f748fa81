"""OpenTelemetry for trunner: metric instruments, histogram hooks, tracing.

Install with ``pip install trunner[otel]``; only ``opentelemetry-api`` is
needed at run time, the application brings the SDK and its exporters.

* `TrunnerInstruments` registers observable instruments on a ``Meter`` that
  report the metrics trunner already keeps for each runner. They cost nothing
  per task and work for runners that already exist.
* `histogram_hooks` records each task's wait and run time into real
  OpenTelemetry histograms through an ``on_finish`` hook: aggregatable across
  runners and processes, at the price of two recordings per task, for the
  runners (or the scheduler) that were opened with the hooks.
* `tracing_middleware` wraps each attempt of a task in a span.

**Why quantile gauges.** trunner keeps each runner's wait and run times as a
`trunner.Summary` (exact count, mean, min and max; percentiles from a bounded
histogram), not as OpenTelemetry buckets, and the OpenTelemetry API has no
summary instrument. `TrunnerInstruments` therefore reports a summary as
what it is: an observable gauge per duration with a ``quantile`` attribute
(0 for the exact min, 0.5, 0.95, 0.99, and 1 for the exact max), plus
observable counters for its count and sum. The quantiles cover the runner's
whole life and cannot be averaged across runners; use `histogram_hooks` when
you need distributions you can aggregate.
"""

from __future__ import annotations

# Imports under private names: the module's public names are its API (__all__).
import threading as _threading
import typing as _typing
from typing import Final as _Final
from typing import final as _final

import trio as _trio

from .. import TaskHooks as _TaskHooks
from .._util import missing_extra as _missing_extra

try:
    from opentelemetry import trace as _trace
    from opentelemetry.metrics import CallbackOptions as _CallbackOptions
    from opentelemetry.metrics import Observation as _Observation
    from opentelemetry.trace import Status as _Status
    from opentelemetry.trace import StatusCode as _StatusCode
except ModuleNotFoundError as _error:  # pragma: no cover  # tested in a subprocess
    raise _missing_extra(_error, "otel", "trunner.contrib.otel") from None

from ._runner_set import COUNTERS as _COUNTERS
from ._runner_set import GAUGES as _GAUGES
from ._runner_set import RunnerSet as _RunnerSet

__all__ = [
    "DURATION_BUCKETS",
    "RUNNER_ATTRIBUTE",
    "TrunnerInstruments",
    "histogram_hooks",
    "tracing_middleware",
]

if _typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from opentelemetry.metrics import Meter

    from .. import Middleware, Scheduler, Summary, TaskHandle, TaskResult, TaskRunner
    from ._runner_set import RunnerSnapshot as _RunnerSnapshot

    _Measurement = tuple[float, dict[str, str | float]]
    _Extract = Callable[[_RunnerSnapshot], Iterable[_Measurement]]

#: The attribute that names the runner, on every measurement and span.
RUNNER_ATTRIBUTE: _Final = "trunner.runner.name"

#: Bucket bounds in seconds for the duration histograms, as the OpenTelemetry
#: semantic conventions advise for durations.
DURATION_BUCKETS: _Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

_DURATIONS: _Final = (
    ("task.wait_time", "from being queued (or falling due) to starting", "wait_time"),
    ("task.run_time", "from starting to ending, all attempts included", "run_time"),
)


def _quantiles(summary: Summary) -> tuple[tuple[float, float], ...]:
    return (
        (0.0, summary.min),
        (0.5, summary.p50),
        (0.95, summary.p95),
        (0.99, summary.p99),
        (1.0, summary.max),
    )


def _counter(field: str) -> _Extract:
    def extract(snapshot: _RunnerSnapshot) -> Iterable[_Measurement]:
        value: int = getattr(snapshot.metrics, field)
        return [(value, {RUNNER_ATTRIBUTE: snapshot.name})]

    return extract


def _statistic(field: str) -> _Extract:
    def extract(snapshot: _RunnerSnapshot) -> Iterable[_Measurement]:
        value: int = getattr(snapshot.statistics, field)
        return [(value, {RUNNER_ATTRIBUTE: snapshot.name})]

    return extract


def _summary_part(field: str, part: str) -> _Extract:
    def extract(snapshot: _RunnerSnapshot) -> Iterable[_Measurement]:
        summary: Summary = getattr(snapshot.metrics, field)
        attributes: dict[str, str | float] = {RUNNER_ATTRIBUTE: snapshot.name}
        if part == "count":
            return [(summary.count, attributes)]
        if part == "sum":
            return [(summary.mean * summary.count, attributes)]
        if not summary.count:
            return []  # no task yet: nothing to observe
        return [
            (value, attributes | {"quantile": quantile})
            for quantile, value in _quantiles(summary)
        ]

    return extract


@_final
class TrunnerInstruments:
    """Observable OpenTelemetry instruments for the metrics of runners.

    Give it runners, or schedulers to report every runner they have (runners
    made later included), now or later with `add`. The instruments are
    registered on ``meter`` at once, and read at each collection. With the
    default prefix, each measurement has the attribute ``trunner.runner.name``:

    * observable counters ``trunner.tasks.succeeded``, ``trunner.tasks.failed``,
      ``trunner.tasks.cancelled``, ``trunner.tasks.skipped``,
      ``trunner.tasks.rejected``, ``trunner.task.retries``,
      ``trunner.task.timeouts``, ``trunner.results.dropped``;
    * observable up-down counters ``trunner.tasks.pending``,
      ``trunner.tasks.running``, ``trunner.tasks.delayed`` (they add up across
      runners, hence not gauges);
    * for ``wait_time`` and ``run_time``: an observable gauge
      ``trunner.task.<which>.quantile`` in seconds with a ``quantile``
      attribute (0 is the min, 1 the max; nothing before the first task), and
      observable counters ``trunner.task.<which>.count`` and
      ``trunner.task.<which>.sum`` (see the module documentation).

    One collection reads every runner once, on its Trio thread, and all the
    instruments report that same reading. A collection from another thread,
    such as a periodic reader's, waits for the Trio thread to run the read; if
    it does not answer within 5 seconds, the previous reading is reported and
    a warning logged. So do not call blocking SDK methods that wait for a
    collection (``MeterProvider.force_flush``, ``shutdown``) on the Trio thread
    while the run is alive: each would stall for those 5 seconds. Call them
    through `trio.to_thread.run_sync`, or after `trio.run` has returned.
    Closed runners are handled as by `trunner.contrib.prometheus.TrunnerCollector`:
    the first collection after a runner has finished closing reports its final
    values, later ones leave it out. Of two runners with the same name, only the
    first is reported.

    Args:
        *sources: `trunner.TaskRunner` and `trunner.Scheduler` objects.
        meter: the meter to register the instruments on (a keyword, as
            `~trunner.contrib.prometheus.TrunnerCollector` takes ``registry=``).
        prefix: the first part of every instrument name.

    .. versionchanged:: 0.1
       The meter is the keyword ``meter=``, after the sources; it was the first
       positional argument.

    Raises:
        TypeError: if a source is neither a runner nor a scheduler.
        RuntimeError: if sources are given outside the Trio thread that runs
            them.
    """

    def __init__(
        self,
        *sources: TaskRunner | Scheduler,
        meter: Meter,
        prefix: str = "trunner",
    ) -> None:
        self._runners = _RunnerSet(sources)
        self._lock = _threading.Lock()
        self._snapshots: list[_RunnerSnapshot] = []
        # A reading serves one collection: an instrument that has already
        # reported the current reading asks for a new one, so that the first
        # callback of each collection reads, whatever order the SDK calls in.
        self._generation = 0
        self._consumed: dict[str, int] = {}
        start = f"{prefix}." if prefix else ""
        for name, unit, description, field in _COUNTERS:
            meter.create_observable_counter(
                start + name,
                [self._callback(start + name, _counter(field))],
                unit=unit,
                description=description,
            )
        for name, description, field in _GAUGES:
            meter.create_observable_up_down_counter(
                start + name,
                [self._callback(start + name, _statistic(field))],
                unit="{task}",
                description=description,
            )
        for name, what, field in _DURATIONS:
            quantile = f"{start}{name}.quantile"
            meter.create_observable_gauge(
                quantile,
                [self._callback(quantile, _summary_part(field, "quantile"))],
                unit="s",
                description=f"Quantiles of the time {what}, over the runner's life; "
                "quantile 0 is the min and 1 the max.",
            )
            count = f"{start}{name}.count"
            meter.create_observable_counter(
                count,
                [self._callback(count, _summary_part(field, "count"))],
                unit="{task}",
                description=f"Tasks whose time {what} was measured.",
            )
            total = f"{start}{name}.sum"
            meter.create_observable_counter(
                total,
                [self._callback(total, _summary_part(field, "sum"))],
                unit="s",
                description=f"Total time {what}.",
            )

    def add(self, source: TaskRunner | Scheduler) -> None:
        """Report on ``source`` too: a runner, or every runner of a scheduler.

        Call it from the Trio thread that runs ``source``.

        Raises:
            TypeError: if ``source`` is neither a runner nor a scheduler.
            RuntimeError: outside a Trio thread.
        """
        self._runners.add(source)

    def remove(self, source: TaskRunner | Scheduler) -> None:
        """Stop reporting on ``source``; unknown sources are ignored."""
        self._runners.remove(source)

    def _callback(
        self, key: str, extract: _Extract
    ) -> Callable[[_CallbackOptions], Iterable[_Observation]]:
        self._consumed[key] = self._generation

        def observe(options: _CallbackOptions) -> Iterable[_Observation]:
            del options
            return [
                _Observation(value, attributes)
                for snapshot in self._reading(key)
                for value, attributes in extract(snapshot)
            ]

        return observe

    def _reading(self, key: str) -> list[_RunnerSnapshot]:
        with self._lock:
            stale = self._consumed.get(key) == self._generation
        if stale:
            # Read without the lock: the read may wait for the Trio thread.
            fresh = self._runners.snapshot()
            with self._lock:
                self._snapshots = fresh
                self._generation += 1
        with self._lock:
            self._consumed[key] = self._generation
            return self._snapshots


def histogram_hooks(meter: Meter, *, prefix: str = "trunner") -> _TaskHooks:
    """Make hooks that record each task's wait and run time in histograms.

    Pass the result as ``hooks=`` to `trunner.open_scheduler` (every task of
    every runner) or to a runner. When a task that started ends, its
    ``on_finish`` hook records into two histograms, in seconds, with the
    attributes ``trunner.runner.name`` and ``trunner.task.state``
    (``succeeded``, ``failed`` or ``cancelled``):
    ``<prefix>.task.wait_time`` (from queued to started) and
    ``<prefix>.task.run_time`` (from started to ended, all attempts and
    backoff included). Tasks that never started are not recorded. The bucket
    bounds advised to the SDK are `DURATION_BUCKETS`.

    Unlike `TrunnerInstruments`, whose quantiles come from trunner's own
    summaries, these are real distributions: they aggregate across runners and
    processes. They cost two recordings per task.

    Args:
        meter: the meter to create the histograms on.
        prefix: the first part of the histogram names.

    Returns:
        `trunner.TaskHooks` with ``on_finish`` set.
    """
    start = f"{prefix}." if prefix else ""
    wait_time = meter.create_histogram(
        f"{start}task.wait_time",
        unit="s",
        description="Time from being queued (or falling due) to starting.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )
    run_time = meter.create_histogram(
        f"{start}task.run_time",
        unit="s",
        description="Time from starting to ending, all attempts included.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )

    def on_finish(task: TaskHandle[object], result: TaskResult) -> None:
        started = result.started_at
        if started is None:
            return
        attributes = {
            RUNNER_ATTRIBUTE: task.runner.name,
            "trunner.task.state": result.state.value,
        }
        wait_time.record(started - result.queued_at, attributes)
        run_time.record(result.finished_at - started, attributes)

    return _TaskHooks(on_finish=on_finish)


def tracing_middleware(tracer: _trace.Tracer | None = None) -> Middleware:
    """Make middleware that wraps each attempt of a task in a span.

    The span is named after the task and made current while the attempt runs,
    so spans the task starts are its children. Its parent is whatever span was
    current where the runner was opened: trunner does not carry the poster's
    context to the task. Attributes: ``trunner.runner.name``,
    ``trunner.task.id``, ``trunner.task.name`` and ``trunner.task.attempt``.

    An attempt that raises records the exception on its span and sets the
    status to ERROR; one that is cancelled (timed out, or its task cancelled)
    sets the status to ERROR with the description ``"cancelled"`` and no
    exception event. The middleware re-raises whatever the attempt raised.

    Args:
        tracer: the tracer to use (default: ``trace.get_tracer("trunner")``,
            which follows the global tracer provider).

    Returns:
        The middleware, for a runner's ``middleware=`` list.
    """
    tracer_ = _trace.get_tracer("trunner") if tracer is None else tracer

    async def trace_attempt(
        task: TaskHandle[object], call_next: Callable[[], Awaitable[object]]
    ) -> object:
        attributes: dict[str, str | int] = {
            RUNNER_ATTRIBUTE: task.runner.name,
            "trunner.task.id": task.id,
            "trunner.task.name": task.name,
            "trunner.task.attempt": task.attempts,
        }
        with tracer_.start_as_current_span(
            task.name,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await call_next()
            except Exception as error:
                span.record_exception(error)
                span.set_status(
                    _Status(_StatusCode.ERROR, f"{type(error).__name__}: {error}")
                )
                raise
            except BaseException as error:  # recorded, and re-raised
                if isinstance(error, _trio.Cancelled):
                    description = "cancelled"
                else:
                    description = type(error).__name__
                span.set_status(_Status(_StatusCode.ERROR, description))
                raise

    return trace_attempt
