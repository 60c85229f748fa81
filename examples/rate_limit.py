"""A rate limit: a token bucket shared by the tasks of a runner.

``RateLimit(per_second, burst)`` starts full with ``burst`` tokens and refills
at ``per_second``; each attempt of a task takes a token. So ``burst`` tasks
start at once, then one every ``1 / per_second`` seconds. A task waiting for
a token holds no worker slot of the scheduler. Retries take tokens too.
"""

from __future__ import annotations

import trio

import trunner


async def main() -> None:
    t0 = trio.current_time()
    starts: list[tuple[str, float]] = []

    async def call_api(label: str) -> None:
        starts.append((label, trio.current_time() - t0))
        await trio.sleep(0.01)

    def show(title: str) -> None:
        print(title)
        print("  " + "  ".join(f"{label}@{at:.1f}" for label, at in starts))
        starts.clear()

    limit = trunner.RateLimit(per_second=5, burst=3)
    async with trunner.open_parallel_runner(
        max_concurrency=10, name="api", rate_limit=limit
    ) as runner:
        for label in ("r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"):
            runner.post_task(call_api, label)
        await runner.wait_idle()
        show("8 requests at once: a burst of 3, then one every 0.2 s")

        # A quiet spell refills the bucket: the next burst starts at once.
        await trio.sleep(1.0)
        t0 = trio.current_time()
        for label in ("s0", "s1", "s2", "s3"):
            runner.post_task(call_api, label)
        await runner.wait_idle()
        show("after 1 s of quiet: 3 at once again, the 4th 0.2 s later")

        # Retries take tokens as well.
        tries = 0

        async def flaky() -> str:
            nonlocal tries
            tries += 1
            starts.append((f"try{tries}", trio.current_time() - t0))
            if tries < 3:
                raise ConnectionError("busy")
            return "done"

        await trio.sleep(1.0)
        t0 = trio.current_time()
        retry = trunner.RetryPolicy(initial_delay=0.0, jitter=0.0)
        handle = runner.post_task(flaky, retry=retry)
        runner.post_task(call_api, "other")
        print(f"flaky -> {await handle.wait()!r}")
        await runner.wait_idle()
        show("a retried task and another one share the bucket")

        metrics = runner.metrics()
        print(
            f"succeeded={metrics.succeeded} retries={metrics.retries}"
            f" max wait={metrics.wait_time.max:.1f}s"
        )


if __name__ == "__main__":
    trio.run(main)
