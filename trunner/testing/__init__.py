"""Helpers for testing code that uses trunner, in virtual time.

`run_until_idle` drives runners to quiescence without moving the clock; the
pytest plugin `trunner.testing.pytest_plugin` provides a ``scheduler``
fixture that runs under pytest-trio's ``autojump_clock``.
"""

from __future__ import annotations

from .._util import fixup_module_metadata as _fixup
from ._idle import run_until_idle as run_until_idle
from ._store_checks import check_job_store as check_job_store
from ._store_checks import job_store_checks as job_store_checks

_fixup(__name__, globals())
del _fixup
