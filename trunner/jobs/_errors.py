"""The errors of trunner.jobs (STYLE.md section 6)."""

from __future__ import annotations

import trio

from .._errors import TrunnerError
from .._util import check_duration


class JobError(TrunnerError):
    """Base class of every error of `trunner.jobs`."""


class JobNotFoundError(JobError, LookupError):
    """No job has that id."""


class JobExistsError(JobError):
    """A job with that id exists already (``if_exists="error"``)."""


class UnknownHandlerError(JobError, LookupError):
    """No handler is registered under that name."""


class SerializationError(JobError, ValueError):
    """A payload does not serialise to JSON, or does not decode.

    Raised for arguments (or a result) that do not serialise or do not match
    the handler's annotation, and for a stored payload that cannot be decoded.
    """


class JobStateError(JobError):
    """An operation that the job's state does not allow."""


class StoreError(JobError):
    """The store's backend failed; raised ``from`` the driver's error."""


class StoreInUseError(JobError, trio.BusyResourceError, RuntimeError):
    """The store object serves another open `JobManager` already.

    A store object serves one manager at a time (a manager disconnects its
    store when its block exits, under any other user). Several managers, in
    one process or many, share jobs through one database: give each its own
    store object (``open_store(url)`` once per manager). It is also a
    `trio.BusyResourceError` and a `RuntimeError`.
    """


class Retry(Exception):  # a control-flow signal, named as in STYLE.md
    """Raised by a job handler to ask for another attempt.

    It counts as a failed attempt that is always retried while attempts remain,
    whatever the retry policy's ``retry_on``. ``delay`` (seconds) replaces the
    policy's backoff for this retry. Deliberately not a `TrunnerError`.

    Raises:
        TypeError, ValueError: if ``delay`` is not a number of seconds >= 0.
    """

    def __init__(
        self, reason: str = "retry requested", *, delay: float | None = None
    ) -> None:
        super().__init__(reason)
        self.delay: float | None = (
            None if delay is None else check_duration("delay", delay)
        )
