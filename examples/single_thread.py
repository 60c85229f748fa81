"""A thread runner gives a thread-bound object one thread for its whole life.

A `sqlite3` connection may only be used on the thread that created it. A
`trunner.SingleThreadTaskRunner` runs every task (plain functions) on one
dedicated OS thread, one at a time in FIFO order, so the connection is created,
used and closed there, while the results come back to trio with ``await
runner.run(...)``: the trio thread never blocks on the database.
"""

from __future__ import annotations

import sqlite3
import threading

import trio

import trunner

CITIES = [("Lyon", 522_000), ("Nantes", 320_000), ("Lille", 236_000), ("Nice", 342_000)]


class Database:
    """A sqlite3 connection that lives on the thread runner's thread."""

    def __init__(self) -> None:
        self.checker = trunner.SequenceChecker()  # bound to the db runner
        self.conn = sqlite3.connect(":memory:")  # check_same_thread=True
        print(f"db: connected on thread {threading.current_thread().name!r}")

    def setup(self, rows: list[tuple[str, int]]) -> int:
        self.checker.check()
        with self.conn:  # one transaction
            self.conn.execute("CREATE TABLE city (name TEXT, population INTEGER)")
            self.conn.executemany("INSERT INTO city VALUES (?, ?)", rows)
        return len(rows)

    def larger_than(self, population: int) -> list[tuple[str, int]]:
        self.checker.check()
        query = "SELECT name, population FROM city WHERE population > ? ORDER BY name"
        rows: list[tuple[str, int]] = self.conn.execute(query, (population,)).fetchall()
        return rows

    def close(self) -> None:
        self.checker.check()
        self.conn.close()
        print(f"db: closed on thread {threading.current_thread().name!r}")


async def main() -> None:
    print(f"main: trio runs on thread {threading.current_thread().name!r}")
    async with trunner.open_thread_runner(name="db") as db_runner:
        db = await db_runner.run(Database)
        inserted = await db_runner.run(db.setup, CITIES)
        print(f"main: inserted {inserted} rows")

        # Posted back to back: the thread runs them one at a time, in order.
        queries = [db_runner.post_task(db.larger_than, n) for n in (300_000, 500_000)]
        for n, handle in zip((300_000, 500_000), queries, strict=True):
            print(f"main: cities over {n:,}: {await handle.wait()}")

        # The connection refuses any other thread, the trio thread included.
        try:
            db.conn.execute("SELECT 1")
        except sqlite3.ProgrammingError as error:
            reason = str(error).split(".")[0]
            print(f"main: using it from trio -> ProgrammingError: {reason}")

        await db_runner.run(db.close)
        stats = db_runner.statistics()
        print(
            f"main: db runner succeeded={stats.succeeded} on {db_runner.thread.name!r}"
        )


if __name__ == "__main__":
    trio.run(main)
