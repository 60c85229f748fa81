"""Lifecycle hooks and the middleware type."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar, final

import attrs

from ._util import check_plain_callable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._handle import TaskHandle
    from ._results import TaskResult

T = TypeVar("T")

logger: Final = logging.getLogger("trunner.hooks")

#: ``async def mw(task, call_next)``: wraps each attempt of a task.
Middleware: TypeAlias = (
    "Callable[[TaskHandle[object], Callable[[], Awaitable[object]]], Awaitable[object]]"
)


_HOOK_CALLS: Final = {
    "on_queued": "on_queued(task)",
    "on_start": "on_start(task)",
    "on_finish": "on_finish(task, result)",
}


def _check_hook(instance: object, attribute: attrs.Attribute[T], value: T) -> None:
    del instance
    if value is not None:
        check_plain_callable(attribute.name, value, _HOOK_CALLS[attribute.name])


@final
@attrs.frozen
class TaskHooks:
    """Plain callables told about each task's life, on the Trio thread.

    Hooks set on a scheduler see every task of its runners; hooks set on a
    runner see its tasks; both fire when both are set, the scheduler's first.
    A hook that raises is logged (logger ``trunner.hooks``) and never breaks
    the runner or loses the task's result.

    Args:
        on_queued: ``on_queued(task)`` when a task is posted.
        on_start: ``on_start(task)`` once, when its first attempt starts.
        on_finish: ``on_finish(task, result)`` once, when it has ended, with its
            `TaskResult`; also for tasks that were cancelled or skipped.
    """

    on_queued: Callable[[TaskHandle[object]], object] | None = attrs.field(
        default=None, validator=_check_hook
    )
    on_start: Callable[[TaskHandle[object]], object] | None = attrs.field(
        default=None, validator=_check_hook
    )
    on_finish: Callable[[TaskHandle[object], TaskResult], object] | None = attrs.field(
        default=None, validator=_check_hook
    )
