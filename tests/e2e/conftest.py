"""The whole system as processes: every service under supervisor, on the test virtual host,
the test databases and port 18000, so that a `make run` can stay up beside it."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import AMQP_URI, HTTP_PORT, REPO, SERVICES, database_url
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
    }
    for service in SERVICES:
        env[f"CONCORD_{service.upper()}_DATABASE_URL"] = database_url(service)
    return env


class Http:
    """A small JSON client: the tests speak to the gateway as any API user would."""

    def __init__(self, base_url: str):
        self.base_url = base_url

    def request(self, method: str, path: str, body=None, token: str | None = None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
                return response.status, json.loads(payload) if payload else None
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                return error.code, json.loads(payload)
            except ValueError:
                return error.code, payload.decode(errors="replace")

    def token(self, username: str, password: str = PASSWORD) -> str:
        status, body = self.request(
            "POST", "/api/v1/auth/token", {"username": username, "password": password}
        )
        assert status == 200, body
        return body["access_token"]


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


# Package scope: the processes stop when the e2e tests are done, so that no other test's
# calls or events are answered by them.
@pytest.fixture(scope="package")
def running_system(clean_environment, tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("concord-var")
    environment = system_environment(var_dir)
    system = RunningSystem(
        base_url=f"http://127.0.0.1:{HTTP_PORT}",
        password=PASSWORD,
        http=Http(f"http://127.0.0.1:{HTTP_PORT}"),
        environment=environment,
    )
    system.concord("migrate")
    system.concord("seed")
    system.concord("run", "--background")
    try:
        system.wait_healthy()
        yield system
    finally:
        system.concord("stop", check=False)
        logs = var_dir / "log"
        artifacts = REPO / "var" / "test-artifacts" / "logs"
        if logs.exists():
            artifacts.mkdir(parents=True, exist_ok=True)
            for log in logs.glob("*.log"):
                (artifacts / log.name).write_bytes(log.read_bytes())
