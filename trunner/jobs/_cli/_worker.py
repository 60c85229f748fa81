"""``trunner worker``: load a handler registry, run a worker until signalled."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Final, NoReturn, final

import trio

from .. import Registry, open_job_manager
from .._urls import redact_url
from ._report import EXIT_OK, EXIT_USAGE, CommandError, one_line
from ._stores import store_from_url

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from .. import JobManager

logger: Final = logging.getLogger("trunner.cli")

#: Seconds after a signal during which the same request again is ignored.
SIGNAL_REPEAT: Final = 0.5


def load_registry(target: str) -> Registry:
    """Import ``MODULE:REGISTRY`` and return the `~trunner.jobs.Registry` it names.

    The current directory goes first on `sys.path` (if it is not there yet), as
    ``python -m`` does, so that a worker started in a project finds its modules.
    ``REGISTRY`` may be a dotted path (``app:jobs.registry``).

    Raises:
        CommandError: (a usage error) if the module cannot be imported, has no
            such attribute, or the attribute is not a ``Registry``.
    """
    module_name, colon, path = target.partition(":")
    if not colon or not module_name or not path:
        raise CommandError(
            f"{target!r} is not MODULE:REGISTRY (for example myapp.jobs:registry)",
            EXIT_USAGE,
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as error:
        logger.debug("importing %r failed", module_name, exc_info=True)
        raise CommandError(
            f"cannot import module {module_name!r}: {type(error).__name__}: "
            f"{one_line(error)} (--log-level DEBUG shows the traceback)",
            EXIT_USAGE,
        ) from error
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(
                f"module {module_name!r} has no attribute {path!r}", EXIT_USAGE
            ) from None
    if not isinstance(obj, Registry):
        raise CommandError(
            f"{target} is a {type(obj).__qualname__}, not a trunner.jobs.Registry",
            EXIT_USAGE,
        )
    return obj


async def worker_command(namespace: argparse.Namespace) -> int:
    """Run a worker with the registry and options of ``namespace``."""
    registry = load_registry(namespace.target)
    store_url: str = namespace.store
    store = store_from_url(store_url)
    if not len(registry):
        logger.warning(
            "%s has no handlers: this worker will run no job", namespace.target
        )
    if store_url.startswith("memory:"):
        logger.warning(
            "a memory:// store lives in this process: no other sees its jobs"
        )
    grace: float = namespace.grace_period
    # Signals are received from the start, so that one sent while the store
    # connects stops the worker as soon as it is up, gracefully.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        stop = _Stop()
        async with trio.open_nursery() as nursery:
            async with open_job_manager(
                store,
                registry,
                worker=True,
                concurrency=namespace.concurrency,
                lease=namespace.lease,
                grace_period=grace,
                poll_interval=namespace.poll_interval,
                name=namespace.name,
            ) as manager:
                logger.info(
                    "worker %s running jobs of %s on %s (concurrency %d, lease %g s, "
                    "grace period %g s); handlers: %s",
                    manager.name,
                    namespace.target,
                    redact_url(store_url),
                    namespace.concurrency,
                    namespace.lease,
                    grace,
                    ", ".join(registry.names()) or "none",
                )
                signum = await signals.__anext__()
                stop.at = trio.current_time()
                logger.info(
                    "received %s: stopping; claiming no more jobs, running jobs get "
                    "%g s to finish (send it again to stop at once)",
                    signal.Signals(signum).name,
                    grace,
                )
                nursery.start_soon(_stop_on_more_signals, signals, manager, stop)
            nursery.cancel_scope.cancel()
    if stop.signum is not None:
        logger.info("worker %s stopped at once", manager.name)
        return 128 + stop.signum
    logger.info("worker %s stopped", manager.name)
    return EXIT_OK


@final
class _Stop:
    """What stopped the worker: when the first signal came, and a second one."""

    def __init__(self) -> None:
        self.at = 0.0
        self.signum: int | None = None


async def _next_signal(signals: AsyncIterator[int], after: float) -> int:
    """Return the next signal that comes at least `SIGNAL_REPEAT` after ``after``.

    One Ctrl-C can reach a worker twice: from the terminal, which signals the
    whole foreground process group, and from a wrapper (``uv run``, ``timeout``)
    that forwards it. Only a signal sent later is a second request.
    """
    async for signum in signals:
        if trio.current_time() - after >= SIGNAL_REPEAT:
            return signum
        logger.debug(
            "ignored %s: it came with the previous one", signal.Signals(signum).name
        )
    raise AssertionError("unreachable")  # pragma: no cover  # receivers never end


async def _stop_on_more_signals(
    signals: AsyncIterator[int],
    manager: JobManager,
    stop: _Stop,
) -> None:
    """While the manager drains: a second signal stops now, a third exits."""
    signum = await _next_signal(signals, stop.at)
    stop.signum = signum
    stop.at = trio.current_time()
    logger.warning(
        "received %s again: cancelling %d running jobs and handing them back "
        "(send it again to exit at once)",
        signal.Signals(signum).name,
        manager.running,
    )
    manager.shutdown()
    _exit_at_once(await _next_signal(signals, stop.at))


def _exit_at_once(signum: int) -> NoReturn:  # pragma: no cover  # a subprocess test
    # Handlers in threads cannot be cancelled, and would hold the exit up.
    logger.error(
        "received %s a third time: exiting now; the jobs still running are taken "
        "back by other workers once their lease expires",
        signal.Signals(signum).name,
    )
    logging.shutdown()
    os._exit(128 + signum)
