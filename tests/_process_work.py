"""Module-level functions for process-runner tests: a worker process imports them."""

from __future__ import annotations

import os
import time


def square(x: int) -> int:
    return x * x


def pid() -> int:
    return os.getpid()


def spin(seconds: float) -> float:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


def fail(message: str) -> None:
    raise ValueError(message)


def count_primes(limit: int) -> int:
    """CPU-bound work: the number of primes below ``limit``."""
    return sum(
        1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1))
    )
