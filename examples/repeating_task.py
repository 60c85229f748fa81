"""Repeating tasks: a fixed rate on absolute deadlines, or a fixed delay.

By default ``post_repeating_task`` keeps a fixed rate: run k is due at
``start + initial_delay + k * interval`` however long each run takes, so the
schedule never drifts. ``mode=RepeatMode.FIXED_DELAY`` waits ``interval``
after each run has ended instead, so slow runs push the next ones back.
``RepeatingHandle.stop()`` ends the repetition and ``.runs`` counts the runs.
"""

from __future__ import annotations

import trio

import trunner


async def main() -> None:
    t0 = trio.current_time()
    starts: dict[str, list[float]] = {}

    async def poll(label: str) -> None:
        starts.setdefault(label, []).append(round(trio.current_time() - t0, 2))
        await trio.sleep(0.04)  # each run takes 40 ms

    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner(name="rate") as rate_runner,
        scheduler.open_sequenced_runner(name="delay") as delay_runner,
    ):
        rate = rate_runner.post_repeating_task(poll, "fixed rate", interval=0.1)
        delay = delay_runner.post_repeating_task(
            poll, "fixed delay", interval=0.1, mode=trunner.RepeatMode.FIXED_DELAY
        )
        late = rate_runner.post_repeating_task(
            poll, "late", interval=10, initial_delay=5
        )
        await trio.sleep(0.55)
        for handle in (rate, delay):
            handle.stop()
        print(f"stopped: fixed rate stopped={rate.stopped}, runs={rate.runs}")
        print(f"stopped: fixed delay stopped={delay.stopped}, runs={delay.runs}")
        print(f"late:        stopped={late.stopped}, runs={late.runs} (first in 5 s)")

        runs_at_stop = rate.runs
        await trio.sleep(0.3)
        print(f"0.3 s after stop(): fixed rate runs={rate.runs} (was {runs_at_stop})")
    # Leaving the block closes the runners, which stops the repeats left.
    print(f"after close: late stopped={late.stopped}, runs={late.runs}")
    for label, times in starts.items():
        print(f"{label:<11} runs started at {times}")


if __name__ == "__main__":
    trio.run(main)
