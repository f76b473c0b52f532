"""Real Chromium against the running system: a social worker signs in and sees the waiting
list, in their language, and accepts a referral from it.

Chromium is driven from a child Python process. This pytest process is monkey-patched by
eventlet (tests/conftest.py), and playwright's sync API waits for ever on eventlet's hub
there; the child runs this same file as a script, does the steps and prints what it saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


# -- in pytest ----------------------------------------------------------------------------


def browse(scenario: str, **arguments) -> dict:
    """Run one scenario below in a fresh Python process; what it observed, as a dict."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, __file__, scenario, json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert done.returncode == 0, f"browser scenario {scenario} failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    page.get_by_label("Username").fill("social")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", level=1, name="Waiting list").wait_for()
    return sent_to_signin


def _wait_for_row(page, coordination_id: str, timeout: float = 20):
    """The row of `coordination_id`, reloading while the list catches up."""
    row = page.locator("tr", has=page.locator("code", has_text=coordination_id))
    deadline = time.monotonic() + timeout
    while row.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    return row


def scenario_waiting_list(page, base_url, password, coordination_id, screenshot, small_screenshot):
    seen = {"sent_to_signin": _sign_in(page, base_url, password)}
    seen["heading"] = page.locator("h1").inner_text()
    row = _wait_for_row(page, coordination_id)
    seen["listed"] = row.count() == 1
    seen["row_has_accept_button"] = row.get_by_role("button", name="Accept").count() == 1
    page.screenshot(path=screenshot, full_page=True)

    page.keyboard.press("Tab")
    seen["first_tab_stop"] = page.evaluate("document.activeElement.getAttribute('href')")

    page.set_viewport_size({"width": 375, "height": 740})
    page.screenshot(path=small_screenshot, full_page=True)

    page.get_by_role("link", name="Français").click()
    seen["heading_fr"] = page.locator("h1").inner_text()
    page.goto(base_url + "/")
    seen["heading_after_reload"] = page.locator("h1").inner_text()
    return seen


def scenario_accept(page, base_url, password, coordination_id, screenshot):
    _sign_in(page, base_url, password)
    row = _wait_for_row(page, coordination_id)
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


def main(scenario: str, arguments: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
            page.set_default_timeout(20_000)
            seen = globals()[f"scenario_{scenario}"](page, **json.loads(arguments))
        finally:
            browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:])
