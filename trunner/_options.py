"""The options of runners and tasks, validated once at the boundary."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, TypeVar, cast, final

import attrs

from ._hooks import Middleware, TaskHooks
from ._ratelimit import RateLimit, TokenBucket
from ._retry import RetryPolicy
from ._traits import DEFAULT_TRAITS, TaskTraits
from ._util import (
    check_async_callable,
    check_duration,
    check_instance,
    check_optional_count,
    check_optional_instance,
    check_plain_callable,
)
from ._util import is_async_callable as is_async_callable  # for the runners

if TYPE_CHECKING:
    from ._handle import TaskHandle

T = TypeVar("T")

logger: Final = logging.getLogger("trunner.runner")


def log_task_error(handle: TaskHandle[object], error: BaseException) -> None:
    """Log a failed task: the default ``on_error`` of every runner."""
    logger.error("task %r failed", handle, exc_info=error)


def _check_timeout(
    instance: object, attribute: attrs.Attribute[float | None], value: object
) -> None:
    del instance
    if value is not None:
        check_duration(attribute.name, value, allow_zero=False)


def check_timeout(value: object) -> float | None:
    """Return a per-task ``timeout=`` as seconds, or raise naming it."""
    return None if value is None else check_duration("timeout", value, allow_zero=False)


def _check_max_pending(
    instance: object, attribute: attrs.Attribute[int | None], value: object
) -> None:
    del instance, attribute
    check_optional_count("max_pending", value)


def _check_middleware(
    instance: object,
    attribute: attrs.Attribute[tuple[Middleware, ...]],
    value: tuple[Middleware, ...],
) -> None:
    del instance, attribute
    for index, mw in enumerate(value):
        check_async_callable(f"middleware[{index}]", mw, "mw(task, call_next)")


def _to_tuple(value: object) -> tuple[Middleware, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"middleware must be a list of callables, not {value!r}")
    # Each item is checked by _check_middleware.
    return tuple(cast("Sequence[Middleware]", value))


def _check_on_error(instance: object, attribute: attrs.Attribute[T], value: T) -> None:
    del instance, attribute
    if value is not None and not callable(value):
        raise TypeError(
            f"on_error must be callable as on_error(handle, exc) or None, not {value!r}"
        )
    if value is not None:
        check_plain_callable("on_error", value, "on_error(handle, exc)")


@final
@attrs.frozen(kw_only=True)
class RunnerConfig:
    """The keyword options every ``open_*_runner`` / ``create_*_runner`` takes."""

    traits: TaskTraits = attrs.field(
        default=DEFAULT_TRAITS, validator=check_instance(TaskTraits, "a TaskTraits")
    )
    name: str | None = attrs.field(
        default=None, validator=check_optional_instance(str, "a str")
    )
    max_pending: int | None = attrs.field(default=None, validator=_check_max_pending)
    retry: RetryPolicy | None = attrs.field(
        default=None,
        validator=check_optional_instance(RetryPolicy, "a RetryPolicy"),
    )
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    hooks: TaskHooks | None = attrs.field(
        default=None, validator=check_optional_instance(TaskHooks, "a TaskHooks")
    )
    middleware: tuple[Middleware, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_check_middleware
    )
    rate_limit: RateLimit | None = attrs.field(
        default=None,
        validator=check_optional_instance(RateLimit, "a RateLimit"),
    )
    on_error: Callable[[TaskHandle[object], BaseException], object] | None = (
        attrs.field(default=None, validator=_check_on_error)
    )

    @classmethod
    def from_options(cls, options: Mapping[str, object], where: str) -> RunnerConfig:
        """Build the config of ``where`` (a call), naming any unknown option."""
        unknown = [key for key in options if key not in _OPTION_NAMES]
        if unknown:
            raise TypeError(
                f"{where} got an unexpected keyword argument {unknown[0]!r}; the "
                f"runner options are {', '.join(_OPTION_NAMES)}"
            )
        return cls(**options)  # type: ignore[arg-type]  # checked by the validators


@final
class TaskOptions:
    """What one task (or every task of a runner, shared) runs with.

    A task posted with the runner's defaults shares the runner's options
    object, or has None when the runner uses no feature at all; the hot paths
    test ``opts is None or opts.simple`` and skip everything else. The
    sequenced consumer also tests ``opts.light``: hooks and middleware, but
    only one attempt, which it makes itself.
    """

    __slots__ = (
        "bucket",
        "light",
        "middleware",
        "name",
        "offload",
        "on_finish",
        "on_queued",
        "on_start",
        "retry",
        "simple",
        "timeout",
        "traits",
    )

    def __init__(
        self,
        *,
        traits: TaskTraits,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,
        offload: bool,
        hooks: tuple[TaskHooks, ...],
        middleware: tuple[Middleware, ...],
        bucket: TokenBucket | None,
    ) -> None:
        self.traits = traits
        self.name = name
        self.retry = retry
        self.timeout = timeout
        self.offload = offload
        self.on_queued = tuple(h.on_queued for h in hooks if h.on_queued is not None)
        self.on_start = tuple(h.on_start for h in hooks if h.on_start is not None)
        self.on_finish = tuple(h.on_finish for h in hooks if h.on_finish is not None)
        self.middleware = middleware
        self.bucket = bucket
        self.simple = self._is_simple()
        self.light = self._is_light()

    def _is_light(self) -> bool:
        # True when one attempt is all the task needs: no retry, no timeout,
        # no offload, no rate limit; it may have hooks and middleware. The
        # sequenced consumer runs such a task itself (start_attempt).
        return not (
            self.retry or self.timeout is not None or self.offload or self.bucket
        )

    def _is_simple(self) -> bool:
        # True when the task needs nothing but to be called: the fast path.
        return not (
            self.retry
            or self.timeout is not None
            or self.offload
            or self.on_start
            or self.on_finish
            or self.middleware
            or self.bucket
        )

    def with_start_hook(
        self, hook: Callable[[TaskHandle[object]], object]
    ) -> TaskOptions:
        """Return a copy that also calls ``hook(task)`` when a task starts."""
        copy = self._copy()
        copy.on_start = (*self.on_start, hook)
        copy.simple = False
        return copy

    def _copy(self) -> TaskOptions:
        copy = TaskOptions.__new__(TaskOptions)
        for slot in TaskOptions.__slots__:
            setattr(copy, slot, getattr(self, slot))
        return copy

    def evolve(
        self,
        *,
        traits: TaskTraits,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,
        offload: bool,
    ) -> TaskOptions:
        """Return a copy with the per-task options of one post."""
        copy = self._copy()
        copy.traits = traits
        copy.name = name
        copy.retry = retry
        copy.timeout = timeout
        copy.offload = offload
        copy.simple = copy._is_simple()
        copy.light = copy._is_light()
        return copy


_OPTION_NAMES: Final = tuple(field.name for field in attrs.fields(RunnerConfig))
