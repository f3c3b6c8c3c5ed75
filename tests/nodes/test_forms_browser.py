"""In Chromium: inline validation never loses a secret the admin typed, and Save says what it stored."""

import re

import pytest

from nodes.models import Cluster, Credential
from tests.browser_plugin import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _type_then_tab(page, selector: str, value: str) -> None:
    """Type into a field and leave it with Tab, as a user does: that fires the inline validation (?validate=1)."""
    with page.expect_response(lambda r: "validate=1" in r.url):
        page.fill(selector, value)
        page.press(selector, "Tab")
    page.wait_for_load_state("networkidle")


def test_typed_joget_password_survives_inline_validation_and_is_stored(live_server, admin_user, browser_page):
    from playwright.sync_api import expect

    Cluster.objects.create(name="prod")
    page = browser_page
    log_in(page, live_server.url, "/clusters/prod/edit/")
    _type_then_tab(page, "#id_joget_admin_password", "j0get-Secret!")
    expect(page.locator("#id_joget_admin_password")).to_have_value("j0get-Secret!")
    # A bad value elsewhere shows its error inline; the typed password is still there.
    _type_then_tab(page, "#id_context_path", "no slash")
    expect(page.locator(".field:has(#id_context_path) .error")).not_to_be_empty()
    expect(page.locator("#id_joget_admin_password")).to_have_value("j0get-Secret!")
    _type_then_tab(page, "#id_context_path", "/jw")
    expect(page.locator(".field:has(#id_context_path) .error")).to_have_count(0)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/clusters/prod/")
    expect(page.locator(".flash-success")).to_contain_text("Joget admin password stored")
    assert Cluster.objects.get(name="prod").joget_admin_password == "j0get-Secret!"
    page.goto(f"{live_server.url}/clusters/prod/licenses/")
    expect(page.locator("h1")).to_contain_text("Licenses of prod")
    expect(page.locator("body")).not_to_contain_text("No Joget admin password is stored")


def test_saving_without_a_password_does_not_claim_one(live_server, admin_user, browser_page):
    from playwright.sync_api import expect

    Cluster.objects.create(name="prod")
    page = browser_page
    log_in(page, live_server.url, "/clusters/prod/edit/")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/clusters/prod/")
    expect(page.locator(".flash-success")).to_contain_text("No Joget admin password is stored")


def test_typed_ssh_password_survives_inline_validation(live_server, admin_user, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, live_server.url, "/credentials/new/")
    page.fill("#id_name", "ops")
    with page.expect_response(lambda r: "validate=1" in r.url):
        page.select_option("#id_kind", "password")
    _type_then_tab(page, "#id_password", "ssh pass 'word")
    expect(page.locator("#id_password")).to_have_value("ssh pass 'word")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/credentials/")
    assert Credential.objects.get(name="ops").password == "ssh pass 'word"


def test_typed_passphrase_survives_inline_validation(live_server, admin_user, browser_page):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from playwright.sync_api import expect

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"long passphrase")).decode()
    page = browser_page
    log_in(page, live_server.url, "/credentials/new/")
    page.fill("#id_name", "deploy")
    _type_then_tab(page, "#id_passphrase", "long passphrase")
    _type_then_tab(page, "#id_private_key", pem)
    expect(page.locator("#id_passphrase")).to_have_value("long passphrase")
    expect(page.locator(".field .error")).to_have_count(0)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/credentials/")
    cred = Credential.objects.get(name="deploy")
    assert cred.passphrase == "long passphrase" and cred.public_key.startswith("ssh-ed25519 ")


def test_password_set_from_the_licenses_banner_returns_to_licenses(live_server, admin_user, browser_page):
    from playwright.sync_api import expect

    Cluster.objects.create(name="prod")
    page = browser_page
    log_in(page, live_server.url, "/clusters/prod/licenses/")
    page.click("#set-joget-password")
    page.wait_for_url(re.compile(r"/clusters/prod/edit/\?next=/clusters/prod/licenses/$"))
    _type_then_tab(page, "#id_joget_admin_password", "from-banner")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/clusters/prod/licenses/")
    expect(page.locator(".flash-success")).to_contain_text("Joget admin password stored")
    expect(page.locator("body")).not_to_contain_text("No Joget admin password is stored")
