"""The dashboard in headless Chromium: sign in, watch the counts change live."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import httpx
import trio

from tests._services import require_program

from ._cdp import open_page
from .conftest import AUTH, TOKEN, Served

if TYPE_CHECKING:
    import pathlib

    from ._cdp import Page


def count(state: str) -> str:
    return f"document.getElementById('count-{state}').textContent"


async def type_token(page: Page, token: str) -> None:
    await page.evaluate("document.getElementById('token').focus()")
    await page.call("Input.insertText", {"text": token})
    await page.evaluate("document.getElementById('login-button').click()")


async def test_dashboard_shows_live_counts(
    served: Served, tmp_path: pathlib.Path
) -> None:
    chromium = require_program("chromium")
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        # One job from before the page opened: the counts start from the store.
        await http.post(
            "/jobs",
            json={"id": "old", "handler": "slow", "args": 1, "delay": 3600},
            headers=AUTH,
        )
        async with open_page(chromium, tmp_path / "profile") as page:
            await page.call("Page.navigate", {"url": served.url + "/"})
            await page.wait_for(
                "document.readyState === 'complete'"
                " && !!document.getElementById('token')"
            )
            assert (
                await page.evaluate("document.getElementById('board').hidden") is True
            )

            await type_token(page, "wrong-token")
            refused = await page.wait_for(
                "document.getElementById('login-error').textContent"
            )
            await type_token(page, TOKEN)
            await page.wait_for(
                "document.getElementById('status').textContent === 'live'"
            )
            before = {
                s: await page.evaluate(count(s))
                for s in ("pending", "succeeded", "failed")
            }

            for i in range(3):
                await http.post(
                    "/jobs",
                    json={
                        "id": f"later-{i}",
                        "handler": "slow",
                        "args": 1,
                        "delay": 3600,
                    },
                    headers=AUTH,
                )
            for i in range(2):
                await http.post(
                    "/jobs",
                    json={
                        "id": f"mail-{i}",
                        "handler": "send_email",
                        "args": {"to": "a@b.c"},
                    },
                    headers=AUTH,
                )
            await http.post(
                "/jobs", json={"id": "bad", "handler": "boom", "args": 7}, headers=AUTH
            )

            await page.wait_for(
                f"{count('pending')} === '4' && {count('succeeded')} === '2'"
                f" && {count('failed')} === '1'"
            )
            failures = await page.wait_for(
                "document.getElementById('failures').textContent.includes('boom 7')"
                " && document.getElementById('failures').textContent"
            )
            stored = await page.evaluate("sessionStorage.getItem('trunner-token')")
            persistent = await page.evaluate("localStorage.length")
            throughput = await page.evaluate(
                "document.getElementById('throughput').textContent"
            )
            shot = tmp_path / "dashboard.png"
            await page.screenshot(shot)
            docs_copy = os.environ.get("TRUNNER_DASHBOARD_SCREENSHOT")
            if docs_copy:  # regenerate the docs' picture: see docs/service.rst
                await trio.Path(docs_copy).write_bytes(
                    await trio.Path(shot).read_bytes()
                )

    assert refused == "The token was refused."
    assert before == {"pending": "1", "succeeded": "0", "failed": "0"}
    assert isinstance(failures, str)
    assert "bad" in failures
    assert stored == TOKEN
    assert persistent == 0
    assert isinstance(throughput, str)
    assert float(throughput) > 0
    assert shot.read_bytes().startswith(b"\x89PNG")
    print(json.dumps({"screenshot": str(shot)}))


async def test_dashboard_page_asks_for_a_token(
    served: Served, tmp_path: pathlib.Path
) -> None:
    chromium = require_program("chromium")
    async with open_page(chromium, tmp_path / "profile") as page:
        await page.call("Page.navigate", {"url": served.url + "/"})
        status = await page.wait_for(
            "document.readyState === 'complete'"
            " && document.getElementById('status').textContent"
        )

    assert status == "signed out"
