"""Real Chromium against the running system: the referral hub's pages.

- An intake officer fills the referral form with the keyboard, sends it with a mistake,
  sees the mistake next to its field and in the error summary, corrects it, sends it again
  and sees the receipt; the referral exists, once.
- A coordinator filters the pipeline board, reloads (the filters stay), sees a referral
  whose acceptance deadline passed marked overdue (the e2e system's normal-urgency SLA is
  seconds long: tests/e2e/conftest.py), sees the charts drawn, and sees a new referral
  appear on the board without reloading (the board polls for changes).
- An agency declines from its waiting list, the intake officer re-routes from the
  referral's page.

Chromium is driven from a child Python process (tests/e2e/browser.py); the child prints
what it saw as JSON. Screenshots at desktop
and phone widths go to var/test-artifacts/.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request

import pytest

from tests.e2e import browser

ARTIFACTS = browser.ARTIFACTS
DESKTOP = browser.DESKTOP
PHONE = browser.PHONE

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def fits_the_phone(seen: dict) -> None:
    too_wide = {name: w for name, w in seen["phone_widths"].items() if w > PHONE["width"]}
    assert seen["phone_widths"] and not too_wide, f"wider than a phone: {too_wide}"


def browse(scenario: str, **arguments) -> dict:
    return browser.browse(__name__, scenario, **arguments)


def test_an_intake_officer_registers_a_referral_with_the_form(running_system):
    seen = browse(
        "intake_form",
        base_url=running_system.base_url,
        password=running_system.password,
        screenshots=str(ARTIFACTS / "hub-form"),
    )
    assert seen["landed_on"].endswith("/referrals"), seen
    # First sent without a child's sex: named next to the field and in the summary.
    assert seen["first_status"] == 422, seen
    assert seen["summary_focused"], "the error summary did not take the focus"
    assert "Choose the child's sex" in seen["summary_text"], seen
    assert "Choose the child's sex" in seen["sex_error"], seen
    assert seen["given_name_kept"] == "Talo"
    # Then corrected and sent: the receipt, with its coordination id.
    assert seen["receipt_heading"] == "Referral registered"
    cid = seen["coordination_id"]
    assert seen["routed_to"], seen
    assert seen["french_label"] == "Prénom de l'enfant", seen
    assert seen["spanish_label"] == "Nombre del niño o de la niña", seen
    fits_the_phone(seen)

    # The referral exists, once, with what was typed (read as the intake officer).
    token = running_system.http.token("intake")
    status, detail = running_system.http.request("GET", f"/api/v1/referrals/{cid}", token=token)
    assert status == 200, detail
    assert detail["child"]["given_name"] == "Talo"
    assert detail["categories"] == ["sextortion"]
    status, page = running_system.http.request(
        "GET", "/api/v1/pipeline?channel=helpline&limit=200", token=token
    )
    assert status == 200, page
    assert [item["coordination_id"] for item in page["items"]].count(cid) == 1


def test_a_coordinator_filters_the_board_and_sees_an_overdue_referral(running_system):
    from tests.synthetic import make_referral

    # Normal urgency: overdue within seconds in the e2e system. High: not for a day.
    overdue = running_system.submit_referral(
        make_referral(channel="school", urgency="normal", categories=["grooming"])
    )
    on_time = running_system.submit_referral(
        make_referral(channel="school", urgency="high", categories=["grooming"])
    )
    seen = browse(
        "board",
        base_url=running_system.base_url,
        password=running_system.password,
        overdue_id=overdue["coordination_id"],
        on_time_id=on_time["coordination_id"],
        intake_token=running_system.http.token("intake"),
        new_referral=make_referral(channel="school", urgency="normal", categories=["sextortion"]),
        screenshots=str(ARTIFACTS / "hub-board"),
    )
    assert seen["landed_on"].endswith("/pipeline"), seen
    assert seen["url_after_filter"].endswith("/pipeline?channel=school"), seen
    assert seen["filter_after_reload"] == "school", "the filter did not survive a reload"
    assert seen["overdue_marked"], seen
    assert "overdue" in seen["overdue_flag_text"].lower(), seen
    assert not seen["on_time_marked"], seen
    assert seen["all_cards_school"], "a card from another channel passed the filter"
    assert seen["charts_drawn"] == [True, True], seen
    assert seen["chart_tables"] == [True, True], seen
    assert seen["new_referral_appeared_without_reload"], seen
    assert seen["announced"], seen
    assert seen["detail_has_timeline"], seen
    assert not seen["detail_shows_identity"], "a coordinator saw a name"
    assert seen["console_errors"] == [], seen
    fits_the_phone(seen)


def test_a_declined_referral_is_rerouted_from_its_page(running_system):
    from tests.synthetic import make_referral

    # Cyberstalking alone goes to social services only; the intake officer re-routes it
    # to justice once social services decline it.
    receipt = running_system.submit_referral(
        make_referral(
            channel="helpline",
            urgency="high",
            categories=["cyberstalking"],
            consent={"status": "given", "by": "child", "legal_basis": None},
        )
    )
    assert receipt["routed_to"] == ["social_services"], receipt
    seen = browse(
        "decline_and_reroute",
        base_url=running_system.base_url,
        password=running_system.password,
        coordination_id=receipt["coordination_id"],
        screenshots=str(ARTIFACTS / "hub-reroute"),
    )
    assert seen["declined_notice"].startswith("Referral declined"), seen
    assert seen["rerouted_notice"].startswith("Referral re-routed"), seen
    assert seen["justice_status"] == "Awaiting acceptance", seen
    assert seen["social_status"] == "Declined", seen
    fits_the_phone(seen)

    token = running_system.http.token("coordinator")
    status, row = running_system.http.request(
        "GET", f"/api/v1/pipeline/{receipt['coordination_id']}", token=token
    )
    assert status == 200, row
    assert row["agencies"]["justice"]["status"] == "pending_acceptance"
    assert row["agencies"]["social_services"]["status"] == "declined"


def test_the_intake_officer_links_a_possible_duplicate(running_system):
    from tests.synthetic import make_child, make_referral

    # One child, reported by a helpline and by a school within minutes.
    child = make_child()
    child["given_name"] = child["given_name"] + "vekta"  # unlike any other test's child
    # Matching needs the full identity (docs/interfaces/referral.md): a name and an age alone
    # never match, by design.
    child["family_name"] = child.get("family_name") or "Orvandi"
    child.pop("age_years", None)
    child["date_of_birth"] = child.get("date_of_birth") or "2013-05-17"
    first = running_system.submit_referral(
        make_referral(channel="helpline", child=child, categories=["cyberstalking"])
    )
    second = running_system.submit_referral(
        make_referral(channel="school", child=child, categories=["cyberstalking"])
    )
    assert first["coordination_id"] in second["possible_duplicates"], second
    seen = browse(
        "link_duplicate",
        base_url=running_system.base_url,
        password=running_system.password,
        coordination_id=second["coordination_id"],
        other=first["coordination_id"],
        screenshots=str(ARTIFACTS / "hub-duplicate"),
    )
    assert seen["offered"], seen
    assert seen["notice"] == "Referrals linked: the duplicate was closed.", seen
    assert seen["duplicate_of"] == first["coordination_id"], seen
    assert seen["stage"] == "Closed", seen
    fits_the_phone(seen)

    token = running_system.http.token("coordinator")
    status, row = running_system.http.request(
        "GET", f"/api/v1/pipeline/{second['coordination_id']}", token=token
    )
    assert status == 200, row
    assert (row["stage"], row["linked_to"]) == ("closed", first["coordination_id"])


# -- in the child process -----------------------------------------------------------------


PHONE_WIDTHS: dict[str, int] = {}  # page -> its width on the phone, reported with `seen`


def _shots(page, prefix: str, name: str) -> None:
    """Desktop and phone screenshots, and how wide the page is on the phone (it must fit:
    no sideways scrolling)."""
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=f"{prefix}-{name}.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)  # the charts follow the new width on their next frame
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=f"{prefix}-{name}-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    PHONE_WIDTHS[name] = width


def scenario_intake_form(page, base_url, password, screenshots):
    seen = {"landed_on": browser.sign_in(page, base_url, "intake", password)}
    page.get_by_role("link", name="Register a referral").first.click()
    page.get_by_role("heading", level=1, name="Register a referral").wait_for()

    # The keyboard alone: a select, radio buttons, a checkbox, text fields.
    page.get_by_label("How did the referral reach you?").select_option("helpline")
    page.locator("#f-urgency-high").check()
    page.locator("#f-categories-sextortion").focus()  # a checkbox, ticked from the keyboard
    page.keyboard.press("Space")
    page.get_by_label("Child's first name").fill("Talo")
    page.get_by_label("Age in years").fill("14")
    page.get_by_label("Who made the report?").select_option("parent_or_carer")
    page.get_by_label("What happened?").fill("Kadorni suvek talomen dorikava.")
    page.locator("#f-consent-status-given").check()
    page.get_by_label("Who gave or refused consent?").select_option("parent_or_carer")
    with page.expect_response(lambda r: r.url.endswith("/referrals/new")) as first:
        page.get_by_role("button", name="Register the referral").press("Enter")
    seen["first_status"] = first.value.status
    summary = page.locator("#error-summary")
    summary.wait_for()
    seen["summary_focused"] = page.evaluate("document.activeElement.id") == "error-summary"
    seen["summary_text"] = summary.inner_text()
    seen["sex_error"] = page.locator("#f-child-sex-error").inner_text()
    seen["given_name_kept"] = page.get_by_label("Child's first name").input_value()
    _shots(page, screenshots, "errors")

    # The summary's link leads to the field; the answer is given with the keyboard.
    page.locator("#error-summary a[href='#f-child-sex']").click()
    page.locator("#f-child-sex-female").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Register the referral").click()
    page.get_by_role("heading", level=1, name="Referral registered").wait_for()
    seen["receipt_heading"] = page.locator("h1").inner_text().strip()
    seen["coordination_id"] = page.locator("#receipt-cid").inner_text().strip()
    seen["routed_to"] = page.locator(".receipt ul li").all_inner_texts()
    _shots(page, screenshots, "receipt")

    page.goto(base_url + "/referrals/new?lang=fr")
    seen["french_label"] = page.locator("label[for='f-child-given_name']").inner_text().strip()
    page.goto(base_url + "/referrals/new?lang=es")
    seen["spanish_label"] = page.locator("label[for='f-child-given_name']").inner_text().strip()
    page.goto(base_url + "/referrals/new?lang=en")
    _shots(page, screenshots, "form")
    return seen


def _card(page, cid):
    return page.locator(f"li.card[data-cid='{cid}']")


def scenario_board(
    page, base_url, password, overdue_id, on_time_id, intake_token, new_referral, screenshots
):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    seen = {"landed_on": browser.sign_in(page, base_url, "coordinator", password)}

    page.get_by_label("Channel").select_option("school")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_load_state()
    seen["url_after_filter"] = page.url
    page.reload()
    seen["filter_after_reload"] = page.get_by_label("Channel").input_value()

    # The SLA clock of a normal referral runs out in seconds: reload until it shows.
    card = _card(page, overdue_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if card.count() and "card-overdue" in (card.get_attribute("class") or ""):
            break
        time.sleep(1)
        page.reload()
    seen["overdue_marked"] = "card-overdue" in (card.get_attribute("class") or "")
    flag = card.locator("[data-flag='awaiting_acceptance_overdue']")
    seen["overdue_flag_text"] = flag.inner_text() if flag.count() else ""
    on_time = _card(page, on_time_id)
    seen["on_time_marked"] = "card-overdue" in (on_time.get_attribute("class") or "")
    seen["all_cards_school"] = all(
        "School" in text for text in page.locator("li.card").all_inner_texts()
    )
    seen["charts_drawn"] = page.evaluate(
        "['funnel-canvas', 'ageing-canvas'].map(id => !!(window.Chart && "
        "Chart.getChart(document.getElementById(id))))"
    )
    seen["chart_tables"] = [
        page.locator("table", has=page.locator("caption", has_text=text)).count() == 1
        for text in ("Referrals reaching each step", "Referrals by stage and time waiting")
    ]
    _shots(page, screenshots, "overdue")

    # A referral registered now appears without a reload: the board polls for changes.
    page.evaluate("() => { window.__stillTheSamePage = true; }")
    request = urllib.request.Request(
        base_url + "/api/v1/referrals",
        data=json.dumps(new_referral).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {intake_token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        new_id = json.loads(response.read())["coordination_id"]
    _card(page, new_id).wait_for(timeout=30_000)
    seen["new_referral_appeared_without_reload"] = page.evaluate(
        "window.__stillTheSamePage === true"
    )
    seen["announced"] = page.locator("#board-announcer").inner_text().strip()

    _card(page, overdue_id).get_by_role("link").click()
    page.get_by_role("heading", level=1).wait_for()
    seen["detail_has_timeline"] = page.locator("ol.timeline li").count() >= 2
    body = page.locator("main").inner_text()
    seen["detail_shows_identity"] = new_referral["child"]["given_name"] in body
    _shots(page, screenshots, "row")
    seen["console_errors"] = errors
    return seen


def scenario_decline_and_reroute(page, base_url, password, coordination_id, screenshots):
    seen = {}
    browser.sign_in(page, base_url, "social", password)
    row = browser.waiting_row(page, coordination_id)
    row.get_by_text("Decline", exact=False).first.click()  # opens the disclosure
    row.get_by_label("Why your agency declines it").select_option("outside_mandate")
    row.get_by_label("A better agency for it (optional)").select_option("justice")
    row.get_by_role("button", name="Decline").click()
    seen["declined_notice"] = page.get_by_role("status").inner_text().strip()
    page.get_by_role("button", name="Sign out").click()

    browser.sign_in(page, base_url, "intake", password)
    page.goto(f"{base_url}/referrals/{coordination_id}")
    # The decline reaches the referral's page as soon as the hub recorded it.
    page.locator("#action-reroute").wait_for()
    _shots(page, screenshots, "declined")
    page.locator("#action-reroute").get_by_label("Police and justice").check()
    page.locator("#action-reroute").get_by_role("button", name="Route").click()
    seen["rerouted_notice"] = page.get_by_role("status").first.inner_text().strip()
    statuses = {}
    for row in page.locator("table.agencies tbody tr").all():
        header = row.locator("th").inner_text().strip()
        cells = row.locator("td")
        if cells.count():
            statuses[header] = cells.first.inner_text().strip()
    seen["justice_status"] = statuses.get("Police and justice", "").split("\n")[0]
    seen["social_status"] = statuses.get("Social services", "").split("\n")[0]
    _shots(page, screenshots, "rerouted")
    return seen


def scenario_link_duplicate(page, base_url, password, coordination_id, other, screenshots):
    browser.sign_in(page, base_url, "intake", password)
    page.goto(f"{base_url}/referrals/{coordination_id}")
    duplicate = page.locator("ul.duplicates li", has=page.locator("code", has_text=other))
    seen = {"offered": duplicate.count() == 1}
    _shots(page, screenshots, "offered")
    duplicate.get_by_role("button", name="Same child: keep the other one").click()
    seen["notice"] = page.get_by_role("status").first.inner_text().strip()
    facts = dict(
        zip(
            page.locator("dl.facts").first.locator("dt").all_inner_texts(),
            page.locator("dl.facts").first.locator("dd").all_inner_texts(),
            strict=True,
        )
    )
    seen["duplicate_of"] = facts.get("Duplicate of", "").strip()
    seen["stage"] = facts.get("Stage", "").strip()
    _shots(page, screenshots, "linked")
    return seen


if __name__ == "__main__":
    browser.main(globals(), sys.argv[1:], also=lambda: {"phone_widths": PHONE_WIDTHS})
