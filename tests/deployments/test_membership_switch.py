"""The membership switch refusal without hosts: which server.xml files on which nodes make a serving cluster's
deployment refuse, before anything changes, to switch between multicast and static membership."""

from types import SimpleNamespace

import pytest

from deployments import rolling
from deployments import xmledit as x
from deployments.steps import StepFailed, replication
from deployments.steps.base import StepContext
from nodes.models import Node
from tests.deployments.test_rolling_plan import _cluster

TOMCAT10 = "/usr/share/tomcat10/etc/server.xml"
pytestmark = pytest.mark.django_db


def _xml(static: bool) -> bytes:
    try:
        with open(TOMCAT10, "rb") as fh:
            stock = fh.read()
    except OSError:
        pytest.skip(f"{TOMCAT10} is not on this machine")
    spec = (x.ClusterSpec(multicast=False, local=x.Member("10.0.0.101", x.unique_id("node01")),
                          others=[x.Member("10.0.0.102", x.unique_id("node02"))]) if static else x.ClusterSpec())
    return x.edit(stock, x.set_jvm_route("node01"), x.set_cluster(spec))


def _ctx(cluster, files: dict[str, bytes | None]):
    """app1's context; each node's server.xml as `files` says, read through that node's own connection."""
    def conn(node):
        return SimpleNamespace(read_file=lambda _path: files[node.name])

    app1 = Node.objects.get(cluster=cluster, name="app1")
    return StepContext(cluster=cluster, node=app1, conn=conn(app1), log=lambda _t: None, emit=lambda _k, _t: None,
                       connect=conn)


@pytest.mark.parametrize("running", [True, False])
def test_a_switch_of_every_node_is_refused_while_tomcat_runs_and_a_lone_drifted_node_may_rejoin(monkeypatch, running):
    monkeypatch.setattr(rolling, "serving", lambda _c: True)
    monkeypatch.setattr(replication, "running_pid", lambda _ctx: 4242 if running else None)
    c = _cluster(3)  # multicast by default
    multicast, static = _xml(False), _xml(True)
    c.multicast = False
    all_multicast = {"app1": multicast, "app2": multicast, "app3": multicast}
    if running:
        with pytest.raises(StepFailed, match="runs Tomcat with multicast membership and the cluster now says static"):
            replication.refuse_membership_switch(_ctx(c, all_multicast), multicast)
    else:  # stopped: the deployment starts it with the new membership
        replication.refuse_membership_switch(_ctx(c, all_multicast), multicast)
    # A peer already static (the switch half done by hand, or a retried deployment): app1 finds members: allowed.
    replication.refuse_membership_switch(_ctx(c, {**all_multicast, "app3": static}), multicast)
    # A hand edit made app1 static among multicast peers: the repair back to multicast rolls.
    c.multicast = True
    replication.refuse_membership_switch(_ctx(c, {**all_multicast, "app1": static}), static)
    # The planned kind already, or no Cluster element yet (a new node): nothing to refuse.
    replication.refuse_membership_switch(_ctx(c, all_multicast), multicast)
    replication.refuse_membership_switch(_ctx(c, all_multicast), None)


def test_a_cluster_that_does_not_serve_yet_switches_by_its_restart(monkeypatch):
    monkeypatch.setattr(rolling, "serving", lambda _c: False)
    monkeypatch.setattr(replication, "running_pid", lambda _ctx: 4242)
    c = _cluster(2)
    c.multicast = False
    multicast = _xml(False)
    replication.refuse_membership_switch(_ctx(c, {"app1": multicast, "app2": multicast}), multicast)
