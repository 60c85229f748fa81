"""A pool of TCP connections that replaces the ones the server drops.

`trunner.open_resource_pool` keeps ``workers`` resources open, here real TCP
connections to a line-based echo server that the example starts on
127.0.0.1. ``create`` opens a connection, ``destroy`` closes it, and
``await pool.queue_task(fn, *args)`` runs ``fn(connection, *args)`` on a free
one. The server drops the first connection that has served a few replies: the
request in flight fails with a connection error, ``check_health`` declares the
connection dead, and the pool closes it, opens a replacement and retries the
request (up to ``max_retries`` times) on the first healthy connection free,
the replacement or another pooled one: the caller never sees the failure.
"""

from __future__ import annotations

import collections
import functools

import attrs
import trio

import trunner

#: The server drops the first connection that gets a message after this many
#: replies on it.
DROP_AFTER = 3
CLIENTS = 3
REQUESTS_PER_CLIENT = 4


@attrs.define(eq=False)
class LineStream:
    """A TCP stream carrying newline-terminated text messages."""

    stream: trio.SocketStream
    _buffer: bytes = b""

    async def send_line(self, text: str) -> None:
        await self.stream.send_all(text.encode() + b"\n")

    async def receive_line(self) -> str | None:
        """Return the next line, or None if the peer closed the connection."""
        while b"\n" not in self._buffer:
            data = await self.stream.receive_some()
            if not data:
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


@attrs.define
class EchoServer:
    """Echoes lines back; drops one connection after `DROP_AFTER` replies."""

    accepted: int = 0
    has_dropped: bool = False

    async def handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        name = f"conn-{self.accepted}"
        lines = LineStream(stream)
        replies = 0
        async with stream:
            try:
                # The greeting tells the client which connection it holds.
                await lines.send_line(f"hello {name}")
                while (line := await lines.receive_line()) is not None:
                    if not self.has_dropped and replies == DROP_AFTER:
                        self.has_dropped = True
                        print(f"server: drops {name} instead of answering {line!r}")
                        return
                    await lines.send_line(f"echo {line}")
                    replies += 1
            except trio.BrokenResourceError:
                return  # the client went away


@attrs.define(eq=False)
class Connection:
    """The pooled resource: a connection to the echo server."""

    name: str
    lines: LineStream

    async def request(self, text: str) -> str:
        await self.lines.send_line(text)
        reply = await self.lines.receive_line()
        if reply is None:
            raise EOFError(f"{self.name} was closed by the server")
        return reply


def connection_ok(error: Exception) -> bool:
    """Tell the pool whether a connection survived the error of a task."""
    dead = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, EOFError)
    return not isinstance(error, dead)


async def main() -> None:
    server = EchoServer()
    attempts: collections.Counter[str] = collections.Counter()

    async with trio.open_nursery() as server_nursery:
        serve = functools.partial(trio.serve_tcp, host="127.0.0.1")
        listeners = await server_nursery.start(serve, server.handle, 0)
        port: int = listeners[0].socket.getsockname()[1]

        async def connect() -> Connection:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            lines = LineStream(stream)
            try:
                greeting = await lines.receive_line()
            except BaseException:
                await stream.aclose()
                raise
            if greeting is None:
                await stream.aclose()
                raise EOFError("the server closed the connection at once")
            name = greeting.removeprefix("hello ")
            print(f"pool: opened {name}")
            return Connection(name, lines)

        async def disconnect(connection: Connection) -> None:
            print(f"pool: closed {connection.name}")
            await connection.lines.stream.aclose()

        async def echo(connection: Connection, text: str) -> str:
            attempts[text] += 1
            try:
                reply = await connection.request(text)
            except Exception as error:
                print(f"  {text}: {connection.name} failed: {error!r}")
                raise
            return f"{reply!r} from {connection.name}"

        async def client(client_id: int) -> None:
            for n in range(REQUESTS_PER_CLIENT):
                text = f"c{client_id}-r{n}"
                reply = await pool.queue_task(echo, text)
                retried = f" (attempt {attempts[text]})" if attempts[text] > 1 else ""
                print(f"  {text}: {reply}{retried}")

        async with trunner.open_resource_pool(
            connect,
            disconnect,
            workers=2,
            check_health=connection_ok,
            max_retries=3,
        ) as pool:
            async with trio.open_nursery() as clients:
                for client_id in range(CLIENTS):
                    clients.start_soon(client, client_id)
            print(f"statistics: {pool.statistics()}")
            metrics = pool.metrics()
            print(
                f"metrics: succeeded={metrics.succeeded} failed={metrics.failed}"
                f" retries={metrics.retries}"
            )
        print(f"the server accepted {server.accepted} connections")
        server_nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
