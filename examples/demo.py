"""The trunner demo: one scheduler, three kinds of runner, timers and a reply.

A sequenced runner owns an account ledger, lock-free: every update is a task of
its one sequence. A parallel runner fetches six items, three at a time, and
posts deposits; a thread runner checksums the items on its own OS thread and
replies to the ledger; a delayed audit and a heartbeat report on the ledger.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from typing import TYPE_CHECKING

import trio

import trunner

if TYPE_CHECKING:
    import outcome


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


if __name__ == "__main__":
    trio.run(main)
