"""How `RedisJobStore` writes records into Redis hashes and reads them back.

Also the store's URL: ``redis://``, ``rediss://`` and ``redis+cluster://``.
Nothing here talks to Redis, so nothing here imports the driver.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from typing import TYPE_CHECKING, Final, cast, final

import attrs

from ._errors import SerializationError
from ._job import JobRecord, JobState, ScheduleRecord
from ._urls import redact_url

if TYPE_CHECKING:
    from collections.abc import Sequence

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO: Final = dt.timedelta(microseconds=1)
_STATES: Final = {state.value.encode(): state for state in JobState}
_DECODE_ERRORS: Final = (
    KeyError,
    TypeError,
    ValueError,
    OverflowError,
    UnicodeDecodeError,
)

#: The default key prefix (the hash tag every key of a store starts with).
DEFAULT_PREFIX: Final = "trunner"
#: Seconds a call may take before it fails with StoreError, by default.
DEFAULT_TIMEOUT: Final = 5.0
_DEFAULT_PORT: Final = 6379


def micros(value: dt.datetime) -> str:
    """Return ``value`` as integer microseconds since the epoch, in text.

    Exact: a datetime has microsecond resolution, and the number stays below
    2**53, so a Redis sorted-set score (a double) holds it exactly too.

    Raises:
        ValueError: if ``value`` is a naive datetime.
    """
    if value.tzinfo is None:
        raise ValueError(
            f"store times must be timezone-aware UTC datetimes, not {value!r}"
        )
    return str((value - _EPOCH) // _MICRO)


def from_micros(value: bytes | str) -> dt.datetime:
    """Parse what `micros` wrote."""
    return _EPOCH + dt.timedelta(microseconds=int(value))


def job_fields(job: JobRecord) -> list[str]:
    """Return the hash fields of ``job`` (not id, state, seq) as name, value pairs.

    A None field is left out.
    """
    fields = [
        "id",
        job.id,
        "handler",
        job.handler,
        "args",
        job.args,
        "priority",
        str(int(job.priority)),
        "attempts",
        str(int(job.attempts)),
        "max_attempts",
        str(int(job.max_attempts)),
        "created_at",
        micros(job.created_at),
        "run_at",
        micros(job.run_at),
    ]
    for name, time in (
        ("started_at", job.started_at),
        ("finished_at", job.finished_at),
        ("lease_until", job.lease_until),
    ):
        if time is not None:
            fields += (name, micros(time))
    for name, text in (
        ("result", job.result),
        ("error", job.error),
        ("worker", job.worker),
        ("retry", job.retry),
    ):
        if text is not None:
            fields += (name, text)
    if job.timeout is not None:
        fields += ("timeout", repr(float(job.timeout)))
    if job.cancel_requested:
        fields += ("cancel_requested", "1")
    return fields


def optional(text: str | None) -> str:
    """Encode optional text for a script: '' for None, else 'v' and the text."""
    return "" if text is None else "v" + text


def _opt_time(fields: dict[bytes, bytes], name: bytes) -> dt.datetime | None:
    value = fields.get(name)
    return None if value is None else from_micros(value)


def _opt_text(fields: dict[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    return None if value is None else value.decode()


def replies(reply: object) -> list[object]:
    """Return a script's array reply as a list.

    Raises:
        SerializationError: if it is not an array.
    """
    if not isinstance(reply, list | tuple):
        raise SerializationError(f"Redis answered {reply!r} where a list was due")
    return list(cast("Sequence[object]", reply))


def job_id_of(reply: object) -> str | None:
    """Return the id in a job hash (HGETALL's flat list), if it can be read."""
    try:
        fields = _fields(reply)
        return fields[b"id"].decode(errors="surrogateescape")
    except (SerializationError, KeyError):
        return None


def _fields(reply: object) -> dict[bytes, bytes]:
    if isinstance(reply, dict):
        return cast("dict[bytes, bytes]", reply)
    flat = replies(reply)
    return cast("dict[bytes, bytes]", dict(zip(flat[::2], flat[1::2], strict=True)))


def decode_job(reply: object) -> JobRecord:
    """Make the record of a job hash: HGETALL's reply (a flat list or a mapping).

    Raises:
        SerializationError: if the hash is corrupted.
    """
    try:
        fields = _fields(reply)
    except ValueError as cause:
        raise SerializationError(f"a stored job is corrupted: {cause}") from cause
    try:
        timeout = fields.get(b"timeout")
        return JobRecord(
            id=fields[b"id"].decode(),
            handler=fields[b"handler"].decode(),
            args=fields[b"args"].decode(),
            state=_STATES[fields[b"state"]],
            priority=int(fields[b"priority"]),
            attempts=int(fields[b"attempts"]),
            max_attempts=int(fields[b"max_attempts"]),
            created_at=from_micros(fields[b"created_at"]),
            run_at=from_micros(fields[b"run_at"]),
            started_at=_opt_time(fields, b"started_at"),
            finished_at=_opt_time(fields, b"finished_at"),
            result=_opt_text(fields, b"result"),
            error=_opt_text(fields, b"error"),
            worker=_opt_text(fields, b"worker"),
            lease_until=_opt_time(fields, b"lease_until"),
            cancel_requested=b"cancel_requested" in fields,
            timeout=None if timeout is None else float(timeout),
            retry=_opt_text(fields, b"retry"),
            seq=int(fields[b"seq"]),
        )
    except _DECODE_ERRORS as cause:
        where = fields.get(b"id", b"?").decode(errors="replace")
        raise SerializationError(
            f"the stored job {where!r} is corrupted and cannot be read: {cause!r}"
        ) from cause


def schedule_json(schedule: ScheduleRecord) -> str:
    """Return ``schedule`` as JSON, without its ``next_run_at`` (kept apart)."""
    return json.dumps(
        {
            "handler": schedule.handler,
            "args": schedule.args,
            "cron": schedule.cron,
            "every": schedule.every,
            "priority": schedule.priority,
            "timeout": schedule.timeout,
            "retry": schedule.retry,
            "created_at": micros(schedule.created_at),
        }
    )


def decode_schedule(name: str, text: object, next_run_at: object) -> ScheduleRecord:
    """Make a schedule from what `schedule_json` wrote and its ``next_run_at``.

    Raises:
        SerializationError: if the stored schedule is corrupted.
    """
    try:
        data = json.loads(cast("bytes", text))
        every = data["every"]
        timeout = data["timeout"]
        return ScheduleRecord(
            name=name,
            handler=str(data["handler"]),
            args=str(data["args"]),
            cron=data["cron"],
            every=None if every is None else float(every),
            next_run_at=from_micros(cast("bytes", next_run_at)),
            priority=int(data["priority"]),
            timeout=None if timeout is None else float(timeout),
            retry=data["retry"],
            created_at=from_micros(data["created_at"]),
        )
    except _DECODE_ERRORS as cause:
        raise SerializationError(
            f"the stored schedule {name!r} is corrupted and cannot be read: {cause!r}"
        ) from cause


@final
@attrs.frozen(kw_only=True)
class RedisAddress:
    """Where a Redis store lives, parsed from its URL."""

    #: (host, port) pairs: one for a server, the seed nodes for a cluster.
    nodes: tuple[tuple[str, int], ...]
    cluster: bool = False
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        """Return the address for messages, without the password."""
        scheme = (
            "redis+cluster" if self.cluster else ("rediss" if self.tls else "redis")
        )
        hosts = ",".join(
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            for host, port in self.nodes
        )
        db = "" if self.cluster else f"/{self.db}"
        return f"{scheme}://{hosts}{db}?prefix={self.prefix}"


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can be a Redis Cluster hash tag, else raise.

    Raises:
        ValueError: for an empty prefix or one with a brace.
    """
    if not prefix or "{" in prefix or "}" in prefix:
        raise ValueError(
            f"prefix must be non-empty text without braces (it becomes the "
            f"hash tag '{{prefix}}' of every key), not {prefix!r}"
        )
    return prefix


def parse_url(url: str) -> RedisAddress:
    """Parse a Redis store URL.

    ``redis://[[user]:password@]host[:port][/db][?prefix=trunner&timeout=5]``,
    ``rediss://`` (the same, over TLS) and
    ``redis+cluster://host:port[,host:port...][?prefix=...&timeout=...]``.

    Raises:
        ValueError: naming what is wrong with the URL.
    """
    shown = redact_url(url)  # messages never show the password
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        raise ValueError(
            f"{shown!r} is not a Redis store URL: use redis://host:port/db, "
            "rediss://host:port/db or redis+cluster://host:port,host:port"
        )
    cluster = scheme.endswith("+cluster")
    tls = scheme.startswith("rediss")
    netloc, _, tail = rest.partition("/")
    path, _, query_text = tail.partition("?")
    if "?" in netloc:
        netloc, _, query_text = netloc.partition("?")
    if "#" in query_text or "#" in path:
        raise ValueError(f"a Redis store URL takes no fragment: {shown!r}")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(secret) if colon else None
        if not colon:  # redis://secret@host is the password alone
            username, password = None, urllib.parse.unquote(user)
    nodes = tuple(_node(shown, node) for node in hosts.split(","))
    if len(nodes) > 1 and not cluster:
        raise ValueError(
            f"{shown!r} names several hosts: use redis+cluster:// for a Redis Cluster"
        )
    db = 0
    if path:
        if cluster:
            raise ValueError(f"a Redis Cluster has no database number: {shown!r}")
        try:
            db = int(path)
        except ValueError:
            raise ValueError(
                f"the database in {shown!r} must be a number, not {path!r}"
            ) from None
        if db < 0:
            raise ValueError(f"the database in {shown!r} must be >= 0")
    prefix = DEFAULT_PREFIX
    timeout = DEFAULT_TIMEOUT
    for key, values in urllib.parse.parse_qs(
        query_text, keep_blank_values=True
    ).items():
        if len(values) > 1 and key in ("prefix", "timeout"):
            raise ValueError(f"{shown!r} gives {key}= more than once")
        if key == "prefix":
            prefix = check_prefix(values[-1])
        elif key == "timeout":
            try:
                timeout = float(values[-1])
            except ValueError:
                timeout = -1.0
            if not timeout > 0 or timeout == float("inf"):
                raise ValueError(
                    f"timeout in {shown!r} must be a positive number of seconds"
                )
        else:
            raise ValueError(
                f"unknown option {key!r} in {shown!r}; a Redis store URL takes "
                "prefix= and timeout="
            )
    return RedisAddress(
        nodes=nodes,
        cluster=cluster,
        tls=tls,
        db=db,
        username=username,
        password=password,
        prefix=prefix,
        timeout=timeout,
    )


def _node(shown: str, node: str) -> tuple[str, int]:
    if not node:
        raise ValueError(f"{shown!r} names no host")
    if node.startswith("["):  # [::1]:6379
        host, bracket, port_text = node[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise ValueError(f"{shown!r}: an IPv6 host is written [address]:port")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = node.partition(":")
    if not host:
        raise ValueError(f"{shown!r} names no host")
    if not port_text:
        return host, _DEFAULT_PORT
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise ValueError(f"the port in {shown!r} must be 1..65535, not {port_text!r}")
    return host, port
