"""Redis servers of the tests' own (one with an AOF, a 3-node cluster), a proxy.

Started from ``redis-server`` on free ports in a temporary directory, stopped
(and their files removed) by the caller. Tests that stop, restart or pause a
server use these, never the shared one at 6379.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from typing import IO, TYPE_CHECKING

import attrs
import pytest
import trio

from .._services import free_port, require_program

if TYPE_CHECKING:
    import pathlib
    from collections.abc import AsyncGenerator, Generator

# coredis 6.9 leaves the anyio memory streams of a connection unclosed when
# the connection is never established (a server down, a cluster's discovery);
# their __del__ warns. Collected after each test (the fixture
# collect_driver_garbage), where this filter applies.
DRIVER_GARBAGE = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function MemoryObject"
    ":pytest.PytestUnraisableExceptionWarning"
)


def _wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too."""
    for _ in range(1000):
        port = random.randrange(20000, 55000)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free pair of ports for a cluster node")


class RedisServer:
    """A redis-server process of a test's own, with AOF (appendfsync always)."""

    def __init__(
        self, directory: pathlib.Path, *extra: str, port: int | None = None
    ) -> None:
        self.program = require_program("redis-server")
        self.directory = directory
        self.port = free_port() if port is None else port
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = self._spawn(log)
        _wait_until(self._accepting, 10, f"redis-server on {self.port}")
        # Loading the append-only file: wait until it answers PING with PONG.
        _wait_until(self._loaded, 10, f"redis-server on {self.port} to load")

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                self.program,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> pathlib.Path:
        return self.directory / "redis.log"

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"redis-server on {self.port} exited: {self.log.read_text()[-2000:]}"
            )
        return _accepts(self.port)

    def _loaded(self) -> bool:
        try:
            out = self.cli("ping")
        except subprocess.CalledProcessError:
            return False
        return out.strip() == "PONG"

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [
                require_program("redis-cli"),
                "-p",
                str(self.port),
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextlib.contextmanager
def redis_server(directory: pathlib.Path, *extra: str) -> Generator[RedisServer]:
    """Run a redis-server of the test's own while the block runs."""
    server = RedisServer(directory, *extra)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextlib.contextmanager
def redis_cluster(directory: pathlib.Path, nodes: int = 3) -> Generator[list[int]]:
    """Run a Redis Cluster of ``nodes`` masters; yield their ports."""
    servers = [
        RedisServer(
            directory / f"node{i}",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--appendonly",
            "no",
            port=cluster_port(),
        )
        for i in range(nodes)
    ]
    try:
        for server in servers:
            server.start()
        subprocess.run(
            [
                require_program("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{server.port}" for server in servers),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        _wait_until(
            lambda: all(
                "cluster_state:ok" in server.cli("cluster", "info")
                for server in servers
            ),
            20,
            "the cluster to be ready",
        )
        yield [server.port for server in servers]
    finally:
        for server in servers:
            server.kill()


@attrs.define
class Proxy:
    """A TCP proxy to a Redis server, on a port of its own.

    `cut` makes it a black hole, as a network that falls silently: connections
    stay open, but nothing goes through either way (requests never reach the
    server, so they change nothing). `restore` closes every connection made so
    far and relays new ones again.
    """

    target: int
    port: int = attrs.field(factory=free_port)
    _cut: bool = False
    _scopes: set[trio.CancelScope] = attrs.field(factory=set[trio.CancelScope])

    def url(self, query: str = "") -> str:
        return f"redis://127.0.0.1:{self.port}/0{query}"

    async def serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, client: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                async with client:
                    if self._cut:
                        await trio.sleep_forever()
                    server = await trio.open_tcp_stream("127.0.0.1", self.target)
                    async with server, trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, server, scope)
                        nursery.start_soon(self._pump, server, client, scope)
            finally:
                self._scopes.discard(scope)

    async def _pump(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        scope: trio.CancelScope,
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                if not self._cut:
                    await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    def cut(self) -> None:
        """Let nothing through any more (connections stay open)."""
        self._cut = True

    async def restore(self) -> None:
        """Close every connection; relay new ones again."""
        self._cut = False
        for scope in list(self._scopes):
            scope.cancel()
        await trio.lowlevel.checkpoint()


@contextlib.asynccontextmanager
async def redis_proxy(target: int) -> AsyncGenerator[Proxy]:
    """Run a `Proxy` to the Redis server on port ``target`` for the block."""
    proxy = Proxy(target)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()
