from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import trio

import trunner
from trunner.contrib._runner_set import RunnerSet

if TYPE_CHECKING:
    import pytest

    from trunner.contrib._runner_set import RunnerSnapshot


async def test_runner_set_skips_a_scheduler_removed_during_a_snapshot() -> None:
    async with trunner.open_scheduler() as scheduler:
        scheduler.create_sequenced_runner(name="s")
        runners = RunnerSet([scheduler])
        runners.remove(scheduler)

        assert runners.read([scheduler]) == []


async def test_runner_set_reads_a_runner_once_when_given_twice() -> None:
    async with trunner.open_scheduler() as scheduler:
        runner = scheduler.create_sequenced_runner(name="both")
        runners = RunnerSet([runner, scheduler])
        await runner.run(trio.sleep, 0)

        (snapshot,) = runners.snapshot()

    assert snapshot.name == "both"
    assert snapshot.metrics.succeeded == 1
    assert snapshot.statistics.succeeded == 1


async def test_runner_set_reports_the_last_reading_when_trio_does_not_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with trunner.open_sequenced_runner(name="busy") as runner:
        runners = RunnerSet([runner])
        runners.timeout = 0.05
        await runner.run(trio.sleep, 0)
        (before,) = await trio.to_thread.run_sync(runners.snapshot)
        await runner.run(trio.sleep, 0)
        readings: list[list[RunnerSnapshot]] = []

        reader = threading.Thread(target=lambda: readings.append(runners.snapshot()))
        reader.start()
        # The Trio thread is blocked until the reader has given up waiting.
        reader.join()

        (stale,) = readings[0]
        (fresh,) = runners.snapshot()

    assert before.metrics.succeeded == 1
    assert stale.metrics.succeeded == 1
    assert fresh.metrics.succeeded == 2
    assert [r.getMessage() for r in caplog.records] == [
        "the Trio thread did not answer within 0.05 s; reporting the runners'"
        " previous values"
    ]
