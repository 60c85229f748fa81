"""Reliability on PostgreSQL with real processes: crashes, killed connections, cuts.

The scenarios shared with Redis are in `_workers`; the worker processes share
one schema of the local PostgreSQL. They run on real time and take a few
seconds to a few tens of seconds each.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import trio

from trunner.jobs import JobState

from ._pg import fresh_schema, open_proxy, terminate_backends
from ._workers import (
    SHORT_WORK,
    check_results,
    cut_off_worker_cancels_its_handlers,
    submitter_and_workers,
    three_workers_one_sigkilled,
)
from .crash_handlers import read_runs
from .test_crash import by_job, submit, succeeded

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    with fresh_schema() as (url, schema):
        yield url, schema


async def test_three_workers_one_sigkilled(pg: tuple[str, str], tmp_path: Path) -> None:
    url, schema = pg
    store = f"{url}&schema={schema}"
    # Its concurrency, and as many prefetched.
    await three_workers_one_sigkilled(store, tmp_path, seed=7, most_held=2 * 10)


async def test_connections_killed_mid_run_lose_no_job(
    pg: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = pg
    store = f"{url}&schema={schema}"
    jobs = 1000
    rng = random.Random(8)
    with trio.fail_after(90):
        async with submitter_and_workers(store, tmp_path) as (manager, workers):
            worker = await workers.start()
            await workers.wait_up(worker)
            ids = await submit(manager, jobs, rng, SHORT_WORK)
            killed = 0
            while (done := await succeeded(manager)) < jobs:
                if done > 0 and killed < 5:
                    # Every connection of the test, the worker's included.
                    killed += terminate_backends(url, schema)
                    await trio.sleep(0.3)
                else:
                    await trio.sleep(0.05)
            code = await workers.stop(worker)
            infos = await manager.list_jobs(limit=2 * jobs)

    assert code == 0, workers.logs()
    assert killed >= 5
    assert {info.id for info in infos} == ids
    assert {info.state for info in infos} == {JobState.SUCCEEDED}
    runs = by_job(read_runs(tmp_path))
    assert set(runs) == ids
    check_results(infos, runs)
    for job_runs in runs.values():
        starts = [run for run in job_runs if run.event == "start"]
        ends = [run for run in job_runs if run.event == "end"]
        # One process: a run again only after the previous one ended (a
        # completion lost with its connection: the lease expired first).
        assert len(starts) == len(ends), job_runs
        for earlier_end, later_start in zip(ends, starts[1:], strict=False):
            assert later_start.at >= earlier_end.at, job_runs


async def test_cut_off_worker_cancels_its_handlers_before_their_leases_end(
    pg: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, schema = pg
    async with open_proxy() as proxy:
        await cut_off_worker_cancels_its_handlers(
            f"{url}&schema={schema}",
            f"{proxy.url(url)}&schema={schema}",
            proxy,
            caplog,
            submit_within=6,
        )
