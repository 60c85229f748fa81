"""A job's RetryPolicy is stored by class names: unfindable classes are refused."""

from __future__ import annotations

import pytest

import trunner
from trunner.jobs._job import RetrySpec


class ModuleLevelError(Exception):
    pass


def test_retry_on_class_defined_in_a_function_is_refused() -> None:
    # Issue 8: accepted at submit, then every worker fell back to Exception.
    class LocalError(Exception):
        pass

    policy = trunner.RetryPolicy(max_attempts=3, retry_on=(LocalError,))
    with pytest.raises(ValueError, match=r"retry_on class .*LocalError.* cannot be"):
        RetrySpec.from_policy(policy)


def test_retry_on_module_level_class_is_stored_by_name() -> None:
    policy = trunner.RetryPolicy(max_attempts=3, retry_on=(ModuleLevelError,))
    spec = RetrySpec.from_policy(policy)
    assert spec.retry_on == (f"{__name__}.ModuleLevelError",)
