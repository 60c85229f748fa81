"""Durable jobs: submitted jobs are stored first, run at least once, survive crashes.

A `JobManager` (from `open_job_manager`) stores jobs in a `JobStore`
(`open_store` picks one from a URL: ``memory://``, ``sqlite:///jobs.db``) and
runs them with the handlers of a `Registry`. Needs the ``trunner[jobs]`` extra.

Importing this package checks that the extra is installed and loads the
errors, the records and the store protocol; the manager, the registry and the
stores (and cattrs) load when one of them is first used, so that the
``trunner`` command, which lives here, answers ``--help`` without them.
"""

from __future__ import annotations

import typing

from .._util import fixup_module_metadata as _fixup
from . import _extra  # first: names the extra if cattrs is missing

# The errors, records and the store protocol load with the package: they are
# light, and other parts (trunner.testing's store checks) import them.
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
from ._store import ChangeSource as ChangeSource
from ._store import ChangeWatcher as ChangeWatcher
from ._store import CompleteResult as CompleteResult
from ._store import JobEnd as JobEnd
from ._store import JobStore as JobStore
from ._store import RenewResult as RenewResult
from ._store import WorkWatcher as WorkWatcher

if typing.TYPE_CHECKING:
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

#: The names loaded on first use, by the module that defines them.
_LAZY = {
    "_manager": ("JobManager", "open_job_manager"),
    "_memory": ("MemoryJobStore",),
    "_open": ("open_store",),
    "_postgres": ("PostgresJobStore", "PostgresWatcher"),
    "_redis": ("RedisJobStore",),
    "_redis_watch": ("RedisWatcher",),
    "_registry": ("HandlerSpec", "Registry"),
    "_sqlite": ("SQLiteJobStore",),
}
_LAZY_NAMES = frozenset(name for names in _LAZY.values() for name in names)


def _load() -> None:
    """Import every name of `_LAZY` into this module, reporting this module.

    All at once, so that each of them says ``trunner.jobs.X`` (in reprs,
    tracebacks, pickles) whichever was used first.
    """
    import importlib

    loaded: dict[str, object] = {}
    for module_name, names in _LAZY.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        loaded.update((name, getattr(module, name)) for name in names)
    _fixup(__name__, loaded)
    globals().update(loaded)


def __getattr__(name: str) -> object:
    # Any other name raises AttributeError, so that `from trunner.jobs import
    # _sqlite` imports the submodule.
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _load()
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES})


_fixup(__name__, globals())
del _extra
