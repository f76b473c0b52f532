"""Real Chromium against the running system: a social worker signs in and sees the waiting
list, in their language, and accepts a referral from it.

Chromium is driven from a child Python process (tests/e2e/browser.py says why): the child
runs this same module, does the steps and prints what it saw.
"""

from __future__ import annotations

import sys
import time

import pytest

from tests.e2e import browser

ARTIFACTS = browser.ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


# -- in pytest ----------------------------------------------------------------------------


def browse(scenario: str, **arguments) -> dict:
    return browser.browse(__name__, scenario, timeout=180, **arguments)


@pytest.fixture(scope="module")
def waiting_referral(running_system):
    from tests.synthetic import make_referral

    # A sexual-exploitation category: routed to social services (and justice).
    receipt = running_system.submit_referral(make_referral(categories=["grooming"]))
    assert "social_services" in receipt["routed_to"], receipt
    return receipt["coordination_id"]


def test_a_social_worker_signs_in_and_sees_the_waiting_list(running_system, waiting_referral):
    screenshot = ARTIFACTS / "browser-waiting-list.png"
    seen = browse(
        "waiting_list",
        base_url=running_system.base_url,
        password=running_system.password,
        coordination_id=waiting_referral,
        screenshot=str(screenshot),
        small_screenshot=str(ARTIFACTS / "browser-waiting-list-small.png"),
    )
    assert seen["sent_to_signin"], seen
    assert seen["heading"] == "Waiting list"
    assert seen["listed"], f"{waiting_referral} is not on the page"
    assert seen["row_has_accept_button"]
    assert seen["first_tab_stop"] == "#main", "the skip link is not the first tab stop"
    assert seen["heading_fr"] == "Liste d'attente"
    assert seen["heading_after_reload"] == "Liste d'attente", "the language was not remembered"
    assert screenshot.stat().st_size > 10_000


def test_a_social_worker_accepts_a_referral_from_the_list(running_system, waiting_referral):
    seen = browse(
        "accept",
        base_url=running_system.base_url,
        password=running_system.password,
        coordination_id=waiting_referral,
        screenshot=str(ARTIFACTS / "browser-accepted.png"),
    )
    assert seen["notice"] == "Referral accepted. It is now in your agency's records."
    assert not seen["still_acceptable"], seen
    assert seen["status"] in {"Accepted", "Case opened", None}, seen

    token = running_system.http.token("coordinator")
    deadline = time.monotonic() + 30
    while True:
        status, row = running_system.http.request(
            "GET", f"/api/v1/pipeline/{waiting_referral}", token=token
        )
        assert status == 200, row
        if row["agencies"]["social_services"]["status"] in {"accepted", "case_opened"}:
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.3)


# -- in the child process -----------------------------------------------------------------


def _sign_in(page, base_url: str, password: str) -> bool:
    page.goto(base_url + "/")
    sent_to_signin = page.url.startswith(base_url + "/signin")
    browser.fill_sign_in(page, "social", password)
    page.get_by_role("heading", level=1, name="Waiting list").wait_for()
    return sent_to_signin


def scenario_waiting_list(page, base_url, password, coordination_id, screenshot, small_screenshot):
    seen = {"sent_to_signin": _sign_in(page, base_url, password)}
    seen["heading"] = page.locator("h1").inner_text()
    row = browser.waiting_row(page, coordination_id)
    seen["listed"] = row.count() == 1
    seen["row_has_accept_button"] = row.get_by_role("button", name="Accept").count() == 1
    page.screenshot(path=screenshot, full_page=True)

    page.keyboard.press("Tab")
    seen["first_tab_stop"] = page.evaluate("document.activeElement.getAttribute('href')")

    page.set_viewport_size(browser.PHONE)
    page.screenshot(path=small_screenshot, full_page=True)

    page.get_by_role("link", name="Français").click()
    seen["heading_fr"] = page.locator("h1").inner_text()
    page.goto(base_url + "/")
    seen["heading_after_reload"] = page.locator("h1").inner_text()
    return seen


def scenario_accept(page, base_url, password, coordination_id, screenshot):
    _sign_in(page, base_url, password)
    row = browser.waiting_row(page, coordination_id)
    row.get_by_role("button", name="Accept").click()
    notice = page.get_by_role("status")
    notice.wait_for()
    seen = {"notice": notice.inner_text().strip()}
    # The referral service learns of the new case from its event: the row stops offering
    # Accept once that has arrived.
    row = page.locator("tr", has=page.locator("code", has_text=coordination_id))
    deadline = time.monotonic() + 20
    while row.get_by_role("button", name="Accept").count() and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    seen["still_acceptable"] = row.get_by_role("button", name="Accept").count() > 0
    # An answered referral gives way to those still waiting: on a busy list it may have left
    # the page altogether, which is as right as showing it answered.
    status_cell = row.locator("td[data-label='Status']")
    seen["status"] = status_cell.inner_text().strip() if status_cell.count() else None
    page.screenshot(path=screenshot, full_page=True)
    return seen


if __name__ == "__main__":
    browser.main(globals(), sys.argv[1:])
