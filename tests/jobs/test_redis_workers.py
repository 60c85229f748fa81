"""Reliability on Redis with real processes: crashes, a server restart, a cut.

The scenarios shared with PostgreSQL are in `_workers`; the worker processes
share one store on the local Redis. The test that stops a server runs its own
``redis-server`` (with ``appendonly yes`` and ``appendfsync always``) in a
temporary directory.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from typing import TYPE_CHECKING

import pytest
import trio

from trunner.jobs import JobState, StoreError

from .._services import REDIS_PORT, require_redis, unique_name
from ._workers import (
    SHORT_WORK,
    cut_off_worker_cancels_its_handlers,
    submitter_and_workers,
    three_workers_one_sigkilled,
)
from .crash_handlers import Work, read_runs
from .redis_servers import redis_proxy, redis_server
from .test_crash import by_job, submit, succeeded
from .test_redis_store import delete_prefix

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

pytest.importorskip("coredis")

# coredis 6.9 leaves the anyio streams of a connection that never came up
# unclosed (a server down); their __del__ warns. Collected after each test.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function MemoryObject"
    ":pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(autouse=True)
def _collect_driver_garbage() -> Iterator[None]:
    yield
    gc.collect()


@pytest.fixture
async def shared_store() -> AsyncIterator[str]:
    """A store of its own on the shared Redis, deleted afterwards."""
    url = require_redis()
    prefix = unique_name("workers")
    try:
        yield f"{url}?prefix={prefix}"
    finally:
        await delete_prefix(url, prefix)


async def test_three_workers_one_sigkilled(shared_store: str, tmp_path: Path) -> None:
    # At most its concurrency held, and as many prefetched.
    await three_workers_one_sigkilled(shared_store, tmp_path, seed=11, most_held=20)


async def test_redis_restart_loses_no_acknowledged_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="trunner.jobs")  # expected failures
    rng = random.Random(12)
    with redis_server(tmp_path / "redis") as server:
        url = f"{server.url}?timeout=1"
        with trio.fail_after(90):
            async with submitter_and_workers(url, tmp_path) as (manager, workers):
                worker = await workers.start()
                await workers.wait_up(worker)
                acknowledged = await submit(manager, 300, rng, SHORT_WORK)
                while await succeeded(manager) < 100:  # noqa: ASYNC110  # another process
                    await trio.sleep(0.02)
                server.kill()
                # Submits during the outage fail, within the timeout.
                refused = 0
                for n in range(5):
                    started = time.monotonic()
                    with pytest.raises(StoreError):
                        await manager.submit_job(
                            f"outage-{n}", "work", Work("x", 0.002)
                        )
                    assert time.monotonic() - started < 3
                    refused += 1
                await trio.sleep(1.5)  # the worker's calls fail meanwhile
                server.start()  # the same port and append-only file
                for n in range(100):
                    job_id = f"after-{n}"
                    await manager.submit_job(job_id, "work", Work(job_id, 0.002))
                    acknowledged.add(job_id)
                total = len(acknowledged)
                while await succeeded(manager) < total:  # noqa: ASYNC110  # another process
                    await trio.sleep(0.05)
                code = await workers.stop(worker)
                infos = await manager.list_jobs(limit=1000)
    assert refused == 5
    assert code == 0, workers.logs()
    # Every acknowledged job is there and ran; none of the refused ones is.
    assert {info.id for info in infos} == acknowledged
    assert {info.state for info in infos} == {JobState.SUCCEEDED}
    runs = by_job(read_runs(tmp_path))
    assert set(runs) == acknowledged
    # The same worker process ran the jobs submitted after the restart.
    assert {run.pid for run in runs["after-99"]} == {worker.process.pid}


async def test_cut_off_worker_cancels_its_handlers_before_their_leases_end(
    shared_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = shared_store.partition("?")[2]
    async with redis_proxy(REDIS_PORT) as proxy:
        await cut_off_worker_cancels_its_handlers(
            shared_store,
            proxy.url(f"?{prefix}&timeout=0.5"),
            proxy,
            caplog,
            submit_within=3,
        )
