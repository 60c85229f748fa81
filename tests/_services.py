"""The local servers some tests need: find them, or skip with a visible reason.

PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379) run
on the developers' machines and on CI's. A user without them still gets a
green suite: those tests skip, naming the server they wanted. Under
``TRUNNER_REQUIRE_SERVICES=1`` (set by ``.ci/run``) a missing server fails
the test instead, so CI can never pass by skipping.

Each test keeps its own key prefix or schema (``unique_name``) and removes it
when it ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from typing import NoReturn

import pytest

REDIS_HOST = os.environ.get("TRUNNER_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TRUNNER_TEST_REDIS_PORT", "6379"))
POSTGRES_HOST = os.environ.get("TRUNNER_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("TRUNNER_TEST_POSTGRES_PORT", "5432"))
POSTGRES_DB = os.environ.get("TRUNNER_TEST_POSTGRES_DB", "test")
POSTGRES_USER = os.environ.get("TRUNNER_TEST_POSTGRES_USER", "postgres")


def services_required() -> bool:
    """Whether a missing server fails the test instead of skipping it."""
    return os.environ.get("TRUNNER_REQUIRE_SERVICES", "") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the current test for ``reason``, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} (TRUNNER_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_redis() -> str:
    """The URL of the local Redis, or skip (fail under the CI flag)."""
    if not reachable(REDIS_HOST, REDIS_PORT):
        unavailable(f"no Redis server at {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def require_postgres() -> str:
    """The URL of the local PostgreSQL database, or skip (fail under the CI flag)."""
    if not reachable(POSTGRES_HOST, POSTGRES_PORT):
        unavailable(f"no PostgreSQL server at {POSTGRES_HOST}:{POSTGRES_PORT}")
    return f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{POSTGRES_DB}"


def require_program(name: str) -> str:
    """The path of the program ``name`` (``redis-server``, ``chromium``), or skip."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed")
    return path


def unique_name(kind: str) -> str:
    """A fresh key prefix or schema name for one test: ``{kind}_<hex>``."""
    return f"{kind}_{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
