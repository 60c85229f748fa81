"""What a failed attempt becomes: a durable retry after its backoff, or a failure.

Retries are durable: the worker stores a failed attempt's job back as
PENDING, due after the backoff of its policy (the job's own, stored with it,
or the manager's), so attempts and backoff survive a crash and any worker may
take the next attempt. These functions build the `JobEnd` the worker stores.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from .._errors import TaskTimeoutError
from ._environment import later
from ._errors import Retry
from ._job import JobState
from ._store import JobEnd

if TYPE_CHECKING:
    import datetime as dt

    from ._environment import ManagerConfig
    from ._job import JobRecord


def error_text(error: BaseException) -> str:
    """The error with its traceback, as the store keeps it."""
    return "".join(traceback.format_exception(error)).rstrip()


def failure(record: JobRecord, error: BaseException, now: dt.datetime) -> JobEnd:
    """A job's final failure, with the error's traceback as text."""
    return JobEnd.finished(record.id, JobState.FAILED, at=now, error=error_text(error))


def failed_attempt(
    record: JobRecord, error: BaseException, now: dt.datetime, config: ManagerConfig
) -> JobEnd:
    """The end of an attempt that raised ``error``: a retry, or the job's failure."""
    if isinstance(error, TaskTimeoutError):
        # Each attempt is a task of its own, so the runner's message says
        # "attempt 1 of task ...": say which attempt of the job it was.
        timeout = config.timeout if record.timeout is None else record.timeout
        error.args = (
            f"attempt {record.attempts} of {record.max_attempts} of job "
            f"{record.id!r} ran past its timeout of {timeout} s",
        )
    try:
        run_at = retry_at(record, error, now, config)
    except Exception as ours:  # a bad stored policy: the job fails with it
        ours.__context__ = error
        return failure(record, ours, now)
    if run_at is None:
        return failure(record, error, now)
    return JobEnd.retry(record.id, run_at=run_at, error=error_text(error), at=now)


def retry_at(
    record: JobRecord, error: BaseException, now: dt.datetime, config: ManagerConfig
) -> dt.datetime | None:
    """When the failed attempt's job runs again, or None if it does not."""
    policy = config.policy(record.retry)
    retried = isinstance(error, (Retry, *policy.retry_on))
    if not retried or record.attempts >= record.max_attempts:
        return None
    delay = (
        error.delay if isinstance(error, Retry) and error.delay is not None else None
    )
    # The policy caps its backoff at max_delay, whatever the attempt.
    wait = policy.backoff(record.attempts) if delay is None else delay
    return later(now, wait, "the retry's backoff")
