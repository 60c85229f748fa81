"""The change feed: tells listeners of every job state change a manager makes.

A `JobManager` reports each change it makes (a submit, a claim, an end, a
retry, a cancel, an expired lease) to its `ChangeFeed`. With no listener that
costs one truth test. With listeners, a change whose new record the manager
holds (submits, claims, cancels, retries, expired leases) is published at once;
a change the store made without returning the record (a job's end) is read
back from the store on a sequenced runner of its own, so the control sequence
never waits for it. Publishing keeps the order of the changes: while read-backs
are queued, later changes queue behind them.

Listeners are plain callables run on the Trio thread; they must not block (a
listener that needs to do I/O hands the `JobInfo` to a channel of its own).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Final, final

import attrs

from .._errors import RunnerClosedError
from ._errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._scheduler import Scheduler
    from .._sequenced import SequencedTaskRunner
    from ._job import JobInfo, JobRecord
    from ._store import JobStore

logger: Final = logging.getLogger("trunner.jobs")


def _no_listeners() -> list[Callable[[JobInfo], object]]:
    return []


@final
@attrs.define(eq=False)
class ChangeFeed:
    """Calls listeners with the `JobInfo` after each job state change.

    Internal: a `JobManager` owns one; users reach it through
    `JobManager.add_listener`.
    """

    _store: JobStore
    _scheduler: Scheduler
    _listeners: list[Callable[[JobInfo], object]] = attrs.field(
        init=False, factory=_no_listeners
    )
    _reader: SequencedTaskRunner | None = attrs.field(init=False, default=None)
    #: Read-backs and publishes queued on the reader, not yet done.
    _queued: int = attrs.field(init=False, default=0)

    def add(self, listener: Callable[[JobInfo], object]) -> None:
        """Call ``listener`` after each change from now on."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {listener!r}")
        self._listeners.append(listener)

    def remove(self, listener: Callable[[JobInfo], object]) -> None:
        """Stop calling ``listener``; an unknown listener is ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def publish(self, info: JobInfo) -> None:
        """Report a change whose result is ``info``."""
        if not self._listeners:
            return
        if self._queued:
            self._queued += 1
            try:
                self._runner().post_task(self._publish_queued, info)
            except RunnerClosedError:  # the manager is closing
                self._queued -= 1
        else:
            self._call(info)

    def publish_record(self, record: JobRecord) -> None:
        """Report a change whose result is ``record`` (parsed only if listened to)."""
        if self._listeners:
            self.publish(record.info())

    def publish_later(self, job_id: str) -> None:
        """Report a change of ``job_id`` made without the record in hand: read it."""
        if self._listeners:
            self._queued += 1
            try:
                self._runner().post_task(self._read_back, job_id)
            except RunnerClosedError:  # the manager is closing
                self._queued -= 1

    def _runner(self) -> SequencedTaskRunner:
        if self._reader is None:
            self._reader = self._scheduler.create_sequenced_runner(name="jobs-changes")
        return self._reader

    async def _publish_queued(self, info: JobInfo) -> None:
        self._queued -= 1
        self._call(info)

    async def _read_back(self, job_id: str) -> None:
        try:
            record = await self._store.get(job_id)
        except StoreError:
            logger.debug("could not read job %r back for its listeners", job_id)
            return
        finally:
            self._queued -= 1
        if record is not None:
            self._call(record.info())

    def _call(self, info: JobInfo) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(info)
            except Exception:
                logger.exception("a job change listener failed: %r", listener)
