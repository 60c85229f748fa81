from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trunner import TaskHandle, TaskState


def state_of(handle: TaskHandle[object]) -> TaskState:
    """Read ``handle.state`` afresh.

    Type checkers keep the narrowing of an earlier ``assert handle.state is X``
    even after the task has moved on; reading through a call forgets it.
    """
    return handle.state
