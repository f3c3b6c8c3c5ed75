"""What the service user (tomcat) can plant in its own directories never makes a step act as root on another file:
symlinks at every fixed name the steps used (pid file, start fingerprint, temp and backup names, WAR staging), and
files it links to a root-only file are not shown (catalina.out, server.xml)."""

import hashlib
import subprocess

import pytest

from deployments import engine
from deployments.models import LogLine
from deployments.steps import StepContext, StepFailed, get_step
from deployments.steps import tomcat_tools as tomcat
from nodes import health, ssh
from nodes.inventory import load_inventory, register_artifact
from nodes.models import CatalinaTail, Node
from tests.conftest import wait_for

pytestmark = [pytest.mark.full, pytest.mark.django_db(transaction=True)]

INSTALL = "/opt/symtest"  # its own install path and port: other Tomcat tests may share the testbed session
BASE = f"{INSTALL}/tomcat-base"
SECRET = "TOPSECRET-only-root-may-read-this"


@pytest.fixture
def cluster(full_testbed, celery_worker_process):
    c = load_inventory(dict(full_testbed), replace=True)
    Node.objects.filter(cluster=c, is_app_server=True).update(install_path=INSTALL, catalina_base="", http_port=8093)
    full_testbed.host_exec("app1", f"rm -rf {INSTALL} /etc/jcc-victim-*; (umask 077; echo {SECRET} > /etc/jcc-secret)")
    yield c
    full_testbed.host_exec("app1", f"pkill -f -- -Dcatalina.base={BASE}; rm -rf {INSTALL} /etc/jcc-victim-* "
                                   "/etc/jcc-secret")


def deploy(cluster, steps, dry_run=False):
    dep = engine.start(cluster, steps=steps, dry_run=dry_run)

    def done():
        dep.refresh_from_db()
        return not dep.is_active

    wait_for(done, timeout=180, interval=0.5, message=f"{dep} to finish")
    return dep


def explain(dep) -> str:
    return "\n".join(f"{r.step} {r.node.name}: {r.status} {r.message[:300]}" for r in dep.runs.select_related("node"))


def as_tomcat(tb, command: str) -> None:
    r = tb.host_exec("app1", ["runuser", "-u", "tomcat", "--", "sh", "-c", f"cd {BASE} && {command}"])
    assert r.returncode == 0, r.stderr


def victims(tb) -> list[str]:
    return tb.host_exec("app1", "ls /etc | grep jcc-victim || true").stdout.split()


@pytest.fixture
def base(cluster):
    dep = deploy(cluster, ["tomcat.install", "tomcat.base"])
    assert dep.status == "succeeded", explain(dep)
    return cluster


def test_a_linked_server_xml_is_neither_shown_nor_written_through(base, full_testbed):
    tb, cluster = full_testbed, base
    # server.xml linked to a root-only file, and the old writer's temporary name linked elsewhere.
    as_tomcat(tb, "ln -sf /etc/jcc-secret conf/server.xml; ln -s /etc/jcc-victim-xml conf/server.xml.jcc-tmp")
    dry = deploy(cluster, ["tomcat.base"], dry_run=True)
    assert dry.status == "succeeded", explain(dry)
    shown = str([r.changes for r in dry.runs.all()]) + " ".join(
        LogLine.objects.filter(run__deployment=dry).values_list("text", flat=True))
    assert SECRET not in shown
    dep = deploy(cluster, ["tomcat.base"])
    assert dep.status == "succeeded", explain(dep)
    assert victims(tb) == []
    assert tb.host_exec("app1", "cat /etc/jcc-secret").stdout.strip() == SECRET
    assert tb.host_exec("app1", f"stat -c '%F %U' {BASE}/conf/server.xml; grep -c 'port=\"8093\"' "
                                f"{BASE}/conf/server.xml").stdout.split("\n")[:2] == ["regular file tomcat", "1"]


def test_start_and_stop_write_no_planted_symlink_and_catalina_out_is_not_shown(base, full_testbed):
    tb, cluster = full_testbed, base
    # Start and stop: the start fingerprint (and its old temporary name) and the pid file are symlinks.
    as_tomcat(tb, "ln -s /etc/jcc-victim-fp .jcc-started; ln -s /etc/jcc-victim-fp-tmp .jcc-started.tmp")
    node = Node.objects.get(cluster=cluster, name="app1")
    with ssh.open_connection(node) as conn:
        ctx = StepContext(cluster=cluster, node=node, conn=conn, log=lambda text: None,
                          emit=lambda stream, text: None, connect=lambda other: conn)
        tomcat.start(ctx)
        assert tomcat.running_pid(ctx)
        as_tomcat(tb, "ln -sf /etc/jcc-victim-pid temp/catalina.pid")
        tomcat.stop(ctx)
        assert tomcat.running_pid(ctx) is None
        assert victims(tb) == []
        assert tb.host_exec("app1", f"stat -c '%F %U' {BASE}/.jcc-started").stdout.strip() == "regular file tomcat"

        # catalina.out linked to a root-only file: neither the status page's tail nor a step's log shows it.
        as_tomcat(tb, "ln -sf /etc/jcc-secret logs/catalina.out")
        assert SECRET not in ctx.run(tomcat.read_catalina_out(node, 'tail -n 5 -- "$1"'), quiet=True).stdout
    tail = CatalinaTail.objects.create(node=node, lines=20)
    health.fetch_catalina_tail(tail.pk)
    tail.refresh_from_db()
    assert tail.finished_at and SECRET not in tail.text + tail.error


def test_the_war_upload_writes_no_planted_symlink(base, full_testbed):
    tb, cluster = full_testbed, base
    # The WAR: the old staging name in webapps is a symlink.
    as_tomcat(tb, "ln -s /etc/jcc-victim-war webapps/.jw.war.jcc-upload")
    dep = deploy(cluster, ["joget.war"])
    assert dep.status == "succeeded", explain(dep)
    assert victims(tb) == []
    assert tb.host_exec("app1", f"stat -c '%F %U' {BASE}/webapps/jw.war").stdout.strip() == "regular file tomcat"


def shown_by(dep) -> str:
    """What a deployment shows: its changes (diffs) and every log line."""
    return str([r.changes for r in dep.runs.all()]) + " ".join(
        LogLine.objects.filter(run__deployment=dep).values_list("text", flat=True))


def test_the_tomcat_archive_is_never_staged_at_a_name_someone_could_plant(cluster, full_testbed, tmp_path):
    tb = full_testbed
    archive = tmp_path / "apache-tomcat-10.1-test.tar.gz"
    subprocess.run(["tar", "-czhf", str(archive), "--transform", "s,^usr/share/tomcat10,apache-tomcat-10.1-test,",
                    "-C", "/", "usr/share/tomcat10"], check=True)
    art = register_artifact(cluster, "tomcat_archive", archive)
    Node.objects.filter(cluster=cluster, is_app_server=True).update(catalina_home="")
    # The name the archive was once staged at (fixed, in /tmp), made a symlink by the service user beforehand.
    old = f"/tmp/jcc-tomcat-{art.sha256[:16]}.tar"
    r = tb.host_exec("app1", ["runuser", "-u", "tomcat", "--", "ln", "-sfn", "/etc/jcc-victim-tar", old])
    assert r.returncode == 0, r.stderr
    try:
        dep = deploy(cluster, ["tomcat.install"])
        assert dep.status == "succeeded", explain(dep)
        assert victims(tb) == []
        assert tb.host_exec("app1", f"stat -c '%F %U' {old}").stdout.strip() == "symbolic link tomcat"
    finally:
        tb.host_exec("app1", f"rm -f {old}")


def test_a_conf_directory_swapped_for_a_link_gets_no_file_from_root(base, full_testbed):
    tb, cluster = full_testbed, base
    step = get_step("tomcat.base")
    node = Node.objects.get(cluster=cluster, name="app1")
    as_tomcat(tb, "rm conf/logging.properties conf/web.xml")  # something for the step to copy again
    before = set(tb.host_exec("app1", "ls -A /etc").stdout.split())
    with ssh.open_connection(node) as conn:
        ctx = StepContext(cluster=cluster, node=node, conn=conn, log=lambda text: None,
                          emit=lambda stream, text: None, connect=lambda other: conn)
        changes = step.probe(ctx)
        assert any(c.description.startswith(f"create {BASE}") for c in changes)
        # Between the probe and the copy, the service user makes conf/ a link to /etc.
        as_tomcat(tb, "mv conf conf.away && ln -s /etc conf")
        try:
            step.apply(ctx, changes)
        except StepFailed:
            pass  # refusing is right; writing into /etc is not
    assert set(tb.host_exec("app1", "ls -A /etc").stdout.split()) - before == set()
    assert tb.host_exec("app1", "stat -c %U /etc").stdout.strip() == "root"


def test_the_war_checksum_is_not_read_through_a_planted_link(base, full_testbed):
    tb, cluster = full_testbed, base
    # jw.war linked to a root-only file: its checksum (what root would read there) is shown in the diff.
    as_tomcat(tb, "ln -sf /etc/jcc-secret webapps/jw.war")
    secret_sha = hashlib.sha256(f"{SECRET}\n".encode()).hexdigest()
    dry = deploy(cluster, ["joget.war"], dry_run=True)
    assert dry.status == "succeeded", explain(dry)
    assert secret_sha not in shown_by(dry)
    dep = deploy(cluster, ["joget.war"])
    assert dep.status == "succeeded", explain(dep)
    assert secret_sha not in shown_by(dep)
    assert tb.host_exec("app1", "cat /etc/jcc-secret").stdout.strip() == SECRET
    assert tb.host_exec("app1", f"stat -c '%F %U' {BASE}/webapps/jw.war").stdout.strip() == "regular file tomcat"
