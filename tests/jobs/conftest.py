"""The durable jobs' tests need the ``trunner[jobs]`` extra: skipped without it."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest.importorskip(
    "cattrs", reason="needs the 'jobs' extra: pip install 'trunner[jobs]'"
)
pytest.importorskip(
    "rich", reason="needs the 'jobs' extra: pip install 'trunner[jobs]'"
)


@pytest.fixture
def collect_driver_garbage() -> Iterator[None]:
    """Collect the Redis driver's garbage after the test (see DRIVER_GARBAGE)."""
    yield
    gc.collect()
