"""The worker of a `JobManager`: claims jobs, runs their handlers, stores their ends.

One worker task makes every store call of the hot path: each round is one
`JobStore.complete_and_claim`, which commits the ends of all the attempts
that finished since the previous round (a grouped completion: one
transaction, one disk flush) and claims the next jobs in the same
transaction. Claimed jobs wait in `Worker.ready` (a prefetch bounded by
``concurrency``) and start at once when a slot frees, without waiting for
the store; one not started within `PREFETCH_HOLD` seconds is handed back.
Ends are built on the Trio thread when a handler ends (its task's done
callback) and committed by the next round: a job is SUCCEEDED in the store
only once that commit returns, and a crash before it runs the job again (at
least once). Idle, the worker waits on the store's watcher (a wake-up as soon
as a job becomes PENDING), its own submits, or the next due time, never
longer than ``poll_interval``.

Handlers run on a `ParallelTaskRunner`, ``concurrency`` at a time, with
per-attempt timeouts and cancellation; sync handlers run on threads.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import math
from typing import TYPE_CHECKING, Final, final

import attrs
import outcome
import trio

from .._traits import TaskState, TaskTraits
from ._attempts import failed_attempt, failure
from ._environment import CLOSE_FLUSH_TIMEOUT
from ._errors import SerializationError
from ._failures import StoreFailures
from ._job import JobState
from ._store import JobEnd

if TYPE_CHECKING:
    from .._handle import TaskHandle
    from .._parallel import ParallelTaskRunner
    from ._environment import ManagerEnvironment
    from ._job import JobRecord

logger: Final = logging.getLogger("trunner.jobs")

#: Seconds a claimed job may wait for a free slot before it is handed back.
PREFETCH_HOLD: Final = 1.0
_BLOCKING: Final = TaskTraits(may_block=True)
#: Seconds of one wait on the store's watcher (then it waits again).
_WATCH_WAIT: Final = 3600.0
#: Failed store calls in a row after which an exiting worker gives up its ends.
_STOP_TRIES: Final = 5


@final
@attrs.define(eq=False)
class Running:
    """A job this worker holds: its record and the task that runs it."""

    record: JobRecord
    handle: TaskHandle[object] | None = None
    lease_until: dt.datetime | None = None
    #: When it was claimed (trio time), for the prefetch's hold.
    claimed_at: float = 0.0
    #: Why the handler was cancelled, if it was: "cancel" (a request),
    #: "lease" (the lease was lost or about to expire), "stop" (shutdown).
    stop_reason: str | None = None


def _running_jobs() -> dict[str, Running]:
    return {}


@final
@attrs.define(eq=False, repr=False)
class Worker:
    """The jobs this process holds, and the task that claims and ends them.

    Every manager has one; only a manager opened with ``worker=True`` has an
    executor and starts its task (`run`). The other parts read `running`,
    `ready` and `ending` (the jobs whose leases this worker renews) and end
    or stop jobs through `end` and `stop`.
    """

    env: ManagerEnvironment
    #: Runs the handlers (None: the manager does not run jobs).
    executor: ParallelTaskRunner | None
    #: The jobs whose handlers run now.
    running: dict[str, Running] = attrs.field(init=False, factory=_running_jobs)
    #: Claimed jobs waiting for a free slot (the bounded prefetch).
    ready: collections.deque[Running] = attrs.field(
        init=False, factory=collections.deque[Running]
    )
    #: Ends waiting for the worker's next store call, and their jobs.
    ends: list[JobEnd] = attrs.field(init=False, factory=list[JobEnd])
    ending: dict[str, Running] = attrs.field(init=False, factory=_running_jobs)
    #: Set when the worker task has something to do (an end, a submit, ...).
    work: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Set when the worker is to stop (its backoff waits end at once).
    stopped: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Set (and replaced) after each store call of the worker.
    round_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Whether to claim beyond the free slots (see `capacity`).
    prefetch: bool = attrs.field(init=False, default=True)
    #: Set once the worker task has ended.
    exited: trio.Event = attrs.field(init=False, factory=trio.Event)
    scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    stopping: bool = attrs.field(init=False, default=False)
    #: While the exit waits for the running jobs: set when none runs.
    idle: trio.Event | None = attrs.field(init=False, default=None)
    #: Failed store calls of the worker in a row (claims, completions).
    store_failures: StoreFailures = attrs.field(
        init=False,
        factory=lambda: StoreFailures("claim jobs (and store the ends of ended ones)"),
    )

    def describe(self) -> str:
        """The manager, as its repr shows it."""
        return f"<JobManager {self.env.config.name!r} running={len(self.running)}>"

    def wake(self) -> None:
        """Wake the worker task: work may have arrived or ended. Not a checkpoint."""
        self.work.set()

    # ------------------------------------------------------------ the task

    async def run(self) -> None:
        """The worker task: store rounds until the exit has stored the last ends."""
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch, name="jobs-watch")
                    await self._rounds()
                    nursery.cancel_scope.cancel()
        finally:
            self.exited.set()

    async def _watch(self) -> None:
        """Turn the store's wake-ups into wake-ups of the worker, for ever."""
        while True:
            try:
                async with self.env.store.watch(handlers=None) as watcher:
                    while True:
                        if await watcher.wait(_WATCH_WAIT):
                            self.work.set()
            except Exception as error:  # polling still finds the jobs
                logger.debug("the store's wake-ups failed: %r", error)
            await trio.sleep(self.env.config.poll_interval)

    def capacity(self) -> int:
        """Jobs to claim now: free slots plus the free part of the prefetch.

        No prefetch after prefetched jobs were handed back unstarted, until a
        slot frees: the worker is busy with long jobs, and others may run them.
        """
        config = self.env.config
        prefetch = config.concurrency if self.prefetch else 0
        return config.concurrency + prefetch - len(self.running) - len(self.ready)

    def take_ends(self) -> list[JobEnd]:
        """The ends to commit now, with the prefetched jobs to hand back."""
        ends, self.ends = self.ends, []
        ready = self.ready
        clock = trio.current_time()
        # The same comparison as `_rest`'s deadline (`claimed_at + PREFETCH_HOLD`):
        # `claimed_at <= clock - PREFETCH_HOLD` can round the other way, and
        # then `_rest` returns at once while nothing is handed back: a spin.
        if ready and (self.stopping or ready[0].claimed_at + PREFETCH_HOLD <= clock):
            now = self.env.now()
            self.prefetch = False
            while ready and (
                self.stopping or ready[0].claimed_at + PREFETCH_HOLD <= clock
            ):
                running = ready.popleft()
                self.ending[running.record.id] = running
                ends.append(JobEnd.released(running.record.id, at=now))
        return ends

    async def _rounds(self) -> None:
        env = self.env
        config = env.config
        store = env.store
        publish = env.changes.publish_record
        while True:
            self.work = trio.Event()
            ends = self.take_ends()
            want = 0 if self.stopping else self.capacity()
            handlers = frozenset(env.registry.names()) if want > 0 else frozenset[str]()
            if not handlers:
                want = 0
            if not ends and want <= 0:
                if self.stopping and not self.running and not self.ending:
                    return
                await self._rest(config.poll_interval if not handlers else None)
                continue
            now = env.now()
            lease_until = now + dt.timedelta(seconds=config.lease)
            try:
                result = await store.complete_and_claim(
                    ends,
                    worker=config.name,
                    handlers=handlers,
                    now=now,
                    lease_until=lease_until,
                    limit=want,
                )
            except Exception as error:  # never stop: try again after a backoff
                self._rounded()
                self.ends[:0] = ends
                self.store_failures.failed(error)
                if self.stopping and self.store_failures.count > _STOP_TRIES:
                    self._give_up_ends()
                    return
                with trio.move_on_after(self.store_failures.backoff()):
                    await self.stopped.wait()
                continue
            self.store_failures.answered()
            self._ended(ends, result.ended)
            self._rounded()
            claimed = result.claimed
            if claimed:
                ready = self.ready
                at = trio.current_time()
                for record in claimed:
                    publish(record)
                    ready.append(
                        Running(record, lease_until=lease_until, claimed_at=at)
                    )
                self._start_ready()
            if self.ends or self.stopping or (claimed and len(claimed) == want):
                # More ends to commit, maybe more jobs due, or a stop: the
                # round may have committed the last end, and the top of the
                # loop then returns (a stop's wake-up may have come before
                # this round began, so resting would wait for nothing).
                continue
            if want > 0 and not claimed:
                await self._rest(await self._idle_wait(handlers, now))
            else:
                await self._rest(None)

    async def _idle_wait(self, handlers: frozenset[str], now: dt.datetime) -> float:
        """Seconds to wait when nothing was due: until the next due job, or a poll."""
        try:
            due = await self.env.store.next_due(handlers=handlers)
        except Exception as error:
            self.store_failures.failed(error, what="find the next due job")
            return self.store_failures.backoff()
        wait = self.env.config.poll_interval
        if due is not None and due > now:
            wait = min(wait, max(0.0, self.env.seconds_until(due)))
        # Else a job due now was not claimed (a row the store cannot hand out,
        # or a race with another worker): wait for the next poll, never spin.
        return wait

    async def _rest(self, timeout: float | None) -> None:  # noqa: ASYNC109  # internal
        """Wait for work (an end, a submit, a wake-up), or ``timeout`` seconds."""
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        if self.ready:
            # A prefetched job not started in time is handed back. An absolute
            # deadline: `take_ends` then sees it passed (a relative one can
            # round to no wait at all, and spin).
            deadline = min(deadline, self.ready[0].claimed_at + PREFETCH_HOLD)
        with trio.move_on_at(deadline):
            await self.work.wait()

    def _rounded(self) -> None:
        self.round_done.set()
        self.round_done = trio.Event()

    def _ended(self, ends: list[JobEnd], applied: tuple[bool, ...]) -> None:
        """Forget the jobs whose ends are committed."""
        for end, done in zip(ends, applied, strict=True):
            self.ending.pop(end.job_id, None)
            if not done:
                logger.info(
                    "job %r: its end was not stored, its lease was lost", end.job_id
                )
            self.env.changes.publish_later(end.job_id)
        if self.idle is not None and not self.running:
            self.idle.set()

    def _give_up_ends(self) -> None:
        """At exit, with the store failing: the ends not stored run again later."""
        for end in self.ends:
            logger.warning(
                "job %r ended, but its end could not be stored before the exit; "
                "it runs again once its lease expires",
                end.job_id,
            )
        self.ends = []
        self.ending.clear()

    # ------------------------------------------------------------ the handlers

    def _start_ready(self) -> None:
        """Start prefetched jobs while slots are free. Not a checkpoint."""
        ready = self.ready
        limit = self.env.config.concurrency
        while ready and len(self.running) < limit and not self.stopping:
            self._start(ready.popleft())

    def _start(self, running: Running) -> None:
        env = self.env
        record = running.record
        executor = self.executor
        assert executor is not None
        try:
            spec = env.registry.get(record.handler)
            call, args = env.serializer.prepare_call(spec, record)
        except Exception as error:
            # An undecodable payload fails its own job, never the others.
            self.end(running, failure(record, error, env.now()))
            return
        self.running[record.id] = running
        timeout = env.config.timeout if record.timeout is None else record.timeout
        traits = None if spec.is_async else _BLOCKING
        handle = executor.post_task(
            call, *args, name=record.id, timeout=timeout, traits=traits
        )
        running.handle = handle
        handle.add_done_callback(lambda _: self._done(running))

    def _done(self, running: Running) -> None:
        """A handler ended (on the Trio thread): queue its end, start the next."""
        env = self.env
        record = running.record
        self.running.pop(record.id, None)
        self.prefetch = True
        handle = running.handle
        assert handle is not None
        now = env.now()
        end: JobEnd | None
        state = handle.state
        if state is TaskState.SUCCEEDED:
            # Recorded even if a stop came too late to cancel it; a lost
            # lease makes the store refuse it, as it should.
            result = handle.outcome
            assert result is not None
            try:
                stored = env.serializer.dump_result(result.unwrap())
            except SerializationError as error:
                end = failure(record, error, now)
            else:
                end = JobEnd.finished(
                    record.id, JobState.SUCCEEDED, at=now, result=stored
                )
        elif state is not TaskState.CANCELLED:
            raised = handle.outcome
            assert isinstance(raised, outcome.Error)
            end = failed_attempt(record, raised.error, now, env.config)
        elif running.stop_reason == "stop":
            end = JobEnd.released(record.id, at=now)
        elif running.stop_reason != "lease":
            end = JobEnd.finished(record.id, JobState.CANCELLED, at=now)
        else:
            end = None  # a lost lease: another worker may hold the job
        if end is None:
            env.changes.publish_later(record.id)
        else:
            self.end(running, end)
        if self.idle is not None and not self.running:
            self.idle.set()
        self._start_ready()

    def end(self, running: Running, end: JobEnd) -> None:
        """Queue ``end`` of a job this worker holds for the next round."""
        self.ending[running.record.id] = running
        self.ends.append(end)
        self.work.set()

    @staticmethod
    def stop(running: Running, reason: str) -> None:
        """Cancel the job's handler: for a request, a lost lease, or the exit."""
        if running.stop_reason is None:
            running.stop_reason = reason
        if running.handle is not None:
            running.handle.cancel()

    def unready(self, job_id: str) -> Running | None:
        """Take a prefetched job out of the queue (to end it otherwise)."""
        for running in self.ready:
            if running.record.id == job_id:
                self.ready.remove(running)
                return running
        return None

    async def cancel_held(self, job_id: str, now: dt.datetime) -> JobRecord | None:
        """Cancel a job this worker holds but does not run; return it after."""
        store = self.env.store
        if self.unready(job_id) is not None:
            # Claimed here (prefetched) but not started: it never starts.
            if await store.complete(
                job_id,
                worker=self.env.config.name,
                state=JobState.CANCELLED,
                finished_at=now,
            ):
                record = await store.get(job_id)
                if record is not None:
                    self.env.changes.publish_record(record)
                return record
        elif job_id in self.ending:
            # Its end is being stored (a release makes it CANCELLED): wait.
            with trio.move_on_after(self.env.config.lease):
                while job_id in self.ending:
                    await self.round_done.wait()
            return await store.get(job_id)
        return None

    # ------------------------------------------------------------ stopping

    def shutdown(self) -> None:
        """Claim nothing more; cancel the running handlers (see JobManager.shutdown)."""
        self.stopping = True
        self.stopped.set()
        self.work.set()
        for running in list(self.running.values()):
            self.stop(running, "stop")

    async def drain(self) -> None:
        """Stop claiming; give running jobs the grace period; hand back the rest.

        Then the worker stores the last ends (and hands back the prefetched
        jobs) and stops.
        """
        self.stopping = True
        self.stopped.set()
        self.work.set()
        grace_period = self.env.config.grace_period
        if self.running:
            self.idle = trio.Event()
            if self.running:
                with trio.move_on_after(grace_period):
                    await self.idle.wait()
            for running in list(self.running.values()):
                self.stop(running, "stop")
            if self.running:
                with trio.move_on_after(grace_period + 5):
                    await self.idle.wait()
        if self.executor is not None:
            self.work.set()
            with trio.move_on_after(CLOSE_FLUSH_TIMEOUT):
                await self.exited.wait()
        # Whatever it waits for, the worker ends with the block.
        self.scope.cancel()
