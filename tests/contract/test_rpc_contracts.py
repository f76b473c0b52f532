"""The referral submission contract: what it accepts, what it refuses, naming the field."""

import pytest
from marshmallow import ValidationError

from concord_contracts.rpc import ReferralSubmissionSchema
from tests.synthetic import make_referral

pytestmark = pytest.mark.contract


def test_a_generated_referral_is_valid():
    for seed in range(50):
        ReferralSubmissionSchema().load(make_referral(seed=seed))


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.update(channel="carrier_pigeon"), "channel"),
        (lambda r: r.update(categories=[]), "categories"),
        (lambda r: r.update(categories=["grooming", "grooming"]), "categories"),
        (lambda r: r.update(urgency=3), "urgency"),
        (lambda r: r["child"].update(age_years=25, date_of_birth=None), "child"),
        (lambda r: r["child"].update(given_name="A\x00B"), "child"),
        (lambda r: r["child"].update(given_name="x" * 10_000), "child"),
        (lambda r: r.update(summary="y" * 20_000), "summary"),
        (lambda r: r.update(surprise="field"), "surprise"),
        (lambda r: r["consent"].update(status="refused", legal_basis=None), "consent"),
        (lambda r: r["reporter"].update(kind="oracle"), "reporter"),
    ],
)
def test_bad_input_is_refused_naming_the_field(mutate, field):
    referral = make_referral(seed=1)
    mutate(referral)
    with pytest.raises(ValidationError) as refused:
        ReferralSubmissionSchema().load(referral)
    assert field in refused.value.messages
