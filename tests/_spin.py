"""A guard against livelocks in virtual time: tasks that run for ever at one instant.

With an autojump clock, a loop that keeps rescheduling itself without ever
sleeping (say, a wait whose deadline has already passed, in a loop that does
nothing about it) never lets virtual time advance: the test hangs instead of
failing. `spin_guard` counts the task steps taken at one virtual instant and,
past a bound no correct program reaches, cancels its block and fails the
test, naming the task that spun.
"""

from __future__ import annotations

import collections
import contextlib
from typing import TYPE_CHECKING

import pytest
import trio

if TYPE_CHECKING:
    from collections.abc import Generator

#: Task steps at one virtual instant that count as a spin. Legitimate bursts
#: (a thousand jobs ending at once) take a few tens of thousands.
SPIN_STEPS = 200_000


class _SpinWatch(trio.abc.Instrument):
    def __init__(self, scope: trio.CancelScope, steps: int) -> None:
        self.scope = scope
        self.steps = steps
        self.instant = -1.0
        self.count = 0
        self.tasks: collections.Counter[str] = collections.Counter()
        self.spun: str | None = None

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        now = trio.current_time()
        if now != self.instant:
            self.instant, self.count = now, 0
            self.tasks.clear()
            return
        self.count += 1
        self.tasks[task.name] += 1
        if self.count >= self.steps and self.spun is None:
            busiest = ", ".join(f"{n} ({c})" for n, c in self.tasks.most_common(3))
            self.spun = f"{self.count} task steps at virtual time {now}: {busiest}"
            self.scope.cancel()


@contextlib.contextmanager
def spin_guard(steps: int = SPIN_STEPS) -> Generator[None]:
    """Fail the test if its block spins at one virtual instant; see the module."""
    scope = trio.CancelScope()
    watch = _SpinWatch(scope, steps)
    with scope:
        trio.lowlevel.add_instrument(watch)
        try:
            yield
        finally:
            trio.lowlevel.remove_instrument(watch)
    if watch.spun is not None:
        pytest.fail(f"livelock: {watch.spun}")
