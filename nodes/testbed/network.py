"""The testbed's private network: one bridge, one namespace and veth pair per host.

Everything here runs `ip` with a list argv. The hosts' addresses exist only on the
bridge this module makes; no default route is ever added inside a host and
ip_forward is never touched, so the hosts reach each other and this machine only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

from .errors import TestbedError

# 10.213.X.0/24 with X chosen from the prefix: a range unlikely to be used by real networks.
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")
NETNS_DIR = Path("/run/netns")
IFNAME_MAX = 15  # IFNAMSIZ - 1: the kernel refuses longer interface names.
MULTICAST = "224.0.0.0/4"


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `ip [-n NS] ARGS` and raise a TestbedError with its stderr on failure."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True)  # noqa: S603 - argv list, no shell; names validated
    if check and proc.returncode != 0:
        raise TestbedError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc


def bridge_name(prefix: str) -> str:
    return f"{prefix}-br0"


def host_link(prefix: str, host: str) -> str:
    """Name of both the host's netns and the root-side end of its veth pair."""
    name = f"{prefix}-{host}"
    if len(name) > IFNAME_MAX:
        raise TestbedError(f"interface name {name!r} is longer than {IFNAME_MAX} characters: shorten the prefix.")
    return name


# ---- what exists -------------------------------------------------------------------------------


def list_netns(prefix: str) -> list[str]:
    """Network namespaces named `<prefix>-...` (read from /run/netns, as `ip netns list` does)."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(f"{prefix}-"))


def list_links(prefix: str) -> list[str]:
    """Interfaces of the root namespace named `<prefix>-...` (bridge and veth ends)."""
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(f"{prefix}-"))


def netns_inode(name: str) -> tuple[int, int] | None:
    """(dev, inode) identifying a named netns, to match processes against it."""
    try:
        st = os.stat(NETNS_DIR / name)
    except OSError:
        return None
    return st.st_dev, st.st_ino


# ---- address plan ------------------------------------------------------------------------------


def _networks_in_use() -> list[tuple[ipaddress.IPv4Network, str]]:
    """Every IPv4 network this machine has an address or a (non-default) route in, with its owner."""
    used: list[tuple[ipaddress.IPv4Network, str]] = []
    for link in json.loads(ip("-4", "-j", "addr", "show").stdout or "[]"):
        for info in link.get("addr_info", []):
            iface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            used.append((iface.network, f"{link['ifname']} has {iface}"))
    for route in json.loads(ip("-4", "-j", "route", "show").stdout or "[]"):
        dst = route.get("dst", "default")
        if dst != "default":
            used.append((ipaddress.ip_network(dst, strict=False), f"route {dst} dev {route.get('dev', '?')}"))
    return used


def subnet_conflict(subnet: ipaddress.IPv4Network) -> str | None:
    """Why `subnet` cannot be used here (an address or route overlaps it), or None."""
    for net, owner in _networks_in_use():
        if net.overlaps(subnet):
            return owner
    return None


def choose_subnet(prefix: str, requested: str | None = None) -> ipaddress.IPv4Network:
    """The /24 for this prefix: `requested`, or 10.213.X.0/24 with X hashed from the prefix.

    The hash keeps a prefix on the same range run after run (easy to recognise in logs);
    a range that already has an address or route on this machine is skipped, never shared.
    """
    if requested:
        subnet = parse_subnet(requested)
        conflict = subnet_conflict(subnet)
        if conflict:
            raise TestbedError(f"address range {subnet} is already in use on this machine ({conflict}); "
                               "choose another with --subnet.")
        return subnet
    start = int.from_bytes(hashlib.sha256(prefix.encode()).digest()[:2], "big") % 256
    used = _networks_in_use()
    for step in range(256):
        x = (start + step) % 256
        subnet = ipaddress.ip_network(f"10.213.{x}.0/24")
        if not any(net.overlaps(subnet) for net, _ in used):
            return subnet
    raise TestbedError(f"every /24 of {SUBNET_POOL} is in use on this machine; pass --subnet.")


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise TestbedError(f"--subnet {text!r}: {exc}. Use a private IPv4 /24 such as 10.213.7.0/24.") from None
    if subnet.version != 4 or subnet.prefixlen != 24 or not subnet.is_private:
        raise TestbedError(f"--subnet {text!r}: use a private IPv4 /24 such as 10.213.7.0/24.")
    return subnet


# ---- create / delete ---------------------------------------------------------------------------


def ip_batch(lines: list[str], netns: str | None = None) -> None:
    """Several `ip` commands in one process (`ip -batch -`): ~3 ms each saved, 100+ for 16 hosts."""
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    proc = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True)  # noqa: S603 - names we made
    if proc.returncode != 0:
        raise TestbedError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.returncode}")


def create_network(prefix: str, subnet: ipaddress.IPv4Network, hosts: list[tuple[str, str]]) -> None:
    """The bridge and, for each (host, address), a namespace joined to it by a veth pair (eth0 inside).

    The bridge holds the subnet's first address: the test runner's (and the console's) address on the
    testbed. Inside each host: lo up, its address, a multicast route, and no default route.
    """
    br = bridge_name(prefix)
    # mcast_snooping 0: without a querier the bridge would drop Tomcat's multicast membership traffic.
    root = [f"link add {br} type bridge mcast_snooping 0", f"addr add {subnet[1]}/{subnet.prefixlen} dev {br}",
            f"link set {br} up"]
    for host, _ in hosts:
        name = host_link(prefix, host)
        root += [f"netns add {name}", f"link add {name} type veth peer name eth0 netns {name}",
                 f"link set {name} master {br} up"]
    ip_batch(root)
    for host, address in hosts:
        ip_batch([
            "link set lo up",
            f"addr add {address}/{subnet.prefixlen} dev eth0",
            "link set eth0 up",
            # Tomcat's multicast membership fails with "Network is unreachable" without a route for 224/4.
            f"route add {MULTICAST} dev eth0",
        ], netns=host_link(prefix, host))


def delete_network(prefix: str) -> list[str]:
    """Delete the prefix's namespaces, then its links; returns what was deleted.

    Deleting a namespace takes its veth pair along, asynchronously and in one batch in the kernel:
    much faster than `ip link del` per veth (~15 ms each). Leftover links are then deleted by name.
    """
    spaces, links = list_netns(prefix), list_links(prefix)
    if spaces:
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in spaces),  # noqa: S607 - root's PATH
                       capture_output=True, text=True)
    deleted = [f"netns {n}" for n in spaces if not (NETNS_DIR / n).exists()]
    bridge = bridge_name(prefix)
    deadline = time.monotonic() + 3.0
    while (veths := [n for n in list_links(prefix) if n != bridge]) and time.monotonic() < deadline:
        time.sleep(0.01)
    for name in [*veths, *[n for n in list_links(prefix) if n == bridge]]:
        ip("link", "del", name, check=False)
    left = list_links(prefix)
    return deleted + [f"link {n}" for n in links if n not in left]
