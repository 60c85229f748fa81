"""How the command ends: its exit codes, and the errors it reports in one line."""

from __future__ import annotations

import sys
from typing import Final, final

from .._errors import JobError

#: Exit codes.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


@final
class CommandError(Exception):
    """A failure the command reports in one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def report(message: str) -> None:
    """Write ``trunner: error: message`` on stderr."""
    sys.stderr.write(f"trunner: error: {message}\n")
    sys.stderr.flush()


def one_line(error: BaseException) -> str:
    """The text of ``error`` on one line (its type's name if it has none)."""
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = error  # pyright: ignore[reportUnknownVariableType]  # any group
        return [leaf for inner in group.exceptions for leaf in _leaves(inner)]
    return [error]


def report_known(error: BaseException) -> int:
    """Report the errors a command expects in one line each; re-raise others.

    Errors may come in an exception group from the nurseries they crossed.

    Returns:
        The exit code: the highest of the errors' codes.
    """
    known = (CommandError, JobError)
    leaves = _leaves(error)
    if not all(isinstance(leaf, known) for leaf in leaves):
        raise error
    code = EXIT_OK
    for leaf in leaves:
        if isinstance(leaf, CommandError):
            report(leaf.message)
            code = max(code, leaf.code)
        else:
            report(one_line(leaf))
            code = max(code, EXIT_FAILED)
    return code
