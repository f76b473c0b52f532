"""Settings, read from nameko's config (deploy/config.yaml, environment-substituted)."""

from __future__ import annotations

from typing import Any

from nameko import config

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/concord"
DEFAULT_RPC_TIMEOUT_SECONDS = 10.0


def setting(key: str, default: Any = None) -> Any:
    return config.get(key, default)


def amqp_uri() -> str:
    return str(setting("AMQP_URI", DEFAULT_AMQP_URI))


def database_url(service: str) -> str:
    urls = setting("DATABASE_URLS") or {}
    url = urls.get(service)
    if not url:
        raise RuntimeError(f"DATABASE_URLS has no entry for {service}")
    return str(url)


def rpc_timeout() -> float:
    return float(setting("RPC_TIMEOUT_SECONDS", DEFAULT_RPC_TIMEOUT_SECONDS))
