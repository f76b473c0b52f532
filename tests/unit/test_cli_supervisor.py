"""The supervisord configuration `concord run` writes (rendered only, nothing started)."""

import configparser
from pathlib import Path

import pytest

from concord_cli.supervisor import Layout, render_config

pytestmark = pytest.mark.unit

LAYOUT = Layout(
    repo=Path("/srv/concord"),
    var=Path("/srv/concord/var"),
    nameko_config=Path("/srv/concord/deploy/config.yaml"),
    bin_dir=Path("/srv/concord/.venv/bin"),
)


def parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def test_one_program_per_service_running_its_package_with_the_shared_config():
    conf = parse(render_config(LAYOUT))
    programs = [s for s in conf.sections() if s.startswith("program:")]
    assert programs == [
        "program:referral",
        "program:case_management",
        "program:justice_liaison",
        "program:cross_border",
        "program:gateway",
    ]
    assert conf["program:case_management"]["command"] == (
        "/srv/concord/.venv/bin/nameko run --config /srv/concord/deploy/config.yaml"
        " case_management.service:CaseManagementService"
    )
    assert conf["program:case_management"]["directory"] == "/srv/concord"


def test_programs_restart_and_stop_gracefully_with_their_own_log():
    program = parse(render_config(LAYOUT))["program:referral"]
    assert program["autorestart"] == "true"
    assert program["startsecs"] == "1"
    assert program["stopsignal"] == "TERM"
    assert program["stopwaitsecs"] == "15"
    assert program["killasgroup"] == "true"
    assert program["numprocs"] == "1"
    assert program["process_name"] == "%(program_name)s"
    assert program["stdout_logfile"] == "/srv/concord/var/log/referral.log"
    assert program["redirect_stderr"] == "true"


def test_control_socket_and_rpc_interface_under_the_var_dir():
    conf = parse(render_config(LAYOUT))
    assert conf["unix_http_server"]["file"] == "/srv/concord/var/supervisor.sock"
    assert conf["supervisorctl"]["serverurl"] == "unix:///srv/concord/var/supervisor.sock"
    assert "supervisor.rpcinterface_factory" in conf["rpcinterface:supervisor"]
    assert conf["supervisord"]["pidfile"] == "/srv/concord/var/supervisord.pid"
    assert conf["supervisord"]["logfile"] == "/srv/concord/var/log/supervisord.log"


def test_instances_multiply_agency_services_but_not_the_gateway():
    conf = parse(render_config(LAYOUT, instances=2))
    for service in ("referral", "case_management", "justice_liaison", "cross_border"):
        program = conf[f"program:{service}"]
        assert program["numprocs"] == "2"
        assert program["process_name"] == "%(program_name)s-%(process_num)d"
        assert program["stdout_logfile"] == f"/srv/concord/var/log/{service}-%(process_num)d.log"
    assert conf["program:gateway"]["numprocs"] == "1"


def test_instances_below_one_are_refused():
    with pytest.raises(ValueError):
        render_config(LAYOUT, instances=0)


def test_percent_in_a_path_is_escaped_for_supervisor():
    layout = Layout(
        repo=Path("/home/a%b"),
        var=Path("/home/a%b/var"),
        nameko_config=Path("/home/a%b/deploy/config.yaml"),
        bin_dir=Path("/home/a%b/.venv/bin"),
    )
    program = parse(render_config(layout))["program:gateway"]
    assert program["directory"] == "/home/a%%b"


def test_a_socket_path_too_long_for_unix_sockets_moves_to_tmp_stably():
    deep = Path("/tmp/pytest-of-root/pytest-12/" + "x" * 80 + "/var")
    layout = Layout(LAYOUT.repo, deep, LAYOUT.nameko_config, LAYOUT.bin_dir)
    assert str(layout.socket).startswith("/tmp/concord-")
    assert len(str(layout.socket)) < 100
    assert layout.socket == Layout(deep.parent, deep, Path("x"), Path("y")).socket
    assert LAYOUT.socket == Path("/srv/concord/var/supervisor.sock")
