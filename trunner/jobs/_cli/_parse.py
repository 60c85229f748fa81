"""The parser of the ``trunner`` command: its words, options and help.

It needs the standard library only, so that ``--help`` and usage errors load
nothing of the jobs' manager and stores (nor rich, nor the service). Each
command is named by a word in ``namespace.command`` (``"worker"``,
``"jobs list"``, ``"serve"``...), which `trunner.jobs._cli._main` maps to
the function that runs it once the arguments parse.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import TYPE_CHECKING, Final

from ..._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

#: The environment variable that gives ``--store`` its default.
STORE_ENV: Final = "TRUNNER_STORE"

#: The names of the states, and of the finished ones (`JobState` values).
STATE_NAMES: Final = ("pending", "running", "succeeded", "failed", "cancelled")
FINISHED_NAMES: Final = ("succeeded", "failed", "cancelled")
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


def number(text: str, is_valid: Callable[[float], bool], expected: str) -> float:
    """``text`` as a finite float for which ``is_valid`` holds, or a usage error.

    The argument types of ``trunner`` and of ``trunner serve`` (in
    `trunner.service`) are made of this and `whole_number`.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not is_valid(value) or math.isinf(value):  # NaN is never valid
        raise argparse.ArgumentTypeError(f"must be {expected}, not {text}")
    return value


def whole_number(text: str, is_valid: Callable[[int], bool], expected: str) -> int:
    """``text`` as an int for which ``is_valid`` holds, or a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not is_valid(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, not {text}")
    return value


def positive_float(text: str) -> float:
    """An argument type: a finite number > 0 (seconds, mostly)."""
    return number(text, lambda value: value > 0, "a positive number")


def non_negative_float(text: str) -> float:
    """An argument type: a finite number >= 0 (a grace period, an age)."""
    return number(text, lambda value: value >= 0, "a number >= 0")


def positive_int(text: str) -> int:
    """An argument type: a whole number >= 1 (a concurrency, a limit)."""
    return whole_number(text, lambda value: value >= 1, "at least 1")


def _add_store(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(STORE_ENV)
    parser.add_argument(
        "--store",
        metavar="URL",
        default=default,
        required=default is None,
        help=(
            "the job store: memory://, sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db, "
            "redis://[[user]:password@]host[:port][/db][?prefix=trunner], "
            "rediss://... (TLS), redis+cluster://host:port[,host:port...], "
            "postgresql://user[:password]@host[:port]/dbname[?schema=trunner] "
            f"(default: ${STORE_ENV}{f', now {default!r}' if default else ''})"
        ),
    )


def add_log_level(parser: argparse.ArgumentParser, default: str) -> None:
    """Give ``parser`` a ``--log-level`` option, ``default`` by default."""
    parser.add_argument(
        "--log-level",
        choices=_LOG_LEVELS,
        default=default,
        type=str.upper,
        metavar="LEVEL",
        help=f"what to log to stderr: {', '.join(_LOG_LEVELS)} (default: {default})",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``trunner`` command and its subcommands."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="trunner",
        description=(
            "Run and manage trunner's durable jobs.\n\n"
            "  trunner worker MODULE:REGISTRY --store URL   run jobs until stopped\n"
            "  trunner jobs list|show|cancel|retry|delete|purge|watch --store URL\n"
            "  trunner serve MODULE:REGISTRY --store URL --token-file PATH\n\n"
            f"--store defaults to ${STORE_ENV}."
        ),
        epilog=(
            "exit codes: 0 success; 1 the operation failed (no such job, wrong "
            "state, store unreachable); 2 usage error; 128+N a worker stopped at "
            "once by a second signal N"
        ),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"trunner {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    worker = commands.add_parser(
        "worker",
        help="run a worker that claims and runs jobs until SIGINT or SIGTERM",
        description=(
            "Run a worker: claim the jobs whose handler REGISTRY knows, run them,\n"
            "and record their outcomes in the store. Logs go to stderr.\n\n"
            "MODULE is imported with the current directory on sys.path, as\n"
            "'python -m' does; REGISTRY names a trunner.jobs.Registry in it (a\n"
            "dotted path: app.jobs:registry).\n\n"
            "SIGINT or SIGTERM stops the worker gracefully: it claims no more jobs,\n"
            "gives the running ones the grace period to finish, cancels the rest\n"
            "and hands them back to the store (pending again, the attempt not\n"
            "counted), and exits 0. A second signal (half a second or more later)\n"
            "cancels the running jobs at once and hands them back (exit 128+N); a\n"
            "third exits at once, leaving their leases to expire."
        ),
        formatter_class=formatter,
    )
    worker.add_argument(
        "target", metavar="MODULE:REGISTRY", help="where the handler registry is"
    )
    _add_store(worker)
    worker.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="jobs run at once (default: 4)",
    )
    worker.add_argument(
        "--lease",
        type=positive_float,
        default=30.0,
        metavar="S",
        help=(
            "seconds a running job's lease lasts, renewed every third of it; a "
            "killed worker's jobs run elsewhere once it expires (default: 30)"
        ),
    )
    worker.add_argument(
        "--grace-period",
        type=non_negative_float,
        default=10.0,
        metavar="S",
        help="seconds running jobs get to finish when stopping (default: 10)",
    )
    worker.add_argument(
        "--name",
        default=None,
        help="the worker's name, stored with its jobs (default: host:pid:random)",
    )
    worker.add_argument(
        "--poll-interval",
        type=positive_float,
        default=1.0,
        metavar="S",
        help="seconds between looks at the store for new jobs (default: 1)",
    )
    add_log_level(worker, "INFO")
    worker.set_defaults(command="worker")

    jobs = commands.add_parser(
        "jobs",
        help="inspect and manage the jobs of a store",
        description="Inspect and manage the jobs of a store.",
    )
    actions = jobs.add_subparsers(title="actions", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="a table of jobs, newest first",
        description="Print a table of jobs, newest first. Times are UTC.",
    )
    _add_store(listing)
    listing.add_argument(
        "--state",
        choices=STATE_NAMES,
        metavar="STATE",
        help=f"only jobs in this state: {', '.join(STATE_NAMES)}",
    )
    listing.add_argument("--handler", help="only jobs of this handler")
    listing.add_argument(
        "--limit",
        type=positive_int,
        default=100,
        metavar="N",
        help="show at most N jobs (default: 100)",
    )
    add_log_level(listing, "WARNING")
    listing.set_defaults(command="jobs list")

    _add_one_job_action(
        actions,
        "show",
        help="every field of one job",
        description="Print every field of a job: args, result, error text.",
    )
    _add_one_job_action(
        actions,
        "cancel",
        help="cancel a job",
        description=(
            "Cancel a job: a pending job never starts; a running one is cancelled\n"
            "by its worker at its next lease renewal; a finished one is left as it\n"
            "is."
        ),
        formatter_class=formatter,
    )
    _add_one_job_action(
        actions,
        "retry",
        help="run a failed or cancelled job again",
        description=(
            "Put a failed or cancelled job back to pending, with fresh attempts."
        ),
    )
    _add_one_job_action(
        actions,
        "delete",
        help="delete a finished (or unreadable) job",
        description=(
            "Delete one job: a finished one, or one whose stored form cannot be\n"
            "read any more (corrupted). Pending and running jobs are refused:\n"
            "cancel them first."
        ),
        formatter_class=formatter,
    )

    purge = actions.add_parser(
        "purge",
        help="delete finished jobs",
        description=(
            "Delete finished jobs (succeeded, failed, cancelled); pending and "
            "running ones are never deleted."
        ),
    )
    _add_store(purge)
    purge.add_argument(
        "--older-than",
        type=non_negative_float,
        metavar="S",
        help="only jobs that finished at least S seconds ago",
    )
    purge.add_argument(
        "--state",
        choices=FINISHED_NAMES,
        nargs="+",
        action="extend",
        metavar="STATE",
        help=f"only jobs in these states: {', '.join(FINISHED_NAMES)} (default: all)",
    )
    add_log_level(purge, "WARNING")
    purge.set_defaults(command="jobs purge")

    watch = actions.add_parser(
        "watch",
        help="a live view of the queue draining",
        description=(
            "Show the jobs by state, the throughput (jobs finished per second over\n"
            "the last interval) and the progress (finished / all), until Ctrl-C or,\n"
            "with --until-empty, until no job is pending or running. When stdout is\n"
            "not a terminal, print one line per interval instead."
        ),
        formatter_class=formatter,
    )
    _add_store(watch)
    watch.add_argument(
        "--interval",
        type=positive_float,
        default=1.0,
        metavar="S",
        help="seconds between looks at the store (default: 1)",
    )
    watch.add_argument(
        "--until-empty",
        action="store_true",
        help="stop once no job is pending or running",
    )
    add_log_level(watch, "WARNING")
    watch.set_defaults(command="jobs watch")
    _add_serve(commands, formatter)
    return parser


def _add_one_job_action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],  # pyright: ignore[reportPrivateUsage]  # argparse names no public type for it
    name: str,
    *,
    help: str,  # noqa: A002  # argparse's name
    description: str,
    formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter,
) -> None:
    """Add ``trunner jobs NAME ID --store URL``: an action on one job."""
    parser = actions.add_parser(
        name, help=help, description=description, formatter_class=formatter_class
    )
    parser.add_argument("job_id", metavar="ID")
    _add_store(parser)
    add_log_level(parser, "WARNING")
    parser.set_defaults(command=f"jobs {name}")


def _add_serve(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],  # pyright: ignore[reportPrivateUsage]  # argparse names no public type for it
    formatter: type[argparse.HelpFormatter],
) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the jobs over HTTP (and run them) until SIGINT or SIGTERM",
        description=(
            "Serve a store's jobs over HTTP (trunner.service: JSON, server-sent\n"
            "events, metrics, a dashboard at /) and run them as 'trunner worker'\n"
            "does, unless --no-worker. Needs the service extra:\n"
            "pip install 'trunner[service]'.\n\n"
            "Tokens come from --token-file, never from the command line. The\n"
            "first SIGINT or SIGTERM stops gracefully; a second one cancels the\n"
            "running jobs and hands them back."
        ),
        formatter_class=formatter,
        add_help=False,  # 'trunner serve --help' is the service parser's
        prefix_chars="\0",  # every word goes to the service parser
    )
    # Everything after "serve" is parsed by trunner.service's own parser when
    # the command runs: importing the service (starlette, hypercorn, httpx)
    # here would slow every other command down.
    serve.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    serve.set_defaults(command="serve", log_level="INFO")
