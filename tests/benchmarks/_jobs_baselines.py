"""Baselines of bench_jobs: hand-written SQLite worker loops, and saq on Redis.

The SQLite loops run on a thread of their own, as a worker written by hand
would, on a file in WAL mode with ``synchronous=FULL`` (each commit flushed):

* `one_per_job`: claim one job (one transaction), run it, complete it (a
  second transaction): the one-transaction-per-step path;
* `batched`: one transaction completes the previous batch and claims the
  next ``batch`` jobs, then runs them: the best a worker can do on SQLite.

saq (an asyncio job queue on Redis) is installed in a virtual environment of
its own (``uv venv`` + ``uv pip install saq``) in a temporary directory, and
its worker runs there on the local Redis, in a process of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Final

_SCHEMA: Final = (
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, args TEXT NOT NULL, "
    "state TEXT NOT NULL, result TEXT, worker TEXT, lease REAL)",
    "CREATE INDEX jobs_pending ON jobs (id) WHERE state = 'pending'",
)


def _open(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def prepare(path: str, n: int) -> None:
    """Make the file with ``n`` pending jobs (not timed)."""
    conn = _open(path)
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jobs (id, args, state) VALUES (?, ?, 'pending')",
        ((i, json.dumps(i)) for i in range(n)),
    )
    conn.execute("COMMIT")
    conn.close()


def _handler(args: str) -> str:
    return json.dumps(json.loads(args))


def _one_per_job(conn: sqlite3.Connection) -> int:
    done = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "SELECT id, args FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            conn.execute("COMMIT")
            return done
        conn.execute(
            "UPDATE jobs SET state = 'running', worker = 'w', lease = ? WHERE id = ?",
            (time.time() + 30, row[0]),
        )
        conn.execute("COMMIT")
        result = _handler(row[1])
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE jobs SET state = 'succeeded', result = ?, lease = NULL "
            "WHERE id = ? AND worker = 'w'",
            (result, row[0]),
        )
        conn.execute("COMMIT")
        done += 1


def _batched(conn: sqlite3.Connection, batch: int) -> int:
    done = 0
    finished: list[tuple[str, int]] = []
    while True:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE jobs SET state = 'succeeded', result = ?, lease = NULL "
            "WHERE id = ? AND worker = 'w'",
            finished,
        )
        rows = conn.execute(
            "SELECT id, args FROM jobs WHERE state = 'pending' ORDER BY id LIMIT ?",
            (batch,),
        ).fetchall()
        conn.executemany(
            "UPDATE jobs SET state = 'running', worker = 'w', lease = ? WHERE id = ?",
            [(time.time() + 30, job_id) for job_id, _ in rows],
        )
        conn.execute("COMMIT")
        done += len(finished)
        if not rows:
            return done
        finished = [(_handler(args), job_id) for job_id, args in rows]


def run_loop(path: str, n: int, *, batch: int | None) -> float:
    """Run a hand-written worker on its own thread over ``path``; return jobs/s."""
    conn = _open(path)
    done: list[int] = []

    def work() -> None:
        done.append(_one_per_job(conn) if batch is None else _batched(conn, batch))

    start = time.perf_counter()
    thread = threading.Thread(target=work, name="hand-written-worker")
    thread.start()
    thread.join()
    elapsed = time.perf_counter() - start
    conn.close()
    if done != [n]:
        raise RuntimeError(f"the hand-written worker ran {done} jobs, not {n}")
    return n / elapsed


# ---------------------------------------------------------------- saq

_SAQ_SCRIPT: Final = r"""
import asyncio, json, sys, time, uuid
from saq import Queue, Worker

N, SUBMITTERS, CONCURRENCY = (int(arg) for arg in sys.argv[1:4])
URL = sys.argv[4]

async def echo(ctx, *, value):
    return value

async def main():
    queue = Queue.from_url(URL, name=f"bench-{uuid.uuid4().hex}")
    await queue.connect()
    worker = Worker(queue, functions=[echo], concurrency=CONCURRENCY)
    task = asyncio.create_task(worker.start())
    async def submitter(first):
        for i in range(first, N, SUBMITTERS):
            await queue.enqueue("echo", value=i, key=f"echo-{i}")
    start = time.perf_counter()
    await asyncio.gather(*(submitter(k) for k in range(SUBMITTERS)))
    while await queue.count("incomplete"):
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - start
    await worker.stop()
    task.cancel()
    keys = [key async for key in queue.redis.scan_iter(match=f"saq:{queue.name}*")]
    keys += [key async for key in queue.redis.scan_iter(match=f"*{queue.name}*")]
    if keys:
        await queue.redis.delete(*set(keys))
    await queue.disconnect()
    print(json.dumps({"jobs_per_second": N / elapsed}))

asyncio.run(main())
"""


class Saq:
    """saq in a virtual environment of its own, made once per benchmark run."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="bench-saq-"))
        self.python: Path | None = None
        self.why_not = ""

    def install(self) -> bool:
        """Make the environment; False (and ``why_not``) if it cannot be made."""
        uv = shutil.which("uv")
        if uv is None:
            self.why_not = "uv is not on PATH"
            return False
        venv = self.directory / "venv"
        python = venv / "bin" / "python"
        outer = ("VIRTUAL_ENV", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT")
        env = {k: v for k, v in os.environ.items() if k not in outer}
        try:
            subprocess.run(
                [uv, "venv", "-q", "-p", sys.executable, str(venv)],
                check=True,
                capture_output=True,
                env=env,
                timeout=300,
            )
            # --python names the target: under nox, UV_PYTHON (set to the
            # session's venv) beat VIRTUAL_ENV, and saq went into the
            # benchmark's own environment, with exit 0.
            subprocess.run(
                [
                    uv,
                    "pip",
                    "install",
                    "-q",
                    "--python",
                    str(python),
                    "saq[redis]",
                    "typing_extensions",
                ],
                check=True,
                capture_output=True,
                env=env,
                timeout=600,
            )
            subprocess.run(
                [str(python), "-c", "import saq"],
                check=True,
                capture_output=True,
                env=env,
                timeout=60,
            )
        except subprocess.CalledProcessError as error:
            self.why_not = f"cannot install saq: {error}: {error.stderr!r}"
            return False
        except (subprocess.SubprocessError, OSError) as error:
            self.why_not = f"cannot install saq: {error}"
            return False
        self.python = python
        (self.directory / "saq_bench.py").write_text(_SAQ_SCRIPT)
        return True

    def run(self, n: int, submitters: int, concurrency: int, url: str) -> float:
        """Submit ``n`` jobs and run them with a saq worker; return jobs/s."""
        assert self.python is not None
        done = subprocess.run(
            [
                str(self.python),
                str(self.directory / "saq_bench.py"),
                str(n),
                str(submitters),
                str(concurrency),
                url,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"the saq run failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
        rate: float = json.loads(done.stdout.strip().splitlines()[-1])[
            "jobs_per_second"
        ]
        return rate

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def redis_reachable(host: str = "127.0.0.1", port: int = 6379) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def unique_name() -> str:
    return uuid.uuid4().hex[:12]
