"""Web hardening as a browser or an attacker meets it: login throttling through the real
login form, security headers and cookie flags on real responses, CSRF on HTMX requests,
and the production settings (`check --deploy`, DEBUG, HTTPS) in a fresh process."""

import json
import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from nodes.models import AuditEvent, Cluster

ROOT = Path(__file__).resolve().parents[2]
LIMIT = settings.AXES_FAILURE_LIMIT


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    # Each login hashes a password; the default hasher costs ~1 s per login on this machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db):
    return User.objects.create_superuser("alice", "alice@example.com", "right-password-123")


def login(client, password, username="alice", ip="127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def logged_in(client) -> bool:
    return client.get("/").status_code == 200


# -- throttling -------------------------------------------------------------------------------------------

def test_lockout_after_failed_logins_for_that_user_from_that_address(client, alice):
    for _ in range(LIMIT - 1):
        r = login(client, "wrong")
        assert r.status_code == 200 and "Please enter a correct username and password" in r.content.decode()
    r = login(client, "wrong")
    page = r.content.decode()
    assert r.status_code == 429
    assert "Too many failed logins for this user name from your address" in page
    assert f"refused for {int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)} minutes" in page
    assert 'value="alice"' in page  # the login form again, not a bare error page

    # Now even the right password is refused, and nobody is logged in.
    r = login(client, "right-password-123")
    assert r.status_code == 429 and not logged_in(client)

    locked = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_LOCKED_OUT)
    assert locked.count() == 2 and {e.username for e in locked} == {"alice"}
    assert {e.source_ip for e in locked} == {"127.0.0.1"}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED).count() == LIMIT
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN).exists()


def test_lockout_is_per_user_name_and_address(client, alice):
    User.objects.create_user("bob", password="bob-password-123")
    for _ in range(LIMIT):
        login(client, "wrong")
    assert login(client, "right-password-123").status_code == 429
    # Another user from the same address, and the same user from another address, are not locked out.
    assert login(Client(), "bob-password-123", username="bob").status_code == 302
    other = Client()
    assert login(other, "right-password-123", ip="10.9.8.7").status_code == 302 and logged_in(other)


def test_lockout_ends_after_the_cool_off(client, alice):
    for _ in range(LIMIT):
        login(client, "wrong")
    assert login(client, "right-password-123").status_code == 429
    # As if the cool-off period had passed.
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert login(client, "right-password-123").status_code == 302 and logged_in(client)


def test_a_successful_login_resets_the_count(client, alice):
    for _ in range(LIMIT - 1):
        login(client, "wrong")
    assert login(client, "right-password-123").status_code == 302
    client.post("/logout/")
    for _ in range(LIMIT - 1):
        assert login(client, "wrong").status_code == 200


def via_proxy(client, password, client_ip, proxy="10.0.0.2"):
    return client.post("/login/", {"username": "alice", "password": password}, REMOTE_ADDR=proxy,
                       HTTP_X_FORWARDED_FOR=client_ip)


def test_behind_a_trusted_proxy_lockouts_key_on_the_client(client, alice, settings):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/29")]
    for _ in range(LIMIT):
        via_proxy(client, "wrong", "203.0.113.9")
    assert via_proxy(Client(), "right-password-123", "203.0.113.9").status_code == 429
    # Another client through the same proxy is not locked out, even one that forges the locked address
    # to the left of what the proxy appended.
    assert via_proxy(Client(), "right-password-123", "198.51.100.7").status_code == 302
    assert via_proxy(Client(), "right-password-123", "203.0.113.9, 198.51.100.8").status_code == 302
    failed = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED)
    assert {e.source_ip for e in failed} == {"203.0.113.9"}


def test_forwarded_for_is_ignored_from_an_untrusted_peer(client, alice, settings):
    settings.TRUSTED_PROXIES = []
    for i in range(LIMIT):
        via_proxy(client, "wrong", f"203.0.113.{i}")  # a client rotating a forged header gains nothing
    assert via_proxy(Client(), "right-password-123", "198.51.100.7").status_code == 429
    assert {e.source_ip for e in AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED)} == {"10.0.0.2"}


def test_a_bad_trusted_proxy_stops_the_start():
    r = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=production_env(TRUSTED_PROXIES="proxy"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "TRUSTED_PROXIES" in r.stderr


# -- headers and cookies ------------------------------------------------------------------------------------

def test_security_headers_on_a_real_page(admin_client):
    r = admin_client.get("/")
    assert r.status_code == 200
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Referrer-Policy"] == "same-origin"
    assert r["X-Frame-Options"] == "DENY"
    csp = dict(part.strip().split(" ", 1) for part in r["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"  # no inline script, no eval
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert Client().get("/login/")["Content-Security-Policy"] == r["Content-Security-Policy"]


def test_session_and_csrf_cookies_are_http_only_and_same_site(client, alice):
    r = client.get("/login/")
    csrf = r.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["httponly"] and csrf["samesite"] == "Lax"
    r = login(client, "right-password-123")
    session = r.cookies[settings.SESSION_COOKIE_NAME]
    assert session["httponly"] and session["samesite"] == "Lax"
    assert not session["secure"]  # HTTPS is off here; see test_https_settings for on


def test_pages_have_no_inline_script_that_the_policy_would_block():
    """script-src 'self' blocks inline <script> and on*= handlers: the templates must have none."""
    problems = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for m in re.finditer(r"<script\b[^>]*>", text):
            if "src=" not in m.group(0):
                problems.append(f"{path.name}: inline {m.group(0)}")
        for m in re.finditer(r"""\son[a-z]+\s*=\s*["']|javascript:|hx-on[:-]""", text):
            problems.append(f"{path.name}: {m.group(0).strip()}")
    assert not problems, problems


# -- CSRF on HTMX ------------------------------------------------------------------------------------------

def test_htmx_post_needs_the_csrf_header(db):
    User.objects.create_superuser("root", "r@example.com", "pw-123456789")
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.get(username="root"))
    data = {"name": "csrf-test", "joget_version": "8.1", "context_path": "/jw", "wflow_home": "/opt/joget/wflow",
            "datasource_profile": "default", "multicast": "on", "joget_admin_user": "admin"}
    r = client.post("/clusters/new/", data, HTTP_HX_REQUEST="true")
    assert r.status_code == 403 and not Cluster.objects.exists()

    # The token the page puts on <body hx-headers=...>, which htmx sends with every request.
    page = client.get("/").content.decode()
    headers = json.loads(re.search(r"<body hx-headers='([^']+)'", page).group(1))
    r = client.post("/clusters/new/", data, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=headers["x-csrftoken"])
    assert r.status_code == 200 and r["HX-Redirect"] == "/clusters/csrf-test/"
    assert Cluster.objects.filter(name="csrf-test").exists()


# -- production settings, in a fresh process ------------------------------------------------------------------

def production_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "HTTPS")}
    env.update(SECRET_KEY=secrets.token_urlsafe(50), HTTPS="true", **extra)
    return env


def settings_in(env: dict, *names: str) -> dict:
    code = ("import json, django; django.setup(); from django.conf import settings as s; "
            f"print(json.dumps({{n: getattr(s, n, None) for n in {list(names)!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE":
                         "joget_cluster.settings"}, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_settings():
    r = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=production_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "System check identified no issues" in r.stdout
    assert "WARNINGS" not in r.stdout + r.stderr


def test_https_settings():
    on = settings_in(production_env(), "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
                     "SECURE_HSTS_SECONDS", "DEBUG")
    assert on == {"SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
                  "SECURE_HSTS_SECONDS": 3600, "DEBUG": False}
    off = settings_in({**production_env(), "HTTPS": "false"}, "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    assert off == {"SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False}


def test_debug_is_off_unless_asked_for():
    assert settings_in(production_env(), "DEBUG") == {"DEBUG": False}
    assert settings_in({**production_env(), "DEBUG": "true"}, "DEBUG") == {"DEBUG": True}


def test_bad_throttling_settings_stop_the_start():
    r = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=production_env(LOGIN_FAILURE_LIMIT="0"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "LOGIN_FAILURE_LIMIT must be 1 or more" in r.stderr


def _example(name: str) -> str:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.partition("=")[2]
    raise AssertionError(f"{name} is not in .env.example")


def test_the_example_secret_key_is_refused():
    r = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT,
                       env={**production_env(), "SECRET_KEY": _example("SECRET_KEY")}, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "SECRET_KEY is the example value from .env.example" in r.stderr


def test_dev_env_replaces_secrets_copied_from_the_example(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "dev_env.py").write_bytes((ROOT / "scripts" / "dev_env.py").read_bytes())
    (tmp_path / ".env.example").write_bytes((ROOT / ".env.example").read_bytes())
    (tmp_path / ".env").write_bytes((ROOT / ".env.example").read_bytes())  # cp .env.example .env
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRETS_ENCRYPTION_KEY")}
    r = subprocess.run([sys.executable, "scripts/dev_env.py"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    values = {}
    for line in (tmp_path / ".env").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name] = value  # the last assignment wins, as when .env is read
    assert values["SECRET_KEY"] != _example("SECRET_KEY") and len(values["SECRET_KEY"]) >= 50
    assert len(values["SECRETS_ENCRYPTION_KEY"]) == 44
    assert values["ALLOWED_HOSTS"] == _example("ALLOWED_HOSTS")  # every other line is kept
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    # A second start keeps the secrets it wrote.
    before = (tmp_path / ".env").read_text()
    subprocess.run([sys.executable, "scripts/dev_env.py"], cwd=tmp_path, env=env, check=True, timeout=60)
    assert (tmp_path / ".env").read_text() == before


def test_sessions_last_a_working_day_unless_set():
    assert settings_in(production_env(), "SESSION_COOKIE_AGE") == {"SESSION_COOKIE_AGE": 8 * 3600}
    assert settings_in(production_env(SESSION_COOKIE_AGE="3600"), "SESSION_COOKIE_AGE") == {
        "SESSION_COOKIE_AGE": 3600}
