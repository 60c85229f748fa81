"""Delayed tasks: run later, in deadline order, unless cancelled first.

``post_delayed_task(fn, delay=s)`` queues ``fn`` on its runner ``s`` seconds
from now, on the trio clock. Delayed tasks fall due in deadline order, and
tasks with the same deadline in posting order. A delayed task is PENDING while
it waits; cancelling its handle means it never runs.
"""

from __future__ import annotations

import trio

import trunner


async def main() -> None:
    t0 = trio.current_time()
    fired: list[str] = []

    def reminder(label: str) -> None:
        fired.append(label)
        print(f"[{trio.current_time() - t0:5.2f}s] {label}")

    async with trunner.open_sequenced_runner(name="reminders") as runner:
        # Posted out of order: they fire by deadline, ties in posting order.
        plan = [("tea is ready", 0.3), ("stretch", 0.1), ("drink water", 0.2)]
        plan += [("check mail", 0.1), ("call back", 0.25)]
        handles = {
            label: runner.post_delayed_task(reminder, label, delay=delay)
            for label, delay in plan
        }
        print(f"posted {len(handles)} reminders: {runner.statistics().delayed} delayed")

        cancelled = handles["call back"]
        print(
            f"cancel 'call back' -> {cancelled.cancel()}, state {cancelled.state.value}"
        )
        try:
            runner.post_delayed_task(reminder, "yesterday", delay=-1)
        except ValueError as error:
            print(f"a negative delay -> ValueError: {error}")

        # A delayed task's handle can be awaited like any other.
        await handles["tea is ready"].wait()
        print(f"fired in order: {fired}")
        for label, handle in handles.items():
            print(f"  {label:<13} {handle.state.value}")
        stats = runner.statistics()
        print(f"statistics: succeeded={stats.succeeded} cancelled={stats.cancelled}")

        # A delayed task still waiting when the runner closes is skipped.
        late = runner.post_delayed_task(reminder, "next week", delay=7 * 24 * 3600)
    print(f"after close: 'next week' {late.state.value}")


if __name__ == "__main__":
    trio.run(main)
