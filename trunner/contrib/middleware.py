"""Ready-made middleware: log each attempt of a task through `logging`.

Middleware wraps each attempt of a task (``async def mw(task, call_next)``,
see `trunner.Middleware`); pass it to a runner with ``middleware=[...]``. This
module needs only the standard library. Tracing middleware, which needs
OpenTelemetry, lives in `trunner.contrib.otel`.
"""

from __future__ import annotations

# Imports under private names: the module's public names are its API (__all__).
import logging as _logging
import typing as _typing
from typing import Final as _Final

import trio as _trio

__all__ = ["logging_middleware"]

if _typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .. import Middleware, TaskHandle

_LOGGER: _Final = _logging.getLogger("trunner.tasks")


def logging_middleware(
    logger: _logging.Logger | None = None,
    level: int = _logging.INFO,
    *,
    error_level: int = _logging.WARNING,
) -> Middleware:
    """Make middleware that logs the start and end of each attempt of a task.

    Each attempt logs one record when it starts and one when it ends: how long
    it took (on the trio clock, so virtual time under a ``MockClock``) and
    whether it succeeded, failed (with the error's repr) or was cancelled. A
    cancelled attempt is one that timed out, or whose task was cancelled (any
    `BaseException` that is not an `Exception` counts as a cancellation). Only
    the attempt is logged; the task's final failure also goes to the runner's
    ``on_error``, which logs it with its traceback by default.

    Records carry the fields ``trunner_runner``, ``trunner_task_id``,
    ``trunner_task_name`` and ``trunner_attempt``, and at the end
    ``trunner_duration`` and ``trunner_outcome`` (``"succeeded"``, ``"failed"``
    or ``"cancelled"``), for structured log handlers. The middleware re-raises
    whatever the attempt raised; put it first in the list to time everything
    the other middleware do as well.

    Args:
        logger: where to log (default: the ``trunner.tasks`` logger).
        level: the level of start, success and cancellation records.
        error_level: the level of the record of a failed attempt.

    Returns:
        The middleware, for a runner's ``middleware=`` list.
    """
    log = _LOGGER if logger is None else logger

    async def log_attempt(
        task: TaskHandle[object], call_next: Callable[[], Awaitable[object]]
    ) -> object:
        if not log.isEnabledFor(min(level, error_level)):
            return await call_next()
        runner = task.runner.name
        attempt = task.attempts
        fields: dict[str, object] = {
            "trunner_runner": runner,
            "trunner_task_id": task.id,
            "trunner_task_name": task.name,
            "trunner_attempt": attempt,
        }
        what = f"{runner}: attempt {attempt} of task {task.name!r} (#{task.id})"
        log.log(level, "%s started", what, extra=fields)
        start = _trio.current_time()
        try:
            result = await call_next()
        except Exception as error:
            duration = _trio.current_time() - start
            log.log(
                error_level,
                "%s failed after %.3f s: %r",
                what,
                duration,
                error,
                extra=fields
                | {"trunner_duration": duration, "trunner_outcome": "failed"},
            )
            raise
        except BaseException:  # trio.Cancelled and the like: logged, re-raised
            duration = _trio.current_time() - start
            log.log(
                level,
                "%s cancelled after %.3f s",
                what,
                duration,
                extra=fields
                | {"trunner_duration": duration, "trunner_outcome": "cancelled"},
            )
            raise
        duration = _trio.current_time() - start
        log.log(
            level,
            "%s succeeded in %.3f s",
            what,
            duration,
            extra=fields
            | {"trunner_duration": duration, "trunner_outcome": "succeeded"},
        )
        return result

    return log_attempt
