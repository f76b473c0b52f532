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
    Category,
    Channel,
    ConsentGivenBy,
    ConsentStatus,
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


def make_referral(seed: int | random.Random | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid referral submission (the JSON an intake officer sends), at random or from
    `seed`; `overrides` replace top-level keys."""
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
    referral.update(overrides)
    return referral
