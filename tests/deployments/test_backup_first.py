"""Backing up before an operation, at the plan level: a rolling upgrade runs the backup steps first in its own run
and its roll waits for backup.manifest (a failed backup skips every node); the cluster's setting and --no-backup /
`no_backup` skip it; restart and rollback never take one. The uploaded WAR of a refused upgrade and the previous
jw.war an upgrade drops leave no file behind in storage. A drift repair of what Tomcat reads at start also runs
joget.running (rolled on a serving cluster). The full-testbed side is in test_rolling.py."""

import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from deployments import backups, drift, engine, rolling
from deployments.models import Backup, BackupPolicy, Deployment, DriftCheck, StepRun
from nodes.models import Artifact, Cluster, LoadBalancer, Node, SharedDatabase

S = StepRun.Status
Op = Deployment.Operation
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2Uta2V5LWZvci10ZXN0cy1vbmx5LTAxMjM0NTY3"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


def _cluster(name="prod", app_servers=3) -> Cluster:
    c = Cluster.objects.create(name=name)
    for i in range(1, app_servers + 1):
        Node.objects.create(cluster=c, name=f"app{i}", address=f"10.0.0.{100 + i}", is_app_server=True,
                            jvm_route=f"node{i:02d}", host_key=KEY)
    lb = Node.objects.create(cluster=c, name="lb", address="10.0.0.10", is_load_balancer=True, host_key=KEY)
    LoadBalancer.objects.create(cluster=c, node=lb, manager_allow="10.0.0.1")
    db = Node.objects.create(cluster=c, name="db", address="10.0.0.5", is_database=True, host_key=KEY)
    SharedDatabase.objects.create(cluster=c, node=db, password="db-secret-pw")
    return c


def _war(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("WEB-INF/standin.properties", f"version={version}\n")
    return path


def _stored_wars(media: Path, cluster: Cluster) -> list[str]:
    root = media / "artifacts" / cluster.name
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _statuses(dep) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for step, status in StepRun.objects.filter(deployment=dep).values_list("step", "status"):
        out.setdefault(step, set()).add(status)
    return out


def test_an_upgrade_backs_up_first_in_its_own_run_and_the_roll_waits_for_the_manifest(tmp_path):
    c = _cluster()
    dep = rolling.start(c, Op.UPGRADE, war=_war(tmp_path / "jw.war", "8.1.2"))
    backup = Backup.objects.get(deployment=dep)
    assert backup.reason == Backup.Reason.BEFORE_OPERATION and backup.note == "before the rolling upgrade"
    assert dep.options["backup_first"] == backup.backup_id and dep.kind == "rolling upgrade"
    runs = list(dep.runs.select_related("node").order_by("position", "wave"))
    assert [r.step for r in runs[:4]] == backups.BACKUP_STEPS and {r.wave for r in runs[:4]} == {0}
    assert [(r.step, r.node.name, r.wave) for r in runs[4:]] == [
        ("roll.node", "app1", 1), ("roll.node", "app2", 2), ("roll.node", "app3", 3)]
    engine.advance(dep.pk)  # the start's own advance ran on commit; again changes nothing
    st = _statuses(dep)
    assert st["backup.database"] == st["backup.files"] == st["backup.desired_state"] == {S.QUEUED}
    assert st["backup.manifest"] == st["roll.node"] == {S.PENDING}
    StepRun.objects.filter(deployment=dep, step__in=backups.BACKUP_STEPS[:3]).update(status=S.CHANGED)
    engine.advance(dep.pk)
    assert _statuses(dep)["roll.node"] == {S.PENDING}, "the roll waits for the manifest"
    StepRun.objects.filter(deployment=dep, step="backup.manifest").update(status=S.CHANGED)
    engine.advance(dep.pk)
    first = dep.runs.get(step="roll.node", wave=1)
    assert first.status == S.QUEUED and set(dep.runs.filter(wave__gt=1).values_list("status", flat=True)) == {S.PENDING}


def test_a_failed_backup_stops_the_upgrade_before_any_node_is_touched(tmp_path):
    c = _cluster()
    dep = rolling.start(c, Op.UPGRADE, war=_war(tmp_path / "jw.war", "8.1.2"))
    StepRun.objects.filter(deployment=dep, step="backup.files").update(status=S.FAILED, message="tar: no space")
    StepRun.objects.filter(deployment=dep, step__in=["backup.database", "backup.desired_state"]).update(
        status=S.CHANGED)
    engine.advance(dep.pk)
    engine.advance(dep.pk)  # the manifest is skipped first, then the nodes behind it
    rolls = list(dep.runs.filter(step="roll.node"))
    assert {r.status for r in rolls} == {S.SKIPPED} and all(r.started is None for r in rolls)
    assert all("backup.files" in r.message for r in rolls), [r.message for r in rolls]
    dep.refresh_from_db()
    assert dep.status == Deployment.Status.FAILED
    assert backups.backup_state(Backup.objects.get(deployment=dep)) == Backup.State.FAILED


def test_the_setting_and_no_backup_skip_it_and_restart_and_rollback_never_back_up(tmp_path):
    c = _cluster()
    dep = rolling.start(c, Op.UPGRADE, war=_war(tmp_path / "a" / "jw.war", "8.1.2"), backup_first=False)
    assert "backup_first" not in dep.options and not Backup.objects.exists()
    assert [r.step for r in dep.runs.all()] == ["roll.node"] * 3
    Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)
    BackupPolicy.objects.create(cluster=c, before_operations=False)
    dep = rolling.start(c, Op.UPGRADE, war=_war(tmp_path / "b" / "jw.war", "8.1.3"))
    assert not Backup.objects.exists() and {r.step for r in dep.runs.all()} == {"roll.node"}
    Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)
    BackupPolicy.objects.filter(cluster=c).update(before_operations=True)
    for op in (Op.RESTART, Op.ROLLBACK):
        dep = rolling.start(c, op)
        assert not Backup.objects.exists() and {r.step for r in dep.runs.all()} == {"roll.node"}, op
        Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)


def test_operate_names_the_backup_and_no_backup_skips_it_for_upgrades_and_scale_only(tmp_path, capsys):
    c = _cluster()
    with pytest.raises(CommandError, match="--no-backup is for upgrade, add-node and remove-node only: restart"):
        call_command("operate", c.name, "restart", "--no-backup")
    assert not Deployment.objects.exists()
    call_command("operate", c.name, "upgrade", "--war", str(_war(tmp_path / "a" / "jw.war", "8.1.2")))
    backup = Backup.objects.get()
    assert capsys.readouterr().out.strip().endswith(f", after a backup first: {backup.backup_id}.")
    Deployment.objects.update(status=Deployment.Status.SUCCEEDED)
    call_command("operate", c.name, "upgrade", "--war", str(_war(tmp_path / "b" / "jw.war", "8.1.3")), "--no-backup")
    assert "after a backup" not in capsys.readouterr().out and Backup.objects.count() == 1


def test_a_cluster_that_cannot_be_backed_up_refuses_the_upgrade_with_the_reason_and_keeps_no_file(tmp_path, media):
    c = _cluster()
    SharedDatabase.objects.filter(cluster=c).delete()
    with pytest.raises(engine.DeploymentRefused, match="no shared database to back up"):
        rolling.start(c, Op.UPGRADE, war=_war(tmp_path / "jw.war", "8.1.2"))
    assert not Artifact.objects.exists() and _stored_wars(media, c) == []


def test_a_refused_upgrade_leaves_no_uploaded_file_and_upgrades_keep_two_wars_in_storage(
        tmp_path, media, django_capture_on_commit_callbacks):
    c = _cluster()
    running = engine.start(c, steps=[rolling.ROLL_STEP], operation=Op.RESTART)
    with pytest.raises(engine.DeploymentRunning):
        rolling.start(c, Op.UPGRADE, war=_war(tmp_path / "0" / "jw.war", "8.1.1"))
    assert not Artifact.objects.exists() and _stored_wars(media, c) == [], "the refused upload stayed in storage"
    Deployment.objects.filter(pk=running.pk).update(status=Deployment.Status.SUCCEEDED)
    shas = []
    for i in range(1, 5):
        with django_capture_on_commit_callbacks(execute=True):
            dep = rolling.start(c, Op.UPGRADE, war=_war(tmp_path / str(i) / "jw.war", f"8.1.{i}"),
                                backup_first=False)
        Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.SUCCEEDED)
        shas.append(dep.options["war"])
    arts = {a.kind: a for a in Artifact.objects.filter(cluster=c)}
    assert (arts["jw_war"].sha256, arts["previous_jw_war"].sha256) == (shas[-1], shas[-2])
    files = _stored_wars(media, c)
    assert len(files) == 2 and sorted(Path(a.file.name).name for a in arts.values()) == sorted(
        Path(f).name for f in files), files
    dep = rolling.start(c, Op.ROLLBACK)  # the two change places: nothing written, nothing deleted
    assert _stored_wars(media, c) == files and dep.options["war"] == shas[-2]


def test_the_upgrade_page_says_a_backup_comes_first_and_no_backup_skips_it(admin_client, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    c = _cluster()
    page = admin_client.get(reverse("nodes:cluster_detail", args=[c.name])).content.decode()
    assert 'id="upgrade-backup-first"' in page and "a failed backup stops the upgrade before any node" in page
    url = reverse("deployments:operate", args=[c.name, "upgrade"])
    war = _war(tmp_path / "jw.war", "8.1.2").read_bytes()
    admin_client.post(url, {"war": SimpleUploadedFile("jw.war", war), "no_backup": "1"})
    dep = Deployment.objects.get(operation=Op.UPGRADE)
    assert not Backup.objects.exists() and "backup_first" not in dep.options
    Deployment.objects.update(status=Deployment.Status.SUCCEEDED)
    admin_client.post(url, {"war": SimpleUploadedFile("jw.war", war)})
    dep = Deployment.objects.filter(operation=Op.UPGRADE).first()
    assert dep.options["backup_first"] == Backup.objects.get(deployment=dep).backup_id
    BackupPolicy.objects.create(cluster=c, before_operations=False)
    page = admin_client.get(reverse("nodes:cluster_detail", args=[c.name])).content.decode()
    assert 'id="upgrade-backup-first"' not in page and "No backup first" in page


def test_the_api_upgrade_backs_up_first_unless_no_backup(admin_user, tmp_path):
    from rest_framework.test import APIClient

    c = _cluster()
    api = APIClient()
    api.force_authenticate(admin_user)
    url = f"/api/v1/clusters/{c.name}/operations/upgrade/"
    war = _war(tmp_path / "jw.war", "8.1.2")
    with war.open("rb") as fh:
        reply = api.post(url, {"war": fh, "no_backup": "true"}, format="multipart")
    assert reply.status_code == 201, reply.content
    assert not Backup.objects.exists()
    Deployment.objects.update(status=Deployment.Status.SUCCEEDED)
    with war.open("rb") as fh:
        reply = api.post(url, {"war": fh}, format="multipart")
    assert reply.status_code == 201, reply.content
    assert Backup.objects.get().deployment_id == reply.json()["id"]


def test_a_repair_of_what_tomcat_reads_at_start_also_runs_joget_running():
    c = Cluster.objects.create(name="drifty")

    def check(*steps):
        return DriftCheck(cluster=c, findings=[{"step": s, "node": "app1", "description": "x", "diff": ""}
                                               for s in steps])

    assert drift.repair_steps(check("replication.server_xml")) == ["joget.running", "replication.server_xml"]
    assert drift.repair_steps(check("joget.setenv", "joget.running")) == ["joget.running", "joget.setenv"]
    assert drift.repair_steps(check("load_balancer.site")) == ["load_balancer.site"]
    could_not = DriftCheck(cluster=c, findings=[{"step": "joget.setenv", "node": "app1", "diff": "",
                                                 "description": "could not probe: timeout"}])
    assert drift.repair_steps(could_not) == []



def test_an_artifact_replaced_by_an_upload_or_an_inventory_import_leaves_only_its_successor_in_storage(
        tmp_path, media, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from deployments import services
    from nodes.inventory import register_artifact

    c = _cluster()
    for version in ("8.1.2", "8.1.3"):  # the wizard's upload, twice
        war = _war(tmp_path / version / "jw.war", version)
        with django_capture_on_commit_callbacks(execute=True):
            services.store_artifact(None, c, Artifact.Kind.JW_WAR, SimpleUploadedFile("jw.war", war.read_bytes()))
    kept = Artifact.objects.get(cluster=c)
    assert _stored_wars(media, c) == [str(Path(kept.file.name).relative_to(f"artifacts/{c.name}"))]
    with django_capture_on_commit_callbacks(execute=True):  # an inventory import of another file
        register_artifact(c, Artifact.Kind.JW_WAR, _war(tmp_path / "i" / "jw.war", "8.1.4"))
    kept = Artifact.objects.get(cluster=c)
    assert _stored_wars(media, c) == [str(Path(kept.file.name).relative_to(f"artifacts/{c.name}"))]
