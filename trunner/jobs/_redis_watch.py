"""RedisWatcher: wake-ups of a Redis store, from its pub/sub channel."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Final, final

import trio

from ._errors import StoreError
from ._failures import describe_error

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Mapping

    from ._redis_client import PubSub

logger: Final = logging.getLogger("trunner.jobs")

#: Seconds between attempts to subscribe again after the connection was lost.
_RETRY_MIN: Final = 0.1
_RETRY_MAX: Final = 5.0


@final
class RedisWatcher:
    """A `~trunner.jobs.WorkWatcher` of a `RedisJobStore`.

    Every script that makes a job PENDING publishes one message on the store's
    channel (``{prefix}:wake``); the watcher's task, subscribed on a connection
    of its own, marks each message as an arrival. When the subscription is
    lost (a Redis restart, a network cut) the task subscribes again with
    capped backoff, and counts one arrival for the gap, since messages
    published meanwhile are gone: the worker claims once and finds out.

    Made by `RedisJobStore.watch`; its ``__init__`` is internal. Internally,
    it also listens on the changes channel, waking for the messages that
    ``accept`` takes (it is given each one).
    """

    __slots__ = (
        "_accept",
        "_channel",
        "_event",
        "_make_pubsub",
        "_subscribed",
        "_woken",
    )

    def __init__(
        self,
        make_pubsub: Callable[[], contextlib.AbstractAsyncContextManager[PubSub]],
        channel: str,
        *,
        accept: Callable[[str], bool] | None = None,
    ) -> None:
        self._make_pubsub = make_pubsub
        self._channel = channel
        self._accept = accept
        self._woken = False
        self._event = trio.Event()
        self._subscribed = trio.Event()

    def _arrived(self) -> None:
        self._woken = True
        self._event.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109  # the protocol's
        """Wait for an arrival since the last True, or ``timeout`` seconds.

        A checkpoint; cancelling it changes nothing (an arrival stays marked).
        """
        if not self._woken:
            with trio.move_on_after(timeout):
                await self._event.wait()
        else:
            await trio.lowlevel.checkpoint()
        if not self._woken:
            return False
        self._woken = False
        self._event = trio.Event()
        return True

    def _wanted(self, message: Mapping[str, object]) -> bool:
        if self._accept is None:
            return True
        data = message.get("data")
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        return isinstance(data, str) and self._accept(data)

    async def listen(self, what: str) -> None:
        """Stay subscribed, marking arrivals, until cancelled."""
        delay = _RETRY_MIN
        lost = False
        while True:
            try:
                async with self._make_pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._subscribed.set()
                    if lost:
                        self._arrived()  # what was published in the gap is gone
                        lost = False
                    delay = _RETRY_MIN
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True
                        )
                        if message is not None and self._wanted(message):
                            self._arrived()
            except Exception as error:  # any loss: subscribe again
                if not lost:
                    logger.warning(
                        "lost the wake-up channel of %s (%s); subscribing again",
                        what,
                        describe_error(error),
                    )
                lost = True
            await trio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    @contextlib.asynccontextmanager
    async def running(self, timeout: float, what: str) -> AsyncGenerator[None]:  # noqa: ASYNC109  # a bound, not a deadline
        """Listen (`listen`) for the ``async with`` block, subscribed on entry.

        Raises:
            StoreError: if the subscription is not in place within ``timeout``.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.listen, what)
            try:
                await self.subscribed(timeout, what)
                yield
            finally:
                nursery.cancel_scope.cancel()

    async def subscribed(self, timeout: float, what: str) -> None:  # noqa: ASYNC109  # a bound, not a deadline
        """Wait until the first subscription is in place.

        Raises:
            StoreError: if it is not within ``timeout`` seconds.
        """
        with trio.move_on_after(timeout):
            await self._subscribed.wait()
            return
        raise StoreError(
            f"could not subscribe to the wake-ups of {what} in {timeout} s"
        )
