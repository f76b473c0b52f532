"""Where things are, and the nameko configuration every command and service shares.

deploy/config.yaml is read with nameko's own loader so that the CLI sees exactly the
values a service process sees (same `${VAR:default}` substitution).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SERVICES: tuple[str, ...] = (
    "referral",
    "case_management",
    "justice_liaison",
    "cross_border",
    "gateway",
)
# The nameko service class of each package. Named explicitly: given a bare module, nameko
# runs every class in it that has entrypoints, the imported kit base class included.
SERVICE_CLASSES: dict[str, str] = {
    "referral": "ReferralService",
    "case_management": "CaseManagementService",
    "justice_liaison": "JusticeLiaisonService",
    "cross_border": "CrossBorderService",
    "gateway": "GatewayService",
}

# The services that own agency work: the ones that consume events and may run as several
# competing instances. The gateway binds the HTTP port, so there is only ever one.
AGENCY_SERVICES: tuple[str, ...] = SERVICES[:-1]

DEFAULT_DEMO_PASSWORD = "concord-demo"


def repo_root() -> Path:
    """The checkout (services/concord_cli/config.py -> ../..); CONCORD_HOME overrides it
    for an installed, non-editable copy (the container image)."""
    home = os.environ.get("CONCORD_HOME")
    return Path(home).resolve() if home else Path(__file__).resolve().parents[2]


def var_dir() -> Path:
    """CONCORD_VAR_DIR, absolute or relative to the repository (default `var`)."""
    path = Path(os.environ.get("CONCORD_VAR_DIR") or "var")
    return path if path.is_absolute() else repo_root() / path


def config_path() -> Path:
    return Path(os.environ.get("CONCORD_CONFIG") or repo_root() / "deploy" / "config.yaml")


def export_var_dir() -> Path:
    """Pin CONCORD_VAR_DIR to an absolute path in our environment.

    The SQLite defaults in config.yaml are `sqlite:///${CONCORD_VAR_DIR:var}/...`; relative,
    they would depend on each process's working directory. Exported here, they are the same
    for this command, supervisord and every program it starts (they inherit it).
    """
    path = var_dir()
    os.environ["CONCORD_VAR_DIR"] = str(path)
    return path


def ensure_var_dir() -> Path:
    path = export_var_dir()
    (path / "log").mkdir(parents=True, exist_ok=True)
    return path


def load() -> dict[str, Any]:
    from nameko.cli.utils.config import load_config

    export_var_dir()
    with open(config_path(), "rb") as stream:
        return load_config(stream)


def redact_url(url: str) -> str:
    """A database or broker URL fit to print: the password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an URL sqlalchemy understands: print nothing of it
        return "<url>"
