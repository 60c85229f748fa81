"""open_resource_pool: check the arguments of a pool, then open it."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast, overload

from .._util import (
    check_duration,
    check_plain_callable,
    check_sync_or_async_callable,
)
from ._pool import open_pool

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from ._pool import ResourcePool

ResourceT = TypeVar("ResourceT")


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


@overload
def open_resource_pool(
    create: Callable[[], Awaitable[ResourceT]],
    destroy: Callable[[ResourceT], object],
    *,
    workers: int = 1,
    max_workers: int | None = None,
    check_health: Callable[[Exception], bool] | None = None,
    max_retries: int = 3,
    burst_interval: float = 0.1,
) -> AbstractAsyncContextManager[ResourcePool[ResourceT]]: ...


@overload
def open_resource_pool(
    create: Callable[[], ResourceT],
    destroy: Callable[[ResourceT], object],
    *,
    workers: int = 1,
    max_workers: int | None = None,
    check_health: Callable[[Exception], bool] | None = None,
    max_retries: int = 3,
    burst_interval: float = 0.1,
) -> AbstractAsyncContextManager[ResourcePool[ResourceT]]: ...


def open_resource_pool(
    create: Callable[[], Awaitable[ResourceT]] | Callable[[], ResourceT],
    destroy: Callable[[ResourceT], object],
    *,
    workers: int = 1,
    max_workers: int | None = None,
    check_health: Callable[[Exception], bool] | None = None,
    max_retries: int = 3,
    burst_interval: float = 0.1,
) -> AbstractAsyncContextManager[ResourcePool[ResourceT]]:
    """Open a `ResourcePool` for an ``async with`` block.

    Use it as ``async with open_resource_pool(create, destroy) as pool:``.
    Entering makes the ``workers`` base resources, concurrently; if one
    ``create()`` fails, the others are cancelled or destroyed and that error
    is raised as itself. Leaving the block calls `ResourcePool.stop` (queued
    and running tasks finish, then every resource is destroyed); leaving it
    with an exception calls `ResourcePool.kill` first, and the exception
    propagates as itself. Errors of the pool's own machinery (such as a
    `KeyboardInterrupt` raised by a task) come out as a `BaseExceptionGroup`,
    like a nursery's, after every waiting caller got `PoolClosedError`.

    ``create``, ``destroy`` and the tasks may be sync or async. ``destroy``
    runs exactly once per resource, shielded from cancellation and bounded
    to 10 seconds; its errors (and its timeouts) are logged to the
    ``trunner.pool`` logger.

    When a resource turns out sick, its worker replaces it, retrying
    ``create()`` with backoff from 0.1 s doubling to 5 s and logging each
    failure. After three failures in a row while no worker holds a
    resource, queued callers and new `ResourcePool.queue_task` calls get
    `ResourceUnavailableError` (from the ``create()`` error) instead of
    waiting for a resource that may never come; the pool keeps trying.

    Burst scaling: every ``burst_interval`` seconds, while tasks wait in the
    queue and arrivals over the last second are at least completions, one
    burst worker is added, up to ``max_workers`` workers in all. A burst worker
    idle for ``10 * burst_interval`` retires; base workers never do.

    Args:
        create: makes a resource, ``create() -> resource``.
        destroy: releases one, ``destroy(resource)``.
        workers: base workers, always running (>= 1; default 1).
        max_workers: the most workers, base and burst (>= ``workers``);
            None (the default) means ``workers``: no burst scaling.
        check_health: ``check_health(error) -> bool``, called when a task
            raises; False means the resource is sick. None (the default)
            treats every error as the task's own. If it raises, the error is
            logged and the resource treated as sick.
        max_retries: retries of a task after health failures (>= 0; default
            3, so 4 attempts).
        burst_interval: seconds between burst scaling decisions (> 0;
            default 0.1).

    Returns:
        An async context manager that yields the pool.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range.
    """
    check_sync_or_async_callable("create", create, "create()")
    check_sync_or_async_callable("destroy", destroy, "destroy(resource)")
    if check_health is not None:
        check_plain_callable("check_health", check_health, "check_health(error)")
    base = _check_count("workers", workers, 1)
    most = (
        base if max_workers is None else _check_count("max_workers", max_workers, base)
    )
    retries = _check_count("max_retries", max_retries, 0)
    interval = check_duration("burst_interval", burst_interval, allow_zero=False)
    return open_pool(
        cast("Callable[[], object]", create),
        destroy,
        check_health,
        base,
        most,
        retries,
        interval,
    )
