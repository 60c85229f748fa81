"""``trunner serve``: a worker and the service in one real process."""

# White-box test of the CLI's logging set-up: it calls the private helpers of
# trunner.jobs._cli.
# pyright: reportPrivateUsage=false

from __future__ import annotations

import argparse
import functools
import logging
import os
import pathlib
import re
import signal
import socket
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from trunner.jobs import JobState, MemoryJobStore, _cli, open_job_manager, open_store
from trunner.jobs._cli import _logs, _worker
from trunner.service import BearerTokens, Client, create_app, serve
from trunner.service._command import (
    UsageError,
    configure_parser,
    read_token_file,
    serve_command,
)

from .conftest import HTTPCORE_STREAM_WARNING, eventually

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

pytestmark = pytest.mark.filterwarnings(HTTPCORE_STREAM_WARNING)

ROOT = pathlib.Path(__file__).parents[2]
HANDLERS = "tests.service.serve_handlers:registry"
TOKEN = "serve-token-0123456789"


def token_file(tmp_path: pathlib.Path, text: str, mode: int = 0o600) -> str:
    path = tmp_path / "tokens"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_token_file_formats(tmp_path: pathlib.Path) -> None:
    tokens = read_token_file(
        token_file(tmp_path, "# comment\n\nalone\nops   s3cret\n  viewer other \n")
    )

    assert tokens.principal("alone") == "token-3"
    assert tokens.principal("s3cret") == "ops"
    assert tokens.principal("other") == "viewer"
    assert tokens.principal("ops") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no token"),
        ("# only a comment\n", "holds no token"),
        ("a b c\n", "line 1: expected TOKEN or PRINCIPAL TOKEN"),
        ("x t\ny t\n", "line 2: this token is listed twice"),
    ],
)
def test_bad_token_files(tmp_path: pathlib.Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        read_token_file(token_file(tmp_path, text))


def test_unreadable_token_files(tmp_path: pathlib.Path) -> None:
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")

    with pytest.raises(UsageError, match="cannot read the token file"):
        read_token_file(str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="not UTF-8"):
        read_token_file(str(binary))


def test_token_file_readable_by_others_warns(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    read_token_file(token_file(tmp_path, "zzsecretzz\n", mode=0o644))

    assert "can be read by other users" in caplog.text
    assert "zzsecretzz" not in caplog.text


def test_cli_reports_a_bad_token_file(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli.main(
        [
            "serve",
            HANDLERS,
            "--store",
            f"sqlite:///{tmp_path / 'jobs.db'}",
            "--token-file",
            str(tmp_path / "missing"),
        ]
    )

    assert code == 2
    assert "cannot read the token file" in capsys.readouterr().err


def test_cli_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["serve", HANDLERS, "--store", "memory://"]) == 2
    assert "--token-file" in capsys.readouterr().err
    assert _cli.main(["serve", HANDLERS, "--token", "x", "--store", "memory://"]) == 2
    for bad in (["--port", "70000"], ["--port", "http"], ["--concurrency", "0"]):
        args = ["serve", HANDLERS, "--store", "memory://", "--token-file", "t", *bad]
        assert _cli.main(args) == 2
    assert (
        _cli.main(
            [
                "serve",
                HANDLERS,
                "--store",
                "memory://",
                "--token-file",
                "t",
                "--grace-period",
                "-1",
            ]
        )
        == 2
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--concurrency", "0"),
        ("--concurrency", "2.5"),
        ("--grace-period", "-1"),
        ("--grace-period", "nan"),
        ("--grace-period", "inf"),
        ("--grace-period", "soon"),
    ],
)
def test_serve_refuses_bad_numbers_as_the_worker_does(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    # trunner serve and trunner worker parse their numbers with one helper.
    common = [HANDLERS, "--store", "memory://", option, value]
    assert _cli.main(["worker", *common]) == 2
    worker = capsys.readouterr().err.splitlines()[-1]
    assert _cli.main(["serve", *common, "--token-file", "t"]) == 2
    serve = capsys.readouterr().err.splitlines()[-1]

    assert f"argument {option}: " in worker
    assert serve.partition("error: ")[2] == worker.partition("error: ")[2]


async def read_url(log: pathlib.Path) -> str:
    url: list[str] = []

    async def listening() -> bool:
        text = await trio.Path(log).read_text()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)", text)
        if found:
            url.append(found.group(1))
        return bool(found)

    await eventually(listening, seconds=30)
    return url[0]


@asynccontextmanager
async def serve_process(
    tmp_path: pathlib.Path, *args: str
) -> AsyncGenerator[tuple[trio.Process, str, pathlib.Path]]:
    log = tmp_path / "serve.log"
    tokens = token_file(tmp_path, f"ops {TOKEN}\n")
    with log.open("ab") as stderr:
        process = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "trunner",
                "serve",
                HANDLERS,
                "--store",
                f"sqlite:///{tmp_path / 'jobs.db'}",
                "--port",
                "0",
                "--token-file",
                tokens,
                "--grace-period",
                "5",
                *args,
            ],
            cwd=ROOT,
            stderr=stderr,
            env={**os.environ},
        )
    try:
        yield process, await read_url(log), log
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def test_serve_runs_jobs_and_stops_gracefully(tmp_path: pathlib.Path) -> None:
    async with serve_process(tmp_path) as (process, url, log):
        async with Client(url, token=TOKEN) as client:
            await client.submit_job("a", "double", 21)
            await client.submit_job("slow", "sleep", 0.5)

            async def done() -> bool:
                return (await client.get_job("a")).state is JobState.SUCCEEDED

            await eventually(done)
            result = (await client.get_job("a")).result
            with pytest.raises(PermissionError):
                async with Client(url, token="wrong") as intruder:
                    await intruder.get_job("a")

        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            code = await process.wait()
        text = log.read_text()

        assert result == 42
        assert code == 0
        assert "received SIGTERM: stopping" in text
        assert "stopped" in text
        assert TOKEN not in text


async def test_serve_without_worker_only_serves(tmp_path: pathlib.Path) -> None:
    async with serve_process(tmp_path, "--no-worker") as (process, url, _log):
        async with httpx.AsyncClient(base_url=url) as http:
            health = (await http.get("/healthz")).json()
        async with Client(url, token=TOKEN) as client:
            await client.submit_job("a", "double", 1)
            await trio.sleep(0.5)
            state = (await client.get_job("a")).state

        process.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            code = await process.wait()

        assert health == {"status": "ok", "store": "ok", "worker": False}
        assert state is JobState.PENDING
        assert code == 0


def serve_arguments(
    tmp_path: pathlib.Path, store: str, *extra: str
) -> argparse.Namespace:
    """``trunner serve``'s parsed arguments: the test handlers on ``store``, port 0."""
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return parser.parse_args(
        [
            HANDLERS,
            "--store",
            store,
            "--port",
            "0",
            "--token-file",
            token_file(tmp_path, f"{TOKEN}\n"),
            *extra,
        ]
    )


async def test_serve_command_in_process_two_signals(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trunner.service")
    namespace = serve_arguments(
        tmp_path, f"sqlite:///{tmp_path / 'jobs.db'}", "--grace-period", "30"
    )
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                functools.partial(
                    serve_command,
                    namespace,
                    load_registry=_worker.load_registry,
                    open_store=open_store,
                )
            )
            async with Client(url, token=TOKEN) as client:
                await client.submit_job("long", "sleep", 3600)

                async def running() -> bool:
                    return (await client.get_job("long")).state is JobState.RUNNING

                await eventually(running)
            os.kill(os.getpid(), signal.SIGINT)  # graceful: the job gets 30 s

            async def draining() -> bool:
                await trio.lowlevel.checkpoint()
                return "received SIGINT: stopping" in caplog.text

            await eventually(draining)
            os.kill(os.getpid(), signal.SIGINT)  # now: the job is handed back

    async with open_job_manager(open_store(namespace.store), worker=False) as jm:
        job = await jm.get_job("long")
    assert "received SIGINT again: cancelling the running jobs" in caplog.text
    assert job.state is JobState.PENDING
    assert job.attempts == 0


def test_cli_serve_help_and_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["serve", "--help"]) == 0
    assert "--token-file" in capsys.readouterr().out

    stop = _logs.start_logging("INFO")
    try:
        _logs.set_log_level("DEBUG")
        assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    finally:
        stop()


def test_cli_serve_on_a_busy_port_says_so_in_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = _cli.main(
            [
                "serve",
                HANDLERS,
                "--store",
                f"sqlite:///{tmp_path / 'jobs.db'}",
                "--port",
                str(port),
                "--token-file",
                token_file(tmp_path, f"{TOKEN}\n"),
            ]
        )
    err = capsys.readouterr().err

    assert code == 1
    assert err.startswith(f"trunner: error: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


async def test_serve_command_logs_the_store_url_without_its_password(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trunner.service")
    namespace = serve_arguments(tmp_path, "redis://ops:zzsecretzz@redis.invalid:6379/0")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(
                    serve_command,
                    namespace,
                    load_registry=_worker.load_registry,
                    open_store=lambda _url: MemoryJobStore(),
                )
            )
            os.kill(os.getpid(), signal.SIGINT)

    assert "on redis://ops:***@redis.invalid:6379/0 at http://" in caplog.text
    assert "zzsecretzz" not in caplog.text


async def test_serve_raises_a_plain_os_error_when_it_cannot_bind() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        async with open_job_manager(MemoryJobStore(), worker=False) as jm:
            app = create_app(jm, auth=BearerTokens({TOKEN: "ops"}))
            with pytest.raises(OSError, match="in use") as caught:
                async with serve(app, port=busy.getsockname()[1]):
                    pytest.fail("served on a busy port")  # pragma: no cover

    assert type(caught.value) is OSError
