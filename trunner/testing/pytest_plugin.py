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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from .._scheduler import open_scheduler

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from .._scheduler import Scheduler


@pytest.fixture
async def scheduler() -> AsyncGenerator[Scheduler, None]:
    """An open scheduler for a test in virtual time (with ``autojump_clock``)."""
    if not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
        pytest.fail(
            "the scheduler fixture is for tests in virtual time: add autojump_clock "
            "to the test's arguments (pytest-trio takes the clock from the test)"
        )
    async with open_scheduler() as opened:
        yield opened
