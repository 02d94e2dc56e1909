"""Property-based run over the OpenAPI schema: whatever the schema allows, no answer is a 5xx.

Bounded (few examples per operation, no deadline) so it stays in the fast suite; every
request carries the admin key so generated inputs reach the routes, not just the auth check.
The engine is built in the test (not at import), and each operation gets its own
Hypothesis run over schemathesis' strategy for it.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from shoploop.api import create_app
from tests.api.conftest import ADMIN, make_settings
from tests.engine.conftest import make_engine

EXAMPLES_PER_OPERATION = 12


@pytest.mark.slow
def test_no_server_errors_anywhere_in_the_schema():
    engine, _ = make_engine()
    app = create_app(engine, make_settings(max_body_bytes=256 * 1024))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case):
            response = case.call(headers=ADMIN)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}")
            elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                body = response.json()
                if set(body) != {"error"} or not {"code", "message", "field"} <= set(body["error"]):
                    failures.append(f"{case.method} {case.formatted_path}: error shape {body}")

        run()
        checked += 1
    assert checked >= 20
    assert not failures, "\n".join(failures[:20])
