"""In a real browser: the Copy button next to a key, and "Copy all", put the keys on the clipboard."""

import os

import pytest
from django.contrib.auth.models import Group

from licensing.models import License
from nodes.models import Cluster, Node

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
KEYS = {"app1": "EE-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "app2": "EE-0123456789ABCDEF0123456789ABCDEF"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: apt-get install chromium"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def data(django_user_model):
    # Everything the page needs is written before Playwright starts: its sync API runs an event loop
    # in this thread, where Django then refuses database access.
    eve = django_user_model.objects.create_user("eve", password="browser-pass-123")
    eve.groups.add(Group.objects.get_or_create(name="viewer")[0])  # copying keys needs only the viewer role
    cluster = Cluster.objects.create(name="prod", joget_admin_password="x")
    for i, (name, key) in enumerate(KEYS.items(), 1):
        node = Node.objects.create(cluster=cluster, name=name, address=f"10.0.0.1{i}", is_app_server=True,
                                   jvm_route=f"node0{i}")
        License.objects.create(node=node, system_key=key, state=License.State.KEY_READ, key_profile="default")
    return cluster


def test_copy_a_key_and_all_keys(live_server, data):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
            page = context.new_page()
            page.goto(f"{live_server.url}/login/?next=/clusters/prod/licenses/")
            page.fill("#id_username", "eve")
            page.fill("#id_password", "browser-pass-123")
            page.click("button[type=submit]")
            page.wait_for_url("**/clusters/prod/licenses/")

            button = page.locator('button[data-copy="#key-app2"]')
            button.click()
            playwright.expect(button).to_have_text("Copied")
            assert page.evaluate("navigator.clipboard.readText()") == KEYS["app2"]

            page.click("#copy-all")
            lines = page.evaluate("navigator.clipboard.readText()").splitlines()
            assert [line.split("\t") for line in lines] == [
                ["app1", "10.0.0.11:8080", KEYS["app1"]], ["app2", "10.0.0.12:8080", KEYS["app2"]]]
        finally:
            browser.close()
