"""Real Chromium for the browser tests (test_browser*.py), one harness for all of them.

A scenario runs in a child Python process: this pytest process is monkey-patched by
eventlet (tests/conftest.py), and playwright's sync API waits for ever on eventlet's hub
there. The test module runs itself as the child (`python -m <module> <scenario> <json>`),
calls its `scenario_<name>(page, **arguments)` and prints what it saw as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium as a root user in a container, with nothing fetched in the background.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}


# -- in pytest ----------------------------------------------------------------------------


def browse(module: str, scenario: str, *, timeout: float = 240, **arguments) -> dict:
    """Run `scenario` of the test module named `module` (its `__name__`) in a fresh Python
    process; what it observed, as a dict."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", module, scenario, json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert done.returncode == 0, f"browser scenario {scenario} failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- in the child process -----------------------------------------------------------------


def main(scenarios: dict, argv: list[str], also: Callable[[], dict] | None = None) -> None:
    """Chromium up, `scenario_<argv[0]>` of `scenarios` (a module's globals) run with the
    JSON arguments `argv[1]`, Chromium closed; prints what it saw (and `also()`)."""
    from playwright.sync_api import sync_playwright

    scenario, arguments = argv
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport=DESKTOP, locale="en-GB")
            page.set_default_timeout(20_000)
            seen = scenarios[f"scenario_{scenario}"](page, **json.loads(arguments))
        finally:
            browser.close()
    print(json.dumps({**seen, **(also() if also else {})}))


def fill_sign_in(page, username: str, password: str) -> None:
    """On the sign-in page: the credentials typed in and sent."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page, base_url: str, username: str, password: str) -> str:
    """Signed in from the sign-in page; the address it landed on."""
    page.goto(base_url + "/signin")
    fill_sign_in(page, username, password)
    page.wait_for_load_state()
    return page.url


def waiting_row(page, coordination_id: str, timeout: float = 20):
    """The waiting list's row of `coordination_id`, reloading while the list catches up."""
    row = page.locator("tr", has=page.locator("code", has_text=coordination_id))
    deadline = time.monotonic() + timeout
    while row.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    return row
