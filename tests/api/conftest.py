"""The API through a real HTTP client (urllib) against the live server: users of each role, their tokens."""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.management import call_command

from nodes.inventory import load_inventory
from tests.conftest import ROOT

PASSWORD = "api-test-pass-123"  # noqa: S105 - a test user's


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def multipart_body(fields: dict, files: dict) -> tuple[bytes, str]:
    """A multipart/form-data body as curl -F sends it, from fields and files {name: (filename, bytes)}:
    (body, Content-Type)."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def call(url: str, method: str = "GET", *, token: str | None = None, body=None, raw: bytes | None = None,
         multipart: tuple[dict, dict] | None = None, headers: dict | None = None, opener=None) -> Answer:
    """One HTTP request; an error status is an answer too (never an exception). `multipart`: (fields, files)."""
    content_type = "application/json"
    if multipart is not None:
        raw, content_type = multipart_body(*multipart)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        resp = (opener.open if opener else urllib.request.urlopen)(req, timeout=30)
    except urllib.error.HTTPError as exc:
        resp = exc
    with resp:
        return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())


class Api:
    """The live server's API root, as one user's token sees it."""

    def __init__(self, base: str, token: str | None):
        self.base, self.token = base, token

    def __call__(self, path: str, method: str = "GET", **kwargs) -> Answer:
        return call(f"{self.base}/api/v1{path}", method, token=self.token, **kwargs)


def ci_job(base: str, token: str, cluster: str, war) -> subprocess.Popen:
    """Start the CI job of docs/api.md, as it is written there (sh, curl, jq), against the live console."""
    section = (ROOT / "docs" / "api.md").read_text().split("## A CI job", 1)[1]
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    env = {**os.environ, "CONSOLE": base, "JCC_TOKEN": token, "CLUSTER": cluster, "WAR": str(war)}
    return subprocess.Popen(["sh", "-c", script], env=env, text=True, stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.PIPE)


def make_token(username: str, name: str = "") -> str:
    """`manage.py api_token USER --name NAME`, as a script would use it: the token is the last line printed."""
    out = io.StringIO()
    call_command("api_token", username, *(["--name", name] if name else []), stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


def make_user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def users(transactional_db):
    cache.clear()  # the throttle counts in the cache: start every test from zero
    return {role: make_user(role, role) for role in ("viewer", "operator", "admin")}


@pytest.fixture
def api_as(live_server, users):
    """api_as("operator") -> an Api with a fresh token of that role's user."""
    def make(role: str, name: str = "") -> Api:
        return Api(live_server.url, make_token(role, name or f"{role} tests"))
    return make


def browser_session(base: str, username: str) -> tuple:
    """A logged-in browser: a cookie jar filled by the real login form. Returns (opener, csrf cookie value)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = call(f"{base}/login/", opener=opener).text
    middleware_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": PASSWORD,
                                   "csrfmiddlewaretoken": middleware_token}).encode()
    answer = call(f"{base}/login/", "POST", raw=form, opener=opener,
                  headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": f"{base}/login/"})
    assert answer.status == 200 and "sessionid" in {c.name for c in jar}, "login failed"
    return opener, next(c.value for c in jar if c.name == "csrftoken")


@pytest.fixture
def testbed_cluster(light_testbed, celery_worker_process):
    """The light testbed's cluster (host keys pinned), with the test-only steps and a real worker."""
    inv = dict(light_testbed)
    inv["artifacts"] = []
    cluster = load_inventory(inv, replace=True)
    for host in ("app1", "app2"):
        light_testbed.host_exec(host, "rm -f /run/jcc-marker /tmp/jcc-fail /run/jcc-after /tmp/jcc-slow-ticks")
    return cluster
