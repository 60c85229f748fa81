"""The ``trunner`` command, in this process (``main(argv)``) and as a real process.

The in-process tests seed a SQLite file with jobs in every state, run
``main([...])`` and read what it printed. The subprocess tests start
``python -m trunner worker tests.jobs.crash_handlers:registry`` and signal it;
they run on real time, which the other process forces on them, and poll the
store with a timeout.
"""

# pyright: reportPrivateUsage=false
# White-box tests of the CLI's rendering helpers.

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import runpy
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from rich.text import Text

import trunner
from trunner.jobs import (
    JobCounts,
    JobInfo,
    JobManager,
    JobRecord,
    JobState,
    MemoryJobStore,
    Registry,
    SQLiteJobStore,
    StoreError,
    _cli,
    open_job_manager,
    open_store,
)
from trunner.jobs._cli import _logs, _parse, _report, _stores, _verbs, _views, _worker

from ..test_imports import modules_loaded_by
from .crash_handlers import Work, registry

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

ROOT = Path(__file__).parent.parent.parent
HANDLERS = "tests.jobs.crash_handlers:registry"
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Wide tables, whatever terminal runs the tests; no store from the outside.
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv(_parse.STORE_ENV, raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    # load_registry puts the current directory on sys.path: undo it.
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def record(
    job_id: str,
    state: JobState,
    *,
    handler: str = "work",
    attempts: int = 0,
    minutes: int = 0,
    **fields: object,
) -> JobRecord:
    created = T0 + dt.timedelta(minutes=minutes)
    return JobRecord(
        id=job_id,
        handler=handler,
        args='{"job": "%s", "seconds": 0.01}' % job_id,  # noqa: UP031  # JSON braces
        state=state,
        priority=1,
        attempts=attempts,
        max_attempts=3,
        created_at=created,
        run_at=created,
        **fields,  # type: ignore[arg-type]  # the optional fields of a test record
    )


async def _seed(path: Path, records: list[JobRecord]) -> None:
    async with trunner.open_scheduler():
        store = SQLiteJobStore(path)
        await store.connect()
        try:
            await store.insert(records)
        finally:
            await store.disconnect()


def seed(path: Path) -> None:
    """Store one job in each state, and one whose id looks like rich markup."""
    finished = T0 + dt.timedelta(minutes=10)
    trio.run(
        _seed,
        path,
        [
            record("p1", JobState.PENDING, minutes=1),
            record(
                "r1",
                JobState.RUNNING,
                attempts=1,
                minutes=2,
                started_at=T0,
                worker="w-1",
                lease_until=T0 + dt.timedelta(days=1000),
            ),
            record(
                "s1",
                JobState.SUCCEEDED,
                attempts=1,
                minutes=3,
                started_at=T0,
                finished_at=finished,
                result='{"pid": 42}',
                worker="w-2",
            ),
            record(
                "f1",
                JobState.FAILED,
                handler="other",
                attempts=3,
                minutes=4,
                started_at=T0,
                finished_at=finished,
                error="Traceback (most recent call last):\nValueError: [bold]boom",
                worker="w-2",
            ),
            record("c1", JobState.CANCELLED, minutes=5, finished_at=finished),
            record("[red]x", JobState.PENDING, minutes=6),
        ],
    )


async def _get(path: Path, job_id: str) -> JobInfo:
    async with open_job_manager(open_store(url(path)), worker=False) as manager:
        return await manager.get_job(job_id)


def get(path: Path, job_id: str) -> JobInfo:
    return trio.run(_get, path, job_id)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- parsing


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"trunner {trunner.__version__}\n", "")


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")

    assert code == 0
    for word in ("worker", "jobs", "exit codes", "TRUNNER_STORE"):
        assert word in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["jobs"], "required: ACTION"),
        (["jobs", "list"], "required: --store"),
        (["jobs", "list", "--store", "memory://", "--state", "lost"], "invalid choice"),
        (["jobs", "list", "--store", "memory://", "--limit", "0"], "at least 1"),
        (
            ["jobs", "list", "--store", "memory://", "--limit", "x"],
            "not a whole number",
        ),
        (
            ["jobs", "purge", "--store", "memory://", "--state", "running"],
            "invalid choice",
        ),
        (["jobs", "purge", "--store", "memory://", "--older-than", "-1"], ">= 0"),
        (
            ["jobs", "purge", "--store", "memory://", "--older-than", "x"],
            "not a number",
        ),
        (["jobs", "watch", "--store", "memory://", "--interval", "0"], "positive"),
        (["jobs", "watch", "--store", "memory://", "--interval", "x"], "not a number"),
        (["worker", HANDLERS, "--store", "memory://", "--lease", "inf"], "positive"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)

    assert (code, out) == (2, "")
    assert message in err


def test_store_defaults_to_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    seed(db)
    monkeypatch.setenv(_parse.STORE_ENV, url(db))

    code, out, _ = run(capsys, "jobs", "list")

    assert code == 0
    assert "p1" in out


# ---------------------------------------------------------------- jobs list, show


def test_list_shows_jobs_newest_first(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    seed(db)

    code, out, err = run(capsys, "jobs", "list", "--store", url(db))

    assert (code, err) == (0, "")
    lines = out.splitlines()
    ids = [line.split()[1] for line in lines if line.startswith("│")]
    assert ids == ["[red]x", "c1", "f1", "s1", "r1", "p1"]
    (failed,) = [line for line in lines if " f1 " in line]
    assert failed.split("│")[2:9] == [
        " other   ",
        " failed    ",
        "      3/3 ",
        " 2026-01-01 12:04:00 ",
        " 2026-01-01 12:04:00 ",
        " 2026-01-01 12:10:00 ",
        " w-2    ",
    ]
    assert "6 shown; 6 jobs in the store: 2 pending, 1 running, 1 succeeded" in out


def write_unknown_state(path: Path, job_id: str) -> None:
    """Give a stored job a state this version does not know, with raw SQL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE trunner_jobs SET state = 'paused' WHERE id = ?", (job_id,))
    conn.close()


def test_list_counts_jobs_of_an_unknown_state(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    seed(db)
    write_unknown_state(db, "p1")

    code, out, _ = run(capsys, "jobs", "list", "--store", url(db))

    assert code == 0
    assert (
        "5 shown; 6 jobs in the store: 1 pending, 1 running, 1 succeeded, 1 failed, "
        "1 cancelled, unknown: 1"
    ) in out.replace("\n", " ")


def test_list_filters(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    seed(db)

    def ids(*options: str) -> list[str]:
        code, out, _ = run(capsys, "jobs", "list", "--store", url(db), *options)
        assert code == 0
        return [line.split()[1] for line in out.splitlines() if line.startswith("│")]

    assert ids("--state", "pending") == ["[red]x", "p1"]
    assert ids("--handler", "other") == ["f1"]
    assert ids("--limit", "2") == ["[red]x", "c1"]
    assert ids("--handler", "nothing") == []


def test_list_of_an_empty_store(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "jobs", "list", "--store", "memory://")

    assert code == 0
    assert out.startswith("no jobs; 0 jobs in the store: 0 pending")


def test_show_prints_every_field(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    seed(db)

    code, out, err = run(capsys, "jobs", "show", "f1", "--store", url(db))

    assert (code, err) == (0, "")
    fields = {
        line.split()[0]: " ".join(line.split()[1:])
        for line in out.splitlines()
        if line and not line.startswith(" ")
    }
    assert fields["id"] == "f1"
    assert fields["handler"] == "other"
    assert fields["state"] == "failed"
    assert fields["priority"] == "USER_VISIBLE"
    assert fields["attempts"] == "3 of 3"
    assert fields["created"] == "2026-01-01 12:04:00"
    assert fields["started"] == "2026-01-01 12:00:00"
    assert fields["finished"] == "2026-01-01 12:10:00"
    assert fields["worker"] == "w-2"
    assert fields["result"] == "-"
    assert fields["error"] == "see below"
    assert '"job": "f1",' in out
    assert '"seconds": 0.01' in out
    assert out.endswith(
        "error:\nTraceback (most recent call last):\nValueError: [bold]boom\n"
    )


def test_show_result_and_markup_ids(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    seed(db)

    _, succeeded, _ = run(capsys, "jobs", "show", "s1", "--store", url(db))
    _, markup, _ = run(capsys, "jobs", "show", "[red]x", "--store", url(db))

    assert 'result    {\n            "pid": 42\n          }' in succeeded
    assert "error     -\n" in succeeded
    assert markup.startswith("id        [red]x")


def test_show_unknown_job_exits_1(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    seed(db)

    assert run(capsys, "jobs", "show", "nope", "--store", url(db)) == (
        1,
        "",
        "trunner: error: no job with id 'nope'\n",
    )


# ---------------------------------------------------------------- cancel, retry, purge


def test_cancel(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    seed(db)
    store = ("--store", url(db))

    pending = run(capsys, "jobs", "cancel", "p1", *store)
    running = run(capsys, "jobs", "cancel", "r1", *store)
    succeeded = run(capsys, "jobs", "cancel", "s1", *store)
    missing = run(capsys, "jobs", "cancel", "nope", *store)

    assert pending == (0, "job 'p1': cancelled\n", "")
    assert running == (
        0,
        "job 'r1': running; cancel requested: its worker (w-1) cancels it at its "
        "next lease renewal\n",
        "",
    )
    assert succeeded == (
        0,
        "job 's1': succeeded; it had finished already and is left as it is\n",
        "",
    )
    assert missing == (1, "", "trunner: error: no job with id 'nope'\n")
    assert get(db, "p1").state is JobState.CANCELLED


def test_retry(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    seed(db)
    store = ("--store", url(db))

    failed = run(capsys, "jobs", "retry", "f1", *store)
    pending = run(capsys, "jobs", "retry", "p1", *store)
    missing = run(capsys, "jobs", "retry", "nope", *store)

    assert failed == (0, "job 'f1': pending, attempts 0/3\n", "")
    assert pending == (
        1,
        "",
        "trunner: error: job 'p1' is pending; only failed or cancelled jobs can be "
        "retried\n",
    )
    assert missing == (1, "", "trunner: error: no job with id 'nope'\n")
    assert get(db, "f1").state is JobState.PENDING


def test_purge(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    seed(db)
    store = ("--store", url(db))

    failed = run(
        capsys, "jobs", "purge", "--state", "failed", "--state", "failed", *store
    )
    recent = run(capsys, "jobs", "purge", "--older-than", "1e9", *store)
    rest = run(capsys, "jobs", "purge", "--state", "succeeded", "cancelled", *store)
    again = run(capsys, "jobs", "purge", *store)

    assert failed == (0, "deleted 1 finished job\n", "")
    assert recent == (0, "deleted 0 finished jobs\n", "")
    assert rest == (0, "deleted 2 finished jobs\n", "")
    assert again == (0, "deleted 0 finished jobs\n", "")
    _, out, _ = run(capsys, "jobs", "list", *store)
    assert "3 jobs in the store: 2 pending, 1 running, 0 succeeded, 0 failed" in out


# ---------------------------------------------------------------- stores


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("jobs.db", "bad store URL: 'jobs.db' is not a store URL"),
        ("ftp://x", "bad store URL: unsupported store URL scheme 'ftp'"),
        (
            "sqlite:///:memory:",
            "bad store URL: 'sqlite:///:memory:' is not a SQLite file",
        ),
    ],
)
def test_bad_store_url_exits_2(
    capsys: pytest.CaptureFixture[str], store: str, message: str
) -> None:
    code, out, err = run(capsys, "jobs", "list", "--store", store)

    assert (code, out) == (2, "")
    assert err.startswith(f"trunner: error: {message}")
    assert err.count("\n") == 1


def test_unreachable_store_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = url(tmp_path / "no" / "such" / "dir" / "jobs.db")

    code, out, err = run(capsys, "jobs", "cancel", "x", "--store", store)

    assert (code, out) == (1, "")
    assert err.startswith("trunner: error: SQLite store ")
    assert err.endswith("cannot be opened: unable to open database file\n")


def test_missing_driver_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_driver(store_url: str) -> None:
        raise ModuleNotFoundError(f"No module named 'coredis' (for {store_url})")

    monkeypatch.setattr(_stores, "open_store", no_driver)

    code, _, err = run(capsys, "jobs", "list", "--store", "redis://localhost/0")

    assert code == 2
    assert err == (
        "trunner: error: the store 'redis://localhost/0' needs a driver that is not "
        "installed: No module named 'coredis' (for redis://localhost/0)\n"
    )


def test_missing_extra_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if cattrs (trunner.jobs) or rich were not installed.
    monkeypatch.setitem(sys.modules, "rich.console", None)
    code, _, err = run(capsys, "jobs", "list", "--store", "memory://")
    assert (code, err.split("(")[0]) == (
        1,
        "trunner: error: the jobs commands need rich: pip install 'trunner[jobs]' ",
    )


@pytest.mark.parametrize("argv", [["--help"], ["worker", HANDLERS]])
def test_missing_jobs_extra_exits_1(argv: list[str]) -> None:
    # A fresh interpreter, where cattrs cannot be imported: as on a plain
    # pip install trunner, which installs the script too.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['cattrs'] = None\n"
            "from trunner.__main__ import main\n"
            f"sys.exit(main({argv!r}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "trunner: error: trunner.jobs needs 'cattrs', which is not installed: it "
        "comes with the 'jobs' extra, pip install 'trunner[jobs]'\n"
    )


def test_unexpected_errors_keep_their_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(namespace: object) -> int:
        del namespace
        await trio.lowlevel.checkpoint()
        raise ExceptionGroup("two", [ValueError("a"), _report.CommandError("b")])

    monkeypatch.setitem(_verbs.COMMANDS, "jobs list", broken)

    with pytest.RaisesGroup(ValueError, _report.CommandError):
        _cli.main(["jobs", "list", "--store", "memory://"])


def test_errors_in_a_group_are_reported_one_per_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(namespace: object) -> int:
        del namespace
        await trio.lowlevel.checkpoint()
        raise ExceptionGroup("two", [_report.CommandError("usage", 2), StoreError("")])

    monkeypatch.setitem(_verbs.COMMANDS, "jobs list", broken)

    code, _, err = run(capsys, "jobs", "list", "--store", "memory://")

    assert (code, err) == (2, "trunner: error: usage\ntrunner: error: StoreError\n")


def test_keyboard_interrupt_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def interrupted(namespace: object) -> int:
        del namespace
        await trio.lowlevel.checkpoint()
        raise KeyboardInterrupt

    monkeypatch.setitem(_verbs.COMMANDS, "jobs list", interrupted)

    assert run(capsys, "jobs", "list", "--store", "memory://") == (
        130,
        "",
        "trunner: error: interrupted\n",
    )


# The modules that --help must not load: the manager, the registry and the
# stores (and cattrs), their drivers, the verbs, rich and the service.
HEAVY = (
    "trunner.jobs._manager",
    "trunner.jobs._registry",
    "trunner.jobs._serialize",
    "trunner.jobs._memory",
    "trunner.jobs._sqlite",
    "trunner.jobs._postgres",
    "trunner.jobs._redis",
    "trunner.jobs._cli._verbs",
    "trunner.service",
    "cattrs",
    "sqlite3",
    "psycopg",
    "coredis",
    "rich",
)


@pytest.mark.parametrize(
    "code",
    [
        # The script's entry point, python -m trunner, the command's package.
        "from trunner.__main__ import main\nmain(['--help'])",
        "sys.argv = ['trunner', 'jobs', 'list', '--help']\n"
        "with contextlib.suppress(SystemExit):\n"
        "    runpy.run_module('trunner', run_name='__main__')",
        "import trunner.jobs._cli\ntrunner.jobs._cli.main(['worker', '--help'])",
        # A usage error (no --store) loads no more.
        "import trunner.jobs._cli\ntrunner.jobs._cli.main(['jobs', 'list'])",
    ],
)
def test_help_loads_no_verb_store_driver_or_service(code: str) -> None:
    loaded = modules_loaded_by(code)

    assert "trunner.jobs._cli._parse" in loaded
    assert {m for m in loaded if m.startswith(HEAVY)} == set()


def test_importing_dunder_main_loads_no_jobs() -> None:
    loaded = modules_loaded_by("import trunner.__main__")

    assert "trunner.__main__" in loaded
    assert {m for m in loaded if m.startswith("trunner.jobs")} == set()


def test_the_trunner_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("trunner")
    if not script.exists():
        pytest.skip("the trunner script is not installed next to this Python")

    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout == f"trunner {trunner.__version__}\n"


def test_python_dash_m_runs_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["trunner", "--version"])
    monkeypatch.delitem(sys.modules, "trunner.__main__", raising=False)

    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("trunner", run_name="__main__")

    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"trunner {trunner.__version__}\n"


# ---------------------------------------------------------------- worker: loading


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "nocolon",
            "'nocolon' is not MODULE:REGISTRY (for example myapp.jobs:registry)",
        ),
        (":registry", "':registry' is not MODULE:REGISTRY"),
        (
            "no_such_module_xyz:registry",
            "cannot import module 'no_such_module_xyz': "
            "ModuleNotFoundError: No module named 'no_such_module_xyz' (--log-level "
            "DEBUG shows the traceback)",
        ),
        (
            "broken_handlers:registry",
            "cannot import module 'broken_handlers': "
            "ZeroDivisionError: division by zero",
        ),
        (
            "tests.jobs.crash_handlers:nothing",
            "module 'tests.jobs.crash_handlers' has no attribute 'nothing'",
        ),
        (
            "tests.jobs.crash_handlers:Work.nothing",
            "module 'tests.jobs.crash_handlers' has no attribute 'Work.nothing'",
        ),
        (
            "tests.jobs.crash_handlers:work",
            "tests.jobs.crash_handlers:work is a function, not a trunner.jobs.Registry",
        ),
    ],
)
def test_worker_target_errors_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    target: str,
    message: str,
) -> None:
    (tmp_path / "broken_handlers.py").write_text("registry = 1 / 0\n")
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(ROOT))  # undone by _environment

    code, out, err = run(capsys, "worker", target, "--store", "memory://")

    assert (code, out) == (2, "")
    assert err.startswith(f"trunner: error: {message}")
    assert err.count("\n") == 1


def test_worker_import_traceback_at_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "broken_handlers.py").write_text("registry = 1 / 0\n")
    monkeypatch.chdir(tmp_path)

    code, _, err = run(
        capsys,
        "worker",
        "broken_handlers:registry",
        "--store",
        "memory://",
        "--log-level",
        "debug",
    )

    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert err.endswith("(--log-level DEBUG shows the traceback)\n")


def test_load_registry_finds_modules_in_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "my_handlers_in_cwd.py").write_text(
        "from trunner.jobs import Registry\nclass App:\n    registry = Registry()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_handlers_in_cwd", raising=False)

    loaded = _worker.load_registry("my_handlers_in_cwd:App.registry")

    assert isinstance(loaded, Registry)
    assert sys.path[0] == str(tmp_path)
    monkeypatch.delitem(sys.modules, "my_handlers_in_cwd")


# ---------------------------------------------------------------- worker, in-process


def signal_when(
    condition: Callable[[], bool], *signals: tuple[float, int]
) -> threading.Thread:
    """Send this process each signal, after its delay, once ``condition()`` holds.

    The worker (in the main thread) listens for signals while it runs, so they
    reach its receiver, not pytest. After 15 s they are sent anyway, so that
    the command returns and the test fails on its assertions instead of hanging.
    """

    def send() -> None:
        deadline = time.monotonic() + 15
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        for delay, signum in signals:
            time.sleep(delay)
            os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def states(path: Path) -> dict[str, JobState]:
    async def look() -> dict[str, JobState]:
        async with open_job_manager(open_store(url(path)), worker=False) as manager:
            return {job.id: job.state for job in await manager.list_jobs(limit=1000)}

    return trio.run(look)


def submit(path: Path, jobs: dict[str, float]) -> None:
    async def go() -> None:
        async with open_job_manager(
            open_store(url(path)), registry, worker=False
        ) as jm:
            for job_id, seconds in jobs.items():
                await jm.submit_job(job_id, "work", Work(job_id, seconds))

    trio.run(go)


def test_worker_runs_jobs_until_sigint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    monkeypatch.chdir(ROOT)
    submit(db, {f"job-{i}": 0.01 for i in range(10)})

    def done() -> bool:
        return set(states(db).values()) == {JobState.SUCCEEDED}

    thread = signal_when(done, (0, signal.SIGINT))
    code, out, err = run(
        capsys,
        "worker",
        HANDLERS,
        "--store",
        url(db),
        "--name",
        "w-in",
        "--poll-interval",
        "0.05",
    )
    thread.join()

    assert (code, out) == (0, "")
    assert "worker w-in running jobs of tests.jobs.crash_handlers:registry" in err
    assert "handlers: work" in err
    assert "received SIGINT: stopping" in err
    assert err.rstrip().endswith("worker w-in stopped")


def test_worker_second_signal_stops_at_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    monkeypatch.chdir(ROOT)
    submit(db, {"long": 60})

    def running() -> bool:
        return states(db) == {"long": JobState.RUNNING}

    # Of two signals sent together (as from a terminal and a wrapper), one is
    # ignored.
    thread = signal_when(
        running, (0, signal.SIGTERM), (0, signal.SIGINT), (0.7, signal.SIGINT)
    )
    started = time.monotonic()
    code, _, err = run(
        capsys,
        "worker",
        HANDLERS,
        "--store",
        url(db),
        "--grace-period",
        "30",
        "--log-level",
        "DEBUG",
    )
    thread.join()

    assert code == 128 + signal.SIGINT
    assert time.monotonic() - started < 10
    # (Linux delivers pending signals lowest first: SIGINT may come first.)
    assert re.search(r"ignored SIG(INT|TERM): it came with the previous one", err)
    assert (
        "received SIGINT again: cancelling 1 running jobs and handing them back" in err
    )
    assert "stopped at once" in err
    job = get(db, "long")
    assert (job.state, job.attempts) == (JobState.PENDING, 0)


def test_worker_warns_about_useless_setups(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "empty_handlers.py").write_text(
        "from trunner.jobs import Registry\nregistry = Registry()\n"
    )
    monkeypatch.chdir(tmp_path)
    seen: list[str] = []

    def started() -> bool:
        seen.append(capsys.readouterr().err)
        return "handlers: none" in "".join(seen)

    thread = signal_when(started, (0, signal.SIGINT))
    code = _cli.main(["worker", "empty_handlers:registry", "--store", "memory://"])
    thread.join()
    err = "".join(seen) + capsys.readouterr().err

    assert code == 0
    assert "empty_handlers:registry has no handlers: this worker will run no job" in err
    assert "a memory:// store lives in this process" in err


def test_log_shows_the_drivers_chatter_only_at_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stop = _logs.start_logging("INFO")
    try:
        logging.getLogger("coredis").info("Retry attempt 1: No matching script")
        logging.getLogger("coredis.pool").info("Connection closed unexpectedly!")
        logging.getLogger("coredis").warning("a driver's warning")
        logging.getLogger("myapp.handlers").info("a handler's news")
        _logs.set_log_level("DEBUG")
        logging.getLogger("coredis").info("chatter at debug")
    finally:
        stop()
    err = capsys.readouterr().err

    assert "No matching script" not in err
    assert "Connection closed" not in err
    assert "coredis: a driver's warning" in err
    assert "myapp.handlers: a handler's news" in err
    assert "coredis: chatter at debug" in err


def test_worker_logs_its_store_url_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)

    def memory_store(url: str) -> MemoryJobStore:
        del url  # a URL that names no reachable server: a store in memory instead
        return MemoryJobStore()

    monkeypatch.setattr(_worker, "store_from_url", memory_store)
    seen: list[str] = []

    def started() -> bool:
        seen.append(capsys.readouterr().err)
        return "running jobs of" in "".join(seen)

    thread = signal_when(started, (0, signal.SIGINT))
    code = _cli.main(
        ["worker", HANDLERS, "--store", "redis://ops:zzsecretzz@redis.invalid/0"]
    )
    thread.join()
    err = "".join(seen) + capsys.readouterr().err

    assert code == 0
    assert "on redis://ops:***@redis.invalid/0 (concurrency" in err
    assert "zzsecretzz" not in err


# ---------------------------------------------------------------- watch in this process


def test_watch_until_empty_stops_at_once_on_an_empty_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "jobs", "watch", "--store", "memory://", "--until-empty")

    assert code == 0
    assert out == (
        "pending 0  running 0  succeeded 0  failed 0  cancelled 0  | 0/0 finished | "
        "- | eta 0 s\n"
    )


def test_watch_live_view_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: behave as on a terminal
    trio.run(
        _seed, db, [record(f"s{i}", JobState.SUCCEEDED, attempts=1) for i in range(3)]
    )

    code, raw, _ = run(capsys, "jobs", "watch", "--store", url(db), "--until-empty")
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # no colours, no cursor moves

    assert code == 0
    assert "━" * 40 in out  # the progress bar
    assert "succeeded 3" in out
    assert "3/3 finished" in out


def test_watch_until_ctrl_c(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    seed(db)  # a pending and a running job: never empty
    lines: list[str] = []

    def watching() -> bool:
        lines.extend(capsys.readouterr().out.splitlines())
        return len(lines) >= 2

    thread = signal_when(watching, (0, signal.SIGINT))
    code = _cli.main(["jobs", "watch", "--store", url(db), "--interval", "0.05"])
    thread.join()
    lines.extend(capsys.readouterr().out.splitlines())

    assert code == 0
    assert lines[0].endswith("| 3/6 finished | - | eta -")
    assert lines[1].endswith("| 3/6 finished | 0.0 jobs/s | eta -")


def test_watch_counts_jobs_of_an_unknown_state(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    trio.run(
        _seed, db, [record("s1", JobState.SUCCEEDED), record("s2", JobState.SUCCEEDED)]
    )
    write_unknown_state(db, "s2")

    code, out, _ = run(capsys, "jobs", "watch", "--store", url(db), "--until-empty")

    assert code == 0
    assert out == (
        "pending 0  running 0  succeeded 1  failed 0  cancelled 0  unknown: 1  "
        "| 1/1 finished | - | eta 0 s\n"
    )


def test_watch_view_estimates_the_time_left() -> None:
    counts = JobCounts(
        {JobState.PENDING: 8, JobState.RUNNING: 2, JobState.SUCCEEDED: 10}
    )

    view = _views.watch_view(counts, 2.0, terminal=False)

    assert isinstance(view, Text)
    assert view.plain == (
        "pending 8  running 2  succeeded 10  failed 0  cancelled 0  | 10/20 finished | "
        "2.0 jobs/s | eta 5 s"
    )


def test_rate_never_goes_negative() -> None:
    rate = _views.Rate()
    figures: list[float | None] = []

    # Finished jobs at times: the first look, 20 in 2 s, a purge, no time passed.
    for finished, at in [(10, 1.0), (30, 3.0), (5, 4.0), (5, 4.0)]:
        rate.update(finished, at)
        figures.append(rate.rate)

    assert figures == [None, 10, 0, 0]


# ---------------------------------------------------------------- real processes


def trunner_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trunner", *args]


@asynccontextmanager
async def worker_process(
    log: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncGenerator[trio.Process]:
    """Run ``python -m trunner worker`` with stderr to ``log``; kill it at the end."""
    with log.open("ab") as stderr:
        process = await trio.lowlevel.open_process(
            trunner_command("worker", HANDLERS, *args),
            cwd=ROOT,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def wait_until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll the store (another process changes it) until ``condition()`` holds."""
    with trio.fail_after(45):
        while not await condition():  # noqa: ASYNC110  # no event across processes
            await trio.sleep(0.05)


@asynccontextmanager
async def inspect(path: Path) -> AsyncGenerator[JobManager]:
    async with open_job_manager(open_store(url(path)), registry, worker=False) as jm:
        yield jm


def log_of(path: Path) -> Iterator[str]:
    yield from path.read_text().splitlines()


async def test_process_worker_graceful_stop(tmp_path: Path, db: Path) -> None:
    log = tmp_path / "worker.log"
    async with inspect(db) as jm:
        for i in range(20):
            await jm.submit_job(f"quick-{i}", "work", Work(f"quick-{i}", 0.01))

        async def quick_done() -> bool:
            return (await jm.counts()).get(JobState.SUCCEEDED, 0) == 20

        async def both_running() -> bool:
            return (await jm.counts()).get(JobState.RUNNING, 0) == 2

        async with worker_process(
            log,
            "--store",
            url(db),
            "--concurrency",
            "2",
            "--grace-period",
            "2",
            "--poll-interval",
            "0.1",
        ) as process:
            await wait_until(quick_done)
            await jm.submit_job("short", "work", Work("short", 1.0))
            await jm.submit_job("long", "work", Work("long", 60))
            await wait_until(both_running)

            process.send_signal(signal.SIGINT)
            signalled = trio.current_time()
            with trio.fail_after(30):
                code = await process.wait()
            took = trio.current_time() - signalled

        short = await jm.get_job("short")
        long = await jm.get_job("long")

    assert code == 0, "\n".join(log_of(log))
    # The short job finished in the grace period; the long one was handed back.
    assert short.state is JobState.SUCCEEDED
    assert (long.state, long.attempts) == (JobState.PENDING, 0)
    assert 2 <= took < 8
    assert any("received SIGINT: stopping" in line for line in log_of(log))


async def test_process_worker_second_and_third_signals(
    tmp_path: Path, db: Path
) -> None:
    log = tmp_path / "worker.log"
    async with inspect(db) as jm:
        await jm.submit_job("async", "work", Work("async", 60))
        await jm.submit_job("sync", "block", 8.0)

        async def both_running() -> bool:
            return (await jm.counts()).get(JobState.RUNNING, 0) == 2

        async with worker_process(
            log, "--store", url(db), "--grace-period", "30", "--lease", "30"
        ) as process:
            await wait_until(both_running)
            process.send_signal(signal.SIGINT)
            await trio.sleep(0.7)
            # Cancels the async job; the sync one (in a thread) cannot stop.
            process.send_signal(signal.SIGINT)

            async def async_released() -> bool:
                return (await jm.get_job("async")).state is JobState.PENDING

            with trio.fail_after(20):
                await wait_until(async_released)
            await trio.sleep(0.7)  # not a repeat of the second signal
            assert process.returncode is None
            process.send_signal(signal.SIGTERM)
            signalled = trio.current_time()
            with trio.fail_after(5):
                code = await process.wait()
            took = trio.current_time() - signalled
        sync = await jm.get_job("sync")

    assert code == 128 + signal.SIGTERM, "\n".join(log_of(log))
    assert took < 2
    # Left to its lease: another worker takes it once the lease expires.
    assert (sync.state, sync.attempts) == (JobState.RUNNING, 1)
    assert any("a third time: exiting now" in line for line in log_of(log))


async def test_process_watch_until_empty(tmp_path: Path, db: Path) -> None:
    async with inspect(db) as jm:
        for i in range(30):
            await jm.submit_job(f"job-{i}", "work", Work(f"job-{i}", 0.05))
        # The watch starts first: its first line is from before the worker.
        process = await trio.lowlevel.open_process(
            trunner_command(
                "jobs",
                "watch",
                "--store",
                url(db),
                "--until-empty",
                "--interval",
                "0.1",
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        output = b""
        try:
            with trio.fail_after(90):
                while b"\n" not in output:
                    output += await process.stdout.receive_some()
                async with worker_process(
                    tmp_path / "worker.log", "--store", url(db), "--concurrency", "5"
                ):
                    while chunk := await process.stdout.receive_some():
                        output += chunk
                    code = await process.wait()
        finally:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
            await process.stdout.aclose()
        counts = await jm.counts()

    lines = output.decode().splitlines()
    assert code == 0
    assert {state: n for state, n in counts.items() if n} == {JobState.SUCCEEDED: 30}
    assert lines[0].startswith("pending 30  running 0  succeeded 0")
    assert lines[-1].startswith("pending 0  running 0  succeeded 30")
    assert "| 30/30 finished |" in lines[-1]


async def test_process_watch_stops_on_sigint(db: Path) -> None:
    async with inspect(db) as jm:
        await jm.submit_job("waiting", "work", Work("waiting", 1))
    process = await trio.lowlevel.open_process(
        trunner_command("jobs", "watch", "--store", url(db), "--interval", "0.1"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        with trio.fail_after(30):
            first = await process.stdout.receive_some()
        process.send_signal(signal.SIGINT)
        with trio.fail_after(20):
            code = await process.wait()
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
        await process.stdout.aclose()

    assert code == 0
    assert b"pending 1" in first


async def test_process_errors(db: Path) -> None:
    async with inspect(db):
        pass  # the database exists: show reads it
    missing = await trio.run_process(
        trunner_command("worker", "no_such_module_xyz:registry", "--store", url(db)),
        cwd=ROOT,
        capture_stderr=True,
        check=False,
    )
    not_found = await trio.run_process(
        trunner_command("jobs", "show", "nope", "--store", url(db)),
        cwd=ROOT,
        capture_stderr=True,
        check=False,
    )

    assert missing.returncode == 2
    assert missing.stderr.decode().startswith(
        "trunner: error: cannot import module 'no_such_module_xyz'"
    )
    assert (not_found.returncode, not_found.stderr) == (
        1,
        b"trunner: error: no job with id 'nope'\n",
    )


@pytest.mark.parametrize("verb", [["list"], ["show", "x"], ["watch"]])
def test_read_only_verbs_refuse_a_missing_sqlite_file(
    tmp_path: Path, verb: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.db"
    code = _cli.main(["jobs", *verb, "--store", f"sqlite:///{missing}"])

    assert code == 2
    assert "no SQLite database at" in capsys.readouterr().err
    assert not missing.exists()  # nothing was created


async def test_delete_verb_deletes_finished_jobs_only(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with inspect(db) as jm:
        await jm.submit_job("later", "work", Work("later", 1), delay=3600)
        await jm.cancel_job("later")
        await jm.submit_job("waiting", "work", Work("waiting", 1), delay=3600)

    deleted = await trio.to_thread.run_sync(
        _cli.main, ["jobs", "delete", "later", "--store", url(db)]
    )
    refused = await trio.to_thread.run_sync(
        _cli.main, ["jobs", "delete", "waiting", "--store", url(db)]
    )

    out = capsys.readouterr()
    assert (deleted, refused) == (0, 1)
    assert "job 'later': deleted" in out.out
    assert "pending" in out.err
    async with inspect(db) as jm:
        assert [info.id for info in await jm.list_jobs()] == ["waiting"]
