"""Recurring jobs: ``every=`` and ``cron=`` schedules, shared by two workers.

``jm.schedule(name, handler, args, every=seconds)`` (or ``cron="m h dom mon
dow"``, read in UTC) stores a recurring job; each tick becomes one job with
the id ``"<name>@<tick>"``, however many workers share the store: they race
to insert it, and the tick's id lets only one in. Here two workers, each with
its own connection to one SQLite file, share an ``every=1`` schedule; a daily
cron schedule shows its next run time; both are then removed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from trunner.jobs import Registry, SQLiteJobStore, open_job_manager

registry = Registry()
started_at: list[float] = []


@registry.handler("heartbeat")
async def heartbeat() -> None:
    # A handler may take no argument: its jobs are submitted with args=None.
    print(f"  heartbeat at {trio.current_time() - started_at[0]:.1f} s")


@registry.handler("digest")
async def digest(recipient: str) -> str:
    return f"digest sent to {recipient}"


async def main() -> None:
    started_at[:] = [trio.current_time()]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "jobs.db"
        # A manager that only submits and inspects (worker=False) stores the
        # schedules; the workers below fire them.
        async with open_job_manager(
            SQLiteJobStore(path), registry, worker=False
        ) as admin:
            await admin.schedule("heartbeat", "heartbeat", every=1.0)
            await admin.schedule(
                "digest", "digest", "ops@example.com", cron="0 8 * * *"
            )
            for schedule in await admin.list_schedules():
                when = (
                    "every 1 s" if schedule.cron is None else f"cron {schedule.cron!r}"
                )
                next_run = schedule.next_run_at.isoformat(timespec="seconds")
                print(f"schedule {schedule.name}: {when}, next run {next_run}")

        # Each worker has its own store object on the same file.
        async with (
            open_job_manager(SQLiteJobStore(path), registry, name="worker-a") as a,
            open_job_manager(SQLiteJobStore(path), registry, name="worker-b") as b,
        ):
            await trio.sleep(3.5)
            print(f"unschedule heartbeat -> {await b.unschedule('heartbeat')}")
            print(f"unschedule digest -> {await a.unschedule('digest')}")
            print(f"unschedule digest again -> {await a.unschedule('digest')}")
            print(f"schedules left: {await a.list_schedules()}")

            runs = await a.list_jobs(handler="heartbeat")
            print(f"{len(runs)} heartbeat runs, one per tick:")
            for run in reversed(runs):  # oldest first
                print(f"  {run.id} {run.state.name} on {run.worker}")


if __name__ == "__main__":
    trio.run(main)
