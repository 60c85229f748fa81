"""The Client end to end, against a real server: results, errors, events."""

from __future__ import annotations

import datetime as dt
from contextlib import aclosing

import httpx
import pytest
import trio

from trunner import Priority
from trunner.jobs import (
    JobExistsError,
    JobInfo,
    JobNotFoundError,
    JobState,
    JobStateError,
    SerializationError,
    SQLiteJobStore,
    StoreError,
    UnknownHandlerError,
)
from trunner.service import Client

from .conftest import HTTPCORE_STREAM_WARNING, READER_TOKEN, TOKEN, Served, eventually

pytestmark = pytest.mark.filterwarnings(HTTPCORE_STREAM_WARNING)


async def test_client_round_trip(served: Served) -> None:
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    async with Client(served.url, token=TOKEN) as client:
        later = await client.submit_job(
            "later", "slow", 1, priority=Priority.USER_BLOCKING, run_at=when
        )
        delayed = await client.submit_job("delayed", "slow", 2, delay=3600)
        same = await client.submit_job("delayed", "slow", 9, if_exists="ignore")
        email = await client.submit_job("e", "send_email", {"to": "a@example.com"})

        async def succeeded() -> bool:
            return (await client.get_job("e")).state is JobState.SUCCEEDED

        await eventually(succeeded)
        done = await client.get_job("e")
        pending = await client.list_jobs(state=JobState.PENDING, handler="slow")
        page = await client.list_jobs(limit=1, offset=1)
        cancelled = await client.cancel_job("later")
        retried = await client.retry_job("later")

    assert later.run_at == when
    assert later.priority is Priority.USER_BLOCKING
    assert later.state is JobState.PENDING
    assert delayed.args == 2
    assert same.args == 2
    assert email.state is JobState.PENDING
    assert done.result == {"sent": "a@example.com"}
    assert done.finished_at is not None
    assert done.worker == served.manager.name
    assert done == await served.manager.get_job("e")
    assert {job.id for job in pending} == {"later", "delayed"}
    assert len(page) == 1
    assert cancelled.state is JobState.CANCELLED
    assert retried.state is JobState.PENDING
    assert "s3cret" not in repr(client)


async def test_client_maps_errors_back(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Client(served.url, token=TOKEN) as client:
        await client.submit_job("p", "slow", 1, delay=3600)
        with pytest.raises(JobNotFoundError, match="nope"):
            await client.get_job("nope")
        with pytest.raises(JobNotFoundError):
            await client.cancel_job("nope")
        with pytest.raises(JobExistsError, match="'p'"):
            await client.submit_job("p", "slow", 1)
        with pytest.raises(UnknownHandlerError, match="handler"):
            await client.submit_job("x", "nope", 1)
        with pytest.raises(SerializationError):
            await client.submit_job("x", "send_email", {"to": 5})
        with pytest.raises(SerializationError, match="serialise"):
            await client.submit_job("x", "slow", object())
        with pytest.raises(JobStateError):
            await client.retry_job("p")
        with pytest.raises(ValueError, match="delay"):
            await client.submit_job("x", "slow", 1, delay=-1)
        with pytest.raises(ValueError, match="timezone-aware"):
            await client.submit_job("x", "slow", 1, run_at=dt.datetime(2030, 1, 1))
        with pytest.raises(TypeError, match="state must be a JobState, not 'failed'"):
            await client.list_jobs(state="failed")  # type: ignore[arg-type]  # on purpose
        with pytest.raises(TypeError, match="priority must be a Priority, not 'high'"):
            await client.submit_job("x", "slow", 1, priority="high")  # type: ignore[arg-type]  # on purpose

        async def broken(self: SQLiteJobStore, job_id: str) -> None:
            await trio.lowlevel.checkpoint()
            raise StoreError("disk on fire")

        monkeypatch.setattr(SQLiteJobStore, "get", broken)
        with pytest.raises(StoreError, match="disk on fire"):
            await client.get_job("p")
        monkeypatch.undo()

    async with Client(served.url, token="wrong") as client:
        with pytest.raises(PermissionError, match="401"):
            await client.get_job("p")
        with pytest.raises(PermissionError, match="401"):
            await client.list_jobs()
    async with Client(served.url) as client:
        with pytest.raises(PermissionError, match="401"):
            await client.get_job("p")
    async with Client(served.url, token=READER_TOKEN) as client:
        assert (await client.get_job("p")).id == "p"
        with pytest.raises(PermissionError, match="403"):
            await client.cancel_job("p")
    assert (await served.manager.get_job("p")).state is JobState.PENDING


async def test_client_maps_non_json_errors() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jobs/teapot":
            return httpx.Response(418, text="I'm a teapot")
        if request.url.path == "/jobs/gone":
            return httpx.Response(404, text="no such thing")
        return httpx.Response(502, text="bad gateway")

    transport = httpx.MockTransport(answer)
    async with Client("http://service", token=TOKEN, transport=transport) as client:
        with pytest.raises(ValueError, match="418: I'm a teapot"):
            await client.get_job("teapot")
        with pytest.raises(LookupError, match="no such thing"):
            await client.get_job("gone")
        with pytest.raises(StoreError, match="502"):
            await client.get_job("x")
        await client.aclose()


async def test_events_resume_after_a_dropped_connection(served: Served) -> None:
    seen: list[JobInfo] = []
    async with Client(served.url, token=TOKEN) as client:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                got_one = trio.Event()
                got_all = trio.Event()

                async def listen() -> None:
                    async with aclosing(client.events()) as events:
                        async for info in events:
                            seen.append(info)
                            got_one.set()
                            if {i.id for i in seen} >= {"a", "b", "c"}:
                                got_all.set()

                nursery.start_soon(listen)
                await eventually(served.has_subscribers)
                await client.submit_job("a", "slow", 1, delay=3600)
                await got_one.wait()
                # Drop every stream; the next jobs come while it reconnects.
                served.app.state.trunner_events.disconnect_all()
                await client.submit_job("b", "slow", 1, delay=3600)
                await client.submit_job("c", "slow", 1, delay=3600)
                await got_all.wait()
                nursery.cancel_scope.cancel()

    assert [(i.id, i.state) for i in seen] == [
        ("a", JobState.PENDING),
        ("b", JobState.PENDING),
        ("c", JobState.PENDING),
    ]


async def test_events_with_a_refused_token_raise(served: Served) -> None:
    async with Client(served.url, token="wrong") as client:
        events = client.events()
        async with aclosing(events):
            with pytest.raises(PermissionError, match="401"):
                await anext(events)


async def test_events_skip_a_reset(served: Served) -> None:
    seen: list[str] = []
    async with Client(served.url, token=TOKEN) as client:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:

                async def listen() -> None:
                    events = client.events(last_event_id="stale-1")
                    async with aclosing(events):
                        async for info in events:
                            seen.append(info.id)
                            return

                nursery.start_soon(listen)
                await eventually(served.has_subscribers)
                await client.submit_job("after-reset", "slow", 1, delay=3600)

    assert seen == ["after-reset"]
