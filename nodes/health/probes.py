"""What the console itself asks the cluster: Joget's anonymous page, a database login, balancer-manager."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from .. import web
from . import mysqlwire
from .balancer_manager import Manager, parse_balancer_manager
from .base import SMALLINT_MAX, ms_since, setting


@dataclass
class Probe:
    """What one request from the console met: up or not, how fast, and a line saying so."""

    ok: bool
    ms: int | None = None
    status: int | None = None
    detail: str = ""
    body: bytes = b""
    partial: bool = False  # reached, but not everything could be verified


def http_get(host: str, port: int, path: str, headers: dict | None = None) -> Probe:
    r = web.get(host, port, path, timeout=setting("HEALTH_HTTP_TIMEOUT"), headers=headers)
    if r.status is None:
        return Probe(False, detail=r.error)
    return Probe(r.status == 200, min(SMALLINT_MAX, r.ms), r.status, f"HTTP {r.status}", r.body)


def probe_joget(host: str, port: int, context_path: str, headers: dict | None = None) -> Probe:
    """Joget's anonymous JSON page: up means HTTP 200 and a `username` in the JSON."""
    p = http_get(host, port, context_path + web.ANON_PATH, headers)
    if p.status == 200 and b'"username"' not in p.body:
        p.ok, p.detail = False, "HTTP 200 but not Joget's JSON (no username)"
    return p



def mysql_ping(host: str, port: int, user: str, password: str, database: str) -> Probe:
    """Log in (as the cluster's Joget user, to its database), ping, quit: reachable and usable."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=setting("HEALTH_HTTP_TIMEOUT")) as sock:
            version = mysqlwire.login_and_ping(sock, user, password, database)
    except mysqlwire.LoginUnverified as exc:
        return Probe(True, ms_since(t0), detail=str(exc), partial=True)
    except mysqlwire.MySQLError as exc:
        return Probe(False, ms_since(t0), detail=str(exc))
    except (OSError, ValueError, IndexError, struct.error) as exc:
        return Probe(False, detail=f"{host}:{port}: {web.describe_error(exc, setting('HEALTH_HTTP_TIMEOUT'))}")
    return Probe(True, ms_since(t0), detail=f"{user}@{database} logged in ({version})")


def fetch_balancer_manager(lb: dict) -> Manager:
    p = http_get(lb["address"], lb["port"], "/balancer-manager")
    if not p.ok:
        hint = " (allow this console's address in the load balancer settings)" if p.status == 403 else ""
        return Manager(error=f"balancer-manager: {p.detail}{hint}")
    members = parse_balancer_manager(p.body.decode(errors="replace"))
    if not members:
        return Manager(error="balancer-manager answered without a member table")
    return Manager(members=members)
