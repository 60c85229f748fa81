"""The async client of the service (httpx), with the library's exceptions."""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.parse
from typing import TYPE_CHECKING, Final, Literal, cast, final

import httpx
import trio

from .._traits import Priority
from ..jobs import (
    JobExistsError,
    JobNotFoundError,
    JobState,
    JobStateError,
    SerializationError,
    StoreError,
    UnknownHandlerError,
)
from ._codec import dumps, job_from_json

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncGenerator
    from types import TracebackType

    from ..jobs import JobInfo

logger: Final = logging.getLogger("trunner.service")

_ERRORS: Final[dict[str, type[Exception]]] = {
    "JobNotFoundError": JobNotFoundError,
    "JobExistsError": JobExistsError,
    "SerializationError": SerializationError,
    "UnknownHandlerError": UnknownHandlerError,
    "JobStateError": JobStateError,
    "StoreError": StoreError,
    "PermissionError": PermissionError,
}
#: Seconds between reconnections of `Client.events`, doubled up to the max.
RECONNECT_DELAY: Final = 0.5
RECONNECT_MAX: Final = 10.0


def _quote(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    try:
        body = json.loads(response.content)
        error = body["error"]
        type_name = str(error["type"])
        message = str(error["message"])
        if error.get("field"):
            message = f"{message} (field {error['field']!r})"
    except (ValueError, KeyError, TypeError):
        type_name, message = "", response.text[:500] or response.reason_phrase
    if status in (401, 403):
        raise PermissionError(f"HTTP {status}: {message}")
    if status >= 500:
        raise StoreError(f"HTTP {status}: {message}")
    exception = _ERRORS.get(type_name)
    if exception is not None:
        raise exception(message)
    if status == 404:
        raise LookupError(message)
    raise ValueError(f"HTTP {status}: {message}")


@final
class Client:
    """An async client of the jobs service; methods mirror `~trunner.jobs.JobManager`.

    Use it as an async context manager (it owns an ``httpx.AsyncClient``)::

        async with Client("http://127.0.0.1:8080", token="s3cret") as client:
            info = await client.submit_job("job-1", "send_email", {"to": "a@b.c"})

    Errors map back to the library's exceptions: `JobNotFoundError`,
    `JobExistsError`, `SerializationError`, `UnknownHandlerError`,
    `JobStateError`; `StoreError` for a 5xx answer; `PermissionError` for 401
    and 403; `ValueError` for other bad input (400, 413). Network failures
    raise httpx's errors (``httpx.TransportError``). Every method is a
    checkpoint; cancelling one abandons its request, whose effect is then
    unknown: a cancelled (or timed-out) `submit_job` may still have stored the
    job, so submit again with the same id and ``if_exists="ignore"``.

    Args:
        base_url: the service's URL, such as ``http://127.0.0.1:8080``.
        token: the bearer token (None sends no credentials).
        timeout: seconds for connecting and for each read of a request.
        transport: an httpx transport, for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._http: Final = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"<trunner.service.Client {self._http.base_url}>"  # never the token

    async def __aenter__(self) -> Client:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the connections. Idempotent."""
        await self._http.aclose()

    async def _job(self, method: str, path: str, body: bytes | None = None) -> JobInfo:
        headers = {"Content-Type": "application/json"} if body is not None else None
        response = await self._http.request(method, path, content=body, headers=headers)
        _raise_for(response)
        return job_from_json(response.json())

    async def submit_job(
        self,
        job_id: str,
        handler: str,
        args: object = None,
        *,
        priority: Priority = Priority.USER_VISIBLE,
        run_at: dt.datetime | None = None,
        delay: float | None = None,
        if_exists: Literal["error", "ignore"] = "error",
    ) -> JobInfo:
        """Submit a job (``POST /jobs``); return it once the service stored it.

        ``args`` is the handler's argument as a JSON value.

        Raises:
            UnknownHandlerError, SerializationError, JobExistsError, StoreError,
            PermissionError, ValueError: see the class.
        """
        if not isinstance(priority, Priority):
            raise TypeError(f"priority must be a Priority, not {priority!r}")
        body: dict[str, object] = {"id": job_id, "handler": handler, "args": args}
        if priority is not Priority.USER_VISIBLE:
            body["priority"] = priority.name.lower()
        if run_at is not None:
            if run_at.tzinfo is None:
                raise ValueError("run_at must be timezone-aware (e.g. datetime.UTC)")
            body["run_at"] = run_at.isoformat()
        if delay is not None:
            body["delay"] = delay
        if if_exists != "error":
            body["if_exists"] = if_exists
        try:
            content = dumps(body)
        except (TypeError, ValueError) as error:
            raise SerializationError(
                f"args do not serialise to JSON: {error}"
            ) from error
        return await self._job("POST", "/jobs", content)

    async def get_job(self, job_id: str) -> JobInfo:
        """Return the job with that id (``GET /jobs/{id}``).

        Raises:
            JobNotFoundError: if there is none.
        """
        return await self._job("GET", f"/jobs/{_quote(job_id)}")

    async def cancel_job(self, job_id: str) -> JobInfo:
        """Cancel a job (``DELETE /jobs/{id}``); return once the request is stored.

        Raises:
            JobNotFoundError: if there is none.
        """
        return await self._job("DELETE", f"/jobs/{_quote(job_id)}")

    async def retry_job(self, job_id: str) -> JobInfo:
        """Put a failed or cancelled job back to pending (``POST /jobs/{id}/retry``).

        Raises:
            JobNotFoundError: if there is none.
            JobStateError: if it is in another state.
        """
        return await self._job("POST", f"/jobs/{_quote(job_id)}/retry")

    async def list_jobs(
        self,
        state: JobState | None = None,
        handler: str | None = None,
        limit: int = 100,
        *,
        offset: int = 0,
    ) -> list[JobInfo]:
        """Return jobs, newest first (``GET /jobs``), of one state or handler or all.

        Raises:
            TypeError: if ``state`` is not a `~trunner.jobs.JobState`.
        """
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if state is not None:
            if not isinstance(state, JobState):
                raise TypeError(f"state must be a JobState, not {state!r}")
            params["state"] = state.value
        if handler is not None:
            params["handler"] = handler
        response = await self._http.get("/jobs", params=params)
        _raise_for(response)
        return [job_from_json(job) for job in response.json()["jobs"]]

    async def events(
        self, *, last_event_id: str | None = None
    ) -> AsyncGenerator[JobInfo, None]:
        """Yield the job after each state change (``GET /events``), live, for ever.

        A dropped connection is resumed with ``Last-Event-ID`` after a short,
        growing pause, so no event still in the server's backlog is missed;
        a ``reset`` from the server (the backlog no longer reaches back) is
        logged and skipped. Stop by breaking out of the loop or cancelling.

        Args:
            last_event_id: resume after this event id.

        Raises:
            PermissionError: the token is missing or refused.
        """
        pause = RECONNECT_DELAY
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            try:
                async with self._http.stream(
                    "GET",
                    "/events",
                    headers=headers,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=None),
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        _raise_for(response)
                    pause = RECONNECT_DELAY
                    event_id, kind, data = None, "message", list[str]()
                    lines = cast("AsyncGenerator[str, None]", response.aiter_lines())
                    async with contextlib.aclosing(lines):
                        async for line in lines:
                            if line:
                                field, _, value = line.partition(":")
                                value = value.removeprefix(" ")
                                if field == "id":
                                    event_id = value
                                elif field == "event":
                                    kind = value
                                elif field == "data":
                                    data.append(value)
                                continue
                            if event_id is not None:
                                last_event_id = event_id
                            if kind == "reset":
                                logger.warning(
                                    "events were missed: the backlog was exceeded"
                                )
                            elif data:
                                yield job_from_json(json.loads("\n".join(data)))
                            event_id, kind, data = None, "message", []
            except (httpx.TransportError, StoreError) as error:
                logger.info("event stream interrupted (%s); resuming", error)
            await trio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)
