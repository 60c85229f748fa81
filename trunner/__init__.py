"""trunner: Chromium's threading-and-tasks model for Trio.

Post tasks to task runners instead of spawning raw tasks: sequenced runners
(a logical thread), parallel runners (bounded concurrency), thread runners
(thread affinity), with delays, repeats, replies, priorities and shutdown
behaviours, under structured concurrency.
"""

from __future__ import annotations

from ._abc import RunnerStatistics as RunnerStatistics
from ._abc import TaskRunner as TaskRunner
from ._context import current_runner as current_runner
from ._context import current_scheduler as current_scheduler
from ._errors import NoCurrentRunnerError as NoCurrentRunnerError
from ._errors import NoCurrentSchedulerError as NoCurrentSchedulerError
from ._errors import PoolClosedError as PoolClosedError
from ._errors import QueueFullError as QueueFullError
from ._errors import ResourceUnavailableError as ResourceUnavailableError
from ._errors import RunnerClosedError as RunnerClosedError
from ._errors import SequenceViolationError as SequenceViolationError
from ._errors import TaskCancelledError as TaskCancelledError
from ._errors import TaskTimeoutError as TaskTimeoutError
from ._errors import TrunnerError as TrunnerError
from ._handle import RepeatingHandle as RepeatingHandle
from ._handle import TaskHandle as TaskHandle
from ._hooks import Middleware as Middleware
from ._hooks import TaskHooks as TaskHooks
from ._limiter import LimiterStatistics as LimiterStatistics
from ._metrics import RunnerMetrics as RunnerMetrics
from ._metrics import Summary as Summary
from ._parallel import ParallelTaskRunner as ParallelTaskRunner
from ._process import ProcessTaskRunner as ProcessTaskRunner
from ._ratelimit import RateLimit as RateLimit
from ._resource_pool import PoolStatistics as PoolStatistics
from ._resource_pool import ResourcePool as ResourcePool
from ._resource_pool import open_resource_pool as open_resource_pool
from ._results import DropPolicy as DropPolicy
from ._results import ResultSubscription as ResultSubscription
from ._results import TaskResult as TaskResult
from ._retry import RetryPolicy as RetryPolicy
from ._run_all import run_all as run_all
from ._scheduler import RunnerOptions as RunnerOptions
from ._scheduler import Scheduler as Scheduler
from ._scheduler import open_parallel_runner as open_parallel_runner
from ._scheduler import open_process_runner as open_process_runner
from ._scheduler import open_scheduler as open_scheduler
from ._scheduler import open_sequenced_runner as open_sequenced_runner
from ._scheduler import open_thread_runner as open_thread_runner
from ._sequence import SequenceChecker as SequenceChecker
from ._sequence import SequenceLocal as SequenceLocal
from ._sequenced import SequencedTaskRunner as SequencedTaskRunner
from ._thread import SingleThreadTaskRunner as SingleThreadTaskRunner
from ._traits import MissedTicks as MissedTicks
from ._traits import Priority as Priority
from ._traits import RepeatMode as RepeatMode
from ._traits import ShutdownBehavior as ShutdownBehavior
from ._traits import TaskState as TaskState
from ._traits import TaskTraits as TaskTraits
from ._util import fixup_module_metadata as _fixup_module_metadata
from ._version import __version__ as __version__

_fixup_module_metadata(__name__, globals())
del _fixup_module_metadata
