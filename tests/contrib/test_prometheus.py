from __future__ import annotations

import math
import threading

import pytest
import trio
import trio.testing

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest

import trunner
from trunner.contrib.prometheus import TrunnerCollector


def sample(registry: CollectorRegistry, name: str, runner: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"runner": runner, **labels})
    assert value is not None, f"no sample {name} for runner {runner!r}"
    return value


def scrape(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    # One scrape: a runner that has finished closing appears in one scrape only.
    return {
        (s.name, s.labels["runner"]): s.value
        for family in registry.collect()
        for s in family.samples
        if "quantile" not in s.labels
    }


def exported_runners(registry: CollectorRegistry) -> set[str]:
    return {
        s.labels["runner"]
        for family in registry.collect()
        for s in family.samples
        if "runner" in s.labels
    }


def ignore(handle: trunner.TaskHandle[object], error: BaseException) -> None:
    del handle, error


async def test_collector_exports_counts_and_exact_summary_bounds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = CollectorRegistry()
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner(name="x")
        TrunnerCollector(runner, registry=registry)
        for seconds in (1, 2, 3):
            runner.post_task(trio.sleep, seconds)

        await runner.wait_idle()
        text = generate_latest(registry).decode()

    assert trio.current_time() == 6
    assert 'trunner_tasks_succeeded_total{runner="x"} 3.0' in text
    assert 'trunner_tasks_failed_total{runner="x"} 0.0' in text
    assert 'trunner_task_run_seconds_count{runner="x"} 3.0' in text
    assert 'trunner_task_run_seconds_sum{runner="x"} 6.0' in text
    assert 'trunner_task_run_seconds{quantile="0",runner="x"} 1.0' in text
    assert 'trunner_task_run_seconds{quantile="1",runner="x"} 3.0' in text
    # Waits: 0, 1 and 3 seconds in the sequence.
    assert 'trunner_task_wait_seconds{quantile="0",runner="x"} 0.0' in text
    assert 'trunner_task_wait_seconds{quantile="1",runner="x"} 3.0' in text
    assert 'trunner_task_wait_seconds_sum{runner="x"} 4.0' in text
    assert "# TYPE trunner_task_run_seconds summary" in text
    assert "# TYPE trunner_tasks_succeeded_total counter" in text


async def test_collector_summary_quantiles_are_within_the_summary_bounds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = CollectorRegistry()
    async with trunner.open_parallel_runner(max_concurrency=100, name="p") as runner:
        TrunnerCollector(runner, registry=registry)
        for seconds in range(1, 101):
            runner.post_task(trio.sleep, seconds)

        await runner.wait_idle()
        metrics = runner.metrics()

        def run_seconds(quantile: str) -> float:
            return sample(registry, "trunner_task_run_seconds", "p", quantile=quantile)

        assert run_seconds("0") == 1
        assert run_seconds("0.5") == metrics.run_time.p50
        assert run_seconds("0.95") == metrics.run_time.p95
        assert run_seconds("0.99") == metrics.run_time.p99
        assert run_seconds("1") == 100
        assert abs(run_seconds("0.5") - 50) <= 50 * 0.03
        assert sample(registry, "trunner_task_run_seconds_sum", "p") == 5050


async def test_collector_exports_every_counter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = CollectorRegistry()
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("once")

    async def fail() -> None:
        raise ValueError("no")

    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner(
            name="all", max_pending=2, on_error=ignore
        )
        TrunnerCollector(runner, registry=registry)
        retry = trunner.RetryPolicy(initial_delay=1, jitter=0)
        async with runner.subscribe_results(buffer=1):
            runner.post_task(flaky, retry=retry)
            runner.post_task(fail)
            with pytest.raises(trunner.QueueFullError):
                runner.post_task(fail)
            await runner.wait_idle()
            runner.post_task(trio.sleep, 10, timeout=2)
            slow = runner.post_task(trio.sleep, 10)
            await trio.testing.wait_all_tasks_blocked()
            runner.cancel(slow.id)
            await runner.wait_idle()
        runner.post_task(trio.sleep, 1)
        runner.post_task(trio.sleep, 1)  # skipped when the runner closes
        await trio.testing.wait_all_tasks_blocked()

        runner.shutdown()
        await trio.testing.wait_all_tasks_blocked()
        values = scrape(registry)

        def counter(name: str) -> float:
            return values[f"trunner_{name}_total", "all"]

        assert counter("tasks_succeeded") == 1
        assert counter("tasks_failed") == 2  # fail(), and the timed-out task
        assert counter("tasks_cancelled") == 2  # slow, and the shut-down sleep
        assert counter("tasks_skipped") == 1
        assert counter("tasks_rejected") == 1
        assert counter("task_retries") == 1
        assert counter("task_timeouts") == 1
        # A buffer of 1 for the 4 results while subscribed.
        assert counter("results_dropped") == 3


async def test_collector_exports_queue_gauges(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = CollectorRegistry()
    async with trunner.open_parallel_runner(max_concurrency=1, name="q") as runner:
        TrunnerCollector(runner, registry=registry)
        for _ in range(3):
            runner.post_task(trio.sleep, 1)
        runner.post_delayed_task(trio.sleep, 1, delay=5)
        await trio.testing.wait_all_tasks_blocked()

        assert sample(registry, "trunner_tasks_running", "q") == 1
        assert sample(registry, "trunner_tasks_pending", "q") == 2
        assert sample(registry, "trunner_tasks_delayed", "q") == 1

        await trio.sleep(7)

        assert sample(registry, "trunner_tasks_running", "q") == 0
        assert sample(registry, "trunner_tasks_pending", "q") == 0
        assert sample(registry, "trunner_tasks_delayed", "q") == 0
        assert sample(registry, "trunner_tasks_succeeded_total", "q") == 4


async def test_collector_reports_nan_quantiles_before_the_first_task() -> None:
    registry = CollectorRegistry()
    async with trunner.open_sequenced_runner(name="idle") as runner:
        TrunnerCollector(runner, registry=registry)

        quantile = sample(registry, "trunner_task_run_seconds", "idle", quantile="0.5")
        count = sample(registry, "trunner_task_run_seconds_count", "idle")

    assert math.isnan(quantile)
    assert count == 0


async def test_collector_follows_the_runners_of_a_scheduler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = CollectorRegistry()
    async with trunner.open_scheduler() as scheduler:
        collector = TrunnerCollector(scheduler, registry=registry)
        first = scheduler.create_sequenced_runner(name="first")
        first.post_task(trio.sleep, 1)
        assert exported_runners(registry) == {"first"}

        async with scheduler.open_parallel_runner(
            max_concurrency=2, name="second"
        ) as second:
            second.post_task(trio.sleep, 1)
            await second.wait_idle()
            assert exported_runners(registry) == {"first", "second"}

        # Closed since the last scrape: reported once more, with final values.
        assert sample(registry, "trunner_tasks_succeeded_total", "second") == 1
        assert exported_runners(registry) == {"first"}

        collector.remove(scheduler)
        assert exported_runners(registry) == set()


async def test_collector_reports_a_closed_runner_once_then_forgets_it() -> None:
    registry = CollectorRegistry()
    async with trunner.open_sequenced_runner(name="gone") as runner:
        TrunnerCollector(runner, registry=registry)
        await runner.run(trio.sleep, 0)

    assert runner.closed
    assert sample(registry, "trunner_tasks_succeeded_total", "gone") == 1
    assert exported_runners(registry) == set()


async def test_collector_scrapes_from_another_thread() -> None:
    registry = CollectorRegistry()
    async with trunner.open_parallel_runner(max_concurrency=2, name="t") as runner:
        TrunnerCollector(runner, registry=registry)
        await runner.run(trio.sleep, 0)
        scraping_thread: list[threading.Thread] = []

        def scrape() -> bytes:
            scraping_thread.append(threading.current_thread())
            return generate_latest(registry)

        text = (await trio.to_thread.run_sync(scrape)).decode()

    assert scraping_thread[0] is not threading.main_thread()
    assert 'trunner_tasks_succeeded_total{runner="t"} 1.0' in text


def test_collector_scrapes_after_the_run_has_ended() -> None:
    registry = CollectorRegistry()

    async def body() -> None:
        async with trunner.open_sequenced_runner(name="ended") as runner:
            TrunnerCollector(runner, registry=registry)
            await runner.run(trio.sleep, 0)

    trio.run(body)
    texts: list[str] = []
    thread = threading.Thread(
        target=lambda: texts.append(generate_latest(registry).decode())
    )
    thread.start()
    thread.join()

    assert 'trunner_tasks_succeeded_total{runner="ended"} 1.0' in texts[0]
    assert exported_runners(registry) == set()


async def test_collector_exports_only_the_first_of_two_runners_with_one_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner(name="dup") as one,
        scheduler.open_sequenced_runner(name="dup") as two,
    ):
        TrunnerCollector(one, two, registry=registry)
        await two.run(trio.sleep, 0)

        generate_latest(registry)
        generate_latest(registry)

        assert sample(registry, "trunner_tasks_succeeded_total", "dup") == 0
    warnings = [r for r in caplog.records if r.name == "trunner.contrib"]
    assert len(warnings) == 1
    assert "two runners are named 'dup'" in warnings[0].getMessage()


async def test_collector_namespace_and_registration() -> None:
    registry = CollectorRegistry()
    async with trunner.open_sequenced_runner(name="n") as runner:
        collector = TrunnerCollector(runner, namespace="app", registry=registry)
        unregistered = TrunnerCollector(runner, namespace="app", registry=None)
        bare = TrunnerCollector(runner, namespace="", registry=None)

        with pytest.raises(ValueError, match="Duplicated timeseries"):
            registry.register(unregistered)
        assert sample(registry, "app_tasks_pending", "n") == 0
        names = {family.name for family in bare.describe()}
        assert "tasks_pending" in names
        assert "task_run_seconds" in names
        assert all(not family.samples for family in collector.describe())


async def test_collector_add_and_remove_runners() -> None:
    registry = CollectorRegistry()
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner(name="a") as a,
        scheduler.open_sequenced_runner(name="b") as b,
    ):
        collector = TrunnerCollector(registry=registry)
        assert exported_runners(registry) == set()

        collector.add(a)
        collector.add(b)
        assert exported_runners(registry) == {"a", "b"}

        collector.remove(a)
        collector.remove(a)  # unknown: ignored
        assert exported_runners(registry) == {"b"}


async def test_collector_rejects_what_is_not_a_runner() -> None:
    with pytest.raises(TypeError, match="TaskRunner or a Scheduler"):
        TrunnerCollector("runner", registry=None)  # type: ignore[arg-type]  # on purpose


def test_collector_add_outside_trio_raises() -> None:
    runners: list[trunner.TaskRunner] = []

    async def body() -> None:
        async with trunner.open_sequenced_runner() as runner:
            runners.append(runner)

    trio.run(body)
    collector = TrunnerCollector(registry=None)

    with pytest.raises(RuntimeError, match="from the Trio thread"):
        collector.add(runners[0])


async def test_collector_registers_with_the_global_registry_by_default() -> None:
    from prometheus_client import REGISTRY

    async with trunner.open_sequenced_runner(name="global") as runner:
        collector = TrunnerCollector(runner)
        try:
            assert (
                REGISTRY.get_sample_value("trunner_tasks_pending", {"runner": "global"})
                == 0
            )
        finally:
            REGISTRY.unregister(collector)
