"""What closing a runner does to its tasks: shutdown behaviours, grace, shutdown().

A graceful ``aclose()`` (also what leaving ``async with`` does) applies each
task's `trunner.ShutdownBehavior`: BLOCK_SHUTDOWN tasks run to their end,
pending ones included; SKIP_ON_SHUTDOWN tasks are skipped if pending and
finish if running; CONTINUE_ON_SHUTDOWN tasks are skipped or cancelled.
Delayed tasks not yet due are skipped and repeating tasks stop.
``aclose(grace_period=s)`` cancels what still runs after ``s`` seconds, and
``shutdown()`` stops everything at once, whatever the traits.
"""

from __future__ import annotations

from typing import TypeVar

import trio

import trunner

T = TypeVar("T")
Behavior = trunner.ShutdownBehavior
BLOCK = trunner.TaskTraits(shutdown_behavior=Behavior.BLOCK_SHUTDOWN)
SKIP = trunner.TaskTraits(shutdown_behavior=Behavior.SKIP_ON_SHUTDOWN)
CONTINUE = trunner.TaskTraits(shutdown_behavior=Behavior.CONTINUE_ON_SHUTDOWN)


async def work(seconds: float) -> None:
    await trio.sleep(seconds)


def report(*handles: trunner.TaskHandle[T]) -> None:
    for handle in handles:
        behavior = handle.traits.shutdown_behavior.name
        print(f"  {handle.name:<10} {behavior:<20} -> {handle.state.name}")


async def busy_runner(
    scheduler: trunner.Scheduler, long: str, short: str
) -> tuple[trunner.SequencedTaskRunner, list[trunner.TaskHandle[None]]]:
    """A BLOCK_SHUTDOWN sequence busy with a long task, and a short one pending."""
    seq = scheduler.create_sequenced_runner(name=long, traits=BLOCK)
    handles = [
        seq.post_task(work, 10.0, name=long),
        seq.post_task(work, 0.1, name=short),
    ]
    await trio.sleep(0.05)  # the long task is running now
    return seq, handles


async def main() -> None:
    async with trunner.open_scheduler() as scheduler:
        print("aclose(): 3 tasks running, 3 pending, 1 delayed, 1 repeating")
        par = scheduler.create_parallel_runner(max_concurrency=3, name="app")
        beat = par.post_repeating_task(work, 0.0, interval=0.02, name="heartbeat")
        await trio.sleep(0.05)  # a few beats while the workers are free
        handles = [
            par.post_task(work, 0.2, traits=BLOCK, name="save"),
            par.post_task(work, 0.2, traits=SKIP, name="upload"),
            par.post_task(work, 5.0, traits=CONTINUE, name="prefetch"),
            par.post_task(work, 0.1, traits=BLOCK, name="flush log"),
            par.post_task(work, 0.1, traits=SKIP, name="thumbnail"),
            par.post_task(work, 0.1, traits=CONTINUE, name="analytics"),
        ]
        later = par.post_delayed_task(
            work, 0.1, delay=60, traits=BLOCK, name="reminder"
        )
        await trio.sleep(0.05)  # the first three are running now
        t0 = trio.current_time()
        await par.aclose()
        print(f"closed after {trio.current_time() - t0:.1f} s")
        report(*handles)
        report(later)
        print(f"  heartbeat  stopped={beat.stopped} after {beat.runs} runs")

        print("aclose(grace_period=0.3): a long BLOCK_SHUTDOWN task is cancelled")
        seq, handles = await busy_runner(scheduler, "migrate", "vacuum")
        t0 = trio.current_time()
        await seq.aclose(grace_period=0.3)
        print(f"closed after {trio.current_time() - t0:.1f} s")
        report(*handles)

        print("shutdown(): stop now, whatever the traits")
        seq, handles = await busy_runner(scheduler, "export", "compress")
        seq.shutdown()
        try:
            seq.post_task(work, 0.1)
        except trunner.RunnerClosedError:
            print("  posting after shutdown() -> RunnerClosedError")
        await seq.aclose()  # waits for the runner's machinery to end
        report(*handles)


if __name__ == "__main__":
    trio.run(main)
