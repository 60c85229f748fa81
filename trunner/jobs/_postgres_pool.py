"""The connections of PostgresJobStore, and blocking calls on threads.

psycopg's async API needs asyncio; its sync API runs here, on trio's worker
threads, one call per connection at a time. A call waits for its thread to
end before it returns, whatever happens (so no thread outlives the call that
started it): cancelling the caller sends PostgreSQL a cancel request for the
running statement, and a server that does not answer has its socket shut
down under the thread.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
from typing import TYPE_CHECKING, Final, TypeVar, TypeVarTuple, final

import psycopg
import trio
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .._util import clock_autojumps, wait_all_tasks_blocked
from ._errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    import outcome

    from ._postgres_schema import Connection

T = TypeVar("T")
ArgsT = TypeVarTuple("ArgsT")


logger: Final = logging.getLogger("trunner.jobs")

#: SQLSTATE classes of errors that say the connection, not the statement, failed:
#: 08 connection exception, 57P0x the server shutting down or terminating it.
_CONNECTION_STATES: Final = ("08", "57P01", "57P02", "57P03")
#: Real seconds of quiet between two looks at a thread while holding the clock.
_HOLD_CUSHION: Final = 0.0005


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` says that the connection (not the statement) failed."""
    if isinstance(error, psycopg.OperationalError) and not isinstance(
        error, psycopg.errors.QueryCanceled
    ):
        state = error.sqlstate
        return state is None or state.startswith(_CONNECTION_STATES)
    return isinstance(error, psycopg.InterfaceError)


async def call_in_thread(
    fn: Callable[[*ArgsT], T],
    *args: *ArgsT,
    interrupt: Callable[[], object] | None = None,
    grace: float = 5.0,
) -> T:
    """Run ``fn(*args)`` on a worker thread; return or raise what it did.

    A checkpoint. The thread always ends before this returns. If the caller
    is cancelled meanwhile, ``interrupt()`` runs on another thread (to make
    ``fn`` return early), and if ``fn`` still runs ``grace`` seconds later,
    ``interrupt`` runs again; then the call waits for it, and the
    cancellation is raised. Under an autojumping `trio.testing.MockClock`,
    virtual time stands still while ``fn`` runs (as for trunner's thread
    runners), so that a call takes no virtual time.
    """
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    box: list[outcome.Outcome[T]] = []

    def deliver(result: outcome.Outcome[T]) -> None:
        def wake() -> None:
            box.append(result)
            done.set()

        token.run_sync_soon(wake)

    trio.lowlevel.start_thread_soon(lambda: fn(*args), deliver)
    try:
        if clock_autojumps(trio.lowlevel.current_clock()):
            # An autojumping MockClock jumps as soon as every task is blocked,
            # a thread's work notwithstanding: a task waiting for all to be
            # blocked is served first, so waiting there keeps the clock still.
            while not done.is_set():
                await wait_all_tasks_blocked(_HOLD_CUSHION)
        else:
            await done.wait()
    except BaseException:
        with trio.CancelScope(shield=True):
            if not done.is_set() and interrupt is not None:
                with trio.move_on_after(grace):
                    await call_in_thread(interrupt)
                with trio.move_on_after(grace):
                    await done.wait()
                if not done.is_set():
                    await call_in_thread(interrupt)
            await done.wait()
        raise
    return box[0].unwrap()


def shut_down_socket(conn: Connection) -> None:
    """Shut the connection's socket down: a thread blocked on it returns at once."""
    with contextlib.suppress(OSError, psycopg.Error):
        fd = conn.fileno()
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.detach()  # the descriptor stays libpq's


def looks_dead(conn: Connection) -> bool:
    """Whether an idle connection was closed by the server (or is closed).

    An idle connection has nothing to read; if it has, the server sent a
    FATAL message (``pg_terminate_backend``, a restart) or closed it.
    """
    if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


@final
class Pool:
    """Up to ``size`` connections, made on demand and reused.

    A connection goes back to the pool after a call only if it is idle and
    healthy; a broken one (killed by the server, or a call interrupted by a
    timeout) is closed, and the next call makes a new one.
    """

    __slots__ = (
        "_closed",
        "_connect_timeout",
        "_conninfo",
        "_idle",
        "_label",
        "_settings",
        "_slots",
        "_timeout",
    )

    def __init__(
        self,
        conninfo: str,
        *,
        size: int,
        connect_timeout: float,
        timeout: float,
        label: str,
        writer: str | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._label = label
        self._slots = trio.Semaphore(size)
        self._idle: list[Connection] = []
        self._closed = False
        timeout = max(timeout, connect_timeout)
        # The store's defaults, for what the URL leaves out.
        given = conninfo_to_dict(conninfo)
        defaults: dict[str, str | int] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": "trunner",
            "keepalives": 1,
            "keepalives_idle": max(1, round(timeout)),
            "keepalives_interval": max(1, round(timeout / 5)),
            "keepalives_count": 5,
            "tcp_user_timeout": round(timeout * 1000),
        }
        settings = {k: v for k, v in defaults.items() if k not in given}
        # Times come back in UTC, whatever the server's or the role's setting.
        options = given.get("options")
        # The writer names the connection's changes in their NOTIFY.
        named = "" if writer is None else f" -c trunner.writer={writer}"
        settings["options"] = f"{options or ''} -c TimeZone=UTC{named}".strip()
        self._settings = make_conninfo(conninfo, **settings)

    def connect_sync(self) -> Connection:
        """Make a new connection (blocking, bounded by the connect timeout)."""
        return psycopg.Connection.connect(self._settings, autocommit=True)

    async def connect(self) -> Connection:
        """Make a new connection on a thread.

        Raises:
            StoreError: if PostgreSQL cannot be reached within the timeout.
        """
        try:
            with trio.fail_after(self._connect_timeout * 2 + 1):
                return await call_in_thread(self.connect_sync)
        except trio.TooSlowError as error:
            raise StoreError(
                f"{self._label}: no connection within {self._connect_timeout} s"
            ) from error
        except psycopg.Error as error:
            raise StoreError(f"{self._label}: cannot connect: {error}") from error

    async def run(
        self,
        fn: Callable[[Connection, *ArgsT], T],
        *args: *ArgsT,
        again: Callable[[Connection, *ArgsT], T] | None = None,
    ) -> T:
        """Run ``fn(connection, *args)`` on a thread, with a pooled connection.

        If a connection taken from the pool turns out dead (the server killed
        it since its last use), the call runs once more on a new connection,
        as ``again(connection, *args)`` if given: the first attempt most
        likely never reached the server, but it may have committed.

        Raises:
            StoreError: from the driver's error, or if the call took longer
                than the timeout (it was then cancelled).
        """
        async with self._slots:
            conn = self._take()
            reused = conn is not None
            if conn is None:
                conn = await self.connect()
            try:
                return await self._run_on(conn, fn, *args)
            except psycopg.Error as error:
                if not (reused and is_connection_error(error)):
                    raise StoreError(f"{self._label}: {error}") from error
                logger.info(
                    "%s: connection lost, running again: %s", self._label, error
                )
            conn = await self.connect()
            try:
                return await self._run_on(conn, fn if again is None else again, *args)
            except psycopg.Error as error:
                raise StoreError(f"{self._label}: {error}") from error

    async def _run_on(
        self, conn: Connection, fn: Callable[[Connection, *ArgsT], T], *args: *ArgsT
    ) -> T:
        try:
            return await self._call(conn, fn, *args)
        finally:
            self._put_back(conn)

    async def _call(
        self, conn: Connection, fn: Callable[[Connection, *ArgsT], T], *args: *ArgsT
    ) -> T:
        interrupted = False

        def interrupt() -> None:
            # First ask the server to cancel the statement; if that did not
            # end the call (the server does not answer), cut the socket.
            nonlocal interrupted
            if interrupted:
                shut_down_socket(conn)
                return
            interrupted = True
            with contextlib.suppress(psycopg.Error, OSError):
                conn.cancel_safe(timeout=self._connect_timeout)

        try:
            with trio.move_on_after(self._timeout):
                return await call_in_thread(
                    fn, conn, *args, interrupt=interrupt, grace=self._connect_timeout
                )
        finally:
            if interrupted:
                # Whatever state the statement left it in: start afresh.
                self._discard(conn)
        raise StoreError(
            f"{self._label}: no answer within {self._timeout} s (the call was "
            "cancelled; it may or may not have taken effect)"
        )

    def _take(self) -> Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not looks_dead(conn):
                return conn
            self._discard(conn)
        return None

    def _put_back(self, conn: Connection) -> None:
        if (
            self._closed
            or conn.closed
            or conn.info.transaction_status != pq.TransactionStatus.IDLE
        ):
            self._discard(conn)
        else:
            self._idle.append(conn)

    def _discard(self, conn: Connection) -> None:
        # Closing sends a Terminate message: it never waits for the server.
        with contextlib.suppress(psycopg.Error, OSError):
            conn.close()

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)
        await trio.lowlevel.checkpoint()
