"""What every Concord service has: its database (with outbox relay), the caller's identity,
logging, and a `health` RPC."""

from __future__ import annotations

from nameko.rpc import rpc

from concord_kit.db import Database
from concord_kit.identity import Identity
from concord_kit.logging import Logs


class ConcordService:
    name: str

    db = Database()
    identity = Identity()
    log = Logs()

    @rpc
    def health(self) -> dict:
        return self.db.health()
