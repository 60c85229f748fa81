"""Every route and every error code, against a real server."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from starlette.routing import Route

from trunner.jobs import (
    JobState,
    MemoryJobStore,
    SQLiteJobStore,
    StoreError,
    open_job_manager,
)
from trunner.service import BearerTokens, create_app, serve

from .conftest import AUTH, READER, TOKEN, Served, eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import Message, Scope


@pytest.fixture
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, str] = body["error"]
    assert isinstance(error["type"], str)
    assert isinstance(error["message"], str)
    return error


async def submit(
    http: httpx.AsyncClient, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        "/jobs", content=json.dumps(body), headers=AUTH if headers is None else headers
    )


# ---------------------------------------------------------------- the jobs routes


async def test_submit_returns_201_with_the_stored_job(http: httpx.AsyncClient) -> None:
    response = await submit(
        http,
        {
            "id": "job-1",
            "handler": "send_email",
            "args": {"to": "a@example.com"},
            "priority": "user_blocking",
            "delay": 60,
        },
    )

    assert response.status_code == 201
    job = response.json()
    assert job["id"] == "job-1"
    assert job["handler"] == "send_email"
    # Stored in the structured form of the handler's argument: defaults filled in.
    assert job["args"] == {"to": "a@example.com", "subject": "hello"}
    assert job["state"] == "pending"
    assert job["priority"] == "user_blocking"
    assert job["attempts"] == 0
    assert job["max_attempts"] == 2
    created = dt.datetime.fromisoformat(job["created_at"])
    run_at = dt.datetime.fromisoformat(job["run_at"])
    assert created.tzinfo is not None
    assert created.utcoffset() == dt.timedelta(0)
    assert job["created_at"].endswith("Z")
    assert 59 <= (run_at - created).total_seconds() <= 61
    assert job["started_at"] is None
    assert job["finished_at"] is None
    assert job["result"] is None
    assert job["error"] is None
    assert job["worker"] is None


async def test_submit_run_at_and_if_exists_ignore(http: httpx.AsyncClient) -> None:
    when = "2030-01-01T08:00:00+02:00"
    first = await submit(
        http, {"id": "later", "handler": "slow", "args": 0.1, "run_at": when}
    )
    again = await submit(
        http,
        {"id": "later", "handler": "slow", "args": 5, "if_exists": "ignore"},
    )

    assert first.status_code == 201
    assert first.json()["run_at"] == "2030-01-01T06:00:00Z"
    assert again.status_code == 201
    assert again.json()["args"] == 0.1


async def test_get_list_cancel_retry(served: Served, http: httpx.AsyncClient) -> None:
    for i in range(3):
        response = await submit(
            http, {"id": f"p{i}", "handler": "slow", "args": 1, "delay": 3600}
        )
        assert response.status_code == 201
    await submit(http, {"id": "e1", "handler": "send_email", "args": {"to": "x"}})

    async def succeeded() -> bool:
        return (await served.manager.get_job("e1")).state is JobState.SUCCEEDED

    await eventually(succeeded)

    got = await http.get("/jobs/e1", headers=AUTH)
    everything = await http.get("/jobs", headers=AUTH)
    pending = await http.get(
        "/jobs",
        params={"state": "pending", "handler": "slow", "limit": 2},
        headers=AUTH,
    )
    rest = await http.get(
        "/jobs", params={"state": "pending", "limit": 2, "offset": 2}, headers=AUTH
    )
    cancelled = await http.delete("/jobs/p0", headers=AUTH)
    retried = await http.post("/jobs/p0/retry", headers=AUTH)

    assert got.status_code == 200
    assert got.json()["state"] == "succeeded"
    assert got.json()["result"] == {"sent": "x"}
    assert got.json()["worker"] == served.manager.name
    assert everything.status_code == 200
    assert {job["id"] for job in everything.json()["jobs"]} == {"p0", "p1", "p2", "e1"}
    assert [job["id"] for job in pending.json()["jobs"]] == ["p2", "p1"]
    assert [job["id"] for job in rest.json()["jobs"]] == ["p0"]
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert retried.status_code == 200
    assert retried.json()["state"] == "pending"


async def test_job_ids_with_slashes_and_unicode(http: httpx.AsyncClient) -> None:
    job_id = "tenant/a b/éè?#"
    created = await submit(
        http, {"id": job_id, "handler": "slow", "args": 1, "delay": 3600}
    )
    quoted = httpx.URL("/jobs/").join(
        "/jobs/" + "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in "tenant")
    )
    del quoted

    from urllib.parse import quote

    got = await http.get("/jobs/" + quote(job_id, safe=""), headers=AUTH)
    cancelled = await http.delete("/jobs/" + quote(job_id, safe=""), headers=AUTH)
    retried = await http.post(
        "/jobs/" + quote(job_id, safe="") + "/retry", headers=AUTH
    )

    assert created.status_code == 201
    assert got.json()["id"] == job_id
    assert cancelled.json()["state"] == "cancelled"
    assert retried.json()["state"] == "pending"


# ---------------------------------------------------------------- 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ({"handler": "slow"}, "id"),
        ({"id": "", "handler": "slow"}, "id"),
        ({"id": 7, "handler": "slow"}, "id"),
        ({"id": "x" * 2000, "handler": "slow"}, "id"),
        ({"id": "a\u0000b", "handler": "slow"}, "id"),
        ({"id": "a"}, "handler"),
        ({"id": "a", "handler": ["slow"]}, "handler"),
        ({"id": "a", "handler": "slow", "args": 1, "priority": "urgent"}, "priority"),
        ({"id": "a", "handler": "slow", "args": 1, "delay": -1}, "delay"),
        ({"id": "a", "handler": "slow", "args": 1, "delay": "soon"}, "delay"),
        ({"id": "a", "handler": "slow", "args": 1, "delay": True}, "delay"),
        ({"id": "a", "handler": "slow", "args": 1, "run_at": "tomorrow"}, "run_at"),
        (
            {"id": "a", "handler": "slow", "args": 1, "run_at": "2030-01-01T00:00:00"},
            "run_at",
        ),
        ({"id": "a", "handler": "slow", "args": 1, "run_at": 5}, "run_at"),
        (
            {
                "id": "a",
                "handler": "slow",
                "args": 1,
                "delay": 1,
                "run_at": "2030-01-01T00:00:00Z",
            },
            "run_at",
        ),
        (
            {"id": "a", "handler": "slow", "args": 1, "if_exists": "replace"},
            "if_exists",
        ),
        ({"id": "a", "handler": "slow", "args": 1, "colour": "red"}, "colour"),
        ({"id": "a", "handler": "send_email", "args": {"to": 5}}, "args"),
        ({"id": "a", "handler": "send_email", "args": "a@example.com"}, "args"),
    ],
)
async def test_bad_submit_is_400_naming_the_field(
    served: Served, http: httpx.AsyncClient, body: object, field: str
) -> None:
    response = await submit(http, body)

    assert response.status_code == 400
    assert error_of(response)["field"] == field
    assert await served.manager.list_jobs() == []


async def test_malformed_json_is_400(served: Served, http: httpx.AsyncClient) -> None:
    bad = await http.post("/jobs", content=b'{"id": "a",', headers=AUTH)
    binary = await http.post("/jobs", content=b"\xff\xfe", headers=AUTH)
    # Valid JSON too deep to read was called invalid: named for what it is.
    deep = await http.post("/jobs", content=b"[" * 20_000 + b"]" * 20_000, headers=AUTH)
    deep_unclosed = await http.post("/jobs", content=b"[" * 50_000, headers=AUTH)

    for response in (bad, binary):
        assert response.status_code == 400
        assert error_of(response) == {
            "type": "ValueError",
            "message": "the body is not valid JSON",
            "field": "body",
        }
    for response in (deep, deep_unclosed):
        assert response.status_code == 400
        assert error_of(response) == {
            "type": "ValueError",
            "message": "the body nests arrays or objects too deeply to be read",
            "field": "body",
        }
    assert await served.manager.list_jobs() == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "done"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "1" * 30}, "limit"),
        ({"handler": "a\u0000"}, "handler"),
    ],
)
async def test_bad_list_query_is_400(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get("/jobs", params=params, headers=AUTH)

    assert response.status_code == 400
    assert error_of(response)["field"] == field


# ---------------------------------------------------------------- 404, 409, 413


async def test_unknown_job_is_404(http: httpx.AsyncClient) -> None:
    for response in (
        await http.get("/jobs/nope", headers=AUTH),
        await http.delete("/jobs/nope", headers=AUTH),
        await http.post("/jobs/nope/retry", headers=AUTH),
    ):
        assert response.status_code == 404
        assert error_of(response)["type"] == "JobNotFoundError"


async def test_unknown_handler_is_404(served: Served, http: httpx.AsyncClient) -> None:
    response = await submit(http, {"id": "a", "handler": "nope", "args": 1})

    assert response.status_code == 404
    assert error_of(response) | {"message": ""} == {
        "type": "UnknownHandlerError",
        "message": "",
        "field": "handler",
    }
    assert await served.manager.list_jobs() == []


async def test_unknown_route_and_method_are_json(http: httpx.AsyncClient) -> None:
    missing = await http.get("/nowhere", headers=AUTH)
    wrong = await http.put("/jobs", headers=AUTH)

    assert missing.status_code == 404
    assert error_of(missing)["type"] == "NotFound"
    assert wrong.status_code == 405
    assert error_of(wrong)["type"] == "MethodNotAllowed"


async def test_duplicate_id_is_409(served: Served, http: httpx.AsyncClient) -> None:
    body = {"id": "dup", "handler": "slow", "args": 1, "delay": 3600}
    first = await submit(http, body)
    second = await submit(http, {**body, "args": 2})

    assert first.status_code == 201
    assert second.status_code == 409
    assert error_of(second)["type"] == "JobExistsError"
    assert error_of(second)["field"] == "id"
    assert (await served.manager.get_job("dup")).args == 1


async def test_retry_of_a_pending_job_is_409(http: httpx.AsyncClient) -> None:
    await submit(http, {"id": "p", "handler": "slow", "args": 1, "delay": 3600})

    response = await http.post("/jobs/p/retry", headers=AUTH)

    assert response.status_code == 409
    assert error_of(response)["type"] == "JobStateError"


async def test_oversized_body_is_413(served: Served, http: httpx.AsyncClient) -> None:
    big = json.dumps({"id": "big", "handler": "slow", "args": "x" * 100_000})

    declared = await http.post("/jobs", content=big, headers=AUTH)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096].encode()

    streamed = await http.post("/jobs", content=chunks(), headers=AUTH)

    for response in (declared, streamed):
        assert response.status_code == 413
        assert error_of(response)["field"] == "body"
    assert await served.manager.list_jobs() == []


async def test_body_in_many_chunks_is_read_whole(
    served: Served, http: httpx.AsyncClient
) -> None:
    body = json.dumps(
        {"id": "chunked", "handler": "send_email", "args": {"to": "y" * 9000}}
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = await http.post("/jobs", content=chunks(), headers=AUTH)

    assert response.status_code == 201, response.text
    args = {"to": "y" * 9000, "subject": "hello"}
    assert response.json()["args"] == args
    assert (await served.manager.get_job("chunked")).args == args


async def test_client_gone_mid_body_stores_nothing(served: Served) -> None:
    """The ASGI server says the client left before the body's end: 400, no job."""
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"id": "gone", "hand', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        await trio.lowlevel.checkpoint()
        return messages.pop(0)

    async def send(message: Message) -> None:
        await trio.lowlevel.checkpoint()
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/jobs",
        "raw_path": b"/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", AUTH["Authorization"].encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }

    await served.app(scope, receive, send)

    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"]["field"] == "body"
    assert messages == []
    assert await served.manager.list_jobs() == []


# ---------------------------------------------------------------- 401, 403


async def test_401_touches_nothing(served: Served, http: httpx.AsyncClient) -> None:
    await submit(http, {"id": "keep", "handler": "slow", "args": 1, "delay": 3600})
    before = await served.store.list(state=None, handler=None, limit=100, offset=0)
    wrong = {"Authorization": "Bearer not-the-token"}
    big = json.dumps({"id": "big", "handler": "slow", "args": "x" * 100_000})

    responses = [
        await submit(http, {"id": "new", "handler": "slow", "args": 1}, headers={}),
        await submit(http, {"id": "new", "handler": "slow", "args": 1}, headers=wrong),
        await http.post("/jobs", content=big, headers=wrong),
        await http.post("/jobs", content=b"{", headers={"Authorization": "Basic eDp5"}),
        await http.delete("/jobs/keep", headers=wrong),
        await http.post("/jobs/keep/retry", headers={}),
        await http.get("/jobs/keep", headers=wrong),
        await http.get("/jobs", headers={"Authorization": "Bearer"}),
        await http.get("/events", headers=wrong),
        await http.get("/metrics"),
    ]

    for response in responses:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="trunner"'
        assert error_of(response)["type"] == "PermissionError"
        assert TOKEN not in response.text
    after = await served.store.list(state=None, handler=None, limit=100, offset=0)
    assert after == before


async def test_read_only_principal_gets_403_on_changes(
    served: Served, http: httpx.AsyncClient
) -> None:
    await submit(http, {"id": "keep", "handler": "slow", "args": 1, "delay": 3600})

    reads = [
        await http.get("/jobs/keep", headers=READER),
        await http.get("/jobs", headers=READER),
    ]
    writes = [
        await submit(http, {"id": "new", "handler": "slow", "args": 1}, headers=READER),
        await http.delete("/jobs/keep", headers=READER),
        await http.post("/jobs/keep/retry", headers=READER),
    ]

    assert [r.status_code for r in reads] == [200, 200]
    for response in writes:
        assert response.status_code == 403
        assert error_of(response)["type"] == "PermissionError"
    assert [job.id for job in await served.manager.list_jobs()] == ["keep"]
    assert (await served.manager.get_job("keep")).state is JobState.PENDING


async def test_custom_async_auth_hook() -> None:
    seen: list[str] = []

    async def auth(request: object) -> str | None:
        await trio.lowlevel.checkpoint()
        from starlette.requests import Request

        assert isinstance(request, Request)
        seen.append(request.url.path)
        if request.headers.get("x-user") == "root":
            return "root"
        if request.headers.get("x-user") == "guest":
            raise PermissionError
        return None

    async with open_job_manager(MemoryJobStore(), worker=False) as manager:
        app = create_app(manager, auth=auth)
        async with (
            serve(app, port=0) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            ok = await http.get("/jobs", headers={"x-user": "root"})
            guest = await http.get("/jobs", headers={"x-user": "guest"})
            nobody = await http.get("/jobs")

    assert ok.status_code == 200
    assert guest.status_code == 403
    assert error_of(guest)["message"] == "forbidden"
    assert nobody.status_code == 401
    assert seen == ["/jobs"] * 3


# ---------------------------------------------------------------- the other routes


async def test_healthz_needs_no_auth(served: Served, http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "ok", "worker": True}


async def test_healthz_is_503_when_the_store_fails(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: SQLiteJobStore, job_id: str) -> None:
        await trio.lowlevel.checkpoint()
        raise StoreError("disk on fire")

    monkeypatch.setattr(SQLiteJobStore, "get", broken)

    health = await http.get("/healthz")
    job = await http.get("/jobs/x", headers=AUTH)

    assert health.status_code == 503
    assert health.json() == {
        "status": "unavailable",
        "store": "disk on fire",
        "worker": True,
    }
    assert job.status_code == 503
    assert error_of(job)["type"] == "StoreError"


async def test_metrics_are_prometheus_text(
    served: Served, http: httpx.AsyncClient
) -> None:
    await submit(http, {"id": "p", "handler": "slow", "args": 1, "delay": 3600})

    response = await http.get("/metrics", headers=AUTH)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'trunner_jobs{state="pending"} 1.0' in response.text
    assert 'trunner_tasks_succeeded_total{runner="jobs-control"}' in response.text
    assert "trunner_service_event_clients 0.0" in response.text


async def test_openapi_lists_every_route(
    served: Served, http: httpx.AsyncClient
) -> None:
    response = await http.get("/openapi.json")

    schema = response.json()
    assert response.status_code == 200
    assert schema["openapi"].startswith("3.1")
    documented = {
        (path, method.upper())
        for path, item in schema["paths"].items()
        for method in item
    }
    assert documented == {
        ("/jobs", "POST"),
        ("/jobs", "GET"),
        ("/jobs/{job_id}", "GET"),
        ("/jobs/{job_id}", "DELETE"),
        ("/jobs/{job_id}/retry", "POST"),
        ("/events", "GET"),
        ("/metrics", "GET"),
        ("/healthz", "GET"),
        ("/openapi.json", "GET"),
        ("/", "GET"),
    }
    routes = {
        (route.path.replace(":path", ""), method)
        for route in served.app.router.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert routes == documented


async def test_dashboard_is_one_self_contained_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert "<style>" in page
    assert "<script>" in page
    for external in ("src=", "href=", "@import", "url("):
        assert external not in page
    assert "sessionStorage" in page
    assert "localStorage" not in page


async def test_cors_is_off_by_default_and_opt_in(
    served: Served, http: httpx.AsyncClient
) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
    }
    default = await http.options("/jobs", headers=preflight)
    plain = await http.get("/jobs", headers={**AUTH, "Origin": "https://evil.example"})

    app = create_app(
        served.manager,
        auth=BearerTokens({TOKEN: "ops"}),
        cors_origins=["https://ops.example"],
    )
    async with (
        serve(app, port=0) as server,
        httpx.AsyncClient(base_url=server.url) as other,
    ):
        allowed = await other.options(
            "/jobs",
            headers={
                "Origin": "https://ops.example",
                "Access-Control-Request-Method": "POST",
            },
        )

    assert "access-control-allow-origin" not in default.headers
    assert "access-control-allow-origin" not in plain.headers
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"


# ---------------------------------------------------------------- construction


async def test_create_app_checks_its_arguments() -> None:
    async with open_job_manager(MemoryJobStore(), worker=False) as manager:
        with pytest.raises(TypeError, match="auth must be a callable"):
            create_app(manager, auth="s3cret")  # type: ignore[arg-type]  # the point
        with pytest.raises(ValueError, match="max_body"):
            create_app(manager, auth=BearerTokens({}), max_body=0)
        with pytest.raises(ValueError, match="heartbeat"):
            create_app(manager, auth=BearerTokens({}), heartbeat=0)


async def test_serve_checks_the_port_and_reports_the_bound_address() -> None:
    async with open_job_manager(MemoryJobStore(), worker=False) as manager:
        app = create_app(manager, auth=BearerTokens({}))
        with pytest.raises(ValueError, match="port"):
            async with serve(app, port=70000):
                pass  # pragma: no cover  # refused before serving
        async with serve(app, port=0) as server:
            assert server.host == "127.0.0.1"
            assert server.port > 0
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert str(server.port) in repr(server)
        async with serve(app, host="::1", port=0) as server:
            assert server.url == f"http://[::1]:{server.port}"
            async with httpx.AsyncClient() as http:
                assert (await http.get(server.url + "/healthz")).status_code == 200


def test_bearer_tokens_hide_their_secrets() -> None:
    tokens = BearerTokens({"very-secret": "ops", "other": "viewer"})

    assert "very-secret" not in repr(tokens)
    assert repr(tokens) == "<BearerTokens: 2 tokens>"
    assert tokens.principal("very-secret") == "ops"
    assert tokens.principal("other") == "viewer"
    assert tokens.principal("very-secre") is None
    assert tokens.principal("") is None
    with pytest.raises(ValueError, match="must not be empty"):
        BearerTokens({" ": "ops"})
    with pytest.raises(ValueError, match="must not be empty"):
        BearerTokens({"t": ""})
    with pytest.raises(TypeError, match="must be strings"):
        BearerTokens({"t": 1})  # type: ignore[dict-item]  # the point


async def test_serve_checks_its_timeouts() -> None:
    async with open_job_manager(MemoryJobStore(), worker=False) as manager:
        app = create_app(manager, auth=BearerTokens({}))
        with pytest.raises(ValueError, match="keep_alive_timeout"):
            async with serve(app, port=0, keep_alive_timeout=0):
                pass  # pragma: no cover  # refused before serving
        async with (
            serve(app, port=0, keep_alive_timeout=60) as server,
            httpx.AsyncClient() as http,
        ):
            assert (await http.get(server.url + "/healthz")).status_code == 200
