"""Many concurrent HTTP clients: no submit lost, none duplicated.

The 10,000-submit version with timings is tests/benchmarks/bench_service.py.
"""

from __future__ import annotations

import json

import httpx
import trio

from trunner.jobs import JobState

from .conftest import AUTH, Served

N = 600
CLIENTS = 50


async def test_concurrent_submits_none_lost_none_duplicated(served: Served) -> None:
    statuses: list[int] = []

    async def client(first: int) -> None:
        async with httpx.AsyncClient(
            base_url=served.url, headers=AUTH, timeout=60
        ) as http:
            for i in range(first, N, CLIENTS):
                body = {"id": f"job-{i}", "handler": "slow", "args": 1, "delay": 3600}
                response = await http.post("/jobs", content=json.dumps(body))
                statuses.append(response.status_code)

    async def duplicate(index: int) -> None:
        # Ten clients race to submit the same id: exactly one wins.
        async with httpx.AsyncClient(
            base_url=served.url, headers=AUTH, timeout=60
        ) as http:
            body = {"id": "contended", "handler": "slow", "args": index, "delay": 3600}
            response = await http.post("/jobs", content=json.dumps(body))
            contended.append(response.status_code)

    contended: list[int] = []
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for first in range(CLIENTS):
                nursery.start_soon(client, first)
            for index in range(10):
                nursery.start_soon(duplicate, index)

    jobs = await served.manager.list_jobs(limit=N + 10)
    ids = [job.id for job in jobs]
    assert statuses == [201] * N
    assert sorted(contended) == [201] + [409] * 9
    assert len(ids) == N + 1
    assert set(ids) == {f"job-{i}" for i in range(N)} | {"contended"}
    assert {job.state for job in jobs} == {JobState.PENDING}
