"""`main`: parse the arguments, then load and run the command they name."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import trio

from ._logs import start_logging
from ._parse import build_parser
from ._report import EXIT_USAGE, report, report_known

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``trunner`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success; 1 the operation failed; 2 a usage error;
        ``128 + N`` a worker stopped at once by a second signal N.
    """
    parser = build_parser()
    try:
        namespace = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    stop_logging = start_logging(namespace.log_level)
    try:
        # The verbs load the manager, the stores and cattrs: only now that a
        # command is to run, never for --help or a usage error.
        from ._verbs import COMMANDS

        return trio.run(COMMANDS[namespace.command], namespace)
    except KeyboardInterrupt:
        # Ctrl-C before a command listens for it (or after it stopped listening).
        report("interrupted")
        return 128 + signal.SIGINT
    except BaseException as error:  # only known errors are reported, the rest re-raised
        return report_known(error)
    finally:
        stop_logging()
