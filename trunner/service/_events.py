"""The event stream: job changes fanned out to server-sent-event clients.

The broker listens to a `~trunner.jobs.JobManager`'s changes. Each change is
kept in a bounded backlog (for ``Last-Event-ID`` resume), encoded at most
once, as the bytes of one server-sent event, when a subscriber first needs it
(at once while any client listens; with none, only if a client resumes from
before it), and offered to every subscriber's bounded buffer without waiting:
a subscriber whose buffer is full is dropped (its stream ends; it reconnects
and resumes from the backlog), so a slow client never slows the manager.
Event ids are ``<stream>-<n>``: ``<stream>`` is random per broker, so an id
from an earlier run of the server is known not to resume.
"""

from __future__ import annotations

import collections
import secrets
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from ._codec import dumps, job_to_json

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from ..jobs import JobInfo

#: Sent when a ``Last-Event-ID`` cannot resume: events were missed.
RESET_EVENT: Final = b"event: reset\ndata: {}\n\n"
HEARTBEAT: Final = b": heartbeat\n\n"


@final
@attrs.define(eq=False)
class _Event:
    """One change in the backlog: its number, and its bytes once encoded."""

    number: int
    info: JobInfo | None
    encoded: bytes = b""

    def encode(self, stream: bytes) -> bytes:
        """The event's bytes, encoded on the first call (then the info is let go)."""
        if self.info is not None:
            self.encoded = b"id: %s-%d\ndata: %s\n\n" % (
                stream,
                self.number,
                dumps(job_to_json(self.info)),
            )
            self.info = None
        return self.encoded


@final
@attrs.define(eq=False)
class Subscriber:
    """One client's buffer of encoded events."""

    send: trio.MemorySendChannel[bytes]
    receive: trio.MemoryReceiveChannel[bytes]
    dropped: bool = False


@final
@attrs.define(eq=False)
class EventBroker:
    """Fans job changes out to subscribers, with a bounded backlog.

    Args:
        backlog: how many recent events are kept for resume.
        buffer: how many events a subscriber may lag behind before it is dropped.
    """

    backlog: int = 1000
    buffer: int = 1000
    _stream: str = attrs.field(init=False, factory=lambda: secrets.token_hex(4))
    _stream_bytes: bytes = attrs.field(init=False, default=b"")
    _next: int = attrs.field(init=False, default=1)
    _recent: collections.deque[_Event] = attrs.field(init=False)
    _subscribers: set[Subscriber] = attrs.field(init=False, factory=set[Subscriber])
    closed: bool = attrs.field(init=False, default=False)
    #: Subscribers dropped for lagging, since the start.
    dropped: int = attrs.field(init=False, default=0)
    #: Events published since the start.
    published: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._recent = collections.deque(maxlen=self.backlog)
        self._stream_bytes = self._stream.encode()

    @property
    def subscribers(self) -> int:
        """How many clients are subscribed now."""
        return len(self._subscribers)

    def publish(self, info: JobInfo) -> None:
        """Keep the change and offer it to every subscriber; never blocks.

        The change is encoded here only if someone listens (once, whatever
        their number); otherwise when a resume first asks for it.
        """
        number = self._next
        self._next += 1
        self.published += 1
        recent = _Event(number, info)
        self._recent.append(recent)
        if not self._subscribers:
            return
        event = recent.encode(self._stream_bytes)
        for subscriber in tuple(self._subscribers):
            try:
                subscriber.send.send_nowait(event)
            except trio.WouldBlock:
                self._drop(subscriber)

    def _drop(self, subscriber: Subscriber) -> None:
        subscriber.dropped = True
        self.dropped += 1
        self._subscribers.discard(subscriber)
        subscriber.send.close()

    def subscribe(self, last_event_id: str | None) -> Subscriber:
        """Add a subscriber; pre-fill its buffer with what it missed since its last id.

        An id that cannot resume (another stream, or older than the backlog)
        gets a ``reset`` event first, then the live events.
        """
        send, receive = trio.open_memory_channel[bytes](self.buffer)
        subscriber = Subscriber(send, receive)
        if self.closed:
            send.close()
            return subscriber
        if last_event_id is not None:
            for event in self._missed(last_event_id):
                try:
                    send.send_nowait(event)
                except trio.WouldBlock:
                    break  # more missed than it may buffer: it will lag and resume
        self._subscribers.add(subscriber)
        return subscriber

    def _missed(self, last_event_id: str) -> Iterable[bytes]:
        stream, _, number_text = last_event_id.strip().rpartition("-")
        if stream != self._stream or not number_text.isdigit():
            return [RESET_EVENT]
        number = int(number_text)
        if number >= self._next:
            return [RESET_EVENT]
        oldest = self._recent[0].number if self._recent else self._next
        if number + 1 < oldest:
            return [RESET_EVENT]
        # Encoded as the subscriber's buffer takes them (it may stop early).
        ours = self._stream_bytes
        return (event.encode(ours) for event in self._recent if event.number > number)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove a subscriber (its client went away)."""
        self._subscribers.discard(subscriber)
        subscriber.send.close()

    def disconnect_all(self) -> None:
        """End every stream now; the clients may reconnect and resume."""
        for subscriber in tuple(self._subscribers):
            self.unsubscribe(subscriber)

    def close(self) -> None:
        """End every stream and refuse new ones (the server is shutting down).

        Idempotent.
        """
        self.closed = True
        self.disconnect_all()

    async def stream(
        self, subscriber: Subscriber, *, heartbeat: float
    ) -> AsyncIterator[bytes]:
        """Yield the subscriber's events, with a heartbeat comment when idle.

        Ends when the subscriber is dropped or the broker closes.
        """
        yield b"retry: 1000\n" + HEARTBEAT
        receive = subscriber.receive
        try:
            while True:
                event = b""
                with trio.move_on_after(heartbeat):
                    try:
                        event = await receive.receive()
                    except trio.EndOfChannel:
                        return
                if not event:
                    yield HEARTBEAT
                    continue
                # Send what has piled up in one write.
                chunk = [event]
                while len(chunk) < 256:
                    try:
                        chunk.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                yield b"".join(chunk)
        finally:
            self.unsubscribe(subscriber)
