"""The verbs on jobs (``trunner jobs list|show|...``) and ``trunner serve``.

`COMMANDS` maps the word each subparser leaves in ``namespace.command`` to the
function that runs it. This module loads the jobs' manager and stores: the
command imports it only once its arguments parse.
"""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING, Final

import trio

from .. import JobState
from ._logs import set_log_level
from ._parse import FINISHED_NAMES, add_log_level
from ._report import EXIT_OK, EXIT_USAGE, CommandError
from ._stores import run_on_manager, store_from_url
from ._views import (
    Rate,
    job_line,
    job_view,
    state_of,
    state_text,
    summary,
    time_text,
    watch_view,
)
from ._worker import load_registry, worker_command

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from rich.console import Console
    from rich.live import Live

    from .. import JobManager

    Command = Callable[[argparse.Namespace], Awaitable[int]]


async def _list_command(namespace: argparse.Namespace) -> int:
    state_name: str | None = namespace.state
    handler: str | None = namespace.handler
    limit: int = namespace.limit

    async def action(manager: JobManager, console: Console) -> int:
        from rich.table import Table
        from rich.text import Text

        state = None if state_name is None else state_of(state_name)
        jobs = await manager.list_jobs(state=state, handler=handler, limit=limit)
        counts = await manager.counts()
        if not jobs:
            console.print(Text(f"no jobs; {summary(counts)}"))
            return EXIT_OK
        table = Table(caption=f"{len(jobs)} shown; {summary(counts)}")
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
                state_text(job.state),
                f"{job.attempts}/{job.max_attempts}",
                time_text(job.created_at),
                time_text(job.run_at),
                time_text(job.finished_at),
                Text(job.worker or "-"),
            )
        console.print(table)
        return EXIT_OK

    return await run_on_manager(namespace, action, read_only=True)


async def _show_command(namespace: argparse.Namespace) -> int:
    job_id: str = namespace.job_id

    async def action(manager: JobManager, console: Console) -> int:
        job = await manager.get_job(job_id)
        # Soft wrap: long lines (of a traceback) stay whole, for copying.
        console.print(job_view(job), soft_wrap=True)
        return EXIT_OK

    return await run_on_manager(namespace, action, read_only=True)


async def _cancel_command(namespace: argparse.Namespace) -> int:
    job_id: str = namespace.job_id

    async def action(manager: JobManager, console: Console) -> int:
        job = await manager.cancel_job(job_id)
        line = job_line(job)
        if job.state is JobState.RUNNING:
            line.append(
                f"; cancel requested: its worker ({job.worker}) cancels it at its "
                "next lease renewal"
            )
        elif job.state is not JobState.CANCELLED:
            line.append("; it had finished already and is left as it is")
        console.print(line)
        return EXIT_OK

    return await run_on_manager(namespace, action)


async def _delete_command(namespace: argparse.Namespace) -> int:
    job_id: str = namespace.job_id

    async def action(manager: JobManager, console: Console) -> int:
        await manager.delete_job(job_id)
        console.print(f"job {job_id!r}: deleted")
        return EXIT_OK

    return await run_on_manager(namespace, action)


async def _retry_command(namespace: argparse.Namespace) -> int:
    job_id: str = namespace.job_id

    async def action(manager: JobManager, console: Console) -> int:
        job = await manager.retry_job(job_id)
        line = job_line(job)
        line.append(f", attempts {job.attempts}/{job.max_attempts}")
        console.print(line)
        return EXIT_OK

    return await run_on_manager(namespace, action)


async def _purge_command(namespace: argparse.Namespace) -> int:
    older_than: float | None = namespace.older_than
    state_names: list[str] | None = namespace.state

    async def action(manager: JobManager, console: Console) -> int:
        states = None
        if state_names is not None:
            states = frozenset(state_of(name) for name in state_names)
        deleted = await manager.purge(older_than=older_than, states=states)
        console.print(f"deleted {deleted} finished job{'' if deleted == 1 else 's'}")
        return EXIT_OK

    return await run_on_manager(namespace, action)


async def _watch_command(namespace: argparse.Namespace) -> int:
    interval: float = namespace.interval
    until_empty: bool = namespace.until_empty

    async def action(manager: JobManager, console: Console) -> int:
        terminal = console.is_terminal
        rate = Rate()

        async def look() -> bool:
            """Show the counts; return whether the queue is empty."""
            counts = await manager.counts()
            rate.update(
                sum(counts[state_of(name)] for name in FINISHED_NAMES),
                trio.current_time(),
            )
            view = watch_view(counts, rate.rate, terminal=terminal)
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

    return await run_on_manager(namespace, action, read_only=True)


async def _cancel_on_signal(
    signals: AsyncIterator[int], scope: trio.CancelScope
) -> None:
    await signals.__anext__()
    scope.cancel()


async def _serve_command(namespace: argparse.Namespace) -> int:
    try:
        from ...service._command import (
            ListenError,
            UsageError,
            configure_parser,
            serve_command,
        )
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
    add_log_level(parser, "INFO")
    try:
        arguments = parser.parse_args(namespace.arguments)
    except SystemExit as exit_:  # --help and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    set_log_level(arguments.log_level)
    try:
        return await serve_command(
            arguments, load_registry=load_registry, open_store=store_from_url
        )
    except UsageError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    except ListenError as error:
        raise CommandError(str(error)) from None


#: What runs each command, by the word its subparser sets (see `._parse`).
COMMANDS: Final[dict[str, Command]] = {
    "worker": worker_command,
    "jobs list": _list_command,
    "jobs show": _show_command,
    "jobs cancel": _cancel_command,
    "jobs retry": _retry_command,
    "jobs delete": _delete_command,
    "jobs purge": _purge_command,
    "jobs watch": _watch_command,
    "serve": _serve_command,
}
