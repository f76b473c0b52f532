"""The event catalogue as Markdown (docs/events.md), rendered from the contracts so the
document cannot drift from the code: `python -m concord_contracts.catalogue > docs/events.md`."""

from __future__ import annotations

import json
from importlib import resources

from marshmallow import fields

from concord_contracts.envelope import EnvelopeSchema
from concord_contracts.events import EVENTS
from concord_contracts.topology import CONSUMERS, MONITOR_QUEUE, queue_name


def example(event_type: str) -> dict:
    text = resources.files("concord_contracts").joinpath(f"examples/{event_type}.json").read_text()
    return json.loads(text)


def describe(field: fields.Field) -> str:
    if isinstance(field, fields.Enum):
        return "code: " + ", ".join(f"`{m.value}`" for m in field.enum)
    if isinstance(field, fields.List):
        return f"list of ({describe(field.inner)})"
    kind = type(field).__name__
    return {"AwareDateTime": "UTC timestamp (ISO 8601)", "UUID": "UUID"}.get(kind, kind.lower())


def render() -> str:
    lines = [
        "# Event catalogue",
        "",
        "Generated from `contracts/` by `python -m concord_contracts.catalogue`; a contract",
        "test fails when this file and the code disagree.",
        "",
        "Every event travels in one envelope on the topic exchange `concord.events`, routing",
        "key = event type. Payloads carry codes, statuses, identifiers and times only.",
        "",
        "## Envelope",
        "",
        "| field | type |",
        "|---|---|",
    ]
    for name, field in EnvelopeSchema().fields.items():
        lines.append(f"| `{name}` | {describe(field)} |")
    lines += ["", "## Events", ""]
    for event_type, spec in EVENTS.items():
        consumers = [s for s, types in CONSUMERS.items() if event_type in types]
        lines += [
            f"### `{event_type}` (v{spec.version})",
            "",
            spec.summary or "",
            "",
            f"Producer: `{spec.producer}`. Consumers: "
            + (", ".join(f"`{c}` (`{queue_name(c)}`)" for c in consumers) or "none yet")
            + f"; every event is also kept in the bounded tap `{MONITOR_QUEUE}`.",
            "",
            "| field | type | required |",
            "|---|---|---|",
        ]
        for name, field in spec.schema().fields.items():
            lines.append(f"| `{name}` | {describe(field)} | {'yes' if field.required else 'no'} |")
        lines += ["", "```json", json.dumps(example(event_type), indent=2), "```", ""]
    return "\n".join(lines).replace("\n\n\n", "\n\n")


if __name__ == "__main__":
    print(render(), end="")
