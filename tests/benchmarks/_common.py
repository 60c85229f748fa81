"""Shared helpers of the benchmarks: interleaved rounds, medians, goals, tables.

Every figure a benchmark prints is compared with a baseline measured in the
same process and the same run. The machine is noisy, so the variants of a
benchmark run interleaved (baseline, candidate, baseline, candidate, ...) for
several rounds, and the tables show medians over the rounds.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import statistics
import sys
from typing import TYPE_CHECKING, Final, Literal, TypeVar

import attrs
import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

T = TypeVar("T")

#: Rounds per benchmark unless ``--rounds`` says otherwise.
DEFAULT_ROUNDS: Final = 7


def median(values: Sequence[float]) -> float:
    """Return the median of ``values`` (NaN when there are none)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def paired_ratios(candidate: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Return ``candidate[i] / baseline[i]`` for each round ``i``."""
    return [c / b for c, b in zip(candidate, baseline, strict=True)]


def interleave(
    variants: Sequence[tuple[str, Callable[[], T]]],
    *,
    rounds: int,
    warmup: bool = True,
    log: bool = True,
) -> dict[str, list[T]]:
    """Run each variant once per round, interleaved, and collect the results.

    The order of the variants alternates between rounds (forward, then
    backward), so that no variant always runs right after the same one. A
    full collection runs before each measurement, so that one variant does not
    pay for the garbage of another. With ``warmup``, each variant runs once
    before the first round and its result is dropped.
    """
    results: dict[str, list[T]] = {name: [] for name, _ in variants}
    if warmup:
        for _, run in variants:
            gc.collect()
            run()
    for index in range(rounds):
        order = list(variants) if index % 2 == 0 else list(reversed(variants))
        for name, run in order:
            gc.collect()
            results[name].append(run())
        if log:
            print(f"  round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
    return results


@attrs.frozen
class Goal:
    """A target for a figure: ``value >= threshold`` or ``value <= threshold``."""

    op: Literal[">=", "<="]
    threshold: float

    def met_by(self, value: float) -> bool:
        """Return whether ``value`` meets the goal."""
        if self.op == ">=":
            return value >= self.threshold
        return value <= self.threshold

    def describe(self, unit: str = "") -> str:
        """Return the goal as table text, such as ``>= 1.5``."""
        return f"{self.op} {self.threshold:g}{unit}"


@attrs.frozen
class Row:
    """One line of a results table."""

    metric: str
    value: str
    baseline: str
    ratio: str
    goal: str = "info"
    status: str = ""


def status(goal: Goal, value: float) -> str:
    """Return ``PASS`` or ``MISS`` for ``value`` against ``goal``."""
    return "PASS" if goal.met_by(value) else "MISS"


def fmt_rate(per_second: float) -> str:
    """Format a rate such as ``312,000/s``."""
    return f"{per_second:,.0f}/s"


def fmt_ms(milliseconds: float) -> str:
    """Format milliseconds such as ``1.52 ms``."""
    return f"{milliseconds:.2f} ms"


def fmt_us(microseconds: float) -> str:
    """Format microseconds such as ``15.2 us``."""
    return f"{microseconds:.1f} us"


def fmt_bytes(size: float) -> str:
    """Format a size such as ``285 B``."""
    return f"{size:.0f} B"


def fmt_ratio(ratio: float) -> str:
    """Format a ratio with three significant digits, such as ``1.52x``."""
    return f"{ratio:.3g}x"


def fmt_spread(values: Sequence[float]) -> str:
    """Format the range of per-round values, such as ``[1.4-1.61]``."""
    return f"[{min(values):.3g}-{max(values):.3g}]"


def compare(
    metric: str,
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    fmt: Callable[[float], str],
    goal: Goal | None = None,
    goal_on: Literal["ratio", "value"] = "ratio",
    goal_unit: str = "",
) -> Row:
    """Make the row comparing per-round ``candidate`` and ``baseline`` figures.

    The figures are medians over the rounds; the ratio is the median of the
    per-round ratios, followed by their range. The goal, if any, applies to
    the median ratio or to the candidate's median value.
    """
    ratios = paired_ratios(candidate, baseline)
    ratio = median(ratios)
    value = median(candidate)
    return Row(
        metric=metric,
        value=fmt(value),
        baseline=fmt(median(baseline)),
        ratio=f"{fmt_ratio(ratio)} {fmt_spread(ratios)}",
        goal="info" if goal is None else goal.describe(goal_unit),
        status=""
        if goal is None
        else status(goal, ratio if goal_on == "ratio" else value),
    )


def print_table(title: str, rows: Sequence[Row]) -> None:
    """Print ``rows`` as a markdown table under ``title``."""
    header = ("metric", "trunner", "baseline", "ratio", "goal", "status")
    lines = [(r.metric, r.value, r.baseline, r.ratio, r.goal, r.status) for r in rows]
    widths = [
        max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)
    ]

    def render(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    print()
    print(f"### {title}")
    print()
    print(render(header))
    print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for line in lines:
        print(render(line))
    print()


def print_environment(name: str, rounds: int) -> None:
    """Print what the figures were measured on."""
    print(
        f"{name}: Python {platform.python_version()}, trio {trio.__version__}, "
        f"{rounds} interleaved rounds (medians)",
        flush=True,
    )


def parse_rounds(description: str, default: int = DEFAULT_ROUNDS) -> int:
    """Parse the command line, which only takes ``--rounds``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--rounds", type=int, default=default, help="interleaved rounds"
    )
    namespace = parser.parse_args()
    rounds: int = namespace.rounds
    if rounds < 1:
        parser.error("--rounds must be >= 1")
    return rounds
