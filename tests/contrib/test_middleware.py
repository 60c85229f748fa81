from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

import trunner
from trunner.contrib.middleware import logging_middleware


def ignore(handle: trunner.TaskHandle[object], error: BaseException) -> None:
    del handle, error


def field(record: logging.LogRecord, name: str) -> object:
    return record.__dict__[name]


async def test_logging_middleware_logs_each_attempt_with_its_duration(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trunner.tasks")
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        await trio.sleep(2)
        if calls == 1:
            raise OSError("reset")
        return "ok"

    retry = trunner.RetryPolicy(initial_delay=1, jitter=0)
    async with trunner.open_sequenced_runner(
        name="net", middleware=[logging_middleware()]
    ) as runner:
        handle = runner.post_task(flaky, retry=retry, name="fetch")

        assert await handle.wait() == "ok"

    records = [r for r in caplog.records if r.name == "trunner.tasks"]
    prefix = f"net: attempt {{}} of task 'fetch' (#{handle.id})"
    assert [r.getMessage() for r in records] == [
        prefix.format(1) + " started",
        prefix.format(1) + " failed after 2.000 s: OSError('reset')",
        prefix.format(2) + " started",
        prefix.format(2) + " succeeded in 2.000 s",
    ]
    assert [r.levelno for r in records] == [
        logging.INFO,
        logging.WARNING,
        logging.INFO,
        logging.INFO,
    ]
    assert [field(r, "trunner_attempt") for r in records] == [1, 1, 2, 2]
    assert {field(r, "trunner_runner") for r in records} == {"net"}
    assert {field(r, "trunner_task_id") for r in records} == {handle.id}
    assert {field(r, "trunner_task_name") for r in records} == {"fetch"}
    assert field(records[1], "trunner_outcome") == "failed"
    assert field(records[3], "trunner_outcome") == "succeeded"
    assert field(records[3], "trunner_duration") == 2


async def test_logging_middleware_logs_a_timed_out_attempt_as_cancelled(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("trunner.tests.custom")
    caplog.set_level(logging.DEBUG, logger=logger.name)
    async with trunner.open_sequenced_runner(
        name="r",
        middleware=[logging_middleware(logger, logging.DEBUG)],
        on_error=ignore,
    ) as runner:
        handle = runner.post_task(trio.sleep, 10, timeout=3, name="slow")

        with pytest.raises(trunner.TaskTimeoutError):
            await handle.wait()

    records = [r for r in caplog.records if r.name == logger.name]
    assert [r.levelno for r in records] == [logging.DEBUG, logging.DEBUG]
    assert records[1].getMessage().endswith("cancelled after 3.000 s")
    assert field(records[1], "trunner_outcome") == "cancelled"


async def test_logging_middleware_error_level_is_configurable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trunner.tasks")

    async def fail() -> None:
        raise KeyError("k")

    async with trunner.open_sequenced_runner(
        middleware=[logging_middleware(error_level=logging.INFO)], on_error=ignore
    ) as runner:
        with pytest.raises(KeyError):
            await runner.run(fail)

    records = [r for r in caplog.records if r.name == "trunner.tasks"]
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO]
    assert "failed after 0.000 s: KeyError('k')" in records[1].getMessage()


async def test_logging_middleware_stays_quiet_below_the_logger_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="trunner.tasks")
    async with trunner.open_sequenced_runner(
        middleware=[logging_middleware()]
    ) as runner:
        await runner.run(trio.sleep, 0)

    assert [r for r in caplog.records if r.name == "trunner.tasks"] == []
    assert runner.statistics().succeeded == 1
