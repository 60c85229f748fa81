"""GET /events: live server-sent events, resume with Last-Event-ID, slow clients."""

from __future__ import annotations

import datetime as dt
import json
from contextlib import AsyncExitStack, aclosing
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from trunner import Priority
from trunner.jobs import JobInfo, JobState, MemoryJobStore, open_job_manager
from trunner.service import BearerTokens, create_app, serve
from trunner.service import _events as events_module
from trunner.service._codec import job_to_json
from trunner.service._events import HEARTBEAT, RESET_EVENT, EventBroker

from .conftest import AUTH, HTTPCORE_STREAM_WARNING, TOKEN, Served, lines_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.filterwarnings(HTTPCORE_STREAM_WARNING)
WALL0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class SseReader:
    """Parse a server-sent event stream: (id, event, data) per event."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines
        self.comments: list[str] = []

    async def next(self) -> tuple[str | None, str, dict[str, object]]:
        event_id, kind, data = None, "message", list[str]()
        async for line in self._lines:
            if not line:
                if data or kind != "message":
                    return event_id, kind, json.loads("\n".join(data))
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            field, _, value = line.partition(": ")
            if field == "id":
                event_id = value
            elif field == "event":
                kind = value
            elif field == "data":
                data.append(value)
        raise EOFError


async def submit(http: httpx.AsyncClient, job_id: str, **extra: object) -> None:
    body = {"id": job_id, "handler": "slow", "args": 1, "delay": 3600, **extra}
    response = await http.post("/jobs", json=body, headers=AUTH)
    assert response.status_code == 201


async def test_events_are_live_and_resume_with_last_event_id(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        with trio.fail_after(20):
            async with (
                http.stream("GET", "/events", headers=AUTH) as response,
                AsyncExitStack() as stack,
            ):
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["cache-control"] == "no-cache"
                lines = await stack.enter_async_context(aclosing(lines_of(response)))
                events = SseReader(lines)
                await submit(http, "a")
                first = await events.next()
                await submit(http, "b")
                second = await events.next()
            # Disconnected: these happen while nobody listens.
            await submit(http, "c")
            await http.delete("/jobs/a", headers=AUTH)
            headers = {**AUTH, "Last-Event-ID": str(second[0])}
            async with (
                http.stream("GET", "/events", headers=headers) as response,
                AsyncExitStack() as stack,
            ):
                lines = await stack.enter_async_context(aclosing(lines_of(response)))
                events = SseReader(lines)
                missed = [await events.next(), await events.next()]
                await submit(http, "d")
                live = await events.next()

    assert first[2]["id"] == "a"
    assert first[2]["state"] == "pending"
    assert first[0] is not None
    assert second[2]["id"] == "b"
    assert [(e[2]["id"], e[2]["state"]) for e in missed] == [
        ("c", "pending"),
        ("a", "cancelled"),
    ]
    assert live[2]["id"] == "d"
    ids = [first[0], second[0], missed[0][0], missed[1][0], live[0]]
    assert len(set(ids)) == 5
    assert events.comments[0] == ": heartbeat"


async def test_events_follow_a_job_through_its_life(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        with trio.fail_after(20):
            async with (
                http.stream("GET", "/events", headers=AUTH) as response,
                AsyncExitStack() as stack,
            ):
                lines = await stack.enter_async_context(aclosing(lines_of(response)))
                events = SseReader(lines)
                body = {"id": "e", "handler": "send_email", "args": {"to": "x"}}
                await http.post("/jobs", json=body, headers=AUTH)
                states: list[object] = []
                while not states or states[-1] != "succeeded":
                    states.append((await events.next())[2]["state"])

    assert states == ["pending", "running", "succeeded"]


async def test_unknown_last_event_id_gets_a_reset_first(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        with trio.fail_after(20):
            for stale in ("0000-5", "garbage", "12"):
                headers = {**AUTH, "Last-Event-ID": stale}
                async with (
                    http.stream("GET", "/events", headers=headers) as response,
                    AsyncExitStack() as stack,
                ):
                    lines = await stack.enter_async_context(
                        aclosing(lines_of(response))
                    )
                    events = SseReader(lines)
                    kind = (await events.next())[1]
                    await submit(http, f"after-{stale}")
                    live = await events.next()
                assert kind == "reset"
                assert live[2]["id"] == f"after-{stale}"


async def test_heartbeats_keep_an_idle_stream_alive() -> None:
    async with open_job_manager(MemoryJobStore(), worker=False) as manager:
        app = create_app(manager, auth=BearerTokens({TOKEN: "ops"}), heartbeat=0.05)
        async with (
            serve(app, port=0) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            with trio.fail_after(20):
                async with (
                    http.stream("GET", "/events", headers=AUTH) as response,
                    aclosing(lines_of(response)) as lines,
                ):
                    seen = [await anext(lines) for _ in range(6)]

    assert seen.count(": heartbeat") >= 3


async def test_leaving_serve_ends_open_streams() -> None:
    async with open_job_manager(MemoryJobStore(), worker=False) as manager:
        app = create_app(manager, auth=BearerTokens({TOKEN: "ops"}))
        with trio.fail_after(20):
            async with (
                serve(app, port=0) as server,
                httpx.AsyncClient(base_url=server.url) as http,
            ):
                async with http.stream("GET", "/events", headers=AUTH) as response:
                    assert response.status_code == 200
                    server.shutdown()
                    await server.wait_shutdown()
                    app.state.trunner_events.close()
                    async with aclosing(lines_of(response)) as lines:
                        rest = [line async for line in lines]
                refused = app.state.trunner_events.subscribe(None)

    assert rest == ["retry: 1000", ": heartbeat", ""]  # and then the end
    assert refused.send._closed  # pyright: ignore[reportAttributeAccessIssue]  # trio internals, for the test


def make_info(job_id: str) -> JobInfo:
    return JobInfo(
        id=job_id,
        handler="h",
        args={"n": 1},
        state=JobState.PENDING,
        priority=Priority.USER_VISIBLE,
        attempts=0,
        max_attempts=1,
        created_at=WALL0,
        run_at=WALL0,
        started_at=None,
        finished_at=None,
        result=None,
        error=None,
        worker=None,
    )


async def test_a_slow_subscriber_is_dropped_without_blocking() -> None:
    broker = EventBroker(backlog=10, buffer=2)
    slow = broker.subscribe(None)
    fast = broker.subscribe(None)

    with trio.testing.assert_no_checkpoints():
        broker.publish(make_info("a"))
        broker.publish(make_info("b"))
        fast.receive.receive_nowait()
        fast.receive.receive_nowait()
        broker.publish(make_info("c"))  # slow's buffer is full: dropped

    assert slow.dropped
    assert not fast.dropped
    assert broker.dropped == 1
    assert broker.subscribers == 1
    # The dropped one still gets what it had buffered, then the end.
    got = [slow.receive.receive_nowait(), slow.receive.receive_nowait()]
    assert [b"a" in g and b'"id":"a"' in g for g in got] == [True, False]
    resumed = broker.subscribe(got[-1].split(b"\n")[0].removeprefix(b"id: ").decode())
    assert b'"id":"c"' in resumed.receive.receive_nowait()


async def test_backlog_is_bounded_and_older_ids_reset() -> None:
    broker = EventBroker(backlog=3, buffer=100)
    probe = broker.subscribe(None)
    for i in range(5):
        broker.publish(make_info(f"j{i}"))
    ids = [
        probe.receive.receive_nowait().split(b"\n")[0].removeprefix(b"id: ").decode()
        for _ in range(5)
    ]

    too_old = broker.subscribe(ids[0])
    oldest_kept = broker.subscribe(ids[1])
    future = broker.subscribe(ids[0].rsplit("-", 1)[0] + "-99")
    small = EventBroker(backlog=10, buffer=1).subscribe(None)

    assert too_old.receive.receive_nowait() == RESET_EVENT
    assert b'"id":"j2"' in oldest_kept.receive.receive_nowait()
    assert future.receive.receive_nowait() == RESET_EVENT
    assert small is not None
    assert HEARTBEAT.startswith(b":")


async def test_resume_with_more_missed_than_the_buffer() -> None:
    broker = EventBroker(backlog=10, buffer=2)
    probe = broker.subscribe(None)
    broker.publish(make_info("first"))
    first_id = probe.receive.receive_nowait().split(b"\n")[0].removeprefix(b"id: ")
    broker.unsubscribe(probe)
    for i in range(5):
        broker.publish(make_info(f"j{i}"))

    resumed = broker.subscribe(first_id.decode())
    broker.publish(make_info("live"))  # the buffer is full of missed events

    assert resumed.dropped
    assert b'"id":"j0"' in resumed.receive.receive_nowait()


async def test_each_change_is_encoded_once_and_only_when_wanted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded: list[str] = []

    def counting(info: JobInfo) -> dict[str, object]:
        encoded.append(info.id)
        return job_to_json(info)

    monkeypatch.setattr(events_module, "job_to_json", counting)
    broker = EventBroker(backlog=10, buffer=10)
    probe = broker.subscribe(None)
    broker.publish(make_info("first"))
    first_id = probe.receive.receive_nowait().split(b"\n")[0].removeprefix(b"id: ")
    broker.unsubscribe(probe)
    broker.publish(make_info("unheard"))  # nobody listens: not encoded
    assert encoded == ["first"]

    one, two = broker.subscribe(first_id.decode()), broker.subscribe(first_id.decode())
    broker.publish(make_info("live"))

    # Each change encoded once, whatever the number of subscribers.
    assert encoded == ["first", "unheard", "live"]
    got_one = [one.receive.receive_nowait() for _ in range(2)]
    got_two = [two.receive.receive_nowait() for _ in range(2)]
    assert got_one == got_two
    stream, _, number = first_id.rpartition(b"-")
    assert got_one[0].startswith(b"id: %s-%d\n" % (stream, int(number) + 1))
    assert b'"id":"unheard"' in got_one[0]
    assert b'"id":"live"' in got_one[1]
