"""Every development task of trunner, as nox sessions: ``nox -l`` lists them."""

from __future__ import annotations

import os
import pathlib

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.download_python = "never"
nox.options.sessions = ["lint", "typecheck", "tests", "examples", "docs"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
ROOT = pathlib.Path(__file__).parent
EXTRAS = ".[process,jobs,redis,prometheus,otel,service,postgres]"


def install_project(session: nox.Session, *groups: str) -> None:
    requirements: list[str] = []
    for group in groups:
        requirements += nox.project.dependency_groups(PYPROJECT, group)
    session.install("-e", EXTRAS, *requirements)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage and enforce the gate.

    Then ``tests_core`` runs: the core's tests on a plain ``pip install
    trunner``, with no extra.
    """
    session.notify("tests_core", session.posargs)
    install_project(session, "test")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session
def tests_core(session: nox.Session) -> None:
    """Run the tests on trunner installed with no extras (what a plain install has).

    The tests that need an extra skip themselves (``pytest.importorskip`` in the
    conftest of their directory); the others must pass without any extra.
    """
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"))
    extras = ("cattrs", "trio_parallel", "hypercorn", "psycopg")
    session.run(
        "python",
        "-c",
        f"import importlib.util as u; m = [n for n in {extras!r} if u.find_spec(n)]; "
        "assert not m, f'extras installed in the no-extras session: {m}'",
    )
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=["3.11", "3.12", "3.13"])
def tests_all(session: nox.Session) -> None:
    """Run the test suite on every supported Python."""
    install_project(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the demo program: every kind of runner, then durable jobs, narrated."""
    session.install(".[jobs]")
    session.run("python", "examples/demo.py")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example for real, from the installed package, with a timeout."""
    install_project(session)
    for path in sorted((ROOT / "examples").glob("*.py")):
        session.log(f"--- {path.name}")
        session.run("timeout", "120", "python", str(path), external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """Run the pre-commit hooks on every file."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package, tests, examples and this file; check completeness."""
    install_project(session, "typecheck", "bench")
    session.install("nox")
    session.run("mypy")
    session.run("pyright")
    session.run("pyright", "--verifytypes", "trunner", "--ignoreexternal")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation, nitpicky: every warning is an error."""
    install_project(session, "docs")
    session.run(
        "sphinx-build",
        "-n",
        "-W",
        "--keep-going",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks: ratios against baselines measured in the same run."""
    install_project(session, "bench")
    env = {
        "PYTHONHASHSEED": "0",
        **{k: v for k, v in os.environ.items() if k.startswith("TRUNNER")},
    }
    for path in sorted((ROOT / "tests" / "benchmarks").glob("bench_*.py")):
        if session.posargs and not any(arg in path.name for arg in session.posargs):
            continue
        session.log(f"--- {path.name}")
        session.run("python", str(path), env=env)
