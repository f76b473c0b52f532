"""The whole system as processes (as in tests/e2e), for the bad-input suite: the fuzzed API
and the malformed events meet the real services, broker and databases."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import HTTP_PORT, REPO
from tests.e2e.conftest import PASSWORD, Http, RunningSystem, system_environment

ROLES = ("intake", "social", "supervisor", "police", "central", "coordinator", "admin")


@pytest.fixture(scope="package")
def hostile_system(clean_environment, tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("concord-badinput")
    system = RunningSystem(
        base_url=f"http://127.0.0.1:{HTTP_PORT}",
        password=PASSWORD,
        http=Http(f"http://127.0.0.1:{HTTP_PORT}"),
        environment=system_environment(var_dir),
    )
    system.concord("migrate")
    system.concord("seed")
    system.concord("run", "--background")
    try:
        system.wait_healthy(timeout=120)
        yield system
    finally:
        system.concord("stop", check=False)
        logs = var_dir / "log"
        artifacts = REPO / "var" / "test-artifacts" / "badinput-logs"
        if logs.exists():
            shutil.rmtree(artifacts, ignore_errors=True)
            artifacts.mkdir(parents=True, exist_ok=True)
            for log in logs.glob("*.log"):
                shutil.copyfile(log, artifacts / log.name)


@pytest.fixture(scope="package")
def tokens(hostile_system) -> dict[str, str]:
    """A bearer token for each demo role."""
    return {role: hostile_system.http.token(role) for role in ROLES}
