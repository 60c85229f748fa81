"""Job handlers for the tests that run ``trunner worker`` in real processes.

``python -m trunner worker tests.jobs.crash_handlers:registry --store URL``
(from the project's root) runs them. When ``$TRUNNER_TEST_RUNS`` names a
directory, every run is recorded there, one file per process
(``runs-<pid>.txt``), with one line when the handler starts and one when it
returns: ``<job id> <pid> start|end <time.time()>``. The lines are written
with ``os.write`` on an ``O_APPEND`` descriptor, so a line written before the
process is SIGKILLed is in the file (the kernel holds it; no fsync is needed,
as the machine does not crash).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

import attrs
import trio

from trunner.jobs import Registry

RUNS_ENV: Final = "TRUNNER_TEST_RUNS"

registry = Registry()


@attrs.frozen
class Work:
    """A job that takes ``seconds`` of real time; ``job`` is its id, for the record."""

    job: str
    seconds: float


@attrs.frozen
class Run:
    """One line of a run record."""

    job: str
    pid: int
    event: str
    at: float


_fd: int | None = None


def _record(job: str, event: str) -> None:
    global _fd  # one descriptor per process, opened on first use
    directory = os.environ.get(RUNS_ENV)
    if not directory:
        return
    if _fd is None:
        path = Path(directory) / f"runs-{os.getpid()}.txt"
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, f"{job} {os.getpid()} {event} {time.time()!r}\n".encode())


@registry.handler("work")
async def work(args: Work) -> int:
    """Take ``args.seconds`` of (trio) time; return the pid that ran the job."""
    _record(args.job, "start")
    await trio.sleep(args.seconds)
    _record(args.job, "end")
    return os.getpid()


@registry.handler("fail")
async def fail(message: str) -> None:
    """Fail at once, with ``message``."""
    raise RuntimeError(message)


@registry.handler("block")
def block(seconds: float) -> None:
    """Hold a worker thread for ``seconds`` of real time: cancelling cannot stop it."""
    time.sleep(seconds)


def read_runs(directory: Path) -> list[Run]:
    """Read every run record in ``directory``, in time order."""
    runs: list[Run] = []
    for path in sorted(directory.glob("runs-*.txt")):
        for line in path.read_text().splitlines():
            job, pid, event, at = line.split()
            runs.append(Run(job, int(pid), event, float(at)))
    runs.sort(key=lambda run: run.at)
    return runs
