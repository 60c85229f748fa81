"""Durable jobs: a registry of handlers, a SQLite store, submit, watch, cancel.

A `trunner.jobs.Registry` names the handlers; jobs store that name and their
arguments as JSON, never a pickled function. ``submit_job`` returns once the
job is committed to the SQLite file. The manager runs due jobs on its
workers, retries failures after a backoff stored with the job, and records
each job's end in the store. Here one job is delayed, one fails once and is
retried, one is cancelled while it runs, and the program watches their states
change until every job has finished.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import attrs
import trio

import trunner
from trunner.jobs import JobInfo, JobState, Registry, SQLiteJobStore, open_job_manager

registry = Registry()


@attrs.frozen
class SendEmail:
    """The argument of the ``send_email`` handler: stored as a JSON object."""

    to: str
    subject: str


@registry.handler("send_email")
async def send_email(email: SendEmail) -> dict[str, str]:
    await trio.sleep(0.1)  # talk to the mail server
    return {"sent_to": email.to}


@registry.handler("resize")
def resize(size: list[int]) -> list[int]:
    # A plain function: the manager runs it on a worker thread.
    width, height = size
    return [width // 2, height // 2]


flaky_calls: list[str] = []


@registry.handler("flaky")
async def flaky(name: str) -> str:
    flaky_calls.append(name)
    if len(flaky_calls) == 1:
        raise ConnectionError("mail server unreachable")
    return f"{name} done"


@registry.handler("sleepy")
async def sleepy(seconds: float) -> None:
    await trio.sleep(seconds)


FINISHED = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
# A short backoff, without jitter, so that the retry comes 0.2 s after the failure.
QUICK_RETRY = trunner.RetryPolicy(max_attempts=3, initial_delay=0.2, jitter=0.0)


def describe(job: JobInfo) -> str:
    line = f"{job.id}: {job.state.name}, attempt {job.attempts}/{job.max_attempts}"
    if job.result is not None:
        line += f", result {job.result!r}"
    if job.error is not None:
        # The error holds the whole traceback; its last line says what failed.
        line += f", last error {job.error.splitlines()[-1]!r}"
    if job.started_at is not None and job.finished_at is not None:
        took = (job.finished_at - job.started_at).total_seconds()
        line += f", last attempt took {took:.1f} s"
    return line


async def main() -> None:
    flaky_calls.clear()
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteJobStore(Path(directory) / "jobs.db")
        async with open_job_manager(
            store, registry, concurrency=4, retry=QUICK_RETRY, name="worker-1"
        ) as jm:
            welcome = SendEmail("ada@example.com", "Welcome")
            info = await jm.submit_job("email-1", "send_email", welcome)
            print(f"submitted {info.id}: {info.state.name}, args {info.args}")
            await jm.submit_job("resize-1", "resize", [1920, 1080])
            reminder = SendEmail("bob@example.com", "Reminder")
            await jm.submit_job("email-later", "send_email", reminder, delay=0.5)
            await jm.submit_job("flaky-1", "flaky", "report")
            await jm.submit_job("sleepy-1", "sleepy", 60.0)

            # Watch every job until all have finished, printing state changes.
            seen: dict[str, JobState] = {}
            cancelled = False
            while True:
                jobs = await jm.list_jobs()
                for job in reversed(jobs):  # oldest first
                    if seen.get(job.id) is not job.state:
                        seen[job.id] = job.state
                        why = ""
                        if job.state is JobState.PENDING and job.error is not None:
                            why = f" again, after {job.error.splitlines()[-1]!r}"
                        print(f"  {job.id} is {job.state.name}{why}")
                if seen.get("sleepy-1") is JobState.RUNNING and not cancelled:
                    await jm.cancel_job("sleepy-1")
                    cancelled = True
                if all(job.state in FINISHED for job in jobs):
                    break
                await trio.sleep(0.05)

            print("counts:", {s.name: n for s, n in (await jm.counts()).items() if n})
            for job in reversed(await jm.list_jobs()):
                print(describe(job))
            print(f"every job ran on {(await jm.get_job('email-1')).worker}")


if __name__ == "__main__":
    trio.run(main)
