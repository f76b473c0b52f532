"""What the referral hub reads from its deployment when it starts, checked at once: the
routing table (a YAML file), the SLA clocks, the window of the duplicate check.

A bad routing file or SLA setting stops the service with a message naming each problem,
rather than routing children's referrals by a table nobody meant.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from nameko.extensions import DependencyProvider

from concord_kit.config import setting
from referral.domain import (
    DEFAULT_SLA,
    DUPLICATE_WINDOW,
    InvalidRoutingRules,
    RoutingRule,
    SlaPolicy,
    parse_routing_rules,
)

PACKAGED_RULES = Path(__file__).resolve().parent / "routing_rules.yaml"


class InvalidSettings(RuntimeError):
    """The service cannot start with this configuration; the message says why."""


def load_routing_rules(path: str | Path | None = None) -> tuple[RoutingRule, ...]:
    """The routing table from `path` (default: the one shipped with the service)."""
    where = Path(path) if path else PACKAGED_RULES
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidSettings(f"routing rules {where}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidSettings(f"routing rules {where}: not YAML{place}") from None
    try:
        return parse_routing_rules(data)
    except InvalidRoutingRules as exc:
        raise InvalidSettings(f"routing rules {where}: " + "; ".join(exc.problems)) from None


def _default_acceptance() -> dict[str, float]:
    return {u.value: t.total_seconds() for u, t in DEFAULT_SLA.acceptance.items()}


def load_sla(acceptance: Any = None, by_agency: Any = None) -> SlaPolicy:
    try:
        return SlaPolicy.from_settings(
            acceptance if acceptance is not None else _default_acceptance(), by_agency or {}
        )
    except ValueError as exc:
        raise InvalidSettings(f"SLA clocks: {exc}") from None


def load_duplicate_window(days: Any) -> dt.timedelta:
    if days is None:
        return DUPLICATE_WINDOW
    try:
        value = float(days)
    except (TypeError, ValueError):
        raise InvalidSettings("DUPLICATE_WINDOW_DAYS: a number of days") from None
    if value <= 0:
        raise InvalidSettings("DUPLICATE_WINDOW_DAYS: a positive number of days")
    return dt.timedelta(days=value)


class HubSettings(DependencyProvider):
    """Read and checked in `setup`, so a bad file fails the start, not a referral."""

    rules: tuple[RoutingRule, ...]
    sla: SlaPolicy
    duplicate_window: dt.timedelta

    def setup(self) -> None:
        self.rules = load_routing_rules(setting("ROUTING_RULES_PATH"))
        self.sla = load_sla(
            setting("SLA_ACCEPTANCE_SECONDS"), setting("SLA_ACCEPTANCE_SECONDS_BY_AGENCY")
        )
        self.duplicate_window = load_duplicate_window(setting("DUPLICATE_WINDOW_DAYS"))

    def get_dependency(self, worker_ctx) -> HubSettings:
        return self

    @staticmethod
    def now() -> dt.datetime:
        """The hub's clock (UTC). The domain never reads a clock: it is given `now`."""
        return dt.datetime.now(dt.UTC)
