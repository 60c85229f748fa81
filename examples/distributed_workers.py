"""Workers on several machines: two worker processes share one Redis store.

Each worker is a process of its own (here on this machine; on others it would
be the same command with the same URL): it opens a `trunner.jobs.JobManager`
on ``redis://...`` and runs the jobs it claims. This program submits a dozen
jobs from a third process, which only submits (``worker=False``), and prints
which worker ran each one. Claims are atomic scripts on the server, so every
job runs on exactly one worker; idle workers hear of each submit through the
store's pub/sub channel at once.

It needs a Redis server (``$TRUNNER_EXAMPLE_REDIS``, by default
``redis://127.0.0.1:6379/0``) and the ``trunner[redis]`` extra; without them it
says so and stops. It keeps its keys under a prefix of its own and deletes
them at the end.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import trio

from trunner.jobs import JobState, Registry, StoreError, open_job_manager, open_store

#: Talks to a real server: the example runs in real time.
REAL_CLOCK = True

URL = os.environ.get("TRUNNER_EXAMPLE_REDIS", "redis://127.0.0.1:6379/0")
JOBS = 12

registry = Registry()


@registry.handler("resize")
async def resize(image: str) -> str:
    await trio.sleep(0.1)  # some work
    return f"{image} resized by {os.environ['WORKER_NAME']} (pid {os.getpid()})"


async def run_worker(store_url: str, name: str) -> None:
    """A worker process: run jobs until SIGTERM, then leave gracefully."""
    os.environ["WORKER_NAME"] = name
    logging.getLogger("trunner.jobs").addFilter(_LocalServer())
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with open_job_manager(
            open_store(store_url), registry, concurrency=2, name=name
        ):
            print(f"{name} ready", flush=True)
            async for _ in signals:
                break


def reachable(url: str) -> bool:
    host_port = url.partition("://")[2].partition("/")[0].rpartition("@")[2]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=1):
            return True
    except OSError:
        return False


async def delete_keys(prefix: str) -> None:
    import coredis

    host_port = URL.partition("://")[2].partition("/")[0].rpartition("@")[2]
    host, _, port = host_port.partition(":")
    async with coredis.Redis(host=host, port=int(port or 6379)) as client:
        keys = [key async for key in client.scan_iter(match=f"{{{prefix}}}:*")]
        if keys:
            await client.delete(keys)


class _LocalServer(logging.Filter):
    """Hide the warning that the local Redis can lose acknowledged jobs.

    A test server runs without ``appendfsync always``; that is fine for an
    example, never for jobs that matter (see docs/distributed.rst).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "can lose acknowledged jobs" not in record.getMessage()


async def main() -> None:
    logging.getLogger("trunner.jobs").addFilter(_LocalServer())
    if importlib.util.find_spec("coredis") is None:
        print("This example needs coredis: pip install 'trunner[redis]'.")
        print("Skipped.")
        print("(nothing was stored)")
        return
    if not reachable(URL):
        print(f"No Redis server answers at {URL}.")
        print("Start one (or set $TRUNNER_EXAMPLE_REDIS) to run this example.")
        print("Skipped.")
        return
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    store_url = f"{URL}?prefix={prefix}"
    here = Path(__file__)
    try:
        async with trio.open_nursery() as nursery:
            workers: list[trio.Process] = []
            for name in ("worker-a", "worker-b"):
                process: trio.Process = await nursery.start(
                    trio.run_process,
                    [sys.executable, str(here), "worker", store_url, name],
                )
                workers.append(process)
            try:
                async with open_job_manager(
                    open_store(store_url), worker=False
                ) as front:
                    for n in range(JOBS):
                        await front.submit_job(f"img-{n:02d}", "resize", f"img-{n:02d}")
                    print(f"submitted {JOBS} jobs to {store_url}")
                    # Another process runs them: poll the store.
                    while (await front.counts())[JobState.SUCCEEDED] < JOBS:  # noqa: ASYNC110
                        await trio.sleep(0.1)
                    for info in sorted(await front.list_jobs(), key=lambda i: i.id):
                        print(f"{info.id}: {info.result}")
            finally:
                for process in workers:
                    process.send_signal(signal.SIGTERM)
    except StoreError as error:
        print(f"The store failed: {error}")
    finally:
        await delete_keys(prefix)
    print("both workers stopped; the example's keys are deleted")


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        trio.run(run_worker, sys.argv[2], sys.argv[3])
    else:
        trio.run(main)
