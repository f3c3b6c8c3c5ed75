"""Guide step 4: Tomcat session replication between the app servers.

server.xml gets the node's jvmRoute and one SimpleTcpCluster (multicast, Tomcat's
defaults; or static membership listing the other app servers when the cluster
has multicast off). The host name must resolve to the node's real address, not
Debian's 127.0.1.1, or Tomcat announces a loopback address to its peers. After
Joget runs, catalina.out must show the peers joining.
"""

from __future__ import annotations

import ipaddress
import re

from deployments import xmledit
from nodes.ssh import quote

from . import StepFailed, register
from .base import AppServerStep
from .tomcat_tools import (
    catalina_out,
    conf_source,
    node_hostname,
    node_ip,
    read_catalina_out,
    running_pid,
    server_xml,
    want_xml,
)

MULTICAST_GROUP = "228.0.0.4"  # Tomcat's default membership address (McastService)
MEMBER_LINES = ("Replication member added", "memberAdded")
MEMBERS_TIMEOUT = 60
START_MARKER = "Server version name"  # VersionLoggerListener's first line at every start


# ---- pure helpers ---------------------------------------------------------------------------------


def cluster_spec(cluster, node, ip: str) -> xmledit.ClusterSpec:
    """Multicast by default; static: this node's receiver on its own IP, a Member per other app server."""
    # Synchronous (ACK + synchronized ACK): the request ends once the others have the session (rolling.py).
    send = xmledit.SYNCHRONOUS_SEND_OPTIONS if cluster.synchronous_replication else ""
    if cluster.multicast:
        return xmledit.ClusterSpec(multicast=True, send_options=send)
    others = [xmledit.Member(host=n.address, unique_id=xmledit.unique_id(n.jvm_route))
              for n in cluster.app_servers() if n.pk != node.pk]
    local = xmledit.Member(host=ip, unique_id=xmledit.unique_id(node.jvm_route))
    return xmledit.ClusterSpec(multicast=False, local=local, others=others, send_options=send)


def fix_hosts(text: str, hostname: str, ip: str) -> str:
    """/etc/hosts where `hostname` resolves to `ip` first: Debian's `127.0.1.1 <name>` line becomes
    `<ip> <name>`, the name leaves any other address's line, everything else is kept as it was."""
    wanted = list(dict.fromkeys([hostname, hostname.split(".", 1)[0]]))  # the name, and its short form
    lines = text.splitlines()
    has_ip_line = any(_fields(line)[:1] == [ip] for line in lines)
    out, placed = [], has_ip_line
    for line in lines:
        fields = _fields(line)
        if not fields:
            out.append(line)
            continue
        addr, hosts = fields[0], fields[1:]
        if addr == ip:
            out.append(_add_names(line, [n for n in wanted if n not in hosts]))
        elif set(wanted) & set(hosts):
            if addr == "127.0.1.1" and not placed:
                out.append(f"{ip}\t{' '.join(hosts + [n for n in wanted if n not in hosts])}")
                placed = True
            else:
                rest = [h for h in hosts if h not in wanted]
                if rest:
                    out.append(f"{addr}\t{' '.join(rest)}")
        else:
            out.append(line)
    if not placed:
        at = next((i + 1 for i, line in enumerate(out) if _fields(line)[:1] == ["127.0.0.1"]), 0)
        out.insert(at, f"{ip}\t{' '.join(wanted)}")
    return "\n".join(out) + "\n"


def _add_names(line: str, names: list[str]) -> str:
    """`line` with `names` added after its host names, before any comment."""
    if not names:
        return line
    body, hash_, comment = line.partition("#")
    return f"{body.rstrip()} {' '.join(names)}" + (f"  #{comment}" if hash_ else "")


def _fields(line: str) -> list[str]:
    return line.split("#", 1)[0].split()


def interface_of(addr_lines: str, ip: str) -> str | None:
    """The interface holding `ip`, from `ip -o addr show` output."""
    for line in addr_lines.splitlines():
        parts = line.split()
        for i, word in enumerate(parts[:-1]):
            if word in ("inet", "inet6") and parts[i + 1].split("/")[0] == ip:
                return parts[1].split("@")[0]
    return None


def link_flags(link_lines: str, ifname: str) -> set[str]:
    """The flags (<BROADCAST,MULTICAST,UP,...>) of `ifname`, from `ip -o link show` output."""
    for line in link_lines.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1].rstrip(":").split("@")[0] == ifname:
            return set(parts[2].strip("<>").split(","))
    return set()


# ---- steps ----------------------------------------------------------------------------------------


def check_multicast(ctx, ip: str) -> None:
    """The interface with the node's address must have MULTICAST, and there must be a route for the group."""
    node = ctx.node
    # One round trip for all three (a command costs ~12-40 ms, and this one is on every app server's path).
    r = ctx.run(f"ip -o addr show && echo --- && ip -o link show && echo --- && "
                f"{{ ip route get {MULTICAST_GROUP} 2>&1; echo \"route-exit=$?\"; }}", quiet=True, check=True,
                timeout=30)
    addrs, _, rest = r.stdout.partition("---\n")
    links, _, route_out = rest.partition("---\n")
    route_text, _, route_exit = route_out.rpartition("route-exit=")
    ifname = interface_of(addrs, ip)
    if ifname is None:
        raise StepFailed(f"No interface on {node.name} holds {ip}: give the node's own address.")
    if "MULTICAST" not in link_flags(links, ifname):
        raise StepFailed(f"Interface {ifname} on {node.name} has no MULTICAST flag, so Tomcat's membership "
                         "cannot work: turn off multicast for the cluster (static membership) and run again.")
    if route_exit.strip() != "0":
        raise StepFailed(f"{node.name} has no route to the multicast group {MULTICAST_GROUP} "
                         f"({route_text.strip()}): add one (ip route add 224.0.0.0/4 dev "
                         f"{ifname}) or turn off multicast for the cluster (static membership).")
    ctx.log(f"{ifname} holds {ip} and has MULTICAST; {route_text.strip()}")


def membership_static(data: bytes | None) -> bool | None:
    """Whether a server.xml lists its members statically; None when it has no Cluster element (or is unreadable:
    the edit says what is wrong with it)."""
    try:
        found = xmledit.server_xml_summary(data) if data else None
    except xmledit.XmlEditError:
        return None
    return found["static"] if found and found["clusters"] else None


def peer_static(ctx, node) -> bool | None:
    try:
        return membership_static(ctx.read_file(server_xml(node), conn=ctx.connect(node)))
    except (StepFailed, OSError):  # a peer not read counts as not yet switched: the refusal errs on the safe side
        return None


def refuse_membership_switch(ctx, on_node: bytes | None) -> None:
    """A serving cluster cannot switch between multicast and static membership by a roll: the first node restarted
    with the new kind finds no member of it, waits for a rejoin that never comes, and the sessions it held are
    lost. Refused before anything changes while this node's Tomcat runs and no other app server has the planned
    kind yet. (One node of the other kind among peers of the planned kind, say a hand edit, rejoins them: allowed.)"""
    from deployments import rolling

    want_static = not ctx.cluster.multicast
    now_static = membership_static(on_node)
    if now_static is None or now_static == want_static or not rolling.serving(ctx.cluster):
        return
    others = [n for n in ctx.cluster.app_servers() if n.pk != ctx.node.pk]
    if not others or running_pid(ctx) is None:
        return
    if any(peer_static(ctx, n) == want_static for n in others):
        return
    was, now = ("static", "multicast") if now_static else ("multicast", "static")
    raise StepFailed(f"{ctx.node.name} runs Tomcat with {was} membership and the cluster now says {now}: a serving "
                     f"cluster cannot switch by a roll (a node restarted with {now} membership finds no member of "
                     f"the other kind, and the sessions it holds would be lost). Nothing was changed. In a "
                     f"maintenance window stop Tomcat on every app server, then deploy again: it starts them all "
                     f"with {now} membership.")


@register
class ServerXml(AppServerStep):
    layer = "replication"
    key = "replication.server_xml"
    title = "server.xml: jvmRoute and Cluster"
    hint = ("Without multicast between the app servers (most clouds), turn multicast off for the cluster: "
            "the step then lists the other app servers statically. Open TCP 4000 (and UDP 45564 for multicast).")

    def probe(self, ctx):
        node = ctx.node
        current = on_node = ctx.read_file(server_xml(node))
        if current is None and ctx.dry_run:
            # A dry run before tomcat.base has made the base: show the edits on the file it will copy.
            try:
                current = xmledit.edit(ctx.read_file(f"{conf_source(ctx)}/server.xml") or b"",
                                       xmledit.set_http_port(node.http_port), xmledit.drop_apr_listener)
            except xmledit.XmlEditError as exc:
                raise StepFailed(f"{conf_source(ctx)}/server.xml: {exc}") from None
        if current is None:
            raise StepFailed(f"{server_xml(node)} does not exist on {node.name}: run tomcat.base first.")
        refuse_membership_switch(ctx, on_node)
        ip = node_ip(ctx)
        if ctx.cluster.multicast:
            check_multicast(ctx, ip)
        spec = cluster_spec(ctx.cluster, node, ip)
        change = want_xml(ctx, server_xml(node), current, xmledit.set_jvm_route(node.jvm_route),
                          xmledit.set_cluster(spec), what="server.xml", on_node=on_node)
        if change:
            kind = "multicast" if spec.multicast else f"static, {len(spec.others)} other member(s)"
            change.description = f"set jvmRoute {node.jvm_route} and the Cluster element ({kind}) in server.xml"
        return [change] if change else []

    def verify(self, ctx):
        node = ctx.node
        s = xmledit.server_xml_summary(ctx.read_file(server_xml(node)) or b"")
        if s["jvm_route"] != node.jvm_route or s["clusters"] != 1 or not s["cluster_in_engine"]:
            raise StepFailed(f"{server_xml(node)} on {node.name}: jvmRoute {s['jvm_route']!r}, "
                             f"{s['clusters']} Cluster element(s); expected {node.jvm_route!r} and one in the Engine.")
        if s["static"] == ctx.cluster.multicast:
            raise StepFailed(f"{server_xml(node)} on {node.name} does not use the planned membership.")


@register
class Hosts(AppServerStep):
    layer = "replication"
    key = "replication.hosts"
    title = "Host name resolves to the node's address"
    hint = "Fix /etc/hosts by hand if it is generated by another tool (cloud-init: manage_etc_hosts)."

    def probe(self, ctx):
        hostname, ip = node_hostname(ctx), node_ip(ctx)
        if hostname.split(".", 1)[0] == "localhost":
            raise StepFailed(f"{ctx.node.name} is named {hostname!r}: give it a real host name (hostnamectl "
                             "set-hostname) so that it can resolve to its own address.")
        on_node = ctx.read_file("/etc/hosts")
        current = (on_node or b"").decode("utf-8", "replace")
        change = ctx.want_file("/etc/hosts", fix_hosts(current, hostname, ip), mode="0644", owner="root:root",
                               description=f"map {hostname} to {ip} in /etc/hosts", on_node=on_node)
        return [change] if change else []

    def verify(self, ctx):
        hostname, ip = node_hostname(ctx), node_ip(ctx)
        r = ctx.run(f"getent hosts {quote(hostname)}", timeout=30)
        found = r.stdout.split()[:1]
        if not found or _same_ip(found[0]) != _same_ip(ip):
            raise StepFailed(f"{hostname} resolves to {found[0] if found else 'nothing'} on {ctx.node.name}, "
                             f"not {ip}.")


def _same_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def members_command(node, timeout: int) -> str:
    """Wait for membership lines in catalina.out since Tomcat's last start (the last VersionLoggerListener line)."""
    pattern = "|".join(MEMBER_LINES)
    return read_catalina_out(node, (
        f"end=$(( $(date +%s) + {int(timeout)} )); while :; do "
        f"found=$(tac \"$1\" 2>/dev/null | sed '/{START_MARKER}/q' "
        f"| grep -E {quote(pattern)} | tac); "
        f"if [ -n \"$found\" ]; then printf '%s\\n' \"$found\" | tail -n 5; exit 0; fi; "
        f"[ $(date +%s) -lt $end ] || exit 1; sleep 1; done"))


def member_addresses(log_lines: str) -> list[str]:
    """`tcp://{10, 1, 2, 102}:4000` in Tomcat's member lines -> `10.1.2.102:4000`, each once."""
    found = re.findall(r"tcp://\{([0-9, -]+)\}:(\d+)", log_lines)
    return list(dict.fromkeys(f"{'.'.join(p.strip() for p in ip.split(','))}:{port}" for ip, port in found))


@register
class Members(AppServerStep):
    layer = "replication"
    key = "replication.members"
    checks_only = True
    title = "Replication members found in catalina.out"
    hint = ("Check that the app servers reach each other: multicast 228.0.0.4 UDP 45564 (or static membership) "
            "and TCP 4000; that each host name resolves to its real address; then look at catalina.out.")

    def verify(self, ctx):
        node = ctx.node
        peers = ctx.cluster.app_servers().count() - 1
        if peers < 1:
            ctx.log("Only one app server: nothing to replicate with.")
            return
        r = ctx.run(members_command(node, MEMBERS_TIMEOUT), timeout=MEMBERS_TIMEOUT + 60)
        if r.ok:
            ctx.note(f"{node.name}: replication members {', '.join(member_addresses(r.stdout)) or 'found'}")
        else:
            ctx.run(read_catalina_out(node, 'tail -n 20 -- "$1"'), timeout=30)
            raise StepFailed(f"No replication member joined {node.name}'s Tomcat in {MEMBERS_TIMEOUT} s "
                             f"(no {' / '.join(MEMBER_LINES)} line in {catalina_out(node)} since its start).")
