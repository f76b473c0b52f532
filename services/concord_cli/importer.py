"""`concord import FILE.jsonl`: a platform's bulk reports into the referral hub.

The file holds one referral per line (JSON, the body of `POST /api/v1/referrals`), each
with its `idempotency_key`: importing the same file again creates nothing twice. Lines are
sent in chunks to the hub's `submit_batch` RPC (the one `POST /api/v1/referrals:batch`
calls), each report accepted or refused on its own. What is refused is reported by line
number and field names, never by its values (they may name a child).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CHUNK = 200
MAX_CHUNK = 500  # the hub's own limit per call
MAX_LINE_BYTES = 256 * 1024
IMPORT_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    report: Any = None
    problem: dict | None = None  # when the line is not a report at all


@dataclass
class Tally:
    created: int = 0
    replayed: int = 0
    rejected: int = 0
    rejections: list[tuple[int, dict]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.replayed + self.rejected

    def add(self, line: int, status: str, errors: dict | None = None) -> None:
        setattr(self, status, getattr(self, status) + 1)
        if status == "rejected":
            self.rejections.append((line, errors or {}))


def read_lines(lines: Iterable[bytes | str]) -> Iterator[Line]:
    """The reports of a JSON-lines file; empty lines skipped; a line that is not JSON, or
    too long, is a problem of its own (the rest of the file still goes in)."""
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        if len(text.encode()) > MAX_LINE_BYTES:
            yield Line(number, problem={"_line": [f"Longer than {MAX_LINE_BYTES} bytes."]})
            continue
        try:
            yield Line(number, json.loads(text, parse_constant=_refuse_constant))
        except (ValueError, RecursionError):
            yield Line(number, problem={"_line": ["Not valid JSON."]})


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def chunks(lines: Iterable[Line], size: int) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def field_names(errors: Any, prefix: str = "") -> list[str]:
    """The fields an error names (`child.given_name`), without the messages' values."""
    if isinstance(errors, Mapping):
        names = []
        for key, value in errors.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            nested = field_names(value, path) if isinstance(value, Mapping) else []
            names.extend(nested or [path])
        return names
    return [prefix] if prefix else []


def import_reports(
    lines: Iterable[Line],
    submit: Callable[[list], Mapping[str, Any]],
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] = lambda n: None,
) -> Tally:
    """Send `lines` to `submit` (the hub's `submit_batch`) in chunks; count each outcome."""
    tally = Tally()
    for chunk in chunks(lines, chunk_size):
        reports = [line for line in chunk if line.problem is None]
        for line in chunk:
            if line.problem is not None:
                tally.add(line.number, "rejected", line.problem)
        if reports:
            answer = submit([line.report for line in reports])
            for line, result in zip(reports, answer["results"], strict=True):
                tally.add(line.number, result["status"], result.get("errors"))
        progress(len(chunk))
    return tally


def importer_identity(user: str) -> dict[str, str]:
    """The caller the hub sees: an intake officer of the hub named after the operator
    (the audit trail records `import:<user>` for every referral created)."""
    return {
        "user_id": f"import:{user}"[:64],
        "role": "intake_officer",
        "agency": "referral_hub",
        "correlation_id": f"import-{uuid.uuid4()}",
    }
