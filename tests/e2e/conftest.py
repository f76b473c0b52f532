"""The whole system as processes: every service under supervisor, on the test virtual host,
the test databases and port 18000, so that a `make run` can stay up beside it."""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import AMQP_URI, ARTIFACTS, HTTP_PORT, REPO, SERVICES, database_url
from tests.http_client import Http
from tests.synthetic import make_referral

PASSWORD = "concord-test-password"
CONCORD = str(Path(sys.executable).parent / "concord")


def system_environment(var_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "CONCORD_VAR_DIR": str(var_dir),
        "CONCORD_AMQP_URI": AMQP_URI,
        "CONCORD_HTTP_PORT": str(HTTP_PORT),
        "CONCORD_DEMO_PASSWORD": PASSWORD,
        "CONCORD_RPC_TIMEOUT": "10",
        # Normal-urgency referrals breach their acceptance clock after 4 s here (checked
        # every second), so the SLA tests see a flag; high and urgent keep their defaults.
        "CONCORD_SLA_NORMAL_SECONDS": "4",
        "CONCORD_SLA_CHECK_SECONDS": "1",
        # The sign-in tests say which address they come from (X-Forwarded-For); a request
        # without the header is the peer's, as before.
        "CONCORD_TRUSTED_PROXIES": "1",
    }
    for service in SERVICES:
        env[f"CONCORD_{service.upper()}_DATABASE_URL"] = database_url(service)
    return env


@dataclass
class RunningSystem:
    base_url: str
    password: str
    http: Http
    environment: dict

    def submit_referral(self, body: dict | None = None) -> dict:
        status, receipt = self.http.request(
            "POST", "/api/v1/referrals", body or make_referral(), self.http.token("intake")
        )
        assert status == 201, receipt
        return receipt

    def concord(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CONCORD, *args],
            env=self.environment,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def wait_healthy(self, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.http.request("GET", "/healthz")
                if last[0] == 200:
                    return last[1]
            except OSError as error:  # the gateway is not listening yet
                last = error
            time.sleep(0.5)
        raise AssertionError(f"the system did not become healthy: {last}")


@contextmanager
def whole_system(
    var_dir: Path,
    logs: str,
    environment: dict[str, str] | None = None,
    instances: int = 1,
    healthy_within: float = 90,
) -> Iterator[RunningSystem]:
    """Every service as processes under supervisor (`instances` of each), migrated and
    seeded; stopped afterwards, its service logs kept in the test artifacts' `logs`."""
    system = RunningSystem(
        base_url=f"http://127.0.0.1:{HTTP_PORT}",
        password=PASSWORD,
        http=Http(f"http://127.0.0.1:{HTTP_PORT}", PASSWORD),
        environment=environment or system_environment(var_dir),
    )
    system.concord("migrate")
    system.concord("seed")
    system.concord("run", "--background", "--instances", str(instances))
    try:
        system.wait_healthy(timeout=healthy_within)
        yield system
    finally:
        system.concord("stop", check=False)
        if (var_dir / "log").exists():
            kept = ARTIFACTS / logs
            shutil.rmtree(kept, ignore_errors=True)
            kept.mkdir(parents=True, exist_ok=True)
            for log in (var_dir / "log").glob("*.log"):
                shutil.copyfile(log, kept / log.name)


# Package scope: the processes stop when the e2e tests are done, so that no other test's
# calls or events are answered by them.
@pytest.fixture(scope="package")
def running_system(clean_environment, tmp_path_factory):
    with whole_system(tmp_path_factory.mktemp("concord-var"), "logs") as system:
        yield system
