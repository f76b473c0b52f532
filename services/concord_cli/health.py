"""Ask each service whether it is well, over the bus: its `health` RPC, with a short timeout."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HEALTH_TIMEOUT_SECONDS = 3.0

OK = "ok"
UNREACHABLE = "unreachable"
ERROR = "error"


def interpret(reply: Any) -> str:
    """A health reply as one word: `ok`, or the status the service reported."""
    if isinstance(reply, Mapping) and "status" in reply:
        return str(reply["status"])
    return OK


def _check(service: str, timeout: float) -> str:
    from nameko.exceptions import RemoteError
    from nameko.standalone.rpc import ClusterRpcClient

    try:
        with ClusterRpcClient(timeout=timeout) as client:
            return interpret(client[service].health())
    except RemoteError:
        return ERROR  # it answered, with an exception
    except Exception:  # no queue (UnknownService), timeout, broker down
        return UNREACHABLE


def check_all(
    nameko_config: Mapping[str, Any],
    services: Iterable[str],
    timeout: float = HEALTH_TIMEOUT_SECONDS,
) -> dict[str, str]:
    """Health of each service, asked in parallel (one RPC client each)."""
    from nameko import config

    # py-amqp warns about the basic.return of a call to a service with no queue: that is
    # just "unreachable" here.
    logging.getLogger("amqp").setLevel(logging.ERROR)
    services = list(services)
    if not services:
        return {}
    # The clients read nameko.config when they are built; patch it once, around all threads.
    with config.patch(dict(nameko_config), clear=True), ThreadPoolExecutor(len(services)) as pool:
        results = pool.map(lambda s: _check(s, timeout), services)
        return dict(zip(services, results, strict=True))
