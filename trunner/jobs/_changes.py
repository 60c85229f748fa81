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

Changes made by other managers sharing the store (other processes) come from
the store, if it is a `ChangeSource`: while listeners exist, a task follows
the store's `ChangeWatcher` and publishes what it reads, in the same order as
the rest. A job read back exactly as it was last published from there is not
published again. Without listeners nothing follows the store: the feed costs
nothing. A store that fails is followed again after a backoff (0.1 s doubling
to 5 s); changes made meanwhile may be missed.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from .._errors import RunnerClosedError
from ._errors import StoreError
from ._failures import StoreFailures
from ._store import ChangeSource

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._scheduler import Scheduler
    from .._sequenced import SequencedTaskRunner
    from ._job import JobInfo, JobRecord
    from ._store import JobStore

logger: Final = logging.getLogger("trunner.jobs")

#: Seconds a follower waits on the store's watcher before looking at its
#: listeners again.
_FOLLOW_WAIT: Final = 30.0
#: Seconds closing waits for the follower to stop.
_CLOSE_TIMEOUT: Final = 5.0
#: Jobs whose last record from the store is remembered, to skip repeats.
_REMEMBERED: Final = 4096


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
    #: The poll interval given to the store's change watcher.
    _poll_interval: float = 1.0
    _listeners: list[Callable[[JobInfo], object]] = attrs.field(
        init=False, factory=_no_listeners
    )
    #: The task following the store's changes, while it runs.
    _follower: trio.CancelScope | None = attrs.field(init=False, default=None)
    _followed: trio.Event | None = attrs.field(init=False, default=None)
    _closed: bool = attrs.field(init=False, default=False)
    #: The last record published from the store's watcher, by job id.
    _seen: collections.OrderedDict[str, JobRecord] = attrs.field(
        init=False, factory=collections.OrderedDict[str, "JobRecord"]
    )
    _reader: SequencedTaskRunner | None = attrs.field(init=False, default=None)
    #: Runs the task following the store's changes (one at a time).
    _feed: SequencedTaskRunner | None = attrs.field(init=False, default=None)
    #: Read-backs and publishes queued on the reader, not yet done.
    _queued: int = attrs.field(init=False, default=0)

    def add(self, listener: Callable[[JobInfo], object]) -> None:
        """Call ``listener`` after each change from now on."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {listener!r}")
        self._listeners.append(listener)
        if self._follower is None and not self._closed:
            self._follow_store()

    def remove(self, listener: Callable[[JobInfo], object]) -> None:
        """Stop calling ``listener``; an unknown listener is ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
        if not self._listeners and self._follower is not None:
            self._follower.cancel()
            self._follower = None

    async def aclose(self) -> None:
        """Stop following the store (before it disconnects); idempotent."""
        self._closed = True
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None
        if self._followed is not None:
            with trio.move_on_after(_CLOSE_TIMEOUT):
                await self._followed.wait()
        else:
            await trio.lowlevel.checkpoint()

    def _follow_store(self) -> None:
        store = self._store
        if not isinstance(store, ChangeSource):
            return
        scope = trio.CancelScope()
        done = trio.Event()
        if self._feed is None:
            self._feed = self._scheduler.create_sequenced_runner(name="jobs-feed")
        try:
            self._feed.post_task(self._follow, store, scope, done)
        except RunnerClosedError:  # the manager is closing
            return
        self._follower = scope
        self._followed = done

    async def _follow(
        self, store: ChangeSource, scope: trio.CancelScope, done: trio.Event
    ) -> None:
        """Publish the changes other writers make, until ``scope`` is cancelled."""
        try:
            with scope:
                failures = StoreFailures("follow the store's changes")
                while True:
                    try:
                        async with store.watch_changes(
                            poll_interval=self._poll_interval
                        ) as watcher:
                            while True:
                                records = await watcher.changes(_FOLLOW_WAIT)
                                failures.answered()
                                self._publish_theirs(records)
                    except Exception as error:  # logged once per outage
                        failures.failed(error)
                    await trio.sleep(failures.backoff())
        finally:
            done.set()

    def _publish_theirs(self, records: Sequence[JobRecord]) -> None:
        seen = self._seen
        for record in records:
            if seen.get(record.id) == record:
                continue
            seen[record.id] = record
            seen.move_to_end(record.id)
            if len(seen) > _REMEMBERED:
                seen.popitem(last=False)
            self.publish(record.info())

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
