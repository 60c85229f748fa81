"""Opening what a verb works on: its store, a manager on it, the console."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from .. import SQLiteJobStore, open_job_manager, open_store
from .._urls import redact_url
from ._report import EXIT_USAGE, CommandError, one_line

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

    from rich.console import Console

    from .. import JobManager, JobStore


def store_from_url(url: str) -> JobStore:
    """Return the store that ``url`` names (unconnected), or a usage error."""
    try:
        return open_store(url)
    except (ValueError, TypeError) as error:
        raise CommandError(f"bad store URL: {one_line(error)}", EXIT_USAGE) from None
    except ImportError as error:
        raise CommandError(
            f"the store {redact_url(url)!r} needs a driver that is not installed: "
            f"{error}",
            EXIT_USAGE,
        ) from None


def console() -> Console:
    """Return rich's console for stdout, or say that rich is missing."""
    try:
        from rich.console import Console
    except ImportError as error:
        raise CommandError(
            f"the jobs commands need rich: pip install 'trunner[jobs]' ({error})"
        ) from error
    # Piped output gets a width that keeps every column (rich picks 80).
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


async def run_on_manager(
    namespace: argparse.Namespace,
    action: Callable[[JobManager, Console], Awaitable[int]],
    *,
    read_only: bool = False,
) -> int:
    """Run ``action`` with a manager (``worker=False``) on ``--store``.

    With ``read_only``, a ``sqlite:///`` path whose file does not exist is a
    usage error, rather than a new empty database.
    """
    output = console()
    store = store_from_url(namespace.store)
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
        return await action(manager, output)
