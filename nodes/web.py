"""HTTP from the console to a node, and Joget's own paths, named once.

Every GET the console makes to a node (health probes, step checks, the checklist, the post-deployment
test) goes through `get`: no proxy from the environment, no redirect followed (a 3xx is the answer), a
bounded body, and an error as text instead of an exception.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time
import urllib.parse
from dataclasses import dataclass, field

# Joget has no health endpoint: this JSON page answers {"username":"roleAnonymous"} without a login.
ANON_PATH = "/web/json/workflow/currentUsername"
LOGIN_PATH = "/web/login"
LOGIN_CHECK_PATH = "/j_spring_security_check"
LICENSE_PATH = "/web/console/setting/license"
# The testbed's stand-in jw.war only: `node=<jvmRoute> count=<n> db=<ok|error>`.
SESSION_PATH = "/testbed/session"

BODY_LIMIT = 1 << 20


@dataclass
class Reply:
    status: int | None  # None: no HTTP answer (see error)
    body: bytes = b""
    ms: int | None = None
    error: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")


def url_host(address: str) -> str:
    """An address as it goes into a URL (IPv6 in brackets)."""
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def get(host: str, port: int, path: str, *, timeout: float, headers: dict | None = None, source: str = "",
        limit: int = BODY_LIMIT) -> Reply:
    """One GET; `source` binds the console's local address (balancer-manager answers only to it)."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read(limit)
    except (OSError, http.client.HTTPException) as exc:
        return Reply(None, error=f"GET http://{url_host(host)}:{port}{path}: {describe_error(exc, timeout)}")
    finally:
        conn.close()
    ms = round((time.monotonic() - t0) * 1000)
    return Reply(resp.status, body, ms, headers=list(resp.getheaders()))


def post_form(host: str, port: int, path: str, form: dict[str, str], *, timeout: float, headers: dict | None = None,
              source: str = "", limit: int = BODY_LIMIT) -> Reply:
    """One form POST (application/x-www-form-urlencoded), as `get`: balancer-manager changes a member only by POST."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0) if source else None)
    body = urllib.parse.urlencode(form)
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read(limit)
    except (OSError, http.client.HTTPException) as exc:
        return Reply(None, error=f"POST http://{url_host(host)}:{port}{path}: {describe_error(exc, timeout)}")
    finally:
        conn.close()
    return Reply(resp.status, data, round((time.monotonic() - t0) * 1000), headers=list(resp.getheaders()))


def describe_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
