"""Serve runner metrics to Prometheus with `trunner.contrib.prometheus`.

A `~trunner.contrib.prometheus.TrunnerCollector` given a scheduler exports
every runner of it. ``prometheus_client.start_http_server`` serves ``/metrics``
from its own threads; each scrape reads the runners on the Trio thread. The
blocking calls (the scrape, stopping the server) run as ``may_block`` tasks,
which keep a test's virtual clock still while they work. Needs
``pip install trunner[prometheus]``.
"""

from __future__ import annotations

import functools
import urllib.request

import trio
from prometheus_client import CollectorRegistry, start_http_server

import trunner
from trunner.contrib.prometheus import TrunnerCollector

BLOCKING = trunner.TaskTraits(may_block=True)
SHOWN = (
    "trunner_tasks_succeeded_total",
    "trunner_tasks_failed_total",
    "trunner_task_retries_total",
    "trunner_task_run_seconds_count",
    'trunner_task_run_seconds{quantile="1"',
)


def fetch(url: str) -> str:
    # No proxy: the server is on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


async def work(n: int) -> int:
    await trio.sleep(0.1 * n)
    if n == 3:
        raise ValueError("three is bad luck")
    return n


async def main() -> None:
    registry = CollectorRegistry()
    async with trunner.open_scheduler() as scheduler:
        TrunnerCollector(scheduler, registry=registry)
        io = scheduler.create_parallel_runner(max_concurrency=2, name="io")
        jobs = scheduler.create_parallel_runner(
            max_concurrency=4, name="jobs", on_error=lambda task, error: None
        )
        server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        print(f"serving /metrics on 127.0.0.1 (port {server.server_port})")

        def stop_server() -> None:
            server.shutdown()
            server.server_close()
            thread.join()

        try:
            retry = trunner.RetryPolicy(max_attempts=2, initial_delay=0.1, jitter=0.0)
            for n in range(1, 7):
                jobs.post_task(work, n, retry=retry)
            await jobs.wait_idle()
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            text = await io.run(functools.partial(fetch, url), traits=BLOCKING)
        finally:
            await io.run(stop_server, traits=BLOCKING)
        print("server stopped; some lines of the scrape:")
        for line in text.splitlines():
            if line.startswith(SHOWN) and 'runner="jobs"' in line:
                print(f"  {line}")
        print(f"the scrape has {len(text.splitlines())} lines for runners io and jobs")


if __name__ == "__main__":
    trio.run(main)
