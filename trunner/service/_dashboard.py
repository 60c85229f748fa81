"""``GET /``: the dashboard, one self-contained HTML page (no external assets)."""

from __future__ import annotations

import functools
import importlib.resources


@functools.cache
def dashboard_html() -> str:
    """Return the dashboard page: inline CSS and JavaScript, no build step."""
    return (
        importlib.resources.files(__package__ or "trunner.service")
        .joinpath("dashboard.html")
        .read_text(encoding="utf-8")
    )
