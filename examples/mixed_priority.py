"""Priorities decide who gets a worker slot of a capped scheduler.

With ``open_scheduler(max_workers=1)`` only one task of all the scheduler's
runners runs at a time. While the slot is busy, runners queue for it with the
priority of their next task, and a freed slot goes to the waiter of highest
priority (USER_BLOCKING > USER_VISIBLE > BEST_EFFORT), FIFO within a priority.
Tasks are posted here lowest priority first. A sequence queues again after each
of its tasks, behind those already waiting: so ``render 1`` gets the slot
between ``input 1`` and ``input 2``, and ``tools lint`` between the two
``cleanup`` tasks.
"""

from __future__ import annotations

import trio

import trunner

Priority = trunner.Priority


def stats(scheduler: trunner.Scheduler) -> trunner.LimiterStatistics:
    limits = scheduler.statistics()
    assert limits is not None  # None only without max_workers
    return limits


async def main() -> None:
    async def job(label: str) -> None:
        print(f"slot -> {label}")
        await trio.sleep(0.05)  # holds the worker slot meanwhile

    async with trunner.open_scheduler(max_workers=1) as scheduler:

        def runner_for(name: str, priority: Priority) -> trunner.SequencedTaskRunner:
            traits = trunner.TaskTraits(priority=priority)
            return scheduler.create_sequenced_runner(name=name, traits=traits)

        boot = runner_for("boot", Priority.USER_VISIBLE)
        cleanup = runner_for("cleanup", Priority.BEST_EFFORT)
        render = runner_for("render", Priority.USER_VISIBLE)
        ui = runner_for("input", Priority.USER_BLOCKING)
        tools = scheduler.create_parallel_runner(
            max_concurrency=4,
            name="tools",
            traits=trunner.TaskTraits(priority=Priority.BEST_EFFORT),
        )

        async def post(
            runner: trunner.TaskRunner,
            labels: list[str],
            traits: trunner.TaskTraits | None = None,
        ) -> None:
            for label in labels:
                runner.post_task(job, label, traits=traits)
            await trio.sleep(0.01)  # let the runner queue for the slot

        # Take the only slot first, so that everything posted next must wait.
        started = trio.Event()

        async def boot_job() -> None:
            print("slot -> boot")
            started.set()
            await trio.sleep(0.2)

        boot.post_task(boot_job)
        await started.wait()
        # Posted lowest priority first, one runner after another.
        await post(cleanup, ["cleanup 1 (BEST_EFFORT)", "cleanup 2 (BEST_EFFORT)"])
        await post(tools, ["tools lint (BEST_EFFORT)"])
        await post(render, ["render 1  (USER_VISIBLE)", "render 2  (USER_VISIBLE)"])
        # Per-task traits replace the runner's for that task.
        urgent = trunner.TaskTraits(priority=Priority.USER_BLOCKING)
        await post(tools, ["tools save (USER_BLOCKING)"], traits=urgent)
        await post(ui, ["input 1   (USER_BLOCKING)", "input 2   (USER_BLOCKING)"])
        waiting = stats(scheduler).waiting
        print(f"waiting for the slot (blocking, visible, best effort): {waiting}")

        for runner in (boot, cleanup, render, ui, tools):
            await runner.wait_idle()
        print(f"all done, slots in use: {stats(scheduler).borrowed_tokens}")


if __name__ == "__main__":
    trio.run(main)
