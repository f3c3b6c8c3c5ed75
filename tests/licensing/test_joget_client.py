"""The HTTP client against an in-process fake console: login, cookies, redirects, patterns, failures."""

import socket

import pytest

from licensing import joget
from tests.licensing.fake_joget import FakeJoget

KEY = "EE-0123456789ABCDEF0123456789ABCDEF"


@pytest.fixture
def fake():
    with FakeJoget(KEY) as f:
        yield f


def console(fake, password="admin", **kw):
    return joget.JogetConsole("127.0.0.1", fake.port, "/jw", "admin", password, label="app1", **kw)


def test_login_keeps_the_session_cookie_and_reads_the_key(fake):
    c = console(fake)
    c.login()
    page = c.license_page()
    assert page.system_key == KEY and page.licensed is False
    assert page.url == f"http://127.0.0.1:{fake.port}/jw/web/console/setting/license"
    assert page.form == {"OWASP_CSRFTOKEN": "tok&en"}
    # The License page was asked with the cookie the login set, and nothing went anywhere else.
    assert fake.requests[-1]["cookie"].startswith("JSESSIONID=")
    assert {url.split("/jw/")[0] for _, url, _ in c.requests} == {f"http://127.0.0.1:{fake.port}"}


def test_each_client_has_its_own_cookies(fake):
    a, b = console(fake), console(fake)
    a.login()
    with pytest.raises(joget.LoginFailed, match="login page"):
        b.license_page()  # b never logged in: a's session is not shared


def test_wrong_password_is_a_clear_login_failure(fake):
    with pytest.raises(joget.LoginFailed, match="refused the admin login as 'admin'"):
        console(fake, password="nope").login()


def test_no_password_stored(fake):
    with pytest.raises(joget.LoginFailed, match="no Joget admin password"):
        console(fake, password="").login()
    assert fake.requests == []


def test_activation_sends_hidden_fields_and_reports_the_nodes_refusal(fake):
    c = console(fake)
    c.login()
    page = c.activate("not a license", c.license_page())
    assert page.error.startswith("Invalid license: not for key") and page.licensed is False
    assert fake.requests[-1]["form"] == {"OWASP_CSRFTOKEN": "tok&en", "license": "not a license"}
    page = c.activate(f"LICENSE {KEY} SIGNED")
    assert page.licensed is True and page.error == ""


def test_activation_follows_a_redirect_on_the_same_node_only(fake):
    c = console(fake)
    c.login()
    fake.prg = True
    assert c.activate(f"LICENSE {KEY}").licensed is True
    assert fake.requests[-1]["path"] == "/jw/web/console/setting/license?saved=1"
    fake.redirect_elsewhere = "http://10.9.9.9/jw/web/console/setting/license"
    with pytest.raises(joget.JogetError, match="refusing to follow"):
        c.activate(f"LICENSE {KEY}")


def test_unknown_markup_keeps_no_key(fake, settings):
    fake.page = "<html><body>Something else entirely</body></html>"
    c = console(fake)
    c.login()
    page = c.license_page()
    assert page.system_key is None and page.licensed is None and "Something else" in page.html


def test_404_names_the_setting(fake, settings):
    settings.JOGET_LICENSE_PAGE_URLS = {8: "/web/nowhere"}
    c = console(fake)
    c.login()
    with pytest.raises(joget.JogetError, match="JOGET_LICENSE_PAGE_URLS") as exc:
        c.license_page()
    assert exc.value.page == "not found"


def test_unreachable_node_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        c = joget.JogetConsole("127.0.0.1", port, "/jw", "admin", "x", timeout=1, label="app9")
        with pytest.raises(joget.Unreachable, match=f"app9: http://127.0.0.1:{port} did not answer"):
            c.login()


def test_environment_proxy_is_ignored(fake, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://10.255.255.1:3128")
    c = console(fake, timeout=2)
    c.login()
    assert c.license_page().system_key == KEY


@pytest.mark.parametrize("markup, key", [
    ('<span id="systemKey">EE-AAAABBBBCCCCDDDDEEEEFFFF00001111</span>', "EE-AAAABBBBCCCCDDDDEEEEFFFF00001111"),
    ("<td>System Key:</td><td><b>a4021e833fea1224d13fbff6c505780f</b></td>", "a4021e833fea1224d13fbff6c505780f"),
    ('<input type="text" id="systemKey" readonly value="EE-AAAABBBBCCCCDDDDEEEEFFFF00001111">',
     "EE-AAAABBBBCCCCDDDDEEEEFFFF00001111"),
    ('<th>System Key</th><td><input readonly value="a4021e833fea1224d13fbff6c505780f"></td>',
     "a4021e833fea1224d13fbff6c505780f"),
    ("<p>no key here, only 0123456789abcdef0123456789abcdef</p>", None),
    ("<p>System Key: not available</p>", None),
])
def test_default_key_pattern(markup, key):
    assert joget.parse_license_page("u", markup).system_key == key


def test_license_path_per_major(settings):
    settings.JOGET_LICENSE_PAGE_URLS = {5: "/web/v5/license", 8: "/web/console/setting/license"}
    assert joget.license_path(5) == "/web/v5/license"
    assert joget.license_path(9) == "/web/console/setting/license"  # unknown: the newest known
