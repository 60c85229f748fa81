from __future__ import annotations

import threading

import pytest
import trio

import trunner
from trunner.testing import run_until_idle


async def test_run_until_idle_runs_cross_runner_chains_without_moving_clock(
    autojump_clock: trio.abc.Clock,
) -> None:
    log: list[str] = []
    async with trunner.open_scheduler() as scheduler:
        a = scheduler.create_sequenced_runner()
        b = scheduler.create_parallel_runner(max_concurrency=2)

        def ping(n: int) -> None:
            log.append(f"ping{n}")
            if n < 3:
                b.post_task(pong, n)

        def pong(n: int) -> None:
            log.append(f"pong{n}")
            a.post_task(ping, n + 1)

        a.post_task(ping, 0)
        later = a.post_delayed_task(log.append, "later", delay=5)
        due_now = a.post_delayed_task(log.append, "now", delay=0)
        await run_until_idle()

        assert trio.current_time() == 0
        chain = [entry for entry in log if entry != "now"]
        assert chain == ["ping0", "pong0", "ping1", "pong1", "ping2", "pong2", "ping3"]
        assert "now" in log
        assert not later.done
        assert due_now.done


async def test_run_until_idle_waits_for_thread_work() -> None:
    release = threading.Event()
    async with trunner.open_thread_runner() as runner:
        handle = runner.post_task(lambda: release.wait(5))
        trio.lowlevel.current_trio_token().run_sync_soon(release.set)

        await run_until_idle(runner)

        assert handle.done


async def test_run_until_idle_needs_a_scheduler_without_runners() -> None:
    with pytest.raises(trunner.NoCurrentSchedulerError):
        await run_until_idle()


async def test_scheduler_fixture_runs_in_virtual_time(
    scheduler: trunner.Scheduler, autojump_clock: trio.abc.Clock
) -> None:
    runner = scheduler.create_sequenced_runner()
    handle = runner.post_delayed_task(trio.current_time, delay=3600)

    assert await handle.wait() == 3600
    assert trunner.current_scheduler() is scheduler


def test_scheduler_fixture_demands_a_mock_clock(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["trunner.testing.pytest_plugin"]')
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.trio
        async def test_without_clock(scheduler):
            pass
        """
    )

    result = pytester.runpytest("-p", "trio")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*add autojump_clock*"])


def test_scheduler_fixture_fails_a_test_that_leaves_a_task_running(
    pytester: pytest.Pytester,
) -> None:
    # Issue 8: the fixture's teardown waited forever for a never-ending task.
    pytester.makeconftest('pytest_plugins = ["trunner.testing.pytest_plugin"]')
    pytester.makepyfile(
        """
        import pytest
        import trio

        @pytest.mark.trio
        async def test_leaves_a_task(scheduler, autojump_clock):
            runner = scheduler.create_sequenced_runner(name="forgotten")
            runner.post_task(trio.sleep_forever)

        @pytest.mark.trio
        async def test_leaves_a_task_under_mock_clock(scheduler, mock_clock):
            runner = scheduler.create_parallel_runner(max_concurrency=2)
            runner.post_task(trio.sleep_forever)

        @pytest.mark.trio
        async def test_leaves_a_long_task(scheduler, autojump_clock):
            scheduler.create_sequenced_runner().post_task(trio.sleep, 3600)
        """
    )

    result = pytester.runpytest("-p", "trio", "-o", "faulthandler_timeout=30")

    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*the test left tasks that never end*'forgotten' (1 running, 0 pending)*",
        ]
    )


async def test_run_until_idle_refuses_what_is_not_a_runner() -> None:
    # Issue 8: run_until_idle(3) raised AttributeError: 'int' ... 'scheduler'.
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(TypeError, match=r"argument 2 \(runners\[1\]\) is 3, not a"):
            await run_until_idle(runner, 3)  # type: ignore[arg-type]  # bad on purpose
