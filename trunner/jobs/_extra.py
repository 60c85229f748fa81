"""Fail at ``import trunner.jobs``, naming the extra, when its dependency is missing.

``trunner.jobs`` imports this module before any other of its own.
"""

from __future__ import annotations

from .._util import missing_extra

try:
    import cattrs
except ModuleNotFoundError as error:  # pragma: no cover  # tested in a subprocess
    raise missing_extra(error, "jobs", "trunner.jobs") from None

del cattrs
