"""The ASGI application: a JobManager over HTTP + JSON + server-sent events."""

from __future__ import annotations

import inspect
import json
import logging
from typing import TYPE_CHECKING, Final, final

import attrs
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from .._errors import RunnerClosedError
from .._util import check_duration, check_optional_count
from ..jobs import (
    JobExistsError,
    JobNotFoundError,
    JobStateError,
    SerializationError,
    StoreError,
    UnknownHandlerError,
)
from ._codec import (
    MAX_OFFSET,
    STATE_NAMES,
    BadRequestError,
    check_text,
    dumps,
    error_json,
    job_to_json,
    parse_submit,
)
from ._dashboard import dashboard_html
from ._events import EventBroker
from ._metrics import metrics_text
from ._openapi import openapi_schema

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

    from starlette.requests import Request

    from ..jobs import JobManager

    Endpoint = Callable[[Request], Awaitable[Response]]

logger: Final = logging.getLogger("trunner.service")

#: The default limit of a request body: 1 MiB.
DEFAULT_MAX_BODY: Final = 1 << 20
#: The most jobs one ``GET /jobs`` returns.
MAX_LIMIT: Final = 1000
JSON_TYPE: Final = "application/json"
_WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer realm="trunner"'}
#: Seconds a health check waits for the store.
HEALTH_TIMEOUT: Final = 5.0


@final
class _TooLargeError(Exception):
    pass


def _error(
    status: int,
    type_name: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_json(type_name, message, field),
        status_code=status,
        media_type=JSON_TYPE,
        headers=headers,
    )


def _json(value: object, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type=JSON_TYPE)


@final
@attrs.define(eq=False)
class _Service:
    """The routes' shared state: the manager, auth, the event broker."""

    manager: JobManager
    auth: Callable[[Request], object]
    max_body: int
    heartbeat: float
    broker: EventBroker

    # ---------------------------------------------------------------- plumbing

    def endpoint(self, handler: Endpoint, *, public: bool = False) -> Endpoint:
        """Wrap a route: authenticate first, then map the library's errors."""

        async def wrapped(request: Request) -> Response:
            if not public:
                denied = await self._authenticate(request)
                if denied is not None:
                    return denied
            try:
                return await handler(request)
            except BadRequestError as error:
                return _error(400, "ValueError", error.message, error.field)
            except ClientDisconnect:
                # Nobody reads the answer; nothing was stored.
                return _error(400, "ValueError", "the client went away", "body")
            except _TooLargeError:
                return _error(
                    413,
                    "ValueError",
                    f"the request body is larger than {self.max_body} bytes",
                    "body",
                )
            except SerializationError as error:
                return _error(400, "SerializationError", str(error), "args")
            except UnknownHandlerError as error:
                return _error(404, "UnknownHandlerError", str(error), "handler")
            except JobNotFoundError as error:
                return _error(404, "JobNotFoundError", str(error), "id")
            except JobExistsError as error:
                return _error(409, "JobExistsError", str(error), "id")
            except JobStateError as error:
                return _error(409, "JobStateError", str(error))
            except (StoreError, RunnerClosedError) as error:
                logger.warning(
                    "%s %s failed: %s", request.method, request.url.path, error
                )
                return _error(503, "StoreError", str(error))

        return wrapped

    async def _authenticate(self, request: Request) -> Response | None:
        try:
            principal = self.auth(request)
            if type(principal) is not str and inspect.isawaitable(principal):
                principal = await principal
        except PermissionError as error:
            return _error(403, "PermissionError", str(error) or "forbidden")
        if principal is None:
            return _error(
                401,
                "PermissionError",
                "missing or wrong credentials: send Authorization: Bearer <token>",
                headers=_WWW_AUTHENTICATE,
            )
        request.state.principal = principal
        return None

    async def read_json(self, request: Request) -> object:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise _TooLargeError
        # The ASGI messages read as they come (starlette's stream() is an
        # async generator: dearer, for a body that is mostly one message).
        receive = request.receive
        body = b""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the other is "http.disconnect"
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    raise _TooLargeError
                if body:
                    chunks.append(chunk)
                else:
                    body = chunk
            if not message.get("more_body", False):
                break
        if chunks:
            body = b"".join([body, *chunks])
        try:
            return json.loads(body)
        except ValueError:
            raise BadRequestError("the body is not valid JSON", "body") from None
        except RecursionError:
            raise BadRequestError(
                "the body nests arrays or objects too deeply to be read", "body"
            ) from None

    # ---------------------------------------------------------------- routes

    async def submit(self, request: Request) -> Response:
        submit = parse_submit(await self.read_json(request))
        try:
            info = await self.manager.submit_job(
                submit.id,
                submit.handler,
                submit.args,
                priority=submit.priority,
                run_at=submit.run_at,
                delay=submit.delay,
                if_exists=submit.if_exists,
            )
        except (SerializationError, JobExistsError, UnknownHandlerError):
            raise
        except (TypeError, ValueError) as error:
            raise BadRequestError(str(error)) from None
        return _json(job_to_json(info), 201)

    @staticmethod
    def _job_id(request: Request) -> str:
        job_id: str = request.path_params["job_id"]
        check_text(job_id, "id")
        return job_id

    async def get_job(self, request: Request) -> Response:
        info = await self.manager.get_job(self._job_id(request))
        return _json(job_to_json(info))

    async def cancel_job(self, request: Request) -> Response:
        info = await self.manager.cancel_job(self._job_id(request))
        return _json(job_to_json(info))

    async def retry_job(self, request: Request) -> Response:
        info = await self.manager.retry_job(self._job_id(request))
        return _json(job_to_json(info))

    async def list_jobs(self, request: Request) -> Response:
        query = request.query_params
        state = None
        state_name = query.get("state")
        if state_name:
            state = STATE_NAMES.get(state_name)
            if state is None:
                raise BadRequestError(
                    "state must be one of " + ", ".join(STATE_NAMES), "state"
                )
        handler = query.get("handler") or None
        if handler is not None:
            check_text(handler, "handler")
        limit = _int_query(query.get("limit"), "limit", 100, 1, MAX_LIMIT)
        offset = _int_query(query.get("offset"), "offset", 0, 0, MAX_OFFSET)
        jobs = await self.manager.list_jobs(
            state=state, handler=handler, limit=limit, offset=offset
        )
        return _json({"jobs": [job_to_json(info) for info in jobs]})

    async def events(self, request: Request) -> Response:
        last = request.headers.get("last-event-id")
        subscriber = self.broker.subscribe(last)
        return StreamingResponse(
            self.broker.stream(subscriber, heartbeat=self.heartbeat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def health(self, request: Request) -> Response:
        del request
        worker = self.manager.is_worker
        try:
            with trio.fail_after(HEALTH_TIMEOUT):
                await self.manager.store.get("healthz")
        except (StoreError, trio.TooSlowError) as error:
            message = str(error) or "the store did not answer in time"
            return _json(
                {"status": "unavailable", "store": message, "worker": worker}, 503
            )
        return _json({"status": "ok", "store": "ok", "worker": worker})

    async def metrics(self, request: Request) -> Response:
        del request
        text = metrics_text(self.manager, await self.manager.counts(), self.broker)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(self, request: Request) -> Response:
        del request
        await trio.lowlevel.checkpoint()
        return _json(openapi_schema())

    async def dashboard(self, request: Request) -> Response:
        del request
        await trio.lowlevel.checkpoint()
        return HTMLResponse(
            dashboard_html(),
            headers={
                "Content-Security-Policy": (
                    "default-src 'none'; script-src 'unsafe-inline'; "
                    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:"
                ),
                "Cache-Control": "no-store",
            },
        )


def _int_query(
    text: str | None, field: str, default: int, lowest: int, highest: int
) -> int:
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise BadRequestError(f"{field} must be a whole number", field)
    value = int(text)
    if not lowest <= value <= highest:
        raise BadRequestError(f"{field} must be between {lowest} and {highest}", field)
    return value


async def _http_error(request: Request, error: Exception) -> Response:
    del request
    await trio.lowlevel.checkpoint()
    assert isinstance(error, HTTPException)
    names = {404: "NotFound", 405: "MethodNotAllowed"}
    return _error(
        error.status_code,
        names.get(error.status_code, "HTTPError"),
        str(error.detail),
        headers=dict(error.headers or {}),
    )


async def _server_error(request: Request, error: Exception) -> Response:
    await trio.lowlevel.checkpoint()
    logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return _error(500, "InternalError", "the server failed; see its log")


def create_app(
    job_manager: JobManager,
    *,
    auth: Callable[[Request], object],
    max_body: int = DEFAULT_MAX_BODY,
    heartbeat: float = 15.0,
    backlog: int = 1000,
    client_buffer: int = 1000,
    cors_origins: Collection[str] = (),
) -> Starlette:
    """Make the ASGI application that serves ``job_manager`` (DESIGN.md section 10).

    Routes: ``POST /jobs``, ``GET /jobs/{id}``, ``GET /jobs``,
    ``DELETE /jobs/{id}`` (cancel), ``POST /jobs/{id}/retry``, ``GET /events``
    (server-sent events), ``GET /metrics`` (Prometheus text), and without
    authentication ``GET /healthz``, ``GET /openapi.json`` and ``GET /`` (the
    dashboard, which asks for a token itself). Every other route needs the
    ``auth`` hook's approval before the request is read: missing or wrong
    credentials get 401 with ``WWW-Authenticate``, and nothing is read or
    changed.

    The app listens to the manager's changes (`JobManager.add_listener`) from
    now on, for ``GET /events``; each event is encoded once, whatever the
    number of clients, and a client more than ``client_buffer`` events behind
    is disconnected (it resumes with ``Last-Event-ID``), so no client slows
    the manager.

    Args:
        job_manager: the manager to serve (a worker or not).
        auth: ``auth(request) -> principal | None`` (sync or async): None means
            missing or wrong credentials (401); raising `PermissionError` means
            the principal may not do that (403). See `BearerTokens`.
        max_body: the largest request body accepted, in bytes (413 beyond).
        heartbeat: seconds of silence after which an event stream sends a
            comment, so that proxies keep the connection.
        backlog: how many recent events are kept for ``Last-Event-ID`` resume.
        client_buffer: how many events a client may lag behind before it is
            disconnected.
        cors_origins: origins allowed to call the API from a browser; none by
            default (CORS off).

    Raises:
        TypeError: if ``auth`` is not callable.
        ValueError: for a non-positive size or duration.
    """
    if not callable(auth):
        raise TypeError(
            "auth must be a callable (request) -> principal | None, such as "
            f"BearerTokens(...), not {auth!r}"
        )
    body_limit = check_optional_count("max_body", max_body)
    backlog_size = check_optional_count("backlog", backlog)
    buffer = check_optional_count("client_buffer", client_buffer)
    assert body_limit is not None
    assert backlog_size is not None
    assert buffer is not None
    broker = EventBroker(backlog=backlog_size, buffer=buffer)
    service = _Service(
        manager=job_manager,
        auth=auth,
        max_body=body_limit,
        heartbeat=check_duration("heartbeat", heartbeat, allow_zero=False),
        broker=broker,
    )
    job_manager.add_listener(broker.publish)
    api = service.endpoint
    routes = [
        Route("/jobs", api(service.submit), methods=["POST"]),
        Route("/jobs", api(service.list_jobs), methods=["GET"]),
        Route("/jobs/{job_id:path}/retry", api(service.retry_job), methods=["POST"]),
        Route("/jobs/{job_id:path}", api(service.get_job), methods=["GET"]),
        Route("/jobs/{job_id:path}", api(service.cancel_job), methods=["DELETE"]),
        Route("/events", api(service.events), methods=["GET"]),
        Route("/metrics", api(service.metrics), methods=["GET"]),
        Route("/healthz", api(service.health, public=True), methods=["GET"]),
        Route("/openapi.json", api(service.openapi, public=True), methods=["GET"]),
        Route("/", api(service.dashboard, public=True), methods=["GET"]),
    ]
    middleware: list[Middleware] = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            )
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.trunner_events = broker
    return app
