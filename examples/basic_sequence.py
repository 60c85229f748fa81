"""A sequenced runner is a logical thread: FIFO order, and state without locks.

Tasks of a `trunner.SequencedTaskRunner` run one at a time in posting order,
and a task that awaits still holds the sequence. So a read-modify-write that
spans an ``await`` is safe there, while the same code on a parallel runner
loses updates. A `trunner.SequenceChecker` asserts that an object is only
touched from its own sequence.
"""

from __future__ import annotations

import trio

import trunner


class Counter:
    """A counter whose read-modify-write spans an await: safe on one sequence only."""

    def __init__(self, checker: bool) -> None:
        self.value = 0
        self.order: list[int] = []
        self.checker = trunner.SequenceChecker() if checker else None

    async def add(self, task_number: int) -> None:
        if self.checker is not None:
            self.checker.check()  # binds to the first sequence that checks it
        current = self.value
        await trio.sleep(0.01)  # a real program would do I/O here
        self.value = current + 1
        self.order.append(task_number)


def report(handle: trunner.TaskHandle[object], error: BaseException) -> None:
    """Report a failed task in one line (the default on_error logs a traceback)."""
    print(f"checker: {handle.name} on another runner -> {type(error).__name__}")


async def main() -> None:
    async with trunner.open_scheduler() as scheduler:
        async with scheduler.open_sequenced_runner(name="counter") as seq:
            counter = Counter(checker=True)
            for n in range(1, 9):
                seq.post_task(counter.add, n)
            await seq.wait_idle()
            print(f"sequenced: 8 increments -> value {counter.value}")
            print(f"sequenced: tasks ran in order {counter.order}")

            async def where() -> bool:
                return seq.runs_tasks_in_current_sequence()

            on_sequence = await seq.run(where)
            print(f"sequenced: a task runs on the counter's sequence: {on_sequence}")

            # The checker is bound to the counter's sequence now: anywhere else fails.
            try:
                await counter.add(99)
            except trunner.SequenceViolationError:
                print("checker: add() called from main -> SequenceViolationError")
            async with scheduler.open_parallel_runner(
                max_concurrency=2, on_error=report
            ) as other:
                other.post_task(counter.add, 100)
                await other.wait_idle()  # leaving the block would skip a pending task

        async with scheduler.open_parallel_runner(max_concurrency=8, name="par") as par:
            unsafe = Counter(checker=False)
            for n in range(1, 9):
                par.post_task(unsafe.add, n)
            await par.wait_idle()
            print(f"parallel:  8 increments -> value {unsafe.value} (lost updates)")


if __name__ == "__main__":
    trio.run(main)
