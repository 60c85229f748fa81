"""Run every program of examples/ under an autojumping clock."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
#: Examples that talk over real sockets (``REAL_CLOCK = True``) run in real
#: time: a virtual clock would jump while their bytes are in flight.
REAL_TIME = [p for p in EXAMPLES if "\nREAL_CLOCK = True" in p.read_text()]
VIRTUAL_TIME = [p for p in EXAMPLES if p not in REAL_TIME]


#: The examples that need an extra: the module it brings, and the extra.
EXTRAS = {
    "crash_recovery": ("cattrs", "jobs"),
    "cron_jobs": ("cattrs", "jobs"),
    "demo": ("cattrs", "jobs"),
    "distributed_workers": ("coredis", "redis"),
    "http_service": ("hypercorn", "service"),
    "job_manager": ("cattrs", "jobs"),
    "postgres_jobs": ("psycopg", "postgres"),
    "cpu_parallel": ("trio_parallel", "process"),
}


def load_main(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], Awaitable[None]]:
    name = f"examples.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered for the whole test, as an import would: dataclasses look it
    # up, and pickle finds a process runner's functions by module and name
    # (the worker process imports examples.<name> from the project root).
    monkeypatch.setitem(sys.modules, name, module)
    needs = EXTRAS.get(path.stem)
    if needs is not None:
        pytest.importorskip(needs[0], reason=f"needs the {needs[1]!r} extra")
    spec.loader.exec_module(module)
    main: Callable[[], Awaitable[None]] = module.main
    return main


def test_examples_found() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("path", VIRTUAL_TIME, ids=[p.stem for p in VIRTUAL_TIME])
async def test_example_runs(
    path: Path,
    autojump_clock: trio.testing.MockClock,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main = load_main(path, monkeypatch)

    # Thread work holds the clock still (the scheduler sees to it), so the
    # plain zero-threshold autojump clock runs the examples in virtual time.
    with trio.fail_after(60):
        await main()

    check_output(path, capsys, caplog)


@pytest.mark.parametrize("path", REAL_TIME, ids=[p.stem for p in REAL_TIME])
# httpx and httpcore leave their body generators to the garbage collector when
# an event stream is closed before its end; trio's finalizer then warns.
@pytest.mark.filterwarnings(
    r"ignore:Async generator '(httpx|httpcore)\..*' was garbage "
    "collected:ResourceWarning"
)
async def test_real_time_example_runs(
    path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main = load_main(path, monkeypatch)

    with trio.fail_after(60):
        await main()

    check_output(path, capsys, caplog)


def check_output(
    path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    out, err = capsys.readouterr()
    assert len(out.splitlines()) >= 3, f"{path.name} printed too little:\n{out}"
    assert "Traceback" not in out + err
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
