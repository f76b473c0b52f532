"""What a referral must carry, by the channel it came through (shared/DOMAIN.md).

A helpline call or a school names the child; a public report to a hotline is about
material where the child may be unknown; a platform's machine-made report carries its own
codes; a child telling of themselves may give nothing more than what happened to them.
`ReferralSubmissionSchema` applies this table, so the gateway and the referral hub refuse
the same submissions, naming the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from concord_contracts.codes import Channel

CHILD_REQUIRED = frozenset(
    {
        Channel.helpline,
        Channel.school,
        Channel.health_service,
        Channel.social_services,
        Channel.police,
        Channel.family_or_community,
    }
)
"""Channels where the person reporting knows the child: the child must be identified."""

REQUIRED_BY_CHANNEL: Mapping[Channel, tuple[str, ...]] = {
    **{channel: ("child", "reporter", "summary", "consent") for channel in CHILD_REQUIRED},
    # A public report about online material: the child in it may be unknown.
    Channel.hotline: ("reporter", "summary", "consent"),
    # Machine-made, many per day: the platform's own codes and a legal basis.
    Channel.platform_report: ("platform", "incident_type", "consent"),
    Channel.another_country: ("requesting_country", "summary", "consent"),
    # A child telling of themselves may give nothing more than what happened to them.
    Channel.child_self_report: (),
}
"""What a referral must carry besides its channel and categories, by channel."""

CHILD_FIELDS_REQUIRED = ("given_name", "sex")
"""Of the child, where the channel requires the child: these, and a date of birth or an age."""

PLATFORM_ONLY = ("platform", "incident_type", "annotations", "file_hashes")
"""Fields only a platform report carries."""


def _absent(value: Any) -> bool:
    return value is None or value == [] or value == ""


def channel_errors(submission: Mapping[str, Any]) -> dict[str, Any]:
    """Field errors for what `submission` (loaded) lacks for its channel, or carries that
    its channel may not; empty when it is complete. Named as marshmallow names them
    (`{"child": {"given_name": [...]}}`)."""
    try:
        channel = Channel(str(submission.get("channel")))
    except ValueError:
        return {}  # the channel field itself is refused
    errors: dict[str, Any] = {}
    for name in REQUIRED_BY_CHANNEL[channel]:
        if _absent(submission.get(name)):
            errors[name] = [f"Required for a {channel.value} referral."]
    child = submission.get("child")
    if channel in CHILD_REQUIRED and child:
        child_errors: dict[str, list[str]] = {}
        for name in CHILD_FIELDS_REQUIRED:
            if _absent(child.get(name)):
                child_errors[name] = [f"Required for a {channel.value} referral."]
        if child.get("date_of_birth") is None and child.get("age_years") is None:
            child_errors["date_of_birth"] = ["Give date_of_birth or age_years."]
        if child_errors:
            errors["child"] = child_errors
    if channel != Channel.platform_report:
        for name in PLATFORM_ONLY:
            if not _absent(submission.get(name)):
                errors[name] = ["Only a platform report carries this."]
    if channel != Channel.another_country and not _absent(submission.get("requesting_country")):
        errors["requesting_country"] = ["Only a request from another country carries this."]
    return errors
