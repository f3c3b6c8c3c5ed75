"""The pure parts of backups: the storage setting, the manifest and its checks, the hashing writer, the
dump's exit marker, the commands' refusals."""

import hashlib
import io
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command

from deployments import backups
from deployments.backup_steps import dump_command, marker_ok, tar_command, untar_command
from joget_cluster.storage_url import StorageUrlError, storages_for

ROOTS = {"media_root": Path("/m"), "backup_root": Path("/b")}


def test_storage_url_default_is_the_local_disk():
    s = storages_for("", **ROOTS)
    assert s["default"]["BACKEND"].endswith("FileSystemStorage")
    assert s["backups"]["OPTIONS"]["location"] == "/b"
    assert storages_for("file:///srv/bk", **ROOTS)["backups"]["OPTIONS"]["location"] == "/srv/bk"


def test_storage_url_s3_puts_artifacts_and_backups_in_one_bucket():
    s = storages_for("s3://jcc/prod?endpoint_url=http://127.0.0.1:9000&region_name=eu-west-1", **ROOTS)
    for key, sub in (("default", "media"), ("backups", "backups")):
        opts = s[key]["OPTIONS"]
        assert s[key]["BACKEND"] == "storages.backends.s3.S3Storage"
        assert opts["bucket_name"] == "jcc" and opts["location"] == f"prod/{sub}"
        assert opts["endpoint_url"] == "http://127.0.0.1:9000" and opts["region_name"] == "eu-west-1"


@pytest.mark.parametrize("url", ["ftp://x", "s3://", "s3://key:secret@bucket", "s3://b?colour=red"])
def test_storage_url_refuses_what_it_cannot_use(url):
    with pytest.raises(StorageUrlError):
        storages_for(url, **ROOTS)


def _parts():
    return {p: {"size": 10 + i, "sha256": hashlib.sha256(p.encode()).hexdigest()}
            for i, p in enumerate(backups.DATA_PARTS)}


def test_manifest_lists_sizes_checksums_versions_and_nothing_else():
    m = backups.build_manifest(cluster_name="c", backup_id="id1", joget_version="8.1", parts=_parts(),
                               wars={"app1": {"jw.war": "ab"}}, created="t0", finished="t1",
                               database={"engine": "mariadb", "name": "jwdb"})
    assert m["parts"]["database"] == {"file": "database.sql.gz", "size": 10,
                                      "sha256": hashlib.sha256(b"database").hexdigest()}
    assert set(m) == {"format", "cluster", "backup_id", "joget_version", "created", "finished", "database",
                      "parts", "wars"}
    found = {p: (v["size"], v["sha256"]) for p, v in _parts().items()}
    assert backups.manifest_problems(m, found) == []
    found["files"] = (11, "0" * 64)
    found["desired_state"] = None
    problems = backups.manifest_problems(m, found)
    assert len(problems) == 2 and "shared-directory.tar.gz: sha256 000" in problems[0]
    assert "desired-state.json is missing" in problems[1]


def test_hashing_writer_streams_into_storage_and_hashes(tmp_path):
    store = FileSystemStorage(location=tmp_path)
    w = backups.HashingWriter("c/id/database.sql.gz", store)
    for _ in range(5):
        w.write(b"x" * 100_000)
    info = w.close()
    assert info == {"name": "c/id/database.sql.gz", "size": 500_000,
                    "sha256": hashlib.sha256(b"x" * 500_000).hexdigest()}
    assert backups.sha256_of("c/id/database.sql.gz", store) == (500_000, info["sha256"])
    gone = backups.HashingWriter("c/id/files.tar.gz", store)
    gone.write(b"partial")
    gone.discard()
    assert not store.exists("c/id/files.tar.gz")


def test_exit_markers_and_commands_keep_values_quoted():
    assert marker_ok("warning\njcc-exit=0\n") and not marker_ok("jcc-exit=2") and not marker_ok("no marker")
    assert marker_ok("jcc-exit=1", (0, 1))
    tar = tar_command("/opt/joget/wflow; rm -rf /")
    assert "'/opt/joget/wflow; rm -rf /'" in tar and "as_dir_owner" in tar
    assert "find" not in untar_command("/w", False) and "-mindepth 1 -delete" in untar_command("/w", True)


@pytest.mark.django_db
def test_dump_command_has_the_consistent_options_and_no_password():
    from nodes.models import Cluster, Node, SharedDatabase

    c = Cluster.objects.create(name="c1")
    db_node = Node.objects.create(cluster=c, name="db", address="10.0.0.9", is_database=True)
    Node.objects.create(cluster=c, name="a1", address="10.0.0.1", is_app_server=True)
    SharedDatabase.objects.create(cluster=c, node=db_node, password="pw-secret-1", name="jwdb")
    managed = dump_command(c, True)
    assert "--single-transaction" in managed and "--routines" in managed and "--triggers" in managed
    existing = dump_command(c, False, "/tmp/jcc-sql.X")
    assert "pw-secret-1" not in managed + existing and "--defaults-extra-file=/tmp/jcc-sql.X/client.cnf" in existing


@pytest.mark.django_db
def test_restore_command_needs_yes_and_a_known_backup():
    from deployments.models import Backup
    from nodes.models import Cluster

    c = Cluster.objects.create(name="c1")
    Backup.objects.create(cluster=c, backup_id="20260101-000000-abcdef", state=Backup.State.COMPLETE)
    with pytest.raises(CommandError, match="stops every app server"):
        call_command("restore", "c1", "20260101-000000-abcdef")
    with pytest.raises(CommandError, match="No backup"):
        call_command("restore", "c1", "nope", "--yes")
    out = io.StringIO()
    call_command("backups", "c1", "--format", "json", stdout=out)
    assert '"id": "20260101-000000-abcdef"' in out.getvalue()


@pytest.mark.django_db
def test_pages_list_backups_and_the_restore_page_wants_the_name_typed(admin_client):
    from django.urls import reverse

    from deployments.models import Backup, DriftCheck
    from nodes.models import Cluster

    c = Cluster.objects.create(name="c1")
    b = Backup.objects.create(cluster=c, backup_id="20260101-000000-abcdef", state=Backup.State.COMPLETE)
    DriftCheck.objects.create(cluster=c, state=DriftCheck.State.DRIFTED, findings=[
        {"step": "load_balancer.site", "node": "lb", "description": "write /etc/apache2/x.conf", "diff": "-a\n+b"}])
    page = admin_client.get(reverse("deployments:backup_list", args=["c1"])).content.decode()
    assert b.backup_id in page and "Drifted" in page and "load_balancer.site" in page and "Repair" in page
    assert "Drifted" in admin_client.get(c.get_absolute_url()).content.decode()
    url = reverse("deployments:backup_restore", args=["c1", b.backup_id])
    assert "stops" in admin_client.get(url).content.decode()
    reply = admin_client.post(url, {"confirm": "wrong"})
    assert reply.status_code == 400 and "Type the cluster" in reply.content.decode()
    assert not b.restores.exists()


def test_drift_findings_are_the_changed_and_failed_runs():
    from types import SimpleNamespace as NS

    from deployments.drift import findings_of

    runs = [NS(step="a", node_id=1, node=NS(name="app1"), status="changed", message="",
               changes=[{"description": "write /x", "diff": "-1\n+2"}]),
            NS(step="b", node_id=None, node=None, status="ok", message="", changes=[]),
            NS(step="c", node_id=None, node=None, status="failed", message="ssh refused", changes=[])]
    drift, failed = findings_of(runs)
    assert drift == [{"step": "a", "node": "app1", "description": "write /x", "diff": "-1\n+2"}]
    assert failed[0]["step"] == "c" and "ssh refused" in failed[0]["description"]


@pytest.mark.django_db
def test_the_schedule_is_saved_from_the_backups_page(admin_client):
    from django.urls import reverse

    from deployments.models import BackupPolicy
    from nodes.models import Cluster

    Cluster.objects.create(name="c1")
    reply = admin_client.post(reverse("deployments:backup_policy", args=["c1"]),
                              {"every_hours": "24", "keep": "3", "before_operations": "", "drift_every_minutes": "30"})
    assert reply.status_code == 302
    p = BackupPolicy.objects.get(cluster__name="c1")
    assert (p.every_hours, p.keep, p.before_operations, p.drift_every_minutes) == (24, 3, False, 30)


@pytest.mark.django_db
def test_the_schedule_starts_due_backups_keeps_the_last_n_and_skips_drift_without_a_deployment(monkeypatch):
    from django.utils import timezone

    from deployments import drift
    from deployments.models import Backup, BackupPolicy
    from nodes.models import Cluster

    c = Cluster.objects.create(name="c1")
    BackupPolicy.objects.create(cluster=c, every_hours=1, keep=2, drift_every_minutes=5)
    for i in range(4):
        b = Backup.objects.create(cluster=c, backup_id=f"old-{i}", reason=Backup.Reason.SCHEDULED,
                                  state=Backup.State.COMPLETE)
        Backup.objects.filter(pk=b.pk).update(created=timezone.now() - timezone.timedelta(hours=2 + i))
    started, checks = [], []
    monkeypatch.setattr(backups, "start_backup", lambda cluster, reason: started.append(reason))
    monkeypatch.setattr(drift, "start_check", lambda cluster: checks.append(cluster))
    drift.periodic()
    assert started == [Backup.Reason.SCHEDULED]
    assert sorted(c.backups.values_list("backup_id", flat=True)) == ["old-0", "old-1"]
    assert checks == []  # no succeeded deployment: nothing to drift from


@pytest.mark.django_db
def test_a_drifted_check_sends_mail_and_a_webhook(settings):
    import json as _json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from django.core import mail

    from deployments import drift
    from deployments.models import DriftCheck
    from nodes.models import Cluster

    got = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            got.append(_json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.handle_request, daemon=True).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.HEALTH_ALERT_EMAIL = ["ops@example.com"]
    settings.HEALTH_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    c = Cluster.objects.create(name="c1")
    check = DriftCheck.objects.create(cluster=c, state=DriftCheck.State.DRIFTED, findings=[
        {"step": "load_balancer.site", "node": "lb", "description": "write site.conf", "diff": "-a\n+b"}])
    drift.notify(check)
    server.server_close()
    assert mail.outbox and "drifted: load_balancer.site on lb" in mail.outbox[0].subject
    assert "+b" in mail.outbox[0].body
    assert got and got[0]["event"] == "drift" and got[0]["findings"][0]["node"] == "lb"
    assert DriftCheck.objects.get(pk=check.pk).notified


@pytest.mark.django_db
def test_a_failed_restore_says_what_state_it_left():
    from deployments.models import Backup, Deployment, Restore, StepRun
    from nodes.models import Cluster

    c = Cluster.objects.create(name="c1")
    b = Backup.objects.create(cluster=c, backup_id="b1", state=Backup.State.COMPLETE)
    dep = Deployment.objects.create(cluster=c, status=Deployment.Status.FAILED, steps=backups.RESTORE_STEPS)
    for pos, (step, status) in enumerate([("restore.check", "ok"), ("restore.stop", "changed"),
                                          ("restore.database", "changed"), ("restore.files", "failed"),
                                          ("restore.start", "skipped"), ("restore.post_test", "skipped")]):
        StepRun.objects.create(deployment=dep, step=step, position=pos, status=status)
    text = backups.restore_outcome(Restore.objects.create(cluster=c, backup=b, deployment=dep))
    assert "the database was restored" in text and "shared directory restore failed part-way" in text
    assert "app servers are STOPPED" in text


@pytest.mark.django_db
def test_runs_are_named_for_what_they_are_on_pages_and_in_lists():
    from deployments.models import Deployment, DriftCheck
    from nodes.models import Cluster, Credential

    cred = Credential.objects.create(name="k", kind="password", password="kinds-pw")
    cluster = Cluster.objects.create(name="kinds", credential=cred)

    def run(**kw):
        return Deployment.objects.create(cluster=cluster, status=Deployment.Status.SUCCEEDED, **kw)

    assert run().kind == "deployment"
    assert run(dry_run=True).kind == "dry run"
    assert run(steps=["backup.database", "backup.files", "backup.manifest"]).kind == "backup"
    assert run(steps=["backup.database", "restore.check", "restore.database"]).kind == "restore"
    drift = run(dry_run=True)
    DriftCheck.objects.create(cluster=cluster, deployment=drift)
    assert drift.kind == "drift check"
    assert str(drift) == f"drift check #{drift.pk} of kinds"


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["backup", "backups", "drift", "operate"])
def test_each_command_runs_as_manage_py_runs_it_with_its_system_checks(command):
    # call_command skips Django's system checks unless told; manage.py runs them, through Command.check().
    args = ["restart"] if command == "operate" else []
    with pytest.raises(CommandError, match="nope"):
        call_command(command, "nope", *args, skip_checks=False)
