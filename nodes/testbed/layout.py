"""What a testbed is made of: its prefix, its hosts with their roles and fixed addresses, its paths."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from . import network
from .errors import TestbedError

STATE_ROOT = Path("/var/lib/jcc-testbed")
DEFAULT_PREFIX = "tb"
DEFAULT_WFLOW_HOME = "/opt/joget/wflow"
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_PATH = re.compile(r"^(/[A-Za-z0-9._+@-]+)+$")


@dataclass
class Host:
    name: str
    roles: list[str]
    address: str
    netns: str
    jvm_route: str = ""
    unshare_pid: int | None = None
    pid: int | None = None  # sshd, PID 1 of the host
    host_key: str = ""
    spare: bool = False  # made like an app server but left out of the cluster (its inventory's spare_nodes)

    @property
    def is_app_server(self) -> bool:
        return "app_server" in self.roles


def validate_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix or ""):
        raise TestbedError(f"prefix {prefix!r}: use 1-8 lowercase letters and digits, starting with a letter "
                           "(it names interfaces, which the kernel limits to 15 characters).")
    return prefix


def validate_wflow_home(path: str) -> str:
    # Under /opt only: /opt is private per host, so the mount point is made without touching the real machine.
    if not _PATH.match(path) or ".." in path.split("/") or not path.startswith("/opt/"):
        raise TestbedError(f"wflow home {path!r}: use an absolute path under /opt, e.g. {DEFAULT_WFLOW_HOME}.")
    return path


def plan_hosts(prefix: str, subnet: ipaddress.IPv4Network, app_servers: int, file_server: bool,
               spares: int = 0) -> list[Host]:
    """lb .10, app1..N .101.., db .20, files .30, spare1..N .201..: fixed offsets, so an address tells which host
    it is."""
    if not 1 <= app_servers <= 99:
        raise TestbedError("--app-servers: from 1 to 99.")
    if not 0 <= spares <= 50:
        raise TestbedError("--spare: from 0 to 50.")
    hosts = [Host("lb", ["load_balancer"], str(subnet[10]), network.host_link(prefix, "lb"))]
    for i in range(1, app_servers + 1):
        hosts.append(Host(f"app{i}", ["app_server"], str(subnet[100 + i]), network.host_link(prefix, f"app{i}"),
                          jvm_route=f"node{i:02d}"))
    hosts.append(Host("db", ["database"], str(subnet[20]), network.host_link(prefix, "db")))
    if file_server:
        hosts.append(Host("files", ["file_server"], str(subnet[30]), network.host_link(prefix, "files")))
    for i in range(1, spares + 1):
        hosts.append(Host(f"spare{i}", ["app_server"], str(subnet[200 + i]), network.host_link(prefix, f"spare{i}"),
                          spare=True))
    return hosts
