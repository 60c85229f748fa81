"""The command's log: records to stderr, at the level of ``--log-level``."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from collections.abc import Callable

_LOG_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Drivers whose INFO records are their own chatter, not news for an operator
#: (coredis logs each EVALSHA it retries as EVAL, each dropped connection with
#: a "NoneType: None" traceback): shown at DEBUG only.
_CHATTY: Final = ("coredis",)


def _chatter(record: logging.LogRecord) -> bool:
    return record.levelno < logging.WARNING and any(
        record.name == name or record.name.startswith(f"{name}.") for name in _CHATTY
    )


@final
class _QuietDrivers(logging.Filter):
    """Keep the drivers' chatter out of a handler that is not at DEBUG."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self._handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        return self._handler.level <= logging.DEBUG or not _chatter(record)


def start_logging(level: str) -> Callable[[], None]:
    """Log records of ``level`` and above to stderr; return what undoes it.

    The drivers' INFO records (coredis') are shown only at ``DEBUG``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    handler.setLevel(level)
    handler.addFilter(_QuietDrivers(handler))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(handler.level, root.getEffectiveLevel()))

    def stop() -> None:
        root.removeHandler(handler)
        root.setLevel(old_level)

    return stop


def set_log_level(level: str) -> None:
    """Change the level of the stderr log that `start_logging` started."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "stream", None) is sys.stderr:
            handler.setLevel(level)
    number = logging.getLevelNamesMapping()[level]
    root.setLevel(min(number, root.getEffectiveLevel()))
