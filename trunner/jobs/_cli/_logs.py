"""The command's log: records to stderr, at the level of ``--log-level``."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

_LOG_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def start_logging(level: str) -> Callable[[], None]:
    """Log records of ``level`` and above to stderr; return what undoes it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    handler.setLevel(level)
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
