"""``trunner serve``: a worker and the HTTP service in one process.

``trunner serve MODULE:REGISTRY --store URL --token-file PATH`` opens a
`~trunner.jobs.JobManager` (a worker unless ``--no-worker``) and serves it
with `create_app` and `serve` until SIGINT or SIGTERM. Tokens are read from a
file, never from the command line (where ``ps`` would show them).
"""

from __future__ import annotations

import logging
import os
import signal
import stat
from typing import TYPE_CHECKING, Final

import trio

from ..jobs._cli._parse import (
    STORE_ENV,
    non_negative_float,
    positive_int,
    whole_number,
)
from ..jobs._urls import redact_url
from ._auth import BearerTokens

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Callable

    from ..jobs import JobStore, Registry

logger: Final = logging.getLogger("trunner.service")


class UsageError(Exception):
    """A bad argument of ``trunner serve``: reported in one line, exit code 2."""


class ListenError(Exception):
    """``trunner serve`` cannot listen on its address: one line, exit code 1."""


def read_token_file(path: str) -> BearerTokens:
    """Read bearer tokens: one per line, ``TOKEN`` or ``PRINCIPAL TOKEN``.

    Blank lines and lines starting with ``#`` are skipped. A token alone is
    known as ``token-<line number>``. A file that others may read is accepted
    with a warning.

    Raises:
        UsageError: the file cannot be read or holds no token.
    """
    try:
        with open(path, encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            lines = file.read().splitlines()
    except OSError as error:
        raise UsageError(f"cannot read the token file: {error}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the token file {path!r} is not UTF-8 text") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "the token file %s can be read by other users; chmod 600 it", path
        )
    tokens: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) == 1:
            principal, token = f"token-{number}", words[0]
        elif len(words) == 2:
            principal, token = words
        else:
            raise UsageError(
                f"{path}, line {number}: expected TOKEN or PRINCIPAL TOKEN"
            )
        if token in tokens:
            raise UsageError(f"{path}, line {number}: this token is listed twice")
        tokens[token] = principal
    if not tokens:
        raise UsageError(f"the token file {path!r} holds no token")
    return BearerTokens(tokens)


def _port(text: str) -> int:
    return whole_number(text, lambda value: 0 <= value <= 65535, "0 to 65535")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``trunner serve`` to ``parser``."""
    parser.add_argument(
        "target", metavar="MODULE:REGISTRY", help="where the handler registry is"
    )
    parser.add_argument(
        "--store",
        default=os.environ.get(STORE_ENV),
        required=STORE_ENV not in os.environ,
        metavar="URL",
        help=f"the job store, such as sqlite:///jobs.db (default: ${STORE_ENV})",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="the port (default: 8080; 0: any)"
    )
    parser.add_argument(
        "--token-file",
        required=True,
        metavar="PATH",
        help="bearer tokens, one per line: TOKEN or PRINCIPAL TOKEN",
    )
    parser.add_argument(
        "--no-worker",
        dest="worker",
        action="store_false",
        help="serve only: run no jobs (another process runs them)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="jobs run at once by the worker (default: 4)",
    )
    parser.add_argument(
        "--grace-period",
        type=non_negative_float,
        default=10.0,
        metavar="S",
        help="seconds running jobs get to finish when stopping (default: 10)",
    )


async def serve_command(
    namespace: argparse.Namespace,
    *,
    load_registry: Callable[[str], Registry],
    open_store: Callable[[str], JobStore],
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run ``trunner serve`` until SIGINT or SIGTERM; return the exit code.

    The first signal stops gracefully: the server closes (event streams end),
    then the worker claims no more jobs and gives running ones the grace
    period. A second signal cancels the running jobs at once and hands them
    back. ``task_status`` receives the service's URL once it listens.

    Raises:
        UsageError: a bad token file.
        ListenError: the address cannot be bound (in use, an unknown host).
    """
    from ..jobs import open_job_manager
    from ._app import create_app
    from ._server import serve

    auth = read_token_file(namespace.token_file)
    registry = load_registry(namespace.target)
    store = open_store(namespace.store)
    bind_error: OSError | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            async with open_job_manager(
                store,
                registry,
                worker=namespace.worker,
                concurrency=namespace.concurrency,
                grace_period=namespace.grace_period,
            ) as manager:
                app = create_app(manager, auth=auth)
                try:
                    async with serve(
                        app, host=namespace.host, port=namespace.port
                    ) as server:
                        logger.info(
                            "serving %s on %s at %s (%s); handlers: %s",
                            namespace.target,
                            redact_url(namespace.store),
                            server.url,
                            "worker" if namespace.worker else "no worker",
                            ", ".join(registry.names()) or "none",
                        )
                        task_status.started(server.url)
                        signum = await signals.__anext__()
                        logger.info(
                            "received %s: stopping (again: cancel the running jobs)",
                            signal.Signals(signum).name,
                        )
                except OSError as error:
                    # Only binding raises a bare OSError. Raised from here it
                    # would leave the manager's block wrapped in exception
                    # groups: it is raised once the manager is closed.
                    bind_error = error
                else:
                    # The server is closed; leaving the manager's block drains it.
                    nursery.start_soon(
                        _stop_on_second_signal, signals, manager.shutdown
                    )
            nursery.cancel_scope.cancel()
    if bind_error is not None:
        host = f"[{namespace.host}]" if ":" in namespace.host else namespace.host
        reason = bind_error.strerror or str(bind_error)
        raise ListenError(f"cannot listen on {host}:{namespace.port}: {reason}")
    logger.info("stopped")
    return 0


async def _stop_on_second_signal(
    signals: AsyncIterator[int], shutdown: Callable[[], None]
) -> None:
    async for signum in signals:
        logger.warning(
            "received %s again: cancelling the running jobs",
            signal.Signals(signum).name,
        )
        shutdown()
        return
