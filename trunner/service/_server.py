"""Serving the app with hypercorn's trio worker, in the caller's task tree."""

from __future__ import annotations

import functools
import logging
import socket
import urllib.parse
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, cast, final

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve  # pyright: ignore[reportUnknownVariableType]  # hypercorn's partial annotations

from .._util import check_duration

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from hypercorn.typing import ASGIFramework
    from starlette.applications import Starlette

logger: Final = logging.getLogger("trunner.service")


@final
@attrs.define(eq=False)
class Server:
    """A running HTTP server, as `serve` hands it out (internal constructor).

    ``host`` and ``port`` are the bound address: with ``port=0`` the port the
    system picked.
    """

    host: str
    port: int
    _shutdown: trio.Event = attrs.field(factory=trio.Event, repr=False)

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def shutdown(self) -> None:
        """Ask the server to stop: `serve`'s block then ends. Not a checkpoint."""
        self._shutdown.set()

    async def wait_shutdown(self) -> None:
        """Wait until `shutdown` is called (the server's trigger)."""
        await self._shutdown.wait()


def _bound(bind: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(bind)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _check_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, not {port!r}")
    return port


@asynccontextmanager
async def serve(
    app: Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    graceful_timeout: float = 5.0,
    keep_alive_timeout: float = 5.0,
) -> AsyncGenerator[Server, None]:
    """Serve ``app`` over HTTP with hypercorn's trio worker, for the block.

    The server runs in a nursery of the calling task: it is listening when the
    block starts (the bound address is on the `Server`), and leaving the block
    shuts it down gracefully: no new connections, event streams end, requests
    under way get ``graceful_timeout`` seconds. A failure of the server itself
    propagates out of the block (in an `ExceptionGroup`, as from a nursery).
    The server never logs request details (no access log), so no credentials
    reach the logs.

    Args:
        app: the application (see `create_app`).
        host: the address to bind; the loopback by default. Bind a public
            address only behind a TLS-terminating proxy (see the docs).
        port: the port; 0 lets the system pick a free one.
        graceful_timeout: seconds requests under way get at shutdown.
        keep_alive_timeout: seconds an idle keep-alive connection stays open
            (behind a proxy that keeps connections longer, raise it above the
            proxy's own timeout).

    Raises:
        OSError: if the address cannot be bound.
    """
    bind_port = _check_port(port)
    config = Config()
    config.accesslog = None
    config.errorlog = logger  # through logging, never straight to stderr
    config.graceful_timeout = check_duration("graceful_timeout", graceful_timeout)
    config.keep_alive_timeout = check_duration(
        "keep_alive_timeout", keep_alive_timeout, allow_zero=False
    )
    # Bound here rather than by hypercorn, which leaves its socket to the
    # garbage collector when the bind fails; hypercorn takes the descriptor.
    listener = await _bind(host, bind_port)
    config.bind = [f"fd://{listener.detach()}"]
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            functools.partial(
                hypercorn_serve,
                cast("ASGIFramework", app),
                config,
                shutdown_trigger=shutdown.wait,
            )
        )
        bound_host, bound_port = _bound(binds[0])
        server = Server(bound_host, bound_port, shutdown)
        try:
            yield server
        finally:
            events = getattr(app.state, "trunner_events", None)
            if events is not None:
                events.close()  # end the event streams, or they hold the shutdown
            shutdown.set()


async def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``'s first address and ``port``.

    Raises:
        OSError: the host does not resolve, or the address cannot be bound.
    """
    family, kind, protocol, _, address = (
        await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    )[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except BaseException:
        listener.close()
        raise
    return listener
