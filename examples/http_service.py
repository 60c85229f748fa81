"""Remote jobs over HTTP: serve a JobManager, submit with the Client, watch events.

`trunner.service.create_app` turns a `trunner.jobs.JobManager` into a JSON
service with a server-sent event stream of every job change; `serve` runs it
on hypercorn's trio worker (``port=0``: any free port, read back from the
server); `Client` talks to it with httpx and gets the library's own
exceptions back. Here one job succeeds, one fails once and is retried, one is
submitted twice (the second is refused with `JobExistsError`), and the
program prints each change as the event stream reports it. The service's
manager only submits and inspects (``worker=False``): the jobs run on another
manager on the same SQLite file, as a ``trunner worker`` process would, and
their claims and ends reach the event stream through the store (which the
service polls every ``poll_interval`` on SQLite). The same service runs from
the command line with ``trunner serve --no-worker``. Needs
``pip install 'trunner[service]'``.
"""

from __future__ import annotations

import secrets
import tempfile
from contextlib import aclosing
from pathlib import Path

import attrs
import trio

import trunner
from trunner.jobs import (
    JobExistsError,
    JobState,
    Registry,
    Retry,
    open_job_manager,
    open_store,
)
from trunner.service import BearerTokens, Client, create_app, serve

#: A real server on a real socket: the example tests run it in real time.
REAL_CLOCK = True

registry = Registry()


@attrs.frozen
class Thumbnail:
    """The argument of ``thumbnail``: sent as a JSON object over HTTP."""

    image: str
    width: int


@registry.handler("thumbnail")
async def thumbnail(args: Thumbnail) -> str:
    await trio.sleep(0.05)  # the actual resizing
    return f"{args.image}@{args.width}px"


attempts: dict[str, int] = {}


@registry.handler("upload")
async def upload(args: str) -> str:
    attempts[args] = attempts.get(args, 0) + 1
    if attempts[args] == 1:
        raise Retry("the bucket said 503", delay=0.1)
    return f"s3://bucket/{args}"


async def watch(client: Client, job_ids: set[str], started: trio.Event) -> None:
    """Print each job change until every job in ``job_ids`` has finished."""
    finished: set[str] = set()
    started.set()
    async with aclosing(client.events()) as events:
        async for job in events:
            detail = f" -> {job.result}" if job.state is JobState.SUCCEEDED else ""
            if job.error and job.state is JobState.PENDING:
                detail = f" (attempt {job.attempts} failed; retrying)"
            print(f"event: {job.id} {job.state.value}{detail}")
            if job.state in (JobState.SUCCEEDED, JobState.FAILED):
                finished.add(job.id)
            if finished >= job_ids:
                return


async def main() -> None:
    token = secrets.token_urlsafe(16)  # in real life: from a file, never the code
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'jobs.db'}"
        retry = trunner.RetryPolicy(max_attempts=3, initial_delay=0.1, jitter=0)
        async with (
            open_job_manager(
                open_store(url), registry, worker=False, retry=retry, poll_interval=0.1
            ) as manager,
            open_job_manager(open_store(url), registry),  # the worker
        ):
            app = create_app(manager, auth=BearerTokens({token: "example"}))
            async with (
                serve(app, host="127.0.0.1", port=0) as server,
                Client(server.url, token=token) as client,
                trio.open_nursery() as nursery,
            ):
                print(f"serving on {server.url} (dashboard at {server.url}/)")
                started = trio.Event()
                nursery.start_soon(watch, client, {"thumb-1", "upload-1"}, started)
                await started.wait()
                await trio.sleep(0.2)  # let the stream connect before submitting
                await client.submit_job(
                    "thumb-1", "thumbnail", {"image": "cat.png", "width": 128}
                )
                await client.submit_job("upload-1", "upload", "cat.png")
                try:
                    await client.submit_job(
                        "thumb-1", "thumbnail", {"image": "dog.png", "width": 64}
                    )
                except JobExistsError as error:
                    print(f"refused: {error}")
            # The watcher has seen both jobs finish.
            job = await manager.get_job("upload-1")
            print(f"upload-1 took {job.attempts} attempts: {job.result}")


if __name__ == "__main__":
    trio.run(main)
