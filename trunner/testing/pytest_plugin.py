"""A pytest plugin with fixtures for testing code that uses trunner.

Enable it in a ``conftest.py`` with
``pytest_plugins = ["trunner.testing.pytest_plugin"]`` (it needs pytest-trio,
in ``trio_mode`` or with ``@pytest.mark.trio``).

Fixtures:

* ``scheduler``: an open `trunner.Scheduler`, closed gracefully at the end of
  the test, for a test that runs in virtual time. pytest-trio takes the clock
  only from the test's own arguments, so the test requests
  ``autojump_clock`` (or ``mock_clock``) too::

      async def test_reminder(scheduler, autojump_clock):
          runner = scheduler.create_sequenced_runner()
          handle = runner.post_delayed_task(trio.current_time, delay=3600)
          assert await handle.wait() == 3600    # at once, in virtual time

  Without a mock clock the fixture fails the test with that advice, rather
  than let an hour-long delay take an hour.

  When the test body ends, the fixture closes the scheduler's runners
  gracefully, in virtual time. A task that never ends (a forgotten
  ``trio.sleep_forever``, a loop without an exit) would make that close wait
  forever: after `TEARDOWN_GRACE` virtual seconds the fixture shuts the
  runners down and fails the test, naming the runners that still had tasks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import pytest
import trio
import trio.testing

from .._scheduler import open_scheduler

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from .._abc import TaskRunner
    from .._scheduler import Scheduler


#: Virtual seconds the ``scheduler`` fixture lets the runners' tasks take to
#: end once the test body has ended, before it fails the test.
TEARDOWN_GRACE: Final = 24 * 3600.0


@pytest.fixture
async def scheduler() -> AsyncGenerator[Scheduler, None]:
    """An open scheduler for a test in virtual time (with ``autojump_clock``).

    After the test body, its runners are closed gracefully; tasks that have
    not ended after `TEARDOWN_GRACE` virtual seconds fail the test.
    """
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        pytest.fail(
            "the scheduler fixture is for tests in virtual time: add autojump_clock "
            "to the test's arguments (pytest-trio takes the clock from the test)"
        )
    stuck: list[str] = []
    async with open_scheduler() as opened:
        yield opened
        # The body is over: let virtual time run even under mock_clock, so
        # that the grace below elapses instead of hanging.
        if math.isinf(clock.autojump_threshold):
            clock.autojump_threshold = 0
        runners = opened.runners
        closed = trio.Event()
        remaining = len(runners)

        async def close(runner: TaskRunner) -> None:
            nonlocal remaining
            await runner.aclose()
            remaining -= 1
            if not remaining:
                closed.set()

        async with trio.open_nursery() as nursery:
            for runner in runners:
                nursery.start_soon(close, runner)
            with trio.move_on_after(TEARDOWN_GRACE):
                if runners:
                    await closed.wait()
            if not closed.is_set() and runners:
                for runner in runners:
                    stats = runner.statistics()
                    if stats.running or stats.pending:
                        stuck.append(
                            f"{runner.name!r} ({stats.running} running, "
                            f"{stats.pending} pending)"
                        )
                stuck = stuck or ["a task or thread that does not end"]
                nursery.cancel_scope.cancel()  # aclose() then shuts them down
    if stuck:
        pytest.fail(
            f"the test left tasks that never end: after the test body, the "
            f"scheduler fixture waited {TEARDOWN_GRACE:g} virtual seconds for "
            f"them to end, then shut the runners down: {', '.join(stuck)}. "
            "Cancel them (handle.cancel(), runner.cancel_all()) or shut their "
            "runner down before the test ends."
        )
