"""catalina.out on demand: read its end over SSH as the logs directory's owner, mask secrets, store it."""

from __future__ import annotations

from django.utils import timezone

from .. import ssh
from ..models import CatalinaTail, Cluster, Node
from ..secrets import cluster_secrets, masker
from .base import setting

CATALINA_TAIL_MAX_BYTES = 256 * 1024


def catalina_out_path(node: Node) -> str:
    return f"{node.effective_catalina_base}/logs/catalina.out"


def fetch_catalina_tail(tail_id: int) -> None:
    tail = CatalinaTail.objects.select_related("node__credential", "node__cluster__credential").get(pk=tail_id)
    path = catalina_out_path(tail.node)
    q = ssh.quote
    command = ssh.as_dir_owner(path.rsplit("/", 1)[0], (
        f"test -f {q(path)} || {{ echo 'no such file: '{q(path)} >&2; exit 3; }}; "
        f"tail -n {int(tail.lines)} -- {q(path)} | tail -c {CATALINA_TAIL_MAX_BYTES}"))
    text, error = "", ""
    try:
        with ssh.open_connection(tail.node, connect_timeout=setting("HEALTH_SSH_TIMEOUT")) as conn:
            result = conn.run(command, timeout=setting("HEALTH_COMMAND_TIMEOUT") * 3)
        text = result.stdout
        if not result.ok:
            error = result.stderr.strip()[-500:] or f"exit code {result.exit_code}"
    except ssh.SSHError as exc:
        error = str(exc)
    # Viewers read the tail: the cluster's secrets (a JDBC URL with its password, a license) are masked before
    # it is stored, as in deployment logs.
    mask = _masker(tail.node.cluster)
    CatalinaTail.objects.filter(pk=tail_id).update(text=mask(text), error=mask(error), path=path,
                                                   finished_at=timezone.now())


def _masker(cluster: Cluster):
    return masker(cluster_secrets(cluster))
