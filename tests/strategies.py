"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from trunner import Priority, ShutdownBehavior, TaskTraits

#: Whole milliseconds, away from zero, as seconds.
millis = st.integers(min_value=1, max_value=1000).map(lambda ms: ms / 1000)
maybe_millis = st.one_of(st.just(0.0), millis)

traits = st.builds(
    TaskTraits,
    priority=st.sampled_from(Priority),
    shutdown_behavior=st.sampled_from(ShutdownBehavior),
)


@attrs.frozen
class TaskSpec:
    """One task of a random script: when it is posted and what it does."""

    post_at: float
    duration: float
    traits: TaskTraits
    delay: float | None
    cancel_at: float | None
    follow_up: bool


task_specs = st.builds(
    TaskSpec,
    post_at=maybe_millis,
    duration=maybe_millis,
    traits=traits,
    delay=st.one_of(st.none(), maybe_millis),
    cancel_at=st.one_of(st.none(), millis),
    follow_up=st.booleans(),
)

close_modes = st.sampled_from(["aclose", "grace", "shutdown", "cancel_scope"])

#: What a task of the differential test (fast path against full path) does:
#: return or raise, at once or after a sleep, be cancelled while it runs or
#: before it starts, or run past its timeout.
differential_kinds = st.sampled_from(
    [
        "return",
        "sleep_return",
        "raise",
        "sleep_raise",
        "cancel_running",
        "cancel_pending",
        "timeout",
        "group",
    ]
)
differential_workloads = st.lists(
    st.tuples(differential_kinds, st.integers(min_value=1, max_value=5)),
    min_size=1,
    max_size=30,
)
