"""deploy/config.yaml as every command and service reads it (nameko's loader, environment
substituted); the nested SQLite defaults need the `regex` module."""

import pytest

from concord_cli import config

pytestmark = pytest.mark.unit

SERVICE_VARS = [f"CONCORD_{s.upper()}_DATABASE_URL" for s in config.SERVICES]
OTHER_VARS = ["CONCORD_VAR_DIR", "CONCORD_AMQP_URI", "CONCORD_HTTP_PORT", "CONCORD_HTTP_HOST"]
OTHER_VARS += ["CONCORD_RPC_TIMEOUT", "CONCORD_HOME", "CONCORD_CONFIG"]


@pytest.fixture
def clean_env(monkeypatch):
    """None of the CONCORD_* settings, all restored afterwards (config.load() exports
    CONCORD_VAR_DIR, which must not leak into other tests)."""
    for name in [*SERVICE_VARS, *OTHER_VARS]:
        monkeypatch.setenv(name, "")  # records the original value, present or not
        monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_are_sqlite_files_under_the_repository_var_dir(clean_env):
    loaded = config.load()
    var = config.repo_root() / "var"
    assert loaded["DATABASE_URLS"] == {s: f"sqlite:///{var}/{s}.db" for s in config.SERVICES}
    assert loaded["AMQP_URI"] == "amqp://guest:guest@127.0.0.1:5672/concord"
    assert loaded["WEB_SERVER_ADDRESS"] == "127.0.0.1:8000"
    assert loaded["RPC_TIMEOUT_SECONDS"] == 10


def test_environment_overrides(clean_env, tmp_path):
    clean_env.setenv("CONCORD_VAR_DIR", str(tmp_path))
    clean_env.setenv("CONCORD_GATEWAY_DATABASE_URL", "postgresql://u@db/concord_test_gateway")
    clean_env.setenv("CONCORD_HTTP_PORT", "18000")
    loaded = config.load()
    assert loaded["DATABASE_URLS"]["gateway"] == "postgresql://u@db/concord_test_gateway"
    assert loaded["DATABASE_URLS"]["referral"] == f"sqlite:///{tmp_path}/referral.db"
    assert loaded["WEB_SERVER_ADDRESS"] == "127.0.0.1:18000"


def test_relative_var_dir_is_relative_to_the_repository(clean_env):
    clean_env.setenv("CONCORD_VAR_DIR", "var/test-run")
    assert config.var_dir() == config.repo_root() / "var" / "test-run"


def test_redacted_url_hides_the_password():
    assert (
        config.redact_url("amqp://guest:secret@h:5672/concord") == "amqp://guest:***@h:5672/concord"
    )
