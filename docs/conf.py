"""Sphinx configuration of the trunner documentation.

Build it with ``nox -s docs``, or by hand, nitpicky (every warning is an error)::

    sphinx-build -n -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import builtins
import importlib
import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
from sphinx.util.inspect import object_description

import trunner

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.addnodes import pending_xref
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

project = "trunner"
author = "The trunner developers"
copyright = "the trunner developers"  # noqa: A001  # Sphinx's name for it
version = release = trunner.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Single backticks cross-reference (STYLE.md section 8): `trio.Nursery`, `TaskHandle`.
default_role = "obj"
# Resolve unqualified names such as `TaskHandle` against the public package.
default_domain = "py"
primary_domain = "py"

# --------------------------------------------------------------------- autodoc

autodoc_member_order = "bysource"
# Types go into the parameter descriptions; signatures stay readable.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"exclude-members": "__init__, __new__"}
autodoc_preserve_defaults = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# ------------------------------------------------------------------ intersphinx

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "trio": ("https://trio.readthedocs.io/en/stable/", None),
    "attrs": ("https://www.attrs.org/en/stable/", None),
    "outcome": ("https://outcome.readthedocs.io/en/latest/", None),
}
intersphinx_timeout = 10


def _online() -> bool:
    """Whether the inventories can be fetched (``TRUNNER_DOCS_OFFLINE=1`` forces no)."""
    if os.environ.get("TRUNNER_DOCS_OFFLINE", "") not in ("", "0"):
        return False
    try:
        with socket.create_connection(("docs.python.org", 443), timeout=3):
            return True
    except OSError:
        return False


if not _online():
    # Without a network an unreachable inventory is a warning, hence an error
    # under -W: build without intersphinx. The names below then have no target.
    intersphinx_mapping = {}

# Names that only intersphinx can resolve. When the inventories are reachable
# they resolve and these entries do nothing; offline (the build machine has no
# network) they keep the nitpicky build clean. A name belongs here only if it is
# documented by Python, trio, attrs or outcome (Sphinx itself knows the builtins),
# or by a third-party library without an inventory (the last group).
_EXTERNAL = [
    # Python
    "collections.abc.Callable",
    "contextlib.AbstractAsyncContextManager",
    "contextvars.ContextVar",
    "datetime.date",
    "datetime.datetime",
    "functools.partial",
    "hmac.compare_digest",
    "logging",
    "os.PathLike",
    "queue.SimpleQueue",
    "sqlite3",
    "threading.Thread",
    # trio
    "trio.BusyResourceError",
    "trio.Cancelled",
    "trio.CapacityLimiter",
    "trio.ClosedResourceError",
    "trio.WouldBlock",
    "trio.current_time",
    "trio.from_thread",
    "trio.lowlevel.TrioToken",
    "trio.open_nursery",
    "trio.run",
    "trio.testing.MockClock",
    "trio.testing.assert_checkpoints",
    "trio.testing.wait_all_tasks_blocked",
    "trio.to_thread.run_sync",
    # attrs
    "attrs.evolve",
    # outcome
    "outcome.Error",
    "outcome.Outcome",
    "outcome.Value",
    # Annotations of trunner.contrib that autodoc shows unqualified (imported
    # under TYPE_CHECKING); prometheus_client and opentelemetry publish no inventory.
    "CollectorRegistry",
    "Meter",
    "Metric",
    # Annotations of trunner.service; httpx publishes no inventory.
    "httpx.AsyncBaseTransport",
]
nitpick_ignore = [(role, name) for name in _EXTERNAL for role in ("py:class", "py:obj")]
nitpick_ignore_regex = [
    # Type variables, which no inventory documents, however autodoc spells them:
    # ArgsT, *ArgsT, T, trunner._handle.T_co...
    (r"py:class", r"\*?(trunner\.[\w.]+\.)?(ArgsT|RetT|ResourceT|RunnerT|T|T_co|P|R)"),
]

# --------------------------------------------------- public names of private code

# The public packages whose names are defined in private modules and re-exported
# with their __module__ fixed up (trunner._util.fixup_module_metadata).
_PUBLIC_PACKAGES = ["trunner", "trunner.jobs", "trunner.testing"]


def _merge_private_sources(app: Sphinx) -> None:
    """Let autodoc read the source of the private modules behind a public package.

    autodoc reads ``#:`` attribute comments, and the source order that
    ``autodoc_member_order = "bysource"`` needs, from the module named by an
    object's ``__module__``: ``trunner`` for every public name, whose source is
    only the re-exports. Fold the private modules' findings into the analyzer of
    the public package.
    """
    del app
    from sphinx.pycode import ModuleAnalyzer

    for public in _PUBLIC_PACKAGES:
        package = importlib.import_module(public)
        analyzer = ModuleAnalyzer.for_module(public)
        analyzer.analyze()
        root = Path(package.__file__).parent
        # Private modules, and the modules of private packages (_resource_pool/).
        paths = [*root.glob("_*.py"), *root.glob("_*/*.py")]
        for path in sorted(paths):
            if path.name == "__init__.py":
                continue
            parts = path.relative_to(root).with_suffix("").parts
            private = ModuleAnalyzer.for_module(".".join((public, *parts)))
            private.analyze()
            for key, doc in private.attr_docs.items():
                analyzer.attr_docs.setdefault(key, doc)
            offset = len(analyzer.tagorder)
            for name, order in private.tagorder.items():
                analyzer.tagorder.setdefault(name, offset + order)


_PRIVATE_PATH = re.compile(r"^(?P<package>trunner(?:\.[a-z]\w*)*)\._\w+\.(?P<name>.+)$")


def _resolve_private_path(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """Resolve ``trunner._module.Name``, which typing may report, as ``trunner.Name``.

    typing caches generic aliases such as ``TaskHandle[object]`` made at import
    time, before the public names got their public ``__module__``.
    """
    if node.get("refdomain") != "py":
        return None
    match = _PRIVATE_PATH.match(node["reftarget"])
    if match is None:
        return None
    target = f"{match['package']}.{match['name']}"
    return env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], target, node, contnode
    )


#: How annotations imported under TYPE_CHECKING come out (``import datetime as
#: dt``, ``builtins.list`` in classes with a ``list`` method, private aliases).
_SPELLINGS = {
    "dt.": "datetime.",
    "builtins.": "",
    "AnyCallable": "collections.abc.Callable",
}
#: Private names that public docstrings mention: shown as text.
_PRIVATE_NAMES = {"RetrySpec"}


def _resolve_short_name(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | nodes.TextElement | None:
    """Resolve names that the docstrings of one public package give unqualified.

    A docstring of `trunner.jobs` may name `RetryPolicy` (of `trunner`), one of
    `trunner.testing` may name `JobStore` (of `trunner.jobs`): look for the name
    in each public package. Also read the spellings of ``_SPELLINGS`` as what
    they stand for.
    """
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"].lstrip("~")
    for spelling, meaning in _SPELLINGS.items():
        if target.startswith(spelling):
            target = meaning + target.removeprefix(spelling)
            break
    candidates = [target]
    if not target.startswith(("trunner.", "datetime.", "collections.")):
        candidates += [f"{package}.{target}" for package in _PUBLIC_PACKAGES]
    if candidates == [node["reftarget"]]:
        return None
    domain = env.get_domain("py")
    for candidate in candidates:
        found = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
        )
        if found is not None:
            return found
    if intersphinx_mapping:
        from sphinx.ext import intersphinx

        alias = node.deepcopy()
        alias["reftarget"] = target
        found = intersphinx.missing_reference(app, env, alias, contnode)
        if found is not None:
            return found
    if hasattr(builtins, target) or target in _EXTERNAL or target in _PRIVATE_NAMES:
        return contnode  # a builtin, an external name without an inventory, or private
    return None


_INTERNAL_CONSTRUCTOR = re.compile(r"constructors?\s+(is|are)\s+internal")
_ATTRS_DEFAULT = re.compile(r"attr_dict\['(\w+)'\]\.default")


def _fix_class_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str] | None:
    """Tidy the signatures of classes.

    Runners, handles, schedulers and pools are made by the library (STYLE.md
    section 3): their docstrings say that the constructor is internal, and
    they get no arguments. The ``__init__`` that attrs generates names its
    defaults ``attr_dict['x'].default`` in its source, which
    ``autodoc_preserve_defaults`` would show: show the default's repr instead.
    """
    del app, name, options
    if what not in ("class", "exception") or signature is None:
        return None
    if _INTERNAL_CONSTRUCTOR.search(getattr(obj, "__doc__", "") or ""):
        return "", ""
    if isinstance(obj, type) and attrs.has(obj) and "attr_dict[" in signature:
        fields = attrs.fields_dict(obj)

        def default(match: re.Match[str]) -> str:
            value = fields[match[1]].default
            if isinstance(value, tuple) and all(isinstance(v, type) for v in value):
                names = [v.__qualname__ for v in value]  # (Exception,)
                return f"({', '.join(names)}{',' if len(names) == 1 else ''})"
            return object_description(value)

        return _ATTRS_DEFAULT.sub(default, signature), return_annotation or ""
    return None


def setup(app: Sphinx) -> None:
    """Connect the helpers above."""
    app.connect("builder-inited", _merge_private_sources)
    app.connect("missing-reference", _resolve_private_path)
    app.connect("missing-reference", _resolve_short_name)
    app.connect("autodoc-process-signature", _fix_class_signature)


# ----------------------------------------------------------------------- MyST

myst_heading_anchors = 3

# ---------------------------------------------------------------------- HTML

html_theme = "furo"
html_title = f"trunner {release}"
html_static_path: list[str] = []
