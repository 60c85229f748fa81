"""What the jobs verbs print: jobs, tables and counts, rendered with rich.

rich is imported by each function, when a verb prints, so that the verbs that
print nothing through it (``worker``) run without it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Final, final

from .. import JobState
from ._parse import FINISHED_NAMES, STATE_NAMES

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

    from .. import JobCounts, JobInfo

_STATE_STYLES: Final = {
    "pending": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def state_of(name: str) -> JobState:
    """The `JobState` of that value (one of `STATE_NAMES`)."""
    return JobState(name)


def time_text(value: dt.datetime | None) -> str:
    """A time as UTC text, to the second; ``-`` for None."""
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def state_text(state: JobState) -> Text:
    """A state's name, in its colour."""
    from rich.text import Text

    return Text(state.value, style=_STATE_STYLES[state.value])


def job_line(job: JobInfo) -> Text:
    """``job 'ID': STATE``, the state in its colour: what an action left."""
    from rich.text import Text

    line = Text(f"job {job.id!r}: ")
    line.append_text(state_text(job.state))
    return line


def summary(counts: JobCounts) -> str:
    """How many jobs there are in all and in each state, in one line."""
    parts = [f"{counts[state_of(name)]} {name}" for name in STATE_NAMES]
    if counts.unknown:
        parts.append(f"unknown: {counts.unknown}")
    return f"{counts.total} jobs in the store: " + ", ".join(parts)


def json_text(value: object) -> str:
    """A JSON value, indented, keys sorted."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def job_view(job: JobInfo) -> Text:
    """Every field of ``job``, one per line; the error text (a traceback) last."""
    from rich.text import Text

    view = Text()
    fields: list[tuple[str, str | Text]] = [
        ("id", job.id),
        ("handler", job.handler),
        ("state", state_text(job.state)),
        ("priority", job.priority.name),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("created", time_text(job.created_at)),
        ("run at", time_text(job.run_at)),
        ("started", time_text(job.started_at)),
        ("finished", time_text(job.finished_at)),
        ("worker", job.worker or "-"),
        ("args", json_text(job.args)),
        ("result", "-" if job.result is None else json_text(job.result)),
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


@final
class Rate:
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


def watch_view(
    counts: JobCounts, rate: float | None, *, terminal: bool
) -> RenderableType:
    """The counts, throughput and progress in one line (with a bar on a terminal)."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    finished = sum(counts[state_of(name)] for name in FINISHED_NAMES)
    total = sum(counts.values())  # the jobs that can finish: of a known state
    throughput = "-" if rate is None else f"{rate:.1f} jobs/s"
    remaining = total - finished
    eta = "-"
    if rate:
        eta = f"{remaining / rate:.0f} s"
    elif remaining == 0:
        eta = "0 s"
    line = Text()
    for name in STATE_NAMES:
        line.append(f"{name} ", style=_STATE_STYLES[name])
        line.append(f"{counts[state_of(name)]}  ")
    if counts.unknown:
        line.append(f"unknown: {counts.unknown}  ", style="bold red")
    line.append(f"| {finished}/{total} finished | {throughput} | eta {eta}")
    if not terminal:
        return line
    table = Table.grid(padding=(0, 1))
    table.add_row(ProgressBar(total=max(total, 1), completed=finished, width=40))
    table.add_row(line)
    return table
