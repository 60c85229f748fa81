"""open_store: pick a job store from a URL."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final, cast

from ._memory import MemoryJobStore
from ._sqlite import SQLiteJobStore
from ._urls import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._store import JobStore

#: Schemes served by a backend module that may not exist yet (or whose driver
#: may not be installed): scheme -> (module, what to call the store).
_LAZY: Final = {
    "redis": ("trunner.jobs._redis", "Redis"),
    "rediss": ("trunner.jobs._redis", "Redis"),
    "postgresql": ("trunner.jobs._postgres", "PostgreSQL"),
    "postgres": ("trunner.jobs._postgres", "PostgreSQL"),
}

_SUPPORTED: Final = (
    "memory://, sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "redis://host:port/db, rediss://..., redis+cluster://host:port,..., "
    "postgresql://..."
)


def open_store(url: str) -> JobStore:
    """Make the `JobStore` that ``url`` names, unconnected.

    A `JobManager` connects the store on entry and disconnects it on exit, so
    one store object may serve several managers in turn. Not a checkpoint: no
    connection is made here.

    * ``memory://``: a `MemoryJobStore`, in this process only;
    * ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (the
      SQLAlchemy convention: the path follows the third slash): a
      `SQLiteJobStore` on that file;
    * ``postgresql://user[:password]@host[:port]/dbname[?schema=trunner]``:
      a `PostgresJobStore` in that schema of the database (the query may add
      libpq parameters, such as ``sslmode=require``); psycopg is imported
      only then;
    * ``redis://[[user]:password@]host[:port][/db][?prefix=trunner]``,
      ``rediss://...`` (TLS) and ``redis+cluster://host:port[,host:port...]``:
      a `RedisJobStore`, every key under the hash tag ``{prefix}``; coredis is
      imported only then.

    Args:
        url: the store's URL.

    Returns:
        The store, not yet connected.

    Raises:
        ValueError: if the URL is malformed or its scheme unsupported,
            including ``sqlite:///:memory:`` (an in-memory database cannot be
            shared: use ``memory://``), and for a backend not available in
            this version of trunner.
        ImportError: if the backend's driver is not installed.

    Example::

        store = trunner.jobs.open_store("sqlite:///jobs.db")
        async with trunner.jobs.open_job_manager(store, registry) as jm: ...
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {url!r}")
    shown = redact_url(url)  # messages never show a password
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError(f"{shown!r} is not a store URL; use one of: {_SUPPORTED}")
    scheme = scheme.lower()
    if scheme == "memory":
        if rest not in ("", "/"):
            raise ValueError(
                f"a memory store takes no path or host: use 'memory://', not {shown!r}"
            )
        return MemoryJobStore()
    if scheme == "sqlite":
        return SQLiteJobStore(_sqlite_path(url, rest))
    lazy = _LAZY.get(scheme.partition("+")[0])
    if lazy is not None:
        return _lazy_store(url, *lazy)
    raise ValueError(
        f"unsupported store URL scheme {scheme!r} in {shown!r}; "
        f"use one of: {_SUPPORTED}"
    )


def _sqlite_path(url: str, rest: str) -> str:
    shown = redact_url(url)
    host, slash, path = rest.partition("/")
    if host or not slash:
        raise ValueError(
            f"{shown!r} names a host; a SQLite URL is sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    if path in ("", ":memory:") or path.startswith("file::memory:"):
        raise ValueError(
            f"{shown!r} is not a SQLite file: an in-memory database cannot be shared "
            "nor outlive its connection; use 'memory://' for a store in memory, or "
            "give a path: sqlite:///relative/path.db, sqlite:////absolute/path.db"
        )
    if "?" in path or "#" in path:
        raise ValueError(f"a SQLite store URL takes no query or fragment: {shown!r}")
    return path


def _lazy_store(url: str, module_name: str, label: str) -> JobStore:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise  # the backend is there, its driver is not: say which
        raise ValueError(
            f"the {label} store is not available yet in this version of trunner "
            f"(for {redact_url(url)!r}); use sqlite:///path.db or memory://"
        ) from None
    # Each backend module makes its store from a URL: from_url(url) -> JobStore.
    from_url = cast("Callable[[str], JobStore]", module.from_url)
    return from_url(url)
