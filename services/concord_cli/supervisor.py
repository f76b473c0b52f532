"""Run the services under supervisord: its configuration, starting it, stopping it, asking it.

`concord run` writes var/supervisord.conf and runs supervisord; every other command talks
to that supervisord over its unix socket (XML-RPC), so they find it through the var dir.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import xmlrpc.client
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concord_cli.config import AGENCY_SERVICES, SERVICE_CLASSES, SERVICES

# A unix socket path must fit in sockaddr_un (108 bytes on Linux, with the NUL).
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class Layout:
    repo: Path
    var: Path
    nameko_config: Path
    bin_dir: Path  # where `nameko` and `supervisord` are (the virtualenv's bin)

    @property
    def conf(self) -> Path:
        return self.var / "supervisord.conf"

    @property
    def socket(self) -> Path:
        path = self.var / "supervisor.sock"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        # A deep var dir (a test's tmp dir): same var dir, same short name.
        digest = hashlib.sha1(str(self.var).encode()).hexdigest()[:12]
        return Path("/tmp") / f"concord-{digest}.sock"

    def executable(self, name: str) -> str:
        candidate = self.bin_dir / name
        if candidate.exists():
            return str(candidate)
        found = shutil.which(name)
        if not found:
            raise FileNotFoundError(f"{name} not found in {self.bin_dir} nor on PATH")
        return found


def default_bin_dir() -> Path:
    # Not resolved: the virtualenv's python is a symlink to the base interpreter.
    return Path(sys.executable).parent


def _ini(value: object) -> str:
    # supervisor expands %(name)s in values: a literal % must be doubled.
    return str(value).replace("%", "%%")


def render_config(layout: Layout, instances: int = 1, services: tuple[str, ...] = SERVICES) -> str:
    """The supervisord configuration: one program per service, `instances` processes of each
    agency service (competing consumers on the same queues), one gateway."""
    if instances < 1:
        raise ValueError("instances must be at least 1")
    var, log = layout.var, layout.var / "log"
    nameko = layout.bin_dir / "nameko"
    sections = [
        f"""\
; Written by `concord run`; rewritten at every start. Do not edit.
[unix_http_server]
file={_ini(layout.socket)}
chmod=0700

[supervisord]
logfile={_ini(log / "supervisord.log")}
pidfile={_ini(var / "supervisord.pid")}
childlogdir={_ini(log)}
directory={_ini(layout.repo)}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_ini(layout.socket)}
"""
    ]
    for service in services:
        count = instances if service in AGENCY_SERVICES else 1
        if count == 1:
            process_name, logfile = "%(program_name)s", _ini(log / f"{service}.log")
        else:
            process_name = "%(program_name)s-%(process_num)d"
            logfile = _ini(log / service) + "-%(process_num)d.log"
        target = f"{service}.service:{SERVICE_CLASSES[service]}"
        sections.append(
            f"""\
[program:{service}]
command={_ini(nameko)} run --config {_ini(layout.nameko_config)} {target}
directory={_ini(layout.repo)}
process_name={process_name}
numprocs={count}
autostart=true
autorestart=true
startsecs=1
startretries=10
stopsignal=TERM
stopwaitsecs=15
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={logfile}
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=3
; the rest of the environment is inherited from supervisord (CONCORD_* included)
environment=PYTHONUNBUFFERED="1"
"""
        )
    return "\n".join(sections)


def proxy(layout: Layout) -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{layout.socket}")
    # The host is ignored: the transport talks to the socket.
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def running_pid(layout: Layout) -> int | None:
    """supervisord's pid, or None when nothing answers on the socket."""
    try:
        return int(proxy(layout).supervisor.getPID())
    except (OSError, xmlrpc.client.Error):
        return None


def process_info(layout: Layout) -> list[dict[str, Any]] | None:
    """supervisord's view of each process (name, group, statename, pid...), None if not running."""
    try:
        return list(proxy(layout).supervisor.getAllProcessInfo())
    except (OSError, xmlrpc.client.Error):
        return None


def write_config(layout: Layout, instances: int) -> Path:
    (layout.var / "log").mkdir(parents=True, exist_ok=True)
    layout.conf.write_text(render_config(layout, instances))
    return layout.conf


def start(layout: Layout, instances: int, foreground: bool) -> None:
    """Start supervisord. In the foreground this process *becomes* supervisord, so Ctrl-C
    reaches it directly and it stops every program (each in its own process group)."""
    if not (layout.bin_dir / "nameko").exists():
        raise FileNotFoundError(f"nameko not found in {layout.bin_dir}")
    conf = write_config(layout, instances)
    argv = [layout.executable("supervisord"), "-c", str(conf)]
    if foreground:
        os.execv(argv[0], [*argv, "-n"])
    subprocess.run(argv, check=True)
    deadline = time.monotonic() + 15
    while running_pid(layout) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"supervisord did not answer on {layout.socket}")
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A supervisord started by a caller that has not reaped it yet is a zombie: gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop(layout: Layout, timeout: float = 60) -> int | None:
    """Ask supervisord to stop every program and exit; wait for it. Returns its pid, or None
    when it was not running."""
    pid = running_pid(layout)
    if pid is None:
        return None
    with suppress(OSError, xmlrpc.client.Error):  # it may go away between the two calls
        proxy(layout).supervisor.shutdown()
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"supervisord (pid {pid}) still running after {timeout:.0f}s")
        time.sleep(0.2)
    return pid
