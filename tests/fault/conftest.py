"""The whole system as processes, two instances of every agency service (competing
consumers), on this namespace's virtual host and databases, started afresh: the fault suite
counts every referral the system holds, so it starts from empty databases and queues.

Retries back off 1, 2, 4 and 8 seconds here (production: 1, 5, 15, 60) so that an event
whose handler keeps failing is parked within the test's time; the path is the same.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import (
    AMQP_URI,
    REPO,
    SERVICES,
    database_url,
    reset_bus,
    reset_database,
)
from tests.e2e.conftest import system_environment, whole_system

FAULT_SETTINGS = """
# Added by tests/fault/conftest.py: a shorter back-off, so a failing event parks in ~15 s.
EVENT_RETRY_BACKOFF_SECONDS:
  - 1
  - 2
  - 4
  - 8
"""

INSTANCES = 2
SUMMARIES: list[str] = []  # one line per run, printed at the end of the session


def pytest_terminal_summary(terminalreporter) -> None:
    for line in SUMMARIES:
        terminalreporter.write_line(line)


def referrals_to_run() -> int:
    """`make fault` runs 2,000; `make test` a smaller flow through the same faults."""
    return int(os.environ.get("CONCORD_FAULT_REFERRALS", "90"))


@pytest.fixture(scope="package")
def fault_system(clean_environment, tmp_path_factory):
    for service in SERVICES:
        reset_database(database_url(service))
    reset_bus(AMQP_URI)
    var_dir = tmp_path_factory.mktemp("concord-fault")
    config = var_dir / "config.yaml"
    config.write_text((REPO / "deploy" / "config.yaml").read_text() + FAULT_SETTINGS)
    environment = {**system_environment(var_dir), "CONCORD_CONFIG": str(config)}
    with whole_system(
        var_dir, "fault-logs", environment, instances=INSTANCES, healthy_within=120
    ) as system:
        yield system
