"""What ``import trunner`` loads: the core only, never test tools or extras.

Each check runs in a fresh interpreter, since this one has pytest and much
more loaded already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Third-party top-level packages the core may load: its dependencies and theirs.
_CORE_DEPENDENCIES = frozenset(
    {
        "attr",
        "attrs",
        "exceptiongroup",
        "idna",
        "outcome",
        "sniffio",
        "sortedcontainers",
        "trio",
        "trio_util",
        "async_generator",
    }
)

_PROBE = """
import json, sys
before = set(sys.modules)
import {module}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _modules_loaded_by(module: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(result.stdout)
    return set(loaded)


def test_import_trunner_loads_no_test_tools_and_no_optional_parts() -> None:
    loaded = _modules_loaded_by("trunner")
    # trio.testing imports pytest when it is installed: seconds at start-up.
    assert "trio.testing" not in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"pytest", "_pytest"}}
    optional = ("trunner.jobs", "trunner.service", "trunner.contrib", "trunner.testing")
    assert not {m for m in loaded if m.startswith(optional)}
    stdlib = sys.stdlib_module_names
    third_party = {
        top
        for top in (m.split(".")[0] for m in loaded)
        if top not in stdlib and not top.startswith("_") and top != "trunner"
    }
    assert third_party <= _CORE_DEPENDENCIES


@pytest.mark.parametrize(
    "module", ["trunner.jobs", "trunner._cli", "trunner.jobs._postgres"]
)
def test_optional_parts_load_no_test_tools(module: str) -> None:
    pytest.importorskip(module)
    loaded = _modules_loaded_by(module)
    assert "trio.testing" not in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"pytest", "_pytest"}}
