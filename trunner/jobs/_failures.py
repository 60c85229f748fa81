"""Failures of repeated store calls: when to try again, and what the log shows."""

from __future__ import annotations

import logging
from typing import Final, cast, final

import attrs

from .._retry import capped_backoff

logger: Final = logging.getLogger("trunner.jobs")

#: Seconds before a failed store call is tried again; the wait doubles with
#: each failure in a row, up to `STORE_RETRY_MAX`.
STORE_RETRY_INITIAL: Final = 0.1
#: The longest wait between two tries of a failing store: once the store
#: answers again, the caller resumes within this many seconds.
STORE_RETRY_MAX: Final = 5.0


def describe_error(error: BaseException) -> str:
    """``error`` for a log line: a group of one exception shows that exception.

    Drivers that run a task group (coredis) raise a failure wrapped in
    exception groups; "Exceptions from Trio nursery (1 sub-exception)" says
    nothing of what failed.
    """
    shown = _lone_leaf(error)
    name = type(shown).__name__
    text = str(shown)
    return f"{name}: {text}" if text else name


def _lone_leaf(error: BaseException) -> BaseException:
    """The exception inside groups of one exception each, else ``error``."""
    leaf: BaseException = error  # returned as declared, never narrowed
    if isinstance(error, BaseExceptionGroup):
        inner: tuple[BaseException, ...] = cast(
            "BaseExceptionGroup[BaseException]", error
        ).exceptions
        if len(inner) == 1:
            leaf = _lone_leaf(inner[0])
    return leaf


@final
@attrs.define(eq=False)
class StoreFailures:
    """A series of failed store calls of one kind, logged at its start and end.

    A store that stops answering fails the same repeating call every few
    seconds: the log gets one warning with the error (and its traceback) when
    the series starts, one when the store answers again, and each failure in
    between at DEBUG only.
    """

    #: What the calls do, for the log ("renew the leases of held jobs").
    what: str
    #: Failures in a row.
    count: int = 0

    def failed(self, error: BaseException, *, what: str | None = None) -> None:
        """Count a failure; log it if it starts a series. ``what`` overrides."""
        self.count += 1
        doing = self.what if what is None else what
        if self.count == 1:
            logger.warning(
                "could not %s; trying again with backoff: %s",
                doing,
                describe_error(error),
                exc_info=error,
            )
        else:
            logger.debug(
                "could not %s (%d failures in a row): %s",
                doing,
                self.count,
                describe_error(error),
            )

    def backoff(self) -> float:
        """Seconds until the next try: doubles per failure in a row, capped."""
        return capped_backoff(STORE_RETRY_INITIAL, 2.0, STORE_RETRY_MAX, self.count)

    def answered(self) -> None:
        """End a series, if one is under way: the store answers again."""
        if self.count:
            logger.warning(
                "the store answers again after %d failed calls to %s; resuming",
                self.count,
                self.what,
            )
            self.count = 0
