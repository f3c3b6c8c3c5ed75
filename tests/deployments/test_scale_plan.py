"""Scale out and in without nodes: what an addition and a removal plan (nodes, order, waves), what they refuse with
nothing changed, the command's arguments, and a removed node kept in the history but out of the cluster."""

import pytest
from django.core.management import CommandError, call_command

from deployments import engine, scale
from deployments.models import Deployment, StepRun
from licensing.models import License
from nodes.models import AuditEvent, Cluster, Node
from tests.deployments.test_rolling_plan import KEY, _cluster

S = StepRun.Status
OUT, IN = Deployment.Operation.SCALE_OUT, Deployment.Operation.SCALE_IN


def _serving(app_servers=2, multicast=True) -> Cluster:
    c = _cluster(app_servers)
    c.multicast = multicast
    c.save()
    Node.objects.create(cluster=c, name="db", address="10.0.0.20", is_database=True, host_key=KEY)
    served = Deployment.objects.create(cluster=c, status=Deployment.Status.SUCCEEDED)
    StepRun.objects.create(deployment=served, step="load_balancer.site", position=0, status=S.CHANGED)
    return c


def _runs(dep) -> list[tuple[str, str, int]]:
    return [(r.step, r.node.name if r.node_id else "-", r.wave) for r in dep.runs.order_by("position", "wave")]


NEW = {"name": "app9", "address": "10.0.0.109", "jvm_route": "node09", "host_key": KEY}


@pytest.mark.django_db
def test_an_addition_runs_the_nodes_own_steps_on_it_alone_then_rolls_the_others_then_the_balancer():
    c = _serving(2)
    dep = scale.start(c, OUT, backup_first=False, **NEW)
    runs = _runs(dep)
    own = [(s, n) for s, n, w in runs if not s.startswith("scale.")]
    assert {n for _, n in own} == {"app9"}
    assert [s for s, _ in own][-1] == "joget.running" and "tomcat.install" in [s for s, _ in own]
    assert [r for r in runs if r[0].startswith("scale.")] == [
        ("scale.members", "app1", 1), ("scale.members", "app2", 2), ("scale.add_member", "lb", 0),
        ("scale.license", "app9", 0)]
    new = c.app_servers().get(name="app9")
    # Set up like the other app servers; the cluster now counts it.
    assert (new.install_path, new.catalina_base, new.http_port) == ("/opt/joget", "", 8080)
    assert c.app_servers().count() == 3
    assert dep.kind == "app server addition"


@pytest.mark.django_db
def test_a_removal_takes_the_node_out_first_and_it_leaves_the_cluster_at_the_end_kept_in_the_history():
    c = _serving(3, multicast=False)
    dep = scale.start(c, IN, node="app2", backup_first=False)
    assert _runs(dep) == [("scale.leave", "app2", 0), ("scale.drop_member", "lb", 0), ("scale.members", "app1", 1),
                          ("scale.members", "app3", 2), ("scale.finish", "-", 0)]
    assert [n.name for n in c.app_servers()] == ["app1", "app3"]  # already planned for without it
    lic = License.objects.create(node=Node.objects.get(cluster=c, name="app2"), system_key="K-2")
    from deployments.steps.scale import FinishChange
    from tests.deployments.test_scale_plan import _ctx
    FinishChange("leave").apply(_ctx(c, dep))
    assert not Node.objects.filter(cluster=c, name="app2").exists()
    assert c.nodes.count() == 4 and dep.runs.get(step="scale.leave").node.name == "app2"  # history keeps it
    lic.refresh_from_db()
    assert lic.released_at is not None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.NODE_REMOVED, cluster="prod").exists()
    # Its name and route are free again: a replacement may take over the route.
    Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)
    dep2 = scale.start(c, OUT, **{**NEW, "name": "app2b", "jvm_route": "node02"})
    assert c.app_servers().get(name="app2b").jvm_route == "node02" and dep2.operation == OUT


@pytest.mark.django_db
def test_a_scale_operation_backs_up_first_from_a_serving_node_and_every_step_waits_for_the_backup():
    from deployments.backups import BACKUP_STEPS
    from deployments.models import Backup, BackupPolicy

    c = _serving(2)
    dep = scale.start(c, OUT, **{**NEW, "name": "aaa9"})  # first by name: the backup must not read from it
    backup = [(s, n) for s, n, _ in _runs(dep) if s.startswith("backup.")]
    assert sorted(s for s, _ in backup) == sorted(BACKUP_STEPS)
    assert "aaa9" not in {n for _, n in backup} and ("backup.files", "app1") in backup
    row = Backup.objects.get(deployment=dep)
    assert dep.options["backup_first"] == row.backup_id and row.reason == Backup.Reason.BEFORE_OPERATION
    for step in set(dep.runs.exclude(step__startswith="backup.").values_list("step", flat=True)):
        assert "backup.manifest" in engine.depends_on(dep, step), step
    # The cluster's setting off: a removal runs without a backup, and nothing waits for one.
    Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)
    BackupPolicy.objects.update_or_create(cluster=c, defaults={"before_operations": False})
    dep2 = scale.start(c, IN, node="app2")
    assert not dep2.runs.filter(step__startswith="backup.").exists() and "backup_first" not in dep2.options
    assert engine.depends_on(dep2, "scale.leave") == ()


def _ctx(cluster, dep):
    from deployments.steps.base import StepContext

    return StepContext(cluster=cluster, node=None, conn=None, log=lambda _t: None, emit=lambda _k, _t: None,
                       connect=None, deployment=dep)


@pytest.mark.django_db
def test_a_second_add_an_unknown_remove_and_wrong_input_change_nothing_and_say_why():
    c = _serving(2)
    before = (Node.all_objects.count(), Deployment.objects.count())
    cases = [
        (OUT, {**NEW, "name": "app1"}, "name", "app1 is an app server of prod already"),
        (OUT, {**NEW, "address": "10.0.0.101"}, "address", "address of app1"),
        (OUT, {**NEW, "jvm_route": "node01"}, "jvm_route", "jvmRoute node01 is app1's"),
        (OUT, {**NEW, "name": "Bad Name!"}, "name", "name"),
        (OUT, {**NEW, "address": "10.0.0.5; rm -rf /"}, "address", "address"),
        (OUT, {**NEW, "host_key": "not a key"}, "host_key", "OpenSSH public key line"),
        (OUT, {**NEW, "host_key": ""}, "host_key", "Confirm 10.0.0.109's host key"),
        (OUT, {**NEW, "jvm_route": ""}, "jvm_route", "jvmRoute"),
        (IN, {"node": "app7"}, "node", "No node 'app7' in cluster prod"),
    ]
    for operation, options, field, said in cases:
        with pytest.raises(engine.InvalidOption, match=said) as exc:
            scale.start(c, operation, **options)
        assert exc.value.field == field, options
    with pytest.raises(engine.DeploymentRefused, match="shared database holds every app's data"):
        scale.start(c, IN, node="db")
    with pytest.raises(engine.DeploymentRefused, match="load balancer is the cluster's only entry"):
        scale.start(c, IN, node="lb")
    assert (Node.all_objects.count(), Deployment.objects.count()) == before
    assert not Node.objects.filter(leaving=True).exists()
    # A second addition while the first runs: refused as any run of a running cluster, the node not recorded twice.
    scale.start(c, OUT, **NEW)
    with pytest.raises(engine.DeploymentRunning):
        scale.start(c, OUT, **{**NEW, "name": "app8", "address": "10.0.0.108", "jvm_route": "node08"})
    assert not Node.objects.filter(name="app8").exists()


@pytest.mark.django_db
def test_the_last_app_server_and_a_cluster_that_does_not_serve_yet_are_refused():
    c = _serving(1)
    with pytest.raises(engine.DeploymentRefused, match="app1 is the last app server of prod"):
        scale.start(c, IN, node="app1")
    Cluster.objects.filter(pk=c.pk).update(name="one")
    fresh = _cluster(2)
    with pytest.raises(engine.DeploymentRefused, match="does not serve through a load balancer yet"):
        scale.start(fresh, OUT, **NEW)
    assert not Node.objects.filter(name="app9").exists() and not Node.objects.filter(leaving=True).exists()


@pytest.mark.django_db
def test_the_operate_command_adds_and_removes_and_exits_non_zero_with_the_reason(capsys):
    c = _serving(2)
    with pytest.raises(CommandError, match="add-node needs --name, --address, --jvm-route"):
        call_command("operate", "prod", "add-node")
    with pytest.raises(CommandError, match="remove-node needs the app server's name"):
        call_command("operate", "prod", "remove-node")
    with pytest.raises(CommandError, match="add-node needs --host-key .*asking 127.0.0.1 for it: Cannot reach"):
        call_command("operate", "prod", "add-node", "--name", "app9", "--address", "127.0.0.1", "--ssh-port", "9",
                     "--jvm-route", "node09")
    with pytest.raises(CommandError, match="No node 'ghost' in cluster prod: nothing changed"):
        call_command("operate", "prod", "remove-node", "ghost")
    call_command("operate", "prod", "add-node", "--name", "app9", "--address", "10.0.0.109", "--jvm-route", "node09",
                 "--host-key", KEY, "--ssh-port", "2222")
    assert "Started app server addition" in capsys.readouterr().out
    assert c.app_servers().get(name="app9").ssh_port == 2222
    with pytest.raises(CommandError, match="app9 is an app server of prod already"):
        call_command("operate", "prod", "add-node", "--name", "app9", "--address", "10.0.0.119", "--jvm-route",
                     "node19", "--host-key", KEY)


@pytest.mark.django_db
def test_the_pages_refuse_what_the_command_refuses_and_an_operator_adds_nothing(admin_client, django_user_model):
    from django.contrib.auth.models import Group
    from django.test import Client

    c = _serving(2)
    operator = django_user_model.objects.create_user("op", password="op-pass-123")
    operator.groups.add(Group.objects.get_or_create(name="operator")[0])
    client = Client()
    client.force_login(operator)
    assert client.get("/clusters/prod/scale/add/").status_code == 403
    assert client.post("/clusters/prod/scale/remove/", {"node": "app1"}).status_code == 403
    page = admin_client.get("/clusters/prod/scale/add/")
    assert page.status_code == 200 and b"Next: fetch its host key" in page.content
    bad = admin_client.post("/clusters/prod/scale/add/", {**NEW, "name": "Bad Name!", "ssh_port": 22,
                                                           "ssh_user": "root", "stage": "details"})
    assert bad.status_code == 200 and b"has-error" in bad.content
    # Nothing answers SSH there: said on the address, nothing recorded.
    gone = admin_client.post("/clusters/prod/scale/add/", {**NEW, "address": "127.0.0.1", "ssh_port": 9,
                                                            "ssh_user": "root", "stage": "details"})
    assert b"Cannot reach 127.0.0.1:9" in gone.content
    removed = admin_client.post("/clusters/prod/scale/remove/", {"node": "db"}, follow=True)
    assert b"shared database holds every app" in removed.content
    assert (Node.all_objects.filter(cluster=c).count(), Deployment.objects.filter(cluster=c).count()) == (4, 1)
    Cluster.objects.filter(pk=c.pk).update(name="old")
    fresh = _cluster(2)
    assert admin_client.get(f"/clusters/{fresh.name}/scale/add/").url == f"/clusters/{fresh.name}/nodes/new/"


@pytest.mark.django_db
def test_deleting_a_node_with_a_deployment_history_is_refused_and_points_to_scale_in(admin_client):
    from django.urls import reverse

    c = _serving(2)
    app1 = Node.objects.get(cluster=c, name="app1")
    served = c.deployments.get()
    StepRun.objects.create(deployment=served, step="joget.running", position=1, node=app1, status=S.CHANGED)
    page = admin_client.post(reverse("nodes:node_delete", args=[c.name, "app1"]), follow=True).content.decode()
    assert "app1 has a deployment history, which deleting it would lose" in page
    assert "Remove an app server" in page and f'{c.get_absolute_url()}#operate-remove-node' in page
    assert Node.objects.filter(cluster=c, name="app1").exists()
    assert served.runs.filter(node=app1).exists()
    # A node never deployed to goes as before; the whole cluster still goes with its history.
    admin_client.post(reverse("nodes:node_delete", args=[c.name, "app2"]))
    assert not Node.objects.filter(cluster=c, name="app2").exists()
    admin_client.post(reverse("nodes:cluster_delete", args=[c.name]))
    assert not Cluster.objects.filter(name=c.name).exists() and not StepRun.objects.exists()


@pytest.mark.django_db
def test_the_license_note_of_a_node_taking_over_a_route_compares_the_system_keys():
    from deployments.steps.scale import taking_over

    c = _serving(2)
    gone = Node.objects.get(cluster=c, name="app2")
    License.objects.create(node=gone, system_key="KEY-OF-APP2")
    Node.all_objects.filter(pk=gone.pk).update(removed_at="2026-12-01T00:00Z")
    back = Node.objects.create(cluster=c, name="app2b", address="10.0.0.102", is_app_server=True, jvm_route="node02")
    assert "with the same system key (the same machine): app2's released license fits it again" in taking_over(
        back, gone, "KEY-OF-APP2")
    assert "whose license does not follow" in taking_over(back, gone, "KEY-OF-OTHER")
    assert "only if the key, once read, is the same" in taking_over(back, gone, "")
