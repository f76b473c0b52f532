"""Synthetic referrals for tests and demos: invented people only, generated in code.

Names and words are random combinations of invented syllables ("Talo", "Menri"), phone
numbers come from a range reserved for fiction (+44 7700 900xxx), e-mail addresses from the
reserved domain example.org. Every syllable holds a letter outside a-f, so no generated
word can hide in a UUID's hexadecimal digits (the bus privacy checks look for them).

    make_referral()                                   # a valid submission, at random
    make_referral(seed=3)                             # the same one every time
    make_referral(categories=["cyberstalking"], urgency="high")

Overrides replace top-level keys as given (and may add unknown ones, to build bad input).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from concord_contracts.codes import (
    Annotation,
    Category,
    Channel,
    ConsentGivenBy,
    ConsentStatus,
    IncidentType,
    LegalBasis,
    ReporterKind,
    Sex,
    Urgency,
)

SYLLABLES = (
    "ta", "lo", "men", "ri", "vek", "su", "ka", "dor", "ni", "ra",
    "zu", "qel", "wo", "xi", "lym", "tor", "pel", "gu", "hin", "sor",
)  # fmt: skip

FICTION_PHONE_PREFIX = "+44 7700 900"  # Ofcom's range for drama: never a real line


def _rng(seed: int | random.Random | None) -> random.Random:
    return seed if isinstance(seed, random.Random) else random.Random(seed)


def make_word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables))


def make_name(seed: int | random.Random | None = None, syllables: int = 2) -> str:
    """An invented name such as "Talo" or "Menrivek"."""
    return make_word(_rng(seed), syllables).capitalize()


def make_summary(seed: int | random.Random | None = None, sentences: int = 3) -> str:
    """Free text made of invented words (3 to 4 syllables, so 6 letters or more)."""
    rng = _rng(seed)
    lines = []
    for _ in range(sentences):
        words = [make_word(rng, rng.randint(3, 4)) for _ in range(rng.randint(4, 9))]
        lines.append(" ".join(words).capitalize() + ".")
    return " ".join(lines)


def make_child(seed: int | random.Random | None = None) -> dict[str, Any]:
    """A child under 18, with either a date of birth or an age in years (never both)."""
    rng = _rng(seed)
    child: dict[str, Any] = {
        "given_name": make_name(rng),
        "family_name": make_name(rng, 3) if rng.random() < 0.8 else None,
        "sex": rng.choice(list(Sex)).value,
    }
    if rng.random() < 0.5:
        born = dt.date.today() - dt.timedelta(days=rng.randint(60, 16 * 365))
        child["date_of_birth"] = born.isoformat()
    else:
        child["age_years"] = rng.randint(1, 17)
    return child


def make_reporter(seed: int | random.Random | None = None) -> dict[str, Any]:
    rng = _rng(seed)
    kind = rng.choice(list(ReporterKind))
    if kind == ReporterKind.anonymous:
        return {"kind": kind.value, "contact": None}
    name = make_name(rng)
    contact: dict[str, Any] = {
        "name": None if kind == ReporterKind.platform else f"{name} {make_name(rng, 3)}",
        "phone": f"{FICTION_PHONE_PREFIX}{rng.randint(0, 999):03d}",
        "email": f"{name.lower()}.{rng.randint(10, 99)}@example.org",
    }
    return {"kind": kind.value, "contact": contact}


def make_consent(seed: int | random.Random | None = None) -> dict[str, Any]:
    """Consent given by someone, or a legal basis for travelling without it."""
    rng = _rng(seed)
    status = rng.choice(list(ConsentStatus))
    if status == ConsentStatus.given:
        by = rng.choice(
            [ConsentGivenBy.child, ConsentGivenBy.parent_or_carer, ConsentGivenBy.guardian]
        )
        return {"status": status.value, "by": by.value, "legal_basis": None}
    by = (
        ConsentGivenBy.not_applicable
        if status == ConsentStatus.not_sought
        else rng.choice(
            [ConsentGivenBy.child, ConsentGivenBy.parent_or_carer, ConsentGivenBy.guardian]
        )
    )
    return {
        "status": status.value,
        "by": by.value,
        "legal_basis": rng.choice(list(LegalBasis)).value,
    }


PLATFORMS = ("example_social", "example_video", "example_chat", "example_cloud")
"""Invented platform codes (a platform code is deployment data, not a real company)."""

COUNTRIES = ("DE", "FR", "ES", "NL", "PL", "IT")


def make_platform_fields(seed: int | random.Random | None = None) -> dict[str, Any]:
    """What a platform report carries besides the common fields: the platform, an incident
    type, annotations, file hashes (digests of random bytes: no file behind them) and the
    platform's own report reference."""
    rng = _rng(seed)
    algorithms = {"md5": 16, "sha1": 20, "sha256": 32}
    hashes = []
    for _ in range(rng.randint(0, 2)):
        algorithm = rng.choice(sorted(algorithms))
        hashes.append(
            {"algorithm": algorithm, "digest": rng.randbytes(algorithms[algorithm]).hex()}
        )
    return {
        "platform": rng.choice(PLATFORMS),
        "incident_type": rng.choice(list(IncidentType)).value,
        "annotations": [a.value for a in rng.sample(list(Annotation), k=rng.randint(0, 2))],
        "file_hashes": hashes,
        "external_reference": f"report-{rng.randint(10**8, 10**9 - 1)}",
    }


def channel_fields(channel: str, rng: random.Random) -> dict[str, Any]:
    """What a referral of `channel` must carry beyond the common fields."""
    if channel == Channel.platform_report:
        return make_platform_fields(rng)
    if channel == Channel.another_country:
        return {"requesting_country": rng.choice(COUNTRIES)}
    return {}


def make_referral(seed: int | random.Random | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid referral submission (the JSON an intake officer sends), at random or from
    `seed`; `overrides` replace top-level keys. A platform report gets the platform's
    fields, a request from another country its country, unless overridden."""
    rng = _rng(seed)
    referral: dict[str, Any] = {
        "channel": rng.choice(list(Channel)).value,
        "categories": [c.value for c in rng.sample(list(Category), k=rng.randint(1, 3))],
        "urgency": rng.choices(list(Urgency), weights=(1, 3, 6))[0].value,
        "child": make_child(rng),
        "reporter": make_reporter(rng),
        "summary": make_summary(rng),
        "consent": make_consent(rng),
    }
    channel = overrides.get("channel", referral["channel"])
    for key, value in channel_fields(channel, rng).items():
        referral.setdefault(key, value)
    referral.update(overrides)
    return referral


def make_platform_report(
    seed: int | random.Random | None = None, **overrides: Any
) -> dict[str, Any]:
    """A platform's machine-made report, as a bulk intake carries them: usually no child
    identity, a legal basis instead of consent, an idempotency key per report."""
    rng = _rng(seed)
    fields = make_platform_fields(rng)
    report: dict[str, Any] = {
        "channel": Channel.platform_report.value,
        "categories": [
            c.value
            for c in rng.sample(
                [
                    Category.csam_distribution,
                    Category.csam_possession,
                    Category.grooming,
                    Category.sextortion,
                    Category.ai_generated_material,
                ],
                k=rng.randint(1, 2),
            )
        ],  # fmt: skip
        "consent": {
            "status": ConsentStatus.not_sought.value,
            "by": ConsentGivenBy.not_applicable.value,
            "legal_basis": LegalBasis.mandatory_reporting.value,
        },
        "idempotency_key": f"{fields['platform']}:{fields['external_reference']}",
        **fields,
    }
    if rng.random() < 0.2:
        report["child"] = make_child(rng)
    report.update(overrides)
    return report


def make_self_report(seed: int | random.Random | None = None, **overrides: Any) -> dict[str, Any]:
    """A child's own report, which may carry almost nothing: a first name at most."""
    rng = _rng(seed)
    report: dict[str, Any] = {
        "channel": Channel.child_self_report.value,
        "categories": [rng.choice([Category.sextortion, Category.grooming]).value],
    }
    if rng.random() < 0.5:
        report["child"] = {"given_name": make_name(rng)}
    report.update(overrides)
    return report


# --- social services' case work (issue 4) ----------------------------------------------


def make_case_child(seed: int | random.Random | None = None) -> dict[str, Any]:
    """The child's record as a social worker writes it (section `child`)."""
    rng = _rng(seed)
    child = make_child(rng)
    child.pop("family_name", None)
    child.update(
        family_name=make_name(rng, 3),
        other_names=None,
        nationality=rng.choice(["FR", "ES", "DE", "IT", None]),
        languages=rng.sample(["en", "fr", "es", "ar", "uk"], k=rng.randint(1, 2)),
        interpreter_needed=rng.random() < 0.2,
        disabilities=rng.sample(["sensory", "learning", "physical"], k=rng.randint(0, 1)),
        disability_notes=None,
        school_name=f"{make_name(rng, 3)} school",
        school_grade=str(rng.randint(1, 12)),
        in_school=True,
    )
    return child


def make_contact(seed: int | random.Random | None = None) -> dict[str, Any]:
    rng = _rng(seed)
    return {
        "address": f"{rng.randint(1, 99)} {make_name(rng, 3)} street",
        "phone": f"{FICTION_PHONE_PREFIX}{rng.randint(0, 999):03d}",
        "email": f"{make_name(rng).lower()}.{rng.randint(10, 99)}@example.org",
        "safe_to_contact": True,
        "contact_notes": None,
    }


def make_family(seed: int | random.Random | None = None, size: int = 2) -> dict[str, Any]:
    """Section `family`: family members and carers."""
    rng = _rng(seed)
    relations = ["mother", "father", "grandparent", "sibling", "foster_carer"]
    return {
        "members": [
            {
                "given_name": make_name(rng),
                "family_name": make_name(rng, 3),
                "relation": relations[i % len(relations)],
                "is_main_carer": i == 0,
                "lives_with_child": True,
                "parental_responsibility": i < 2,
                "phone": f"{FICTION_PHONE_PREFIX}{rng.randint(0, 999):03d}",
            }
            for i in range(size)
        ]
    }


def make_people(seed: int | random.Random | None = None) -> dict[str, Any]:
    """Section `people`: the others around the child."""
    rng = _rng(seed)
    return {
        "members": [
            {"given_name": make_name(rng), "relation": "teacher", "supportive": True},
            {"given_name": make_word(rng, 3), "relation": "online_contact", "supportive": False},
        ]
    }


def make_safety(seed: int | random.Random | None = None) -> dict[str, Any]:
    rng = _rng(seed)
    return {
        "concerns": [
            {"concern": "threats_or_extortion", "details": make_summary(rng, 1)},
            {"concern": "images_circulating", "details": None},
        ],
        "safety_measures": make_summary(rng, 2),
    }


def make_registration(seed: int | random.Random | None = None, **overrides: Any) -> dict[str, Any]:
    """A case registered directly by a social worker (`POST /api/v1/cases`)."""
    rng = _rng(seed)
    registration: dict[str, Any] = {
        "child": make_case_child(rng),
        "categories": ["sextortion"],
        "urgency": "high",
        "contact": make_contact(rng),
        "family": make_family(rng),
        "people": make_people(rng),
        "safety": make_safety(rng),
    }
    registration.update(overrides)
    return registration


def make_assessment(seed: int | random.Random | None = None, **overrides: Any) -> dict[str, Any]:
    """An assessment with every need domain, the child's views in invented words."""
    rng = _rng(seed)
    levels = ["none", "low", "medium", "high"]
    assessment: dict[str, Any] = {
        "risk_level": rng.choice(["low", "medium", "high"]),
        "needs": {
            domain: {"level": rng.choice(levels), "notes": None}
            for domain in ("safety", "health", "mental_health", "education", "family", "legal")
        },
        "summary": make_summary(rng),
        "child_views": make_summary(rng, 1),
    }
    assessment.update(overrides)
    return assessment


def make_plan(
    seed: int | random.Random | None = None, due_in_days: int = 14, services: int = 2
) -> dict[str, Any]:
    """A case plan: two goals, `services` services on the first, due in `due_in_days`."""
    rng = _rng(seed)
    due = (dt.date.today() + dt.timedelta(days=due_in_days)).isoformat()
    kinds = ["mental_health", "psychosocial_support", "legal_aid", "education"]
    return {
        "goals": [
            {
                "domain": "mental_health",
                "description": make_summary(rng, 1),
                "services": [
                    {
                        "kind": kinds[i % len(kinds)],
                        "provider": f"{make_name(rng, 3)} centre",
                        "due_on": due,
                    }
                    for i in range(services)
                ],
            },
            {"domain": "safety", "description": make_summary(rng, 1), "services": []},
        ]
    }
