"""Submits over HTTP: trunner.service on SQLite against a bare starlette endpoint.

Each variant serves from a child process (this script with ``--serve MODE``)
on hypercorn's trio worker through `trunner.service.serve`, so the HTTP stack
is the same; the load comes from this process: ``CLIENTS`` concurrent clients
(one keep-alive connection each, opened and warmed with ``WARMUP`` requests
before the clock starts) send ``N`` ``POST /jobs`` in all, each waiting for its
answer before its next request. ``BENCH_SERVICE_N`` overrides ``N``.

The clients speak HTTP/1.1 over plain trio sockets (the request bytes built
here, the answer's status, ``Content-Length`` and JSON body checked), so that
the servers are what is measured: an httpx client costs about 2.5 ms of CPU a
request on this machine, four times a server's cost, which made the load
generator the bottleneck and hid most of the servers' difference. The server's
own CPU time per submit (from ``/proc``) is shown too: the machine is shared,
and CPU time moves less with its load than wall-clock rates do.

* bare: a starlette endpoint that only reads the body, parses the same JSON
  and answers 201 with a body of the same shape and size as the service's
  (the job's fields; fixed times): the baseline;
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
import math
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
#: Untimed requests per connection before the clock starts.
WARMUP: Final = 2
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
        # The service's answer has these fields; the times are fixed here.
        now = "2026-01-01T00:00:00.000000Z"

        async def submit(request: Request) -> Response:
            data = json.loads(await request.body())
            job = {
                "id": data["id"],
                "handler": data["handler"],
                "args": data["args"],
                "state": "pending",
                "priority": "user_visible",
                "attempts": 0,
                "max_attempts": 3,
                "created_at": now,
                "run_at": now,
                "started_at": None,
                "finished_at": None,
                "result": None,
                "error": None,
                "worker": None,
            }
            body = json.dumps(job, separators=(",", ":"))
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
    #: The server process's CPU time (user + system) per timed submit.
    server_cpu_us: float
    dropped_clients: int = 0


def _request(host: str, job_id: str, i: int) -> bytes:
    body = json.dumps(
        {
            "id": job_id,
            "handler": "send_email",
            "args": {"to": f"user{i}@example.com", "subject": "hello"},
        }
    ).encode()
    head = (
        f"POST /jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@attrs.define
class _Connection:
    """One keep-alive connection that sends a request and reads its answer."""

    stream: trio.SocketStream
    buffer: bytes = b""

    async def _fill(self) -> None:
        chunk = await self.stream.receive_some(65536)
        if not chunk:
            raise AssertionError("the server closed the connection")
        self.buffer += chunk

    async def submit(self, request: bytes, job_id: str) -> None:
        await self.stream.send_all(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        length = -1
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length < 0:
            raise AssertionError(f"no Content-Length: {head}")
        total = end + 4 + length
        while len(self.buffer) < total:
            await self._fill()
        body, self.buffer = self.buffer[end + 4 : total], self.buffer[total:]
        if head[0].split(" ", 2)[1] != "201" or json.loads(body)["id"] != job_id:
            raise AssertionError(f"{head[0]}: {body!r}")


def _cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) of process ``pid`` so far; NaN off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, server: int, *, stalled: bool) -> Result:
    latencies: list[float] = []
    address = url.removeprefix("http://")
    host, port = address.rsplit(":", 1)
    stall: trio.SocketStream | None = None
    if stalled:
        stall = await trio.open_tcp_stream(host, int(port))
        await stall.send_all(
            f"GET /events HTTP/1.1\r\nHost: {address}\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )

    async def client(connection: _Connection, first: int) -> None:
        for i in range(first, N, CLIENTS):
            job_id = f"job-{i}"
            request = _request(address, job_id, i)
            started = time.perf_counter()
            await connection.submit(request, job_id)
            latencies.append(time.perf_counter() - started)

    connections = [
        _Connection(await trio.open_tcp_stream(host, int(port))) for _ in range(CLIENTS)
    ]
    for index, connection in enumerate(connections):
        for k in range(WARMUP):
            job_id = f"warmup-{index}-{k}"
            await connection.submit(_request(address, job_id, k), job_id)
    cpu = _cpu_seconds(server)
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for first, connection in enumerate(connections):
            nursery.start_soon(client, connection, first)
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(server) - cpu
    for connection in connections:
        await connection.stream.aclose()
    dropped = 0
    if stall is not None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
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
        cpu / N * 1e6,
        dropped,
    )


def _check_store(database: str) -> None:
    from trunner.jobs import SQLiteJobStore, open_job_manager

    expected = {f"job-{i}" for i in range(N)} | {
        f"warmup-{index}-{k}" for index in range(CLIENTS) for k in range(WARMUP)
    }

    async def read() -> None:
        async with open_job_manager(SQLiteJobStore(database), worker=False) as jm:
            jobs = await jm.list_jobs(limit=len(expected) + 10)
        ids = [job.id for job in jobs]
        if len(ids) != len(expected) or set(ids) != expected:
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
            result = trio.run(lambda: _load(url, server.pid, stalled=mode == "stalled"))
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
            common.compare(
                "server CPU per submit (service / bare)",
                [r.server_cpu_us for r in service],
                [r.server_cpu_us for r in bare],
                fmt=common.fmt_us,
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
                value=f"{N:,} of {N:,} (+ {CLIENTS * WARMUP} warm-up jobs)",
                baseline="",
                ratio="",
            ),
        ],
    )


if __name__ == "__main__":
    main()
