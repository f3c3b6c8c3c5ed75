"""What every health module shares: the check names in page order, the states and their severity, settings."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from ..models import HealthState

# key -> label, in the order the pages show them.
CHECKS = {
    "ssh": "SSH",
    "host_key": "Host key",
    "load": "Load",
    "memory": "Memory",
    "disk": "Disk /",
    "wflow": "Shared wflow dir",
    "tomcat": "Tomcat process",
    "http": "HTTP direct",
    "balancer_route": "HTTP via balancer",
    "balancer_member": "Balancer member",
    "replication": "Session replication",
    "servers_json": "servers.json",
    "balancer": "Balancer",
    "database": "Database",
}
SEVERITY = {HealthState.OK: 0, HealthState.UNKNOWN: 1, HealthState.WARN: 2, HealthState.BAD: 3}
SMALLINT_MAX = 32767


def setting(name: str):
    defaults = {"HEALTH_CHECK_INTERVAL": 30.0, "HEALTH_RETENTION_DAYS": 30, "HEALTH_ALERT_EMAIL": [],
                "HEALTH_WEBHOOK_URL": "", "HEALTH_WEBHOOK_TIMEOUT": 5.0, "HEALTH_SSH_TIMEOUT": 5.0,
                "HEALTH_COMMAND_TIMEOUT": 10.0, "HEALTH_HTTP_TIMEOUT": 5.0, "HEALTH_CHECK_THREADS": 32}
    return getattr(settings, name, defaults[name])


@dataclass
class Verdict:
    """What one check concluded: its state and a line saying why (the pages show it, events keep it)."""

    state: str
    detail: str = ""


def worst(states) -> str:
    return max(states, key=lambda s: SEVERITY[s], default=HealthState.OK)


def ms_since(t0: float) -> int:
    """Milliseconds since a time.monotonic() reading, capped to fit a SmallInteger column."""
    return min(SMALLINT_MAX, round((time.monotonic() - t0) * 1000))


def to_int(value, scale: float = 1.0) -> int | None:
    try:
        return max(0, round(float(value) * scale))
    except (TypeError, ValueError):
        return None
