"""Scale out and in: an app server added to, or removed from, a serving cluster, without restarting the others
(except, with static membership, one at a time for their member lists) and without a dropped request.

`start(cluster, operation, ...)` is the one entry point (the `operate` command, the pages, the API): it checks
what was asked, records the node (added: in the inventory, as its app servers are set up; removed: `leaving`), and
starts the engine's run of the operation in one transaction, so a refusal changes nothing. `plan_runs` gives the
run its nodes and waves (deployments/steps/scale.py says what each step does):

add-node    the plan's steps for one app server, on the new node only → scale.members (the others, rolled) →
            scale.add_member (balancer, graceful) → scale.license
remove-node scale.leave (the node) → scale.drop_member (balancer, graceful) → scale.members (the others, rolled)
            → scale.finish (the node leaves the cluster)

Replacing a node is an addition and a removal; a new node that takes over a removed node's jvmRoute needs its own
license (a system key follows the machine's MAC address): scale.license says so.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from nodes import ssh
from nodes.models import Cluster, Node

from .models import Deployment
from .refusals import DeploymentRefused, InvalidOption

Operation = Deployment.Operation
# The plan's steps that make one app server (in the plan's order; a step of a layer the console does not manage,
# e.g. an existing shared directory, has no run).
NODE_STEPS = ("shared_directory.mount", "database.verify", "tomcat.install", "tomcat.base", "replication.server_xml",
              "replication.hosts", "joget.setenv", "joget.war", "joget.running")
OPERATION_STEPS = {
    Operation.SCALE_OUT: [*NODE_STEPS, "scale.members", "scale.add_member", "scale.license"],
    Operation.SCALE_IN: ["scale.leave", "scale.drop_member", "scale.members", "scale.finish"],
}
BALANCER_STEPS = ("scale.add_member", "scale.drop_member")
# What an app server is set up like: the new node takes these from the cluster's first app server.
LIKE_OTHERS = ("http_port", "install_path", "catalina_home", "catalina_base", "credential")
NEW_NODE_FIELDS = ("name", "address", "ssh_port", "ssh_user", "host_key", "jvm_route")


def start(cluster: Cluster, operation: str, *, user=None, backup_first: bool | None = None, **options) -> Deployment:
    """Add (SCALE_OUT: name, address, jvm_route, ssh_port, ssh_user, host_key) or remove (SCALE_IN: node) an app
    server of `cluster`; returns the started Deployment. The cluster is backed up first in the same run when
    `backup_first` says so (None: the cluster's setting). Raises DeploymentRefused (InvalidOption naming the field
    at fault) with nothing changed."""
    from . import backups, rolling

    if operation not in OPERATION_STEPS:
        raise DeploymentRefused(f"Not a scale operation: {operation}.")
    lb = cluster.layer("load_balancer")
    if not (lb and lb.node_id) or not rolling.serving(cluster):
        raise DeploymentRefused(f"Cluster {cluster.name} does not serve through a load balancer yet: add or remove "
                                "app servers in the inventory and deploy it instead.")
    with transaction.atomic():
        if operation == Operation.SCALE_OUT:
            node = _new_node(cluster, options)
        else:
            node = _leaving_node(cluster, options.get("node") or "")
        adding = operation == Operation.SCALE_OUT
        dep, _ = backups.start_operation(
            cluster, OPERATION_STEPS[operation], operation=operation, user=user,
            options={"scale": "add" if adding else "remove", "node": node.name},
            note=f"before {'adding' if adding else 'removing'} {node.name}",
            backup_first=backup_first if operation in rolling.BACKED_UP_FIRST else False)
        return dep


def _new_node(cluster: Cluster, options: dict) -> Node:
    values = {k: options[k] for k in NEW_NODE_FIELDS if options.get(k) not in (None, "")}
    name = values.get("name", "")
    existing = Node.objects.filter(cluster=cluster, name=name).first()
    if existing:
        what = "an app server" if existing.is_app_server else "a node"
        raise InvalidOption(f"{name} is {what} of {cluster.name} already ({existing.address}): nothing changed.",
                            "name")
    if (other := Node.objects.filter(cluster=cluster, address=values.get("address", "")).first()) is not None:
        raise InvalidOption(f"{values['address']} is the address of {other.name} in {cluster.name} already: "
                            "nothing changed.", "address")
    route = values.get("jvm_route", "")
    if route and (other := Node.objects.filter(cluster=cluster, jvm_route=route).first()) is not None:
        raise InvalidOption(f"jvmRoute {route} is {other.name}'s in {cluster.name} already: each app server needs its "
                            "own (a replacement takes over a route once the old node is removed). Nothing changed.",
                            "jvm_route")
    if values.get("host_key"):
        try:
            ssh.parse_host_key(values["host_key"])
        except ssh.SSHError:
            raise InvalidOption("The host key must be an OpenSSH public key line: TYPE BASE64 (as ssh-keyscan "
                                "prints it).", "host_key") from None
    node = candidate(cluster, **values)
    try:
        node.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidOption(f"{field}: {' '.join(messages)}", None if field == "__all__" else field) from None
    if not node.host_key:
        raise InvalidOption(f"Confirm {node.address}'s host key first: pass it as --host-key \"TYPE BASE64\" (check "
                            "it against the host's own `ssh-keygen -lf` output).", "host_key")
    node.save()
    return node


def _leaving_node(cluster: Cluster, name: str) -> Node:
    node = Node.objects.filter(cluster=cluster, name=name).first()
    if node is None:
        raise InvalidOption(f"No node {name!r} in cluster {cluster.name}: nothing changed.", "node")
    if not node.is_app_server:
        raise DeploymentRefused(removal_meaning(node))
    if node.roles != ["app_server"]:
        raise DeploymentRefused(f"{node.name} is also the cluster's {', '.join(_roles(node, 'app_server'))}: "
                                f"{removal_meaning(node, app_server=False)}")
    others = cluster.app_servers().exclude(pk=node.pk)
    if not others.exists():
        raise DeploymentRefused(f"{node.name} is the last app server of {cluster.name}: removing it would stop the "
                                "cluster. Add another app server first.")
    if node.leaving:  # a removal that stopped half-way: this one carries it on
        return node
    Node.objects.filter(pk=node.pk).update(leaving=True)
    node.leaving = True
    return node


def _roles(node: Node, *skip: str) -> list[str]:
    return [r.replace("_", " ") for r in node.roles if r not in skip]


def removal_meaning(node: Node, *, app_server: bool = True) -> str:
    """What removing a node that is not (only) an app server would mean; the console does not do it."""
    said = []
    if node.is_database:
        said.append("the shared database holds every app's data and Joget's own tables: removing it stops the whole "
                    "cluster; move the database (backup, restore on another node, change the layer) instead")
    if node.is_load_balancer:
        said.append("the load balancer is the cluster's only entry: removing it takes the cluster off the network; "
                    "set up another balancer node and deploy the load balancer layer there instead")
    if node.is_file_server:
        said.append("the file server exports the shared wflow directory every app server mounts: removing it breaks "
                    "uploads, plugins and app files on all of them; move the export first")
    head = f"{node.name} is no app server" if app_server else "removing it"
    return f"{head}: {'; '.join(said)}. Nothing changed." if said else f"{head}. Nothing changed."


def plan_runs(cluster: Cluster, plan: list, options: dict) -> list[tuple[int, object, object, int]]:
    """(position, step, node, wave) of a scale run: the node's own steps on it alone, the others' member lists one
    node per wave, the balancer's site on the balancer node."""
    node = Node.all_objects.filter(cluster=cluster, name=options["node"]).order_by("-pk").first()
    others = [n for n in cluster.app_servers() if n.pk != node.pk]
    runs = []
    for pos, step in enumerate(plan):
        if step.key == "scale.members":
            runs += [(pos, step, other, i + 1) for i, other in enumerate(others)]
        elif step.key in BALANCER_STEPS:
            runs += [(pos, step, target, 0) for target in step.targets(cluster)]
        elif step.key.startswith("backup."):  # backed up first: read from a node that serves, never the new one
            runs += [(pos, step, others[0] if target == node and others else target, 0)
                     for target in step.targets(cluster)]
        elif step.key == "scale.finish":
            runs.append((pos, step, None, 0))
        elif step.key in ("scale.leave", "scale.license") or step.targets(cluster):
            runs.append((pos, step, node, 0))
    return runs


# -- before an addition: the plan and the prerequisite checks for that node alone (the review page) ---------------

# The checklist's per-node items; those the addition itself sets up (Tomcat with Joget, answering) are said so.
SET_UP_BY_ADDITION = ("app_http", "app_peers")


def candidate(cluster: Cluster, **values) -> Node:
    """The node as the addition would record it (not saved), set up like the cluster's other app servers."""
    template = cluster.app_servers().first()
    return Node(cluster=cluster, is_app_server=True, **values,
                **({f: getattr(template, f) for f in LIKE_OTHERS} if template else {}))


def node_checks(cluster: Cluster, node: Node) -> list[dict]:
    """The checklist's per-node items on `node` (over SSH, in parallel): {title, status (pass, fail, planned),
    found, fix}, in the checklist's order."""
    from concurrent.futures import ThreadPoolExecutor

    from . import checklist

    items = [item for item in checklist.ITEMS if item.per_node]

    def one(item):
        try:
            finding = item.check(cluster, node)
        except ssh.SSHError as exc:
            return {"title": item.title, "status": "fail", "found": str(exc),
                    "fix": "Make the node reachable over SSH with the cluster's key."}
        status = "pass" if finding.ok else "planned" if item.key in SET_UP_BY_ADDITION else "fail"
        fix = (f"Set up by the addition: Tomcat with Joget started on {node.name}." if status == "planned"
               else "" if finding.ok else finding.fix)
        return {"title": item.title, "status": status, "found": finding.found[:600], "fix": fix}

    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(one, items))


def plan_lines(cluster: Cluster, node: Node, operation: str) -> list[str]:
    """What the operation will do, in order, as the review page and the removal's confirmation say it."""
    others = [n.name for n in cluster.app_servers() if n.pk != node.pk]
    static = not cluster.multicast
    lb = cluster.layer("load_balancer")
    where = f" on {lb.node.name}" if lb and lb.node_id else ""
    from .backups import backs_up_first

    first = ["First a backup of the cluster (the shared database and the shared directory), in the same run: "
             "a failed backup stops the operation before any node is touched"] if backs_up_first(cluster) else []
    if operation == Operation.SCALE_OUT:
        lines = [*first, f"On {node.name} alone: the shared directory, Tomcat, session replication "
                 f"({'static member list of ' + ', '.join(others) if static else 'multicast'}), setenv, the WARs; "
                 "Tomcat started, Joget answering. No other node restarts for this."]
        if static:
            lines += [f"{o}: its static member list gains {node.name}, rolled (out of the balancer, restarted, back "
                      "in), one at a time" for o in others]
        lines += [f"The balancer{where} gains the member {node.jvm_route} (graceful reload: requests in flight finish, "
                  "sticky sessions stay)",
                  f"{node.name}'s system key read: it needs a license (Licenses page)"]
        return lines
    lines = [*first, f"{node.name} disabled in the balancer; its requests in flight finish and replication settles; "
             "its Tomcat stops (its sessions go on on the other app servers)",
             f"The balancer{where} loses the member {node.jvm_route} (graceful reload)"]
    if static:
        lines += [f"{o}: its static member list loses {node.name}, rolled one at a time" for o in others]
    lines.append(f"{node.name} leaves the cluster (kept in the deployment history; its license row marked released)")
    return lines
