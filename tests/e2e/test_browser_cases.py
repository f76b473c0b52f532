"""Real Chromium against the running system: a social worker accepts a referral from the
waiting list, opens its case, records the assessment (after the form refused an empty one,
each error next to its field) and sees the workflow bar move; writes the plan and sends it;
a supervisor approves it from the approvals queue. Screenshots at desktop and phone widths
go to var/test-artifacts/.

Chromium is driven from a child Python process (tests/e2e/browser.py).
"""

from __future__ import annotations

import sys
import time

import pytest

from gateway import i18n
from tests.e2e import browser

ARTIFACTS = browser.ARTIFACTS
DESKTOP = browser.DESKTOP
PHONE = browser.PHONE

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


# -- in pytest ----------------------------------------------------------------------------


def browse(scenario: str, **arguments) -> dict:
    return browser.browse(__name__, scenario, **arguments)


@pytest.fixture(scope="module")
def referral(running_system):
    from tests.synthetic import make_referral

    submission = make_referral(seed=41, categories=["sextortion"], urgency="high")
    receipt = running_system.submit_referral(submission)
    assert "social_services" in receipt["routed_to"], receipt
    return {"coordination_id": receipt["coordination_id"], "child": submission["child"]}


@pytest.fixture(scope="module")
def worked_case(running_system, referral):
    """The social worker's part, once: accept, assess, plan, send for approval."""
    from tests.synthetic import make_name, make_summary

    return browse(
        "social_worker",
        base_url=running_system.base_url,
        password=running_system.password,
        coordination_id=referral["coordination_id"],
        given_name=referral["child"]["given_name"],
        texts={
            "views": make_summary(seed=42, sentences=1),
            "summary": make_summary(seed=43, sentences=2),
            "goal": make_summary(seed=44, sentences=1),
            "provider": f"{make_name(seed=45, syllables=3)} centre",
            "mother": make_name(seed=46),
            "brother": make_name(seed=47),
        },
        artifacts=str(ARTIFACTS),
    )


def case_record(running_system, case_id: str, username: str = "supervisor") -> dict:
    token = running_system.http.token(username)
    status, record = running_system.http.request(
        "GET", f"/api/v1/cases/{case_id}?reason=browser+test+check", token=token
    )
    assert status == 200, record
    return record


def test_a_social_worker_opens_the_case_from_the_waiting_list(running_system, worked_case):
    seen = worked_case
    assert seen["accepted_notice"] == "Referral accepted. It is now in your agency's records."
    assert seen["case_heading_has_name"], seen
    assert seen["current_step_at_start"] == "New"
    assert seen["steps"] == 6
    record = case_record(running_system, seen["case_id"])
    assert record["coordination_id"] == seen["coordination_id"]


def test_the_assessment_form_shows_each_error_next_to_its_field(worked_case):
    seen = worked_case
    assert seen["empty_status"] == 422
    assert seen["summary_links"] >= 3, seen  # risk, summary, a need level at least
    assert "#f-risk_level" in seen["summary_hrefs"], seen
    assert seen["risk_error"], "no error next to the risk level"
    assert seen["focus_after_errors"] == "error-summary"
    assert seen["typed_text_kept"], "what was typed was lost"


def test_recording_the_assessment_moves_the_workflow_bar(running_system, worked_case):
    seen = worked_case
    assert seen["assessment_notice"].startswith("The assessment is recorded")
    assert seen["current_step_after_assessment"] == "Assessed"
    assert seen["done_steps_after_assessment"] == ["New"]
    assert seen["current_step_fr"] == i18n.label("fr", "case_statuses", "assessed"), seen
    assert seen["plan_notice"] == "The case plan was sent to a supervisor for approval."
    record = case_record(running_system, seen["case_id"])
    assert record["status"] == "assessed"
    assert record["assessment"]["risk_level"] == "high"
    assert record["assessment"]["child_views"] == seen["child_views"]
    assert record["plan"]["state"] == "submitted"
    for name in ("case-desktop", "case-phone", "assessment-errors", "case-assessed-phone"):
        assert (ARTIFACTS / f"browser-{name}.png").stat().st_size > 10_000, name


def test_a_row_is_added_to_a_list_without_javascript_and_both_are_saved(worked_case):
    seen = worked_case
    assert seen["rows_after_add"] == 3, "one filled row, the blank one, and the added one"
    assert seen["kept_after_add"]
    listed = " ".join(seen["family_listed"])
    assert len(seen["family_listed"]) == 2, seen["family_listed"]
    assert "Mother" in listed and "Brother or sister" in listed


def test_a_supervisor_approves_the_plan_from_the_queue(running_system, worked_case):
    seen = browse(
        "supervisor",
        base_url=running_system.base_url,
        password=running_system.password,
        case_id=worked_case["case_id"],
        artifacts=str(ARTIFACTS),
    )
    assert seen["in_queue"], seen
    assert seen["notice"] == "The case plan is approved."
    assert not seen["still_in_queue"]
    assert seen["current_step"] == "Plan approved"
    # The owning service says so too.
    record = case_record(running_system, worked_case["case_id"])
    assert record["status"] == "plan_approved"
    assert record["plan"]["state"] == "approved"


# -- in the child process -----------------------------------------------------------------


def _current_step(page) -> str:
    step = page.locator(".workflow-step[aria-current='step'] .workflow-label")
    # The visually hidden prefix ("Current step:") is for screen readers; the label follows.
    return step.inner_text().split(":", 1)[-1].strip()


def _shots(page, artifacts: str, name: str) -> None:
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=f"{artifacts}/browser-{name}-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=f"{artifacts}/browser-{name}-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def scenario_social_worker(page, base_url, password, coordination_id, given_name, texts, artifacts):
    seen: dict = {"coordination_id": coordination_id}
    browser.sign_in(page, base_url, "social", password)

    # The waiting list: accept, then open the case it became.
    row = browser.waiting_row(page, coordination_id)
    row.get_by_role("button", name="Accept").click()
    seen["accepted_notice"] = page.get_by_role("status").inner_text().strip()
    page.get_by_role("link", name="Open the case").click()
    page.wait_for_load_state()
    seen["case_id"] = page.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    seen["case_heading_has_name"] = given_name in page.locator("h1").inner_text()
    seen["current_step_at_start"] = _current_step(page)
    seen["steps"] = page.locator(".workflow-step").count()
    _shots(page, artifacts, "case")

    # The assessment, sent empty first: refused, every error named next to its field.
    page.get_by_role("link", name="Record the assessment").first.click()
    page.get_by_label("Summary of the assessment").fill("")
    views = texts["views"]
    page.get_by_label("The child's own views").fill(views)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Record and sign the assessment").click()
    seen["empty_status"] = answer.value.status
    summary = page.locator("#error-summary")
    seen["summary_links"] = summary.locator("a").count()
    seen["summary_hrefs"] = [
        summary.locator("a").nth(i).get_attribute("href") for i in range(seen["summary_links"])
    ]
    seen["risk_error"] = page.locator("#f-risk_level-error").count() == 1
    seen["focus_after_errors"] = page.evaluate(
        "document.activeElement && document.activeElement.id"
    )
    seen["typed_text_kept"] = page.get_by_label("The child's own views").input_value() == views
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=f"{artifacts}/browser-assessment-errors.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=f"{artifacts}/browser-assessment-errors-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)

    # Filled in properly, with the keyboard-reachable controls a person would use.
    page.get_by_role("group", name="Risk to the child").get_by_label("High").check()
    levels = {
        "Safety": "High",
        "Health": "Low",
        "Mental health": "High",
        "Education": "No need",
        "Family": "Medium",
        "Legal": "Medium",
    }
    for domain, level in levels.items():
        page.get_by_role("group", name=domain, exact=True).get_by_label(level, exact=True).check()
    page.get_by_label("Summary of the assessment").fill(texts["summary"])
    page.get_by_role("button", name="Record and sign the assessment").click()
    page.wait_for_load_state()
    seen["child_views"] = views
    seen["assessment_notice"] = page.get_by_role("status").inner_text().strip()
    seen["current_step_after_assessment"] = _current_step(page)
    seen["done_steps_after_assessment"] = [
        text.split(":", 1)[-1].strip()
        for text in page.locator(".workflow-done .workflow-label").all_inner_texts()
    ]
    page.set_viewport_size(PHONE)
    page.screenshot(path=f"{artifacts}/browser-case-assessed-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    page.get_by_role("link", name="Français").click()
    seen["current_step_fr"] = _current_step(page)
    page.get_by_role("link", name="English").click()

    # Family and carers: two people, the second in a row added without JavaScript.
    page.get_by_role("link", name="Change family and carers").click()
    first = page.get_by_role("group", name="Family member or carer 1")
    first.get_by_label("First name").fill(texts["mother"])
    first.get_by_label("Relation to the child").select_option("mother")
    first.get_by_label("Main carer of the child").check()
    page.get_by_role("button", name="Add another family member or carer").click()
    seen["rows_after_add"] = page.locator("fieldset.repeat-row").count()
    seen["kept_after_add"] = first.get_by_label("First name").input_value() == texts["mother"]
    second = page.get_by_role("group", name="Family member or carer 2")
    second.get_by_label("First name").fill(texts["brother"])
    second.get_by_label("Relation to the child").select_option("sibling")
    page.get_by_role("button", name="Save family and carers").click()
    page.wait_for_load_state()
    seen["family_listed"] = page.locator("#family .people li").all_inner_texts()

    # The plan: one goal with one service, saved and sent for approval at once.
    page.get_by_role("link", name="Write the case plan").first.click()
    goal = page.get_by_role("group", name="Goal 1")
    goal.get_by_label("Domain").select_option("safety")
    goal.get_by_label("What the goal is").fill(texts["goal"])
    service = goal.get_by_role("group", name="Service 1")
    service.get_by_label("Service (required)", exact=True).select_option("legal_aid")
    service.get_by_label("Provider").fill(texts["provider"])
    due = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 14 * 86400))
    service.get_by_label("Due by").fill(due)
    page.get_by_role("button", name="Save and send for approval").click()
    page.wait_for_load_state()
    seen["plan_notice"] = page.get_by_role("status").inner_text().strip()
    _shots(page, artifacts, "case-plan-submitted")
    return seen


def scenario_supervisor(page, base_url, password, case_id, artifacts):
    seen: dict = {}
    browser.sign_in(page, base_url, "supervisor", password)
    page.get_by_role("link", name="Approvals").click()
    row = page.locator(f"tr[data-case-id='{case_id}'][data-kind='plan']")
    seen["in_queue"] = row.count() == 1
    _shots(page, artifacts, "approvals")
    row.get_by_role("button", name="Approve").click()
    page.wait_for_load_state()
    seen["notice"] = page.get_by_role("status").inner_text().strip()
    seen["still_in_queue"] = page.locator(f"tr[data-case-id='{case_id}'][data-kind='plan']").count()
    page.goto(f"{base_url}/cases/{case_id}")
    seen["current_step"] = _current_step(page)
    _shots(page, artifacts, "case-plan-approved")
    return seen


if __name__ == "__main__":
    browser.main(globals(), sys.argv[1:])
