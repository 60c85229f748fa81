"""check_job_store: the conformance suite of the `JobStore` protocol."""

from __future__ import annotations

import datetime as dt
import inspect
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar, final

import attrs
import trio
import trio.testing

from ..jobs._errors import StoreError
from ..jobs._job import (
    FINISHED_STATES,
    JobCounts,
    JobRecord,
    JobState,
    ScheduleRecord,
)
from ..jobs._store import ChangeSource, ChangeWatcher, JobEnd, JobStore, WorkWatcher

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

T = TypeVar("T")

# What check_job_store takes: a function that makes a new, empty store.
_StoreFactory: TypeAlias = "Callable[[], JobStore] | Callable[[], Awaitable[JobStore]]"
# What check_job_store may take to make a stored job's state unknown.
_StateWriter: TypeAlias = (
    "Callable[[JobStore, str], None] | Callable[[JobStore, str], Awaitable[None]]"
)
# What check_job_store may take to open the same store a second time.
_OtherStore: TypeAlias = (
    "Callable[[JobStore], JobStore] | Callable[[JobStore], Awaitable[JobStore]]"
)
_CheckFn: TypeAlias = "Callable[[JobStore], Awaitable[None]]"
_HookedCheckFn: TypeAlias = "Callable[[JobStore, _Hooks], Awaitable[None]]"

#: The checks' time origin: stores never read a clock, so any instant will do.
T0: Final = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
_WORKER: Final = "worker-1"
_OTHER: Final = "worker-2"
#: Seconds a watcher may take to hear of a job in the same process.
_WAKE_TIMEOUT: Final = 5.0


@final
@attrs.frozen
class _Hooks:
    """What the caller gave check_job_store to reach behind the store's back."""

    write_unknown_state: _StateWriter | None
    other_store: _OtherStore | None = None

    async def open_other(self, store: JobStore) -> JobStore:
        assert self.other_store is not None
        made: object = self.other_store(store)
        other = await made if inspect.isawaitable(made) else made
        if not isinstance(other, JobStore):
            raise TypeError(f"other_store must make a JobStore, not {other!r}")
        return other

    async def make_state_unknown(self, store: JobStore, job_id: str) -> None:
        assert self.write_unknown_state is not None
        done: object = self.write_unknown_state(store, job_id)
        if inspect.isawaitable(done):
            await done


@final
@attrs.frozen
class _Check:
    name: str
    description: str
    run: _HookedCheckFn
    #: The check runs only if this hook is given (None: it always runs).
    needs: str | None = None

    def is_runnable(self, hooks: _Hooks) -> bool:
        return self.needs is None or getattr(hooks, self.needs) is not None


_CHECKS: dict[str, _Check] = {}


def _describe(fn: _CheckFn | _HookedCheckFn) -> tuple[str, str]:
    name = fn.__name__.removeprefix("_check_")
    return name, (fn.__doc__ or name).strip().splitlines()[0].rstrip(".")


def _check(fn: _CheckFn) -> _CheckFn:
    name, doc = _describe(fn)

    def run(store: JobStore, hooks: _Hooks) -> Awaitable[None]:
        del hooks
        return fn(store)

    _CHECKS[name] = _Check(name, doc, run)
    return fn


def _hooked_check(needs: str) -> Callable[[_HookedCheckFn], _HookedCheckFn]:
    """Register a check that runs only if the hook ``needs`` is given."""

    def register(fn: _HookedCheckFn) -> _HookedCheckFn:
        name, doc = _describe(fn)
        _CHECKS[name] = _Check(name, doc, fn, needs=needs)
        return fn

    return register


def job_store_checks() -> tuple[str, ...]:
    """Return the names of the checks `check_job_store` runs, in order.

    Handy to run them one by one, such as in a pytest parametrization::

        @pytest.mark.parametrize("check", trunner.testing.job_store_checks())
        async def test_my_store(check: str) -> None:
            async with trunner.open_scheduler():
                await trunner.testing.check_job_store(MyStore, only=[check])
    """
    return tuple(_CHECKS)


async def check_job_store(
    factory: Callable[[], JobStore] | Callable[[], Awaitable[JobStore]],
    *,
    only: Iterable[str] | None = None,
    write_unknown_state: _StateWriter | None = None,
    other_store: _OtherStore | None = None,
) -> None:
    """Check that a `JobStore` does what the protocol says, or raise.

    Each check calls ``factory()`` for a new store (the factory may be a
    plain or an async function), which must be empty; connects it; exercises
    the documented semantics of one part of the protocol; and disconnects it.
    Between them, the checks cover every method: insert order, ``seq`` and
    duplicates; `~JobStore.get`, `~JobStore.list` (filters, order, limit,
    offset) and `~JobStore.counts`; claims (order, due-ness, handlers, limit,
    the fields set, concurrent claims that never overlap); `~JobStore.next_due`;
    leases (renew, complete, requeue, release, expiry); cancellation and
    reset; purging and deleting; a disconnected store refusing calls;
    schedules (with a compare-and-set advance that exactly one of several
    concurrent callers wins); reconnection keeping the data; that every
    method is a checkpoint; and, given ``write_unknown_state``, that a job
    whose stored state is unknown is counted as such and never claimed;
    and, given ``other_store``, that a `~trunner.jobs.ChangeSource` store
    reports the changes another store object makes, and not its own.

    A plain async function, usable from any test framework, and a
    checkpoint; cancelling it disconnects the store of the check under way.
    It runs inside
    the caller's trio run: open a scheduler around it (``async with
    trunner.open_scheduler():``) for stores that need one, such as
    `SQLiteJobStore`. The checks use fixed times (stores never read a clock),
    so they run the same under an autojumping clock.

    Args:
        factory: makes a new, empty, unconnected store for each check.
        only: the names of the checks to run (see `job_store_checks`); all by
            default.
        write_unknown_state: a function (plain or async) called with a
            connected store and a job id, which gives that stored job a state
            the store does not know, behind the store's back: as a corrupted
            row would have it, or as a newer version of the store would
            write a state of its own (out of the known states' indexes, if the
            store keeps some). The check ``unknown_state`` needs it and is
            skipped without it; give it for a store whose rows can hold
            such a state.
        other_store: a function (plain or async) called with a connected
            store, which returns another, unconnected store object on the
            same data (as another process would open it: the same file,
            schema or key prefix). The check ``changes`` needs it, and the
            store to be a `~trunner.jobs.ChangeSource`; it is skipped
            otherwise.

    Raises:
        AssertionError: naming the first check that failed and what was wrong.
        ValueError: for an unknown check name in ``only``.
        Exception: what the store raised, with a note naming the check (in an
            `ExceptionGroup` if it was raised in one of the concurrent tasks of
            a check).
    """
    names = tuple(_CHECKS) if only is None else tuple(only)
    unknown = [name for name in names if name not in _CHECKS]
    if unknown:
        raise ValueError(
            f"unknown job store checks {unknown}; "
            "see trunner.testing.job_store_checks()"
        )
    hooks = _Hooks(write_unknown_state, other_store)
    for name in names:
        check = _CHECKS[name]
        if check.is_runnable(hooks):
            await _run_check(factory, check, hooks)


async def _make(factory: _StoreFactory) -> JobStore:
    made: object = factory()
    store = await made if inspect.isawaitable(made) else made
    if not isinstance(store, JobStore):
        raise TypeError(f"the store factory must make a JobStore, not {store!r}")
    return store


async def _run_check(factory: _StoreFactory, check: _Check, hooks: _Hooks) -> None:
    store = await _make(factory)
    label = type(store).__name__
    try:
        await store.connect()
        await _expect_empty(store)
        await check.run(store, hooks)
    except AssertionError as error:
        raise AssertionError(
            f"{label} fails job store check {check.name!r} ({check.description}): "
            f"{error}"
        ) from error
    except Exception as error:
        error.add_note(f"in job store check {check.name!r} of {label}")
        raise
    finally:
        await store.disconnect()


# ---------------------------------------------------------------- helpers


def _at(seconds: float) -> dt.datetime:
    """Return the instant ``seconds`` after `T0`."""
    return T0 + dt.timedelta(seconds=seconds)


def _job(
    job_id: str,
    *,
    handler: str = "h",
    priority: int = 0,
    run_at: float = 0.0,
    max_attempts: int = 3,
) -> JobRecord:
    return JobRecord(
        id=job_id,
        handler=handler,
        args=f'{{"job": "{job_id}"}}',
        state=JobState.PENDING,
        priority=priority,
        attempts=0,
        max_attempts=max_attempts,
        created_at=_at(-60),
        run_at=_at(run_at),
    )


def _schedule(name: str, *, next_run_at: float = 60.0) -> ScheduleRecord:
    return ScheduleRecord(
        name=name,
        handler="h",
        args="[]",
        cron=None,
        every=60.0,
        next_run_at=_at(next_run_at),
        priority=0,
        created_at=_at(0),
    )


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _equal(actual: T, expected: T, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def _ids(records: Iterable[JobRecord]) -> list[str]:
    return [record.id for record in records]


def _same_job(stored: JobRecord, given: JobRecord, what: str) -> None:
    """Check that ``stored`` is ``given`` with a seq, in UTC."""
    _equal(stored, attrs.evolve(given, seq=stored.seq), what)
    _check_utc(stored, what)


def _check_utc(record: JobRecord | ScheduleRecord, what: str) -> None:
    for field in attrs.fields(type(record)):
        value: object = getattr(record, field.name)
        if isinstance(value, dt.datetime):
            _expect(
                value.utcoffset() == dt.timedelta(0),
                f"{what}: {field.name} must be a timezone-aware UTC datetime, "
                f"got {value!r}",
            )


async def _get(store: JobStore, job_id: str) -> JobRecord:
    record = await store.get(job_id)
    _expect(record is not None, f"get({job_id!r}) returned None for a stored job")
    assert record is not None
    _check_utc(record, f"get({job_id!r})")
    return record


async def _insert(store: JobStore, *jobs: JobRecord) -> list[JobRecord]:
    results = await store.insert(jobs)
    _equal([new for _, new in results], [True] * len(jobs), "insert's inserted flags")
    return [record for record, _ in results]


async def _claim(
    store: JobStore,
    *,
    worker: str = _WORKER,
    handlers: Iterable[str] | None = None,
    now: float = 0.0,
    lease: float = 30.0,
    limit: int = 100,
) -> list[JobRecord]:
    return await store.claim(
        worker=worker,
        handlers=None if handlers is None else list(handlers),
        now=_at(now),
        lease_until=_at(now + lease),
        limit=limit,
    )


async def _running(
    store: JobStore, job_id: str, *, worker: str = _WORKER, max_attempts: int = 3
) -> JobRecord:
    """Insert a job of its own handler and claim it for ``worker``."""
    await _insert(store, _job(job_id, handler=f"h-{job_id}", max_attempts=max_attempts))
    claimed = await _claim(store, worker=worker, handlers=[f"h-{job_id}"])
    _equal(_ids(claimed), [job_id], "claim of a single due job")
    return claimed[0]


async def _finished(store: JobStore, job_id: str, state: JobState, at: float) -> None:
    await _running(store, job_id)
    done = await store.complete(
        job_id, worker=_WORKER, state=state, finished_at=_at(at)
    )
    _expect(done, f"complete({job_id!r}) by its holder returned False")


async def _expect_empty(store: JobStore) -> None:
    counts = await store.counts()
    jobs = await store.list(limit=1)
    schedules = await store.list_schedules()
    _expect(
        not jobs and not schedules and not any(counts.values()),
        "the store factory must make an empty store, but this one holds "
        f"{len(jobs)}+ jobs and {len(schedules)} schedules",
    )


# ---------------------------------------------------------------- the checks


@_check
async def _check_empty_store(store: JobStore) -> None:
    """An empty store has no jobs, every state counted 0, nothing due."""
    _equal(await store.get("nope"), None, "get of a missing id")
    _equal(await store.list(), [], "list of an empty store")
    _equal(await store.counts(), dict.fromkeys(JobState, 0), "counts of an empty store")
    _equal(await _claim(store), [], "claim from an empty store")
    _equal(await store.next_due(handlers=None), None, "next_due of an empty store")
    _equal(await store.expire_leases(now=_at(0)), [], "expire_leases of an empty store")
    _equal(await store.purge(), 0, "purge of an empty store")
    _equal(await store.list_schedules(), [], "list_schedules of an empty store")


@_check
async def _check_connect_idempotent(store: JobStore) -> None:
    """Connect and disconnect are idempotent; the store can be connected again."""
    await store.connect()
    await _insert(store, _job("a"))
    await store.disconnect()
    await store.disconnect()
    await store.connect()
    await store.connect()
    _equal((await _get(store, "a")).id, "a", "the job after reconnecting")


@_check
async def _check_insert_assigns_seq(store: JobStore) -> None:
    """Insert keeps the order and gives each new job the next seq."""
    first = [_job("b"), _job("a"), _job("c")]
    results = await store.insert(first)
    _equal(
        [(r.id, new) for r, new in results],
        [("b", True), ("a", True), ("c", True)],
        "insert's results",
    )
    for (record, _), job in zip(results, first, strict=True):
        _same_job(record, job, f"insert's record of {job.id!r}")
    seqs = [record.seq for record, _ in results]
    _expect(
        seqs == sorted(seqs) and len(set(seqs)) == 3,
        f"seqs must grow in batch order, got {seqs}",
    )
    later = await _insert(store, _job("e"), _job("d"))
    _expect(
        seqs[-1] < later[0].seq < later[1].seq,
        f"a later batch must get higher seqs: {seqs} then {[r.seq for r in later]}",
    )
    for record in [r for r, _ in results] + later:
        _equal(await _get(store, record.id), record, f"get({record.id!r}) after insert")
    _equal(await store.insert([]), [], "insert of no jobs")


@_check
async def _check_insert_duplicates(store: JobStore) -> None:
    """A duplicate id is not inserted: the stored job is returned instead."""
    a = _job("a")
    twin = _job("a", handler="other", priority=5)
    results = await store.insert([a, _job("b"), twin])
    _equal(
        [new for _, new in results], [True, True, False], "inserted flags of [a, b, a]"
    )
    _equal(
        results[2][0],
        results[0][0],
        "the record returned for a repeat within the batch",
    )
    _same_job(results[0][0], a, "the first 'a'")
    later = await store.insert([_job("c"), twin, _job("b")])
    _equal(
        [new for _, new in later], [True, False, False], "inserted flags of [c, a, b]"
    )
    _equal(later[1][0], results[0][0], "the record returned for an id stored before")
    _equal(later[2][0], results[1][0], "the record returned for an id stored before")
    _expect(
        later[0][0].seq > results[1][0].seq,
        "the new job of a later batch gets a higher seq",
    )
    _equal(await _get(store, "a"), results[0][0], "the stored 'a' (the first one)")
    _equal(len(await store.list()), 3, "number of jobs stored")


@_check
async def _check_insert_round_trip(store: JobStore) -> None:
    """Every field of a record survives the store, times to the microsecond."""
    full = JobRecord(
        id="full-é-✓",
        handler="send_email",
        args='{"to": "ü@example.com", "n": [1, 2.5, null]}',
        state=JobState.RUNNING,
        priority=-3,
        attempts=2,
        max_attempts=7,
        created_at=_at(-1.000001),
        run_at=_at(0.123457),
        started_at=_at(1.5),
        finished_at=_at(2.000003),
        result='"done"',
        error="Traceback (most recent call last):\n  ...\nValueError: ✗",
        worker="host:123",
        lease_until=_at(31.999999),
        cancel_requested=True,
        timeout=2.5,
        retry='{"max_attempts": 7}',
    )
    bare = _job("bare")
    stored = await _insert(store, full, bare)
    _same_job(stored[0], full, "insert's record with every field set")
    _same_job(stored[1], bare, "insert's record with optional fields unset")
    _equal(
        await _get(store, full.id), stored[0], "get of the record with every field set"
    )
    _equal(
        await _get(store, "bare"),
        stored[1],
        "get of the record with optional fields unset",
    )


@_check
async def _check_insert_concurrent(store: JobStore) -> None:
    """Concurrent inserts store every job once, each with its own seq."""
    results: dict[str, JobRecord] = {}

    refused: list[str] = []

    # No assertion in the tasks: a failure would come out of the nursery in
    # an ExceptionGroup.
    async def submit(task: int) -> None:
        for n in range(5):
            batch = [_job(f"t{task}-{n}-{k}") for k in range(n % 3 + 1)]
            for record, new in await store.insert(batch):
                results[record.id] = record
                if not new:
                    refused.append(record.id)

    async with trio.open_nursery() as nursery:
        for task in range(10):
            nursery.start_soon(submit, task)
    _equal(refused, [], "jobs of concurrent inserts not inserted")
    seqs = [record.seq for record in results.values()]
    _equal(len(results), 90, "jobs inserted")
    _equal(len(set(seqs)), 90, "distinct seqs")
    _equal(len(await store.list(limit=1000)), 90, "jobs listed")


@_check
async def _check_list(store: JobStore) -> None:
    """List: newest first, filtered by state and handler, with limit and offset."""
    await _insert(
        store, _job("p1", handler="x"), _job("p2", handler="y"), _job("p3", handler="x")
    )
    await _running(store, "r1")
    await _finished(store, "f1", JobState.FAILED, 5)
    everything = await store.list()
    _equal(_ids(everything), ["f1", "r1", "p3", "p2", "p1"], "list() (newest first)")
    seqs = [record.seq for record in everything]
    _expect(
        seqs == sorted(seqs, reverse=True), f"list() must be by seq, descending: {seqs}"
    )
    for record in everything:
        _equal(
            await _get(store, record.id), record, f"the listed record of {record.id!r}"
        )
    _equal(
        _ids(await store.list(state=JobState.PENDING)),
        ["p3", "p2", "p1"],
        "list(state=PENDING)",
    )
    _equal(
        _ids(await store.list(state=JobState.RUNNING)), ["r1"], "list(state=RUNNING)"
    )
    _equal(
        _ids(await store.list(state=JobState.SUCCEEDED)), [], "list(state=SUCCEEDED)"
    )
    _equal(_ids(await store.list(handler="x")), ["p3", "p1"], "list(handler='x')")
    _equal(
        _ids(await store.list(state=JobState.PENDING, handler="y")),
        ["p2"],
        "list(state=PENDING, handler='y')",
    )
    _equal(
        _ids(await store.list(state=JobState.FAILED, handler="x")),
        [],
        "list(state=FAILED, handler='x')",
    )
    _equal(_ids(await store.list(limit=2)), ["f1", "r1"], "list(limit=2)")
    _equal(
        _ids(await store.list(limit=2, offset=2)),
        ["p3", "p2"],
        "list(limit=2, offset=2)",
    )
    _equal(_ids(await store.list(offset=4)), ["p1"], "list(offset=4)")
    _equal(_ids(await store.list(offset=5)), [], "list(offset=5)")
    _equal(_ids(await store.list(limit=0)), [], "list(limit=0)")
    _equal(
        _ids(await store.list(handler="x", limit=1, offset=1)),
        ["p1"],
        "list(handler='x', limit=1, offset=1)",
    )


@_check
async def _check_counts(store: JobStore) -> None:
    """Counts has every state, with how many jobs are in it."""
    await _insert(store, _job("p1", run_at=100), _job("p2", run_at=100))
    await _running(store, "r1")
    await _finished(store, "s1", JobState.SUCCEEDED, 1)
    await _finished(store, "s2", JobState.SUCCEEDED, 2)
    await _finished(store, "c1", JobState.CANCELLED, 3)
    expected = {
        JobState.PENDING: 2,
        JobState.RUNNING: 1,
        JobState.SUCCEEDED: 2,
        JobState.FAILED: 0,
        JobState.CANCELLED: 1,
    }
    counts = await store.counts()
    _equal(counts, expected, "counts()")
    if isinstance(counts, JobCounts):
        _equal(counts.unknown, 0, "counts().unknown")


@_hooked_check("write_unknown_state")
async def _check_unknown_state(store: JobStore, hooks: _Hooks) -> None:
    """A job of an unknown state is counted as such, in no state, never claimed."""
    await _insert(store, _job("a"), _job("b"), _job("c"))
    await _finished(store, "s1", JobState.SUCCEEDED, 1)
    await hooks.make_state_unknown(store, "b")
    counts = await store.counts()
    _expect(
        isinstance(counts, JobCounts),
        f"counts() must return a JobCounts to count unknown states, not {counts!r}",
    )
    assert isinstance(counts, JobCounts)
    expected = JobCounts({JobState.PENDING: 2, JobState.SUCCEEDED: 1}, unknown=1)
    _equal(counts, expected, "counts() with one job of an unknown state")
    _equal(_ids(await _claim(store)), ["a", "c"], "claim() beside it")


@_check
async def _check_claim_order(store: JobStore) -> None:
    """Claims take the highest priority first, then the earliest run_at, then seq."""
    await _insert(
        store,
        _job("low-early", priority=0, run_at=-10),
        _job("high-late", priority=2, run_at=-1),
        _job("mid-b", priority=1, run_at=-5),
        _job("high-early", priority=2, run_at=-3),
        _job("mid-a", priority=1, run_at=-5),
        _job("negative", priority=-1, run_at=-20),
        _job("mid-c", priority=1, run_at=-5),
    )
    expected = [
        "high-early",
        "high-late",
        "mid-b",
        "mid-a",
        "mid-c",
        "low-early",
        "negative",
    ]
    _equal(_ids(await _claim(store, limit=3)), expected[:3], "the first claim")
    _equal(_ids(await _claim(store, limit=10)), expected[3:], "the second claim")


@_check
async def _check_claim_due(store: JobStore) -> None:
    """Only PENDING jobs with run_at <= now are claimed."""
    await _insert(
        store,
        _job("past", run_at=-1),
        _job("now", run_at=0),
        _job("later", run_at=0.000001, priority=9),
        _job("future", run_at=60, priority=9),
    )
    _equal(sorted(_ids(await _claim(store, now=0))), ["now", "past"], "claim at now=0")
    _equal(_ids(await _claim(store, now=0)), [], "claim at now=0, again")
    _equal(
        _ids(await _claim(store, now=0.000001)), ["later"], "claim a microsecond later"
    )
    _equal(_ids(await _claim(store, now=60)), ["future"], "claim at now=60")


@_check
async def _check_claim_handlers(store: JobStore) -> None:
    """Claims take only jobs of the given handlers (None: any; empty: none)."""
    await _insert(
        store,
        _job("a1", handler="a"),
        _job("b1", handler="b", priority=1),
        _job("c1", handler="c"),
        _job("a2", handler="a"),
    )
    _equal(_ids(await _claim(store, handlers=[])), [], "claim(handlers=[])")
    _equal(_ids(await _claim(store, handlers=["zzz"])), [], "claim(handlers=['zzz'])")
    _equal(
        _ids(await _claim(store, handlers=["a"], limit=1)),
        ["a1"],
        "claim(handlers=['a'], limit=1)",
    )
    _equal(
        _ids(await _claim(store, handlers=["c", "b"])),
        ["b1", "c1"],
        "claim(handlers=['c', 'b'])",
    )
    _equal(_ids(await _claim(store, handlers=None)), ["a2"], "claim(handlers=None)")


@_check
async def _check_claim_limit(store: JobStore) -> None:
    """A claim takes at most limit jobs; later claims take the rest."""
    await _insert(store, *[_job(f"j{n}") for n in range(5)])
    _equal(await _claim(store, limit=0), [], "claim(limit=0)")
    _equal(_ids(await _claim(store, limit=2)), ["j0", "j1"], "claim(limit=2)")
    _equal(_ids(await _claim(store, limit=1)), ["j2"], "claim(limit=1)")
    _equal(_ids(await _claim(store, limit=5)), ["j3", "j4"], "claim(limit=5)")


@_check
async def _check_claim_fields(store: JobStore) -> None:
    """A claimed job is RUNNING with the worker, lease, start and one more attempt."""
    job = attrs.evolve(_job("a", run_at=-5), attempts=1)
    await _insert(store, job)
    claimed = await _claim(store, worker="w-7", now=3.25, lease=30)
    _equal(len(claimed), 1, "jobs claimed")
    expected = attrs.evolve(
        job,
        state=JobState.RUNNING,
        worker="w-7",
        lease_until=_at(33.25),
        started_at=_at(3.25),
        attempts=2,
        cancel_requested=False,
        seq=claimed[0].seq,
    )
    _equal(claimed[0], expected, "the claimed record")
    _check_utc(claimed[0], "the claimed record")
    _equal(await _get(store, "a"), expected, "the stored record after the claim")


@_check
async def _check_claim_pending_only(store: JobStore) -> None:
    """Running and finished jobs are never claimed."""
    await _running(store, "r")
    for state in FINISHED_STATES:
        await _finished(store, f"f-{state.value}", state, 1)
    _equal(
        await _claim(store, now=1000), [], "claim with only running and finished jobs"
    )


@_check
async def _check_claim_concurrent(store: JobStore) -> None:
    """Concurrent claims never take the same job; together they take every job."""
    await _insert(store, *[_job(f"j{n:03}", priority=n % 3) for n in range(150)])
    taken: list[str] = []

    wrong_worker: list[str] = []

    async def claimer(worker: str) -> None:
        while batch := await _claim(store, worker=worker, limit=3):
            taken.extend(_ids(batch))
            wrong_worker.extend(r.id for r in batch if r.worker != worker)

    async with trio.open_nursery() as nursery:
        for n in range(25):
            nursery.start_soon(claimer, f"w{n}")
    _equal(wrong_worker, [], "jobs claimed with another worker's name")
    duplicates = sorted({job_id for job_id in taken if taken.count(job_id) > 1})
    _equal(duplicates, [], "jobs taken by two claims")
    _equal(len(taken), 150, "jobs taken")
    counts = await store.counts()
    _equal(
        (counts[JobState.PENDING], counts[JobState.RUNNING]),
        (0, 150),
        "(pending, running)",
    )


# ---------------------------------------------------------------- the worker's hot path


async def _complete_and_claim(
    store: JobStore,
    ends: list[JobEnd],
    *,
    worker: str = _WORKER,
    handlers: Iterable[str] | None = None,
    now: float = 0.0,
    lease: float = 30.0,
    limit: int = 0,
) -> tuple[list[bool], list[JobRecord]]:
    result = await store.complete_and_claim(
        ends,
        worker=worker,
        handlers=None if handlers is None else list(handlers),
        now=_at(now),
        lease_until=_at(now + lease),
        limit=limit,
    )
    _equal(len(result.ended), len(ends), "complete_and_claim: one ended flag per end")
    for record in result.claimed:
        _check_utc(record, "a record claimed by complete_and_claim")
    return list(result.ended), list(result.claimed)


@_check
async def _check_complete_and_claim_ends(store: JobStore) -> None:
    """complete_and_claim applies each end as complete, requeue or release would."""
    for job_id in ("ok", "bad", "gone", "retry", "back", "back-cancel"):
        await _running(store, job_id)
    await store.request_cancel("back-cancel", now=_at(1))
    ends = [
        JobEnd.finished("ok", JobState.SUCCEEDED, at=_at(5), result='{"r": 1}'),
        JobEnd.finished("bad", JobState.FAILED, at=_at(5), error="boom"),
        JobEnd.finished("gone", JobState.CANCELLED, at=_at(5)),
        JobEnd.retry("retry", run_at=_at(50), error="again", at=_at(5)),
        JobEnd.released("back", at=_at(5)),
        JobEnd.released("back-cancel", at=_at(5)),
    ]
    ended, claimed = await _complete_and_claim(store, ends, now=5)
    _equal(ended, [True] * 6, "complete_and_claim's ended flags")
    _equal(claimed, [], "complete_and_claim with limit=0 claims nothing")
    ok = await _get(store, "ok")
    _equal(
        (ok.state, ok.finished_at, ok.result, ok.error, ok.lease_until, ok.worker),
        (JobState.SUCCEEDED, _at(5), '{"r": 1}', None, None, _WORKER),
        "(state, finished_at, result, error, lease_until, worker) of a succeeded end",
    )
    bad = await _get(store, "bad")
    _equal(
        (bad.state, bad.error, bad.finished_at),
        (JobState.FAILED, "boom", _at(5)),
        "(state, error, finished_at) of a failed end",
    )
    _equal((await _get(store, "gone")).state, JobState.CANCELLED, "a cancelled end")
    retry = await _get(store, "retry")
    _equal(
        (retry.state, retry.run_at, retry.error, retry.attempts, retry.lease_until),
        (JobState.PENDING, _at(50), "again", 1, None),
        "(state, run_at, error, attempts, lease_until) of a retried end",
    )
    back = await _get(store, "back")
    _equal(
        (back.state, back.attempts, back.lease_until),
        (JobState.PENDING, 0, None),
        "(state, attempts, lease_until) of a released end",
    )
    cancelled = await _get(store, "back-cancel")
    _equal(
        (cancelled.state, cancelled.finished_at),
        (JobState.CANCELLED, _at(5)),
        "a released end of a job whose cancellation was requested",
    )


@_check
async def _check_complete_and_claim_holder_only(store: JobStore) -> None:
    """complete_and_claim ends only the jobs the worker holds, each on its own."""
    await _running(store, "mine")
    await _running(store, "theirs", worker=_OTHER)
    await _running(store, "lost")
    await _finished(store, "done", JobState.SUCCEEDED, 1)
    await _insert(store, _job("pending", run_at=100))
    # The lease of "lost" expires and another worker takes it.
    await store.renew(worker=_WORKER, job_ids=["mine"], lease_until=_at(90))
    await store.renew(worker=_OTHER, job_ids=["theirs"], lease_until=_at(90))
    [expired] = await store.expire_leases(now=_at(31))
    _equal(expired.id, "lost", "the job whose lease expired")
    [retaken] = await _claim(store, worker=_OTHER, handlers=["h-lost"], now=31)
    ends = [
        JobEnd.finished("lost", JobState.SUCCEEDED, at=_at(32), result="1"),
        JobEnd.finished("theirs", JobState.FAILED, at=_at(32), error="x"),
        JobEnd.finished("done", JobState.FAILED, at=_at(32), error="x"),
        JobEnd.released("pending", at=_at(32)),
        JobEnd.finished("missing", JobState.SUCCEEDED, at=_at(32)),
        JobEnd.finished("mine", JobState.SUCCEEDED, at=_at(32), result="2"),
        JobEnd.finished("mine", JobState.FAILED, at=_at(33), error="twice"),
    ]
    ended, _ = await _complete_and_claim(store, ends, now=32)
    _equal(
        ended,
        [False, False, False, False, False, True, False],
        "ended flags for (lost lease, another's, finished, pending, missing, "
        "held, held twice)",
    )
    lost = await _get(store, "lost")
    _equal(
        (lost.state, lost.worker, lost.result, lost.attempts),
        (JobState.RUNNING, _OTHER, None, retaken.attempts),
        "a job whose lease was lost, after its old holder's end",
    )
    theirs = await _get(store, "theirs")
    _equal((theirs.state, theirs.worker), (JobState.RUNNING, _OTHER), "another's job")
    done = await _get(store, "done")
    _equal((done.state, done.error), (JobState.SUCCEEDED, None), "a finished job")
    _equal((await _get(store, "pending")).state, JobState.PENDING, "a pending job")
    mine = await _get(store, "mine")
    _equal(
        (mine.state, mine.result, mine.finished_at),
        (JobState.SUCCEEDED, "2", _at(32)),
        "a held job ended twice in one call (the first end applies)",
    )


@_check
async def _check_complete_and_claim_claims(store: JobStore) -> None:
    """complete_and_claim claims after the ends, as claim does."""
    await _running(store, "r")
    await _insert(
        store,
        _job("low", priority=-1),
        _job("high", priority=5),
        _job("mid-late", run_at=2),
        _job("mid-early", run_at=1),
        _job("future", run_at=100),
        _job("other", handler="other"),
    )
    ended, claimed = await _complete_and_claim(
        store,
        [JobEnd.finished("r", JobState.SUCCEEDED, at=_at(3))],
        handlers=["h"],
        now=3,
        limit=3,
    )
    _equal(ended, [True], "ended flags")
    _equal(_ids(claimed), ["high", "mid-early", "mid-late"], "claimed ids, in order")
    for record in claimed:
        _equal(
            (
                record.state,
                record.worker,
                record.started_at,
                record.lease_until,
                record.attempts,
            ),
            (JobState.RUNNING, _WORKER, _at(3), _at(33), 1),
            f"(state, worker, started_at, lease_until, attempts) of {record.id!r}",
        )
        _equal(await _get(store, record.id), record, "the claimed record as stored")
    # A job released in the call is due again, and may be claimed by it.
    ended, claimed = await _complete_and_claim(
        store,
        [JobEnd.released("high", at=_at(4))],
        handlers=["h"],
        now=4,
        limit=10,
    )
    _equal(ended, [True], "ended flags of a release")
    _expect(
        _ids(claimed) in (["high", "low"], ["low"]),
        "claimed after a release: expected ['high', 'low'] (the released job "
        f"claimed again) or ['low'], got {_ids(claimed)!r}",
    )
    if len(claimed) == 2:
        _equal(claimed[0].attempts, 1, "attempts of a released job claimed again")
    _equal(
        await _complete_and_claim(store, [], handlers=[], now=4, limit=10),
        ([], []),
        "complete_and_claim with no ends and no handlers",
    )


@_check
async def _check_complete_and_claim_concurrent(store: JobStore) -> None:
    """Concurrent complete_and_claim calls never take the same job nor lose one."""
    await _insert(store, *[_job(f"j{n:03}", priority=n % 3) for n in range(120)])
    taken: list[str] = []
    finished: list[str] = []
    not_ended: list[str] = []
    wrong: list[str] = []

    async def worker(name: str) -> None:
        ends: list[JobEnd] = []
        while True:
            ended, claimed = await _complete_and_claim(
                store, ends, worker=name, now=1, limit=4
            )
            not_ended.extend(
                end.job_id for end, done in zip(ends, ended, strict=True) if not done
            )
            finished.extend(end.job_id for end in ends)
            wrong.extend(record.id for record in claimed if record.worker != name)
            taken.extend(_ids(claimed))
            if not claimed:
                return
            ends = [
                JobEnd.finished(record.id, JobState.SUCCEEDED, at=_at(2))
                for record in claimed
            ]

    async with trio.open_nursery() as nursery:
        for n in range(12):
            nursery.start_soon(worker, f"w{n}")
    _equal(wrong, [], "jobs claimed with another worker's name")
    duplicates = sorted({job_id for job_id in taken if taken.count(job_id) > 1})
    _equal(duplicates, [], "jobs taken by two calls")
    _equal(not_ended, [], "jobs claimed by a worker that it could not end")
    _equal(sorted(finished), sorted(taken), "jobs ended")
    _equal(len(taken), 120, "jobs taken")
    counts = await store.counts()
    _equal(counts[JobState.SUCCEEDED], 120, "succeeded jobs")


async def _woken(watcher: WorkWatcher, what: str) -> None:
    _expect(
        await watcher.wait(_WAKE_TIMEOUT),
        f"the watcher was not woken by {what} within {_WAKE_TIMEOUT} s",
    )


async def _quiet(watcher: WorkWatcher, what: str) -> None:
    _expect(not await watcher.wait(0), f"the watcher was woken {what}")


@_check
async def _check_watch(store: JobStore) -> None:
    """A watcher wakes when a job becomes PENDING, and loses no arrival."""
    await _insert(store, _job("before"))
    async with store.watch(handlers=None) as watcher:
        _expect(isinstance(watcher, WorkWatcher), "watch must yield a WorkWatcher")
        await _quiet(watcher, "with no arrival since it was opened")
        # Arrivals before the wait count: none is lost between two waits.
        await _insert(store, _job("a"), _job("b"))
        await _woken(watcher, "an insert before the wait")
        await _quiet(watcher, "twice by one insert")

        async def insert_soon() -> None:
            await trio.testing.wait_all_tasks_blocked()  # the watcher waits
            await _insert(store, _job("c"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(insert_soon)
            await _woken(watcher, "an insert during the wait")
        await _quiet(watcher, "twice by one insert")
        claimed = await _claim(store, limit=4)
        _equal(len(claimed), 4, "jobs claimed")
        await store.requeue("a", worker=_WORKER, run_at=_at(10), error="e", now=_at(1))
        await _woken(watcher, "a requeue")
        await store.release("b", worker=_WORKER, now=_at(1))
        await _woken(watcher, "a release")
        await _complete_and_claim(store, [JobEnd.released("c", at=_at(1))])
        await _woken(watcher, "a release by complete_and_claim")
        await store.expire_leases(now=_at(100))
        await _woken(watcher, "an expired lease")
        _equal(len(await _claim(store, now=100)), 4, "jobs claimed again")
        await store.complete(
            "before", worker=_WORKER, state=JobState.FAILED, finished_at=_at(101)
        )
        await store.reset("before", now=_at(102))
        await _woken(watcher, "a reset")
        with trio.CancelScope() as scope:
            scope.cancel()
            await watcher.wait(3600)
        await _insert(store, _job("d"))
        await _woken(watcher, "an insert after a cancelled wait")


async def _changes_until(
    watcher: ChangeWatcher, job_id: str, state: JobState, seen: list[JobRecord]
) -> None:
    """Add to ``seen`` what ``watcher`` reports until ``job_id`` is in ``state``."""
    with trio.move_on_after(_WAKE_TIMEOUT) as scope:
        while not any(r.id == job_id and r.state is state for r in seen):
            seen.extend(await watcher.changes(_WAKE_TIMEOUT))
    _expect(
        not scope.cancelled_caught,
        f"the change watcher did not report {job_id!r} {state.value} within "
        f"{_WAKE_TIMEOUT} s (it reported {[(r.id, r.state.value) for r in seen]})",
    )


@_hooked_check("other_store")
async def _check_changes(store: JobStore, hooks: _Hooks) -> None:
    """A change watcher reports other store objects' changes in order, not its own."""
    if not isinstance(store, ChangeSource):
        return
    other = await hooks.open_other(store)
    await other.connect()
    try:
        await _insert(store, _job("mine"))
        seen: list[JobRecord] = []
        async with store.watch_changes(poll_interval=0.05) as watcher:
            _expect(
                isinstance(watcher, ChangeWatcher),
                "watch_changes must yield a ChangeWatcher",
            )
            _equal(await watcher.changes(0), [], "changes before any change")
            await _insert(store, _job("mine-too"))
            await _insert(other, _job("theirs", handler="t"))
            await _changes_until(watcher, "theirs", JobState.PENDING, seen)
            claimed = await _claim(other, handlers=["t"])
            _equal(_ids(claimed), ["theirs"], "the other store's claim")
            await _changes_until(watcher, "theirs", JobState.RUNNING, seen)
            await other.complete(
                "theirs", worker=_WORKER, state=JobState.SUCCEEDED, finished_at=_at(1)
            )
            await _changes_until(watcher, "theirs", JobState.SUCCEEDED, seen)
            await other.request_cancel("mine", now=_at(2))
            await _changes_until(watcher, "mine", JobState.CANCELLED, seen)
            await other.reset("mine", now=_at(3))
            await _changes_until(watcher, "mine", JobState.PENDING, seen)
            # This store's own changes, before and after, are never reported.
            await store.request_cancel("mine", now=_at(4))
            await _complete_and_claim(other, [], limit=10)
            await _changes_until(watcher, "mine-too", JobState.RUNNING, seen)
        states = [(record.id, record.state) for record in seen]
        _expect(
            ("mine-too", JobState.PENDING) not in states
            and states.count(("mine", JobState.CANCELLED)) == 1,
            f"the watcher reported this store's own changes: {states}",
        )
        order = [state for job_id, state in states if job_id == "theirs"]
        _equal(
            sorted(order, key=list(JobState).index),
            order,
            "the order of the other store's changes to one job",
        )
    finally:
        await other.disconnect()


@_check
async def _check_next_due(store: JobStore) -> None:
    """next_due is the earliest run_at of the PENDING jobs of the handlers."""
    await _running(store, "r")  # run_at 0, but running
    await _finished(store, "f", JobState.SUCCEEDED, 1)
    _equal(await store.next_due(handlers=None), None, "next_due with no pending job")
    await _insert(
        store,
        _job("a-late", handler="a", run_at=50),
        _job("b", handler="b", run_at=20, priority=-5),
        _job("a-soon", handler="a", run_at=30.5, priority=5),
    )
    _equal(await store.next_due(handlers=None), _at(20), "next_due(handlers=None)")
    _equal(await store.next_due(handlers=["a"]), _at(30.5), "next_due(handlers=['a'])")
    _equal(
        await store.next_due(handlers=["a", "b"]),
        _at(20),
        "next_due(handlers=['a', 'b'])",
    )
    _equal(await store.next_due(handlers=["zzz"]), None, "next_due(handlers=['zzz'])")
    _equal(await store.next_due(handlers=[]), None, "next_due(handlers=[])")
    await _claim(store, handlers=["b"], now=20)
    _equal(
        await store.next_due(handlers=None), _at(30.5), "next_due once 'b' is claimed"
    )


@_check
async def _check_renew(store: JobStore) -> None:
    """Renew extends the leases the worker holds and reports cancel requests."""
    await _running(store, "mine")
    await _running(store, "cancelled")
    await _running(store, "theirs", worker=_OTHER)
    await _finished(store, "done", JobState.SUCCEEDED, 1)
    await _insert(store, _job("pending", run_at=100))
    await store.request_cancel("cancelled", now=_at(2))
    result = await store.renew(
        worker=_WORKER,
        job_ids=["mine", "cancelled", "theirs", "done", "pending", "missing"],
        lease_until=_at(90),
    )
    _equal(result.held, frozenset({"mine", "cancelled"}), "renew's held ids")
    _equal(
        result.cancel_requested,
        frozenset({"cancelled"}),
        "renew's cancel_requested ids",
    )
    _equal((await _get(store, "mine")).lease_until, _at(90), "the renewed lease")
    _equal((await _get(store, "theirs")).lease_until, _at(30), "another worker's lease")
    empty = await store.renew(worker=_WORKER, job_ids=[], lease_until=_at(95))
    _equal(
        (empty.held, empty.cancel_requested),
        (frozenset(), frozenset()),
        "renew of no ids",
    )


@_check
async def _check_complete(store: JobStore) -> None:
    """Complete ends a held job, clearing the lease and keeping the worker."""
    results = {
        JobState.SUCCEEDED: ('{"ok": true}', None),
        JobState.FAILED: (None, "ValueError: bad"),
        JobState.CANCELLED: (None, None),
    }
    for state, (result, error) in results.items():
        claimed = await _running(store, state.value)
        done = await store.complete(
            state.value,
            worker=_WORKER,
            state=state,
            finished_at=_at(7),
            result=result,
            error=error,
        )
        _expect(done, f"complete as {state.value} by the holder returned False")
        expected = attrs.evolve(
            claimed,
            state=state,
            finished_at=_at(7),
            result=result,
            error=error,
            lease_until=None,
        )
        _equal(
            await _get(store, state.value),
            expected,
            f"the job completed as {state.value}",
        )
        again = await store.complete(
            state.value, worker=_WORKER, state=state, finished_at=_at(8)
        )
        _expect(not again, f"a second complete of a {state.value} job returned True")
        _equal(
            await _get(store, state.value),
            expected,
            f"the {state.value} job after a second complete",
        )


@_check
async def _check_complete_by_holder_only(store: JobStore) -> None:
    """Complete does nothing for a job the worker does not hold."""
    running = await _running(store, "r")
    await _insert(store, _job("p"))
    for job_id, worker in (("r", _OTHER), ("p", _WORKER), ("missing", _WORKER)):
        done = await store.complete(
            job_id,
            worker=worker,
            state=JobState.SUCCEEDED,
            finished_at=_at(1),
            result="1",
        )
        _expect(not done, f"complete({job_id!r}, worker={worker!r}) returned True")
    _equal(
        await _get(store, "r"),
        running,
        "the running job after another worker's complete",
    )
    _equal(
        (await _get(store, "p")).state,
        JobState.PENDING,
        "the pending job after complete",
    )
    _equal(await store.get("missing"), None, "a missing job after complete")


@_check
async def _check_requeue(store: JobStore) -> None:
    """Requeue makes a held job PENDING at run_at; the attempt counts."""
    claimed = await _running(store, "a")
    _expect(
        not await store.requeue(
            "a", worker=_OTHER, run_at=_at(10), error="x", now=_at(1)
        ),
        "requeue by another worker returned True",
    )
    _expect(
        await store.requeue(
            "a", worker=_WORKER, run_at=_at(10), error="boom", now=_at(1)
        ),
        "requeue by the holder returned False",
    )
    record = await _get(store, "a")
    _equal(
        (
            record.state,
            record.run_at,
            record.error,
            record.lease_until,
            record.attempts,
        ),
        (JobState.PENDING, _at(10), "boom", None, claimed.attempts),
        "(state, run_at, error, lease_until, attempts) after requeue",
    )
    _expect(
        not await store.requeue(
            "a", worker=_WORKER, run_at=_at(10), error=None, now=_at(1)
        ),
        "requeue of a pending job returned True",
    )
    _equal(await _claim(store, now=9.999), [], "claim before the requeued run_at")
    again = await _claim(store, now=10)
    _equal(
        [(r.id, r.attempts) for r in again],
        [("a", claimed.attempts + 1)],
        "the claim at run_at",
    )


@_check
async def _check_release(store: JobStore) -> None:
    """Release hands a held job back, PENDING, without counting the attempt."""
    await _insert(store, attrs.evolve(_job("a"), attempts=1))
    [claimed] = await _claim(store)
    _expect(
        not await store.release("a", worker=_OTHER, now=_at(1)),
        "release by another worker returned True",
    )
    _expect(
        await store.release("a", worker=_WORKER, now=_at(1)),
        "release by the holder returned False",
    )
    record = await _get(store, "a")
    _equal(
        (record.state, record.lease_until, record.attempts, record.run_at),
        (JobState.PENDING, None, 1, claimed.run_at),
        "(state, lease_until, attempts, run_at) after release",
    )
    _expect(
        not await store.release("a", worker=_WORKER, now=_at(1)),
        "release of a pending job returned True",
    )
    _equal(
        [(r.id, r.attempts) for r in await _claim(store)],
        [("a", 2)],
        "the claim after release",
    )


@_check
async def _check_cancel_request_survives(store: JobStore) -> None:
    """A cancel requested while a job runs ends it CANCELLED, however the run ends."""
    for job_id in ("requeued", "released", "expired"):
        await _insert(store, _job(job_id))
    claimed = await _claim(store, limit=3)
    _equal(len(claimed), 3, "jobs claimed")
    for job_id in ("requeued", "released", "expired"):
        await store.request_cancel(job_id, now=_at(1))
    await store.requeue(
        "requeued", worker=_WORKER, run_at=_at(50), error="x", now=_at(2)
    )
    await store.release("released", worker=_WORKER, now=_at(3))
    await store.expire_leases(now=_at(10_000))
    for job_id, finished in (("requeued", 2), ("released", 3), ("expired", 10_000)):
        record = await _get(store, job_id)
        _equal(
            (record.state, record.finished_at),
            (JobState.CANCELLED, _at(finished)),
            f"(state, finished_at) of the {job_id} job that had a cancel request",
        )


@_check
async def _check_expire_leases(store: JobStore) -> None:
    """Expired leases make jobs PENDING again, or FAILED without attempts left."""
    await _running(store, "expired")  # lease until 30, attempt 1 of 3
    await _running(store, "last", max_attempts=1)  # lease until 30, attempt 1 of 1
    await _insert(store, _job("fresh", handler="fresh"))
    await _claim(store, handlers=["fresh"], now=10)  # lease until 40
    await _insert(store, _job("pending", run_at=5))
    _equal(
        await store.expire_leases(now=_at(30)),
        [],
        "expire_leases when leases end at now",
    )
    changed = await store.expire_leases(now=_at(35))
    _equal(sorted(_ids(changed)), ["expired", "last"], "the jobs expire_leases changed")
    by_id = {record.id: record for record in changed}
    for job_id, record in by_id.items():
        _equal(
            record, await _get(store, job_id), f"expire_leases' record of {job_id!r}"
        )
    expired = by_id["expired"]
    _equal(
        (expired.state, expired.run_at, expired.lease_until, expired.attempts),
        (JobState.PENDING, _at(35), None, 1),
        "(state, run_at, lease_until, attempts) of a job with attempts left",
    )
    last = by_id["last"]
    _equal(
        (last.state, last.error, last.finished_at, last.lease_until, last.attempts),
        (JobState.FAILED, "lease expired", _at(35), None, 1),
        "(state, error, finished_at, lease_until, attempts) of a job out of attempts",
    )
    _equal(
        (await _get(store, "fresh")).state,
        JobState.RUNNING,
        "a job whose lease runs on",
    )
    _equal((await _get(store, "pending")).state, JobState.PENDING, "a pending job")
    done = await store.complete(
        "expired", worker=_WORKER, state=JobState.SUCCEEDED, finished_at=_at(36)
    )
    _expect(not done, "complete by the worker whose lease expired returned True")
    _equal(await store.expire_leases(now=_at(35)), [], "expire_leases again")


@_check
async def _check_request_cancel(store: JobStore) -> None:
    """Cancel: pending jobs end CANCELLED, running ones get a request, others stay."""
    pending = (await _insert(store, _job("p")))[0]
    record = await store.request_cancel("p", now=_at(4))
    expected = attrs.evolve(pending, state=JobState.CANCELLED, finished_at=_at(4))
    _equal(record, expected, "request_cancel's record of a pending job")
    _equal(await _get(store, "p"), expected, "a cancelled pending job")
    _equal(
        await _claim(store, now=100), [], "claim after the pending job was cancelled"
    )
    running = await _running(store, "r")
    record = await store.request_cancel("r", now=_at(5))
    _equal(
        record,
        attrs.evolve(running, cancel_requested=True),
        "request_cancel's record of a running job",
    )
    _equal(await _get(store, "r"), record, "a running job with a cancel request")
    await _finished(store, "s", JobState.SUCCEEDED, 1)
    succeeded = await _get(store, "s")
    _equal(
        await store.request_cancel("s", now=_at(6)),
        succeeded,
        "request_cancel of a finished job",
    )
    _equal(await _get(store, "s"), succeeded, "a finished job after request_cancel")
    _equal(
        await store.request_cancel("p", now=_at(7)),
        expected,
        "request_cancel of a cancelled job",
    )
    _equal(
        await store.request_cancel("missing", now=_at(7)),
        None,
        "request_cancel of a missing job",
    )


@_check
async def _check_reset(store: JobStore) -> None:
    """Reset puts FAILED and CANCELLED jobs back to PENDING, fresh; others stay."""
    for state in (JobState.FAILED, JobState.CANCELLED):
        job = _job(state.value, handler=f"h-{state.value}")
        await _insert(store, job)
        await _claim(store, handlers=[job.handler])
        await store.request_cancel(job.id, now=_at(1))
        await store.complete(
            job.id,
            worker=_WORKER,
            state=state,
            finished_at=_at(2),
            result="1",
            error="e",
        )
        record = await store.reset(job.id, now=_at(9))
        expected = attrs.evolve(job, run_at=_at(9), seq=(await _get(store, job.id)).seq)
        _equal(record, expected, f"reset's record of a {state.value} job")
        _equal(await _get(store, job.id), expected, f"a {state.value} job after reset")
    await _insert(store, _job("p"))
    await _running(store, "r")
    await _finished(store, "s", JobState.SUCCEEDED, 1)
    for job_id in ("p", "r", "s"):
        before = await _get(store, job_id)
        _equal(
            await store.reset(job_id, now=_at(9)),
            before,
            f"reset of a {before.state.value} job",
        )
        _equal(
            await _get(store, job_id), before, f"a {before.state.value} job after reset"
        )
    _equal(await store.reset("missing", now=_at(9)), None, "reset of a missing job")
    claimed = await _claim(store, handlers=["h-failed"], now=9)
    _equal(
        [(r.id, r.attempts) for r in claimed],
        [("failed", 1)],
        "the claim of a reset job",
    )


async def _purge_setup(store: JobStore) -> None:
    await _insert(store, _job("pending", run_at=100))
    await _running(store, "running")
    # Finished out of seq order: f3 last, at t=30.
    await _finished(store, "f3", JobState.SUCCEEDED, 30)
    await _finished(store, "f1", JobState.FAILED, 10)
    await _finished(store, "f2", JobState.CANCELLED, 20)
    await _finished(store, "f4", JobState.SUCCEEDED, 40)


async def _left(store: JobStore) -> list[str]:
    return sorted(_ids(await store.list(limit=1000)))


@_check
async def _check_purge_all(store: JobStore) -> None:
    """Purge with no bound deletes every finished job, never pending or running."""
    await _purge_setup(store)
    _equal(await store.purge(), 4, "jobs purged")
    _equal(await _left(store), ["pending", "running"], "jobs left")


@_check
async def _check_purge_finished_before(store: JobStore) -> None:
    """Purge deletes the jobs finished strictly before finished_before."""
    await _purge_setup(store)
    _equal(await store.purge(finished_before=_at(20)), 1, "jobs purged before t=20")
    _equal(await _left(store), ["f2", "f3", "f4", "pending", "running"], "jobs left")
    _equal(await store.purge(finished_before=_at(1000)), 3, "jobs purged before t=1000")
    _equal(await _left(store), ["pending", "running"], "jobs left")


@_check
async def _check_purge_keep_latest(store: JobStore) -> None:
    """Purge keeps the keep_latest most recently finished jobs."""
    await _purge_setup(store)
    _equal(await store.purge(keep_latest=2), 2, "jobs purged keeping 2")
    _equal(await _left(store), ["f3", "f4", "pending", "running"], "jobs left")
    _equal(await store.purge(keep_latest=5), 0, "jobs purged keeping 5")
    _equal(await store.purge(keep_latest=0), 2, "jobs purged keeping 0")
    _equal(await _left(store), ["pending", "running"], "jobs left")


@_check
async def _check_purge_states(store: JobStore) -> None:
    """Purge deletes only finished jobs of the given states."""
    await _purge_setup(store)
    _equal(
        await store.purge(states=[JobState.PENDING, JobState.RUNNING]),
        0,
        "pending or running purged",
    )
    _equal(await store.purge(states=[]), 0, "jobs purged for no states")
    _equal(await store.purge(states=[JobState.SUCCEEDED]), 2, "succeeded jobs purged")
    _equal(await _left(store), ["f1", "f2", "pending", "running"], "jobs left")
    purged = await store.purge(
        states=[JobState.FAILED, JobState.RUNNING], keep_latest=0
    )
    _equal(purged, 1, "failed jobs purged")
    _equal(await _left(store), ["f2", "pending", "running"], "jobs left")


@_check
async def _check_purge_both_bounds(store: JobStore) -> None:
    """With both bounds, purge deletes what either bound deletes."""
    await _purge_setup(store)
    purged = await store.purge(finished_before=_at(20), keep_latest=3)
    _equal(purged, 1, "jobs purged before t=20 or beyond the 3 latest")
    _equal(await _left(store), ["f2", "f3", "f4", "pending", "running"], "jobs left")
    purged = await store.purge(finished_before=_at(25), keep_latest=1)
    _equal(purged, 2, "jobs purged before t=25 or beyond the latest")
    _equal(await _left(store), ["f4", "pending", "running"], "jobs left")


@_check
async def _check_delete(store: JobStore) -> None:
    """Delete removes a finished job, never a pending or running one."""
    await _purge_setup(store)
    for job_id in ("f1", "f2", "f3"):
        _expect(await store.delete(job_id), f"delete of finished job {job_id!r}")
        _equal(await store.get(job_id), None, f"get of deleted job {job_id!r}")
    _equal(await store.delete("f1"), False, "delete of a job deleted already")
    _equal(await store.delete("nope"), False, "delete of a missing id")
    _equal(await store.delete("pending"), False, "delete of a pending job")
    _equal(await store.delete("running"), False, "delete of a running job")
    _equal(await _left(store), ["f4", "pending", "running"], "jobs left")
    counts = await store.counts()
    _equal(
        (
            counts[JobState.PENDING],
            counts[JobState.RUNNING],
            counts[JobState.SUCCEEDED],
        ),
        (1, 1, 1),
        "counts (pending, running, succeeded) after deletes",
    )
    _equal(
        counts[JobState.FAILED] + counts[JobState.CANCELLED], 0, "failed or cancelled"
    )
    _equal(
        _ids(await _claim(store, handlers=["h"], now=100)),
        ["pending"],
        "claim after deletes",
    )


@_check
async def _check_disconnected_refuses(store: JobStore) -> None:
    """A disconnected store raises StoreError, and answers again once connected."""
    await _insert(store, _job("a"))
    await store.disconnect()
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("insert", lambda: store.insert([_job("b")])),
        ("get", lambda: store.get("a")),
        ("list", store.list),
        ("counts", store.counts),
        ("claim", lambda: _claim(store)),
        ("next_due", lambda: store.next_due(handlers=None)),
        ("request_cancel", lambda: store.request_cancel("a", now=_at(1))),
        ("delete", lambda: store.delete("a")),
        ("purge", store.purge),
        ("list_schedules", store.list_schedules),
        ("put_schedule", lambda: store.put_schedule(_schedule("s"))),
    ]
    for name, call in calls:
        try:
            await call()
        except StoreError:
            continue
        raise AssertionError(f"{name} of a disconnected store did not raise StoreError")
    await store.connect()
    _equal(_ids(await store.list()), ["a"], "jobs after connecting again")


@_check
async def _check_schedules(store: JobStore) -> None:
    """Schedules are stored whole, listed by name, replaced by name and deleted."""
    every = _schedule("b-every")
    cron = ScheduleRecord(
        name="a-cron",
        handler="digest",
        args='{"to": "ü"}',
        cron="0 8 * * *",
        every=None,
        next_run_at=_at(3600.000001),
        priority=2,
        timeout=1.5,
        retry='{"max_attempts": 2}',
        created_at=_at(-5),
    )
    await store.put_schedule(every)
    await store.put_schedule(cron)
    listed = await store.list_schedules()
    _equal(listed, [cron, every], "list_schedules() (by name)")
    for schedule in listed:
        _check_utc(schedule, f"schedule {schedule.name!r}")
    replacement = attrs.evolve(every, handler="other", every=5.0, next_run_at=_at(5))
    await store.put_schedule(replacement)
    _equal(
        await store.list_schedules(),
        [cron, replacement],
        "schedules after a replacement",
    )
    _expect(
        await store.delete_schedule("a-cron"),
        "delete of a stored schedule returned False",
    )
    _expect(
        not await store.delete_schedule("a-cron"),
        "delete of a deleted schedule returned True",
    )
    _expect(
        not await store.delete_schedule("missing"),
        "delete of a missing schedule returned True",
    )
    _equal(await store.list_schedules(), [replacement], "schedules after a delete")


@_check
async def _check_advance_schedule(store: JobStore) -> None:
    """Advance is a compare-and-set on next_run_at."""
    schedule = _schedule("s", next_run_at=60)
    await store.put_schedule(schedule)
    _expect(
        not await store.advance_schedule("s", expected=_at(59), next_run_at=_at(120)),
        "advance with a wrong expected time returned True",
    )
    _equal(
        await store.list_schedules(), [schedule], "the schedule after a failed advance"
    )
    _expect(
        await store.advance_schedule(
            "s", expected=_at(60), next_run_at=_at(120.000001)
        ),
        "advance with the right expected time returned False",
    )
    advanced = attrs.evolve(schedule, next_run_at=_at(120.000001))
    _equal(await store.list_schedules(), [advanced], "the schedule after an advance")
    _expect(
        not await store.advance_schedule("s", expected=_at(60), next_run_at=_at(180)),
        "a second advance from the same tick returned True",
    )
    _expect(
        await store.advance_schedule(
            "s", expected=_at(120.000001), next_run_at=_at(180)
        ),
        "advance from the new time returned False",
    )
    _expect(
        not await store.advance_schedule(
            "missing", expected=_at(60), next_run_at=_at(120)
        ),
        "advance of a missing schedule returned True",
    )


@_check
async def _check_advance_schedule_concurrent(store: JobStore) -> None:
    """Of concurrent advances of one tick, exactly one succeeds."""
    await store.put_schedule(_schedule("s", next_run_at=60))
    wins: list[int] = []

    async def advance(n: int) -> None:
        if await store.advance_schedule(
            "s", expected=_at(60), next_run_at=_at(120 + n)
        ):
            wins.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(advance, n)
    _equal(len(wins), 1, "concurrent advances that succeeded")
    [schedule] = await store.list_schedules()
    _equal(
        schedule.next_run_at,
        _at(120 + wins[0]),
        "next_run_at after the winning advance",
    )


@_check
async def _check_reconnect_keeps_data(store: JobStore) -> None:
    """Disconnecting and connecting again keeps jobs, schedules and seq order."""
    await _insert(store, _job("p"))
    await _running(store, "r")
    await _finished(store, "f", JobState.FAILED, 3)
    await store.put_schedule(_schedule("s"))
    jobs = await store.list()
    counts = await store.counts()
    schedules = await store.list_schedules()
    await store.disconnect()
    await store.connect()
    _equal(await store.list(), jobs, "jobs after reconnecting")
    _equal(await store.counts(), counts, "counts after reconnecting")
    _equal(await store.list_schedules(), schedules, "schedules after reconnecting")
    [new] = await _insert(store, _job("n"))
    _expect(
        new.seq > max(job.seq for job in jobs),
        "a job inserted after reconnecting gets a higher seq",
    )
    _expect(
        await store.complete(
            "r", worker=_WORKER, state=JobState.SUCCEEDED, finished_at=_at(4)
        ),
        "complete of a job claimed before reconnecting returned False",
    )


@_check
async def _check_checkpoints(store: JobStore) -> None:
    """Every method is a checkpoint."""
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("connect", store.connect),
        ("insert", lambda: store.insert([_job("a"), _job("b", run_at=10)])),
        ("insert (duplicate)", lambda: store.insert([_job("a")])),
        ("insert (empty)", lambda: store.insert([])),
        ("get", lambda: store.get("a")),
        ("list", store.list),
        ("counts", store.counts),
        ("claim", lambda: _claim(store, limit=1)),
        ("claim (limit=0)", lambda: _claim(store, limit=0)),
        ("claim (no handlers)", lambda: _claim(store, handlers=[])),
        ("next_due", lambda: store.next_due(handlers=None)),
        ("next_due (no handlers)", lambda: store.next_due(handlers=[])),
        (
            "renew",
            lambda: store.renew(worker=_WORKER, job_ids=["a"], lease_until=_at(60)),
        ),
        ("release", lambda: store.release("a", worker=_WORKER, now=_at(1))),
        (
            "requeue",
            lambda: store.requeue(
                "a", worker=_WORKER, run_at=_at(0), error=None, now=_at(0)
            ),
        ),
        (
            "complete",
            lambda: store.complete(
                "a", worker=_WORKER, state=JobState.SUCCEEDED, finished_at=_at(1)
            ),
        ),
        (
            "complete_and_claim",
            lambda: _complete_and_claim(
                store, [JobEnd.finished("a", JobState.SUCCEEDED, at=_at(1))], limit=1
            ),
        ),
        ("complete_and_claim (nothing)", lambda: _complete_and_claim(store, [])),
        ("expire_leases", lambda: store.expire_leases(now=_at(100))),
        ("request_cancel", lambda: store.request_cancel("b", now=_at(2))),
        ("reset", lambda: store.reset("b", now=_at(3))),
        ("purge", store.purge),
        ("delete", lambda: store.delete("b")),
        ("delete (missing)", lambda: store.delete("nope")),
        ("put_schedule", lambda: store.put_schedule(_schedule("s"))),
        ("list_schedules", store.list_schedules),
        (
            "advance_schedule",
            lambda: store.advance_schedule("s", expected=_at(60), next_run_at=_at(120)),
        ),
        ("delete_schedule", lambda: store.delete_schedule("s")),
        ("disconnect", store.disconnect),
    ]
    for name, call in calls:
        try:
            with trio.testing.assert_checkpoints():
                await call()
        except AssertionError:
            raise AssertionError(f"{name} is not a checkpoint") from None
