"""A real hypercorn server on 127.0.0.1 and a random port, over a real JobManager."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, cast

import attrs
import pytest
import trio

pytest.importorskip(
    "hypercorn", reason="needs the 'service' extra: pip install 'trunner[service]'"
)

from trunner import RetryPolicy  # after the skip
from trunner.jobs import (  # after the skip
    JobManager,
    Registry,
    SQLiteJobStore,
    open_job_manager,
)
from trunner.service import BearerTokens, Server, create_app, serve

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
    from pathlib import Path

    import httpx
    from starlette.applications import Starlette

#: httpx and httpcore leave their body generators to the garbage collector
#: when a streamed response is closed before its end (an event stream always
#: is); trio's finalizer then warns. Not ours to fix.
HTTPCORE_STREAM_WARNING = (
    r"ignore:Async generator '(httpx|httpcore)\..*' was garbage "
    "collected:ResourceWarning"
)

TOKEN = "s3cret-token"
READER_TOKEN = "read-only-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READER = {"Authorization": f"Bearer {READER_TOKEN}"}


@attrs.frozen
class Email:
    to: str
    subject: str = "hello"


def make_registry() -> Registry:
    registry = Registry()

    @registry.handler("send_email")
    async def send_email(args: Email) -> dict[str, str]:
        return {"sent": args.to}

    @registry.handler("boom")
    async def boom(args: int) -> int:
        raise RuntimeError(f"boom {args}")

    @registry.handler("slow")
    async def slow(args: float) -> float:
        await trio.sleep(args)
        return args

    return registry


def lines_of(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The response's lines, as the async generator that httpx returns."""
    return cast("AsyncGenerator[str, None]", response.aiter_lines())


async def eventually(
    check: Callable[[], Awaitable[bool]], *, seconds: float = 10
) -> None:
    """Poll ``check`` (real time: a real server) until it holds, or fail."""
    with trio.fail_after(seconds):
        for _ in itertools.count():
            if await check():
                return
            await trio.sleep(0.01)


@attrs.define
class Served:
    manager: JobManager
    app: Starlette
    server: Server
    store: SQLiteJobStore

    @property
    def url(self) -> str:
        return self.server.url

    async def has_subscribers(self) -> bool:
        await trio.lowlevel.checkpoint()
        return bool(self.app.state.trunner_events.subscribers)


def auth_for_tests() -> BearerTokens:
    return BearerTokens({TOKEN: "ops", READER_TOKEN: "viewer"}, read_only={"viewer"})


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    store = SQLiteJobStore(tmp_path / "jobs.db")
    async with open_job_manager(
        store,
        make_registry(),
        retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=0),
        grace_period=1,
    ) as manager:
        app = create_app(manager, auth=auth_for_tests(), max_body=64 * 1024)
        async with serve(app, port=0) as server:
            yield Served(manager, app, server, store)
