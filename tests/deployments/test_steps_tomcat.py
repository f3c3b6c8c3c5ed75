"""Tomcat (install from an uploaded archive, base, start/stop) and replication helpers."""

import subprocess
from types import SimpleNamespace

import pytest

from deployments import engine
from deployments.models import StepRun
from deployments.steps import StepContext, StepFailed, replication
from deployments.steps import tomcat_tools as tomcat
from nodes import ssh
from nodes.inventory import load_inventory, register_artifact
from nodes.models import Node
from nodes.ssh import Result
from tests.conftest import wait_for

S = StepRun.Status

DEBIAN_HOSTS = ("127.0.0.1\tlocalhost\n127.0.1.1\tapp1\n\n"
                "::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n")


# ---- /etc/hosts -----------------------------------------------------------------------------------


def test_debian_127_0_1_1_line_becomes_the_real_address_and_the_rest_stays():
    out = replication.fix_hosts(DEBIAN_HOSTS, "app1", "10.0.0.101")
    assert out == DEBIAN_HOSTS.replace("127.0.1.1\tapp1", "10.0.0.101\tapp1")
    assert replication.fix_hosts(out, "app1", "10.0.0.101") == out


def test_hosts_name_moves_off_other_lines_and_onto_an_existing_ip_line():
    text = ("# managed by hand\n127.0.0.1 localhost app1\n127.0.1.1 app1.example.com app1\n"
            "10.0.0.101 web  # the real one\n10.9.9.9 app1 old-alias\n")
    out = replication.fix_hosts(text, "app1.example.com", "10.0.0.101")
    assert out == ("# managed by hand\n127.0.0.1\tlocalhost\n"
                   "10.0.0.101 web app1.example.com app1  # the real one\n10.9.9.9\told-alias\n")
    assert replication.fix_hosts(out, "app1.example.com", "10.0.0.101") == out


def test_hosts_without_any_line_for_the_name_gets_one_after_localhost():
    out = replication.fix_hosts("127.0.0.1 localhost\n::1 localhost\n", "app2", "10.0.0.102")
    assert out == "127.0.0.1 localhost\n10.0.0.102\tapp2\n::1 localhost\n"


def test_member_addresses_from_tomcat_log_lines():
    lines = ("... SimpleTcpCluster.memberAdded Replication member added:[org.apache.catalina.tribes.membership."
             "MemberImpl[tcp://{10, 213, 5, 102}:4000,{10, 213, 5, 102},4000, alive=1120, securePort=-1]]\n") * 2
    assert replication.member_addresses(lines) == ["10.213.5.102:4000"]


# ---- multicast check ------------------------------------------------------------------------------

ADDR = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
        "2: eth0    inet 10.0.0.101/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever\n")
LINK_OK = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT\n"
           "2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT\n")


def _fake_ctx(link: str, route_ok: bool = True):
    # The node's answer to the one command (the real command runs on the testbed in the step tests).
    route = "multicast 228.0.0.4 dev eth0\nroute-exit=0\n" if route_ok else \
        "RTNETLINK answers: Network is unreachable\nroute-exit=2\n"

    def run(cmd, **kw):
        assert cmd.startswith("ip -o addr show && echo --- && ip -o link show && echo --- && { ip route get 228.0.0.4")
        return Result(0, f"{ADDR}---\n{link}---\n{route}", "")
    return SimpleNamespace(node=SimpleNamespace(name="app1"), run=run, log=lambda line: None)


def test_multicast_check_finds_the_interface_of_the_address():
    assert replication.interface_of(ADDR, "10.0.0.101") == "eth0"
    assert replication.link_flags(LINK_OK, "eth0") == {"BROADCAST", "MULTICAST", "UP", "LOWER_UP"}
    replication.check_multicast(_fake_ctx(LINK_OK), "10.0.0.101")
    with pytest.raises(StepFailed, match="no MULTICAST flag.*static membership"):
        replication.check_multicast(_fake_ctx(LINK_OK.replace("MULTICAST,", "")), "10.0.0.101")
    with pytest.raises(StepFailed, match="no route to the multicast group.*Network is unreachable"):
        replication.check_multicast(_fake_ctx(LINK_OK, route_ok=False), "10.0.0.101")
    with pytest.raises(StepFailed, match="No interface on app1 holds 10.0.0.9"):
        replication.check_multicast(_fake_ctx(LINK_OK), "10.0.0.9")


# ---- Tomcat from an uploaded archive, and the control functions -----------------------------------


def _tomcat_archive(tmp_path):
    """A Tomcat distribution-shaped archive (one apache-tomcat-X/ top directory) made from Debian's tomcat10."""
    archive = tmp_path / "apache-tomcat-10.1-test.tar.gz"
    subprocess.run(["tar", "-czhf", str(archive), "--transform", "s,^usr/share/tomcat10,apache-tomcat-10.1-test,",
                    "-C", "/", "usr/share/tomcat10"], check=True)
    return archive


def _deploy(cluster, steps):
    dep = engine.start(cluster, steps=steps)

    def done():
        dep.refresh_from_db()
        return not dep.is_active

    wait_for(done, timeout=120, interval=0.5, message=f"{dep} to finish")
    return dep


def _explain(dep):
    return "\n".join(f"{r.step} {r.node.name}: {r.status} {r.message[:300]}" for r in dep.runs.select_related("node"))


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_tomcat_from_the_uploaded_archive_with_its_own_base_starts_and_stops(full_testbed, celery_worker_process,
                                                                             tmp_path):
    tb = full_testbed
    cluster = load_inventory(dict(tb), replace=True)
    art = register_artifact(cluster, "tomcat_archive", _tomcat_archive(tmp_path))
    # Another install path and port than the Joget tests use: the two may share a testbed session.
    Node.objects.filter(cluster=cluster, is_app_server=True).update(
        catalina_home="", catalina_base="", install_path="/opt/archtest", http_port=8090)
    dep = _deploy(cluster, ["tomcat.install", "tomcat.base"])
    assert dep.status == "succeeded", _explain(dep)
    assert {r.status for r in dep.runs.all()} == {S.CHANGED}
    for host in ("app1", "app2"):
        out = tb.host_exec(host, "cat /opt/archtest/tomcat/.jcc-archive; ls /opt/archtest/tomcat/bin/catalina.sh; "
                                 "grep -c 'port=\"8090\"' /opt/archtest/tomcat-base/conf/server.xml; "
                                 "stat -c %U /opt/archtest/tomcat-base /opt/archtest/tomcat-base/conf/server.xml")
        assert out.stdout.split() == [art.sha256, "/opt/archtest/tomcat/bin/catalina.sh", "1", "tomcat", "tomcat"]
    again = _deploy(cluster, ["tomcat.install", "tomcat.base"])
    assert {r.status for r in again.runs.all()} == {S.OK}, _explain(again)

    node = Node.objects.get(cluster=cluster, name="app1")
    lines = []
    with ssh.open_connection(node) as conn:
        ctx = StepContext(cluster=cluster, node=node, conn=conn, log=lines.append,
                          emit=lambda stream, line: lines.append(line), connect=lambda other: conn)
        assert tomcat.running_pid(ctx) is None
        tomcat.start(ctx)
        pid = tomcat.running_pid(ctx)
        assert pid and "Tomcat started." in lines
        assert tomcat.http_check(ctx) == 404  # Tomcat answers; this base has no ROOT application
        owner = tb.host_exec("app1", f"ps -o user= -p {pid}").stdout.strip()
        assert owner == "tomcat"
        tomcat.stop(ctx)
        assert tomcat.running_pid(ctx) is None
        assert tomcat.http_check(ctx) == 0
        tomcat.stop(ctx)  # stopping a stopped Tomcat is fine
    assert "Tomcat is not running on app1." in lines
