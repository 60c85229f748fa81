"""Task and reply: run work elsewhere, then continue on the runner that asked.

``post_task_and_reply(task, reply)`` runs ``task`` on one runner and, once it
has ended (however it ended), posts ``reply`` to another: by default the
runner of the caller. ``post_task_and_reply_with_result`` hands the reply an
`outcome.Outcome`: ``outcome.Value(result)``, or ``outcome.Error(exc)``, with
`trunner.TaskCancelledError` for a cancelled task. Here a sequenced ``ui``
runner sends work to a parallel ``workers`` runner and gets the replies back.
"""

from __future__ import annotations

import functools

import outcome
import trio

import trunner


async def compute(n: int) -> int:
    await trio.sleep(0.1 * abs(n))
    if n < 0:
        raise ValueError(f"cannot compute {n}")
    return n * n


def report(handle: trunner.TaskHandle[object], error: BaseException) -> None:
    print(f"workers: {handle.name} failed: {error!r}")


async def main() -> None:
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner(name="ui") as ui,
        scheduler.open_parallel_runner(
            max_concurrency=4, name="workers", on_error=report
        ) as workers,
    ):

        def on_ui(what: str) -> str:
            return f"{what} (on ui: {ui.runs_tasks_in_current_sequence()})"

        def show(label: str, result: outcome.Outcome[int]) -> None:
            if isinstance(result, outcome.Value):
                print(on_ui(f"reply {label}: Value({result.value})"))
            elif isinstance(result, outcome.Error):
                print(on_ui(f"reply {label}: Error({type(result.error).__name__})"))

        def ask() -> None:
            # Inside a ui task the reply runner defaults to the current runner.
            for n in (3, -2, 1):
                workers.post_task_and_reply_with_result(
                    functools.partial(compute, n),
                    functools.partial(show, f"compute({n})"),
                )

        ui.post_task(ask)

        # From outside any runner, name the reply runner.
        workers.post_task_and_reply(
            functools.partial(compute, -1),
            lambda: print(on_ui("reply after a failed task: it runs all the same")),
            reply_runner=ui,
        )
        slow = workers.post_task_and_reply_with_result(
            functools.partial(compute, 50),
            functools.partial(show, "compute(50)"),
            reply_runner=ui,
        )
        await trio.sleep(0.05)
        print(f"main: cancel compute(50) -> {slow.cancel()}")

        await ui.wait_idle()  # ask() has posted its work
        await workers.wait_idle()  # every task has ended and posted its reply
        await ui.wait_idle()  # every reply has run
        for runner in (workers, ui):
            stats = runner.statistics()
            print(
                f"{runner.name}: succeeded={stats.succeeded} failed={stats.failed}"
                f" cancelled={stats.cancelled}"
            )


if __name__ == "__main__":
    trio.run(main)
