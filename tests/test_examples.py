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
    spec.loader.exec_module(module)
    main: Callable[[], Awaitable[None]] = module.main
    return main


def test_examples_found() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
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

    out, err = capsys.readouterr()
    assert len(out.splitlines()) >= 3, f"{path.name} printed too little:\n{out}"
    assert "Traceback" not in out + err
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
