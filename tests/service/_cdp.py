"""A small Chrome DevTools protocol client (trio + wsproto) for headless Chromium."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, cast

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

if TYPE_CHECKING:
    import pathlib
    from collections.abc import AsyncGenerator

#: The flags the brief asks for: no network chatter, no GPU, throwaway profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
)

Json = dict[str, object]


class CdpError(Exception):
    """The browser answered a command with an error."""


class Cdp:
    """One DevTools websocket: commands with ids, answers matched by id."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self._stream = stream
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[Json]] = {}
        self._send_lock = trio.Lock()

    async def _write(self, data: bytes) -> None:
        async with self._send_lock:
            await self._stream.send_all(data)

    async def read_loop(self) -> None:
        parts: list[str] = []
        while True:
            data = await self._stream.receive_some(1 << 16)
            if not data:
                return
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, Ping):
                    await self._write(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    return
                elif isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        message = cast("Json", json.loads("".join(parts)))
                        parts = []
                        reply_id = message.get("id")
                        if isinstance(reply_id, int) and reply_id in self._waiting:
                            self._waiting.pop(reply_id).send_nowait(message)

    async def call(
        self, method: str, params: Json | None = None, *, session: str | None = None
    ) -> Json:
        """Send a command and return its result."""
        command_id = next(self._ids)
        message: Json = {"id": command_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        send, receive = trio.open_memory_channel[Json](1)
        self._waiting[command_id] = send
        await self._write(self._ws.send(TextMessage(data=json.dumps(message))))
        reply = await receive.receive()
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return cast("Json", reply.get("result", {}))


class Page:
    """One tab, driven through its flattened session."""

    def __init__(self, cdp: Cdp, session: str) -> None:
        self._cdp = cdp
        self._session = session

    async def call(self, method: str, params: Json | None = None) -> Json:
        return await self._cdp.call(method, params, session=self._session)

    async def evaluate(self, expression: str) -> object:
        """Evaluate JavaScript in the page and return its JSON value."""
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        remote = cast("Json", result["result"])
        return remote.get("value")

    async def wait_for(self, expression: str, *, timeout: float = 20) -> object:  # noqa: ASYNC109  # polling a page
        """Poll ``expression`` until it is truthy; return its value."""
        with trio.fail_after(timeout):
            for _ in itertools.count():
                value = await self.evaluate(expression)
                if value:
                    return value
                await trio.sleep(0.05)
        raise AssertionError("unreachable")  # pragma: no cover  # count() never ends

    async def screenshot(self, path: pathlib.Path) -> None:
        result = await self.call("Page.captureScreenshot", {"format": "png"})
        data = base64.b64decode(cast("str", result["data"]))
        await trio.Path(path).write_bytes(data)


async def _devtools_port(profile: pathlib.Path) -> tuple[int, str]:
    marker = profile / "DevToolsActivePort"
    with trio.fail_after(30):
        while True:
            if await trio.Path(marker).exists():
                lines = (await trio.Path(marker).read_text()).split()
                if len(lines) >= 2:
                    return int(lines[0]), lines[1]
            await trio.sleep(0.05)


@asynccontextmanager
async def open_page(chromium: str, profile: pathlib.Path) -> AsyncGenerator[Page, None]:
    """Start headless Chromium with a fresh profile and open one blank tab."""
    await trio.to_thread.run_sync(lambda: shutil.rmtree(profile, ignore_errors=True))
    await trio.Path(profile).mkdir(parents=True)
    process = await trio.lowlevel.open_process(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port, path = await _devtools_port(profile)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=f"127.0.0.1:{port}", target=path)))
        accepted = False
        while not accepted:
            ws.receive_data(await stream.receive_some(1 << 16))
            accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
        cdp = Cdp(stream, ws)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cdp.read_loop)
            target = await cdp.call("Target.createTarget", {"url": "about:blank"})
            attached = await cdp.call(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
            )
            page = Page(cdp, cast("str", attached["sessionId"]))
            await page.call("Page.enable")
            await page.call("Runtime.enable")
            yield page
            nursery.cancel_scope.cancel()
        await stream.aclose()
    finally:
        process.kill()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await process.wait()
