"""ChangeReader: the change watcher of the stores that notify their changes.

PostgreSQL (a trigger's ``NOTIFY``) and Redis (a script's ``PUBLISH``) tell
of each change with a message naming the writer (a store object's token) and
the jobs changed. A `ChangeReader` takes the messages through the store's
listening watcher (`PostgresWatcher`, `RedisWatcher`, given ``accept``), keeps
the jobs of the messages from other writers, in the order they came (a job
changed again moves to the end), and reads those jobs back in batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Generic, TypeVar, final

import trio

from .._util import check_duration

if TYPE_CHECKING:
    import builtins
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from ._job import JobRecord
    from ._store import WorkWatcher

K = TypeVar("K")

#: Jobs read back per call at most.
_BATCH: Final = 500


@final
class ChangeReader(Generic[K]):
    """A `~trunner.jobs.ChangeWatcher` fed by a store's messages.

    Args:
        writer: this store object's token: its own messages are left out.
        parse: splits a message into its writer and the keys of its jobs
            (seqs, ids); raises ValueError for a message it cannot read.
        read: reads jobs back by their keys (those still stored, in order).
    """

    __slots__ = ("_parse", "_pending", "_read", "_writer", "watcher")

    def __init__(
        self,
        writer: str,
        parse: Callable[[str], tuple[str, Iterable[K]]],
        read: Callable[[Sequence[K]], Awaitable[builtins.list[JobRecord]]],
    ) -> None:
        self._writer = writer
        self._parse = parse
        self._read = read
        # Jobs heard of and not read back yet; the last changed last.
        self._pending: dict[K, None] = {}
        #: The listening watcher, which calls `accept`; set by the store.
        self.watcher: WorkWatcher | None = None

    def accept(self, message: str) -> bool:
        """Keep the jobs of a message; return whether another writer sent it."""
        try:
            writer, keys = self._parse(message)
        except ValueError:
            return False  # not one of ours
        if writer == self._writer:
            return False
        pending = self._pending
        for key in keys:
            pending.pop(key, None)
            pending[key] = None
        return True

    async def changes(self, timeout: float) -> builtins.list[JobRecord]:  # noqa: ASYNC109  # the protocol's
        """Read back the jobs other writers changed; wait up to ``timeout``."""
        assert self.watcher is not None
        deadline = trio.current_time() + check_duration("timeout", timeout)
        while True:
            if self._pending:
                keys = list(self._pending)[:_BATCH]
                # Read first: a failed or cancelled read loses nothing.
                records = await self._read(keys)
                for key in keys:
                    self._pending.pop(key, None)
                if records:
                    return records
                continue  # (jobs deleted since)
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                await trio.lowlevel.checkpoint()
                return []
            await self.watcher.wait(remaining)
