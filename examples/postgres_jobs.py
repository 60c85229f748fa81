"""Durable jobs in PostgreSQL: a worker and a front end sharing one schema.

``open_store("postgresql://...?schema=...")`` makes a `PostgresJobStore`; the
first connection creates the schema and its tables (and migrates them in
later versions). Two managers use the same database here, as two machines
would: a front end that only submits (``worker=False``) and a worker, which
hears of each job through LISTEN/NOTIFY instead of polling. The example uses
a schema of its own and drops it at the end.

It needs a PostgreSQL server (``$TRUNNER_EXAMPLE_POSTGRES``, by default the
test database ``postgresql://postgres@127.0.0.1:5432/test``) and the
``trunner[postgres]`` extra; without them it says so and stops.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import uuid

import trio

from trunner.jobs import Registry, StoreError, open_job_manager, open_store

URL = os.environ.get(
    "TRUNNER_EXAMPLE_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)

registry = Registry()


@registry.handler("square")
async def square(n: int) -> int:
    await trio.sleep(0.05)  # some work
    return n * n


async def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    def drop() -> None:
        statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(statement.format(sql.Identifier(schema)))

    await trio.to_thread.run_sync(drop)


async def main() -> None:
    if importlib.util.find_spec("psycopg") is None:
        print("This example needs psycopg: pip install 'trunner[postgres]'.")
        print("Skipped.")
        print("(nothing was stored)")
        return
    schema = f"trunner_example_{uuid.uuid4().hex[:8]}"
    store_url = f"{URL}?schema={schema}"
    try:
        async with (
            open_job_manager(open_store(store_url), registry, concurrency=4),
            open_job_manager(open_store(store_url), registry, worker=False) as front,
        ):
            print(f"schema {schema!r} created in {URL}")
            for n in range(1, 6):
                await front.submit_job(f"square-{n}", "square", n)
            print("5 jobs submitted by the front end (each committed first)")
            while True:
                jobs = await front.list_jobs()
                if all(job.result is not None for job in jobs):
                    break
                await trio.sleep(0.05)
            for job in sorted(jobs, key=lambda job: job.id):
                print(
                    f"{job.id}: {job.state.name}, result {job.result}, by {job.worker}"
                )
    except StoreError as error:
        print(f"No PostgreSQL server to use ({error}).")
        print("Set $TRUNNER_EXAMPLE_POSTGRES to a database URL to run this example.")
        print("Skipped.")
        return
    finally:
        with contextlib.suppress(Exception):  # no server: nothing to drop
            await drop_schema(schema)
    print(f"schema {schema!r} dropped")


if __name__ == "__main__":
    trio.run(main)
