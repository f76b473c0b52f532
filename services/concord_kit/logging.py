"""Logging: structlog, JSON lines, one setup for every service.

Every line names the service and, when known, the correlation id and coordination id.
Never log personal data: names, dates of birth, contacts, free text, tokens. Log
identifiers and codes.
"""

from __future__ import annotations

import inspect
import logging
import sys
import uuid
from typing import Any

import structlog
from nameko.extensions import DependencyProvider

_configured = False


def configure(service: str, level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            _add_service(service),
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _configured = True


def _add_service(service: str):
    def processor(_logger, _name, event_dict):
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def _coordination_id_argument(worker_ctx) -> str | None:
    """The `coordination_id` an entrypoint was called with (an RPC argument or a URL part)."""
    method = getattr(worker_ctx.service, worker_ctx.entrypoint.method_name, None)
    if method is None:
        return None
    try:
        bound = inspect.signature(method).bind_partial(*worker_ctx.args, **worker_ctx.kwargs)
    except TypeError:
        return None
    value = bound.arguments.get("coordination_id")
    return str(value)[:64] if isinstance(value, str | uuid.UUID) else None


class Logs(DependencyProvider):
    """Configures logging when the service starts; binds each worker's ids to its lines."""

    def setup(self) -> None:
        configure(self.container.service_name)

    def worker_setup(self, worker_ctx) -> None:
        coordination_id = worker_ctx.data.get("coordination_id") or _coordination_id_argument(
            worker_ctx
        )
        if coordination_id:
            # In context data it travels on with every call this worker makes.
            worker_ctx.data["coordination_id"] = coordination_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            correlation_id=worker_ctx.data.get("correlation_id"),
            coordination_id=coordination_id,
            entrypoint=worker_ctx.entrypoint.method_name,
        )

    def worker_teardown(self, worker_ctx) -> None:
        structlog.contextvars.clear_contextvars()

    def get_dependency(self, worker_ctx):
        return structlog.get_logger(self.container.service_name)
