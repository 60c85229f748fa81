"""The ``trunner`` command: run a job worker, inspect and manage durable jobs.

``trunner worker MODULE:REGISTRY --store URL`` runs a `trunner.jobs.JobManager`
worker until SIGINT or SIGTERM; ``trunner jobs list|show|cancel|retry|purge|watch
--store URL`` inspects and manages the jobs of a store. Parsing uses argparse;
the ``jobs`` commands print with rich (part of the ``trunner[jobs]`` extra), which
is imported only when they run, so that this module imports without it.

Exit codes: 0 success; 1 the operation failed (no such job, a job in the wrong
state, a store that cannot be reached); 2 a usage error (bad arguments, a bad
store URL, a module that cannot be imported); ``128 + N`` a worker stopped at
once by a second signal N.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import math
import os
import signal
import sys
from typing import TYPE_CHECKING, Final, NoReturn, final

import trio

from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.text import Text

    from .jobs import JobCounts, JobInfo, JobManager, JobState, JobStore, Registry

    Command = Callable[[argparse.Namespace], Awaitable[int]]

logger: Final = logging.getLogger("trunner.cli")

#: The environment variable that gives ``--store`` its default.
STORE_ENV: Final = "TRUNNER_STORE"

#: Exit codes.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

_STATE_NAMES: Final = ("pending", "running", "succeeded", "failed", "cancelled")
_FINISHED_NAMES: Final = ("succeeded", "failed", "cancelled")
_STATE_STYLES: Final = {
    "pending": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Seconds after a signal during which the same request again is ignored.
SIGNAL_REPEAT: Final = 0.5


@final
class CommandError(Exception):
    """A failure the command reports in one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# ---------------------------------------------------------------- parsing


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


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


def _add_log_level(parser: argparse.ArgumentParser, default: str) -> None:
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
        type=_positive_int,
        default=4,
        metavar="N",
        help="jobs run at once (default: 4)",
    )
    worker.add_argument(
        "--lease",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help=(
            "seconds a running job's lease lasts, renewed every third of it; a "
            "killed worker's jobs run elsewhere once it expires (default: 30)"
        ),
    )
    worker.add_argument(
        "--grace-period",
        type=_non_negative_float,
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
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds between looks at the store for new jobs (default: 1)",
    )
    _add_log_level(worker, "INFO")
    worker.set_defaults(command=_worker_command)

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
        choices=_STATE_NAMES,
        metavar="STATE",
        help=f"only jobs in this state: {', '.join(_STATE_NAMES)}",
    )
    listing.add_argument("--handler", help="only jobs of this handler")
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=100,
        metavar="N",
        help="show at most N jobs (default: 100)",
    )
    _add_log_level(listing, "WARNING")
    listing.set_defaults(command=_list_command)

    show = actions.add_parser(
        "show",
        help="every field of one job",
        description="Print every field of a job: args, result, error text.",
    )
    show.add_argument("job_id", metavar="ID")
    _add_store(show)
    _add_log_level(show, "WARNING")
    show.set_defaults(command=_show_command)

    cancel = actions.add_parser(
        "cancel",
        help="cancel a job",
        description=(
            "Cancel a job: a pending job never starts; a running one is cancelled\n"
            "by its worker at its next lease renewal; a finished one is left as it\n"
            "is."
        ),
        formatter_class=formatter,
    )
    cancel.add_argument("job_id", metavar="ID")
    _add_store(cancel)
    _add_log_level(cancel, "WARNING")
    cancel.set_defaults(command=_cancel_command)

    retry = actions.add_parser(
        "retry",
        help="run a failed or cancelled job again",
        description=(
            "Put a failed or cancelled job back to pending, with fresh attempts."
        ),
    )
    retry.add_argument("job_id", metavar="ID")
    _add_store(retry)
    _add_log_level(retry, "WARNING")
    retry.set_defaults(command=_retry_command)

    delete = actions.add_parser(
        "delete",
        help="delete a finished (or unreadable) job",
        description=(
            "Delete one job: a finished one, or one whose stored form cannot be\n"
            "read any more (corrupted). Pending and running jobs are refused:\n"
            "cancel them first."
        ),
        formatter_class=formatter,
    )
    delete.add_argument("job_id", metavar="ID")
    _add_store(delete)
    _add_log_level(delete, "WARNING")
    delete.set_defaults(command=_delete_command)

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
        type=_non_negative_float,
        metavar="S",
        help="only jobs that finished at least S seconds ago",
    )
    purge.add_argument(
        "--state",
        choices=_FINISHED_NAMES,
        nargs="+",
        action="extend",
        metavar="STATE",
        help=f"only jobs in these states: {', '.join(_FINISHED_NAMES)} (default: all)",
    )
    _add_log_level(purge, "WARNING")
    purge.set_defaults(command=_purge_command)

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
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds between looks at the store (default: 1)",
    )
    watch.add_argument(
        "--until-empty",
        action="store_true",
        help="stop once no job is pending or running",
    )
    _add_log_level(watch, "WARNING")
    watch.set_defaults(command=_watch_command)
    _add_serve(commands, formatter)
    return parser


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
    serve.set_defaults(command=_serve_command, log_level="INFO")


async def _serve_command(namespace: argparse.Namespace) -> int:
    try:
        from .service._command import UsageError, configure_parser, serve_command
    except ImportError as error:
        raise CommandError(
            f"'trunner serve' needs the service extra: pip install 'trunner[service]' "
            f"({error})"
        ) from None
    parser = argparse.ArgumentParser(
        prog="trunner serve",
        description="Serve the jobs of a store over HTTP, and run them unless "
        "--no-worker. Tokens come from --token-file, never the command line.",
    )
    configure_parser(parser)
    _add_log_level(parser, "INFO")
    try:
        arguments = parser.parse_args(namespace.arguments)
    except SystemExit as exit_:  # --help and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    _set_log_level(arguments.log_level)
    _import_jobs()
    try:
        return await serve_command(
            arguments, load_registry=load_registry, open_store=_open_store
        )
    except UsageError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def _set_log_level(level: str) -> None:
    """Change the level of the stderr log that `main` started."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "stream", None) is sys.stderr:
            handler.setLevel(level)
    number = logging.getLevelNamesMapping()[level]
    root.setLevel(min(number, root.getEffectiveLevel()))


# ---------------------------------------------------------------- running


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
    command: Command = namespace.command
    stop_logging = _start_logging(namespace.log_level)
    try:
        return trio.run(command, namespace)
    except KeyboardInterrupt:
        # Ctrl-C before a command listens for it (or after it stopped listening).
        _report("interrupted")
        return 128 + signal.SIGINT
    except BaseException as error:  # only known errors are reported, the rest re-raised
        return _report_known(error)
    finally:
        stop_logging()


def _start_logging(level: str) -> Callable[[], None]:
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


def _report(message: str) -> None:
    sys.stderr.write(f"trunner: error: {message}\n")
    sys.stderr.flush()


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = error  # pyright: ignore[reportUnknownVariableType]  # any group
        return [leaf for inner in group.exceptions for leaf in _leaves(inner)]
    return [error]


def _report_known(error: BaseException) -> int:
    """Report the errors a command expects in one line each; re-raise others.

    Errors may come in an exception group from the nurseries they crossed.
    """
    known: tuple[type[Exception], ...] = (CommandError,)
    try:
        from .jobs import JobError
    except ImportError:
        pass  # the command found the jobs extra missing: a CommandError
    else:
        known = (CommandError, JobError)
    leaves = _leaves(error)
    if not all(isinstance(leaf, known) for leaf in leaves):
        raise error
    code = EXIT_OK
    for leaf in leaves:
        if isinstance(leaf, CommandError):
            _report(leaf.message)
            code = max(code, leaf.code)
        else:
            _report(_one_line(leaf))
            code = max(code, EXIT_FAILED)
    return code


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def _import_jobs() -> None:
    """Import `trunner.jobs`, or say which extra the command needs."""
    try:
        importlib.import_module("trunner.jobs")
    except ImportError as error:
        raise CommandError(
            f"this command needs the jobs extra: pip install 'trunner[jobs]' ({error})"
        ) from error


def _open_store(url: str) -> JobStore:
    from .jobs import open_store

    try:
        return open_store(url)
    except (ValueError, TypeError) as error:
        raise CommandError(f"bad store URL: {_one_line(error)}", EXIT_USAGE) from None
    except ImportError as error:
        raise CommandError(
            f"the store {url!r} needs a driver that is not installed: {error}",
            EXIT_USAGE,
        ) from None


def _console() -> Console:
    try:
        from rich.console import Console
    except ImportError as error:
        raise CommandError(
            f"the jobs commands need rich: pip install 'trunner[jobs]' ({error})"
        ) from error
    # Piped output gets a width that keeps every column (rich picks 80).
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


# ---------------------------------------------------------------- worker


def load_registry(target: str) -> Registry:
    """Import ``MODULE:REGISTRY`` and return the `~trunner.jobs.Registry` it names.

    The current directory goes first on `sys.path` (if it is not there yet), as
    ``python -m`` does, so that a worker started in a project finds its modules.
    ``REGISTRY`` may be a dotted path (``app:jobs.registry``).

    Raises:
        CommandError: (a usage error) if the module cannot be imported, has no
            such attribute, or the attribute is not a ``Registry``.
    """
    from .jobs import Registry

    module_name, colon, path = target.partition(":")
    if not colon or not module_name or not path:
        raise CommandError(
            f"{target!r} is not MODULE:REGISTRY (for example myapp.jobs:registry)",
            EXIT_USAGE,
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as error:
        logger.debug("importing %r failed", module_name, exc_info=True)
        raise CommandError(
            f"cannot import module {module_name!r}: {type(error).__name__}: "
            f"{_one_line(error)} (--log-level DEBUG shows the traceback)",
            EXIT_USAGE,
        ) from error
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(
                f"module {module_name!r} has no attribute {path!r}", EXIT_USAGE
            ) from None
    if not isinstance(obj, Registry):
        raise CommandError(
            f"{target} is a {type(obj).__qualname__}, not a trunner.jobs.Registry",
            EXIT_USAGE,
        )
    return obj


async def _worker_command(namespace: argparse.Namespace) -> int:
    _import_jobs()
    from .jobs import open_job_manager

    registry = load_registry(namespace.target)
    store_url: str = namespace.store
    store = _open_store(store_url)
    if not len(registry):
        logger.warning(
            "%s has no handlers: this worker will run no job", namespace.target
        )
    if store_url.startswith("memory:"):
        logger.warning(
            "a memory:// store lives in this process: no other sees its jobs"
        )
    grace: float = namespace.grace_period
    # Signals are received from the start, so that one sent while the store
    # connects stops the worker as soon as it is up, gracefully.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        stop = _Stop()
        async with trio.open_nursery() as nursery:
            async with open_job_manager(
                store,
                registry,
                worker=True,
                concurrency=namespace.concurrency,
                lease=namespace.lease,
                grace_period=grace,
                poll_interval=namespace.poll_interval,
                name=namespace.name,
            ) as manager:
                logger.info(
                    "worker %s running jobs of %s on %s (concurrency %d, lease %g s, "
                    "grace period %g s); handlers: %s",
                    manager.name,
                    namespace.target,
                    store_url,
                    namespace.concurrency,
                    namespace.lease,
                    grace,
                    ", ".join(registry.names()) or "none",
                )
                signum = await signals.__anext__()
                stop.at = trio.current_time()
                logger.info(
                    "received %s: stopping; claiming no more jobs, running jobs get "
                    "%g s to finish (send it again to stop at once)",
                    signal.Signals(signum).name,
                    grace,
                )
                nursery.start_soon(_stop_on_more_signals, signals, manager, stop)
            nursery.cancel_scope.cancel()
    if stop.signum is not None:
        logger.info("worker %s stopped at once", manager.name)
        return 128 + stop.signum
    logger.info("worker %s stopped", manager.name)
    return EXIT_OK


@final
class _Stop:
    """What stopped the worker: when the first signal came, and a second one."""

    def __init__(self) -> None:
        self.at = 0.0
        self.signum: int | None = None


async def _next_signal(signals: AsyncIterator[int], after: float) -> int:
    """Return the next signal that comes at least `SIGNAL_REPEAT` after ``after``.

    One Ctrl-C can reach a worker twice: from the terminal, which signals the
    whole foreground process group, and from a wrapper (``uv run``, ``timeout``)
    that forwards it. Only a signal sent later is a second request.
    """
    async for signum in signals:
        if trio.current_time() - after >= SIGNAL_REPEAT:
            return signum
        logger.debug(
            "ignored %s: it came with the previous one", signal.Signals(signum).name
        )
    raise AssertionError("unreachable")  # pragma: no cover  # receivers never end


async def _stop_on_more_signals(
    signals: AsyncIterator[int],
    manager: JobManager,
    stop: _Stop,
) -> None:
    """While the manager drains: a second signal stops now, a third exits."""
    signum = await _next_signal(signals, stop.at)
    stop.signum = signum
    stop.at = trio.current_time()
    logger.warning(
        "received %s again: cancelling %d running jobs and handing them back "
        "(send it again to exit at once)",
        signal.Signals(signum).name,
        manager.running,
    )
    manager.shutdown()
    _exit_at_once(await _next_signal(signals, stop.at))


def _exit_at_once(signum: int) -> NoReturn:  # pragma: no cover  # a subprocess test
    # Handlers in threads cannot be cancelled, and would hold the exit up.
    logger.error(
        "received %s a third time: exiting now; the jobs still running are taken "
        "back by other workers once their lease expires",
        signal.Signals(signum).name,
    )
    logging.shutdown()
    os._exit(128 + signum)


# ---------------------------------------------------------------- jobs


async def _jobs_manager_command(
    namespace: argparse.Namespace,
    action: Callable[[JobManager, Console], Awaitable[int]],
    *,
    read_only: bool = False,
) -> int:
    _import_jobs()
    from .jobs import SQLiteJobStore, open_job_manager

    console = _console()
    store = _open_store(namespace.store)
    # A mistyped path must not make an empty database that then shows no
    # jobs: a read-only verb refuses a file that does not exist.
    if (
        read_only
        and isinstance(store, SQLiteJobStore)
        and not os.path.exists(store.path)  # noqa: ASYNC240  # one stat, at start
    ):
        raise CommandError(
            f"no SQLite database at {store.path!r} (from {namespace.store!r}); "
            "check the path: sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db",
            EXIT_USAGE,
        )
    async with open_job_manager(store, worker=False) as manager:
        return await action(manager, console)


def _state(name: str) -> JobState:
    from .jobs import JobState

    return JobState(name)


def _time(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _state_text(state: JobState) -> Text:
    from rich.text import Text

    return Text(state.value, style=_STATE_STYLES[state.value])


def _summary(counts: JobCounts) -> str:
    parts = [f"{counts[_state(name)]} {name}" for name in _STATE_NAMES]
    if counts.unknown:
        parts.append(f"unknown: {counts.unknown}")
    return f"{counts.total} jobs in the store: " + ", ".join(parts)


async def _list_command(namespace: argparse.Namespace) -> int:
    state_name: str | None = namespace.state
    handler: str | None = namespace.handler
    limit: int = namespace.limit

    async def action(manager: JobManager, console: Console) -> int:
        from rich.table import Table
        from rich.text import Text

        state = None if state_name is None else _state(state_name)
        jobs = await manager.list_jobs(state=state, handler=handler, limit=limit)
        counts = await manager.counts()
        if not jobs:
            console.print(Text(f"no jobs; {_summary(counts)}"))
            return EXIT_OK
        table = Table(caption=f"{len(jobs)} shown; {_summary(counts)}")
        table.add_column("id", overflow="fold")
        table.add_column("handler", overflow="fold")
        table.add_column("state", no_wrap=True)
        table.add_column("attempts", justify="right", no_wrap=True)
        for title in ("created (UTC)", "run at (UTC)", "finished (UTC)"):
            table.add_column(title, no_wrap=True)
        table.add_column("worker", overflow="fold")
        for job in jobs:
            table.add_row(
                Text(job.id),
                Text(job.handler),
                _state_text(job.state),
                f"{job.attempts}/{job.max_attempts}",
                _time(job.created_at),
                _time(job.run_at),
                _time(job.finished_at),
                Text(job.worker or "-"),
            )
        console.print(table)
        return EXIT_OK

    return await _jobs_manager_command(namespace, action, read_only=True)


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


async def _show_command(namespace: argparse.Namespace) -> int:
    job_id: str = namespace.job_id

    async def action(manager: JobManager, console: Console) -> int:
        job = await manager.get_job(job_id)
        # Soft wrap: long lines (of a traceback) stay whole, for copying.
        console.print(_job_view(job), soft_wrap=True)
        return EXIT_OK

    return await _jobs_manager_command(namespace, action, read_only=True)


def _job_view(job: JobInfo) -> Text:
    """Every field of ``job``, one per line; the error text (a traceback) last."""
    from rich.text import Text

    view = Text()
    fields: list[tuple[str, str | Text]] = [
        ("id", job.id),
        ("handler", job.handler),
        ("state", _state_text(job.state)),
        ("priority", job.priority.name),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("created", _time(job.created_at)),
        ("run at", _time(job.run_at)),
        ("started", _time(job.started_at)),
        ("finished", _time(job.finished_at)),
        ("worker", job.worker or "-"),
        ("args", _json(job.args)),
        ("result", "-" if job.result is None else _json(job.result)),
        ("error", "-" if job.error is None else "see below"),
    ]
    for name, value in fields:
        lines = Text(value) if isinstance(value, str) else value
        for index, line in enumerate(lines.split("\n", allow_blank=True)):
            view.append(f"{name:<10}" if index == 0 else " " * 10, style="bold")
            view.append_text(line)
            view.append("\n")
    if job.error is not None:
        view.append("error:\n", style="bold")
        view.append(job.error + "\n", style="red")
    view.rstrip()
    return view


async def _cancel_command(namespace: argparse.Namespace) -> int:
    job_id: str = namespace.job_id

    async def action(manager: JobManager, console: Console) -> int:
        from rich.text import Text

        from .jobs import JobState

        job = await manager.cancel_job(job_id)
        line = Text(f"job {job.id!r}: ")
        line.append_text(_state_text(job.state))
        if job.state is JobState.RUNNING:
            line.append(
                f"; cancel requested: its worker ({job.worker}) cancels it at its "
                "next lease renewal"
            )
        elif job.state is not JobState.CANCELLED:
            line.append("; it had finished already and is left as it is")
        console.print(line)
        return EXIT_OK

    return await _jobs_manager_command(namespace, action)


async def _delete_command(namespace: argparse.Namespace) -> int:
    job_id: str = namespace.job_id

    async def action(manager: JobManager, console: Console) -> int:
        await manager.delete_job(job_id)
        console.print(f"job {job_id!r}: deleted")
        return EXIT_OK

    return await _jobs_manager_command(namespace, action)


async def _retry_command(namespace: argparse.Namespace) -> int:
    job_id: str = namespace.job_id

    async def action(manager: JobManager, console: Console) -> int:
        from rich.text import Text

        job = await manager.retry_job(job_id)
        line = Text(f"job {job.id!r}: ")
        line.append_text(_state_text(job.state))
        line.append(f", attempts {job.attempts}/{job.max_attempts}")
        console.print(line)
        return EXIT_OK

    return await _jobs_manager_command(namespace, action)


async def _purge_command(namespace: argparse.Namespace) -> int:
    older_than: float | None = namespace.older_than
    state_names: list[str] | None = namespace.state

    async def action(manager: JobManager, console: Console) -> int:
        states = None
        if state_names is not None:
            states = frozenset(_state(name) for name in state_names)
        deleted = await manager.purge(older_than=older_than, states=states)
        console.print(f"deleted {deleted} finished job{'' if deleted == 1 else 's'}")
        return EXIT_OK

    return await _jobs_manager_command(namespace, action)


@final
class _Rate:
    """Jobs finished per second between the last two looks at the store."""

    def __init__(self) -> None:
        self.finished: int | None = None
        self.at = 0.0
        self.rate: float | None = None

    def update(self, finished: int, now: float) -> None:
        if self.finished is not None and now > self.at:
            # Purges and retries can lower the count: no negative throughput.
            self.rate = max(0, finished - self.finished) / (now - self.at)
        self.finished = finished
        self.at = now


def _watch_view(
    counts: JobCounts, rate: float | None, *, terminal: bool
) -> RenderableType:
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    finished = sum(counts[_state(name)] for name in _FINISHED_NAMES)
    total = sum(counts.values())  # the jobs that can finish: of a known state
    throughput = "-" if rate is None else f"{rate:.1f} jobs/s"
    remaining = total - finished
    eta = "-"
    if rate:
        eta = f"{remaining / rate:.0f} s"
    elif remaining == 0:
        eta = "0 s"
    line = Text()
    for name in _STATE_NAMES:
        line.append(f"{name} ", style=_STATE_STYLES[name])
        line.append(f"{counts[_state(name)]}  ")
    if counts.unknown:
        line.append(f"unknown: {counts.unknown}  ", style="bold red")
    line.append(f"| {finished}/{total} finished | {throughput} | eta {eta}")
    if not terminal:
        return line
    table = Table.grid(padding=(0, 1))
    table.add_row(ProgressBar(total=max(total, 1), completed=finished, width=40))
    table.add_row(line)
    return table


async def _watch_command(namespace: argparse.Namespace) -> int:
    interval: float = namespace.interval
    until_empty: bool = namespace.until_empty

    async def action(manager: JobManager, console: Console) -> int:
        from .jobs import JobState

        terminal = console.is_terminal
        rate = _Rate()

        async def look() -> bool:
            """Show the counts; return whether the queue is empty."""
            counts = await manager.counts()
            rate.update(
                sum(counts[_state(name)] for name in _FINISHED_NAMES),
                trio.current_time(),
            )
            view = _watch_view(counts, rate.rate, terminal=terminal)
            if live is None:
                console.print(view)
            else:
                live.update(view, refresh=True)
            busy = counts[JobState.PENDING] + counts[JobState.RUNNING]
            return busy == 0

        async def loop() -> None:
            while True:
                if await look() and until_empty:
                    return
                await trio.sleep(interval)

        live: Live | None = None
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                if terminal:
                    from rich.live import Live

                    with Live(console=console, auto_refresh=False) as live:
                        await loop()
                else:
                    await loop()
                nursery.cancel_scope.cancel()
        return EXIT_OK

    return await _jobs_manager_command(namespace, action, read_only=True)


async def _cancel_on_signal(
    signals: AsyncIterator[int], scope: trio.CancelScope
) -> None:
    await signals.__anext__()
    scope.cancel()
