"""Backups and restores on the full testbed, through real workers: data written into the shared database
and a file written into the shared directory are backed up, destroyed and restored, and the app answers
through the balancer with db=ok; a backup with one byte changed is refused; an S3-compatible store (moto's
standalone server) carries a backup written by one worker process and restored by another.

One testbed of its own, deployed once (minutes): keep the tests here few.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.core.files.storage import storages

from deployments import backups
from deployments.models import Backup, Deployment, LogLine
from nodes.inventory import load_inventory
from tests.conftest import ROOT, celery_worker, wait_for
from tests.deployments.test_steps_joget import deploy, explain, sh

pytestmark = [pytest.mark.full, pytest.mark.django_db(transaction=True)]
WFLOW = "/opt/joget/wflow"


@pytest.fixture
def backup_testbed(serving_testbed):
    return serving_testbed


@pytest.fixture
def cluster(backup_testbed, celery_worker_process):
    c = load_inventory(dict(backup_testbed), replace=True)
    dep = deploy(c, steps=None, timeout=900)  # as planned already after the first test: every step ok
    assert dep.status == "succeeded", explain(dep)
    return c


def wait_run(dep: Deployment, timeout=600) -> Deployment:
    wait_for(lambda: not Deployment.objects.get(pk=dep.pk).is_active, timeout=timeout, interval=0.5,
             message=f"{dep} to finish")
    dep.refresh_from_db()
    return dep


def session_line(tb) -> str:
    url = f"http://{tb.address('lb')}/jw/testbed/session"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a testbed address
        return resp.read().decode().strip()


def sql(tb, statement: str) -> str:
    db = tb["shared_database"]["name"]
    return sh(tb, "db", f"mariadb --batch --skip-column-names {db} -e \"{statement}\"")


def write_data(tb, token: str) -> None:
    sql(tb, f"DROP TABLE IF EXISTS jcc_backup_probe; CREATE TABLE jcc_backup_probe (v VARCHAR(64)); "
            f"INSERT INTO jcc_backup_probe VALUES "
            f"('{token}')")
    sh(tb, "app1", f"runuser -u tomcat -- sh -c 'echo {token} > {WFLOW}/backup-probe.txt'")


def destroy_data(tb) -> None:
    sql(tb, "DROP TABLE jcc_backup_probe")
    sh(tb, "app2", f"rm {WFLOW}/backup-probe.txt")
    assert "jcc_backup_probe" not in sql(tb, "SHOW TABLES")


def assert_data_back(tb, token: str) -> None:
    assert sql(tb, "SELECT v FROM jcc_backup_probe").split() == [token]
    assert sh(tb, "app2", f"cat {WFLOW}/backup-probe.txt").strip() == token
    line = session_line(tb)
    assert "db=ok" in line, line


def run_restore(backup: Backup, **kwargs) -> Deployment:
    restore = backups.start_restore(backup, **kwargs)
    return wait_run(restore.deployment, timeout=900)


def test_backup_destroy_restore_then_a_damaged_backup_is_refused(cluster, backup_testbed, celery_queue):
    tb = backup_testbed
    token = uuid.uuid4().hex
    write_data(tb, token)
    backup = backups.start_backup(cluster)
    dep = wait_run(backup.deployment)
    assert dep.status == "succeeded", explain(dep)
    backup.refresh_from_db()
    assert backup.state == Backup.State.COMPLETE
    m = backup.manifest
    assert set(m["parts"]) == {"database", "files", "desired_state"} and m["joget_version"] == cluster.joget_version
    assert all(len(sha) == 64 for node in m["wars"].values() for sha in node.values()), m["wars"]
    store = storages["backups"]
    desired = store.open(backups.part_name(cluster.name, backup.backup_id, "desired_state")).read()
    manifest_file = store.open(backups.part_name(cluster.name, backup.backup_id, "manifest")).read()
    password = tb["shared_database"]["password"]
    for what, data in (("desired state", desired), ("manifest", manifest_file)):
        assert password.encode() not in data, what
    assert json.loads(desired)["cluster"] == cluster.name
    logs = "\n".join(LogLine.objects.filter(run__deployment=dep).values_list("text", flat=True))
    assert password not in logs and "database dump:" in logs

    destroy_data(tb)
    sh(tb, "app1", f"runuser -u tomcat -- touch {WFLOW}/made-after-the-backup.txt")
    restored = run_restore(backup)
    assert restored.status == "succeeded", explain(restored)
    assert_data_back(tb, token)
    assert "yes" in sh(tb, "app2", f"test -e {WFLOW}/made-after-the-backup.txt && echo yes || echo no")  # kept
    restore = backup.restores.first()
    assert backups.restore_outcome(restore).startswith("Restored backup")
    # The cluster's setting (on by default) backed it up first, in the same run; the id is in its log.
    pre = Backup.objects.get(backup_id=restore.pre_backup)
    assert pre.reason == Backup.Reason.BEFORE_OPERATION and pre.state == Backup.State.COMPLETE
    assert LogLine.objects.filter(run__deployment=restored, text__contains=pre.backup_id).exists()
    logs = "\n".join(LogLine.objects.filter(run__deployment=restored).values_list("text", flat=True))
    assert password not in logs

    # One byte changed in the stored archive: refused before anything stops.
    path = Path(store.path(backups.part_name(cluster.name, backup.backup_id, "files")))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    pid_before = sh(tb, "app1", "pgrep -f catalina | head -n 1").strip()
    refused = run_restore(backup)
    assert refused.status == "failed"
    check = refused.runs.get(step="restore.check")
    assert check.status == "failed" and "shared-directory.tar.gz: sha256" in check.message, check.message
    restore_runs = refused.runs.filter(step__startswith="restore.").exclude(step="restore.check")
    assert set(restore_runs.values_list("status", flat=True)) == {"skipped"}
    assert backups.restore_outcome(backup.restores.first()).startswith("Nothing was changed")
    assert sh(tb, "app1", "pgrep -f catalina | head -n 1").strip() == pid_before
    assert "db=ok" in session_line(tb)
    worker_log = (ROOT / "var" / f"test-worker-{celery_queue}.log").read_text()
    assert password not in worker_log


# -- an S3-compatible store: moto's standalone server --------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint():
    port = _free_port()
    log = open(ROOT / "var" / f"test-moto-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],  # noqa: S603
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 - our own local server
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_a_backup_in_s3_written_by_one_worker_restored_by_another(cluster, backup_testbed, s3_endpoint, tmp_path,
                                                                  settings):
    import boto3

    from joget_cluster.celery import app

    tb = backup_testbed
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")
    s3.create_bucket(Bucket="jcc-backups")
    url = f"s3://jcc-backups/console?endpoint_url={s3_endpoint}&region_name=us-east-1"
    token = uuid.uuid4().hex
    write_data(tb, token)
    default_queue = app.conf.task_default_queue
    try:
        # Two workers, as on two machines: the same store, each its own local directories.
        env_a = {**creds, "STORAGE_URL": url, "MEDIA_ROOT": str(tmp_path / "a")}
        env_b = {**creds, "STORAGE_URL": url, "MEDIA_ROOT": str(tmp_path / "b")}
        queue_a, queue_b = f"jcc-s3a-{uuid.uuid4().hex[:6]}", f"jcc-s3b-{uuid.uuid4().hex[:6]}"
        with celery_worker(queue_a, env=env_a, concurrency=8):
            app.conf.task_default_queue = queue_a
            backup = backups.start_backup(cluster)
            dep = wait_run(backup.deployment)
            assert dep.status == "succeeded", explain(dep)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="jcc-backups")["Contents"]}
        assert {f"console/backups/{cluster.name}/{backup.backup_id}/{f}" for f in backups.FILENAMES.values()} <= keys
        assert not (ROOT / "var" / "backups" / cluster.name / backup.backup_id).exists()
        destroy_data(tb)
        sh(tb, "app1", f"runuser -u tomcat -- touch {WFLOW}/made-after-the-s3-backup.txt")
        with celery_worker(queue_b, env=env_b, concurrency=8):
            app.conf.task_default_queue = queue_b
            restored = run_restore(Backup.objects.get(pk=backup.pk), exact=True)
            assert restored.status == "succeeded", explain(restored)
    finally:
        app.conf.task_default_queue = default_queue
    assert_data_back(tb, token)
    # exact: what was not in the backup is gone
    assert "no" in sh(tb, "app2", f"test -e {WFLOW}/made-after-the-s3-backup.txt && echo yes || echo no")
    assert os.environ.get("STORAGE_URL", "") == ""  # the suite's own processes kept the local store


# -- drift ----------------------------------------------------------------------------------------------

def drift_command(cluster, *args) -> tuple[int, str]:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    try:
        call_command("drift", cluster.name, *args, stdout=out, stderr=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def traces(tb, host: str) -> str:
    """Files made since the host booted where a command could leave some: temporary files, root's home, the
    engine's pid files."""
    return tb.host_exec(host, "find /tmp /root /run/jcc-steps -newer /etc/hostname -type f 2>/dev/null | sort").stdout


def test_drift_none_then_hand_edits_show_with_their_diff_then_repair_clears_them(cluster, backup_testbed):
    from deployments.models import DriftCheck

    tb = backup_testbed
    code, out = drift_command(cluster)
    assert code == 0 and "No drift" in out, out
    before = {h: traces(tb, h) for h in ("app1", "db")}

    tb.host_exec("app1", "sed -i 's/jvmRoute=\"node01\"/jvmRoute=\"handmade\"/' "
                         "/opt/joget/tomcat-base/conf/server.xml", check=True)
    site = f"/etc/apache2/sites-available/{tb['load_balancer']['site_name']}.conf"
    tb.host_exec("lb", f"echo '# a hand edit' >> {site}", check=True)
    tb.host_exec("app1", f"sed -i 's/^profileName=.*/profileName=handmade/' {WFLOW}/app_datasource-default.properties",
                 check=True)
    code, out = drift_command(cluster)
    assert code == 1, out
    assert "replication.server_xml on app1" in out and '+' in out and "handmade" in out, out
    assert "load_balancer.site on lb" in out and "# a hand edit" in out, out
    assert "joget.datasource on cluster" in out, out
    assert tb["shared_database"]["password"] not in out
    check = DriftCheck.objects.filter(cluster=cluster).first()
    assert check.state == DriftCheck.State.DRIFTED and check.notified
    # The probes left nothing behind on the nodes.
    after = {h: traces(tb, h) for h in ("app1", "db")}
    assert after == before

    code, out = drift_command(cluster, "--repair")
    assert code == 0 and "Repaired" in out, out
    code, out = drift_command(cluster)
    assert code == 0, out
    assert "db=ok" in session_line(tb)
