"""RedisJobStore beside saq, arq and a hand-written coredis queue: throughput, latency.

Needs the local Redis (127.0.0.1:6379; ``TRUNNER_TEST_REDIS_*`` move it) and
``uv``, with which the script installs saq, arq and coredis into a virtual
environment of its own in a temporary directory. Every system works under keys
of its own (a fresh prefix or queue name), deleted at the end.

The three measures are those of `_workers_harness` (trunner's side, on a
`RedisJobStore`):

* End to end: 10,000 trivial jobs submitted by 100 concurrent tasks to one
  process that is also the only worker (concurrency 10); beside trunner, saq
  and arq (with their defaults: arq polls every 0.5 s) on asyncio, and a
  minimal queue written by hand with coredis on trio (LPUSH to a list, 10
  tasks BRPOP from it, no durability beyond the list itself) as the floor.
* Latency: an idle trunner worker in another process, jobs submitted one at
  a time.
* Scaling: 1 and 3 worker processes.

Run: ``python tests/benchmarks/bench_redis.py [--rounds N]`` (default: one
round of a few minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import trio

if TYPE_CHECKING:
    from collections.abc import Callable

    # The type checkers see this directory as the namespace package
    # tests.benchmarks; run as a script, it is the first entry of sys.path.
    from tests.benchmarks import _common as common
    from tests.benchmarks import _workers_harness as harness
else:
    import _common as common
    import _workers_harness as harness


HOST: Final = os.environ.get("TRUNNER_TEST_REDIS_HOST", "127.0.0.1")
PORT: Final = int(os.environ.get("TRUNNER_TEST_REDIS_PORT", "6379"))
URL: Final = f"redis://{HOST}:{PORT}/0"
GOALS: Final = {
    "saq": common.Goal(">=", 2.0),
    "arq": common.Goal(">=", 5.0),
    "coredis list queue": common.Goal(">=", 1.0),
}

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
                str(harness.sizes.jobs),
                str(harness.CONCURRENCY),
                str(harness.SUBMITTERS),
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
                    await harness.noop(int(item[1]))
                    done += 1
                    if done == harness.sizes.jobs:
                        finished.set()

            async def submit(first: int) -> None:
                for i in range(first, harness.sizes.jobs, harness.SUBMITTERS):
                    await client.lpush(name, [str(i)])

            async with trio.open_nursery() as nursery:
                for _ in range(harness.CONCURRENCY):
                    nursery.start_soon(consume)
                started = time.perf_counter()
                async with trio.open_nursery() as submitters:
                    for first in range(harness.SUBMITTERS):
                        submitters.start_soon(submit, first)
                await finished.wait()
                took = time.perf_counter() - started
                nursery.cancel_scope.cancel()
            await client.delete([name])
        return harness.sizes.jobs / took

    return trio.run(run)


# ---------------------------------------------------------------- main


def _store_url(prefix: str) -> str:
    return f"{URL}?prefix={prefix}"


def main() -> None:
    args = harness.parse_args(
        (__doc__ or "").splitlines()[0], "saq, arq and the coredis list queue"
    )
    import socket

    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
    except OSError as error:
        print(f"bench_redis: skipped, no Redis at {URL}: {error}")
        return
    prefix = f"bench_trunner_{uuid.uuid4().hex[:8]}"
    store = _store_url(prefix)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        peers = Peers(directory)
        try:
            versions = peers.install()
            print(f"saq {versions['saq']}, arq {versions['arq']}", file=sys.stderr)
            variants: list[tuple[str, Callable[[], float]]] = [
                ("trunner", lambda: harness.e2e(store)),
                ("saq", lambda: peers.e2e("saq")),
                ("arq", lambda: peers.e2e("arq")),
                ("coredis list queue", list_queue_e2e),
            ]
            e2e = common.interleave(variants, rounds=args.rounds, warmup=False)
            latency = harness.latency(store, directory)
            scaling = harness.scaling_rounds(store, args.rounds)
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
                f"end to end: {harness.sizes.jobs:,} trivial jobs, one worker, "
                f"concurrency {harness.CONCURRENCY}, vs {peer}",
                common.fmt_rate(common.median(ours)),
                f"{label} {common.fmt_rate(common.median(theirs))}",
                f"{ratio:.2f}x",
                goal.describe("x"),
                common.status(goal, ratio),
            )
        )
    rows += [
        common.Row(
            "submit -> start on an idle worker in another process, p50 / p99",
            harness.latency_cell(latency),
            "",
            "",
        ),
        harness.scaling_row(scaling),
    ]
    common.print_table("RedisJobStore", rows)


if __name__ == "__main__":
    main()
