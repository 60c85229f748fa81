"""The result fan-out of a runner: subscriptions, BLOCK backlog, drops.

Every task that ends makes one `TaskResult` when someone listens (an
``on_finish`` hook or a subscriber); `ResultFanout.publish` offers it to each
subscription. A `DropPolicy.BLOCK` subscriber without room makes the runner's
consumer wait before it runs its next task (`ResultFanout.deliver_blocked`);
results made outside a consumer (tasks skipped at close) are buffered instead.
"""

# pyright: reportPrivateUsage=false
# result_of reads the fields of a TaskHandle, the record every part of a runner
# shares: going through its public properties would cost a call per field on
# the path of every task that has a listener.

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

import attrs

from .._results import DropPolicy, ResultSubscription, TaskResult
from .._traits import TaskState
from .._util import check_optional_count

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._handle import TaskHandle

_SUCCEEDED: Final = TaskState.SUCCEEDED

# TaskResult is a frozen attrs class: its __init__ costs a keyword call and
# nine frozen-bypassing setattr calls, 14,000 instructions (callgrind), and
# setting its slots through their descriptors' __set__ still 8,400. A result
# is made for every task that ends while someone listens, so it is made here
# as a draft: an instance of a private subclass that adds no slot and stores
# attributes plainly (plain slot stores, which CPython specialises), whose
# class is then set to TaskResult; 2,400 instructions, and the object is the
# same as TaskResult's __init__ makes (tests/test_results.py compares them).
# CPython allows the assignment because the draft adds nothing to the layout.
if TYPE_CHECKING:

    class _Draft:
        """What the type checkers see of a draft: attributes that can be set."""

        def __setattr__(self, name: str, value: object) -> None: ...

else:
    _Draft = type(
        "TaskResultDraft",
        (TaskResult,),
        {
            "__slots__": (),
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
        },
    )

_new: Final = object.__new__


def result_of(handle: TaskHandle[object], name: str) -> TaskResult:
    """Return the `TaskResult` of an ended ``handle`` called ``name``."""
    state = handle._state
    draft = _new(_Draft)
    draft.task_id = handle._id
    draft.name = name
    draft.state = state
    draft.queued_at = handle._queued_at
    draft.finished_at = handle._finished_at
    started: float | None
    if state is _SUCCEEDED:
        draft.value = handle._result
        draft.error = None
        started = handle._started_at
    else:
        draft.value = None
        draft.error = handle._exception()
        started = getattr(handle, "_started_at", None)  # unset if it never started
    draft.started_at = started
    draft.attempts = 0 if started is None else handle._attempts
    # The draft becomes what it stands for: the point of a draft.
    draft.__class__ = TaskResult  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    return draft  # type: ignore[return-value]  # pyright: ignore[reportReturnType]  # a TaskResult now


@attrs.define(eq=False)
class ResultFanout:
    """The subscriptions to a runner's results."""

    # Whether the runner has closed and its machinery ended: a subscription's
    # iteration then ends once its buffer is empty.
    is_closed: Callable[[], bool]
    # Called when the subscriptions change: the runner re-derives whether
    # someone must hear of every task's end.
    changed: Callable[[], None]
    subscriptions: list[ResultSubscription] = attrs.field(
        factory=list[ResultSubscription]
    )
    # Results a BLOCK subscriber had no room for, delivered by the consumers.
    blocked: deque[tuple[ResultSubscription, TaskResult]] = attrs.field(
        factory=deque[tuple[ResultSubscription, TaskResult]]
    )
    #: Results subscribers missed because their buffer was full.
    dropped: int = 0

    def subscribe(self, buffer: int, policy: DropPolicy) -> ResultSubscription:
        """Be `TaskRunner.subscribe_results`: check, add and return a subscription."""
        size = check_optional_count("buffer", buffer)
        if size is None:
            raise TypeError("buffer must be a positive int")
        if not isinstance(policy, DropPolicy):
            raise TypeError(f"policy must be a DropPolicy, not {policy!r}")
        subscription = ResultSubscription(
            size,
            policy,
            unsubscribe=self.unsubscribe,
            count_dropped=self.count_dropped,
            source_closed=self.is_closed,
        )
        self.subscriptions.append(subscription)
        self.changed()
        return subscription

    def unsubscribe(self, subscription: ResultSubscription) -> None:
        """Remove ``subscription``; idempotent."""
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)
        self.changed()

    def count_dropped(self) -> None:
        """Count one result a subscriber missed."""
        self.dropped += 1

    def publish(self, result: TaskResult, *, in_consumer: bool) -> None:
        """Offer ``result`` to every subscription.

        A BLOCK subscriber without room gets it later: from the consumer that
        ended the task (``in_consumer``), which waits for room before its next
        task, or else at once, beyond its buffer size.
        """
        for subscription in self.subscriptions:
            if not subscription.offer(result):
                if in_consumer:
                    self.blocked.append((subscription, result))
                else:
                    subscription.force(result)

    async def deliver_blocked(self) -> None:
        """Wait until BLOCK subscribers have taken the results they had no room for."""
        blocked = self.blocked
        try:
            while blocked:
                subscription, result = blocked[0]
                await subscription.wait_room()
                if blocked and blocked[0][1] is result:
                    blocked.popleft()
                    if not subscription.offer(result):
                        subscription.force(result)
        finally:
            # Cancelled: no result is lost, the subscribers get them all the same.
            while blocked:
                subscription, result = blocked.popleft()
                subscription.force(result)

    def wake(self) -> None:
        """Wake every subscriber's reader: the runner has closed."""
        for subscription in self.subscriptions:
            subscription.wake()
