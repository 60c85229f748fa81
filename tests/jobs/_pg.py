"""Helpers of the PostgreSQL tests: schemas that clean up, and a TCP proxy to cut.

The proxy stands between a store and the local PostgreSQL, so that a test can
cut the store off (every connection closed, new ones refused) and bring it
back, without stopping the server that other tests share.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import attrs
import psycopg
import trio

from tests._services import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    free_port,
    require_postgres,
    unique_name,
)
from trunner.jobs._postgres_schema import literal

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(literal(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@contextlib.contextmanager
def fresh_schema() -> Generator[tuple[str, str]]:
    """(URL of the test database, a new schema name) dropped on exit.

    The URL names the schema as its connections' ``application_name``, so
    that `terminate_backends` kills only this test's connections.
    """
    schema = unique_name("trunner_test")
    url = f"{require_postgres()}?application_name={schema}"
    try:
        yield url, schema
    finally:
        drop_schema(url, schema)


def sql(url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Run ``statement`` on a connection of its own; return its rows, if any."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(literal(statement), params or None)
        return cursor.fetchall() if cursor.description is not None else []


def terminate_backends(url: str, application_name: str) -> int:
    """``pg_terminate_backend`` every connection of that application; how many."""
    rows = sql(
        url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()",
        application_name,
    )
    count: int = rows[0][0]  # type: ignore[assignment]  # a bigint
    return count


@attrs.define
class Proxy:
    """A TCP proxy to PostgreSQL on a port of its own; `cut` and `restore` it."""

    port: int = attrs.field(factory=free_port)
    _scope: trio.CancelScope | None = None
    _nursery: trio.Nursery | None = None

    def url(self, url: str) -> str:
        """``url`` (of the local PostgreSQL) through the proxy."""
        return url.replace(f"{POSTGRES_HOST}:{POSTGRES_PORT}", f"127.0.0.1:{self.port}")

    async def _serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            task_status.started()
            await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, client: trio.SocketStream) -> None:
        async with client:
            try:
                server = await trio.open_tcp_stream(POSTGRES_HOST, POSTGRES_PORT)
            except OSError:
                return
            async with server, trio.open_nursery() as nursery:
                nursery.start_soon(_pump, client, server, nursery.cancel_scope)
                nursery.start_soon(_pump, server, client, nursery.cancel_scope)

    async def restore(self) -> None:
        """(Re)open the port and relay connections."""
        assert self._nursery is not None
        await self._nursery.start(self._serve)

    def cut(self) -> None:
        """Close every relayed connection and the port: as if the network fell."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None


async def _pump(
    source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        scope.cancel()


@contextlib.asynccontextmanager
async def open_proxy() -> AsyncGenerator[Proxy]:
    proxy = Proxy()
    async with trio.open_nursery() as nursery:
        proxy._nursery = nursery  # pyright: ignore[reportPrivateUsage]  # the test's own proxy
        await proxy.restore()
        try:
            yield proxy
        finally:
            proxy.cut()
            nursery.cancel_scope.cancel()
