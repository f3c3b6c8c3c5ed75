"""The one file reader and writer (NodeConnection.read_file / write_file), on real
testbed hosts: root never follows a symlink that the service user planted in a directory it can write."""

import hashlib
import io

import pytest

from deployments.steps import Step, StepContext
from deployments.steps import database as dbstep
from nodes import ssh
from nodes.inventory import load_inventory

pytestmark = [pytest.mark.light, pytest.mark.django_db(transaction=True)]

SVC = "/opt/jcc-files/svc"  # a directory of the service user (tomcat), like Tomcat's base
SECRET = "TOPSECRET-only-root-reads-this"


@pytest.fixture
def node(light_testbed):
    inv = dict(light_testbed)
    inv["artifacts"] = []
    cluster = load_inventory(inv, replace=True)
    light_testbed.host_exec("app1", f"rm -rf /opt/jcc-files /etc/jcc-victim* /etc/jcc-secret; "
                                    f"install -d -o root -g root -m 0755 /opt/jcc-files; "
                                    f"install -d -o tomcat -g tomcat -m 0755 {SVC}; "
                                    f"(umask 077; echo {SECRET} > /etc/jcc-secret)")
    yield cluster.nodes.get(name="app1")
    light_testbed.host_exec("app1", "rm -rf /opt/jcc-files /etc/jcc-victim* /etc/jcc-secret")


def as_tomcat(tb, command: str) -> None:
    r = tb.host_exec("app1", ["runuser", "-u", "tomcat", "--", "sh", "-c", command])
    assert r.returncode == 0, r.stderr


def on_node(tb, command: str) -> str:
    return tb.host_exec("app1", command).stdout.strip()


def test_a_symlink_planted_by_the_service_user_is_replaced_never_written_through(node, light_testbed):
    tb = light_testbed
    # Every name the old writers used beside the file, and the file itself.
    as_tomcat(tb, f"ln -s /etc/jcc-victim-file {SVC}/catalina.pid; "
                  f"ln -s /etc/jcc-victim-tmp {SVC}/catalina.pid.jcc-tmp; "
                  f"ln -s /etc/jcc-victim-bak {SVC}/catalina.pid.bak-$(date +%Y%m%d%H%M%S)")
    with ssh.open_connection(node) as conn:
        conn.write_file(f"{SVC}/catalina.pid", b"4242\n", owner="tomcat:tomcat")
    assert on_node(tb, "ls /etc | grep -c jcc-victim || true") == "0"
    assert on_node(tb, f"stat -c '%F %U:%G %a' {SVC}/catalina.pid; cat {SVC}/catalina.pid").split("\n") == [
        "regular file tomcat:tomcat 644", "4242"]
    # What was there (the symlink) is kept as a backup with a name nobody could guess in advance.
    backups = on_node(tb, f"ls {SVC} | grep '^catalina.pid.bak-' | grep -vx 'catalina.pid.bak-[0-9]*'")
    assert len(backups.split()) == 1 and len(backups.rsplit("-", 1)[1]) == 6


def test_a_file_the_service_user_symlinked_to_a_root_only_file_is_not_read(node, light_testbed):
    as_tomcat(light_testbed, f"ln -s /etc/jcc-secret {SVC}/server.xml")
    with ssh.open_connection(node) as conn:
        assert conn.read_file(f"{SVC}/server.xml") is None
        assert conn.read_file("/etc/jcc-secret") == f"{SECRET}\n".encode()  # root's own directory: read as root


def test_root_writes_nothing_as_root_below_a_directory_the_service_user_controls(node, light_testbed):
    tb = light_testbed
    tb.host_exec("app1", f"install -d -o root -g root -m 0755 {SVC}/conf")  # root's, but inside tomcat's
    with ssh.open_connection(node) as conn:
        with pytest.raises(ssh.UnsafePath, match="refusing to act in it as root"):
            conn.write_file(f"{SVC}/conf/server.xml", b"<Server/>")
        with pytest.raises(ssh.UnsafePath):
            conn.read_file(f"{SVC}/conf/server.xml")
        with pytest.raises(ssh.RemoteFileError, match="cannot belong to root"):
            conn.write_file(f"{SVC}/setenv.sh", b"x", owner="root")
    assert on_node(tb, f"ls -A {SVC}/conf; ls -A {SVC}") == "conf"


def test_a_large_upload_is_checked_before_it_replaces_the_file(node, light_testbed):
    data = b"war" * 100_000
    with ssh.open_connection(node) as conn:
        with pytest.raises(ssh.RemoteFileError, match="does not have sha256"):
            conn.write_file(f"{SVC}/jw.war", io.BytesIO(data), owner="tomcat", sha256="0" * 64)
        conn.write_file(f"{SVC}/jw.war", io.BytesIO(data), owner="tomcat", backup=False,
                        sha256=hashlib.sha256(data).hexdigest())
    assert on_node(light_testbed, f"ls -A {SVC}; sha256sum < {SVC}/jw.war").split()[:2] == [
        "jw.war", hashlib.sha256(data).hexdigest()]
    # Nothing staged is left behind in /tmp.
    assert on_node(light_testbed, "ls -d /tmp/jcc-stage-* 2>/dev/null | wc -l") == "0"


def test_my_cnf_keeps_its_mode_and_owner_when_the_include_line_is_added(node, light_testbed):
    tb = light_testbed
    tb.host_exec("app1", "install -d -m 0755 /opt/jcc-files/mysql; printf '[client]\\npassword=x\\n' > "
                         "/opt/jcc-files/mysql/my.cnf; chown root:mysql /opt/jcc-files/mysql/my.cnf 2>/dev/null || "
                         "chown root:adm /opt/jcc-files/mysql/my.cnf; chmod 0600 /opt/jcc-files/mysql/my.cnf")
    before = on_node(tb, "stat -c '%a %U:%G' /opt/jcc-files/mysql/my.cnf")
    with ssh.open_connection(node) as conn:
        ctx = StepContext(cluster=node.cluster, node=node, conn=conn, log=lambda text: None,
                          emit=lambda stream, text: None, connect=lambda other: conn)
        change = dbstep.Server()._include_change(ctx, "/opt/jcc-files/mysql/conf.d", "/opt/jcc-files/mysql/my.cnf")
        Step.apply(dbstep.Server(), ctx, [change])
    assert before.startswith("600 ")
    assert on_node(tb, "stat -c '%a %U:%G' /opt/jcc-files/mysql/my.cnf") == before
    assert "!includedir /opt/jcc-files/mysql/conf.d/" in on_node(tb, "cat /opt/jcc-files/mysql/my.cnf")
