"""The submit path of a `JobManager`: checked records, stored by a group commit.

A submit is checked and serialised on the caller's task (so bad input fails
there and nothing is stored), then waits for its batch's commit. One
committer task writes the submits that came while the previous batch was
being written, in one store transaction: concurrent submits share one commit
(one disk flush). A batch that fails is written again one job at a time, so a
bad job fails only its own submit.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, final

import attrs
import outcome
import trio

from .._errors import RunnerClosedError
from .._retry import RetryPolicy
from .._traits import Priority
from .._util import check_duration
from ._environment import CLOSE_FLUSH_TIMEOUT, later
from ._errors import StoreError
from ._job import JobRecord, JobState, RetrySpec, check_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._environment import ManagerEnvironment
    from ._registry import HandlerSpec


def store_error(error: Exception) -> StoreError:
    """The `StoreError` a caller gets for ``error``, raised by a store call."""
    if isinstance(error, StoreError):
        return error
    failure = StoreError(f"the store failed: {error!r}")
    failure.__cause__ = error
    return failure


def due_at(
    run_at: dt.datetime | None, delay: float | None, now: dt.datetime
) -> dt.datetime:
    """When a job submitted ``now`` with ``run_at`` or ``delay`` is due."""
    if run_at is not None and delay is not None:
        raise ValueError("give run_at or delay, not both")
    if run_at is not None:
        if not isinstance(run_at, dt.datetime):
            raise TypeError(f"run_at must be a datetime, not {run_at!r}")
        if run_at.tzinfo is None:
            raise ValueError("run_at must be timezone-aware (e.g. datetime.UTC)")
        return run_at.astimezone(dt.UTC)
    if delay is not None:
        return later(now, check_duration("delay", delay), "delay")
    return now


@final
@attrs.define(eq=False)
class Submit:
    """A submit waiting for its batch's commit; the committer reschedules it."""

    record: JobRecord
    task: trio.lowlevel.Task
    #: Whether the committer has taken it into a batch (it can't be withdrawn).
    taken: bool = False


def _no_submits() -> list[Submit]:
    return []


@final
@attrs.define(eq=False)
class SubmitPath:
    """Builds job records from a submit's arguments and stores them in batches."""

    env: ManagerEnvironment
    #: The manager as its repr shows it, for the errors of a closed manager.
    describe: Callable[[], str]
    #: Submits not yet taken into a batch.
    waiting: list[Submit] = attrs.field(init=False, factory=_no_submits)
    #: Set when a submit is waiting (or the manager closes).
    submitted: trio.Event = attrs.field(init=False, factory=trio.Event)
    scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    started: bool = attrs.field(init=False, default=False)
    #: Set once the committer has ended: submits then fail at once.
    done: trio.Event = attrs.field(init=False, factory=trio.Event)

    # ------------------------------------------------------------ records

    def spec(self, handler: str) -> HandlerSpec | None:
        """The handler's spec to check a submit's args against, if there is one."""
        check_name("handler", handler)
        registry = self.env.registry
        if self.env.config.strict or handler in registry:
            return registry.get(handler)
        return None

    def new_record(
        self,
        job_id: str,
        handler: str,
        args: object,
        priority: Priority,
        run_at: dt.datetime | None,
        delay: float | None,
        retry: RetryPolicy | None,
        timeout: float | None,
        now: dt.datetime,
    ) -> tuple[JobRecord, object]:
        """Check a submit's arguments; the new job's record and its args' JSON value."""
        env = self.env
        check_name("job_id", job_id)
        spec = self.spec(handler)
        payload, json_args = env.serializer.dump_args_value(spec, args)
        if not isinstance(priority, Priority):
            raise TypeError(f"priority must be a Priority, not {priority!r}")
        due = due_at(run_at, delay, now)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {retry!r}")
        if timeout is not None:
            timeout = check_duration("timeout", timeout, allow_zero=False)
        policy = env.config.retry if retry is None else retry
        record = JobRecord(
            id=job_id,
            handler=handler,
            args=payload,
            state=JobState.PENDING,
            priority=int(priority),
            attempts=0,
            max_attempts=policy.max_attempts,
            created_at=now,
            run_at=due,
            timeout=timeout,
            retry=None if retry is None else RetrySpec.from_policy(retry).to_json(),
        )
        return record, json_args

    # ------------------------------------------------------------ group commit

    async def commit(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """Store ``record`` in the next batch: the stored job, and whether it is new."""
        if self.done.is_set():
            # Only while the block exits: its caller is a task of its own.
            await trio.lowlevel.checkpoint()
            raise self._closing_error()
        submit = Submit(record, trio.lowlevel.current_task())
        self.waiting.append(submit)
        self.submitted.set()

        def abort(_: object) -> trio.lowlevel.Abort:
            # Not yet in a batch: withdraw it. In a batch being written: wait
            # for the commit (then the cancellation is delivered), so the
            # caller learns whether its job was stored.
            if submit.taken:
                return trio.lowlevel.Abort.FAILED
            self.waiting.remove(submit)
            return trio.lowlevel.Abort.SUCCEEDED

        result: tuple[JobRecord, bool] = await trio.lowlevel.wait_task_rescheduled(
            abort
        )
        return result

    async def run(self) -> None:
        """The committer task: one store transaction per batch, until the exit."""
        self.started = True
        try:
            with self.scope:
                await self._loop()
        finally:
            # Whatever ended the committer, no submit waits for it forever.
            self.done.set()
            waiting, self.waiting = self.waiting, []
            for submit in waiting:
                trio.lowlevel.reschedule(
                    submit.task, outcome.Error(self._closing_error())
                )

    async def close(self) -> None:
        """At the exit (the manager is closed): write the submits made, then end."""
        if self.started:
            self.submitted.set()  # the committer sees env.closed, flushes, ends
            with trio.move_on_after(CLOSE_FLUSH_TIMEOUT):
                await self.done.wait()
        self.scope.cancel()

    def _closing_error(self) -> RunnerClosedError:
        return RunnerClosedError(
            f"{self.describe()} closed before this job was stored; open a new manager"
        )

    async def _loop(self) -> None:
        # One store transaction per batch: the submits that came while the
        # previous batch was being written share the next commit. At exit
        # (``env.closed``), the submits already made are written, then it ends.
        env = self.env
        store = env.store
        while True:
            if env.closed and not self.waiting:
                return
            await self.submitted.wait()
            self.submitted = trio.Event()
            batch, self.waiting = self.waiting, []
            if not batch:
                continue  # every submit was withdrawn
            for submit in batch:
                submit.taken = True
            try:
                results = await store.insert([s.record for s in batch])
            except trio.Cancelled:
                # Closing, in the middle of a write: whether it committed is
                # unknown; say so to the waiting submitters.
                for submit in batch:
                    trio.lowlevel.reschedule(
                        submit.task,
                        outcome.Error(
                            RunnerClosedError(
                                f"{self.describe()} closed while job "
                                f"{submit.record.id!r} was being stored; it may "
                                "or may not be stored"
                            )
                        ),
                    )
                raise
            except Exception as error:
                if len(batch) == 1:
                    trio.lowlevel.reschedule(
                        batch[0].task, outcome.Error(store_error(error))
                    )
                else:
                    await self._one_by_one(batch, error)
                continue
            reschedule = trio.lowlevel.reschedule
            publish = env.changes.publish_record
            for submit, result in zip(batch, results, strict=True):
                if result[1]:  # inserted: published before anything can claim it
                    publish(result[0])
                reschedule(submit.task, outcome.Value(result))

    async def _one_by_one(self, batch: list[Submit], error: Exception) -> None:
        """Insert the jobs of a failed batch alone: one bad job fails only itself.

        Two failures in a row mean the store itself fails (not one bad job):
        the rest of the batch then gets the batch's error at once, so that
        an unreachable store fails every submit within a bounded time.
        """
        failed_in_a_row = 0
        for index, submit in enumerate(batch):
            if failed_in_a_row >= 2:
                for rest in batch[index:]:
                    trio.lowlevel.reschedule(
                        rest.task, outcome.Error(store_error(error))
                    )
                return
            try:
                (result,) = await self.env.store.insert([submit.record])
            except trio.Cancelled:
                for rest in batch[index:]:
                    trio.lowlevel.reschedule(
                        rest.task, outcome.Error(self._closing_error())
                    )
                raise
            except Exception as alone:
                failed_in_a_row += 1
                trio.lowlevel.reschedule(submit.task, outcome.Error(store_error(alone)))
            else:
                failed_in_a_row = 0
                if result[1]:
                    self.env.changes.publish_record(result[0])
                trio.lowlevel.reschedule(submit.task, outcome.Value(result))
