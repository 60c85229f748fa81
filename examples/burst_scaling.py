"""Burst scaling: a resource pool grows under a burst of tasks and shrinks after.

`trunner.open_resource_pool` always runs ``workers`` base workers. Every
``burst_interval`` seconds, while tasks wait in the queue and arrive at least
as fast as they complete, it adds one burst worker, up to ``max_workers``. A
burst worker idle for ``10 * burst_interval`` seconds retires (destroying its
resource); the base workers never do.

The load is scripted: a quiet phase of a few tasks, one at a time, a burst of
many slow-ish tasks at once, then quiet again, with no task at all. A sampler
prints the worker count over time.
"""

from __future__ import annotations

import itertools

import trio

import trunner

BURST_INTERVAL = 0.1
QUIET_TASKS = 3  # one every QUIET_PERIOD
QUIET_PERIOD = 0.2
BURST_TASKS = 30
TASK_TIME = 0.1  # seconds each task takes
SAMPLE_PERIOD = 0.2


async def main() -> None:
    numbers = itertools.count(1)
    start = trio.current_time()

    def now() -> str:
        return f"t={trio.current_time() - start:4.2f}s"

    def create() -> str:
        client = f"client-{next(numbers)}"
        print(f"{now()} create {client}")
        return client

    def destroy(client: str) -> None:
        print(f"{now()} destroy {client}")

    async def work(client: str) -> str:
        await trio.sleep(TASK_TIME)
        return client

    async with trunner.open_resource_pool(
        create,
        destroy,
        workers=2,
        max_workers=6,
        burst_interval=BURST_INTERVAL,
    ) as pool:
        load_done = trio.Event()

        async def load(task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            print(f"{now()} quiet: {QUIET_TASKS} tasks, one at a time")
            for _ in range(QUIET_TASKS):
                await pool.queue_task(work)
                await trio.sleep(QUIET_PERIOD - TASK_TIME)
            print(f"{now()} burst: {BURST_TASKS} tasks at once")
            async with trio.open_nursery() as callers:
                for _ in range(BURST_TASKS):
                    callers.start_soon(pool.queue_task, work)
            print(f"{now()} quiet again: no tasks")
            load_done.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(load)
            # Sample the pool until the load is over and the burst workers gone.
            while True:
                stats = pool.statistics()
                bar = "#" * stats.active_workers
                print(
                    f"{now()}   workers={stats.active_workers}"
                    f" (burst {stats.burst_workers}) queued={stats.queued_tasks:2d}"
                    f" {bar}"
                )
                if load_done.is_set() and not stats.burst_workers:
                    break
                await trio.sleep(SAMPLE_PERIOD)
        stats = pool.statistics()
        print(f"{now()} back to {stats.active_workers} workers: {stats}")


if __name__ == "__main__":
    trio.run(main)
