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
import contextlib, json, runpy, sys
before = set(sys.modules)
{code}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def modules_loaded_by(code: str) -> set[str]:
    """The modules that ``code`` loads, in a fresh interpreter.

    ``code`` may use ``contextlib``, ``runpy`` and ``sys``, and print: the
    list of modules is the last line of the output.
    """
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(code=code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return set(loaded)


def test_import_trunner_loads_no_test_tools_and_no_optional_parts() -> None:
    loaded = modules_loaded_by("import trunner")
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
    "module", ["trunner.jobs", "trunner.jobs._cli", "trunner.jobs._postgres"]
)
def test_optional_parts_load_no_test_tools(module: str) -> None:
    pytest.importorskip(module)
    loaded = modules_loaded_by(f"import {module}")
    assert "trio.testing" not in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"pytest", "_pytest"}}
