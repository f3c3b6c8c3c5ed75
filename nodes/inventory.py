"""Inventory as a file: one JSON document per cluster (docs/inventory.md).

`load_inventory` validates everything before it writes anything, then writes it
all in one transaction: a bad document changes nothing.

Files named in a document (`identity_file`, `artifacts[].path`) are read from the
console machine only when the caller says where from (`local_root`): the command
line allows any path, the testbed loader only its own state directory, and a
document uploaded over the web none (its user uploads the files instead).
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from .models import Artifact, Cluster, Credential, LoadBalancer, Node, SharedDatabase, SharedDirectory
from .ssh import SSHError, load_private_key, parse_host_key

TOP_KEYS = {
    "cluster", "joget_version", "context_path", "wflow_home", "datasource_profile", "multicast",
    "synchronous_replication", "roll_batch", "identity_file", "known_hosts", "nodes", "shared_directory",
    "shared_database", "load_balancer", "artifacts",
    "joget_admin_user", "joget_admin_password",
    "spare_nodes",  # hosts ready to become app servers (a testbed's --spare): listed, not loaded
}
NODE_KEYS = {
    "name", "address", "roles", "ssh_port", "ssh_user", "host_key", "jvm_route", "http_port",
    "install_path", "catalina_home", "catalina_base", "balancer_state",
}
DIR_KEYS = {"mode", "node", "export_path", "client_subnet"}
DB_KEYS = {"mode", "node", "host", "engine", "port", "name", "user", "password"}
LB_KEYS = {"mode", "node", "http_port", "site_name", "sticky_cookie", "manager_allow"}
ARTIFACT_KEYS = {"kind", "path"}
# `local_root` of command-line callers: whoever runs them already has the machine.
ANYWHERE = Path("/")


class InventoryError(ValidationError):
    pass


def _check_keys(where: str, obj, allowed: set[str], required: set[str] = frozenset()) -> None:
    if not isinstance(obj, dict):
        raise InventoryError(f"{where}: expected an object.")
    unknown = set(obj) - allowed
    if unknown:
        raise InventoryError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}.")
    missing = set(required) - set(obj)
    if missing:
        raise InventoryError(f"{where}: missing key(s) {', '.join(sorted(missing))}.")


def _full_clean(where: str, obj, exclude=None) -> None:
    try:
        obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        details = "; ".join(
            f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
            for field, msgs in exc.message_dict.items()
        )
        raise InventoryError(f"{where}: {details}") from None


def import_inventory(upload, *, replace: bool, identity: str = "") -> tuple[Cluster, str]:
    """An inventory file uploaded over the web (naming no file of this machine; `identity` is an uploaded
    key) loaded; with it, the audit trail's words for what a replace dropped ("" if nothing was replaced).
    Raises InventoryError, also for a file that is not JSON."""
    from .services import history_of, replaced_details

    try:
        data = json.load(upload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InventoryError(f"Not a JSON document: {exc}") from None
    existing = Cluster.objects.filter(name=data.get("cluster")).first() if isinstance(data, dict) else None
    lost = history_of(existing) if existing and replace else None
    cluster = load_inventory(data, replace=replace, local_root=None, identity=identity)
    return cluster, (f"; {replaced_details(lost)}" if lost is not None else "")


def load_inventory(data: dict, *, replace: bool = False, local_root: Path | None = ANYWHERE,
                   identity: str = "") -> Cluster:
    """Create (or with replace=True, recreate) the cluster the document describes.

    Files the document names are read only from below `local_root`. Every view passes None:
    a document that came over the web and names any file is refused. `identity` is a private key
    uploaded beside the document, used as `identity_file` would be.
    """
    stored: list = []
    try:
        with transaction.atomic():
            return _load_inventory(data, replace, local_root, identity, stored)
    except BaseException:
        # The rows rolled back; the artifact files already copied into storage would stay, unowned, forever.
        for file in stored:
            file.storage.delete(file.name)
        raise


def _load_inventory(data: dict, replace: bool, local_root: Path | None, identity: str, stored: list) -> Cluster:
    _check_keys("inventory", data, TOP_KEYS, {"cluster", "nodes"})
    _check_local_paths(data, local_root)
    name = data["cluster"]
    existing = Cluster.objects.filter(name=name).first()
    if existing and not replace:
        raise InventoryError(f"cluster {name!r} exists already (use --replace to recreate it).")

    credential = None
    key_text = identity
    if data.get("identity_file") and not key_text:
        try:
            key_text = _local_file(data["identity_file"], local_root).read_text()
        except OSError as exc:
            raise InventoryError(f"identity_file: cannot read it: {exc.strerror}.") from None
    if key_text:
        try:
            pkey = load_private_key(key_text)
        except SSHError as exc:
            raise InventoryError(f"identity_file: {exc}") from None
        credential, _ = Credential.objects.update_or_create(
            name=f"{name}-key"[:63],
            defaults={"kind": Credential.Kind.KEY, "private_key": key_text,
                      "public_key": f"{pkey.get_name()} {pkey.get_base64()}"},
        )

    if existing:
        existing.delete()
    cluster = Cluster(name=name, credential=credential)
    for key in ("joget_version", "context_path", "wflow_home", "datasource_profile", "multicast",
                "synchronous_replication", "roll_batch", "joget_admin_user", "joget_admin_password"):
        if data.get(key) is not None:
            setattr(cluster, key, data[key])
    _full_clean("cluster", cluster)
    cluster.save()

    nodes: dict[str, Node] = {}
    if not isinstance(data["nodes"], list) or not data["nodes"]:
        raise InventoryError("nodes: expected a non-empty list.")
    for i, nd in enumerate(data["nodes"]):
        where = f"nodes[{i}]"
        _check_keys(where, nd, NODE_KEYS, {"name", "address", "roles"})
        node = Node(cluster=cluster)
        try:
            node.roles = nd["roles"]
        except (ValidationError, TypeError) as exc:
            raise InventoryError(f"{where}.roles: {exc}") from None
        for key in NODE_KEYS - {"roles"}:
            if nd.get(key) is not None:
                setattr(node, key, nd[key])
        _full_clean(f"{where} ({nd['name']})", node, exclude=["cluster"])
        if node.name in nodes:
            raise InventoryError(f"{where}: node name {node.name!r} is used twice.")
        if node.jvm_route and any(n.jvm_route == node.jvm_route for n in nodes.values()):
            raise InventoryError(f"{where}: jvm_route {node.jvm_route!r} is used twice.")
        if node.host_key:
            try:
                parse_host_key(node.host_key)
            except SSHError as exc:
                raise InventoryError(f"{where}.host_key: {exc}") from None
            node.host_key_confirmed_at = timezone.now()
        node.save()
        nodes[node.name] = node

    def node_ref(where, ref):
        if ref in (None, ""):
            return None
        if ref not in nodes:
            raise InventoryError(f"{where}.node: no node named {ref!r}.")
        return nodes[ref]

    for key, model, keys in (
        ("shared_directory", SharedDirectory, DIR_KEYS),
        ("shared_database", SharedDatabase, DB_KEYS),
        ("load_balancer", LoadBalancer, LB_KEYS),
    ):
        if key not in data or data[key] is None:
            continue
        section = data[key]
        _check_keys(key, section, keys)
        obj = model(cluster=cluster)
        for k, val in section.items():
            if k == "node":
                obj.node = node_ref(key, val)
            elif val is not None:
                setattr(obj, k, val)
        _full_clean(key, obj, exclude=["cluster"])
        obj.save()

    for i, art in enumerate(data.get("artifacts") or []):
        where = f"artifacts[{i}]"
        _check_keys(where, art, ARTIFACT_KEYS, ARTIFACT_KEYS)
        if art["kind"] not in Artifact.Kind.values:
            raise InventoryError(f"{where}.kind: one of {', '.join(Artifact.Kind.values)}.")
        stored.append(register_artifact(cluster, art["kind"], _local_file(art["path"], local_root), where=where).file)
    return cluster


def _check_local_paths(data: dict, local_root: Path | None) -> None:
    """Refuse, before anything is written, a document that names files it may not read."""
    named = [("identity_file", data.get("identity_file"))]
    artifacts = data.get("artifacts") or []
    if not isinstance(artifacts, list):
        raise InventoryError("artifacts: expected a list.")
    named += [(f"artifacts[{i}].path", a.get("path")) for i, a in enumerate(artifacts) if isinstance(a, dict)]
    for where, path in named:
        if path in (None, ""):
            continue
        if not isinstance(path, str):
            raise InventoryError(f"{where}: expected a file path.")
        if local_root is None:
            # The web process can read the console's own secrets (.env, the admin password): a document
            # from a browser must not make it copy them into a cluster that ships them to a node.
            raise InventoryError(
                f"{where}: an inventory uploaded to the console cannot name files on the console machine "
                f"({path!r}). Remove identity_file and artifacts from the document; upload the SSH key "
                "beside it and the artifacts in the deploy wizard (or run `manage.py import_inventory` on the "
                "console machine)."
            )
        _local_file(path, local_root, where=where)


def _local_file(path: str, local_root: Path | None, *, where: str = "file") -> Path:
    """`path`, symlinks resolved, when it lies below `local_root`; an InventoryError otherwise."""
    if local_root is None:
        raise InventoryError(f"{where}: files on the console machine cannot be read from here.")
    if local_root == ANYWHERE:
        return Path(path)
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(local_root.resolve()):
        raise InventoryError(f"{where}: {path!r} is outside {local_root}, the only place files are read from.")
    return resolved


def register_artifact(cluster: Cluster, kind: str, path: Path, *, where: str = "artifact") -> Artifact:
    """Copy a local file into Django storage as the cluster's artifact of that kind."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InventoryError(f"{where}.path: cannot read {path}: {exc.strerror}.") from None
    with fh, transaction.atomic():
        size, sha = Artifact.digest(fh)
        Artifact.delete_with_files(Artifact.objects.filter(cluster=cluster, kind=kind))
        art = Artifact(cluster=cluster, kind=kind, original_name=path.name, size=size, sha256=sha)
        art.file.save(path.name, File(fh), save=False)
        art.save()
    return art


def dump_inventory(cluster: Cluster, *, include_secrets: bool = False) -> dict:
    doc = {
        "cluster": cluster.name,
        "joget_version": cluster.joget_version,
        "context_path": cluster.context_path,
        "wflow_home": cluster.wflow_home,
        "datasource_profile": cluster.datasource_profile,
        "multicast": cluster.multicast,
        "synchronous_replication": cluster.synchronous_replication,
        "roll_batch": cluster.roll_batch,
        "joget_admin_user": cluster.joget_admin_user,
        "nodes": [],
    }
    if include_secrets and cluster.joget_admin_password:
        doc["joget_admin_password"] = cluster.joget_admin_password
    for n in cluster.nodes.order_by("name"):
        nd = {"name": n.name, "address": n.address, "roles": n.roles, "ssh_port": n.ssh_port,
              "ssh_user": n.ssh_user, "host_key": n.host_key}
        if n.is_app_server:
            nd.update(jvm_route=n.jvm_route, http_port=n.http_port, install_path=n.install_path,
                      catalina_home=n.catalina_home, catalina_base=n.catalina_base, balancer_state=n.balancer_state)
        doc["nodes"].append(nd)
    sd = cluster.layer("shared_directory")
    if sd:
        doc["shared_directory"] = {"mode": sd.mode, "node": sd.node.name if sd.node else None,
                                   "export_path": sd.export_path, "client_subnet": sd.client_subnet}
    db = cluster.layer("shared_database")
    if db:
        doc["shared_database"] = {"mode": db.mode, "node": db.node.name if db.node else None, "host": db.host,
                                  "engine": db.engine, "port": db.port, "name": db.name, "user": db.user}
        if include_secrets:
            doc["shared_database"]["password"] = db.password
    lb = cluster.layer("load_balancer")
    if lb:
        doc["load_balancer"] = {"mode": lb.mode, "node": lb.node.name if lb.node else None,
                                "http_port": lb.http_port, "site_name": lb.site_name,
                                "sticky_cookie": lb.sticky_cookie, "manager_allow": lb.manager_allow}
    doc["artifacts"] = [{"kind": a.kind, "path": _artifact_path(a)} for a in cluster.artifacts.all()]
    return doc


def _artifact_path(artifact) -> str:
    # A storage without local paths (S3) raises NotImplementedError, not AttributeError: its name then.
    try:
        return artifact.file.path
    except (AttributeError, NotImplementedError):
        return artifact.file.name
