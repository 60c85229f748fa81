"""What a job is: its state, its public snapshot, and its stored record."""

from __future__ import annotations

import enum
import json
import logging
import sys
from typing import TYPE_CHECKING, Final, final

import attrs

from .._retry import RetryPolicy
from .._traits import Priority
from .._util import check_duration, check_optional_count

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Mapping


logger: Final = logging.getLogger("trunner.jobs")


@final
class JobState(enum.Enum):
    """Where a durable job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATES: Final = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
)


@final
class JobCounts(dict[JobState, int]):
    """How many jobs a store holds in each `JobState`, and how many in none.

    A `dict` from every `JobState` to its number of jobs (0 for a state with
    none), as `JobManager.counts` and `JobStore.counts` return it, with one
    more attribute, `unknown`: the jobs whose stored state is not a
    `JobState` (a corrupted row, or one written by a newer version of
    trunner). They are in no state's count, since their state is not known.

    Two `JobCounts` are equal when their states' counts and their `unknown`
    are; compared with a plain dict, only the states' counts matter.

    Args:
        counts: the number of jobs in each state; a state left out counts 0.
        unknown: the number of jobs whose state is not a `JobState`.

    Raises:
        TypeError: if a key is not a `JobState` or a count is not an int.
        ValueError: if a count is negative.
    """

    __slots__ = ("unknown",)

    #: The jobs whose stored state is not a `JobState`.
    unknown: int

    def __init__(
        self, counts: Mapping[JobState, int] | None = None, *, unknown: int = 0
    ) -> None:
        super().__init__(dict.fromkeys(JobState, 0))
        for state, count in (counts or {}).items():
            if not isinstance(state, JobState):
                raise TypeError(f"counts must be keyed by JobState, not {state!r}")
            self[state] = _check_count(f"counts[{state}]", count)
        self.unknown = _check_count("unknown", unknown)

    @property
    def total(self) -> int:
        """How many jobs there are in all, the `unknown` ones included."""
        return sum(self.values()) + self.unknown

    def __repr__(self) -> str:
        return f"JobCounts({super().__repr__()}, unknown={self.unknown})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobCounts) and other.unknown != self.unknown:
            return False
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # a dict: mutable, unhashable


def _check_count(what: str, count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"{what} must be an int >= 0, not {count!r}")
    if count < 0:
        raise ValueError(f"{what} must be >= 0, got {count!r}")
    return count


#: A JSON value: what args and results are stored as.
JSON = object

_UNPARSED: Final = object()


def check_finished_state(state: JobState) -> None:
    """Check that a store's ``complete`` was given a finished state.

    Raises:
        ValueError: if ``state`` is not succeeded, failed or cancelled.
    """
    if state not in FINISHED_STATES:
        raise ValueError(
            f"a job completes as succeeded, failed or cancelled, not {state}"
        )


@final
@attrs.frozen(kw_only=True)
class JobInfo:
    """A snapshot of a durable job, as `JobManager` methods return it.

    Times are timezone-aware UTC datetimes, or None. ``args`` and ``result``
    are the parsed JSON values that were stored. ``error`` is the text of the
    last failure, with its traceback. ``worker`` names the worker that holds
    (or last held) the job.
    """

    id: str
    handler: str
    args: object
    state: JobState
    priority: Priority
    attempts: int
    max_attempts: int
    created_at: dt.datetime
    run_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    result: object
    error: str | None
    worker: str | None


def _importable_name(cls: type[BaseException]) -> str:
    # The name a worker imports the class by; refused now, at submit, when it
    # would not find this class (a class defined inside a function).
    name = f"{cls.__module__}.{cls.__qualname__}"
    found: object = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    if found is not cls:
        raise ValueError(
            f"retry_on class {name!r} cannot be imported by its qualified name, "
            "so a worker could not tell its errors; define it at module level"
        )
    return name


@final
@attrs.frozen(kw_only=True)
class RetrySpec:
    """A `RetryPolicy` in a storable form: exception classes by qualified name."""

    max_attempts: int
    initial_delay: float
    multiplier: float
    max_delay: float
    jitter: float
    retry_on: tuple[str, ...]

    @classmethod
    def from_policy(cls, policy: RetryPolicy) -> RetrySpec:
        """Describe ``policy``; its exception classes must be importable by name.

        Raises:
            ValueError: if a ``retry_on`` class cannot be found again by its
                module and qualified name (a class defined inside a function).
        """
        return cls(
            max_attempts=policy.max_attempts,
            initial_delay=policy.initial_delay,
            multiplier=policy.multiplier,
            max_delay=policy.max_delay,
            jitter=policy.jitter,
            retry_on=tuple(_importable_name(c) for c in policy.retry_on),
        )

    def to_policy(self) -> RetryPolicy:
        """The `RetryPolicy` this spec describes (`from_policy`'s inverse).

        A ``retry_on`` class that cannot be imported any more is logged and
        read as `Exception`.
        """
        retry_on: list[type[BaseException]] = []
        for name in self.retry_on:
            module, _, qualname = name.rpartition(".")
            try:
                obj: object = __import__(module, fromlist=[qualname])
                for part in qualname.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError):
                logger.warning(
                    "retry_on class %r cannot be imported; using Exception", name
                )
                obj = Exception
            if isinstance(obj, type) and issubclass(obj, BaseException):
                retry_on.append(obj)
        return RetryPolicy(
            max_attempts=self.max_attempts,
            initial_delay=self.initial_delay,
            multiplier=self.multiplier,
            max_delay=self.max_delay,
            jitter=self.jitter,
            retry_on=tuple(retry_on) or (Exception,),
        )

    def to_json(self) -> str:
        """Return the spec as JSON text."""
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RetrySpec:
        """Parse what `to_json` wrote."""
        data = json.loads(text)
        data["retry_on"] = tuple(data["retry_on"])
        return cls(**data)


@final
@attrs.frozen(kw_only=True)
class JobRecord:
    """A job as a `JobStore` keeps it: what `JobInfo` shows, and the bookkeeping.

    Stores treat ``args``, ``result`` and ``retry`` as opaque text; they order
    due jobs by ``priority`` (higher first), then ``run_at``, then ``seq``.
    """

    id: str
    handler: str
    #: The arguments as JSON text.
    args: str
    state: JobState
    #: A `Priority` value: higher runs first.
    priority: int
    #: Attempts started so far (a claim counts one).
    attempts: int
    max_attempts: int
    created_at: dt.datetime
    #: When the job is due.
    run_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    #: The result as JSON text, once SUCCEEDED.
    result: str | None = None
    error: str | None = None
    worker: str | None = None
    #: When the running attempt's lease ends.
    lease_until: dt.datetime | None = None
    cancel_requested: bool = False
    #: Seconds each attempt may take, or None.
    timeout: float | None = None
    #: The job's own retry policy as `RetrySpec` JSON, or None for the manager's.
    retry: str | None = None
    #: Submission order, assigned by the store on insert (0 before).
    seq: int = 0

    def info(self, *, args: object = _UNPARSED) -> JobInfo:
        """Return the public snapshot, with the JSON payloads parsed.

        A payload that is not valid JSON (a corrupted row) is shown as its raw
        text, so that the job can still be inspected, retried or purged.

        Args:
            args: the arguments' JSON value, when the caller has it already
                (it then need not parse ``self.args``).
        """
        if args is _UNPARSED:
            args = _parse(self.args)
        result = None if self.result is None else _parse(self.result)
        return JobInfo(
            id=self.id,
            handler=self.handler,
            args=args,
            state=self.state,
            priority=Priority(self.priority),
            attempts=self.attempts,
            max_attempts=self.max_attempts,
            created_at=self.created_at,
            run_at=self.run_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            result=result,
            error=self.error,
            worker=self.worker,
        )


def check_name(what: str, value: object) -> str:
    r"""Check a name that a store keeps as text (a job id, a handler, a schedule).

    Names come from users (and CLIs): they are checked whatever the
    annotations say. Every store must be able to keep the name as it is: it
    is a non-empty str that encodes to UTF-8 (no lone surrogate such as
    ``"\ud800"``) and holds no NUL character.

    Raises:
        TypeError: if ``value`` is not a str.
        ValueError: if it is empty or a store could not keep it.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a non-empty str, not {value!r}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{what} must be valid Unicode text, but {value!r} holds a lone "
            f"surrogate ({value[error.start]!r} at index {error.start})"
        ) from None
    if "\x00" in value:
        raise ValueError(f"{what} must not contain a NUL character: {value!r}")
    return value


def _parse(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


@final
@attrs.frozen(kw_only=True)
class ScheduleRecord:
    """A recurring job as a store keeps it: one run per tick, across workers."""

    name: str
    handler: str
    args: str
    #: A 5-field cron expression, or None when ``every`` is set.
    cron: str | None
    #: Seconds between runs, or None when ``cron`` is set.
    every: float | None
    #: When the next run is due.
    next_run_at: dt.datetime
    priority: int
    timeout: float | None = None
    retry: str | None = None
    created_at: dt.datetime


def _check_ttl(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    del instance
    if value is not None:
        check_duration(attribute.name, value, allow_zero=False)


def _check_entries(
    instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    del instance, attribute
    check_optional_count("max_entries", value)


@final
@attrs.frozen(kw_only=True)
class Retention:
    """How long finished jobs are kept; pending and running ones never go.

    Args:
        ttl: seconds after a job finished before it is deleted (None: forever).
        max_entries: how many finished jobs to keep at most, the most recent
            (None: no limit).
    """

    ttl: float | None = attrs.field(default=None, validator=_check_ttl)
    max_entries: int | None = attrs.field(default=None, validator=_check_entries)
