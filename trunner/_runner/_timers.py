"""The timer heap of a runner: delayed and repeating tasks, one timer task.

One task serves every timer of the runner, from its first timer until the
runner closes: it sleeps in a cancel scope whose deadline tracks the earliest
entry of the heap (infinity when the heap is empty). A timer is a heap entry,
``(deadline, sequence number, entry)``, not a sleeping task: a runner with many
pending timers costs little memory, and one wake-up serves every timer due.
Cancelling a delayed task marks its handle; its entry is dropped when it comes
up.
"""

# pyright: reportPrivateUsage=false
# The heap fires and re-arms TaskHandle and RepeatingHandle records, whose
# fields are shared by the parts of a runner; none of this is public API.

from __future__ import annotations

import functools
import heapq
import math
from typing import TYPE_CHECKING, Final

import attrs
import trio

from .._handle import WAITS_TIMER, RepeatingHandle, TaskHandle, next_id
from .._traits import MissedTicks, RepeatMode, TaskState
from ._ledger import CLOSED

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._options import TaskOptions
    from .._util import AnyCallable
    from ._ledger import Ledger

_PENDING: Final = TaskState.PENDING

_SKIPPED: Final = TaskState.SKIPPED

# A timer: (deadline, sequence number, delayed task or repeating task).
Timer = tuple[float, int, "TaskHandle[object] | RepeatingHandle"]

#: Dead heap entries tolerated before a compaction is considered.
COMPACT_AT: Final = 64


def _is_armed(entry: TaskHandle[object] | RepeatingHandle) -> bool:
    # Whether a heap entry will still fire.
    if isinstance(entry, TaskHandle):
        return entry._state is _PENDING
    return not entry._stopped


@attrs.define(eq=False)
class TimerHeap:
    """The delayed and repeating tasks of a runner, and the task serving them."""

    nursery: trio.Nursery
    name: str
    ledger: Ledger
    # Callbacks of the runner: queue a due handle (honouring a close under
    # way), and post a run of a repeating task (None if the runner is closed).
    admit: Callable[[TaskHandle[object]], None]
    post_internal: Callable[
        [AnyCallable, tuple[object, ...], TaskOptions | None],
        TaskHandle[object] | None,
    ]
    heap: list[Timer] = attrs.field(factory=list[Timer])
    # Repeating tasks that have not stopped.
    repeating: set[RepeatingHandle] = attrs.field(factory=set[RepeatingHandle])
    scope: trio.CancelScope | None = None
    active: bool = False
    # Heap entries of cancelled delayed tasks and stopped repeating tasks, left
    # in place (lazy deletion) until the heap is compacted or they come up.
    dead: int = 0

    def delay(self, handle: TaskHandle[object], seconds: float) -> None:
        """Arm the timer of a new delayed task, however and wherever it was posted.

        The one place the rule is kept: a delayed task posted while the runner
        closes (by one of its own tasks, from any thread) is skipped at once,
        whatever its delay and traits, as those not yet due at the close were.
        """
        if self.ledger.phase:
            self.ledger.finish_unstarted(handle, _SKIPPED)
            return
        handle._flags = WAITS_TIMER
        self.ledger.delayed += 1
        self.push(trio.current_time() + seconds, handle._id, handle)

    def add_repeating(self, repeating: RepeatingHandle, first: float) -> None:
        """Start ``repeating``, its first run due at ``first``."""
        self.repeating.add(repeating)
        self.push(first, next_id(), repeating)

    def push(
        self, deadline: float, seq: int, entry: TaskHandle[object] | RepeatingHandle
    ) -> None:
        """Add a timer; start the timer task or move its deadline."""
        heapq.heappush(self.heap, (deadline, seq, entry))
        if not self.active:
            self.active = True
            self.nursery.start_soon(self.run, name=f"{self.name}-timers")
        elif self.scope is not None and deadline < self.scope.deadline:
            self.scope.deadline = deadline

    def dropped(self) -> None:
        """Count a heap entry that will never fire; compact when they abound.

        Cancelled timers are left in the heap (removing one is O(n)) and
        skipped when they come up; but 200k hour-long timers cancelled at once
        would hold their memory for an hour. Once dead entries are more than
        half the heap, it is rebuilt without them: O(n), amortised O(1) per
        cancel.
        """
        self.dead += 1
        heap = self.heap
        if self.dead > COMPACT_AT and 2 * self.dead > len(heap):
            # In place: the timer task holds the same list.
            heap[:] = [entry for entry in heap if _is_armed(entry[2])]
            heapq.heapify(heap)
            self.dead = 0

    def find(self, task_id: int) -> TaskHandle[object] | None:
        """Return the delayed task with id ``task_id``, if it waits here."""
        for _, _, entry in self.heap:
            if isinstance(entry, TaskHandle) and entry._id == task_id:
                return entry
        return None

    async def run(self) -> None:
        """Be the timer task: fire due timers until the runner closes."""
        heap = self.heap
        try:
            while self.ledger.phase != CLOSED:
                deadline = heap[0][0] if heap else math.inf
                with trio.CancelScope(deadline=deadline) as scope:
                    self.scope = scope
                    await trio.sleep_forever()
                self.scope = None
                now = trio.current_time()
                while heap and heap[0][0] <= now:
                    _, _, entry = heapq.heappop(heap)
                    if isinstance(entry, TaskHandle):
                        self._fire_delayed(entry)
                    else:
                        self._fire_repeating(entry)
        finally:
            self.scope = None
            self.active = False

    def _fire_delayed(self, handle: TaskHandle[object]) -> None:
        if handle._state is not _PENDING:  # cancelled while it waited
            self.dead = max(0, self.dead - 1)
            return
        handle._flags = 0
        self.ledger.delayed -= 1
        handle._queued_at = self.ledger.now()
        self.admit(handle)

    def _fire_repeating(self, repeating: RepeatingHandle) -> None:
        if repeating._stopped:
            self.dead = max(0, self.dead - 1)
            return
        run = self.post_internal(repeating._fn, repeating._args, repeating._opts)
        if run is None:
            repeating.stop()
            return
        repeating._current = run
        run.add_done_callback(functools.partial(self._rearm, repeating))

    def _rearm(self, repeating: RepeatingHandle, run: TaskHandle[object]) -> None:
        del run
        if repeating._stopped or self.ledger.phase:
            repeating.stop()  # while _current is set: it is not in the heap
            repeating._current = None
            return
        repeating._current = None
        end = trio.current_time()
        interval = repeating._interval
        if repeating._mode is RepeatMode.FIXED_DELAY:
            repeating._tick += 1
            self.push(end + interval, next_id(), repeating)
            return
        anchor = repeating._anchor
        tick = repeating._tick + 1
        deadline = anchor + tick * interval
        if end > deadline:
            # The run overran the next slot. The first tick not in the past:
            upcoming = tick + math.ceil((end - deadline) / interval)
            if repeating._missed is MissedTicks.SKIP:
                tick = upcoming
                deadline = anchor + tick * interval
            elif repeating._missed is MissedTicks.COALESCE:
                tick = upcoming - 1
                deadline = end
            # BURST: run the next tick now, and the ones after it back to back.
        repeating._tick = tick
        self.push(deadline, next_id(), repeating)

    def clear(self, state: TaskState) -> None:
        """Drop every timer: delayed tasks end with ``state``, repeats stop."""
        # Emptied in place: the timer task holds the same list and ends on it.
        entries = list(self.heap)
        self.heap.clear()
        ledger = self.ledger
        for _, _, entry in entries:
            if isinstance(entry, TaskHandle) and entry._state is _PENDING:
                ledger.delayed -= 1
                entry._flags = 0
                ledger.finish_unstarted(entry, state)
        # Every repeating task stops, also those whose run is queued or running
        # (they are not in the heap then, and would re-arm at the run's end).
        for repeating in list(self.repeating):
            repeating.stop()
        self.dead = 0
        if self.scope is not None:
            self.scope.cancel()
