"""Caller identity: who is asking, travelling with every RPC and event in nameko context data.

The gateway authenticates a person and *acts as* them; every service reads the same
identity and decides for itself what that caller may see (authorisation is enforced by the
owner of the data, not only by the gateway).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from nameko.extensions import DependencyProvider

from concord_contracts.codes import Organisation, Role
from concord_kit.errors import Forbidden, Unauthenticated

USER_ID = "user_id"
ROLE = "role"
AGENCY = "agency"
CORRELATION_ID = "correlation_id"


@dataclass(frozen=True)
class Caller:
    user_id: str
    role: Role
    agency: Organisation

    def as_context(self) -> dict[str, str]:
        return {USER_ID: self.user_id, ROLE: str(self.role), AGENCY: str(self.agency)}

    @classmethod
    def from_context(cls, data: dict) -> Caller | None:
        try:
            return cls(str(data[USER_ID]), Role(data[ROLE]), Organisation(data[AGENCY]))
        except (KeyError, ValueError):
            return None


SYSTEM = Caller("system", Role.administrator, Organisation.system)
"""The identity a service uses when it acts on its own (an event handler, the relay)."""


class CallContext:
    """What a worker knows of its caller; the object a service's `identity` attribute holds."""

    def __init__(self, data: dict):
        self._data = data

    @property
    def caller(self) -> Caller | None:
        return Caller.from_context(self._data)

    @property
    def correlation_id(self) -> str:
        value = self._data.get(CORRELATION_ID)
        if not value:
            value = str(uuid.uuid4())
            self._data[CORRELATION_ID] = value
        return str(value)

    def require(self, roles: Iterable[Role] | None = None) -> Caller:
        """The caller, if there is one and (when `roles` is given) it holds one of them."""
        caller = self.caller
        if caller is None:
            raise Unauthenticated("no caller identity")
        if roles is not None and caller.role not in set(roles):
            raise Forbidden(f"role {caller.role} may not do this")
        return caller

    def act_as(self, caller: Caller, correlation_id: str | None = None) -> None:
        """Make every following RPC of this worker carry `caller` (used by the gateway)."""
        self._data.update(caller.as_context())
        self._data[CORRELATION_ID] = (
            correlation_id or self._data.get(CORRELATION_ID) or str(uuid.uuid4())
        )

    def follow(self, correlation_id: str | None) -> None:
        """Continue a flow begun elsewhere (an event's correlation id)."""
        if correlation_id:
            self._data[CORRELATION_ID] = correlation_id


class Identity(DependencyProvider):
    """Injects the worker's `CallContext`."""

    def get_dependency(self, worker_ctx):
        return CallContext(worker_ctx.data)
