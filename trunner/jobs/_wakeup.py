"""Wake-ups within a process: what the memory and SQLite stores' `watch` use."""

from __future__ import annotations

import contextlib
import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, final

import trio

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator


@final
class Watcher:
    """One subscriber of a `Wakeups` hub: a `~trunner.jobs.WorkWatcher`.

    Belongs to the trio run that opened it; the hub may notify it from any
    thread.
    """

    __slots__ = ("_event", "_woken", "token")

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        #: The trio run the watcher belongs to.
        self.token = token
        self._woken = False
        self._event = trio.Event()

    def notify(self) -> None:
        """Mark an arrival and wake a waiting `wait` (on the watcher's trio thread)."""
        self._woken = True
        self._event.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109  # the protocol's
        """Wait for an arrival since the last True, or ``timeout`` seconds.

        A checkpoint; cancelling it changes nothing (an arrival stays marked).
        """
        if not self._woken:
            with trio.move_on_after(timeout):
                await self._event.wait()
        else:
            await trio.lowlevel.checkpoint()
        if not self._woken:
            return False
        self._woken = False
        self._event = trio.Event()
        return True


@final
class Wakeups:
    """Watchers of one store, notified when a job becomes PENDING.

    `notify` may be called from any thread: watchers of another trio run are
    notified through their run's token. Cheap when nobody watches.
    """

    __slots__ = ("_lock", "_watchers")

    def __init__(self) -> None:
        self._watchers: dict[Watcher, None] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._watchers)

    def notify(self) -> None:
        """Wake every watcher. Not a checkpoint."""
        if not self._watchers:
            return
        try:
            here: trio.lowlevel.TrioToken | None = trio.lowlevel.current_trio_token()
        except RuntimeError:
            here = None
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            if watcher.token is here:
                watcher.notify()
            else:
                # A run that ended leaves its watchers behind until they exit.
                with contextlib.suppress(trio.RunFinishedError):
                    watcher.token.run_sync_soon(watcher.notify)

    @asynccontextmanager
    async def watch(self) -> AsyncGenerator[Watcher]:
        """Open a watcher for the ``async with`` block. Checkpoints on entry."""
        watcher = Watcher(trio.lowlevel.current_trio_token())
        with self._lock:
            self._watchers[watcher] = None
        try:
            await trio.lowlevel.checkpoint()
            yield watcher
        finally:
            with self._lock:
                self._watchers.pop(watcher, None)


_SHARED: Final[dict[str, Wakeups]] = {}
_SHARED_LOCK: Final = threading.Lock()


def shared_wakeups(key: str) -> Wakeups:
    """Return the process-wide hub of ``key`` (such as a database file's path).

    Hubs are kept for the life of the process: one small object per distinct
    key.
    """
    with _SHARED_LOCK:
        hub = _SHARED.get(key)
        if hub is None:
            hub = _SHARED[key] = Wakeups()
        return hub
