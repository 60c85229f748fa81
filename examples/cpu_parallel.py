"""CPU-bound work in worker processes: a ProcessTaskRunner beside the Trio thread.

Python runs one thread of bytecode at a time, so pure-Python number crunching
on the Trio thread (or on a thread runner) holds up everything else. A process
runner ships picklable plain functions to worker processes instead: the Trio
thread stays free, and the work uses every core. Here a heartbeat on a
sequenced runner keeps ticking while the processes count primes.
"""

from __future__ import annotations

import os

import trio

import trunner


def count_primes(start: int, stop: int) -> int:
    """Count the primes in ``[start, stop)``: pure-Python CPU work."""
    return sum(
        1
        for n in range(max(start, 2), stop)
        if all(n % d for d in range(2, int(n**0.5) + 1))
    )


async def main() -> None:
    chunks = [(i, i + 20_000) for i in range(0, 120_000, 20_000)]
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_process_runner(max_workers=2, name="cpu") as cpu,
        scheduler.open_sequenced_runner(name="ui") as ui,
    ):
        ticks: list[float] = []
        beat = ui.post_repeating_task(
            lambda: ticks.append(trio.current_time()), interval=0.05
        )
        handles = [cpu.post_task(count_primes, start, stop) for start, stop in chunks]
        counts = [await handle.wait() for handle in handles]
        beat.stop()

        for (start, stop), count in zip(chunks, counts, strict=True):
            print(f"primes in [{start:>6}, {stop:>6}): {count}")
        print(f"total: {sum(counts)} primes below {chunks[-1][1]}")
        print(f"the ui sequence ticked {beat.runs} times meanwhile")
        try:
            cpu.post_task(lambda: 1)  # a lambda cannot be pickled
        except TypeError as error:
            print(f"refused at post time: {str(error).split(';')[0]}")
        print(f"main process {os.getpid()}; stats: {cpu.statistics()}")


if __name__ == "__main__":
    trio.run(main)
