"""Bad referral bodies, one per way a field can be wrong: wrong types, unknown codes, huge
strings, control characters, what a channel must carry or may not. Each case names the
field (top-level key of the 422's `fields`) that must be named in the answer.

Used by the integration test (RPC) and the end-to-end test (HTTP) of bad input.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.synthetic import make_platform_report, make_referral

HUGE = "x" * 300_000  # past every bound, and past the gateway's 256 KiB body limit
LONG = "x" * 20_000  # past every text bound, under the body limit
CONTROL = "Ta\x00lo"
BELL = "Ta\x07lo"


def helpline() -> dict[str, Any]:
    return make_referral(seed=7, channel="helpline", urgency="high", categories=["grooming"])


def platform() -> dict[str, Any]:
    return make_platform_report(seed=7)


@dataclass(frozen=True)
class Case:
    id: str
    field: str
    build: Callable[[], Any]
    too_large: bool = False  # refused by the gateway's size limit (413), before any field


def _set(base: Callable[[], dict], path: str, value: Any) -> Callable[[], Any]:
    """`base()` with the field at `path` (dotted) set to `value`; setting one of the
    child's age fields clears the other, so that only the value under test is wrong."""

    def build() -> Any:
        body = copy.deepcopy(base())
        *parents, last = path.split(".")
        target = body
        for name in parents:
            if not isinstance(target.get(name), dict):
                target[name] = {}
            target = target[name]
        target[last] = value
        other = {"age_years": "date_of_birth", "date_of_birth": "age_years"}.get(last)
        if parents == ["child"] and other:
            target[other] = None
        return body

    return build


def _without(base: Callable[[], dict], path: str) -> Callable[[], Any]:
    def build() -> Any:
        body = copy.deepcopy(base())
        target = body
        *parents, last = path.split(".")
        for name in parents:
            target = target[name]
        target.pop(last, None)
        return body

    return build


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(id_: str, field: str, build: Callable[[], Any], too_large: bool = False) -> None:
        cases.append(Case(id_, field, build, too_large))

    h, p = helpline, platform
    # channel
    add("channel-missing", "channel", _without(h, "channel"))
    add("channel-number", "channel", _set(h, "channel", 3))
    add("channel-unknown", "channel", _set(h, "channel", "carrier_pigeon"))
    add("channel-list", "channel", _set(h, "channel", ["helpline"]))
    add("channel-control", "channel", _set(h, "channel", "help\x00line"))
    # categories
    add("categories-missing", "categories", _without(h, "categories"))
    add("categories-string", "categories", _set(h, "categories", "grooming"))
    add("categories-empty", "categories", _set(h, "categories", []))
    add("categories-unknown", "categories", _set(h, "categories", ["gossip"]))
    add("categories-twice", "categories", _set(h, "categories", ["grooming", "grooming"]))
    add("categories-number", "categories", _set(h, "categories", [7]))
    add("categories-huge", "categories", _set(h, "categories", ["grooming"] * 5000))
    # urgency
    add("urgency-number", "urgency", _set(h, "urgency", 3))
    add("urgency-unknown", "urgency", _set(h, "urgency", "whenever"))
    add("urgency-bool", "urgency", _set(h, "urgency", True))
    # child
    add("child-string", "child", _set(h, "child", "Talo"))
    add("child-missing-on-helpline", "child", _without(h, "child"))
    add("child-given-name-number", "child", _set(h, "child.given_name", 12))
    add("child-given-name-long", "child", _set(h, "child.given_name", LONG))
    add("child-given-name-control", "child", _set(h, "child.given_name", CONTROL))
    add("child-given-name-newline", "child", _set(h, "child.given_name", "Ta\nlo"))
    add("child-given-name-missing-on-helpline", "child", _set(h, "child.given_name", None))
    add("child-family-name-long", "child", _set(h, "child.family_name", LONG))
    add("child-family-name-control", "child", _set(h, "child.family_name", BELL))
    add("child-dob-format", "child", _set(h, "child.date_of_birth", "23/11/2015"))
    add("child-dob-future", "child", _set(h, "child.date_of_birth", "2999-01-01"))
    add("child-dob-adult", "child", _set(h, "child.date_of_birth", "1990-01-01"))
    add("child-dob-number", "child", _set(h, "child.date_of_birth", 20150101))
    add("child-age-string", "child", _set(h, "child.age_years", "14"))
    add("child-age-float", "child", _set(h, "child.age_years", 14.5))
    add("child-age-adult", "child", _set(h, "child.age_years", 25))
    add("child-age-negative", "child", _set(h, "child.age_years", -1))
    add("child-sex-unknown-code", "child", _set(h, "child.sex", "robot"))
    add("child-unknown-field", "child", _set(h, "child.nickname", "Lo"))
    # reporter
    add("reporter-string", "reporter", _set(h, "reporter", "parent"))
    add("reporter-kind-unknown", "reporter", _set(h, "reporter", {"kind": "oracle"}))
    add(
        "reporter-phone-letters",
        "reporter",
        _set(h, "reporter", {"kind": "relative", "contact": {"phone": "call me maybe"}}),
    )
    add(
        "reporter-email",
        "reporter",
        _set(h, "reporter", {"kind": "relative", "contact": {"email": "not-an-address"}}),
    )
    add(
        "reporter-name-control",
        "reporter",
        _set(h, "reporter", {"kind": "relative", "contact": {"name": CONTROL}}),
    )
    add("reporter-missing-on-helpline", "reporter", _without(h, "reporter"))
    # summary
    add("summary-number", "summary", _set(h, "summary", 42))
    add("summary-long", "summary", _set(h, "summary", LONG))
    add("summary-huge", "summary", _set(h, "summary", HUGE), too_large=True)
    add("summary-control", "summary", _set(h, "summary", "Line one.\x1bLine two."))
    add("summary-missing-on-helpline", "summary", _without(h, "summary"))
    # consent
    add("consent-string", "consent", _set(h, "consent", "yes"))
    add(
        "consent-status-unknown",
        "consent",
        _set(h, "consent", {"status": "maybe", "by": "child", "legal_basis": None}),
    )
    add(
        "consent-by-unknown",
        "consent",
        _set(h, "consent", {"status": "given", "by": "neighbour", "legal_basis": None}),
    )
    add(
        "consent-refused-without-basis",
        "consent",
        _set(h, "consent", {"status": "refused", "by": "child", "legal_basis": None}),
    )
    add(
        "consent-basis-unknown",
        "consent",
        _set(h, "consent", {"status": "not_sought", "by": "not_applicable", "legal_basis": "x"}),
    )
    add("consent-missing-on-helpline", "consent", _without(h, "consent"))
    # idempotency key
    add("idempotency-key-spaces", "idempotency_key", _set(h, "idempotency_key", "a key"))
    add("idempotency-key-long", "idempotency_key", _set(h, "idempotency_key", "k" * 200))
    add("idempotency-key-number", "idempotency_key", _set(h, "idempotency_key", 12345))
    add("idempotency-key-control", "idempotency_key", _set(h, "idempotency_key", "ab\x00cd"))
    # risk indicators
    add("risk-indicators-unknown", "risk_indicators", _set(h, "risk_indicators", ["doom"]))
    add("risk-indicators-string", "risk_indicators", _set(h, "risk_indicators", "doom"))
    add(
        "risk-indicators-twice",
        "risk_indicators",
        _set(h, "risk_indicators", ["self_harm_risk", "self_harm_risk"]),
    )
    # platform fields
    add("platform-missing", "platform", _without(p, "platform"))
    add("platform-not-a-code", "platform", _set(p, "platform", "Example Social!"))
    add("platform-long", "platform", _set(p, "platform", "p" * 500))
    add("platform-on-helpline", "platform", _set(h, "platform", "example_social"))
    add("incident-type-missing", "incident_type", _without(p, "incident_type"))
    add("incident-type-unknown", "incident_type", _set(p, "incident_type", "mystery"))
    add("annotations-unknown", "annotations", _set(p, "annotations", ["spicy"]))
    add("annotations-on-helpline", "annotations", _set(h, "annotations", ["generative_ai"]))
    add("external-reference-spaces", "external_reference", _set(p, "external_reference", "a b"))
    add("external-reference-long", "external_reference", _set(p, "external_reference", LONG))
    add(
        "file-hash-length",
        "file_hashes",
        _set(p, "file_hashes", [{"algorithm": "sha256", "digest": "ab" * 10}]),
    )
    add(
        "file-hash-not-hex",
        "file_hashes",
        _set(p, "file_hashes", [{"algorithm": "md5", "digest": "zz" * 16}]),
    )
    add(
        "file-hash-algorithm",
        "file_hashes",
        _set(p, "file_hashes", [{"algorithm": "crc32", "digest": "ab" * 16}]),
    )
    add(
        "file-hash-too-many",
        "file_hashes",
        _set(p, "file_hashes", [{"algorithm": "md5", "digest": "ab" * 16}] * 101),
    )
    add(
        "file-hash-file-content",
        "file_hashes",
        _set(p, "file_hashes", [{"algorithm": "md5", "digest": "ab" * 16, "file": "..."}]),
    )
    # another country
    add(
        "requesting-country-lowercase",
        "requesting_country",
        _set(lambda: make_referral(seed=8, channel="another_country"), "requesting_country", "de"),
    )
    add("requesting-country-on-helpline", "requesting_country", _set(h, "requesting_country", "DE"))
    # anything else
    add("unknown-field", "surprise", _set(h, "surprise", "field"))
    return cases


BAD_CASES = _cases()


def not_an_object_cases() -> list[tuple[str, Any]]:
    return [("list", ["not", "an", "object"]), ("string", "referral"), ("number", 42)]
