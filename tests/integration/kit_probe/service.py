import uuid

from kit_probe.models import notes
from nameko.rpc import rpc

from concord_kit.errors import Conflict
from concord_kit.events import on_event
from concord_kit.service import ConcordService


class KitProbe(ConcordService):
    name = "kit_probe"

    @rpc
    def note(self, coordination_id: str, count: int = 1) -> None:
        """Publish `count` probe events for one coordination id, in one transaction."""
        with self.db.unit_of_work() as uow:
            for _ in range(count):
                uow.publish("probe.noted", coordination_id, {"note_id": uuid.uuid4()})

    @rpc
    def noted(self, coordination_id: str) -> list[str]:
        with self.db.read() as session:
            rows = session.execute(
                notes.select().where(notes.c.coordination_id == coordination_id)
            ).all()
        return [row.event_id for row in rows]

    @on_event("probe.noted")
    def on_noted(self, event):
        if event.payload.get("fail"):
            raise Conflict("told to fail")
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            uow.session.execute(
                notes.insert().values(
                    coordination_id=str(event.coordination_id), event_id=str(event.event_id)
                )
            )
