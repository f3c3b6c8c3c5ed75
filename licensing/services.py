"""What changes licensing state. Views queue work with `request_*` (after commit); the Celery tasks and
the management command call `read_key` / `activate`, which do the HTTP work outside any transaction
and then record what they found under a row lock.

License strings never travel through the broker (tasks take ids), are encrypted at rest, masked in
anything stored from a node's answer, and shown only as their first and last four characters.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from jproperties import Properties

from nodes import ssh
from nodes.models import Cluster, LoadBalancer, Node
from nodes.secrets import masker

from . import joget
from .models import License

log = logging.getLogger(__name__)
LicenseState = License.State
RAW_PAGE_LIMIT = 200_000


# -- secrets ----------------------------------------------------------------------------------------

def mask_license(text: str) -> str:
    """`ABCD…WXYZ (312 characters)`: enough to tell two licenses apart, never enough to use one."""
    text = (text or "").strip()
    if not text:
        return ""
    if len(text) < 16:
        return f"•••• ({len(text)} characters)"
    return f"{text[:4]}…{text[-4:]} ({len(text)} characters)"


def _secrets_of(cluster: Cluster) -> list[str]:
    values = list(License.objects.filter(node__cluster=cluster).values_list("license_text", flat=True))
    # Joget does not echo the admin password; a short one ("admin") masked everywhere would garble pages.
    if len(cluster.joget_admin_password) >= 8:
        values.append(cluster.joget_admin_password)
    return [v.strip() for v in values if v and v.strip()]


def mask_secrets(text: str, secrets: list[str]) -> str:
    """Each secret, as is and HTML-escaped, shown by its masked form (enough to tell two apart)."""
    return masker(secrets, shown_as=lambda s: f"[masked: {mask_license(s)}]")(text)


# -- state ------------------------------------------------------------------------------------------

def derive_state(lic: License) -> str:
    """The state follows from which key the license was requested, pasted and activated for."""
    key = lic.system_key
    if not key:
        return LicenseState.NO_KEY
    if lic.activated_key == key and lic.licensed_on_node is not False:
        return LicenseState.ACTIVATED
    if lic.license_refused:
        return LicenseState.REFUSED
    if key in (lic.requested_key, lic.license_for_key, lic.activated_key):
        return LicenseState.REQUESTED
    if lic.activated_key or lic.requested_key or lic.license_for_key:
        return LicenseState.KEY_CHANGED
    return LicenseState.KEY_READ


def is_busy(lic: License) -> bool:
    return bool(lic.busy) and lic.busy_since is not None and lic.busy_since > _stale_before()


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.JOGET_LICENSE_BUSY_TIMEOUT)


def licenses_for(cluster: Cluster) -> list[License]:
    """One License row per app server (created on first sight), in node order."""
    nodes = list(cluster.app_servers())
    have = {lic.node_id: lic for lic in License.objects.filter(node__in=nodes).select_related("node__cluster")}
    for node in nodes:
        if node.pk not in have:
            lic, _ = License.objects.get_or_create(node=node)
            lic.node = node
            have[node.pk] = lic
    return [have[n.pk] for n in nodes]


def _claim(lic: License, busy: str) -> bool:
    """Take the row for one piece of work; False if another read or activation holds it (and is not stale)."""
    now = timezone.now()
    return bool(License.objects.filter(pk=lic.pk).filter(Q(busy="") | Q(busy_since__lt=_stale_before()))
                .update(busy=busy, busy_since=now))


def _release(license_id: int, busy: str) -> None:
    License.objects.filter(pk=license_id, busy=busy).update(busy="", busy_since=None)


def _save(lic: License) -> None:
    """Save what a reading or activation found; `busy` belongs to _claim/_release alone."""
    lic.save(update_fields=[f.name for f in License._meta.concrete_fields
                            if f.name not in ("id", "node", "busy", "busy_since")])


# -- reading keys -----------------------------------------------------------------------------------

def request_reads(cluster: Cluster, nodes: list[Node] | None = None) -> list[str]:
    """Queue a key reading for each app server (or the given ones); returns the names queued."""
    from .tasks import read_key_task

    wanted = {n.pk for n in nodes} if nodes is not None else None
    queued = []
    for lic in licenses_for(cluster):
        if wanted is not None and lic.node_id not in wanted:
            continue
        if _claim(lic, License.Busy.READING):
            transaction.on_commit(lambda pk=lic.pk: read_key_task.delay(pk))
            queued.append(lic.node.name)
    return queued


def read_key(license_id: int) -> License:
    """Read one node's system key from the node itself, record it, and return the updated row."""
    lic = License.objects.select_related("node__cluster__credential", "node__credential").get(pk=license_id)
    node = lic.node
    page, error, raw = None, "", ""
    try:
        page = _read_page(node)
        if page.system_key is None:
            error = ("No system key found on the License page with JOGET_SYSTEM_KEY_PATTERN: the page as "
                     "received is kept below.")
            raw = page.html
    except joget.JogetError as exc:
        error, raw = str(exc), exc.page
    profile, assumed = read_current_profile(node) if page and page.system_key else ("", False)
    try:
        return _record_reading(license_id, page, profile, assumed, error, raw)
    finally:
        _release(license_id, License.Busy.READING)


def _read_page(node: Node) -> joget.LicensePage:
    _refuse_balancer(node)
    console = joget.JogetConsole.for_node(node)
    console.login()
    return console.license_page()


def _refuse_balancer(node: Node) -> None:
    """The key must come from the node itself: refuse an app server configured as the balancer's own front."""
    lb = LoadBalancer.objects.filter(cluster_id=node.cluster_id).select_related("node").first()
    if lb and lb.node and (lb.node.address, lb.http_port) == (node.address, node.http_port):
        raise joget.JogetError(f"{node.name}: {node.address}:{node.http_port} is the load balancer's address: "
                               "set the app server's own HTTP port.")


def read_current_profile(node: Node) -> tuple[str, bool]:
    """(profile, assumed): `currentProfile` of the node's app_datasource.properties, read over SSH; when that
    fails, the cluster's setting, flagged as assumed."""
    cluster = node.cluster
    path = f"{cluster.wflow_home}/app_datasource.properties"
    try:
        with ssh.open_connection(node) as conn:
            result = conn.run(f"cat {ssh.quote(path)}", timeout=15)
    except ssh.SSHError as exc:
        log.info("profile of %s not read over SSH (%s): recording the cluster's setting", node.name, exc)
        return cluster.datasource_profile, True
    if not result.ok:
        return cluster.datasource_profile, True
    props = Properties()
    try:
        props.load(result.stdout.encode(), "utf-8")
    except Exception:  # noqa: BLE001 - a malformed file only means we cannot tell
        return cluster.datasource_profile, True
    value = props.get("currentProfile")
    return (value.data.strip(), False) if value and value.data.strip() else (cluster.datasource_profile, True)


def _record_reading(license_id, page, profile, assumed, error, raw) -> License:
    now = timezone.now()
    # of=("self",): lock only this row, never the node or cluster rows joined in (health checks update nodes).
    with transaction.atomic():
        lic = License.objects.select_for_update(of=("self",)).select_related("node__cluster").get(pk=license_id)
        secrets = _secrets_of(lic.node.cluster)
        lic.checked_at = now
        lic.read_error = mask_secrets(error, secrets)
        lic.raw_page = mask_secrets(raw or "", secrets)[:RAW_PAGE_LIMIT]
        if page is not None and page.system_key:
            _apply_key(lic, page, profile, assumed, now)
        lic.state = derive_state(lic)
        _save(lic)
    return lic


def _apply_key(lic: License, page: joget.LicensePage, profile: str, assumed: bool, now) -> None:
    key = page.system_key
    if lic.system_key and lic.system_key != key:
        lic.previous_key, lic.key_changed_at = lic.system_key, now
        log.warning("system key of %s changed (profile now %r): its license is void", lic.node.name, profile)
    lic.system_key, lic.key_read_at, lic.key_url = key, now, page.url
    lic.key_profile, lic.key_profile_assumed = profile, assumed
    lic.licensed_on_node = page.licensed
    if page.licensed and lic.activated_key != key:
        # Licensed on the node already (by hand, before the console): take that as activated.
        lic.activated_key, lic.activated_at = key, now


def refresh_cluster(cluster: Cluster) -> list[License]:
    """Read every app server's key now, synchronously (the management command's --refresh)."""
    return [read_key(lic.pk) for lic in licenses_for(cluster)]


def refresh_all() -> int:
    """The periodic re-read: every cluster that has a Joget admin password. Returns how many reads were queued."""
    queued = 0
    for cluster in Cluster.objects.exclude(joget_admin_password=""):
        with transaction.atomic():
            queued += len(request_reads(cluster))
    return queued


# -- licenses ---------------------------------------------------------------------------------------

def save_license(lic: License, text: str) -> None:
    """Keep a pasted license (encrypted), noting which key it was pasted for."""
    with transaction.atomic():
        lic = License.objects.select_for_update(of=("self",)).get(pk=lic.pk)
        lic.license_text = text.strip()
        lic.license_for_key = lic.system_key
        lic.license_saved_at = timezone.now()
        lic.activation_error = ""
        lic.license_refused = False
        lic.state = derive_state(lic)
        _save(lic)


def request_activation(lic: License) -> bool:
    """Queue the activation of the stored license; False if the node is busy with another read or activation."""
    from .tasks import activate_task

    if not _claim(lic, License.Busy.ACTIVATING):
        return False
    transaction.on_commit(lambda: activate_task.delay(lic.pk))
    return True


def activate(license_id: int) -> License:
    """Submit the stored license to the node's License page, then read the page again to confirm."""
    lic = License.objects.select_related("node__cluster").get(pk=license_id)
    node, text = lic.node, lic.license_text
    posted = confirmed = None
    error = raw = ""
    try:
        if not text:
            raise joget.JogetError("No license is stored for this node: paste it first.")
        _refuse_balancer(node)
        console = joget.JogetConsole.for_node(node)
        console.login()
        before = console.license_page()
        posted = console.activate(text, before)
        confirmed = console.license_page()
    except joget.JogetError as exc:
        error, raw = str(exc), exc.page
    try:
        return _record_activation(license_id, posted, confirmed, error, raw)
    finally:
        _release(license_id, License.Busy.ACTIVATING)


def _activation_error(posted, confirmed) -> str:
    if posted is not None and posted.error:
        return f"The node refused the license: {posted.error}"
    if confirmed.licensed is None:
        return ("Submitted, but the License page's status was not recognised (JOGET_LICENSE_STATUS_PATTERN): "
                "check the node's console; the page as received is kept below.")
    return "Submitted, but the node still reports no license."


def _record_activation(license_id, posted, confirmed, error, raw) -> License:
    now = timezone.now()
    with transaction.atomic():
        lic = License.objects.select_for_update(of=("self",)).select_related("node__cluster").get(pk=license_id)
        secrets = _secrets_of(lic.node.cluster)
        lic.activation_tried_at = now
        if confirmed is not None:
            lic.checked_at = now
            if confirmed.system_key:
                _apply_key(lic, confirmed, lic.key_profile, lic.key_profile_assumed, now)
            if confirmed.licensed and confirmed.system_key:
                lic.activated_key, lic.activated_at, error = confirmed.system_key, now, ""
            else:
                error = _activation_error(posted, confirmed)
                raw = posted.html if posted is not None else confirmed.html
        if posted is not None and posted.error:
            # Refused (e.g. another server's license): not this node's license, so not kept for re-activation.
            lic.license_refused = True
            lic.license_text, lic.license_for_key, lic.license_saved_at = "", "", None
        lic.activation_error = mask_secrets(error, secrets)
        lic.raw_page = mask_secrets(raw or "", secrets)[:RAW_PAGE_LIMIT] if error else ""
        lic.state = derive_state(lic)
        _save(lic)
    return lic


def mark_requested(cluster: Cluster) -> list[str]:
    """The admin sent the keys off: each node with a key that has no license yet is now 'license requested'."""
    done = []
    with transaction.atomic():
        rows = License.objects.select_for_update(of=("self",)).filter(node__in=cluster.app_servers())
        for lic in rows.select_related("node"):
            if lic.state in (LicenseState.KEY_READ, LicenseState.KEY_CHANGED):
                lic.requested_key, lic.requested_at = lic.system_key, timezone.now()
                lic.state = derive_state(lic)
                lic.save(update_fields=["requested_key", "requested_at", "state"])
                done.append(lic.node.name)
    return done


# -- warnings ---------------------------------------------------------------------------------------

def void_licenses(cluster: Cluster) -> list[License]:
    return list(License.objects.filter(node__cluster=cluster, node__is_app_server=True, state=LicenseState.KEY_CHANGED)
                .select_related("node").order_by("node__name"))


def profile_change_warning(cluster: Cluster) -> str | None:
    """A warning when the cluster's datasource profile differs from the one the keys were read with: a deployment
    writes the cluster's profile into app_datasource.properties, which gives every node a new system key."""
    read = list(License.objects.filter(node__cluster=cluster, node__is_app_server=True).exclude(system_key="")
                .exclude(key_profile="").select_related("node").order_by("node__name"))
    differing = sorted({lic.key_profile for lic in read} - {cluster.datasource_profile})
    if not differing:
        return None
    activated = [lic.node.name for lic in read if lic.state == LicenseState.ACTIVATED]
    requested = [lic.node.name for lic in read if lic.state == LicenseState.REQUESTED]
    names = ", ".join(f"'{p}'" for p in differing)
    parts = []
    if activated:
        parts.append(f"the licenses of {', '.join(activated)} will be void and need new ones")
    if requested:
        parts.append(f"the licenses requested for {', '.join(requested)} will not fit the new keys")
    consequence = "; ".join(parts) or "the system keys read so far will no longer be valid"
    return (f"The system keys were read with datasource profile {names}, but this cluster is set to "
            f"'{cluster.datasource_profile}'. A deployment writes that profile name into app_datasource.properties, "
            f"which changes every app server's system key: {consequence}.")


# -- exports ----------------------------------------------------------------------------------------

EXPORT_COLUMNS = ["cluster", "node", "address", "http_port", "jvm_route", "system_key", "read_at", "profile", "state"]


def export_rows(cluster: Cluster) -> list[dict]:
    """One row per app server; license strings are never part of an export."""
    rows = []
    for lic in licenses_for(cluster):
        n = lic.node
        rows.append({
            "cluster": cluster.name, "node": n.name, "address": n.address, "http_port": n.http_port,
            "jvm_route": n.jvm_route, "system_key": lic.system_key or None,
            "read_at": lic.key_read_at.isoformat(timespec="seconds") if lic.key_read_at else None,
            "profile": lic.key_profile or None, "state": lic.get_state_display(),
        })
    return rows


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), @SUM, -1+cmd|...).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value) -> str:
    """The cell as text; one a spreadsheet would run as a formula gets a leading ' (OWASP's advice).

    Values come from nodes (the profile is read from a file the service user can write), not only from admins.
    """
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    # One line per cell: the writer quotes only around "\n", so a bare "\r" would split the row in a reader.
    return text.replace("\r", " ").replace("\n", " ")


def export_csv(cluster: Cluster) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in export_rows(cluster):
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return out.getvalue()


def request_text(cluster: Cluster) -> str:
    """A plain-text license request, ready to paste into a mail or the license request form."""
    rows = export_rows(cluster)
    table = [("Cluster", "Node", "Host", "System key")] + [
        (r["cluster"], r["node"], f"{r['address']}:{r['http_port']}", r["system_key"] or "(not read yet)")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = [
        f"License request: Joget cluster {cluster.name} (Joget {cluster.joget_version}, "
        f"{len(rows)} app server{'s' if len(rows) != 1 else ''})",
        "",
        "Each app server has its own system key (tied to its MAC address, the datasource profile name, the",
        "major version and the edition), so each needs its own license.",
        "",
    ]
    for row in table:
        lines.append("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip())
    profiles = sorted({r["profile"] for r in rows if r["profile"]})
    if profiles:
        lines += ["", f"Datasource profile: {', '.join(profiles)}"]
    missing = [r["node"] for r in rows if not r["system_key"]]
    if missing:
        lines += ["", f"Keys still missing for: {', '.join(missing)} (read them before sending this request)."]
    return "\n".join(lines) + "\n"
