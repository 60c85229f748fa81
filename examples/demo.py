"""The trunner demo: one scheduler, three kinds of runner, timers and a reply.

Act 1: a sequenced runner owns an account ledger, lock-free: every update is a
task of its one sequence. A parallel runner fetches six items, three at a
time, and posts deposits; a thread runner checksums the items on its own OS
thread and replies to the ledger; a delayed audit and a heartbeat report on
the ledger.

Act 2 (needs ``trunner[jobs]``): durable jobs on the embedded SQLite store. A
worker runs the submitted jobs; one fails, is retried after its backoff and
succeeds; one is cancelled while it runs. A change listener narrates every
state change the manager makes.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import trio

import trunner

if TYPE_CHECKING:
    import outcome

    from trunner.jobs import JobInfo


def narrate(t0: float, where: str, message: str) -> None:
    print(f"[{trio.current_time() - t0:6.3f}s] {where:<9} {message}")


class Ledger:
    """An account ledger: only tasks of its sequenced runner touch it, no lock."""

    def __init__(self, log: functools.partial[None]) -> None:
        self.log, self.balance, self.hashed = log, 0, 0
        self.checker = trunner.SequenceChecker()  # binds to the first check()

    def deposit(self, item: int, amount: int) -> None:
        self.checker.check()  # raises if called off the ledger's sequence
        self.balance += amount
        self.log("ledger", f"deposit {amount} for item {item}, balance {self.balance}")

    def record(self, item: int, result: outcome.Outcome[tuple[str, str]]) -> None:
        digest, thread = result.unwrap()
        self.hashed += 1
        self.log("ledger", f"item {item} checksum {digest} (hashed on {thread})")

    def report(self, who: str) -> None:
        self.log(who, f"balance {self.balance}, {self.hashed} checksums")


def checksum(payload: bytes) -> tuple[str, str]:  # blocking: on the hasher's thread
    digest = hashlib.sha256(payload * 2000).hexdigest()[:12]
    return digest, threading.current_thread().name


async def main() -> None:
    print("Act 1: runners")
    await runners_act()
    print("Act 2: durable jobs on SQLite")
    await jobs_act()


async def runners_act() -> None:
    log = functools.partial(narrate, trio.current_time())
    async with (
        trunner.open_scheduler() as scheduler,
        scheduler.open_sequenced_runner(name="ledger") as ledger_seq,
        scheduler.open_parallel_runner(max_concurrency=3, name="fetch") as fetch,
        scheduler.open_thread_runner(name="hasher") as hasher,
    ):
        ledger = Ledger(log)

        async def fetch_item(item: int) -> None:
            await trio.sleep(0.3 + 0.2 * (item % 3))  # network I/O
            log("parallel", f"fetched item {item}")
            ledger_seq.post_task(ledger.deposit, item, 10 * item)
            hasher.post_task_and_reply_with_result(
                functools.partial(checksum, f"item-{item}".encode()),
                functools.partial(ledger.record, item),
                reply_runner=ledger_seq,
            )

        beat = ledger_seq.post_repeating_task(ledger.report, "heartbeat", interval=0.4)
        audited = ledger_seq.post_delayed_task(ledger.report, "delayed", delay=0.6)
        for item in range(1, 7):
            fetch.post_task(fetch_item, item)
        log("main", "posted 6 fetches, an audit in 0.6 s, a heartbeat every 0.4 s")

        await fetch.wait_idle()  # every fetch has posted its deposit and checksum
        await hasher.wait_idle()  # every checksum has posted its reply
        await ledger_seq.wait_idle()
        await audited.wait()
        beat.stop()
        log("main", f"balance {ledger.balance} after {beat.runs} heartbeats; summary:")
        for runner in (fetch, hasher, ledger_seq):
            print(f"  {runner.name:<6} {runner.statistics()}")


async def jobs_act() -> None:
    from trunner.jobs import JobState, Registry, open_job_manager, open_store

    log = functools.partial(narrate, trio.current_time())
    registry = Registry()
    failures: list[str] = []

    @registry.handler("resize")
    async def resize(image: str) -> str:
        await trio.sleep(0.3)
        return f"{image} resized"

    @registry.handler("upload")
    async def upload(image: str) -> str:
        if not failures:  # the first attempt fails: the store retries it
            failures.append(image)
            raise ConnectionError("the bucket is down")
        return f"s3://bucket/{image}"

    @registry.handler("report")
    async def report(days: int) -> str:
        await trio.sleep(3600)  # cancelled long before
        return f"{days} days"

    finished: set[str] = set()
    all_done = trio.Event()

    def narrate_change(job: JobInfo) -> None:
        detail = {
            JobState.SUCCEEDED: f" -> {job.result}",
            JobState.PENDING: " (retry after a failure)" if job.error else "",
        }.get(job.state, "")
        log("jobs", f"{job.id:<10} {job.state.value}{detail}")
        if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
            finished.add(job.id)
            if len(finished) == 4:
                all_done.set()

    retry = trunner.RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0)
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(f"sqlite:///{Path(directory) / 'jobs.db'}")
        async with open_job_manager(store, registry, concurrency=2, retry=retry) as jm:
            jm.add_listener(narrate_change)
            for image in ("cat.png", "dog.png"):
                await jm.submit_job(f"resize-{image[:3]}", "resize", image)
            await jm.submit_job("upload-cat", "upload", "cat.png")
            await jm.submit_job("report", "report", 7)
            log("main", "submitted 4 jobs; each returned once committed to SQLite")
            await trio.sleep(0.5)
            await jm.cancel_job("report")
            log("main", "cancelled the report while it ran")
            with trio.fail_after(10):
                await all_done.wait()
            counts = await jm.counts()
            log("main", ", ".join(f"{s.value} {n}" for s, n in counts.items() if n))


if __name__ == "__main__":
    trio.run(main)
