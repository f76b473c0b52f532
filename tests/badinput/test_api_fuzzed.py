"""schemathesis against /api/v1/openapi.json: every operation, signed in as each role and
as nobody. No answer is a 5xx and every answer conforms to the document (status, content
type, headers, body schema): schemathesis's own checks, all of them.

(schemathesis's pytest plugin does not run under pytest 9 yet; its Python API does: each
operation's hypothesis strategy is run here, and every failure is reported at the end.)"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.badinput.conftest import ROLES

pytestmark = pytest.mark.badinput

EXAMPLES = 5
# Left out, with the reason: the API has cross-field rules that OpenAPI 3.0 cannot state (a
# helpline referral must name the child, a platform report its platform; a legal basis is
# required when consent was not given), so a body valid for the document may rightly be
# refused with a documented 422 naming the field. Every other check runs, 5xx included.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


def test_every_operation_as_each_role(hostile_system, tokens):
    schema = schemathesis.openapi.from_url(f"{hostile_system.base_url}/api/v1/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case):
            for role in (*ROLES, None):
                headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
                case.call_and_validate(headers=headers, excluded_checks=EXCLUDED, timeout=30)

        try:
            exercise()
        except Exception as failure:  # noqa: BLE001 - every operation runs; all reported
            failures[operation.label] = str(failure)[:3000]
    assert operations >= 8
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
