"""The whole system as processes (as in tests/e2e), for the bad-input suite: the fuzzed API
and the malformed events meet the real services, broker and databases."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import system_environment, whole_system

ROLES = ("intake", "social", "supervisor", "police", "central", "coordinator", "admin")


@pytest.fixture(scope="package")
def hostile_system(clean_environment, tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("concord-badinput")
    # The fuzzer signs in with thousands of made-up names from this one address; the
    # address limit would then refuse the suite's own sign-ins (it is tested in
    # tests/e2e/test_signin.py and tests/unit/test_gateway_signin_limits.py).
    environment = {
        **system_environment(var_dir),
        "CONCORD_SIGNIN_ADDRESS_FREE_FAILURES": "1000000",
    }
    with whole_system(var_dir, "badinput-logs", environment, healthy_within=120) as system:
        yield system


@pytest.fixture(scope="package")
def tokens(hostile_system) -> dict[str, str]:
    """A bearer token for each demo role."""
    return {role: hostile_system.http.token(role) for role in ROLES}
