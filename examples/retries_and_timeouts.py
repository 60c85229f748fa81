"""Retries with backoff, per-attempt timeouts, and cancelling a task by id.

A `trunner.RetryPolicy` retries the exceptions in ``retry_on``; attempt k+1
waits ``min(max_delay, initial_delay * multiplier**(k-1))`` (spread by
``jitter``, 0 here so the schedule is exact). ``timeout=`` bounds each attempt:
one that runs past it fails with `trunner.TaskTimeoutError`, a `TimeoutError`,
which a policy may retry too. ``runner.cancel(task_id)`` cancels a task by id.
"""

from __future__ import annotations

import trio

import trunner


def report(handle: trunner.TaskHandle[object], error: BaseException) -> None:
    print(f"on_error: {handle.name} failed: {type(error).__name__}")


async def main() -> None:
    t0 = trio.current_time()
    attempts: list[float] = []

    async def fetch() -> str:
        attempts.append(trio.current_time() - t0)
        if len(attempts) < 4:
            raise ConnectionError("connection reset")
        return "payload"

    async def slow(seconds: float) -> str:
        await trio.sleep(seconds)
        return f"slept {seconds}"

    backoff = trunner.RetryPolicy(
        max_attempts=5,
        initial_delay=0.1,
        multiplier=2.0,
        max_delay=1.0,
        jitter=0.0,
        retry_on=(ConnectionError,),
    )
    async with trunner.open_parallel_runner(
        max_concurrency=4, name="net", on_error=report
    ) as runner:
        handle = runner.post_task(fetch, retry=backoff)
        print(f"fetch -> {await handle.wait()!r} after {handle.attempts} attempts")
        print("attempt times: " + ", ".join(f"{t:.1f}" for t in attempts))

        # Each attempt gets 0.5 s; a 2 s task times out.
        late = runner.post_task(slow, 2.0, timeout=0.5, name="slow(2.0)")
        try:
            await late.wait()
        except trunner.TaskTimeoutError as error:
            print(f"timeout: {error}")

        # A timeout is a TimeoutError: retried when retry_on covers it.
        patient = trunner.RetryPolicy(
            max_attempts=3, initial_delay=0.1, jitter=0.0, retry_on=(TimeoutError,)
        )
        again = runner.post_task(slow, 2.0, timeout=0.5, retry=patient, name="again")
        try:
            await again.wait()
        except trunner.TaskTimeoutError:
            print(f"{again.name}: timed out {again.attempts} times, gave up")

        long = runner.post_task(slow, 60.0, name="long")
        await trio.sleep(0.2)
        print(f"cancel(#{long.id}) -> {runner.cancel(long.id)}")
        try:
            await long.wait()
        except trunner.TaskCancelledError:
            print(f"long.wait() raised TaskCancelledError; state {long.state.name}")
        print(f"cancel again -> {runner.cancel(long.id)} (already finished)")

        metrics = runner.metrics()
        print(
            f"metrics: succeeded={metrics.succeeded} failed={metrics.failed}"
            f" cancelled={metrics.cancelled} retries={metrics.retries}"
            f" timeouts={metrics.timeouts}"
        )


if __name__ == "__main__":
    trio.run(main)
