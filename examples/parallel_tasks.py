"""A parallel runner: bounded concurrency, and priorities among pending tasks.

A `trunner.ParallelTaskRunner` runs up to ``max_concurrency`` tasks at once.
Tasks that must wait start highest priority first, FIFO within a priority.
``await runner.run(fn, ...)`` posts a task and returns its result;
``wait_idle()`` waits until nothing is pending or running; ``statistics()``
counts the tasks in each state.
"""

from __future__ import annotations

import trio

import trunner

Priority = trunner.Priority


def report(handle: trunner.TaskHandle[object], error: BaseException) -> None:
    print(f"on_error: {handle.name} failed: {error!r}")


async def main() -> None:
    started: list[str] = []
    running = peak = 0

    async def download(label: str, seconds: float) -> int:
        nonlocal running, peak
        started.append(label)
        running += 1
        peak = max(peak, running)
        try:
            await trio.sleep(seconds)
        finally:
            running -= 1
        if label == "broken":
            raise ConnectionError("connection reset")
        return len(label) * 100

    async with trunner.open_parallel_runner(
        max_concurrency=2, name="downloads", on_error=report
    ) as runner:
        # Two long downloads take both slots; the others have to wait.
        for label in ("video-1", "video-2"):
            runner.post_task(download, label, 0.3)
        await trio.sleep(0.01)  # let them start

        plan = [
            ("thumb-1", Priority.BEST_EFFORT),
            ("page-1", Priority.USER_VISIBLE),
            ("click-1", Priority.USER_BLOCKING),
            ("thumb-2", Priority.BEST_EFFORT),
            ("broken", Priority.USER_VISIBLE),
            ("click-2", Priority.USER_BLOCKING),
        ]
        for label, priority in plan:
            traits = trunner.TaskTraits(priority=priority)
            runner.post_task(download, label, 0.1, traits=traits, name=label)
        stats = runner.statistics()
        print(f"posted 6 more: running={stats.running} pending={stats.pending}")

        # run() posts and waits for the result; as USER_BLOCKING it goes early.
        urgent = trunner.TaskTraits(priority=Priority.USER_BLOCKING)
        size = await runner.run(download, "search", 0.1, traits=urgent)
        print(f"run(download, 'search') -> {size}")

        await runner.wait_idle()
        print(f"start order: {started}")
        print(f"peak concurrency: {peak} (max_concurrency={runner.max_concurrency})")
        stats = runner.statistics()
        print(
            f"statistics: succeeded={stats.succeeded} failed={stats.failed}"
            f" pending={stats.pending} running={stats.running}"
        )


if __name__ == "__main__":
    trio.run(main)
