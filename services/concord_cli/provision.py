"""What must exist before the services start: the bus topology, each database's schema,
the demo users. Each step is written by the package that owns it; this only calls it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any


def declare_topology(amqp_uri: str) -> list[str]:
    from concord_contracts.topology import declare

    return list(declare(amqp_uri))


def migrate(nameko_config: Mapping[str, Any], services: Iterable[str]) -> Iterator[str]:
    """Upgrade each service's database to its newest migration; yields each service done."""
    from concord_kit.migrations import upgrade

    urls = nameko_config["DATABASE_URLS"]
    for service in services:
        upgrade(service, urls[service])
        yield service


def seed(nameko_config: Mapping[str, Any], password: str) -> Any:
    from gateway.seed import seed_demo_users

    return seed_demo_users(nameko_config["DATABASE_URLS"]["gateway"], password)
