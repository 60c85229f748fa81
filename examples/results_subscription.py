"""Result subscriptions: a stream of every task's `trunner.TaskResult`.

``runner.subscribe_results(buffer, policy)`` is an async context manager and
an async iterator. When a subscriber falls behind and its buffer is full, the
`trunner.DropPolicy` decides: ``DROP_NEWEST`` (the default) misses new results,
``DROP_OLDEST`` forgets old ones, ``BLOCK`` makes the runner wait for the
subscriber. Drops are counted in ``runner.metrics().dropped_results``.
"""

from __future__ import annotations

import trio

import trunner

DropPolicy = trunner.DropPolicy


async def job(n: int) -> int:
    await trio.sleep(0.1)
    return n


async def main() -> None:
    async with trunner.open_sequenced_runner(name="jobs") as runner:
        newest = runner.subscribe_results(buffer=2, policy=DropPolicy.DROP_NEWEST)
        oldest = runner.subscribe_results(buffer=2, policy=DropPolicy.DROP_OLDEST)
        async with newest, oldest:
            for n in range(5):
                runner.post_task(job, n)
            await runner.wait_idle()  # nobody reads meanwhile: buffers overflow
            for subscription in (newest, oldest):
                kept = [(await anext(subscription)).value for _ in range(2)]
                print(
                    f"{subscription.policy.name}: kept {kept},"
                    f" dropped {subscription.dropped}"
                )
        print(f"jobs: dropped_results={runner.metrics().dropped_results}")

    async with trunner.open_sequenced_runner(name="paced") as runner:
        t0 = trio.current_time()
        received: list[str] = []
        async with (
            runner.subscribe_results(buffer=1, policy=DropPolicy.BLOCK) as results,
            trio.open_nursery() as nursery,
        ):

            async def slow_reader() -> None:
                async for result in results:
                    received.append(f"{result.value}@{trio.current_time() - t0:.1f}")
                    await trio.sleep(0.5)  # the runner waits for us

            nursery.start_soon(slow_reader)
            for n in range(4):
                runner.post_task(job, n)
            await runner.wait_idle()
            done_at = trio.current_time() - t0
            print(f"BLOCK: the last task ended at {done_at:.1f}s, paced by the reader")
            await runner.aclose()  # the reader's loop ends once it has read all
        print(f"BLOCK: received {received}")
        print(f"paced: dropped_results={runner.metrics().dropped_results}")


if __name__ == "__main__":
    trio.run(main)
