"""What changes the inventory's state. Views and tasks call these; nothing here
runs inside a request that waits on the network except `enqueue_*`, which only
queue Celery tasks after the transaction commits."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction
from django.utils import timezone

from . import ssh
from .models import Credential, Node

# One remote script gathers every fact in one round trip. Output: key=value lines.
PROBE_SCRIPT = r"""
export LC_ALL=C
have() { command -v "$1" >/dev/null 2>&1 && echo yes || echo no; }
echo "hostname=$(hostname)"
. /etc/os-release 2>/dev/null && echo "os=$PRETTY_NAME"
echo "kernel=$(uname -r)"
echo "arch=$(uname -m)"
echo "cpus=$(nproc 2>/dev/null)"
echo "memory_mb=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
echo "java=$(java -version 2>&1 | head -n1)"
t=no; for d in /usr/share/tomcat10 /usr/share/tomcat9 /opt/tomcat /opt/joget/tomcat; do
  [ -x "$d/bin/catalina.sh" ] && t="$d"; done; echo "tomcat=$t"
echo "apache=$( (apache2 -v 2>/dev/null || httpd -v 2>/dev/null) | sed -n 's/^Server version: //p')"
echo "mysql=$( (mariadbd --version 2>/dev/null || mysqld --version 2>/dev/null) | head -n1)"
echo "nfs_server=$(have exportfs)"
echo "nfs_client=$( [ -x /sbin/mount.nfs ] || [ -x /usr/sbin/mount.nfs ] && echo yes || echo no)"
echo "systemd=$( [ -d /run/systemd/system ] && echo yes || echo no)"
"""


def generate_key_pair(name: str) -> Credential:
    """A new Ed25519 key pair; the admin pastes the public key into authorized_keys."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return Credential.objects.create(
        name=name, kind=Credential.Kind.KEY, private_key=private, public_key=f"{public.decode()} jcc-{name}"
    )


def enqueue_fetch_host_key(node: Node) -> None:
    from .tasks import fetch_host_key

    Node.objects.filter(pk=node.pk).update(offered_host_key="", offered_host_key_error="", offered_host_key_at=None)
    transaction.on_commit(lambda: fetch_host_key.delay(node.pk))


def enqueue_probe(node: Node) -> None:
    from .tasks import probe_node

    Node.objects.filter(pk=node.pk).update(probe_requested_at=timezone.now(), facts_error="")
    transaction.on_commit(lambda: probe_node.delay(node.pk))


def record_offered_host_key(node_id: int) -> None:
    """Fetch the key a node offers now and keep it for the admin to compare and confirm."""
    node = Node.objects.get(pk=node_id)
    try:
        offered, error = ssh.fetch_host_key(node.address, node.ssh_port), ""
    except ssh.SSHError as exc:
        offered, error = "", str(exc)
    Node.objects.filter(pk=node_id).update(
        offered_host_key=offered, offered_host_key_error=error, offered_host_key_at=timezone.now()
    )


def confirm_host_key(node: Node, fingerprint: str) -> bool:
    """Pin the offered key, but only if it is still the one the admin was shown."""
    if not node.offered_host_key or ssh.fingerprint(node.offered_host_key) != fingerprint:
        return False
    node.host_key = node.offered_host_key
    node.host_key_confirmed_at = timezone.now()
    node.offered_host_key = ""
    node.save(update_fields=["host_key", "host_key_confirmed_at", "offered_host_key"])
    return True


def parse_facts(stdout: str) -> dict:
    """The probe's facts, one value per key (the last one printed)."""
    return {key: values[-1].strip() for key, values in ssh.facts(stdout).items()}


def probe_node(node_id: int) -> None:
    node = Node.objects.select_related("cluster__credential", "credential").get(pk=node_id)
    try:
        with ssh.open_connection(node) as conn:
            result = conn.run(PROBE_SCRIPT, timeout=60)
        facts, error = parse_facts(result.stdout), ""
        if not result.ok:
            error = f"The probe script exited with {result.exit_code}: {result.stderr.strip()[-500:]}"
    except ssh.SSHError as exc:
        facts, error = node.facts, str(exc)
    Node.objects.filter(pk=node_id).update(facts=facts, facts_error=error, facts_at=timezone.now())


def facts_json(node: Node) -> str:
    return json.dumps(node.facts, indent=2, sort_keys=True)


def history_of(cluster) -> list[str]:
    """What the console would lose by recreating the cluster's record: its history and stored secrets
    (the servers themselves keep everything; the audit trail stays)."""

    def count(n: int, thing: str) -> str:
        return f"{n} {thing}{'' if n == 1 else 's'}"

    lost = []
    if n := cluster.deployments.count():
        lost.append(count(n, "deployment") + " and their logs")
    if n := cluster.check_runs.count():
        lost.append(count(n, "checklist result"))
    if n := cluster.nodes.filter(license__isnull=False).exclude(license__system_key="").count():
        lost.append(count(n, "system key"))
    if n := sum(1 for node in cluster.nodes.filter(license__isnull=False).select_related("license")
                if node.license.license_text):
        lost.append(count(n, "stored license"))
    if cluster.joget_admin_password:
        lost.append("the stored Joget admin login")
    return lost


def replaced_details(lost: list[str]) -> str:
    """The audit trail's words for a replaced cluster."""
    return "replaced the existing cluster, dropping " + (", ".join(lost) if lost else "no history")
