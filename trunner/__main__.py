"""The ``trunner`` command's entry point: ``trunner --help``, ``python -m trunner``.

The command lives with the jobs it serves (`trunner.jobs`, which needs the
``trunner[jobs]`` extra); `main` imports it when it runs, so that importing
this module loads nothing more.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``trunner`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code (see `trunner.jobs._cli`); 1 if the ``trunner[jobs]``
        extra is not installed, which the message on stderr names.
    """
    try:
        from .jobs._cli import main as run_command
    except ModuleNotFoundError as error:
        # trunner.jobs names the missing extra: say it in one line. A module
        # of trunner's own that is missing is a bug, with its traceback.
        if (error.name or "trunner").partition(".")[0] == "trunner":
            raise
        sys.stderr.write(f"trunner: error: {error}\n")
        return 1
    return run_command(argv)


if __name__ == "__main__":
    sys.exit(main())
