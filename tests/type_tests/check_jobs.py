"""What the type checkers infer for job handlers (STYLE section 5).

Checked by ``nox -s typecheck`` (mypy and pyright); never executed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_type

from trunner.jobs import Registry

registry = Registry()


@registry.handler("send-mail")
async def send_mail(address: str) -> bool:
    del address
    return True


@registry.handler("tick")
def tick() -> None:
    pass


async def check_handler() -> None:
    # The decorator returns the function unchanged: same parameters, same result.
    assert_type(await send_mail("someone@example.org"), bool)
    assert_type(tick, Callable[[], None])
    decorator = registry.handler("other")
    assert_type(decorator(tick), Callable[[], None])
