"""What the check threads get: plain data snapshotted from the inventory, so no thread touches the ORM."""

from __future__ import annotations

from dataclasses import dataclass

from .. import ssh
from ..models import Cluster, Node


@dataclass
class NodeJob:
    id: int
    name: str
    address: str
    roles: tuple
    jvm_route: str
    http_port: int
    catalina_base: str
    host_key: str
    target: ssh.Target

    @property
    def is_app(self) -> bool:
        return "app_server" in self.roles


@dataclass
class ClusterJob:
    id: int
    name: str
    context_path: str
    wflow_home: str
    nodes: list[NodeJob]
    lb: dict | None = None  # address, port, sticky_cookie, node_id
    db: dict | None = None  # host, port, user, password, name, node_id

    @property
    def app_count(self) -> int:
        return sum(1 for n in self.nodes if n.is_app)


def snapshot(cluster: Cluster) -> ClusterJob:
    nodes = Node.objects.filter(cluster=cluster).select_related("credential", "cluster__credential").order_by("name")
    job = ClusterJob(cluster.id, cluster.name, cluster.context_path, cluster.wflow_home, [
        NodeJob(n.id, n.name, n.address, tuple(n.roles), n.jvm_route, n.http_port, n.effective_catalina_base,
                n.host_key, ssh.Target.for_node(n))
        for n in nodes
    ])
    lb = cluster.layer("load_balancer")
    if lb and lb.node_id:
        job.lb = {"address": lb.node.address, "port": lb.http_port, "sticky_cookie": lb.sticky_cookie,
                  "node_id": lb.node_id}
    db = cluster.layer("shared_database")
    if db and db.connect_host:
        job.db = {"host": db.connect_host, "port": db.port, "user": db.user, "password": db.password,
                  "name": db.name, "node_id": db.node_id}
    return job
