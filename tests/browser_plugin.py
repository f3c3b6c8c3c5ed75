"""Browser fixtures (registered from tests/conftest.py): one headless Chromium page, 1280 px wide, logged out."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# The README shows docs/screenshots; a plain test run writes to var/ so it leaves the work tree clean.
# Refresh the README's images: SCREENSHOTS_DIR=docs/screenshots make test PYTEST_ARGS=tests/e2e
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / os.environ.get("SCREENSHOTS_DIR", "var/screenshots")


@pytest.fixture
def browser_page(monkeypatch):
    """A Playwright page (sync API) in Debian's Chromium; generous timeouts: the machine has two busy cores."""
    # Playwright's sync API runs an event loop in this thread; the test's ORM calls stay plain blocking calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=60_000)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def screenshot():
    """`screenshot(page, "name")` saves the full page as SCREENSHOTS/name.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, animations="disabled")

    return save


def log_in(page, base_url: str, next_path: str, username: str = "admin", password: str = "admin-pass-123") -> None:
    """Log in through the form and land on `next_path`."""
    page.goto(f"{base_url}/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")
