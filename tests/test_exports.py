"""The public surface: documented, reported under public modules, not re-exported."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PUBLIC_MODULES = ["trunner", "trunner.jobs", "trunner.testing"]


#: The extra each public module needs, by the module that extra brings.
NEEDS = {"trunner.jobs": "cattrs"}


def public_names(module_name: str) -> dict[str, object]:
    if module_name in NEEDS:
        pytest.importorskip(NEEDS[module_name], reason="needs the 'jobs' extra")
    module = importlib.import_module(module_name)
    # dir(), not vars(): it lists the names a module loads on first use too
    # (those that need a missing extra are left out).
    names: dict[str, object] = {}
    for name in dir(module):
        if name.startswith("_") or name == "annotations":  # __future__'s
            continue
        try:
            value: object = getattr(module, name)
        except ModuleNotFoundError:
            continue
        if not isinstance(value, types.ModuleType):
            names[name] = value
    return names


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    missing = [
        name
        for name, value in public_names(module_name).items()
        if not isinstance(value, (str, int, tuple))
        and not (inspect.getdoc(value) or "").strip()
    ]

    assert missing == []


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_objects_report_a_public_module(module_name: str) -> None:
    private = [
        f"{name} -> {value.__module__}"
        for name, value in public_names(module_name).items()
        if getattr(value, "__module__", module_name).split(".")[-1].startswith("_")
        or "._" in getattr(value, "__module__", "")
    ]

    assert private == []


def test_subpackages_do_not_reexport_each_other() -> None:
    exported = {module: set(public_names(module)) for module in PUBLIC_MODULES}
    overlaps = {
        (a, b): exported[a] & exported[b] - {"__version__"}
        for a in PUBLIC_MODULES
        for b in PUBLIC_MODULES
        if a < b
    }

    assert all(not names for names in overlaps.values()), overlaps


def test_version_is_exported() -> None:
    import trunner

    assert isinstance(trunner.__version__, str)
