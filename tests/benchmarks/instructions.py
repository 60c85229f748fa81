"""Instructions a task, counted by callgrind: the trunner side of three benchmarks.

Each variant runs under ``valgrind --tool=callgrind`` twice, with N tasks and
with none, and the script prints ``(I(N) - I(0)) / N``: what one task costs,
post and run, without the start-up (imports, the scheduler, the runner).
Unlike wall-clock time, the count does not depend on the load of the machine,
so two trees can be compared in one session, one after the other: run the
script in each, with ``PYTHONPATH`` pointing at that tree. The hash seed is
fixed and trio's random order of each run batch is seeded; what is left
(clock reads, the rate meter, the collector) moves a figure by a few tens of
instructions from run to run.

* sequenced: ``bench_sequenced.trunner_sequenced`` (``post_task`` N times,
  then ``wait_idle``);
* parallel: ``bench_parallel.trunner_parallel`` (8 workers, one checkpoint a
  task);
* bare, layered: ``bench_reliability.throughput`` without and with one no-op
  hook of each kind and one no-op middleware.

Run: ``python tests/benchmarks/instructions.py [VARIANT ...] [--tasks N]``
(valgrind is needed; a minute or two a variant).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Final

import trio
from trio._core import _run as trio_run  # pyright: ignore[reportPrivateUsage]  # its random

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tests.benchmarks import bench_parallel, bench_reliability, bench_sequenced
else:
    import bench_parallel
    import bench_reliability
    import bench_sequenced

TASKS: Final = 20_000

VARIANTS: Final[dict[str, Callable[[int], Awaitable[object]]]] = {
    "sequenced": bench_sequenced.trunner_sequenced,
    "parallel": bench_parallel.trunner_parallel,
    "bare": functools.partial(bench_reliability.throughput, False),
    "layered": functools.partial(bench_reliability.throughput, True),
}


def instructions(variant: str, tasks: int) -> int:
    """Return the instructions callgrind counts for ``variant`` with ``tasks``."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--run",
            variant,
            "--tasks",
            str(tasks),
        ],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no count from callgrind:\n{result.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "variants",
        nargs="*",
        metavar="VARIANT",
        help=f"{', '.join(VARIANTS)} (default: all)",
    )
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--run", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        # What runs under callgrind.
        trio_run._r.seed(0)  # pyright: ignore[reportPrivateUsage]  # trio shuffles each run batch
        trio.run(VARIANTS[args.run], args.tasks)
        return
    if unknown := set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    print(f"instructions a task (callgrind, {args.tasks:,} tasks, start-up subtracted)")
    for variant in args.variants or VARIANTS:
        start_up = instructions(variant, 0)
        total = instructions(variant, args.tasks)
        print(f"  {variant:<10} {(total - start_up) / args.tasks:>10,.0f}", flush=True)


if __name__ == "__main__":
    main()
