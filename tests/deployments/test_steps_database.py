"""Step 2 (shared database): SQL and config rendering without SSH, then the steps on the full testbed."""

from pathlib import Path

import pytest
from django.core.files import File

from deployments import engine
from deployments.models import LogLine, StepRun
from deployments.steps import database as d
from deployments.steps import mysql as m
from nodes.inventory import load_inventory
from nodes.models import Artifact, SharedDatabase
from tests.conftest import wait_for

S = StepRun.Status
FIXTURE = Path(__file__).parent / "fixtures" / "small_schema.sql"
REFERENCE = Path("/work/shared/joget-reference/jwdb-mysql.sql")
DB_STEPS = ["database.server", "database.schema", "database.verify"]
AWKWARD = "n3w 'pw' \"q\" $HOME `id` ; # \\ back\\slash\\"


# -- pure functions ----------------------------------------------------------------------------------

def test_sql_string_escapes_backslash_and_quote():
    assert m.sql_string("a'b\\c") == "'a''b\\\\c'"
    assert m.sql_string('$x "y" `z`') == "'$x \"y\" `z`'"
    assert m.account("joget") == "'joget'@'%'"
    assert m.sql_ident("jw`db") == "`jw``db`"


def test_redacted_sql_hides_the_password_literal():
    sql = m.create_user_sql("joget", "a'b")
    assert m.mask_sql(sql, "a'b") == "CREATE USER 'joget'@'%' IDENTIFIED BY '********';"


def test_option_file_escapes_for_mysys():
    assert m.option_value('a"b\\c #d') == '"a\\"b\\\\c #d"'
    assert m.client_option_file("p w") == '[client]\npassword="p w"\n'


def test_native_password_hash_matches_the_servers():
    # SELECT PASSWORD('password') on MySQL 5.x / MariaDB.
    assert m.native_password_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


@pytest.mark.parametrize("version, statement", [
    ("5.5.62-log", "SET PASSWORD FOR 'joget'@'%' = PASSWORD('x''y');"),
    ("5.7.5-m15", "SET PASSWORD FOR 'joget'@'%' = PASSWORD('x''y');"),
    ("5.7.44", "ALTER USER 'joget'@'%' IDENTIFIED BY 'x''y';"),
    ("8.0.36-0ubuntu0.22.04.1", "ALTER USER 'joget'@'%' IDENTIFIED BY 'x''y';"),
    ("10.1.48-MariaDB-0+deb9u2", "SET PASSWORD FOR 'joget'@'%' = PASSWORD('x''y');"),
    ("10.11.19-MariaDB-0+deb12u1", "ALTER USER 'joget'@'%' IDENTIFIED BY 'x''y';"),
])
def test_password_change_syntax_follows_the_version(version, statement):
    assert m.password_sql(version, "joget", "x'y") == statement


def test_create_and_grant_work_from_mysql_55_to_8():
    assert m.create_user_sql("joget", "p") == "CREATE USER 'joget'@'%' IDENTIFIED BY 'p';"
    grant = m.grant_sql("jwdb", "joget")
    assert grant == "GRANT ALL PRIVILEGES ON `jwdb`.* TO 'joget'@'%';"
    assert "IDENTIFIED" not in grant  # MySQL 8 refuses IDENTIFIED BY inside GRANT


def test_schema_tables_of_the_fixture_and_the_reference():
    assert m.schema_tables(FIXTURE.read_text()) == {"dir_user", "dir_group", "app_app", "wf_audit_trail"}
    if REFERENCE.exists():
        assert len(m.schema_tables(REFERENCE.read_text())) == 114


def test_defaults_and_listening_sockets_are_parsed():
    line = "--user=mysql --bind-address=127.0.0.1 --port=3306 --bind_address=0.0.0.0 --datadir=/var/lib/mysql"
    assert d.parse_defaults(line)["bind-address"] == "0.0.0.0"
    tcp = ["0: 0100007F:0CEA 00000000:0000 0A 0:0 0 107", "1: 00000000:0CEA 00000000:0000 06 0:0 0 0",
           "2: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0 0 0",
           "sl local_address rem_address st"]
    assert d.listening(tcp, 3306) == {"127.0.0.1"}
    assert d.listening(tcp, 22) == {"::"}
    assert not d.ServerFacts(tcp=tcp).listens_as_planned(3306)


def test_conf_file_lands_in_the_drop_in_directory_read_last():
    assert d.conf_path(["/etc/mysql/mariadb.conf.d", "/etc/mysql/conf.d"], "mariadb", "/etc/mysql/mariadb.cnf") \
        == "/etc/mysql/mariadb.conf.d/60-joget-cluster.cnf"
    assert d.conf_path(["/etc/mysql/mysql.conf.d"], "mysql", "") == "/etc/mysql/mysql.conf.d/zz-joget-cluster.cnf"
    assert d.conf_path([], "mariadb", "/etc/mysql/my.cnf") == "/etc/mysql/mariadb.conf.d/60-joget-cluster.cnf"
    assert d.conf_path([], "mariadb", "/etc/my.cnf") == "/etc/my.cnf.d/60-joget-cluster.cnf"
    assert d.render_conf(3307).endswith("[mysqld]\nbind-address = 0.0.0.0\nport = 3307\n")
    dirs, files = d.includes("[x]\n!includedir /etc/mysql/conf.d/\n !include /etc/a.cnf\n#!includedir /no\n")
    assert dirs == {"/etc/mysql/conf.d"} and files == ["/etc/a.cnf"]


def test_service_control_prefers_systemd_then_a_complete_init_script_then_mysqld_safe():
    f = d.ServerFacts(server="/usr/sbin/mariadbd", systemd=True, unit="mariadb", initd="mariadb")
    assert d.service_command("restart", f) == "systemctl restart mariadb"
    f = d.ServerFacts(server="/usr/sbin/mariadbd", initd="mariadb")
    assert d.service_command("start", f).startswith('l=$(mktemp); /etc/init.d/mariadb start </dev/null >"$l"')
    f.initd_missing = ["/etc/mysql/debian.cnf"]
    direct = d.service_command("restart", f)
    assert "setsid mysqld_safe </dev/null >/dev/null 2>&1 &" in direct and "shutdown" in direct
    assert "shutdown" not in d.service_command("start", f)


def test_datadir_initialization_per_flavour():
    f = d.ServerFacts(server="/usr/sbin/mariadbd", version="mariadbd  Ver 10.11.19-MariaDB", installdb=[
        "mariadb-install-db", "mysql_install_db"], defaults={"datadir": "/srv/my sql"})
    assert "mariadb-install-db --user=mysql --datadir='/srv/my sql' --skip-test-db" in d.init_datadir_command(f)
    f = d.ServerFacts(server="/usr/sbin/mysqld", version="mysqld  Ver 8.0.36 for Linux", installdb=[])
    assert "/usr/sbin/mysqld --initialize-insecure --user=mysql --datadir=/var/lib/mysql" in d.init_datadir_command(f)
    f = d.ServerFacts(server="/usr/sbin/mysqld", version="mysqld  Ver 5.5.62", installdb=["mysql_install_db"])
    assert "mysql_install_db --user=mysql" in d.init_datadir_command(f)


def test_client_errors_are_explained():
    msg = m.explain_client_error("ERROR 2002 (HY000): Can't connect to server on '10.0.0.5' (115)\n", "app1")
    assert msg.startswith("app1: ERROR 2002") and "bind-address" in msg
    assert "GRANT ALL" in m.explain_client_error("ERROR 1142 (42000) at line 6: ALTER command denied", "x")
    verify = d.Verify()
    assert "(alter failed)" in verify._failure("ERROR 1142 (42000) at line 6: ALTER command denied to user", "w")
    sql = verify.scratch_sql("app-1").splitlines()
    assert sql[5] == "ALTER TABLE `jcc_probe_app_1` ADD COLUMN w INT NULL;"  # line 6, as the error counts


# -- on the full testbed -----------------------------------------------------------------------------

def finished(dep, timeout=180):
    def done():
        dep.refresh_from_db()
        return not dep.is_active
    wait_for(done, timeout=timeout, interval=0.2, message=f"{dep} to finish")
    return dep


def runs(dep, step):
    return {(r.node.name if r.node_id else "cluster"): r for r in dep.runs.filter(step=step).select_related("node")}


def statuses(dep):
    return {(r.step, r.node.name if r.node_id else "cluster"): r.status for r in dep.runs.select_related("node")}


def deploy(cluster, steps, **kwargs):
    return finished(engine.start(cluster, steps=steps, **kwargs))


def set_schema(cluster, path: Path):
    Artifact.objects.filter(cluster=cluster, kind=Artifact.Kind.SCHEMA_SQL).delete()
    with path.open("rb") as fh:
        size, digest = Artifact.digest(fh)
        Artifact.objects.create(cluster=cluster, kind=Artifact.Kind.SCHEMA_SQL, original_name=path.name, size=size,
                                sha256=digest, file=File(fh, name=path.name))


def sql_on_db(tb, sql):
    r = tb.host_exec("db", ["mariadb", "-N", "-B", "-e", sql])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def login_from(tb, host, user, password, sql="SELECT CURRENT_USER()"):
    """The admin's own check, independent of the step's quoting: the password in MYSQL_PWD."""
    return tb.host_exec(host, ["env", f"MYSQL_PWD={password}", "mariadb", "-N", "-B", "-h", tb.address("db"),
                               "-u", user, "jwdb", "-e", sql])


def reset_db_host(tb):
    """Back to the empty database host the testbed starts with (other tests may have set it up)."""
    tb.host_exec("db", "mariadb-admin shutdown 2>/dev/null; p=$(cat /run/mysqld/mysqld.pid 2>/dev/null) && "
                       "kill \"$p\" 2>/dev/null; rm -rf /var/lib/mysql/* /etc/mysql/mariadb.conf.d "
                       "/etc/mysql/my.cnf.bak-*; true")
    tb.host_exec("db", "cat > /etc/mysql/my.cnf", input=Path("/etc/mysql/my.cnf").read_text())


@pytest.fixture
def cluster(full_testbed, celery_worker_process):
    inv = dict(full_testbed)
    inv["artifacts"] = [{"kind": "schema_sql", "path": str(FIXTURE)}]
    return load_inventory(inv, replace=True)


@pytest.fixture
def deployed(cluster, full_testbed):
    """The database layer as the plan leaves it (quick when it is already there)."""
    dep = deploy(cluster, DB_STEPS)
    assert dep.status == "succeeded", statuses(dep)
    return cluster


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_empty_db_host_to_verified_from_both_app_servers_then_all_ok(cluster, full_testbed):
    tb = full_testbed
    reset_db_host(tb)
    assert tb.host_exec("db", "ls -A /var/lib/mysql").stdout == ""
    password = SharedDatabase.objects.get(cluster=cluster).password
    assert "'" in password and " " in password and "$" in password

    dry = deploy(cluster, DB_STEPS, dry_run=True)
    server = runs(dry, "database.server")["db"]
    planned = [c["description"] for c in server.changes]
    assert any("initialize the data directory" in p for p in planned) and "start the server" in planned
    conf = next(c for c in server.changes if c["path"].endswith("60-joget-cluster.cnf"))
    assert "+bind-address = 0.0.0.0" in conf["diff"]
    include = next(c for c in server.changes if c["path"] == "/etc/mysql/my.cnf")
    assert "+!includedir /etc/mysql/mariadb.conf.d/" in include["diff"]
    schema = [c["description"] for c in runs(dry, "database.schema")["db"].changes]
    assert schema[:2] == ["create the database jwdb", "load the Joget schema small_schema.sql (4 tables) into jwdb"]
    assert tb.host_exec("db", "ls -A /var/lib/mysql").stdout == "", "a dry run changed the node"

    dep = deploy(cluster, DB_STEPS)
    assert dep.status == "succeeded", {k: (v, runs(dep, k[0])[k[1]].message) for k, v in statuses(dep).items()}
    assert statuses(dep) == {("database.server", "db"): S.CHANGED, ("database.schema", "db"): S.CHANGED,
                             ("database.verify", "app1"): S.OK, ("database.verify", "app2"): S.OK}
    texts = list(LogLine.objects.filter(run__deployment=dep).values_list("text", flat=True))
    assert any("create, insert, update, alter, select, delete and drop all worked" in t for t in texts)
    assert "SQL: CREATE USER 'joget'@'%' IDENTIFIED BY '********';" in texts
    # What an admin checks: the server listens on the network, the schema is there, joget logs in remotely.
    assert "bind-address = 0.0.0.0" in tb.host_exec("db", "cat /etc/mysql/mariadb.conf.d/60-joget-cluster.cnf").stdout
    assert sql_on_db(tb, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='jwdb'") == "4"
    assert sql_on_db(tb, "SELECT firstName FROM jwdb.dir_user") == "O'Admin; \"x\" $HOME"
    for host in ("app1", "app2"):
        r = login_from(tb, host, "joget", password)
        assert r.returncode == 0 and r.stdout.strip() == "joget@%", r.stderr
    assert sql_on_db(tb, "SHOW TABLES FROM jwdb LIKE 'jcc_probe%'") == ""
    for host in ("db", "app1", "app2"):
        assert tb.host_exec(host, "ls /tmp | grep jcc-sql || true").stdout == "", f"temporary files left on {host}"
    # The password, or any piece of it, never reached a log line (masking covers only the whole string).
    pieces = [p for p in password.replace("'", " ").replace('"', " ").replace("$", " ").split() if len(p) > 3]
    assert pieces and not [t for t in texts if any(p in t for p in pieces)]

    again = deploy(cluster, DB_STEPS)
    assert set(statuses(again).values()) == {S.OK}, statuses(again)


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_changed_password_is_applied_and_verified(deployed, full_testbed):
    tb = full_testbed
    db = SharedDatabase.objects.get(cluster=deployed)
    old = db.password
    db.password = AWKWARD
    db.save()
    try:
        dep = deploy(deployed, ["database.schema", "database.verify"])
        assert dep.status == "succeeded", statuses(dep)
        schema = runs(dep, "database.schema")["db"]
        assert schema.status == S.CHANGED
        assert schema.message == "set the password of joget@'%' (it differs from the console's)"
        assert {r.status for r in runs(dep, "database.verify").values()} == {S.OK}
        assert login_from(tb, "app1", "joget", AWKWARD).stdout.strip() == "joget@%"
        assert login_from(tb, "app2", "joget", old).returncode != 0
        again = deploy(deployed, ["database.schema", "database.verify"])
        assert set(statuses(again).values()) == {S.OK}
    finally:
        db.password = old
        db.save()
        assert deploy(deployed, ["database.schema"]).status == "succeeded"


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_restart_through_a_complete_init_script(deployed, full_testbed):
    """With Debian's helper files present, /etc/init.d/mariadb does the restart (the testbed's stripped
    /etc/mysql lacks them, so the other tests exercise mysqld_safe)."""
    tb = full_testbed
    tb.host_exec("db", "printf '[client]\\nuser=root\\nsocket=/run/mysqld/mysqld.sock\\n' > /etc/mysql/debian.cnf; "
                       "chmod 600 /etc/mysql/debian.cnf; printf '#!/bin/sh\\nexit 0\\n' > /etc/mysql/debian-start; "
                       "chmod 755 /etc/mysql/debian-start; "
                       "sed -i 's/^port = .*/port = 3306 /' /etc/mysql/mariadb.conf.d/60-joget-cluster.cnf")
    try:
        dep = deploy(deployed, ["database.server", "database.verify"])
        assert dep.status == "succeeded", statuses(dep)
        server = runs(dep, "database.server")["db"]
        assert server.status == S.CHANGED and "restart the server" in server.message
        texts = list(LogLine.objects.filter(run=server).values_list("text", flat=True))
        assert any(t.startswith("$ l=$(mktemp); /etc/init.d/mariadb restart") for t in texts)
        assert any("Starting MariaDB database server" in t for t in texts)
    finally:
        tb.host_exec("db", "rm -f /etc/mysql/debian.cnf /etc/mysql/debian-start")


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not REFERENCE.exists(), reason=f"{REFERENCE} is not on this machine")
def test_reference_schema_loads_114_tables_once(deployed, full_testbed):
    tb = full_testbed
    SharedDatabase.objects.filter(cluster=deployed).update(name="jwdb_ref")
    set_schema(deployed, REFERENCE)
    sql_on_db(tb, "DROP DATABASE IF EXISTS jwdb_ref")
    try:
        dep = deploy(deployed, ["database.schema", "database.verify"])
        assert dep.status == "succeeded", statuses(dep)
        assert "load the Joget schema jwdb-mysql.sql (114 tables)" in runs(dep, "database.schema")["db"].message
        assert sql_on_db(tb, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='jwdb_ref'") == "114"
        again = deploy(deployed, ["database.schema"])
        assert set(statuses(again).values()) == {S.OK}
    finally:
        sql_on_db(tb, "DROP DATABASE IF EXISTS jwdb_ref")


# -- the server step's probe on simulated nodes (systemd and MySQL layouts the testbed does not have) ------

class FakeConn:
    def __init__(self, facts: str, files: dict[str, str]):
        self.facts, self.files = facts, {k: v.encode() for k, v in files.items()}

    def run(self, command, timeout=None, emit=None, **kwargs):
        from nodes.ssh import Result

        return Result(0, self.facts if "--print-defaults" in command else "", "")

    def read_file(self, path):
        return self.files.get(path)


def probe_server(facts: str, files: dict[str, str], engine_name="mariadb"):
    from deployments.steps.base import StepContext
    from nodes.models import Cluster, Node

    cluster = Cluster.objects.create(name="dbsim")
    node = Node.objects.create(cluster=cluster, name="db", address="10.1.2.20", is_database=True)
    SharedDatabase.objects.create(cluster=cluster, node=node, engine=engine_name, password="pw")
    conn = FakeConn(facts, files)
    ctx = StepContext(cluster=cluster, node=node, conn=conn, log=lambda m: None, emit=lambda s, t: None,
                      connect=lambda n: conn)
    return d.Server().probe(ctx)


UBUNTU_MYSQL = """server=/usr/sbin/mysqld
version=/usr/sbin/mysqld  Ver 8.0.36-0ubuntu0.22.04.1 for Linux on x86_64 ((Ubuntu))
defaults=--user=mysql --bind-address=127.0.0.1 --port=3306 --datadir=/var/lib/mysql --log-error=/var/log/mysql/error.log
initialized=1
confdir=/etc/mysql/mysql.conf.d
confdir=/etc/mysql/conf.d
main_cnf=/etc/mysql/mysql.cnf
systemd=1
unit=mysql
initd=mysql
running=1
tcp=   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 1 1
"""
MYSQL_CNF = "!includedir /etc/mysql/conf.d/\n!includedir /etc/mysql/mysql.conf.d/\n"


@pytest.mark.django_db
def test_server_probe_on_ubuntu_mysql_with_systemd():
    changes = probe_server(UBUNTU_MYSQL, {"/etc/mysql/mysql.cnf": MYSQL_CNF}, "mysql")
    assert [c.path for c in changes] == ["/etc/mysql/mysql.conf.d/zz-joget-cluster.cnf", ""]
    assert changes[1].command == "systemctl restart mysql"


@pytest.mark.django_db
def test_server_probe_finds_nothing_when_listening_as_planned():
    facts = UBUNTU_MYSQL.replace("0100007F:0CEA", "00000000:0CEA").replace("127.0.0.1", "0.0.0.0")
    files = {"/etc/mysql/mysql.cnf": MYSQL_CNF, "/etc/mysql/mysql.conf.d/zz-joget-cluster.cnf": d.render_conf(3306)}
    assert probe_server(facts, files, "mysql") == []


@pytest.mark.django_db
def test_server_probe_installs_first_when_nothing_is_there():
    changes = probe_server("server=\n", {})
    assert changes[0].description == "install mariadb-server"
    assert "apt-get install -y -q mariadb-server" in changes[0].command
    assert changes[1].path == "/etc/mysql/mariadb.conf.d/60-joget-cluster.cnf"
