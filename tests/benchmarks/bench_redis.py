"""RedisJobStore beside saq, arq and a hand-written coredis queue: throughput, latency.

Needs the local Redis (127.0.0.1:6379; ``TRUNNER_TEST_REDIS_*`` move it) and
``uv``, with which the script installs saq, arq and coredis into a virtual
environment of its own in a temporary directory. Every system works under keys
of its own (a fresh prefix or queue name), deleted at the end.

* End to end: ``Sizes.jobs`` trivial jobs submitted by ``SUBMITTERS``
  concurrent tasks to one process that is also the only worker (concurrency
  ``CONCURRENCY``); the time runs from the first submit until every job has
  run. trunner: `open_job_manager` on a `RedisJobStore`; saq and arq (with
  their defaults: arq polls every 0.5 s) on asyncio; and a minimal queue
  written by hand with coredis on trio (LPUSH to a list, ``CONCURRENCY`` tasks
  BRPOP from it, no durability beyond the list itself) as the floor.
* Latency: an idle trunner worker in another process, and ``Sizes.latency``
  jobs submitted one at a time; the handler writes the wall time at which it
  starts; latency is that minus the wall time just before the submit.
* Scaling: ``Sizes.jobs`` jobs run by 1 and by 3 worker processes, each with
  concurrency ``CONCURRENCY``, submitted once the workers are up and idle.

Run: ``python tests/benchmarks/bench_redis.py [--rounds N]`` (default: one
round of a few minutes).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import trio

from trunner.jobs import JobManager, JobState, Registry, open_job_manager, open_store

if TYPE_CHECKING:
    from collections.abc import Callable

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
else:
    import _common as common


@attrs.define
class Sizes:
    """How many jobs each part runs (``--jobs`` lowers them, for a quick look)."""

    jobs: int = 10_000
    latency: int = 200


sizes = Sizes()
CONCURRENCY: Final = 10
SUBMITTERS: Final = 100
WORKERS: Final = 3
HOST: Final = os.environ.get("TRUNNER_TEST_REDIS_HOST", "127.0.0.1")
PORT: Final = int(os.environ.get("TRUNNER_TEST_REDIS_PORT", "6379"))
URL: Final = f"redis://{HOST}:{PORT}/0"
GOALS: Final = {
    "saq": common.Goal(">=", 2.0),
    "arq": common.Goal(">=", 5.0),
    "coredis list queue": common.Goal(">=", 1.0),
}

registry = Registry()
_stamps: Path | None = None


@registry.handler("noop")
async def noop(x: int) -> int:
    return x


@registry.handler("stamp")
async def stamp(job: str) -> None:
    assert _stamps is not None
    with _stamps.open("a") as file:
        file.write(f"{job} {time.time()!r}\n")


# ---------------------------------------------------------------- peers

#: saq imports typing_extensions without declaring it (saq 0.26).
_PEER_PACKAGES: Final = ("saq", "arq", "typing_extensions")

_PEER: Final = r"""
import asyncio, sys, time

kind, host, port, name, count, concurrency, submitters = sys.argv[1:8]
port, count = int(port), int(count)
concurrency, submitters = int(concurrency), int(submitters)
done = 0
finished = asyncio.Event()


async def noop(ctx, *args, **kwargs):
    global done
    done += 1
    if done == count:
        finished.set()
    return 0


async def submit_all(enqueue):
    async def submit(first):
        for i in range(first, count, submitters):
            await enqueue(i)
    await asyncio.gather(*(submit(f) for f in range(submitters)))


async def run_saq():
    from saq import Queue, Worker
    queue = Queue.from_url(f"redis://{host}:{port}/0", name=name)
    await queue.connect()
    worker = Worker(queue, functions=[("noop", noop)], concurrency=concurrency)
    task = asyncio.create_task(worker.start())
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    await submit_all(lambda i: queue.enqueue("noop", x=i))
    await finished.wait()
    took = time.perf_counter() - started
    await worker.stop()
    task.cancel()
    await queue.disconnect()
    return took


async def run_arq():
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func
    settings = RedisSettings(host=host, port=port)
    pool = await create_pool(settings, default_queue_name=name)
    worker = Worker(
        functions=[func(noop, name="noop")], redis_settings=settings,
        max_jobs=concurrency, queue_name=name, handle_signals=False,
    )
    task = asyncio.create_task(worker.async_run())
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    await submit_all(lambda i: pool.enqueue_job("noop", i, _queue_name=name))
    await finished.wait()
    took = time.perf_counter() - started
    task.cancel()
    await worker.close()
    await pool.aclose()
    return took


took = asyncio.run(run_saq() if kind == "saq" else run_arq())
print(count / took)
"""


@attrs.define
class Peers:
    """saq and arq in a virtual environment of their own."""

    directory: Path

    @property
    def python(self) -> str:
        return str(self.directory / "venv" / "bin" / "python")

    def install(self) -> dict[str, str]:
        subprocess.run(["uv", "venv", "-q", str(self.directory / "venv")], check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "--python", self.python, *_PEER_PACKAGES],
            check=True,
        )
        (self.directory / "peer.py").write_text(_PEER)
        versions = subprocess.run(
            [
                self.python,
                "-c",
                "import importlib.metadata as m; "
                "print(m.version('saq'), m.version('arq'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return {"saq": versions[0], "arq": versions[1]}

    def e2e(self, kind: str) -> float:
        name = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        out = subprocess.run(
            [
                self.python,
                str(self.directory / "peer.py"),
                kind,
                HOST,
                str(PORT),
                name,
                str(sizes.jobs),
                str(CONCURRENCY),
                str(SUBMITTERS),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        _delete_keys(f"*{name}*")
        if out.returncode != 0:
            raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
        return float(out.stdout.split()[-1])


def _delete_keys(pattern: str) -> None:
    keys = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(PORT), "--scan", "--pattern", pattern],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run(
            [
                "redis-cli",
                "-h",
                HOST,
                "-p",
                str(PORT),
                "del",
                *keys[start : start + 500],
            ],
            check=True,
            capture_output=True,
        )


def list_queue_e2e() -> float:
    """The floor: a list, LPUSH (pipelined by concurrent submitters), BRPOP."""
    import coredis

    name = f"bench-list-{uuid.uuid4().hex[:8]}"

    async def run() -> float:
        done = 0
        finished = trio.Event()
        async with coredis.Redis(
            host=HOST, port=PORT, decode_responses=False
        ) as client:

            async def consume() -> None:
                nonlocal done
                while True:
                    item = await client.brpop([name], timeout=1)
                    if item is None:
                        continue
                    await noop(int(item[1]))
                    done += 1
                    if done == sizes.jobs:
                        finished.set()

            async def submit(first: int) -> None:
                for i in range(first, sizes.jobs, SUBMITTERS):
                    await client.lpush(name, [str(i)])

            async with trio.open_nursery() as nursery:
                for _ in range(CONCURRENCY):
                    nursery.start_soon(consume)
                started = time.perf_counter()
                async with trio.open_nursery() as submitters:
                    for first in range(SUBMITTERS):
                        submitters.start_soon(submit, first)
                await finished.wait()
                took = time.perf_counter() - started
                nursery.cancel_scope.cancel()
            await client.delete([name])
        return sizes.jobs / took

    return trio.run(run)


# ---------------------------------------------------------------- trunner


def _store_url(prefix: str) -> str:
    return f"{URL}?prefix={prefix}"


async def _wait_all_done(manager: JobManager, count: int) -> None:
    while (await manager.counts())[JobState.SUCCEEDED] < count:  # noqa: ASYNC110
        await trio.sleep(0.1)


async def _submit_noops(manager: JobManager) -> None:
    async def submit(first: int) -> None:
        for i in range(first, sizes.jobs, SUBMITTERS):
            await manager.submit_job(f"j{i}", "noop", i)

    async with trio.open_nursery() as nursery:
        for first in range(SUBMITTERS):
            nursery.start_soon(submit, first)


def trunner_e2e(prefix: str) -> float:
    async def run() -> float:
        store = open_store(_store_url(prefix))
        async with open_job_manager(store, registry, concurrency=CONCURRENCY) as jm:
            await jm.purge()
            started = time.perf_counter()
            await _submit_noops(jm)
            await _wait_all_done(jm, sizes.jobs)
            took = time.perf_counter() - started
            await jm.purge()
        return sizes.jobs / took

    return trio.run(run)


class Workers:
    """trunner worker processes (this script with ``--worker``)."""

    def __init__(self, prefix: str, count: int, stamps: Path | None = None) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ready: list[Path] = []
        for n in range(count):
            ready = Path(tempfile.mkdtemp()) / f"ready-{n}"
            self.ready.append(ready)
            args = [sys.executable, __file__, "--worker", prefix, "--ready", str(ready)]
            if stamps is not None:
                args += ["--stamps", str(stamps)]
            self.processes.append(subprocess.Popen(args))

    def wait_ready(self) -> None:
        while not all(path.exists() for path in self.ready):
            time.sleep(0.05)
        time.sleep(0.5)  # idle

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            process.wait(60)


def trunner_scaling(prefix: str, count: int) -> float:
    async def run() -> float:
        store = open_store(_store_url(prefix))
        async with open_job_manager(store, registry, worker=False) as jm:
            await jm.purge()
            workers = Workers(prefix, count)
            try:
                await trio.to_thread.run_sync(workers.wait_ready)
                started = time.perf_counter()
                await _submit_noops(jm)
                await _wait_all_done(jm, sizes.jobs)
                took = time.perf_counter() - started
            finally:
                await trio.to_thread.run_sync(workers.stop)
            await jm.purge()
        return sizes.jobs / took

    return trio.run(run)


def trunner_latency(prefix: str, directory: Path) -> list[float]:
    stamps = directory / "trunner-stamps.txt"
    stamps.unlink(missing_ok=True)

    async def run() -> str:
        store = open_store(_store_url(prefix))
        lines: list[str] = []
        async with open_job_manager(store, registry, worker=False) as jm:
            await jm.purge()
            workers = Workers(prefix, 1, stamps)
            try:
                await trio.to_thread.run_sync(workers.wait_ready)
                for i in range(-1, sizes.latency):
                    before = time.time()
                    await jm.submit_job(f"l{i}", "stamp", str(i))
                    lines.append(f"{i} {before!r}")
                    await trio.sleep(0.05 if i >= 0 else 2.0)
            finally:
                await trio.to_thread.run_sync(workers.stop)
            await jm.purge()
        return "\n".join(lines)

    submitted = trio.run(run)
    started = dict(line.split() for line in stamps.read_text().splitlines())
    latencies: list[float] = []
    for line in submitted.splitlines():
        job, before = line.split()
        if job != "-1" and job in started:
            latencies.append(float(started[job]) - float(before))
    return latencies


async def _worker_main(prefix: str, ready: Path, stamps: str | None) -> None:
    global _stamps
    _stamps = None if stamps is None else Path(stamps)
    store = open_store(_store_url(prefix))
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with open_job_manager(store, registry, concurrency=CONCURRENCY):
            await trio.Path(ready).touch()
            async for _ in signals:
                break


# ---------------------------------------------------------------- main


def _ms(values: list[float], q: float) -> str:
    return f"{common.percentile(values, q) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--worker", metavar="PREFIX")
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--stamps")
    args = parser.parse_args()
    sizes.jobs = args.jobs
    sizes.latency = min(sizes.latency, max(10, sizes.jobs // 10))
    if args.worker:
        trio.run(_worker_main, args.worker, args.ready, args.stamps)
        return
    import socket

    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
    except OSError as error:
        print(f"bench_redis: skipped, no Redis at {URL}: {error}")
        return
    prefix = f"bench_trunner_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        peers = Peers(directory)
        try:
            versions = peers.install()
            print(f"saq {versions['saq']}, arq {versions['arq']}", file=sys.stderr)
            variants: list[tuple[str, Callable[[], float]]] = [
                ("trunner", lambda: trunner_e2e(prefix)),
                ("saq", lambda: peers.e2e("saq")),
                ("arq", lambda: peers.e2e("arq")),
                ("coredis list queue", list_queue_e2e),
            ]
            e2e = common.interleave(variants, rounds=args.rounds, warmup=False)
            latency = trunner_latency(prefix, directory)
            scaling = common.interleave(
                [
                    ("1 worker", lambda: trunner_scaling(prefix, 1)),
                    (f"{WORKERS} workers", lambda: trunner_scaling(prefix, WORKERS)),
                ],
                rounds=args.rounds,
                warmup=False,
            )
        finally:
            _delete_keys(f"{{{prefix}}}:*")
    ours = e2e["trunner"]
    rows: list[common.Row] = []
    for peer, goal in GOALS.items():
        theirs = e2e[peer]
        ratio = common.median(common.paired_ratios(ours, theirs))
        label = f"{peer} {versions[peer]}" if peer in versions else peer
        rows.append(
            common.Row(
                f"end to end: {sizes.jobs:,} trivial jobs, one worker, "
                f"concurrency {CONCURRENCY}, vs {peer}",
                common.fmt_rate(common.median(ours)),
                f"{label} {common.fmt_rate(common.median(theirs))}",
                f"{ratio:.2f}x",
                goal.describe("x"),
                common.status(goal, ratio),
            )
        )
    one, many = scaling["1 worker"], scaling[f"{WORKERS} workers"]
    rows += [
        common.Row(
            "submit -> start on an idle worker in another process, p50 / p99",
            f"{_ms(latency, 50)} / {_ms(latency, 99)}",
            "",
            "",
        ),
        common.Row(
            f"{WORKERS} worker processes / 1 ({sizes.jobs:,} jobs, concurrency "
            f"{CONCURRENCY} each)",
            common.fmt_rate(common.median(many)),
            f"1 worker {common.fmt_rate(common.median(one))}",
            f"{common.median(common.paired_ratios(many, one)):.2f}x",
        ),
    ]
    common.print_table("RedisJobStore", rows)


if __name__ == "__main__":
    main()
