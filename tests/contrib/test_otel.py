from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

import trunner
from trunner.contrib._runner_set import RunnerSet
from trunner.contrib.otel import (
    DURATION_BUCKETS,
    TrunnerInstruments,
    histogram_hooks,
    tracing_middleware,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.metrics import Meter
    from opentelemetry.sdk.trace import ReadableSpan

Key = tuple[str, frozenset[tuple[str, object]]]


def key(name: str, runner: str, **attributes: object) -> Key:
    return name, frozenset({"trunner.runner.name": runner, **attributes}.items())


def numbers(reader: InMemoryMetricReader) -> dict[Key, float]:
    data = reader.get_metrics_data()
    found: dict[Key, float] = {}
    if data is None:  # nothing observed at all
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if isinstance(point, NumberDataPoint):
                        attributes = frozenset((point.attributes or {}).items())
                        found[metric.name, attributes] = point.value
    return found


def histograms(reader: InMemoryMetricReader) -> dict[Key, HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[Key, HistogramDataPoint] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if isinstance(point, HistogramDataPoint):
                        attributes = frozenset((point.attributes or {}).items())
                        found[metric.name, attributes] = point
    return found


@pytest.fixture
def otel() -> Iterator[tuple[Meter, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider.get_meter("test"), reader
    provider.shutdown()


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def ignore(handle: trunner.TaskHandle[object], error: BaseException) -> None:
    del handle, error


async def test_instruments_report_counters_gauges_and_quantiles(
    autojump_clock: trio.testing.MockClock,
    otel: tuple[Meter, InMemoryMetricReader],
) -> None:
    meter, reader = otel

    async def fail() -> None:
        raise ValueError("no")

    async with trunner.open_parallel_runner(
        max_concurrency=1, name="x", on_error=ignore
    ) as runner:
        TrunnerInstruments(runner, meter=meter)
        for seconds in (1, 2, 3):
            runner.post_task(trio.sleep, seconds)
        runner.post_task(fail)
        runner.post_task(trio.sleep, 10)
        runner.post_delayed_task(trio.sleep, 1, delay=100)
        await trio.sleep(6.5)

        values = numbers(reader)

    assert values[key("trunner.tasks.succeeded", "x")] == 3
    assert values[key("trunner.tasks.failed", "x")] == 1
    assert values[key("trunner.tasks.cancelled", "x")] == 0
    assert values[key("trunner.tasks.running", "x")] == 1
    assert values[key("trunner.tasks.pending", "x")] == 0
    assert values[key("trunner.tasks.delayed", "x")] == 1
    assert values[key("trunner.task.run_time.count", "x")] == 4
    assert values[key("trunner.task.run_time.sum", "x")] == 6
    assert values[key("trunner.task.run_time.quantile", "x", quantile=0.0)] == 0
    assert values[key("trunner.task.run_time.quantile", "x", quantile=1.0)] == 3
    # Waits: 0, 1, 3, 6 and 6 seconds.
    assert values[key("trunner.task.wait_time.quantile", "x", quantile=1.0)] == 6
    assert values[key("trunner.task.wait_time.sum", "x")] == 16


async def test_instruments_report_no_quantile_before_the_first_task(
    otel: tuple[Meter, InMemoryMetricReader],
) -> None:
    meter, reader = otel
    async with trunner.open_sequenced_runner(name="idle") as runner:
        TrunnerInstruments(runner, meter=meter, prefix="app")

        values = numbers(reader)

    assert values[key("app.task.run_time.count", "idle")] == 0
    assert values[key("app.tasks.pending", "idle")] == 0
    assert not [name for name, _ in values if name.endswith(".quantile")]


async def test_instruments_read_the_runners_once_per_collection(
    otel: tuple[Meter, InMemoryMetricReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    meter, reader = otel
    reads = 0
    snapshot = RunnerSet.snapshot

    def counting(self: RunnerSet) -> object:
        nonlocal reads
        reads += 1
        return snapshot(self)

    monkeypatch.setattr(RunnerSet, "snapshot", counting)
    async with trunner.open_sequenced_runner(name="once") as runner:
        TrunnerInstruments(runner, meter=meter)
        numbers(reader)
        assert reads == 1

        await runner.run(trio.sleep, 0)
        values = numbers(reader)

        assert reads == 2
        assert values[key("trunner.tasks.succeeded", "once")] == 1


async def test_instruments_follow_a_scheduler_and_collect_from_a_thread(
    otel: tuple[Meter, InMemoryMetricReader],
) -> None:
    meter, reader = otel
    async with trunner.open_scheduler() as scheduler:
        instruments = TrunnerInstruments(meter=meter)
        instruments.add(scheduler)
        runner = scheduler.create_sequenced_runner(name="late")
        await runner.run(trio.sleep, 0)
        threads: list[threading.Thread] = []

        def collect() -> dict[Key, float]:
            threads.append(threading.current_thread())
            return numbers(reader)

        values = await trio.to_thread.run_sync(collect)
        assert threads[0] is not threading.main_thread()
        assert values[key("trunner.tasks.succeeded", "late")] == 1

        instruments.remove(scheduler)
        assert key("trunner.tasks.succeeded", "late") not in numbers(reader)


async def test_histogram_hooks_record_each_started_task(
    autojump_clock: trio.testing.MockClock,
    otel: tuple[Meter, InMemoryMetricReader],
) -> None:
    meter, reader = otel

    async def fail() -> None:
        await trio.sleep(1)
        raise ValueError("no")

    async with trunner.open_scheduler(hooks=histogram_hooks(meter)) as scheduler:
        runner = scheduler.create_sequenced_runner(name="h", on_error=ignore)
        for seconds in (1, 2, 3):
            runner.post_task(trio.sleep, seconds)
        runner.post_task(fail)
        cancelled = runner.post_delayed_task(trio.sleep, 1, delay=100)
        await runner.wait_idle()
        cancelled.cancel()

        points = histograms(reader)

    ok = {"trunner.task.state": "succeeded"}
    failed = {"trunner.task.state": "failed"}
    run_ok = points[key("trunner.task.run_time", "h", **ok)]
    assert run_ok.count == 3
    assert run_ok.sum == 6
    assert run_ok.min == 1
    assert run_ok.max == 3
    assert tuple(run_ok.explicit_bounds) == DURATION_BUCKETS
    wait_failed = points[key("trunner.task.wait_time", "h", **failed)]
    assert wait_failed.count == 1
    assert wait_failed.sum == 6
    # The cancelled delayed task never started: not recorded.
    assert len(points) == 4


async def test_tracing_middleware_spans_each_attempt(
    autojump_clock: trio.testing.MockClock,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        with tracer.start_as_current_span("inner"):
            await trio.sleep(1)
        if calls < 3:
            raise OSError(f"failure {calls}")
        return "ok"

    retry = trunner.RetryPolicy(initial_delay=1, jitter=0)
    async with trunner.open_sequenced_runner(
        name="traced", middleware=[tracing_middleware(tracer)]
    ) as runner:
        handle = runner.post_task(flaky, retry=retry, name="flaky")

        assert await handle.wait() == "ok"

    finished = exporter.get_finished_spans()
    attempts = [s for s in finished if s.name == "flaky"]
    inner = [s for s in finished if s.name == "inner"]
    assert [attribute(s, "trunner.task.attempt") for s in attempts] == [1, 2, 3]
    assert {attribute(s, "trunner.runner.name") for s in attempts} == {"traced"}
    assert {attribute(s, "trunner.task.id") for s in attempts} == {handle.id}
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert attempts[0].status.description == "OSError: failure 1"
    assert [event.name for event in attempts[0].events] == ["exception"]
    assert not attempts[2].events
    # Each attempt's inner span is its child.
    assert [parent_id(s) for s in inner] == [span_id(s) for s in attempts]


async def test_tracing_middleware_marks_a_timed_out_attempt_cancelled(
    autojump_clock: trio.testing.MockClock,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    async with trunner.open_sequenced_runner(
        middleware=[tracing_middleware(provider.get_tracer("test"))], on_error=ignore
    ) as runner:
        handle = runner.post_task(trio.sleep, 10, timeout=2, name="slow")

        with pytest.raises(trunner.TaskTimeoutError):
            await handle.wait()

    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "cancelled"
    assert not span.events
    assert span.end_time is not None
    assert span.start_time is not None


async def test_tracing_middleware_records_an_interrupt_and_reraises(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans

    async def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        async with trunner.open_sequenced_runner(
            middleware=[tracing_middleware(provider.get_tracer("test"))]
        ) as runner:
            await runner.run(interrupt)

    (span,) = exporter.get_finished_spans()
    assert span.status.description == "KeyboardInterrupt"


async def test_tracing_middleware_uses_the_global_tracer_by_default() -> None:
    async with trunner.open_sequenced_runner(
        middleware=[tracing_middleware()]
    ) as runner:
        await runner.run(trio.sleep, 0)

    assert runner.statistics().succeeded == 1


def attribute(span: ReadableSpan, name: str) -> object:
    assert span.attributes is not None
    return span.attributes[name]


def span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def parent_id(span: ReadableSpan) -> int:
    assert span.parent is not None
    return span.parent.span_id


async def test_instruments_take_sources_first_and_the_meter_as_a_keyword(
    otel: tuple[Meter, InMemoryMetricReader],
) -> None:
    # Issue 8: TrunnerCollector(*sources, registry=) and
    # TrunnerInstruments(meter, *sources) took their arguments in opposite orders.
    meter, _ = otel
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(TypeError, match="required keyword-only argument: 'meter'"):
            TrunnerInstruments(meter, runner)  # type: ignore[arg-type, call-arg]  # the old order, on purpose

        TrunnerInstruments(runner, meter=meter)


@pytest.mark.parametrize(
    ("module_name", "api"),
    [
        (
            "trunner.contrib.otel",
            {
                "DURATION_BUCKETS",
                "RUNNER_ATTRIBUTE",
                "TrunnerInstruments",
                "histogram_hooks",
                "tracing_middleware",
            },
        ),
        ("trunner.contrib.prometheus", {"TrunnerCollector"}),
        ("trunner.contrib.middleware", {"logging_middleware"}),
    ],
)
def test_contrib_modules_export_only_their_api(module_name: str, api: set[str]) -> None:
    # Issue 8: trunner.contrib.otel exported Final, trio and other helpers.
    module = importlib.import_module(module_name)
    public = {
        name
        for name in vars(module)
        if not name.startswith("_") and name != "annotations"
    }

    assert public == api
    assert set(module.__all__) == api
