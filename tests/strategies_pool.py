"""Hypothesis strategies for the ResourcePool property tests."""

from __future__ import annotations

from typing import Literal

import attrs
from hypothesis import strategies as st


@attrs.frozen
class PoolTask:
    """One caller of a scripted pool run."""

    arrival_ms: int
    duration_ms: int
    fails: bool
    healthy: bool
    once: bool
    priority: bool
    run_now: bool
    is_async: bool


@attrs.frozen
class PoolScript:
    """A pool configuration, its callers, and how and when the pool ends."""

    workers: int
    max_workers: int
    max_retries: int
    burst_interval_ms: int
    # create() calls after the pool's start fail where this is True.
    create_failures: tuple[bool, ...]
    tasks: tuple[PoolTask, ...]
    end: Literal["stop", "kill"]
    end_ms: int


def milliseconds() -> st.SearchStrategy[int]:
    """Whole milliseconds, bounded and away from zero."""
    return st.integers(min_value=1, max_value=1000)


pool_tasks: st.SearchStrategy[PoolTask] = st.builds(
    PoolTask,
    arrival_ms=milliseconds(),
    duration_ms=milliseconds(),
    fails=st.booleans(),
    healthy=st.booleans(),
    once=st.booleans(),
    priority=st.booleans(),
    run_now=st.booleans(),
    is_async=st.booleans(),
)


@st.composite
def pool_scripts(draw: st.DrawFn) -> PoolScript:
    """Draw a whole scripted pool run."""
    workers = draw(st.integers(min_value=1, max_value=3))
    return PoolScript(
        workers=workers,
        max_workers=workers + draw(st.integers(min_value=0, max_value=3)),
        max_retries=draw(st.integers(min_value=0, max_value=2)),
        burst_interval_ms=draw(milliseconds()),
        create_failures=tuple(draw(st.lists(st.booleans(), max_size=12))),
        tasks=tuple(draw(st.lists(pool_tasks, max_size=25))),
        end=draw(st.sampled_from(["stop", "kill"])),
        end_ms=draw(st.integers(min_value=1, max_value=3000)),
    )
