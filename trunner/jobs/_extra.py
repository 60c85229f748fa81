"""Fail at ``import trunner.jobs``, naming the extra, when its dependency is missing.

``trunner.jobs`` imports this module before any other of its own. It only
looks for cattrs, without importing it: the package loads its parts (and
cattrs) on first use.
"""

from __future__ import annotations

import importlib.util

from .._util import missing_extra

if importlib.util.find_spec("cattrs") is None:  # pragma: no cover  # in a subprocess
    _missing = ModuleNotFoundError("No module named 'cattrs'", name="cattrs")
    raise missing_extra(_missing, "jobs", "trunner.jobs")
