"""The rows of PostgresJobStore: their columns, and records made from them."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Final

from ._errors import SerializationError
from ._job import JobRecord, JobState, ScheduleRecord

if TYPE_CHECKING:
    import builtins
    from collections.abc import Collection, Sequence

STATES: Final = {state.value: state for state in JobState}
_UTC: Final = dt.UTC

COLUMNS: Final = (
    "seq, id, handler, args, state, priority, attempts, max_attempts, created_at, "
    "run_at, started_at, finished_at, result, error, worker, lease_until, "
    "cancel_requested, timeout, retry"
)
J_COLUMNS: Final = ", ".join(f"j.{name.strip()}" for name in COLUMNS.split(","))
SCHEDULE_COLUMNS: Final = (
    "name, handler, args, cron, every, next_run_at, priority, timeout, retry, "
    "created_at"
)
# The columns an insert writes (seq comes from the identity), with their types.
INSERT_COLUMNS: Final = (
    ("id", "text"),
    ("handler", "text"),
    ("args", "text"),
    ("state", "text"),
    ("priority", "int4"),
    ("attempts", "int4"),
    ("max_attempts", "int4"),
    ("created_at", "timestamptz"),
    ("run_at", "timestamptz"),
    ("started_at", "timestamptz"),
    ("finished_at", "timestamptz"),
    ("result", "text"),
    ("error", "text"),
    ("worker", "text"),
    ("lease_until", "timestamptz"),
    ("cancel_requested", "bool"),
    ("timeout", "float8"),
    ("retry", "text"),
)
TEXT_FIELDS: Final = ("id", "handler", "args", "result", "error", "worker", "retry")


def utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is _UTC else value.astimezone(_UTC)


def opt_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else utc(value)


def check_time(value: dt.datetime) -> dt.datetime:
    """Return ``value`` if it is timezone-aware, else raise `ValueError`."""
    if value.tzinfo is None:
        raise ValueError(
            f"store times must be timezone-aware UTC datetimes, not {value!r}"
        )
    return value


def decode(row: Sequence[object]) -> JobRecord:
    """Make the record of a row of ``COLUMNS``.

    Raises:
        SerializationError: if the row cannot be read (a state that the
            schema's CHECK should have refused).
    """
    state = STATES.get(row[4])  # type: ignore[call-overload]  # any value: checked here
    if state is None:
        raise SerializationError(
            f"the stored job (seq {row[0]!r}, id {row[1]!r}) is corrupted and "
            f"cannot be read: unknown state {row[4]!r}"
        )
    return JobRecord(
        seq=row[0],  # type: ignore[arg-type]  # typed by the column
        id=row[1],  # type: ignore[arg-type]
        handler=row[2],  # type: ignore[arg-type]
        args=row[3],  # type: ignore[arg-type]
        state=state,
        priority=row[5],  # type: ignore[arg-type]
        attempts=row[6],  # type: ignore[arg-type]
        max_attempts=row[7],  # type: ignore[arg-type]
        created_at=utc(row[8]),  # type: ignore[arg-type]
        run_at=utc(row[9]),  # type: ignore[arg-type]
        started_at=opt_utc(row[10]),  # type: ignore[arg-type]
        finished_at=opt_utc(row[11]),  # type: ignore[arg-type]
        result=row[12],  # type: ignore[arg-type]
        error=row[13],  # type: ignore[arg-type]
        worker=row[14],  # type: ignore[arg-type]
        lease_until=opt_utc(row[15]),  # type: ignore[arg-type]
        cancel_requested=row[16],  # type: ignore[arg-type]
        timeout=row[17],  # type: ignore[arg-type]
        retry=row[18],  # type: ignore[arg-type]
    )


def decode_schedule(row: Sequence[object]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row[0],  # type: ignore[arg-type]  # typed by the column
        handler=row[1],  # type: ignore[arg-type]
        args=row[2],  # type: ignore[arg-type]
        cron=row[3],  # type: ignore[arg-type]
        every=row[4],  # type: ignore[arg-type]
        next_run_at=utc(row[5]),  # type: ignore[arg-type]
        priority=row[6],  # type: ignore[arg-type]
        timeout=row[7],  # type: ignore[arg-type]
        retry=row[8],  # type: ignore[arg-type]
        created_at=utc(row[9]),  # type: ignore[arg-type]
    )


def check_storable(job: JobRecord) -> None:
    """Refuse a job that PostgreSQL cannot store (a NUL character in its text).

    Raises:
        SerializationError: naming the job and the field.
    """
    for name in TEXT_FIELDS:
        value = getattr(job, name)
        if value is not None and "\x00" in value:
            raise SerializationError(
                f"job {job.id!r} cannot be stored in PostgreSQL: its {name} "
                "contains a NUL character (\\x00), which PostgreSQL text refuses"
            )
    for name in ("created_at", "run_at", "started_at", "finished_at", "lease_until"):
        value = getattr(job, name)
        if value is not None:
            check_time(value)


def storable_names(handlers: Collection[str]) -> builtins.list[str]:
    # A name with a NUL can be no stored job's handler: leave it out.
    return [name for name in dict.fromkeys(handlers) if "\x00" not in name]


def sort_claimed(records: builtins.list[JobRecord]) -> builtins.list[JobRecord]:
    records.sort(key=lambda job: (-job.priority, job.run_at, job.seq))
    return records
