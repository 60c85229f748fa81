"""The durable jobs' tests need the ``trunner[jobs]`` extra: skipped without it."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "cattrs", reason="needs the 'jobs' extra: pip install 'trunner[jobs]'"
)
pytest.importorskip(
    "rich", reason="needs the 'jobs' extra: pip install 'trunner[jobs]'"
)
