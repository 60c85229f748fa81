"""What the parts of a `JobManager` share: its options, its store, its clock.

`open_job_manager` (the composition root) checks the options into a
`ManagerConfig`, builds one `ManagerEnvironment` and hands it to each part of
the manager (the submit path, the worker, its upkeep, the schedules, the
inspection API). The parts never reach into the facade that holds them.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from ._job import RetrySpec
from ._serialize import JsonSerializer

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._retry import RetryPolicy
    from ._changes import ChangeFeed
    from ._job import Retention
    from ._registry import Registry
    from ._store import JobStore


#: Seconds the exit waits for the submits made before it to be stored (and
#: for the worker to store the last ends).
CLOSE_FLUSH_TIMEOUT: Final = 30.0


def default_worker_name() -> str:
    """A worker name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def later(when: dt.datetime, seconds: float, what: str) -> dt.datetime:
    """``when`` plus ``seconds``; `ValueError` naming ``what`` past the dates."""
    try:
        return when + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"{what}={abs(seconds)!r} s is beyond the dates a store can hold"
        ) from None


@final
@attrs.frozen(kw_only=True)
class ManagerConfig:
    """The options of `open_job_manager`, checked (internal)."""

    #: Whether the manager was given a registry (submits are then checked).
    strict: bool
    worker: bool
    concurrency: int
    lease: float
    grace_period: float
    retry: RetryPolicy
    timeout: float | None
    retention: Retention | None
    poll_interval: float
    wall_clock: Callable[[], dt.datetime]
    name: str

    def policy(self, retry: str | None) -> RetryPolicy:
        """The retry policy of a job or schedule whose stored ``retry`` is this."""
        if retry is None:
            return self.retry
        return RetrySpec.from_json(retry).to_policy()


@final
@attrs.define(eq=False, repr=False)
class ManagerEnvironment:
    """The services every part of one manager uses (internal)."""

    store: JobStore
    registry: Registry
    config: ManagerConfig
    changes: ChangeFeed
    #: The wall clock at opening (a POSIX timestamp), and trio's clock then.
    epoch0: float
    trio0: float
    serializer: JsonSerializer = attrs.field(factory=JsonSerializer)
    #: Set once the manager's block has exited: every call then raises
    #: RunnerClosedError, and the submit path writes what it holds and ends.
    closed: bool = False

    def now(self) -> dt.datetime:
        """The manager's time: the wall clock at opening plus trio time since."""
        return dt.datetime.fromtimestamp(
            self.epoch0 + (trio.current_time() - self.trio0), dt.UTC
        )

    def seconds_until(self, when: dt.datetime) -> float:
        """Seconds from the manager's time now until ``when``."""
        return (when - self.now()).total_seconds()
