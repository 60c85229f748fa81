"""The JSON shapes of the service (DESIGN.md section 10), both ways.

A job is the `~trunner.jobs.JobInfo`'s fields with ``state`` as the
`~trunner.jobs.JobState`'s value, ``priority`` as a lower-case name and times
as ISO-8601 UTC; an error is ``{"error": {"type", "message", "field"?}}``.
Nothing here is ever unpickled: JSON only.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Final, Literal, cast, final

import attrs

from .._traits import Priority
from ..jobs import JobInfo, JobState

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Priority names as the JSON shapes spell them.
PRIORITY_NAMES: Final = {p.name.lower(): p for p in Priority}
STATE_NAMES: Final = {s.value: s for s in JobState}
IF_EXISTS: Final = ("error", "ignore")
#: The fields of a submit body.
SUBMIT_FIELDS: Final = frozenset(
    {"id", "handler", "args", "priority", "delay", "run_at", "if_exists"}
)
#: The longest delay accepted: ten years, in seconds.
MAX_DELAY: Final = 10 * 365 * 86400
#: The largest ``offset`` of ``GET /jobs``.
MAX_OFFSET: Final = 2**62
#: Ids and handler names longer than this are refused (400) before any store call.
MAX_NAME: Final = 1024


@final
class BadRequestError(Exception):
    """Input the service refuses with 400, naming the field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@final
@attrs.frozen(kw_only=True)
class SubmitRequest:
    """A parsed, checked submit body."""

    id: str
    handler: str
    args: object
    priority: Priority
    delay: float | None
    run_at: dt.datetime | None
    if_exists: Literal["error", "ignore"]


#: Compact JSON, NaN and infinities refused; made once (`json.dumps` with
#: options makes an encoder per call).
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


def job_to_json(info: JobInfo) -> dict[str, object]:
    """Return the JSON object of a job."""
    created_at = _time(info.created_at)
    # A job due at once is due when it was made: the same datetime object.
    run_at = created_at if info.run_at is info.created_at else _time(info.run_at)
    return {
        "id": info.id,
        "handler": info.handler,
        "args": info.args,
        "state": info.state.value,
        "priority": info.priority.name.lower(),
        "attempts": info.attempts,
        "max_attempts": info.max_attempts,
        "created_at": created_at,
        "run_at": run_at,
        "started_at": _time(info.started_at),
        "finished_at": _time(info.finished_at),
        "result": info.result,
        "error": info.error,
        "worker": info.worker,
    }


def parse_time(text: str, field: str) -> dt.datetime:
    """Parse an ISO-8601 time with a timezone; 400 naming ``field`` otherwise."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestError(
            f"{field} must be an ISO-8601 time, not {text!r}", field
        ) from None
    if value.tzinfo is None:
        raise BadRequestError(
            f"{field} must carry a timezone (e.g. 2026-01-01T08:00:00Z)", field
        )
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise BadRequestError(f"{field} is out of range: {text!r}", field) from None


def _optional_time(data: Mapping[str, object], field: str) -> dt.datetime | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"{field} must be a string or null", field)
    return parse_time(value, field)


def job_from_json(data: object) -> JobInfo:
    """Build a `JobInfo` from the JSON object of a job (the client's side).

    Raises:
        ValueError: if ``data`` is not a job.
    """
    if not isinstance(data, dict):
        raise ValueError(f"a job must be a JSON object, not {data!r}")
    data = cast("dict[str, object]", data)
    try:
        created = _optional_time(data, "created_at")
        run_at = _optional_time(data, "run_at")
        if created is None or run_at is None:
            raise ValueError("a job has created_at and run_at")
        return JobInfo(
            id=str(data["id"]),
            handler=str(data["handler"]),
            args=data.get("args"),
            state=JobState(str(data["state"])),
            priority=PRIORITY_NAMES[str(data["priority"])],
            attempts=_int(data["attempts"]),
            max_attempts=_int(data["max_attempts"]),
            created_at=created,
            run_at=run_at,
            started_at=_optional_time(data, "started_at"),
            finished_at=_optional_time(data, "finished_at"),
            result=data.get("result"),
            error=_optional_str(data.get("error")),
            worker=_optional_str(data.get("worker")),
        )
    except (KeyError, TypeError, BadRequestError) as error:
        raise ValueError(f"not a job: {error}") from None


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected a whole number, not {value!r}")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _name(data: Mapping[str, object], field: str) -> str:
    if field not in data:
        raise BadRequestError(f"{field} is required", field)
    value = data[field]
    if not isinstance(value, str) or not value:
        raise BadRequestError(f"{field} must be a non-empty string", field)
    if len(value) > MAX_NAME:
        raise BadRequestError(f"{field} is longer than {MAX_NAME} characters", field)
    check_text(value, field)
    return value


def check_text(value: str, field: str) -> None:
    """Refuse text that no store keeps: NUL characters, lone surrogates."""
    if "\x00" in value:
        raise BadRequestError(f"{field} must not contain NUL characters", field)
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadRequestError(f"{field} must be valid Unicode text", field) from None


def parse_submit(data: object) -> SubmitRequest:
    """Check a parsed submit body.

    Raises:
        BadRequestError: naming the field at fault.
    """
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a JSON object", "body")
    body = cast("dict[str, object]", data)
    if not SUBMIT_FIELDS.issuperset(body):
        unknown = sorted(set(body) - SUBMIT_FIELDS)
        raise BadRequestError(f"unknown field {unknown[0]!r}", unknown[0])
    job_id = _name(body, "id")
    handler = _name(body, "handler")
    priority = body.get("priority", "user_visible")
    if not isinstance(priority, str) or priority not in PRIORITY_NAMES:
        raise BadRequestError(
            "priority must be one of " + ", ".join(PRIORITY_NAMES), "priority"
        )
    delay = body.get("delay")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise BadRequestError("delay must be a number of seconds", "delay")
        delay = float(delay)
        if not math.isfinite(delay) or delay < 0 or delay > MAX_DELAY:
            raise BadRequestError(
                "delay must be between 0 and ten years, in seconds", "delay"
            )
    run_at = _optional_time(body, "run_at")
    if run_at is not None and delay is not None:
        raise BadRequestError("give run_at or delay, not both", "run_at")
    if_exists = body.get("if_exists", "error")
    if if_exists == "error":
        mode: Literal["error", "ignore"] = "error"
    elif if_exists == "ignore":
        mode = "ignore"
    else:
        raise BadRequestError("if_exists must be 'error' or 'ignore'", "if_exists")
    return SubmitRequest(
        id=job_id,
        handler=handler,
        args=body.get("args"),
        priority=PRIORITY_NAMES[priority],
        delay=delay,
        run_at=run_at,
        if_exists=mode,
    )


def error_json(type_name: str, message: str, field: str | None = None) -> bytes:
    """Return the JSON bytes of an error body."""
    error: dict[str, str] = {"type": type_name, "message": message}
    if field is not None:
        error["field"] = field
    return dumps({"error": error})


def dumps(value: object) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON (NaN refused)."""
    return _ENCODER.encode(value).encode()
