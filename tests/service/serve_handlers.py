"""Handlers for ``trunner serve`` in a real process (tests/service/test_command.py)."""

from __future__ import annotations

import trio

from trunner.jobs import Registry

registry = Registry()


@registry.handler("double")
async def double(args: int) -> int:
    return args * 2


@registry.handler("sleep")
async def sleep(args: float) -> float:
    await trio.sleep(args)
    return args
