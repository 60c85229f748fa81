"""The exception hierarchy of trunner (STYLE.md section 6)."""

from __future__ import annotations

import trio


class TrunnerError(Exception):
    """Base class of every error that trunner raises."""


class NoCurrentRunnerError(TrunnerError, RuntimeError):
    """`current_runner` was called outside a task of any runner."""


class NoCurrentSchedulerError(NoCurrentRunnerError):
    """`current_scheduler` was called outside an open scheduler."""


class RunnerClosedError(TrunnerError, trio.ClosedResourceError):
    """A task was posted to a runner that is closed or closing.

    It is also a `trio.ClosedResourceError`, so code written for trio's channels
    keeps working.
    """


class PoolClosedError(RunnerClosedError):
    """A task was given to a `ResourcePool` that has been stopped or killed."""


class QueueFullError(TrunnerError, trio.WouldBlock):
    """`~TaskRunner.post_task` found a bounded runner (``max_pending=``) full.

    It is also a `trio.WouldBlock`; use `~TaskRunner.send_task` to wait for room.
    """


class SequenceViolationError(TrunnerError, RuntimeError):
    """A `SequenceChecker` was used off the sequence it is bound to."""


class TaskCancelledError(TrunnerError):
    """The result of a task that was cancelled or skipped was requested."""


class TaskTimeoutError(TrunnerError, TimeoutError):
    """An attempt of a task ran past its ``timeout=``.

    It is a `TimeoutError`, hence an `OSError`: a `RetryPolicy` whose
    ``retry_on`` covers either retries it.
    """


class ResourceUnavailableError(TrunnerError):
    """A `ResourcePool` could not make a resource to run a task on.

    Raised to callers waiting in the queue, and to new `ResourcePool.queue_task`
    calls, once ``create()`` has failed several times in a row while no worker
    holds a resource. The pool keeps trying in the background and accepts
    tasks again after its next successful ``create()``. The last error of
    ``create()`` is the ``__cause__``.
    """
