"""RetryPolicy: how often and how patiently a failing task is tried again."""

from __future__ import annotations

import math
import random
from typing import Final, cast, final

import attrs

from ._util import check_duration

_rng: Final = random.Random()


def capped_backoff(
    initial_delay: float, multiplier: float, max_delay: float, attempt: int
) -> float:
    """Return ``min(max_delay, initial_delay * multiplier ** (attempt - 1))``.

    Exact for every ``attempt >= 1``, however large: the power is never
    computed once it would pass the cap, so it cannot overflow (attempt 1025
    of a doubling backoff would). The shared formula of `RetryPolicy`, the
    durable retries of `trunner.jobs` and the resource pool's re-creates.
    """
    if initial_delay <= 0 or max_delay <= 0:
        return 0.0 if initial_delay <= 0 else max_delay
    exponent = attempt - 1
    if exponent <= 0 or multiplier == 1:
        return min(max_delay, initial_delay)
    if exponent * math.log(multiplier) > math.log(max_delay / initial_delay) + 1:
        # Well past the cap (the margin absorbs rounding): skip the power.
        # Never taken for max_delay=inf, whose log is inf.
        return max_delay
    try:
        return min(max_delay, initial_delay * multiplier**exponent)
    except OverflowError:  # only with an infinite max_delay
        return max_delay


def _check_delay(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    del instance
    check_duration(attribute.name, value)


def _to_exception_types(value: object) -> tuple[type[BaseException], ...]:
    candidates = (
        cast("tuple[object, ...]", value) if isinstance(value, tuple) else (value,)
    )
    types: list[type[BaseException]] = []
    for cls in candidates:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(
                f"retry_on must be an exception class or a tuple of them, not {value!r}"
            )
        types.append(cls)
    return tuple(types)


def _check_max_attempts(
    instance: object, attribute: attrs.Attribute[int], value: int
) -> None:
    del instance, attribute
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_attempts must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"max_attempts must be >= 1, got {value!r}")


def _check_multiplier(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    del instance, attribute
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"multiplier must be a number, not {value!r}")
    if not value >= 1 or math.isinf(value):
        raise ValueError(f"multiplier must be a finite number >= 1, got {value!r}")


def _check_jitter(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    del instance, attribute
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"jitter must be a number, not {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"jitter must be between 0 and 1, got {value!r}")


@final
@attrs.frozen
class RetryPolicy:
    """Try a failing task again, with capped exponential backoff.

    Attempt k+1 waits ``min(max_delay, initial_delay * multiplier ** (k - 1))``
    seconds after attempt k failed, spread by up to ``± jitter`` of itself;
    ``jitter=0`` makes the schedule exact. The wait follows the trio clock and
    is cancellable. Only exceptions that are instances of ``retry_on`` are
    retried; a `TaskTimeoutError` is a `TimeoutError`, hence an `OSError`.

    Args:
        max_attempts: attempts in all, the first included (>= 1).
        initial_delay: seconds before the second attempt (>= 0).
        multiplier: growth of the delay per attempt (>= 1).
        max_delay: cap on a delay before jitter (>= 0).
        jitter: relative spread of each delay, between 0 and 1.
        retry_on: the exception classes that are retried.

    Raises:
        ValueError: for ``max_attempts < 1``, a negative delay,
            ``multiplier < 1`` or ``jitter`` outside ``[0, 1]``.
        TypeError: for arguments of the wrong type.
    """

    max_attempts: int = attrs.field(default=3, validator=_check_max_attempts)
    initial_delay: float = attrs.field(default=0.1, validator=_check_delay)
    multiplier: float = attrs.field(default=2.0, validator=_check_multiplier)
    max_delay: float = attrs.field(default=30.0, validator=_check_delay)
    jitter: float = attrs.field(default=0.1, validator=_check_jitter)
    retry_on: tuple[type[BaseException], ...] = attrs.field(
        default=(Exception,), converter=_to_exception_types
    )

    def backoff(self, attempt: int) -> float:
        """Return the seconds to wait after failed attempt ``attempt`` (1-based)."""
        delay = capped_backoff(
            self.initial_delay, self.multiplier, self.max_delay, attempt
        )
        if self.jitter:
            delay *= 1 + self.jitter * _rng.uniform(-1.0, 1.0)
        return max(0.0, delay)

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether failed attempt ``attempt`` (1-based) with ``error`` is retried."""
        return attempt < self.max_attempts and isinstance(error, self.retry_on)
