"""Durable jobs: submitted jobs are stored first, run at least once, survive crashes.

A `JobManager` (from `open_job_manager`) stores jobs in a `JobStore`
(`open_store` picks one from a URL: ``memory://``, ``sqlite:///jobs.db``) and
runs them with the handlers of a `Registry`. Needs the ``trunner[jobs]`` extra.
"""

from __future__ import annotations

from .._util import fixup_module_metadata as _fixup
from . import _extra  # first: names the extra if cattrs is missing
from ._errors import JobError as JobError
from ._errors import JobExistsError as JobExistsError
from ._errors import JobNotFoundError as JobNotFoundError
from ._errors import JobStateError as JobStateError
from ._errors import Retry as Retry
from ._errors import SerializationError as SerializationError
from ._errors import StoreError as StoreError
from ._errors import StoreInUseError as StoreInUseError
from ._errors import UnknownHandlerError as UnknownHandlerError
from ._job import JobCounts as JobCounts
from ._job import JobInfo as JobInfo
from ._job import JobRecord as JobRecord
from ._job import JobState as JobState
from ._job import Retention as Retention
from ._job import ScheduleRecord as ScheduleRecord
from ._manager import JobManager as JobManager
from ._manager import open_job_manager as open_job_manager
from ._memory import MemoryJobStore as MemoryJobStore
from ._open import open_store as open_store
from ._postgres import PostgresJobStore as PostgresJobStore
from ._postgres import PostgresWatcher as PostgresWatcher
from ._redis import RedisJobStore as RedisJobStore
from ._redis_watch import RedisWatcher as RedisWatcher
from ._registry import HandlerSpec as HandlerSpec
from ._registry import Registry as Registry
from ._sqlite import SQLiteJobStore as SQLiteJobStore
from ._store import CompleteResult as CompleteResult
from ._store import JobEnd as JobEnd
from ._store import JobStore as JobStore
from ._store import RenewResult as RenewResult
from ._store import WorkWatcher as WorkWatcher

_fixup(__name__, globals())
del _fixup, _extra
