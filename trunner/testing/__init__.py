"""Helpers for testing code that uses trunner, in virtual time.

`run_until_idle` drives runners to quiescence without moving the clock; the
pytest plugin `trunner.testing.pytest_plugin` provides a ``scheduler``
fixture that runs under pytest-trio's ``autojump_clock``. `check_job_store`
and `job_store_checks`, the conformance suite of job stores, need the
``trunner[jobs]`` extra: they are loaded on first use, so that this module
(and its plugin) work on a plain ``pip install trunner``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._util import fixup_module_metadata as _fixup
from .._util import missing_extra as _missing_extra
from ._idle import run_until_idle as run_until_idle

if TYPE_CHECKING:
    from ._store_checks import check_job_store as check_job_store
    from ._store_checks import job_store_checks as job_store_checks

_LAZY = frozenset({"check_job_store", "job_store_checks"})


def __getattr__(name: str) -> object:
    # The store checks import trunner.jobs, hence its extra: load them on use.
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import _store_checks  # lazily, see above
    except ModuleNotFoundError as error:
        if error.name is None or error.name.startswith("trunner"):
            raise
        raise _missing_extra(error, "jobs", f"trunner.testing.{name}") from None
    value: object = getattr(_store_checks, name)
    globals()[name] = value
    _fixup(__name__, {name: value})
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


_fixup(__name__, globals())
