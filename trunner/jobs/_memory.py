"""MemoryJobStore: every job in this process's memory."""

from __future__ import annotations

import heapq
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, TypeAlias, final

import attrs
import trio

from ._errors import StoreError
from ._job import (
    FINISHED_STATES,
    JobCounts,
    JobRecord,
    JobState,
    ScheduleRecord,
    check_finished_state,
)
from ._sqlite_codec import with_seq
from ._store import CompleteResult, RenewResult
from ._wakeup import Wakeups

if TYPE_CHECKING:
    import builtins
    import datetime as dt
    from collections.abc import AsyncGenerator, Collection, Iterable, Sequence

    from ._store import JobEnd, WorkWatcher

# A pending job in its queue: (run_at, seq, id). It is current while
# ``_entries[id]`` is this very tuple; a job that leaves PENDING (or comes back)
# leaves a stale entry behind, dropped when it reaches the head of its heap.
_Entry: TypeAlias = tuple["dt.datetime", int, str]

_PENDING: Final = JobState.PENDING
_RUNNING: Final = JobState.RUNNING

#: Stale heap entries tolerated beyond the live ones before the heaps are rebuilt.
_STALE_SLACK: Final = 1024


def _check_bound(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


@final
@attrs.define(eq=False)
class MemoryJobStore:
    """A `JobStore` that keeps everything in this process's memory.

    For tests, demos and programs that need no durability: nothing survives
    the process. The jobs survive `disconnect`, so one store object can serve
    several managers in turn (not at once). Like every store, it answers only
    while connected: a call before `connect` or after `disconnect` raises
    `StoreError`. Each method is a checkpoint followed by one atomic step
    on the trio thread; a call cancelled at its checkpoint changes nothing.

    Due jobs wait in one heap per handler and priority, so a claim looks at the
    heads of a few heaps, never at every job.
    """

    _jobs: dict[str, JobRecord] = attrs.field(init=False, factory=dict[str, JobRecord])
    _seq: int = attrs.field(init=False, default=0)
    _counts: dict[JobState, int] = attrs.field(
        init=False, factory=lambda: dict.fromkeys(JobState, 0)
    )
    # handler -> priority -> heap of the PENDING jobs' entries.
    _queues: dict[str, dict[int, list[_Entry]]] = attrs.field(
        init=False, factory=dict[str, dict[int, list[_Entry]]]
    )
    # The current entry of each PENDING job.
    _entries: dict[str, _Entry] = attrs.field(init=False, factory=dict[str, _Entry])
    _queued: int = attrs.field(init=False, default=0)  # heap entries, stale ones too
    # Insertion-ordered sets of the RUNNING and of the finished jobs' ids.
    _running: dict[str, None] = attrs.field(init=False, factory=dict[str, None])
    _finished: dict[str, None] = attrs.field(init=False, factory=dict[str, None])
    _schedules: dict[str, ScheduleRecord] = attrs.field(
        init=False, factory=dict[str, ScheduleRecord]
    )
    _wakeups: Wakeups = attrs.field(init=False, factory=Wakeups)
    _connected: bool = attrs.field(init=False, default=False)
    # Whether a job became PENDING since the watchers were last woken.
    _arrived: bool = attrs.field(init=False, default=False)

    def __repr__(self) -> str:
        return (
            f"<MemoryJobStore jobs={len(self._jobs)} schedules={len(self._schedules)}>"
        )

    # ------------------------------------------------------------ bookkeeping

    def _put(self, new: JobRecord, old: JobRecord | None) -> None:
        """Store ``new`` in place of ``old`` and keep every index in step."""
        self._jobs[new.id] = new
        if old is not None:
            self._leave(old)
        self._enter(new)

    def _leave(self, old: JobRecord) -> None:
        self._counts[old.state] -= 1
        state = old.state
        if state is _PENDING:
            del self._entries[old.id]  # its heap entry is stale from now on
        elif state is _RUNNING:
            del self._running[old.id]
        else:
            del self._finished[old.id]

    def _enter(self, new: JobRecord) -> None:
        self._counts[new.state] += 1
        state = new.state
        if state is _PENDING:
            entry = (new.run_at, new.seq, new.id)
            self._entries[new.id] = entry
            by_priority = self._queues.get(new.handler)
            if by_priority is None:
                by_priority = self._queues[new.handler] = {}
            heap = by_priority.get(new.priority)
            if heap is None:
                by_priority[new.priority] = [entry]
            else:
                heapq.heappush(heap, entry)
            self._queued += 1
            self._arrived = True
            if self._queued > 2 * len(self._entries) + _STALE_SLACK:
                self._rebuild_queues()
        elif state is _RUNNING:
            self._running[new.id] = None
        else:
            self._finished[new.id] = None

    def _wake(self) -> None:
        """Wake the watchers if a job became PENDING (once per store call)."""
        if self._arrived:
            self._arrived = False
            self._wakeups.notify()

    def _rebuild_queues(self) -> None:
        """Drop every stale entry: heaps of only the current ones."""
        queues: dict[str, dict[int, list[_Entry]]] = {}
        for entry in self._entries.values():
            job = self._jobs[entry[2]]
            queues.setdefault(job.handler, {}).setdefault(job.priority, []).append(
                entry
            )
        for by_priority in queues.values():
            for heap in by_priority.values():
                heapq.heapify(heap)
        self._queues = queues
        self._queued = len(self._entries)

    def _heaps(
        self, handlers: Collection[str] | None
    ) -> builtins.list[tuple[int, builtins.list[_Entry]]]:
        """Return the (priority, heap) pairs of ``handlers`` (None: all)."""
        names: Iterable[str] = (
            self._queues if handlers is None else dict.fromkeys(handlers)
        )
        heaps: builtins.list[tuple[int, builtins.list[_Entry]]] = []
        for name in names:
            by_priority = self._queues.get(name)
            if by_priority is not None:
                heaps.extend(by_priority.items())
        return heaps

    def _head(self, heap: builtins.list[_Entry]) -> _Entry | None:
        """Return the heap's current head, popping stale entries first."""
        entries = self._entries
        while heap:
            head = heap[0]
            if entries.get(head[2]) is head:
                return head
            heapq.heappop(heap)
            self._queued -= 1
        return None

    # ------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Make the store answer calls (the jobs live in memory). Idempotent."""
        await trio.lowlevel.checkpoint()
        self._connected = True

    async def disconnect(self) -> None:
        """Stop answering calls; the jobs stay for the next connection. Idempotent."""
        await trio.lowlevel.checkpoint()
        self._connected = False

    async def _ready(self) -> None:
        """Checkpoint, then refuse the call if the store is not connected.

        As every store does: a call after its manager closed fails the same
        way whatever the store.
        """
        await trio.lowlevel.checkpoint()
        if not self._connected:
            raise StoreError(
                f"{self!r} is not connected: connect it first with 'await "
                "store.connect()' (a JobManager connects its store on entry)"
            )

    # ------------------------------------------------------------ jobs

    async def insert(
        self, jobs: Sequence[JobRecord]
    ) -> builtins.list[tuple[JobRecord, bool]]:
        """Insert ``jobs`` in order; see `JobStore.insert`."""
        await self._ready()
        stored = self._jobs
        results: builtins.list[tuple[JobRecord, bool]] = []
        for job in jobs:
            existing = stored.get(job.id)
            if existing is not None:
                results.append((existing, False))
                continue
            self._seq += 1
            new = with_seq(job, self._seq)
            self._put(new, None)
            results.append((new, True))
        self._wake()
        return results

    async def get(self, job_id: str) -> JobRecord | None:
        """Return the job with that id, or None."""
        await self._ready()
        return self._jobs.get(job_id)

    async def list(
        self,
        *,
        state: JobState | None = None,
        handler: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[JobRecord]:
        """Return jobs, newest (highest ``seq``) first, optionally filtered."""
        _check_bound("limit", limit)
        _check_bound("offset", offset)
        await self._ready()
        found: builtins.list[JobRecord] = []
        skip = offset
        if limit == 0:
            return found
        # The dict keeps insertion order, which is seq order.
        for job in reversed(self._jobs.values()):
            if (state is not None and job.state is not state) or (
                handler is not None and job.handler != handler
            ):
                continue
            if skip:
                skip -= 1
                continue
            found.append(job)
            if len(found) == limit:
                break
        return found

    async def counts(self) -> JobCounts:
        """Return how many jobs there are in each state (every state present).

        Its records are typed, so none is ever of an unknown state.
        """
        await self._ready()
        return JobCounts(self._counts)

    async def claim(
        self,
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        """Take up to ``limit`` due jobs for ``worker``; see `JobStore.claim`."""
        await self._ready()
        return self._claim(worker, handlers, now, lease_until, limit)

    async def complete_and_claim(
        self,
        ends: Sequence[JobEnd],
        *,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> CompleteResult:
        """End ``ends``, then claim; see `JobStore.complete_and_claim`."""
        await self._ready()
        ended = tuple([self._end(end, worker) for end in ends])
        claimed = self._claim(worker, handlers, now, lease_until, limit)
        self._wake()
        return CompleteResult(ended, tuple(claimed))

    @asynccontextmanager
    async def watch(
        self, *, handlers: Collection[str] | None
    ) -> AsyncGenerator[WorkWatcher]:
        """Subscribe to wake-ups; see `JobStore.watch`.

        Every job that becomes PENDING in this store wakes every watcher,
        whatever its handler.
        """
        del handlers
        async with self._wakeups.watch() as watcher:
            yield watcher

    def _end(self, end: JobEnd, worker: str) -> bool:
        if end.state is _PENDING:
            if end.run_at is None:
                return self._release(end.job_id, worker, end.at)
            return self._requeue(end.job_id, worker, end.run_at, end.error, end.at)
        return self._complete(
            end.job_id, worker, end.state, end.at, end.result, end.error
        )

    def _claim(
        self,
        worker: str,
        handlers: Collection[str] | None,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
    ) -> builtins.list[JobRecord]:
        taken: builtins.list[JobRecord] = []
        if limit <= 0:
            return taken
        heaps = self._heaps(handlers)
        while len(taken) < limit:
            best: builtins.list[_Entry] | None = None
            best_key: tuple[int, dt.datetime, int] | None = None
            for priority, heap in heaps:
                head = self._head(heap)
                if head is None or head[0] > now:
                    continue
                key = (-priority, head[0], head[1])
                if best_key is None or key < best_key:
                    best, best_key = heap, key
            if best is None:
                break
            entry = heapq.heappop(best)
            self._queued -= 1
            job = self._jobs[entry[2]]
            new = attrs.evolve(
                job,
                state=_RUNNING,
                worker=worker,
                lease_until=lease_until,
                started_at=now,
                attempts=job.attempts + 1,
                cancel_requested=False,
            )
            self._put(new, job)
            taken.append(new)
        return taken

    async def next_due(self, *, handlers: Collection[str] | None) -> dt.datetime | None:
        """Return the earliest ``run_at`` among PENDING jobs of ``handlers``."""
        await self._ready()
        earliest: dt.datetime | None = None
        for _, heap in self._heaps(handlers):
            head = self._head(heap)
            if head is not None and (earliest is None or head[0] < earliest):
                earliest = head[0]
        return earliest

    def _held(self, job_id: str, worker: str) -> JobRecord | None:
        job = self._jobs.get(job_id)
        if job is None or job.state is not _RUNNING or job.worker != worker:
            return None
        return job

    async def renew(
        self, *, worker: str, job_ids: Collection[str], lease_until: dt.datetime
    ) -> RenewResult:
        """Extend the leases of ``job_ids`` that ``worker`` still holds."""
        await self._ready()
        held: set[str] = set()
        cancel: set[str] = set()
        for job_id in job_ids:
            job = self._held(job_id, worker)
            if job is None:
                continue
            self._jobs[job_id] = attrs.evolve(job, lease_until=lease_until)
            held.add(job_id)
            if job.cancel_requested:
                cancel.add(job_id)
        return RenewResult(held=frozenset(held), cancel_requested=frozenset(cancel))

    async def complete(
        self,
        job_id: str,
        *,
        worker: str,
        state: JobState,
        finished_at: dt.datetime,
        result: str | None = None,
        error: str | None = None,
    ) -> bool:
        """End a job that ``worker`` holds; see `JobStore.complete`.

        Raises:
            ValueError: if ``state`` is not a finished state.
        """
        check_finished_state(state)
        await self._ready()
        return self._complete(job_id, worker, state, finished_at, result, error)

    def _complete(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        finished_at: dt.datetime,
        result: str | None,
        error: str | None,
    ) -> bool:
        job = self._held(job_id, worker)
        if job is None:
            return False
        new = attrs.evolve(
            job,
            state=state,
            finished_at=finished_at,
            result=result,
            error=error,
            lease_until=None,
        )
        self._put(new, job)
        return True

    async def requeue(
        self,
        job_id: str,
        *,
        worker: str,
        run_at: dt.datetime,
        error: str | None,
        now: dt.datetime,
    ) -> bool:
        """Make a held job PENDING again, due at ``run_at``; the attempt counts."""
        await self._ready()
        held = self._requeue(job_id, worker, run_at, error, now)
        self._wake()
        return held

    def _requeue(
        self,
        job_id: str,
        worker: str,
        run_at: dt.datetime,
        error: str | None,
        now: dt.datetime,
    ) -> bool:
        job = self._held(job_id, worker)
        if job is None:
            return False
        if job.cancel_requested:  # the request must not be lost
            new = attrs.evolve(
                job,
                state=JobState.CANCELLED,
                finished_at=now,
                error=error,
                lease_until=None,
            )
        else:
            new = attrs.evolve(
                job, state=_PENDING, run_at=run_at, error=error, lease_until=None
            )
        self._put(new, job)
        return True

    async def release(self, job_id: str, *, worker: str, now: dt.datetime) -> bool:
        """Hand a held job back, PENDING; the attempt does not count."""
        await self._ready()
        held = self._release(job_id, worker, now)
        self._wake()
        return held

    def _release(self, job_id: str, worker: str, now: dt.datetime) -> bool:
        job = self._held(job_id, worker)
        if job is None:
            return False
        if job.cancel_requested:  # the request must not be lost
            new = attrs.evolve(
                job, state=JobState.CANCELLED, finished_at=now, lease_until=None
            )
        else:
            new = attrs.evolve(
                job, state=_PENDING, lease_until=None, attempts=max(job.attempts - 1, 0)
            )
        self._put(new, job)
        return True

    async def expire_leases(self, *, now: dt.datetime) -> builtins.list[JobRecord]:
        """Take back RUNNING jobs whose lease ended before ``now``, by ``seq``."""
        await self._ready()
        expired = [
            job
            for job in map(self._jobs.__getitem__, self._running)
            if job.lease_until is not None and job.lease_until < now
        ]
        expired.sort(key=lambda job: job.seq)
        changed: builtins.list[JobRecord] = []
        for job in expired:
            if job.cancel_requested:
                new = attrs.evolve(
                    job, state=JobState.CANCELLED, finished_at=now, lease_until=None
                )
            elif job.attempts >= job.max_attempts:
                new = attrs.evolve(
                    job,
                    state=JobState.FAILED,
                    error="lease expired",
                    finished_at=now,
                    lease_until=None,
                )
            else:
                new = attrs.evolve(job, state=_PENDING, run_at=now, lease_until=None)
            self._put(new, job)
            changed.append(new)
        self._wake()
        return changed

    async def request_cancel(
        self, job_id: str, *, now: dt.datetime
    ) -> JobRecord | None:
        """Ask for a job to be cancelled; see `JobStore.request_cancel`."""
        await self._ready()
        job = self._jobs.get(job_id)
        if job is None:
            return None
        if job.state is _PENDING:
            new = attrs.evolve(job, state=JobState.CANCELLED, finished_at=now)
            self._put(new, job)
            return new
        if job.state is _RUNNING and not job.cancel_requested:
            new = attrs.evolve(job, cancel_requested=True)
            self._jobs[job_id] = new
            return new
        return job

    async def reset(self, job_id: str, *, now: dt.datetime) -> JobRecord | None:
        """Put a FAILED or CANCELLED job back to PENDING with fresh attempts."""
        await self._ready()
        job = self._jobs.get(job_id)
        if job is None or job.state not in (JobState.FAILED, JobState.CANCELLED):
            return job
        new = attrs.evolve(
            job,
            state=_PENDING,
            attempts=0,
            run_at=now,
            result=None,
            error=None,
            started_at=None,
            finished_at=None,
            worker=None,
            lease_until=None,
            cancel_requested=False,
        )
        self._put(new, job)
        self._wake()
        return new

    async def purge(
        self,
        *,
        finished_before: dt.datetime | None = None,
        keep_latest: int | None = None,
        states: Collection[JobState] | None = None,
    ) -> int:
        """Delete finished jobs; see `JobStore.purge`.

        Jobs are ranked for ``keep_latest`` by ``finished_at`` (a job without
        one counts as the oldest), then by ``seq``.
        """
        if keep_latest is not None:
            _check_bound("keep_latest", keep_latest)
        await self._ready()
        wanted = FINISHED_STATES if states is None else FINISHED_STATES & set(states)
        jobs = self._jobs
        candidates = [
            job for job in map(jobs.__getitem__, self._finished) if job.state in wanted
        ]
        doomed: builtins.list[JobRecord]
        if finished_before is None and keep_latest is None:
            doomed = candidates
        else:
            doomed = []
            if keep_latest is not None:
                candidates.sort(key=_finish_order, reverse=True)
                doomed = candidates[keep_latest:]
                candidates = candidates[:keep_latest]
            if finished_before is not None:
                doomed.extend(
                    job
                    for job in candidates
                    if job.finished_at is not None and job.finished_at < finished_before
                )
        for job in doomed:
            del jobs[job.id]
            self._leave(job)
        return len(doomed)

    async def delete(self, job_id: str) -> bool:
        """Delete the job if it is finished; see `JobStore.delete`."""
        await self._ready()
        job = self._jobs.get(job_id)
        if job is None or job.state not in FINISHED_STATES:
            return False
        del self._jobs[job_id]
        self._leave(job)
        return True

    # ------------------------------------------------------------ schedules

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Store ``schedule``, replacing one of the same name."""
        await self._ready()
        self._schedules[schedule.name] = schedule

    async def delete_schedule(self, name: str) -> bool:
        """Delete the schedule ``name``; return whether it existed."""
        await self._ready()
        return self._schedules.pop(name, None) is not None

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Return every schedule, by name."""
        await self._ready()
        return [self._schedules[name] for name in sorted(self._schedules)]

    async def advance_schedule(
        self, name: str, *, expected: dt.datetime, next_run_at: dt.datetime
    ) -> bool:
        """Move a schedule's ``next_run_at`` from ``expected`` (compare-and-set)."""
        await self._ready()
        schedule = self._schedules.get(name)
        if schedule is None or schedule.next_run_at != expected:
            return False
        self._schedules[name] = attrs.evolve(schedule, next_run_at=next_run_at)
        return True


def _finish_order(job: JobRecord) -> tuple[bool, float, int]:
    finished = job.finished_at
    return (
        finished is not None,
        0.0 if finished is None else finished.timestamp(),
        job.seq,
    )
