"""A missing extra is named: ``pip install 'trunner[...]'``, never a bare import error.

Each check runs in a fresh interpreter where the extra's module cannot be
imported (``sys.modules[name] = None``), as on a plain ``pip install trunner``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None  # as if not installed
{code}
"""


def _run(code: str, *hidden: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE.format(hidden=hidden, code=code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_trunner_testing_and_its_plugin_work_without_the_jobs_extra() -> None:
    result = _run(
        "import trunner.testing, trunner.testing.pytest_plugin\n"
        "assert 'trunner.jobs' not in sys.modules\n"
        "print(trunner.testing.run_until_idle.__module__)\n"
        "try:\n"
        "    trunner.testing.check_job_store\n"
        "except ModuleNotFoundError as error:\n"
        "    print(error)\n",
        "cattrs",
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "trunner.testing"
    assert "pip install 'trunner[jobs]'" in lines[1]
    assert "trunner.testing.check_job_store" in lines[1]


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [
        ("trunner.jobs", "cattrs", "jobs"),
        ("trunner.contrib.prometheus", "prometheus_client", "prometheus"),
        ("trunner.contrib.otel", "opentelemetry", "otel"),
    ],
)
def test_a_module_without_its_extra_names_the_extra(
    module: str, hidden: str, extra: str
) -> None:
    result = _run(f"import {module}", hidden)

    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: ")
    assert f"{module} needs {hidden!r}" in last
    assert f"pip install 'trunner[{extra}]'" in last


def test_check_job_store_loads_on_first_use() -> None:
    pytest.importorskip("cattrs", reason="needs the 'jobs' extra")
    result = _run(
        "import trunner.testing as t\n"
        "assert 'trunner.jobs' not in sys.modules\n"
        "assert 'check_job_store' in dir(t)\n"
        "t.check_job_store\n"
        "assert 'trunner.jobs' in sys.modules\n"
        "print(t.check_job_store.__module__, t.job_store_checks()[0])\n"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "trunner.testing"
