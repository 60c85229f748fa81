"""How SQLiteJobStore's rows and records map: columns, decoding, insert rows.

A row that cannot be decoded (corrupted outside trunner) raises
`SerializationError`, naming the job; the database decides what to do with it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Final, TypeAlias, cast

import attrs

from ._errors import SerializationError
from ._job import JobRecord, JobState, ScheduleRecord

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Sequence

COLUMNS: Final = (
    "seq, id, handler, args, state, priority, attempts, max_attempts, created_at, "
    "run_at, started_at, finished_at, result, error, worker, lease_until, "
    "cancel_requested, timeout, retry"
)
# Positions in a row of COLUMNS.
SEQ, ID, STATE, ATTEMPTS = 0, 1, 4, 6
STARTED, WORKER, LEASE, CANCEL = 10, 14, 15, 16

_ON_CONFLICT: Final = " ON CONFLICT (id) DO NOTHING"
_INSERT: Final = (
    f"INSERT INTO trunner_jobs ({COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + _ON_CONFLICT
)
# A job as submitted has no attempt history: its NULL columns are left out of
# the statement, because the sqlite3 module binds None (and bool) through its
# adapter lookup, which costs as much as the rest of the row.
_NEW_COLUMNS: Final = (
    "seq, id, handler, args, state, priority, attempts, max_attempts, "
    "created_at, run_at, cancel_requested"
)
_INSERT_NEW: Final = (
    f"INSERT INTO trunner_jobs ({_NEW_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)" + _ON_CONFLICT
)
_INSERT_NEW_OPTIONS: Final = (
    f"INSERT INTO trunner_jobs ({_NEW_COLUMNS}, timeout, retry) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)" + _ON_CONFLICT
)

SCHEDULE_COLUMNS: Final = (
    "name, handler, args, cron, every, next_run_at, priority, timeout, retry, "
    "created_at"
)

STATES: Final = {state.value: state for state in JobState}
_UTC: Final = dt.UTC
_from_timestamp: Final = dt.datetime.fromtimestamp
# What a corrupted row raises while it is decoded.
DECODE_ERRORS: Final = (KeyError, TypeError, ValueError, OverflowError, OSError)


def ts(value: dt.datetime) -> float:
    """Return ``value`` as epoch seconds; it must be timezone-aware."""
    if value.tzinfo is None:
        raise ValueError(
            f"store times must be timezone-aware UTC datetimes, not {value!r}"
        )
    return value.timestamp()


def _opt_ts(value: dt.datetime | None) -> float | None:
    return None if value is None else ts(value)


def opt_dt(value: float | None) -> dt.datetime | None:
    """Return epoch seconds as a UTC datetime; None stays None."""
    return None if value is None else _from_timestamp(value, _UTC)


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"expected text, found {value!r}")
    return value


def _opt_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, found {value!r}")
    return value


def decode(row: Sequence[object]) -> JobRecord:
    """Make the record of a row of ``COLUMNS``.

    Raises:
        SerializationError: if the row is corrupted.
    """
    try:
        (
            seq,
            job_id,
            handler,
            args,
            state,
            priority,
            attempts,
            max_attempts,
            created_at,
            run_at,
            started_at,
            finished_at,
            result,
            error,
            worker,
            lease_until,
            cancel_requested,
            timeout,
            retry,
        ) = row
        return JobRecord(
            id=_text(job_id),
            handler=_text(handler),
            args=_text(args),
            state=STATES[state],  # type: ignore[index]  # a KeyError is a corrupted row
            priority=_int(priority),
            attempts=_int(attempts),
            max_attempts=_int(max_attempts),
            created_at=_from_timestamp(created_at, _UTC),  # type: ignore[arg-type]  # checked by the call
            run_at=_from_timestamp(run_at, _UTC),  # type: ignore[arg-type]  # checked by the call
            started_at=opt_dt(started_at),  # type: ignore[arg-type]  # checked by the call
            finished_at=opt_dt(finished_at),  # type: ignore[arg-type]  # checked by the call
            result=_opt_text(result),
            error=_opt_text(error),
            worker=_opt_text(worker),
            lease_until=opt_dt(lease_until),  # type: ignore[arg-type]  # checked by the call
            cancel_requested=bool(cancel_requested),
            timeout=None if timeout is None else float(timeout),  # type: ignore[arg-type]  # checked by the call
            retry=_opt_text(retry),
            seq=_int(seq),
        )
    except DECODE_ERRORS as cause:
        where = f"seq {row[0]!r}, id {row[1]!r}" if len(row) > 1 else repr(row)
        raise SerializationError(
            f"the stored job ({where}) is corrupted and cannot be read: {cause!r}"
        ) from cause


def decode_schedule(row: Sequence[object]) -> ScheduleRecord:
    """Make the record of a row of `SCHEDULE_COLUMNS`.

    Raises:
        SerializationError: if the row is corrupted.
    """
    try:
        (
            name,
            handler,
            args,
            cron,
            every,
            next_run_at,
            priority,
            timeout,
            retry,
            created_at,
        ) = row
        return ScheduleRecord(
            name=_text(name),
            handler=_text(handler),
            args=_text(args),
            cron=_opt_text(cron),
            every=None if every is None else float(every),  # type: ignore[arg-type]  # checked by the call
            next_run_at=_from_timestamp(next_run_at, _UTC),  # type: ignore[arg-type]  # checked by the call
            priority=_int(priority),
            timeout=None if timeout is None else float(timeout),  # type: ignore[arg-type]  # checked by the call
            retry=_opt_text(retry),
            created_at=_from_timestamp(created_at, _UTC),  # type: ignore[arg-type]  # checked by the call
        )
    except DECODE_ERRORS as cause:
        raise SerializationError(
            f"the stored schedule {row[0]!r} is corrupted and cannot be read: {cause!r}"
        ) from cause


def _make_copier() -> Callable[[JobRecord, int], JobRecord]:
    """Make ``copy(job, seq)``: ``attrs.evolve(job, seq=seq)``, three times faster.

    An insert returns a new record per job, and ``attrs.evolve`` (or the
    constructor) costs more than the rest of the insert's Python work. The copy
    is made like attrs makes its ``__init__``: generated code that sets each
    slot of a new instance through its descriptor, from the fields of
    `JobRecord` as they are (so a new field is copied too).
    """
    names = [field.name for field in attrs.fields(JobRecord)]
    namespace: dict[str, object] = {"_new": object.__new__, "_cls": JobRecord}
    lines = ["def copy(job, seq):", "    new = _new(_cls)"]
    for name in names:
        namespace[f"_set_{name}"] = getattr(JobRecord, name).__set__
        value = "seq" if name == "seq" else f"job.{name}"
        lines.append(f"    _set_{name}(new, {value})")
    lines.append("    return new")
    exec("\n".join(lines), namespace)  # trusted code, generated above
    return cast("Callable[[JobRecord, int], JobRecord]", namespace["copy"])


#: ``with_seq(job, seq)``: ``job`` with that ``seq`` (for the stores' inserts).
with_seq: Final = _make_copier()


Params: TypeAlias = tuple[object, ...]


def insert_params(
    jobs: Sequence[JobRecord], base: int
) -> dict[str, builtins.list[Params]]:
    """Return the rows of ``jobs`` (seq ``base + 1`` on), by INSERT statement."""
    to_ts = ts  # locals: this loop is the insert's hot path
    opt = _opt_ts
    plain: builtins.list[Params] = []
    options: builtins.list[Params] = []
    full: builtins.list[Params] = []
    for seq, job in enumerate(jobs, base + 1):
        if (
            job.started_at is None
            and job.finished_at is None
            and job.result is None
            and job.error is None
            and job.worker is None
            and job.lease_until is None
            and not job.cancel_requested
        ):
            row = (
                seq,
                job.id,
                job.handler,
                job.args,
                job.state._value_,  # (.value is a slow property)
                job.priority,
                job.attempts,
                job.max_attempts,
                to_ts(job.created_at),
                to_ts(job.run_at),
            )
            if job.timeout is None and job.retry is None:
                plain.append(row)
            else:
                options.append((*row, job.timeout, job.retry))
        else:
            full.append(
                (
                    seq,
                    job.id,
                    job.handler,
                    job.args,
                    job.state._value_,
                    job.priority,
                    job.attempts,
                    job.max_attempts,
                    to_ts(job.created_at),
                    to_ts(job.run_at),
                    opt(job.started_at),
                    opt(job.finished_at),
                    job.result,
                    job.error,
                    job.worker,
                    opt(job.lease_until),
                    int(job.cancel_requested),
                    job.timeout,
                    job.retry,
                )
            )
    statements = {_INSERT_NEW: plain, _INSERT_NEW_OPTIONS: options, _INSERT: full}
    return {sql: rows for sql, rows in statements.items() if rows}
