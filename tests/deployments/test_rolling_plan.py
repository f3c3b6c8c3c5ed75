"""The pure parts of rolling operations: waves in the plan and the engine, batch limits, the WAR's major version,
member states in the site file and on balancer-manager's page, and the operate command's arguments."""

import pytest
from django.core.management import CommandError, call_command

from deployments import engine, rolling
from deployments.models import Deployment, StepRun
from deployments.steps import load_balancer, members
from deployments.steps.roll import keep_previous_command
from nodes.models import Artifact, BalancerState, Cluster, LoadBalancer, Node, SharedDatabase
from nodes.testbed import standin

S = StepRun.Status
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2Uta2V5LWZvci10ZXN0cy1vbmx5LTAxMjM0NTY3"


def _cluster(app_servers=3, balancer=True) -> Cluster:
    c = Cluster.objects.create(name="prod")
    for i in range(1, app_servers + 1):
        Node.objects.create(cluster=c, name=f"app{i}", address=f"10.0.0.{100 + i}", is_app_server=True,
                            jvm_route=f"node{i:02d}", host_key=KEY)
    if balancer:
        lb = Node.objects.create(cluster=c, name="lb", address="10.0.0.10", is_load_balancer=True, host_key=KEY)
        LoadBalancer.objects.create(cluster=c, node=lb, manager_allow="10.0.0.1")
    SharedDatabase.objects.create(cluster=c, host="10.0.0.5")  # an upgrade backs it up first
    return c


@pytest.mark.django_db
def test_a_restart_rolls_one_node_per_wave_and_a_batch_groups_them():
    c = _cluster(3)
    dep = engine.start(c, steps=[rolling.ROLL_STEP], operation=Deployment.Operation.RESTART, options={})
    assert [(r.node.name, r.wave) for r in dep.runs.order_by("node__name")] == [("app1", 1), ("app2", 2), ("app3", 3)]
    dep.delete()
    dep = engine.start(c, steps=[rolling.ROLL_STEP], operation=Deployment.Operation.RESTART,
                       options={"batch": 2, "nodes": ["app1", "app3"]})
    assert [(r.node.name, r.wave) for r in dep.runs.order_by("node__name")] == [("app1", 1), ("app3", 1)]


@pytest.mark.django_db
def test_the_clusters_batch_setting_is_the_default_and_a_deployment_never_takes_all():
    c = _cluster(4)
    c.roll_batch = 2
    c.save()
    dep = rolling.start(c, Deployment.Operation.RESTART)
    assert sorted(r.wave for r in dep.runs.all()) == [1, 1, 2, 2]
    Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)
    served = Deployment.objects.create(cluster=c, status=Deployment.Status.SUCCEEDED)
    # Deployed, but its balancer never set up: nothing to take a node out of, so it restarts as it always did.
    assert {r.wave for r in engine.start(c, steps=["joget.running"]).runs.all()} == {0}
    Deployment.objects.filter(cluster=c, status=Deployment.Status.RUNNING).delete()
    StepRun.objects.create(deployment=served, step="load_balancer.site", position=0, status=S.CHANGED)
    assert rolling.serving(c)
    c.roll_batch = 4  # too big for a roll: the deployment's own roll goes one node at a time instead
    c.save()
    dep = engine.start(c, steps=["joget.running"])
    assert sorted(r.wave for r in dep.runs.all()) == [1, 2, 3, 4]


@pytest.mark.django_db
def test_never_all_at_once_and_never_with_a_single_app_server():
    c = _cluster(3)
    with pytest.raises(engine.DeploymentRefused, match="all 3 app servers"):
        rolling.start(c, Deployment.Operation.RESTART, batch=3)
    with pytest.raises(engine.DeploymentRefused, match="Not app servers of prod: app9"):
        rolling.start(c, Deployment.Operation.RESTART, nodes=["app9"])
    with pytest.raises(engine.DeploymentRefused, match="no previous jw.war"):
        rolling.start(c, Deployment.Operation.ROLLBACK)
    alone = Cluster.objects.create(name="alone")
    Node.objects.create(cluster=alone, name="a1", address="10.0.1.1", is_app_server=True, jvm_route="node01")
    with pytest.raises(engine.DeploymentRefused, match="cannot roll"):
        rolling.start(alone, Deployment.Operation.RESTART)


@pytest.mark.django_db
def test_the_engine_starts_a_wave_only_when_the_one_before_has_succeeded_and_skips_the_rest_on_failure():
    c = _cluster(3)
    dep = engine.start(c, steps=[rolling.ROLL_STEP], operation=Deployment.Operation.RESTART)
    engine.advance(dep.pk)
    runs = {r.node.name: r for r in dep.runs.select_related("node")}
    assert [StepRun.objects.get(pk=runs[n].pk).status for n in ("app1", "app2", "app3")] == [S.QUEUED, S.PENDING,
                                                                                              S.PENDING]
    StepRun.objects.filter(pk=runs["app1"].pk).update(status=S.CHANGED)
    engine.advance(dep.pk)
    assert StepRun.objects.get(pk=runs["app2"].pk).status == S.QUEUED
    assert StepRun.objects.get(pk=runs["app3"].pk).status == S.PENDING
    StepRun.objects.filter(pk=runs["app2"].pk).update(status=S.FAILED)
    engine.advance(dep.pk)
    app3 = StepRun.objects.get(pk=runs["app3"].pk)
    assert app3.status == S.SKIPPED and "roll.node on app2" in app3.message
    dep.refresh_from_db()
    assert dep.status == Deployment.Status.FAILED


@pytest.mark.django_db
def test_a_deployment_rolls_joget_running_only_once_the_cluster_serves():
    c = _cluster(3)
    dep = engine.start(c, steps=["joget.running"])
    assert {r.wave for r in dep.runs.all()} == {0}, "a first deployment restarts every node at once"
    Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)
    StepRun.objects.create(deployment=dep, step="load_balancer.site", position=0, status=S.OK)
    dep = engine.start(c, steps=["joget.running"])
    assert sorted(r.wave for r in dep.runs.all()) == [1, 2, 3]


def test_the_major_version_of_an_upgrade_must_stay(tmp_path):
    if not standin.MARIADB_JDBC_JAR.is_file():
        pytest.skip("libmariadb-java is not installed")
    c = Cluster(name="prod", joget_version="8.1")
    same = standin.build_war(tmp_path / "a" / "jw.war", "8.1.7")
    assert rolling.check_major(c, same) == "8.1.7"
    nine = standin.build_war(tmp_path / "b" / "jw.war", "9.0")
    with pytest.raises(rolling.RollRefused, match="licen"):
        rolling.check_major(c, nine)
    (tmp_path / "x.war").write_bytes(b"not a zip")
    with pytest.raises(rolling.RollRefused, match="not a WAR"):
        rolling.check_major(c, tmp_path / "x.war")


def test_the_stand_in_shows_its_build_and_two_builds_differ(tmp_path):
    if not standin.MARIADB_JDBC_JAR.is_file():
        pytest.skip("libmariadb-java is not installed")
    a = standin.build_war(tmp_path / "a" / "jw.war", "8.1", start_delay=2)
    b = standin.build_war(tmp_path / "b" / "jw.war", "8.1.1", start_delay=2)
    import zipfile

    props = [zipfile.ZipFile(p).read("WEB-INF/standin.properties").decode() for p in (a, b)]
    builds = [next(line for line in p.splitlines() if line.startswith("build=")) for p in props]
    assert builds[0] != builds[1] and all(len(x) == len("build=") + 8 for x in builds)
    assert "startDelay=2" in props[0]


def test_member_states_go_into_the_site_file():
    c = Cluster(name="prod")
    lb = LoadBalancer(cluster=c)
    nodes = [Node(name=f"app{i}", address=f"10.0.0.{i}", jvm_route=f"node0{i}", balancer_state=state)
             for i, state in enumerate([BalancerState.ENABLED, BalancerState.DISABLED, BalancerState.DRAIN], 1)]
    site = load_balancer.render_site(c, lb, nodes, listen=False)
    lines = [line.strip() for line in site.splitlines() if "BalancerMember" in line]
    assert lines[0].endswith("route=node01 retry=10")
    assert lines[1].endswith("route=node02 retry=10 status=+D")
    assert lines[2].endswith("route=node03 retry=10 status=+N")


PAGE = """<html><body><h1>Load Balancer Manager for 10.0.0.10</h1>
<h3>LoadBalancer Status for <a href="/balancer-manager?b=prod&amp;nonce=5f1e-aa">balancer://prod</a></h3>
<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th>
<th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th></tr>
<tr><td><a href="/balancer-manager?b=prod&amp;w=http://10.0.0.101:8080/jw&amp;nonce=5f1e-aa">http://10.0.0.101:8080/jw</a>
</td><td>node01</td><td></td><td>1.00</td><td>0</td><td>Init Dis Ok </td><td>7</td><td>2</td><td>0</td>
<td>1K</td><td>2K</td></tr><tr><td><a href="/balancer-manager?b=prod&amp;w=http://10.0.0.102:8080/jw&amp;nonce=5f1e-aa">http://10.0.0.102:8080/jw</a>
</td><td>node02</td><td></td><td>1.00</td><td>0</td><td>Init Drn Ok </td><td>3</td><td>0</td><td>0</td>
<td>1K</td><td>2K</td></tr><tr><td><a href="/balancer-manager?b=prod&amp;w=http://10.0.0.103:8080/jw&amp;nonce=5f1e-aa">http://10.0.0.103:8080/jw</a>
</td><td>node03</td><td></td><td>1.00</td><td>0</td><td>Init Ok </td><td>9</td><td>0</td><td>0</td>
<td>1K</td><td>2K</td></tr></table></body></html>"""


def test_balancer_manager_page_gives_states_in_flight_counts_and_the_nonce():
    found = members.parse_members(PAGE)
    assert {r: (m.state, m.busy, m.serving) for r, m in found.items()} == {
        "node01": ("disabled", 2, False), "node02": ("drain", 0, False), "node03": ("enabled", 0, True)}
    assert found["node01"].url == "http://10.0.0.101:8080/jw"
    assert members.nonce_of(PAGE, "prod") == "5f1e-aa"
    assert members.nonce_of(PAGE, "other") == ""


def test_the_previous_war_is_read_as_the_service_user_and_kept_by_root_outside_webapps():
    cmd = keep_previous_command("/opt/joget/tomcat-base/webapps/jw.war", "jw.war")
    assert "runuser -u tomcat -- cat -- /opt/joget/tomcat-base/webapps/jw.war" in cmd
    assert "/var/lib/jcc-console/wars/jw.war.previous" in cmd and "umask 077" in cmd


@pytest.mark.django_db
def test_operate_command_arguments():
    _cluster(3)
    with pytest.raises(CommandError, match="needs --war"):
        call_command("operate", "prod", "upgrade")
    with pytest.raises(CommandError, match="needs the app server"):
        call_command("operate", "prod", "disable")
    with pytest.raises(CommandError, match="No node 'app9'"):
        call_command("operate", "prod", "drain", "app9")
    with pytest.raises(CommandError, match="for restart only"):
        call_command("operate", "prod", "rollback", "--nodes", "app1")
    with pytest.raises(CommandError, match="No cluster"):
        call_command("operate", "nope", "restart")


def test_synchronous_replication_is_a_named_send_option_and_off_removes_only_the_consoles_own():
    from deployments import xmledit as x

    xml = b"""<Server><Service name="Catalina"><Connector port="8080" protocol="HTTP/1.1"/>
<Engine name="Catalina" defaultHost="localhost"><Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster"/>
</Engine></Service></Server>"""
    on = x.edit(xml, x.set_cluster(x.ClusterSpec(send_options=x.SYNCHRONOUS_SEND_OPTIONS)))
    assert b'channelSendOptions="use_ack,synchronized_ack"' in on
    assert b"channelSendOptions" not in x.edit(on, x.set_cluster(x.ClusterSpec()))
    own = on.replace(b"use_ack,synchronized_ack", b"6")
    assert b'channelSendOptions="6"' in x.edit(own, x.set_cluster(x.ClusterSpec()))


@pytest.mark.django_db
def test_cluster_page_levers_start_runs_and_say_why_not(admin_client):
    from django.urls import reverse

    c = _cluster(3)
    page = admin_client.get(reverse("nodes:cluster_detail", args=[c.name])).content.decode()
    assert "Rolling restart…" in page and "app2: out of the balancer" in page
    reply = admin_client.get(reverse("deployments:members", args=[c.name]))
    assert reply.status_code == 286, "no run goes on: the card is not polled"
    card = reply.content.decode()
    assert "balancer-manager" in card and 'data-member="node02"' in card  # not reachable here: said, rows kept
    reply = admin_client.post(reverse("deployments:member_state", args=[c.name, "app2"]), {"state": "disabled"})
    dep = Deployment.objects.get(operation=Deployment.Operation.MEMBERS)
    assert reply.url == reverse("deployments:deployment_detail", args=[dep.pk])
    assert Node.objects.get(name="app2").balancer_state == "disabled"
    assert [r.step for r in dep.runs.all()] == ["members.apply"]
    # One run at a time: the restart is refused while the member change runs, and says so.
    reply = admin_client.post(reverse("deployments:operate", args=[c.name, "restart"]), follow=True)
    assert "is running" in reply.content.decode()
    Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)
    reply = admin_client.post(reverse("deployments:operate", args=[c.name, "restart"]), {"batch": "2"})
    dep = Deployment.objects.get(operation=Deployment.Operation.RESTART)
    assert sorted(r.wave for r in dep.runs.all()) == [1, 1, 2] and dep.options["batch"] == 2


@pytest.mark.django_db
def test_node_page_has_the_member_levers(admin_client):
    from django.urls import reverse

    c = _cluster(2)
    page = admin_client.get(reverse("nodes:node_detail", args=[c.name, "app1"])).content.decode()
    assert 'id="balancer-state"' in page and ">Disable</button>" in page and ">Drain</button>" in page
    assert reverse("deployments:member_state", args=[c.name, "app1"]) in page


@pytest.mark.django_db
def test_cluster_page_upgrade_spools_the_upload_and_says_why_a_war_is_refused(admin_client):
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    def war(version: str) -> SimpleUploadedFile:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("WEB-INF/standin.properties", f"version={version}\n")
        return SimpleUploadedFile("jw-new.war", buf.getvalue())

    c = _cluster(2)
    url = reverse("deployments:operate", args=[c.name, "upgrade"])
    page = admin_client.post(url, {"war": war("9.0")}, follow=True).content.decode()
    assert "jw-new.war is Joget 9.0, the cluster runs 8.1: a rolling upgrade must keep major version 8" in page
    assert not Deployment.objects.exists() and not Artifact.objects.filter(cluster=c).exists()
    reply = admin_client.post(url, {"war": war("8.1.9"), "batch": "1"})
    dep = Deployment.objects.get(operation=Deployment.Operation.UPGRADE)
    assert reply.url == reverse("deployments:deployment_detail", args=[dep.pk])
    assert dep.options["version"] == "8.1.9"
    assert Artifact.objects.get(cluster=c, kind=Artifact.Kind.JW_WAR).original_name == "jw-new.war"
