"""The machinery the metric bridges share: runners and schedulers read from any thread.

`RunnerSet` holds the runners and schedulers a bridge exports, and reads their
statistics and metrics on their own Trio thread; `COUNTERS` and `GAUGES` are
the table of what both bridges export.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Final, final

import attrs
import outcome
import trio

from .._abc import TaskRunner
from .._scheduler import Scheduler

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._abc import RunnerStatistics
    from .._metrics import RunnerMetrics

_logger: Final = logging.getLogger("trunner.contrib")

#: Real seconds a reader in another thread waits for the Trio thread to answer.
_READ_TIMEOUT: Final = 5.0

#: The counters both metric bridges export: (name, OpenTelemetry unit,
#: description, `trunner.RunnerMetrics` field). Names are dot-separated as in
#: OpenTelemetry; the Prometheus collector joins the parts with ``_``.
COUNTERS: Final = (
    ("tasks.succeeded", "{task}", "Tasks that ended SUCCEEDED.", "succeeded"),
    ("tasks.failed", "{task}", "Tasks that ended FAILED.", "failed"),
    ("tasks.cancelled", "{task}", "Tasks that ended CANCELLED.", "cancelled"),
    (
        "tasks.skipped",
        "{task}",
        "Tasks that ended SKIPPED (never started).",
        "skipped",
    ),
    ("tasks.rejected", "{task}", "Posts refused by a full bounded runner.", "rejected"),
    ("task.retries", "{attempt}", "Attempts that were retries.", "retries"),
    ("task.timeouts", "{attempt}", "Attempts that ran past their timeout.", "timeouts"),
    (
        "results.dropped",
        "{result}",
        "Results a subscriber missed because its buffer was full.",
        "dropped_results",
    ),
)

#: The task counts both bridges export as gauges: (name, description,
#: `trunner.RunnerStatistics` field), named as in `COUNTERS`.
GAUGES: Final = (
    ("tasks.pending", "Tasks queued, waiting to start.", "pending"),
    ("tasks.running", "Tasks started and not yet ended.", "running"),
    ("tasks.delayed", "Delayed tasks not yet due.", "delayed"),
)

#: What a metric bridge reports on: a runner, or every runner of a scheduler.
_Source = TaskRunner | Scheduler


@final
@attrs.frozen
class RunnerSnapshot:
    # One runner's figures, read together on the Trio thread.
    name: str
    metrics: RunnerMetrics
    statistics: RunnerStatistics


@final
@attrs.frozen
class _Origin:
    # Where a source lives: its run's token and the thread that run is on.
    token: trio.lowlevel.TrioToken
    thread: int


def _check_source(source: object) -> _Source:
    if not isinstance(source, (TaskRunner, Scheduler)):
        raise TypeError(f"expected a TaskRunner or a Scheduler, not {source!r}")
    return source


@final
class RunnerSet:
    """Runners and schedulers whose metrics can be read from any thread.

    A runner's metrics belong to the Trio thread: `TaskRunner.metrics` folds
    samples that the runner's tasks append to at the same time. Exporters read
    them from their own threads (Prometheus' HTTP server, OpenTelemetry's
    periodic reader), so `snapshot` hops to the Trio thread of each source
    (through its `trio.lowlevel.TrioToken`) and reads there, unless it already
    is on that thread or that run has ended (then nothing mutates the runner
    any more and it reads in place). If the Trio thread does not answer within
    5 seconds, it is blocked (perhaps waiting for the very thread that
    reads), and the previous reading of its runners is reported instead.

    Runners are reported while their scheduler knows them (until they have
    finished closing). A runner that has finished closing is reported one
    last time, with its final values, by the next `snapshot`, and then
    forgotten; so is a runner that left a scheduler source.
    """

    def __init__(self, sources: Iterable[object]) -> None:
        # Guards the dicts below. Never held while waiting for the Trio thread,
        # which may itself be waiting for it in `add`.
        self._lock = threading.Lock()
        self._sources: dict[_Source, _Origin] = {}
        # Per scheduler source: the runners the last snapshot found.
        self._known: dict[Scheduler, tuple[TaskRunner, ...]] = {}
        self._warned: set[str] = set()
        # The last reading of each run, for when its Trio thread does not answer.
        self._last: dict[_Origin, list[RunnerSnapshot]] = {}
        self.timeout = _READ_TIMEOUT
        for source in sources:
            self.add(source)

    def add(self, source: object) -> None:
        checked = _check_source(source)
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            raise RuntimeError(
                "add runners and schedulers from the Trio thread that runs them"
            ) from None
        origin = _Origin(token, threading.get_ident())
        with self._lock:
            self._sources[checked] = origin
            if isinstance(checked, Scheduler):
                self._known[checked] = ()

    def remove(self, source: object) -> None:
        checked = _check_source(source)
        with self._lock:
            self._sources.pop(checked, None)
            if isinstance(checked, Scheduler):
                self._known.pop(checked, None)

    def snapshot(self) -> list[RunnerSnapshot]:
        """Read every source's runners, from any thread; one entry per name."""
        with self._lock:
            groups: dict[_Origin, list[_Source]] = {}
            for source, origin in self._sources.items():
                groups.setdefault(origin, []).append(source)
        here = threading.get_ident()
        snapshots: list[RunnerSnapshot] = []
        for origin, sources in groups.items():
            if origin.thread == here:
                # The Trio thread itself, or a thread whose run has ended.
                snapshots += self.read(sources)
                continue
            snapshots += self._read_in_run(origin, sources)
        return self._unique(snapshots)

    def _read_in_run(
        self, origin: _Origin, sources: list[_Source]
    ) -> list[RunnerSnapshot]:
        # Like trio.from_thread.run_sync, but bounded: a Trio thread blocked in
        # a call that waits for this very thread (an exporter's flush, say)
        # must not deadlock the two.
        answered = threading.Event()
        box: list[outcome.Outcome[list[RunnerSnapshot]]] = []

        def read() -> None:
            box.append(outcome.capture(self.read, sources))
            answered.set()

        try:
            origin.token.run_sync_soon(read)
        except trio.RunFinishedError:
            return self.read(sources)  # nothing runs there any more
        if not answered.wait(self.timeout):
            _logger.warning(
                "the Trio thread did not answer within %s s; reporting the "
                "runners' previous values",
                self.timeout,
            )
            with self._lock:
                return self._last.get(origin, [])
        snapshots = box[0].unwrap()
        with self._lock:
            self._last[origin] = snapshots
        return snapshots

    def read(self, sources: list[_Source]) -> list[RunnerSnapshot]:
        # On the Trio thread of `sources`, or after their run has ended.
        runners: dict[TaskRunner, None] = {}
        for source in sources:
            if isinstance(source, TaskRunner):
                runners[source] = None
                if source not in source.scheduler.runners:
                    self._forget(source)  # finished closing: this report is its last
            else:
                live = source.runners
                with self._lock:
                    # Runners that have left since the last snapshot are
                    # reported once more, with their final values.
                    previous = self._known.get(source)
                    if previous is None:
                        continue  # removed since this snapshot began
                    self._known[source] = live
                runners.update(dict.fromkeys(live))
                runners.update(dict.fromkeys(previous))
        return [
            RunnerSnapshot(runner.name, runner.metrics(), runner.statistics())
            for runner in runners
        ]

    def _forget(self, runner: TaskRunner) -> None:
        with self._lock:
            self._sources.pop(runner, None)

    def _unique(self, snapshots: list[RunnerSnapshot]) -> list[RunnerSnapshot]:
        # Two series with the same labels would make the whole export invalid.
        seen: set[str] = set()
        unique: list[RunnerSnapshot] = []
        for snapshot in snapshots:
            if snapshot.name in seen:
                if snapshot.name not in self._warned:
                    self._warned.add(snapshot.name)
                    _logger.warning(
                        "two runners are named %r: only the first is exported; "
                        "give runners unique names (name=...)",
                        snapshot.name,
                    )
                continue
            seen.add(snapshot.name)
            unique.append(snapshot)
        return unique
