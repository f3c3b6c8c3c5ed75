"""Step 1 (shared directory): rendering without SSH, then the steps on the full testbed.

The testbed shares wflow home by a bind mount (kernel NFS does not work in this sandbox), so:
existing mode is tested for real; managed mode by its dry run (the planned /etc/exports and
/etc/fstab diffs) and by applying the mount step, whose fstab entry is written and whose real
`mount` fails with the reason. The export step is never applied here: it would `apt-get install
nfs-kernel-server` inside a host whose /usr is this machine's.
"""

from pathlib import Path

import pytest

from deployments import engine
from deployments.models import LogLine, StepRun
from deployments.steps import shared_directory as sd
from nodes.inventory import load_inventory
from nodes.models import Node, SharedDirectory
from tests.conftest import wait_for

S = StepRun.Status
MANAGED_HOME = "/opt/joget/shared/wflow"  # the guide's mount point; the testbed's own wflow home is a bind mount


# -- pure functions ----------------------------------------------------------------------------------

def test_exports_line_is_added_once_and_other_lines_are_kept():
    current = "# /etc/exports: the access control list\n/srv/other 10.0.0.0/8(ro)\n"
    out = sd.render_exports(current, "/export/wflow", "10.1.2.3/24")
    assert out == current + f"{sd.MARK}\n/export/wflow 10.1.2.0/24(rw,sync,no_subtree_check)\n"
    assert sd.render_exports(out, "/export/wflow", "10.1.2.0/24") == out
    assert sd.render_exports(None, "/export/wflow", "10.1.2.0/24").startswith(sd.MARK)


def test_exports_line_for_our_path_is_fixed_in_place_keeping_other_clients():
    current = "/export/wflow backup(ro) 10.1.2.0/24(rw,async)\n/export/wflow 10.9.9.0/24(rw)\n/x y(rw)\n"
    assert sd.render_exports(current, "/export/wflow", "10.1.2.0/24") == \
        "/export/wflow backup(ro) 10.1.2.0/24(rw,sync,no_subtree_check)\n/x y(rw)\n"


def test_fstab_entry_is_added_or_replaced_for_the_mount_point():
    base = "# UNCONFIGURED FSTAB FOR BASE SYSTEM\nUUID=abc / ext4 errors=remount-ro 0 1\n"
    out = sd.render_fstab(base, "10.0.0.5:/export/wflow", "/opt/joget/wflow")
    assert out == base + f"{sd.MARK}\n10.0.0.5:/export/wflow /opt/joget/wflow nfs defaults,_netdev 0 0\n"
    assert sd.render_fstab(out, "10.0.0.5:/export/wflow", "/opt/joget/wflow") == out
    moved = sd.render_fstab(out, "10.0.0.6:/export/wflow", "/opt/joget/wflow")
    assert moved.count("/opt/joget/wflow") == 1 and "10.0.0.6:/export/wflow /opt/joget/wflow nfs" in moved


def test_mountinfo_and_exportfs_output_are_read():
    info = ("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
            "40 22 0:50 / /opt/joget/wflow rw - nfs4 10.0.0.5:/export/wflow rw,vers=4.2\n"
            "41 22 0:51 / /opt/joget/my\\040dir rw - tmpfs jcc rw\n"
            "42 40 0:52 / /opt/joget/wflow rw - tmpfs other rw\n")
    assert sd.mount_at(info, "/opt/joget/wflow") == ("other", "tmpfs")  # the topmost one
    assert sd.mount_at(info, "/opt/joget/my dir") == ("jcc", "tmpfs")
    assert sd.mount_at(info, "/opt") is None
    exportfs = ("/export/wflow\n\t\t10.1.2.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,secure)\n"
                "/srv  host(ro)\n")
    assert sd.exported_to(exportfs, "/export/wflow", "10.1.2.0/24")
    assert not sd.exported_to(exportfs, "/export/wflow", "10.1.3.0/24")
    assert not sd.exported_to(exportfs, "/srv", "10.1.2.0/24")


def test_install_command_names_the_package_and_needs_apt():
    cmd = sd.apt_install("nfs-common")
    assert "apt-get install -y -q nfs-common" in cmd and "apt-get not found" in cmd


# -- on the full testbed -----------------------------------------------------------------------------

def finished(dep, timeout=120):
    def done():
        dep.refresh_from_db()
        return not dep.is_active
    wait_for(done, timeout=timeout, interval=0.2, message=f"{dep} to finish")
    return dep


def runs(dep, step):
    return {(r.node.name if r.node_id else "cluster"): r for r in dep.runs.filter(step=step).select_related("node")}


def deploy(cluster, steps, **kwargs):
    return finished(engine.start(cluster, steps=steps, **kwargs))


@pytest.fixture
def cluster(full_testbed, celery_worker_process):
    inv = dict(full_testbed)
    inv["artifacts"] = []
    c = load_inventory(inv, replace=True)
    assert SharedDirectory.objects.get(cluster=c).mode == "existing"
    return c


@pytest.fixture
def managed(cluster, full_testbed):
    """Managed NFS with the db host as file server, mounted at the guide's path (a fresh one)."""
    Node.objects.filter(cluster=cluster, name="db").update(is_file_server=True)
    SharedDirectory.objects.filter(cluster=cluster).update(mode="managed", node=Node.objects.get(cluster=cluster,
                                                                                                 name="db"))
    cluster.wflow_home = MANAGED_HOME
    cluster.save()
    fstab = {h: full_testbed.host_exec(h, "cat /etc/fstab").stdout for h in full_testbed.app_servers}
    yield cluster
    for host, text in fstab.items():
        full_testbed.host_exec(host, "cat > /etc/fstab; rm -f /etc/fstab.bak-*; rmdir -p /opt/joget/shared/wflow "
                                     "2>/dev/null; true", input=text)


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_existing_share_verifies_and_leaves_nothing_behind(cluster, full_testbed):
    dep = deploy(cluster, ["shared_directory.export", "shared_directory.mount", "shared_directory.verify"])
    assert dep.status == "succeeded"
    assert list(dep.runs.values_list("step", "status")) == [("shared_directory.verify", S.OK)]  # managed steps left out
    texts = list(LogLine.objects.filter(run__deployment=dep).values_list("text", flat=True))
    assert "[app2] read the tokens of app1, app2" in texts
    assert any("is one shared, writable directory" in t for t in texts)
    for host in full_testbed.app_servers:
        left = full_testbed.host_exec(host, f"ls -A /opt/joget/wflow | grep '^{sd.CHECK_FILE_PREFIX}' || true").stdout
        assert left == "", f"token files left on {host}"


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_verify_fails_clearly_when_one_app_server_has_another_directory(cluster, full_testbed):
    tb = full_testbed
    mounted = tb.host_exec("app2", "mount -t tmpfs -o size=1m,mode=755 jcc-not-shared /opt/joget/wflow")
    assert mounted.returncode == 0, mounted.stderr
    try:
        dep = deploy(cluster, ["shared_directory.verify"])
        run = runs(dep, "shared_directory.verify")["cluster"]
        assert run.status == S.FAILED
        assert "do not share one directory at /opt/joget/wflow" in run.message
        assert "app2 does not see the token written by app1" in run.message
        assert "app1 does not see the token written by app2" in run.message
        assert "app2: jcc-not-shared (tmpfs)" in run.message
        assert "findmnt" in run.hint
    finally:
        tb.host_exec("app2", "umount /opt/joget/wflow")
    assert tb.host_exec("app2", "ls -A /opt/joget/wflow | grep jcc-share || true").stdout == ""
    assert deploy(cluster, ["shared_directory.verify"]).status == "succeeded"


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_managed_dry_run_shows_the_exports_and_fstab_diffs(managed, full_testbed):
    tb = full_testbed
    subnet = full_testbed["shared_directory"]["client_subnet"]
    source = f"{tb.address('db')}:/export/wflow"
    dep = deploy(managed, ["shared_directory.export", "shared_directory.mount", "shared_directory.verify"],
                 dry_run=True)
    export = runs(dep, "shared_directory.export")["db"]
    assert export.status == S.CHANGED
    by_path = {c["path"]: c["diff"] for c in export.changes if c["path"]}
    assert by_path["/etc/exports"].startswith("--- /dev/null")
    assert f"+/export/wflow {subnet}(rw,sync,no_subtree_check)" in by_path["/etc/exports"]
    described = [c["description"] for c in export.changes]
    assert "create /export/wflow owned by nobody:nogroup" in described
    assert "start the NFS server and re-export (exportfs -ra)" in described
    for host in ("app1", "app2"):
        mount = runs(dep, "shared_directory.mount")[host]
        fstab = next(c["diff"] for c in mount.changes if c["path"] == "/etc/fstab")
        assert f"+{source} {MANAGED_HOME} nfs defaults,_netdev 0 0" in fstab
        assert " # UNCONFIGURED FSTAB FOR BASE SYSTEM" in fstab  # the existing line is kept, as context
        assert [c["description"] for c in mount.changes if c["description"] != "install nfs-common"][1:] == [
            f"create the mount point {MANAGED_HOME}", f"mount {source} on {MANAGED_HOME}"]
        assert "nfs" not in tb.host_exec(host, "cat /etc/fstab").stdout, "a dry run changed /etc/fstab"
    assert tb.host_exec("db", "test -e /etc/exports || test -e /export/wflow; echo $?").stdout.strip() == "1"


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_managed_mount_writes_fstab_then_fails_clearly_without_kernel_nfs(managed, full_testbed):
    tb = full_testbed
    source = f"{tb.address('db')}:/export/wflow"
    dep = deploy(managed, ["shared_directory.mount"])
    kernel_nfs = "nfs" in Path("/proc/filesystems").read_text()
    for host in ("app1", "app2"):
        run = runs(dep, "shared_directory.mount")[host]
        assert run.status == S.FAILED
        assert run.message.startswith(f"`mount {MANAGED_HOME}` failed on {host}: mount.nfs")
        if not kernel_nfs:
            assert "this kernel has no NFS client support" in run.message
        assert "choose mode 'existing'" in run.hint
        # What could be done was done: the entry survives a reboot, the mount point exists.
        assert f"{source} {MANAGED_HOME} nfs defaults,_netdev 0 0" in tb.host_exec(host, "cat /etc/fstab").stdout
        assert tb.host_exec(host, f"test -d {MANAGED_HOME}").returncode == 0
    again = deploy(managed, ["shared_directory.mount"], dry_run=True)
    assert [c["description"] for c in runs(again, "shared_directory.mount")["app1"].changes] == [
        f"mount {source} on {MANAGED_HOME}"]


# -- the export step's probe, on a simulated file server (the testbed cannot run kernel NFS) ----------------

class FakeConn:
    """Answers the step's commands from canned output; records what it was asked."""

    def __init__(self, facts: str, files: dict[str, bytes]):
        self.facts, self.files, self.commands = facts, files, []

    def run(self, command, timeout=None, emit=None, **kwargs):
        from nodes.ssh import Result

        self.commands.append(command)
        return Result(0, self.facts if "exportfs=1" in command else "", "")

    def read_file(self, path):
        return self.files.get(path)


def probe_export(facts: str, exports: str | None):
    from deployments.steps.base import StepContext
    from nodes.models import Cluster

    cluster, made = Cluster.objects.get_or_create(name="nfs")
    if made:
        node = Node.objects.create(cluster=cluster, name="files", address="10.1.2.30", is_file_server=True)
        SharedDirectory.objects.create(cluster=cluster, mode="managed", node=node, client_subnet="10.1.2.0/24")
    node = Node.objects.get(cluster=cluster, name="files")
    conn = FakeConn(facts, {"/etc/exports": exports.encode()} if exports is not None else {})
    ctx = StepContext(cluster=cluster, node=node, conn=conn, log=lambda m: None, emit=lambda s, t: None,
                      connect=lambda n: conn)
    return [c.description for c in sd.Export().probe(ctx)], ctx


EXPORTED = ("exportfs=1\nnogroup=1\nowner=nobody:nogroup\nnfsd=8\n"
            "exported=/export/wflow\n"
            "exported=\t\t10.1.2.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,secure,root_squash)\n")
EXPORTS = f"{sd.MARK}\n/export/wflow 10.1.2.0/24(rw,sync,no_subtree_check)\n"


@pytest.mark.django_db
def test_export_probe_finds_nothing_to_do_on_a_serving_file_server():
    planned, _ = probe_export(EXPORTED, EXPORTS)
    assert planned == []


@pytest.mark.django_db
def test_export_probe_plans_only_what_differs():
    planned, _ = probe_export(EXPORTED.replace("nfsd=8", "nfsd=0"), EXPORTS)
    assert planned == ["start the NFS server and re-export (exportfs -ra)"]
    planned, _ = probe_export(EXPORTED.replace("owner=nobody:nogroup", "owner=root:root"), EXPORTS)
    assert planned == ["create /export/wflow owned by nobody:nogroup"]
    planned, _ = probe_export(EXPORTED, "/srv 10.0.0.0/8(ro)\n")
    assert planned == ["export /export/wflow to 10.1.2.0/24 in /etc/exports",
                       "start the NFS server and re-export (exportfs -ra)"]


@pytest.mark.django_db
def test_export_step_is_left_out_in_existing_mode_even_when_named():
    _, ctx = probe_export(EXPORTED, EXPORTS)
    SharedDirectory.objects.filter(cluster=ctx.cluster).update(mode="existing")
    assert sd.Export().targets(ctx.cluster) == [] and sd.Mount().targets(ctx.cluster) == []
