"""schemathesis against /openapi.json: no 5xx, every answer as documented."""

# schemathesis' own annotations are partial (Any inside its generics):
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false
# pyright: reportUnknownArgumentType=false, reportUnknownParameterType=false
# pyright: reportMissingTypeArgument=false

from __future__ import annotations

import httpx
import hypothesis
import schemathesis
import trio
from hypothesis import HealthCheck

from .conftest import AUTH, Served

#: Examples per operation: enough to reach every field, bounded in time.
EXAMPLES = 20


async def test_generated_requests_get_documented_answers(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        document = (await http.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    # The event stream never ends: it has tests of its own (test_events.py).
    operations = [
        schema[path][method.upper()]
        for path, item in document["paths"].items()
        for method in item
        if path != "/events"
    ]
    assert len(operations) == 9
    failures: list[str] = []

    def check_all() -> None:
        for operation in operations:

            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=[
                    HealthCheck.too_slow,
                    HealthCheck.filter_too_much,
                ],
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            @hypothesis.given(case=operation.as_strategy())
            def run(case: schemathesis.Case) -> None:  # type: ignore[type-arg]  # generic over schemathesis' internals
                response = case.call(base_url=served.url, headers=AUTH, timeout=10)
                if response.status_code >= 500:
                    where = f"{case.method} {case.formatted_path}"
                    failures.append(f"{where}: {response.status_code} {response.text}")
                try:
                    case.validate_response(response)
                except Exception as error:  # report every failure
                    failures.append(f"{case.method} {case.path}: {error}"[:1000])

            run()

    with trio.fail_after(240):
        await trio.to_thread.run_sync(check_all)

    assert failures == []
