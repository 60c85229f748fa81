"""Submits over HTTP: trunner.service on SQLite against a bare starlette endpoint.

Each variant serves from a child process (this script with ``--serve MODE``)
on hypercorn's trio worker through `trunner.service.serve`, so the HTTP stack
is the same; the load comes from this process: ``CLIENTS`` concurrent httpx
clients (one connection each) send ``N`` ``POST /jobs`` in all, each waiting
for its answer before its next request.

The clients share one httpx client holding ``CLIENTS`` connections, opened
before the clock starts. ``BENCH_SERVICE_N`` overrides ``N``.

* bare: a starlette endpoint that only reads the body, parses the same JSON
  and answers 201 with a small JSON body (the baseline);
* service: `trunner.service.create_app` over a `JobManager` on a
  `SQLiteJobStore` (WAL, ``synchronous=FULL``: each 201 is a durable ack),
  with bearer-token auth, checks, the registry's attrs argument and the
  event stream's publishing;
* service + stalled client: the same, with one ``GET /events`` client that
  never reads: it must be dropped without lowering the submit rate.

After each service run the store is read back: every job is there once
(none lost, none duplicated). Latency is per request, as the client sees it.

Run: ``python tests/benchmarks/bench_service.py [--rounds N]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import httpx
import trio

if TYPE_CHECKING:
    from starlette.requests import Request

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
else:
    import _common as common

N: Final = int(os.environ.get("BENCH_SERVICE_N", "10000"))
CLIENTS: Final = 50
TOKEN: Final = "bench-token"
GOAL_RATIO: Final = common.Goal(">=", 0.7)


@attrs.frozen
class SendEmail:
    to: str
    subject: str


async def _serve(mode: str, database: str) -> None:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from trunner.jobs import Registry, SQLiteJobStore, open_job_manager
    from trunner.service import BearerTokens, create_app, serve

    if mode == "bare":

        async def submit(request: Request) -> Response:
            data = json.loads(await request.body())
            body = json.dumps({"id": data["id"], "state": "pending"})
            return Response(body, status_code=201, media_type="application/json")

        app = Starlette(routes=[Route("/jobs", submit, methods=["POST"])])
        async with serve(app, port=0, keep_alive_timeout=300) as server:
            print(server.url, flush=True)
            await trio.sleep_forever()
    registry = Registry()

    @registry.handler("send_email")
    async def send_email(args: SendEmail) -> None:
        del args

    async with open_job_manager(
        SQLiteJobStore(database), registry, worker=False
    ) as manager:
        app = create_app(manager, auth=BearerTokens({TOKEN: "bench"}))
        async with serve(app, port=0, keep_alive_timeout=300) as server:
            print(server.url, flush=True)
            await trio.sleep_forever()


@attrs.frozen
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    dropped_clients: int = 0


async def _load(url: str, *, stalled: bool) -> Result:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    stall: trio.SocketStream | None = None
    if stalled:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        stall = await trio.open_tcp_stream(host, int(port))
        await stall.send_all(
            f"GET /events HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )

    async def client(http: httpx.AsyncClient, first: int) -> None:
        for i in range(first, N, CLIENTS):
            body = json.dumps(
                {
                    "id": f"job-{i}",
                    "handler": "send_email",
                    "args": {"to": f"user{i}@example.com", "subject": "hello"},
                }
            )
            started = time.perf_counter()
            response = await http.post("/jobs", content=body)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise AssertionError(f"{response.status_code}: {response.text}")

    # One connection per client, opened before the clock starts.
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=120
    ) as http:
        async with trio.open_nursery() as nursery:
            for _ in range(CLIENTS):
                nursery.start_soon(http.get, "/healthz")
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for first in range(CLIENTS):
                nursery.start_soon(client, http, first)
    elapsed = time.perf_counter() - started
    dropped = 0
    if stall is not None:
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            metrics = (await http.get("/metrics")).text
        for line in metrics.splitlines():
            if line.startswith("trunner_service_event_clients_dropped_total "):
                dropped = int(float(line.split()[1]))
        await stall.aclose()
    return Result(
        N / elapsed,
        common.percentile(latencies, 50) * 1e3,
        common.percentile(latencies, 99) * 1e3,
        dropped,
    )


def _check_store(database: str) -> None:
    from trunner.jobs import SQLiteJobStore, open_job_manager

    async def read() -> None:
        async with open_job_manager(SQLiteJobStore(database), worker=False) as jm:
            jobs = await jm.list_jobs(limit=N + 10)
        ids = [job.id for job in jobs]
        if len(ids) != N or set(ids) != {f"job-{i}" for i in range(N)}:
            raise AssertionError(f"{len(ids)} jobs stored, {len(set(ids))} distinct")

    trio.run(read)


def _server_mode(mode: str) -> str:
    return "bare" if mode == "bare" else "service"


def _variant(mode: str) -> Result:
    with tempfile.TemporaryDirectory() as directory:
        database = str(Path(directory) / "jobs.db")
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", _server_mode(mode), database],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            result = trio.run(lambda: _load(url, stalled=mode == "stalled"))
        finally:
            server.terminate()
            server.wait(timeout=60)
        if mode != "bare":
            _check_store(database)
        return result


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        trio.run(_serve, sys.argv[2], sys.argv[3])
        return
    rounds = common.parse_rounds(__doc__ or "", default=3)
    common.print_environment(
        f"bench_service ({N:,} submits, {CLIENTS} clients, SQLite synchronous=FULL)",
        rounds,
    )
    results = common.interleave(
        [
            ("bare", lambda: _variant("bare")),
            ("service", lambda: _variant("service")),
            ("stalled", lambda: _variant("stalled")),
        ],
        rounds=rounds,
    )
    bare, service, stalled = results["bare"], results["service"], results["stalled"]

    def rates(values: list[Result]) -> list[float]:
        return [r.rate for r in values]

    def ms(values: list[Result], field: str) -> float:
        return common.median([getattr(r, field) for r in values])

    common.print_table(
        f"Submits over HTTP: {N:,} POST /jobs from {CLIENTS} concurrent clients",
        [
            common.compare(
                "service on SQLite / bare starlette endpoint (submits/s)",
                rates(service),
                rates(bare),
                fmt=common.fmt_rate,
                goal=GOAL_RATIO,
            ),
            common.compare(
                "service with a stalled event client / without",
                rates(stalled),
                rates(service),
                fmt=common.fmt_rate,
            ),
            common.Row(
                metric="latency p50 (service / bare)",
                value=common.fmt_ms(ms(service, "p50_ms")),
                baseline=common.fmt_ms(ms(bare, "p50_ms")),
                ratio="",
            ),
            common.Row(
                metric="latency p99 (service / bare)",
                value=common.fmt_ms(ms(service, "p99_ms")),
                baseline=common.fmt_ms(ms(bare, "p99_ms")),
                ratio="",
            ),
            common.Row(
                metric="latency p99 with a stalled event client",
                value=common.fmt_ms(ms(stalled, "p99_ms")),
                baseline=common.fmt_ms(ms(service, "p99_ms")),
                ratio="",
            ),
            common.Row(
                metric="stalled event clients dropped (per run)",
                value=str([r.dropped_clients for r in stalled]),
                baseline="",
                ratio="",
            ),
            common.Row(
                metric="jobs stored once each (per service run)",
                value=f"{N:,} of {N:,}",
                baseline="",
                ratio="",
            ),
        ],
    )


if __name__ == "__main__":
    main()
