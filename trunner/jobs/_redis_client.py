"""The Redis connection of `RedisJobStore`: coredis, seen through small protocols.

coredis (anyio-based, so it runs on trio) is imported here, lazily, when a
store connects. Its clients must be entered as async context managers, which
opens a task group for the connection pool: `Connection.serve` enters the
client in a task of its own, so that the pool lives as long as the store is
connected, whatever task connects and disconnects it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, TypeVar, cast, final

import trio

from ._errors import StoreError
from ._redis_codec import replies

if TYPE_CHECKING:
    import builtins
    import contextlib
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from .._sequenced import SequencedTaskRunner
    from ._redis_codec import RedisAddress

T = TypeVar("T")

#: What a script or command answers, as far as the store relies on it.
Reply: TypeAlias = object

logger: Final = logging.getLogger("trunner.jobs")


class Script(Protocol):
    """A Lua script registered on a client (coredis's ``Script``)."""

    def __call__(
        self,
        keys: Sequence[str],
        args: Sequence[str | int],
        client: object = ...,
    ) -> Awaitable[Reply]: ...


class PubSub(Protocol):
    """A subscription (coredis's ``PubSub``), entered as an async context manager."""

    async def subscribe(self, *channels: str) -> None: ...

    async def get_message(
        self, ignore_subscribe_messages: bool = ...
    ) -> Mapping[str, object] | None: ...


class Client(Protocol):
    """The part of coredis's ``Redis`` and ``RedisCluster`` that the store uses."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc_info: object) -> object: ...

    def register_script(self, script: str) -> Script: ...

    def ping(self) -> Awaitable[object]: ...

    def config_get(
        self, parameters: Sequence[str]
    ) -> Awaitable[Mapping[bytes, bytes]]: ...

    def hgetall(self, key: str) -> Awaitable[Mapping[bytes, bytes]]: ...

    def pipeline(
        self, transaction: bool = ...
    ) -> contextlib.AbstractAsyncContextManager[object]: ...

    def pubsub(
        self, *, retry_policy: None
    ) -> contextlib.AbstractAsyncContextManager[PubSub]: ...

    def cluster_keyslot(self, key: str) -> Awaitable[int]: ...

    def cluster_shards(self) -> Awaitable[Sequence[Mapping[bytes, object]]]: ...


def make_client(
    address: RedisAddress, *, host: str | None = None, port: int | None = None
) -> tuple[Client, tuple[type[Exception], ...]]:
    """Make a coredis client for ``address`` (one node of it, given ``host``).

    Returns:
        The client, unentered, and the errors its calls may raise.
    """
    import anyio
    import coredis
    import coredis.exceptions
    from coredis.connection import TCPLocation

    made: object
    if address.cluster and host is None:
        nodes = [TCPLocation(h, p) for h, p in address.nodes]
        cluster: coredis.RedisCluster[bytes] = coredis.RedisCluster(
            startup_nodes=nodes,
            username=address.username,
            password=address.password,
            connect_timeout=address.timeout,
            stream_timeout=address.timeout,
            ssl=address.tls,
            decode_responses=False,
        )
        made = cluster
    else:
        if host is None or port is None:
            ((host, port),) = address.nodes
        made = coredis.Redis(
            host=host,
            port=port,
            db=address.db,
            username=address.username,
            password=address.password,
            connect_timeout=address.timeout,
            stream_timeout=address.timeout,
            pool_timeout=address.timeout,
            ssl=address.tls,
            decode_responses=False,
        )
    errors: tuple[type[Exception], ...] = (
        coredis.exceptions.RedisError,
        OSError,
        anyio.BrokenResourceError,
        anyio.ClosedResourceError,
        anyio.EndOfStream,
        RuntimeError,  # a pool whose task has ended
    )
    return cast("Client", made), errors


@final
class Connection:
    """A client, the task that keeps it entered, and the scripts loaded on it.

    ``keys`` are every script's keys (the store's seq key, which routes the
    call to its slot) and ``head`` the first argument (see `._redis_lua`).
    """

    __slots__ = (
        "address",
        "client",
        "closing",
        "done",
        "errors",
        "head",
        "keys",
        "scripts",
    )

    def __init__(self, address: RedisAddress, *, seq_key: str, head: str) -> None:
        self.address = address
        self.client, self.errors = make_client(address)
        self.closing = trio.Event()
        self.done = trio.Event()
        self.scripts: dict[str, Script] = {}
        self.keys = [seq_key]
        self.head = head

    async def open(
        self, runner: SequencedTaskRunner, scripts: Mapping[str, str]
    ) -> None:
        """Serve the client on ``runner``, load ``scripts`` (by name), check Redis.

        Logs a warning unless the server is durable (`warn_unless_durable`).
        On failure, closes the client and ``runner``.

        Raises:
            StoreError: if Redis cannot be reached or does not answer.
        """
        ready = trio.Event()
        failure: list[BaseException] = []
        runner.post_task(self.serve, ready, failure)
        try:
            await ready.wait()
            if failure:
                raise StoreError(
                    f"cannot connect to {self.address.describe()}: {failure[0]}"
                ) from failure[0]
            for name, source in scripts.items():
                self.scripts[name] = self.client.register_script(source)
            await self.call("ping", self.client.ping)
            await self.warn_unless_durable()
        except BaseException:
            self.closing.set()
            with trio.CancelScope(shield=True):
                await self.done.wait()
                await runner.aclose()
            raise

    async def script(self, name: str, *args: str | int) -> Reply:
        """Run the script ``name`` with ``args`` (after the head)."""
        script = self.scripts[name]
        keys, argv = self.keys, [self.head, *args]
        return await self.call(name.lower(), lambda: script(keys, argv))

    async def script_chunks(
        self, name: str, chunks: Sequence[Sequence[str]]
    ) -> list[Reply]:
        """Run the script ``name`` once per chunk of arguments, in one transaction.

        Returns the replies of every call, one after the other.
        """
        script = self.scripts[name]
        answers: list[Reply] = []

        async def run() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                requests = [
                    script(self.keys, [self.head, *chunk], client=pipe)
                    for chunk in chunks
                ]
            for request in requests:
                answers.extend(replies(await request))

        await self.call(name.lower(), run)
        return answers

    async def serve(
        self, ready: trio.Event, failure: builtins.list[BaseException]
    ) -> None:
        """Keep the client (its connection pool's task group) entered until closing."""
        try:
            async with self.client:
                ready.set()
                await self.closing.wait()
        except BaseException as error:
            failure.append(error)
            raise
        finally:
            ready.set()
            self.done.set()

    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()``, bounded by the timeout.

        Raises:
            StoreError: if Redis fails or does not answer in time.
        """
        address = self.address
        try:
            with trio.fail_after(address.timeout):
                return await fn()
        except trio.TooSlowError as error:
            raise StoreError(
                f"Redis at {address.describe()} did not answer {what} within "
                f"{address.timeout} s"
            ) from error
        except self.errors as error:
            raise StoreError(
                f"Redis at {address.describe()} failed {what}: {error}"
            ) from error

    async def warn_unless_durable(self) -> None:
        """Log a warning if the server may lose acknowledged writes."""
        describe = self.address.describe()
        try:
            settings = await self.durability(self.keys[0])
        except StoreError as error:
            logger.warning(
                "could not read the durability settings of %s (%s): acknowledged "
                "jobs may be lost on a crash unless it runs with 'appendonly yes' "
                "and 'appendfsync always'",
                describe,
                error,
            )
            return
        if any(settings.get(name) != value for name, value in DURABLE.items()):
            logger.warning(
                "Redis at %s runs with appendonly=%s, appendfsync=%s: it acknowledges "
                "writes before they reach its disk, so a crash of the server can lose "
                "acknowledged jobs; run it with 'appendonly yes' and "
                "'appendfsync always' to make every acknowledged job durable",
                describe,
                settings.get("appendonly", "?"),
                settings.get("appendfsync", "?"),
            )

    async def durability(self, seq_key: str) -> dict[str, str]:
        """Return the server's ``appendonly`` and ``appendfsync`` settings.

        On a cluster, those of the node that holds ``seq_key``'s slot.

        Raises:
            StoreError: if they cannot be read.
        """
        parameters = ["appendonly", "appendfsync"]
        if not self.address.cluster:
            config = await self.call(
                "config get", lambda: self.client.config_get(parameters)
            )
        else:
            host, port = await self.call("cluster shards", lambda: self._node(seq_key))
            single, _ = make_client(self.address, host=host, port=port)

            async def read() -> Mapping[bytes, bytes]:
                async with single:
                    return await single.config_get(parameters)

            config = await self.call("config get", read)
        return {text(key): text(value) for key, value in config.items()}

    async def _node(self, key: str) -> tuple[str, int]:
        """The primary node that holds ``key``'s slot on a cluster."""
        slot = int(await self.client.cluster_keyslot(key))
        for shard in await self.client.cluster_shards():
            ranges = cast("Sequence[int]", shard[b"slots"])
            if any(
                ranges[i] <= slot <= ranges[i + 1] for i in range(0, len(ranges), 2)
            ):
                for node in cast("Sequence[Mapping[bytes, object]]", shard[b"nodes"]):
                    if node[b"role"] == b"master":
                        host = node.get(b"endpoint") or node[b"ip"]
                        return text(host), int(cast("int", node[b"port"]))
        return self.address.nodes[0]


def text(value: object) -> str:
    """Return a reply value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


#: Messages with the settings that make acknowledged writes durable.
DURABLE: Final = {"appendonly": "yes", "appendfsync": "always"}
