"""Checklist items for what the cluster's Joget version needs of its nodes (nodes/versions.py): the WAR's
servlet API against each Tomcat, the Java release, clocks, app servers reaching each other, wflow.name.
Each returns a Finding (what was found; how to fix it). Only reads: nothing here changes a node."""

from __future__ import annotations

import time
from collections import Counter

from nodes import ssh, versions
from nodes.models import Cluster, Node

from .findings import Finding
from .steps import compat
from .steps import tomcat_tools as tt

quote = ssh.quote
CLOCK_LIMIT = 2.0  # seconds; Joget clears caches across nodes by comparing timestamps in the shared database
PEER_TIMEOUT = 3


def _versions(node: Node) -> compat.NodeVersions:
    with ssh.open_connection(node) as conn:
        return compat.node_versions(lambda cmd: conn.run(cmd, timeout=compat.SCRIPT_TIMEOUT), node)


def servlet_api(cluster: Cluster, node: Node) -> Finding:
    api, name = compat.war_servlet_api(cluster)
    found = _versions(node)
    profile = versions.profile_for(cluster.major_version)
    if not found.tomcat:
        return Finding(True, f"no Tomcat in {tt.home(node)} yet and no archive naming its version: tomcat.install "
                             "checks the jw.war against it before it changes anything")
    if not api.family:
        return Finding(True, f"Tomcat {found.tomcat} ({found.tomcat_text}); "
                             f"{'no jw.war uploaded yet' if not name else name + ' declares no known servlet API'}")
    refusal = compat.servlet_refusal(cluster, node, found)
    if refusal:
        return Finding(False, f"{name}: {api}; Tomcat {found.tomcat} ({found.tomcat_text}) runs "
                              f"{versions.tomcat_servlet_api(found.tomcat)}.servlet",
                       compat.servlet_fix(node, found))
    note = "" if found.tomcat in profile.tomcat else \
        f"; {profile.name} documents {profile.tomcat_text()}, the WAR's own servlet API is what decides"
    return Finding(True, f"{name}: {api} on Tomcat {found.tomcat}{note}")


def war_matches_profile(cluster: Cluster, node: None) -> Finding:
    """The uploaded jw.war is of the Joget major the cluster is set to: that setting picks the profile (the app
    server's options, the JDBC driver, the Java and Tomcat ranges), so a DX 9 WAR deployed as DX 8 would start
    without the options DX 9 needs."""
    version, name = compat.war_joget_version(cluster)
    profile = versions.profile_for(cluster.major_version)
    if not name:
        return Finding(True, f"no jw.war uploaded yet; the cluster is set to Joget {cluster.joget_version} "
                             f"({profile.name})")
    if not version:
        return Finding(True, f"{name} names no Joget version (no manifest Implementation-Version or wflow-core "
                             f"jar); the console follows the cluster's setting, Joget {cluster.joget_version} "
                             f"({profile.name})")
    if versions.major_of(version) != cluster.major_version:
        found = versions.profile_for(versions.major_of(version))
        return Finding(False, f"{name} is Joget {version} ({found.name}); the cluster is set to Joget "
                              f"{cluster.joget_version} ({profile.name})",
                       f"Set the cluster's Joget version to {version} (its options, JDBC driver and checks follow "
                       f"{found.name}), or upload the jw.war of {profile.name}.")
    return Finding(True, f"{name} is Joget {version}, the cluster's {profile.name} profile")


def java_release(cluster: Cluster, node: Node) -> Finding:
    found = _versions(node)
    problem = compat.java_problem(cluster, node, found)
    profile = versions.profile_for(cluster.major_version)
    if problem:
        return Finding(False, found.java_text or "no java on the PATH", problem)
    return Finding(True, f"Java {found.java} ({found.java_text}); {profile.name} supports {profile.java_text()}")


# -- clocks -----------------------------------------------------------------------------------------------

def measure_offset(node: Node) -> tuple[float, float]:
    """(node clock - console clock, uncertainty) in seconds: the node's time against the middle of the round
    trip of one command on an open connection (the login is not in the measurement)."""
    with ssh.open_connection(node) as conn:
        conn.run("true", timeout=30)  # warm: the first command on a connection opens the channel machinery
        t0 = time.time()
        r = conn.run("date +%s.%N", timeout=30)
        t1 = time.time()
    return float(r.stdout.strip()) - (t0 + t1) / 2, (t1 - t0) / 2


def judge_clock(offsets: dict[str, float], limit: float = CLOCK_LIMIT) -> Finding:
    """Pure: each app server's offset to the console -> pass when every pair (and each to the console) is
    within `limit` seconds."""
    if not offsets:
        return Finding(True, "no app server")
    shown = ", ".join(f"{name} {off:+.2f} s" for name, off in sorted(offsets.items()))
    spread = max(offsets.values()) - min(offsets.values())
    worst = max(offsets, key=lambda n: abs(offsets[n]))
    problems = []
    if abs(offsets[worst]) > limit:
        problems.append(f"{worst} is {abs(offsets[worst]):.1f} s off the console")
    if spread > limit:
        problems.append(f"the app servers are {spread:.1f} s apart")
    if problems:
        return Finding(False, f"{'; '.join(problems)} (to the console: {shown})",
                       "Synchronise the clocks with NTP on every app server and the console (chrony or "
                       "systemd-timesyncd): Joget clears caches across nodes by comparing timestamps in the shared "
                       f"database, so clocks more than {limit:g} s apart serve stale data.")
    return Finding(True, f"within {limit:g} s (to the console: {shown})")


def clock_skew(cluster: Cluster, node: None) -> Finding:
    offsets, errors = {}, []
    for app in cluster.app_servers():
        try:
            offsets[app.name], _ = measure_offset(app)
        except (ssh.SSHError, ValueError) as exc:
            errors.append(f"{app.name}: {exc}")
    if errors:
        return Finding(False, "; ".join(errors), "Make every app server reachable over SSH.")
    return judge_clock(offsets)


# -- app servers reaching each other ------------------------------------------------------------------------

def app_peers(cluster: Cluster, node: Node) -> Finding:
    """Joget's log viewer asks the other nodes for their logs over HTTP: every app server must reach every
    other's HTTP port. A TCP connection (bash's /dev/tcp) says so without depending on what answers."""
    others = [o for o in cluster.app_servers() if o.pk != node.pk]
    if not others:
        return Finding(True, "one app server: no other to reach")
    # Addresses and ports are validated model fields; the name is printed only to tell the lines apart.
    probes = " ".join(
        f"(timeout {PEER_TIMEOUT} bash -c {quote(f'exec 3<>/dev/tcp/{o.address}/{int(o.http_port)}')} "
        f"2>/dev/null; echo {quote(o.name)}=$?) &" for o in others)
    with ssh.open_connection(node) as conn:
        r = conn.run(f"{probes} wait", timeout=PEER_TIMEOUT + 30)
    codes = dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)
    by_name = {o.name: o for o in others}
    bad = {name: code for name, code in codes.items() if code != "0"}
    bad.update({o.name: "?" for o in others if o.name not in codes})
    if not bad:
        return Finding(True, "reaches " + ", ".join(f"{o.name}:{o.http_port}" for o in others))
    what = {"124": "times out (a firewall drops it)"}
    found = "; ".join(f"{name}:{by_name[name].http_port} {what.get(code, 'refused (nothing listens)')}"
                      for name, code in sorted(bad.items()))
    timeouts = [n for n, c in bad.items() if c == "124"]
    fix = (f"Open TCP {', '.join(sorted({str(by_name[n].http_port) for n in bad}))} between the app servers: "
           "Joget's log viewer fetches the other nodes' logs over HTTP.")
    if not timeouts:
        fix += " Start Tomcat on " + ", ".join(sorted(bad)) + "."
    # Refused everywhere = no Tomcat yet, which the deployment starts; a timeout is a firewall.
    return Finding(False, f"from {node.name}: {found}", fix, missing=not timeouts)


# -- wflow.name ------------------------------------------------------------------------------------------------

def _running_name(node: Node) -> str:
    script = (f"for p in $({tt.pids_command(node)}); do tr '\\0' '\\n' < /proc/$p/cmdline 2>/dev/null "
              "| grep '^-Dwflow.name=' | tail -n 1; done; true")
    with ssh.open_connection(node) as conn:
        out = conn.run(script, timeout=30).stdout.split()
    return out[-1].split("=", 1)[1] if out else ""


def judge_names(names: dict[str, tuple[str, str]]) -> Finding:
    """Pure: {node: (name, where it comes from)} -> duplicates fail."""
    counts = Counter(name for name, _ in names.values())
    shown = ", ".join(f"{node} {name} ({where})" for node, (name, where) in sorted(names.items()))
    dups = sorted(name for name, n in counts.items() if n > 1)
    if dups:
        who = {d: sorted(node for node, (name, _) in names.items() if name == d) for d in dups}
        return Finding(False, "; ".join(f"wflow.name={d} on {', '.join(nodes)}" for d, nodes in who.items())
                       + f" ({shown})",
                       "Give every app server its own jvmRoute (the console writes it as -Dwflow.name) and deploy "
                       "again: nodes with one name overwrite each other's entry in servers.json and their "
                       "licenses.")
    return Finding(True, shown)


def wflow_names(cluster: Cluster, node: None) -> Finding:
    names = {}
    for app in cluster.app_servers():
        running = _running_name(app)
        names[app.name] = (running, "running") if running else (app.jvm_route, "planned")
    return judge_names(names)
