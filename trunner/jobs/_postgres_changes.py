"""The change feed of PostgresJobStore: other writers' changes, read back.

The schema's triggers (migration 2 of ``_postgres_schema``) notify its
changes channel at each commit that inserts jobs or changes their state,
with a payload ``"<writer> <seq> <seq> ..."``: the writing connection's
``trunner.writer`` setting (a store object's token; empty for other clients)
and the jobs' seqs. A `ChangeReader` keeps the seqs of other writers, in
the order they came, and reads those jobs back in batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

import trio

from .._util import check_duration

if TYPE_CHECKING:
    import builtins
    from collections.abc import Awaitable, Callable, Sequence

    from ._job import JobRecord
    from ._postgres import PostgresWatcher

#: Jobs read back per query at most.
_BATCH: Final = 500


@final
class ChangeReader:
    """A `~trunner.jobs.ChangeWatcher` of a `PostgresJobStore`."""

    __slots__ = ("_pending", "_read", "_writer", "watcher")

    def __init__(
        self,
        writer: str,
        read: Callable[[Sequence[int]], Awaitable[builtins.list[JobRecord]]],
    ) -> None:
        self._writer = writer
        self._read = read
        # Seqs heard of and not read back yet; the last change of a job last.
        self._pending: dict[int, None] = {}
        #: The listening connection's watcher, set once it listens.
        self.watcher: PostgresWatcher | None = None

    def accept(self, payload: str) -> bool:
        """Keep the seqs of a notification; return whether another writer sent it."""
        writer, _, seqs = payload.partition(" ")
        if writer == self._writer:
            return False
        pending = self._pending
        for text in seqs.split():
            if text.isdigit():
                seq = int(text)
                pending.pop(seq, None)
                pending[seq] = None
        return True

    async def changes(self, timeout: float) -> builtins.list[JobRecord]:  # noqa: ASYNC109  # the protocol's
        """Read back the jobs other writers changed; wait up to ``timeout``."""
        assert self.watcher is not None
        deadline = trio.current_time() + check_duration("timeout", timeout)
        while True:
            if self._pending:
                seqs = list(self._pending)[:_BATCH]
                # Read first: a failed read loses nothing.
                records = await self._read(seqs)
                for seq in seqs:
                    self._pending.pop(seq, None)
                if records:
                    return records
                continue  # (jobs deleted since)
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                return []
            await self.watcher.wait(remaining)
