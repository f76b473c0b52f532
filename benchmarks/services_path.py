"""The benchmark's own nameko services live in benchmarks/services (top-level packages, as
the kit finds a service's migrations by its name)."""

from __future__ import annotations

import sys
from pathlib import Path

SERVICES_DIR = Path(__file__).resolve().parent / "services"


def ensure_services_path() -> None:
    if str(SERVICES_DIR) not in sys.path:
        sys.path.insert(0, str(SERVICES_DIR))
