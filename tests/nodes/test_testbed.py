"""The testbed does what a user relies on: reachable, isolated hosts, a shared wflow dir, clean teardown.

Needs root (network namespaces); runs in ~10-20 s. Every check goes through what a user would
use: SSH with the printed key and host key, `manage.py testbed`, and the real machine's state.
"""

import base64
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodes.testbed import STATE_ROOT, Testbed, TestbedError, network, packages, procs
from nodes.testbed.remote import connect, run
from tests.testbed_plugin import unique_prefix  # noqa: E402

pytestmark = [
    pytest.mark.light,
    pytest.mark.skipif(os.geteuid() != 0, reason="the testbed needs root"),
    pytest.mark.timeout(120),
]
ROOT = Path(__file__).resolve().parents[2]
INVENTORY_KEYS = {"cluster", "joget_version", "context_path", "wflow_home", "datasource_profile", "multicast",
                  "identity_file", "known_hosts", "nodes", "shared_directory", "shared_database", "load_balancer",
                  "artifacts", "joget_admin_user", "joget_admin_password", "spare_nodes"}


def assert_nothing_left(prefix: str) -> None:
    """No namespace, link, mount, process or directory of `prefix` on this machine."""
    assert network.list_netns(prefix) == []
    assert network.list_links(prefix) == []
    assert not (STATE_ROOT / prefix).exists()
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert f"/run/netns/{prefix}-" not in mountinfo
    assert f"jcc-testbed/{prefix}/" not in mountinfo
    mine = [p for p in os.listdir("/proc") if p.isdigit() and procs.is_alive(int(p))
            and any(f"jcc-testbed/{prefix}/" in a for a in procs.cmdline(int(p)))]
    assert mine == []


@pytest.fixture
def small_testbed():
    """A 3-host testbed of its own (lb, app1, db) for tests that break or restart things."""
    tb = Testbed(unique_prefix("x"), app_servers=1, log=lambda m: None)
    try:
        yield tb
    finally:
        tb.down()
        assert_nothing_left(tb.prefix)


# ---- the inventory -----------------------------------------------------------------------------


def test_inventory_has_what_the_console_needs(light_testbed):
    inv = light_testbed
    assert set(inv) == INVENTORY_KEYS and inv["spare_nodes"] == []
    assert (inv["joget_admin_user"], inv["joget_admin_password"]) == ("admin", "admin")  # the stand-in's login
    assert [n["name"] for n in inv["nodes"]] == ["lb", "app1", "app2", "db"]
    apps = [n for n in inv["nodes"] if "app_server" in n["roles"]]
    assert [n["jvm_route"] for n in apps] == ["node01", "node02"]
    for n in apps:
        assert (n["http_port"], n["catalina_home"], n["catalina_base"]) == (
            8080, "/usr/share/tomcat10", "/opt/joget/tomcat-base")
    assert inv["shared_directory"]["mode"] == "existing"
    db = inv["shared_database"]
    assert (db["mode"], db["node"], db["engine"]) == ("managed", "db", "mariadb")
    assert (db["name"], db["user"]) == ("jwdb", "joget")
    assert "'" in db["password"] and " " in db["password"] and "$" in db["password"]
    assert inv["load_balancer"]["node"] == "lb"
    assert Path(inv["identity_file"]).stat().st_mode & 0o077 == 0, "the client key must be private"
    known = Path(inv["known_hosts"]).read_text().splitlines()
    assert sorted(known) == sorted(f"{n['address']} {n['host_key']}" for n in inv["nodes"])
    schema = next(a for a in inv["artifacts"] if a["kind"] == "schema_sql")
    assert "CREATE TABLE IF NOT EXISTS" in Path(schema["path"]).read_text()
    subnet = network.parse_subnet(inv["shared_directory"]["client_subnet"])
    assert all(ipaddress.ip_address(n["address"]) in subnet for n in inv["nodes"])


# ---- SSH -----------------------------------------------------------------------------------------


def test_every_host_answers_ssh_with_its_pinned_key(light_testbed):
    for node in light_testbed["nodes"]:
        client = connect(light_testbed, node["name"])
        try:
            assert run(client, "hostname") == (0, node["name"] + "\n", "")
            assert run(client, "id -u")[1].strip() == "0"
        finally:
            client.close()


def test_a_wrong_host_key_is_refused(light_testbed):
    with pytest.raises(paramiko.BadHostKeyException):
        connect(light_testbed, "app1", host_key=light_testbed.node("app2")["host_key"])


def test_an_unknown_client_key_is_refused(light_testbed, tmp_path):
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    (tmp_path / "other").write_bytes(key)
    (tmp_path / "other").chmod(0o600)
    with pytest.raises(paramiko.AuthenticationException):
        connect({**light_testbed, "identity_file": str(tmp_path / "other")}, "db")


def test_hosts_reach_each_other_and_know_their_keys(light_testbed):
    db = light_testbed.node("db")
    code, out, _ = light_testbed.ssh_run("app1", f"ssh-keyscan -T 3 -t ed25519 {db['address']} 2>/dev/null")
    assert code == 0
    assert db["host_key"] in out


# ---- isolation -----------------------------------------------------------------------------------


def test_hosts_see_only_their_own_processes(light_testbed):
    for host in ("app1", "db"):
        code, out, _ = light_testbed.ssh_run(host, "ps -e -o pid=,comm=")
        rows = [line.split(None, 1) for line in out.strip().splitlines()]
        assert rows[0] == ["1", "sshd"], out
        assert len(rows) < 10, out
        assert not any("python" in comm or "pytest" in comm for _, comm in rows), out


def test_wflow_directory_is_shared_between_app_servers_only(light_testbed):
    name = f"probe-{secrets.token_hex(4)}"
    text = secrets.token_hex(8)
    wflow = light_testbed["wflow_home"]
    assert light_testbed.ssh_run("app1", f"echo {text} > {wflow}/{name}")[0] == 0
    assert light_testbed.ssh_run("app2", f"cat {wflow}/{name}") == (0, text + "\n", "")
    assert light_testbed.ssh_run("db", f"test -e {wflow}/{name}")[0] != 0
    assert light_testbed.ssh_run("lb", f"test -e {wflow}/{name}")[0] != 0


def test_etc_is_private_to_each_host(light_testbed):
    name = f"/etc/jcc-probe-{secrets.token_hex(4)}"
    assert light_testbed.ssh_run("app1", f"echo app1 > {name} && cat {name}") == (0, "app1\n", "")
    assert light_testbed.ssh_run("app2", f"test -e {name}")[0] != 0
    assert not Path(name).exists(), "a host's /etc write reached the real machine"


def test_opt_var_and_tmp_are_private_to_each_host(light_testbed):
    token = secrets.token_hex(4)
    paths = [f"/opt/jcc-{token}", f"/var/lib/jcc-{token}", f"/var/log/jcc-{token}", f"/tmp/jcc-{token}"]
    assert light_testbed.ssh_run("app1", "touch " + " ".join(paths))[0] == 0
    for path in paths:
        assert light_testbed.ssh_run("app2", f"test -e {path}")[0] != 0
        assert not Path(path).exists(), f"{path} reached the real machine"


def test_each_host_has_a_clean_root_home_and_no_view_of_the_testbed_state(light_testbed):
    code, out, _ = light_testbed.ssh_run("lb", "cat ~/.bashrc; ls -A /var/lib/jcc-testbed | wc -l")
    assert code == 0
    assert out.startswith(Path("/usr/share/base-files/dot.bashrc").read_text())
    assert out.splitlines()[-1] == "0", "the client key and other hosts' files must be hidden"


def test_network_stays_on_the_bridge(light_testbed):
    code, out, _ = light_testbed.ssh_run("app1", "ip -4 route; cat /proc/sys/net/ipv4/ip_forward")
    assert code == 0
    assert "default" not in out
    assert "224.0.0.0/4 dev eth0" in out
    assert out.splitlines()[-1] == "0"
    assert light_testbed.ssh_run("app1", "ip route get 1.1.1.1")[0] != 0, "a host must not reach outside"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


def test_host_exec_enters_the_host_without_ssh(light_testbed):
    result = light_testbed.host_exec("db", "hostname; findmnt -n -o SOURCE /var/lib/mysql; stat -c %U /run/mysqld")
    host, source, owner = result.stdout.split()
    assert (result.returncode, host) == (0, "db")
    assert source.endswith(f"jcc-testbed/{light_testbed.prefix}/hosts/db/mysql]")
    assert owner in ("mysql", "root")  # root only when mariadb-server is not installed


@pytest.mark.full
def test_full_tier_hosts_can_run_the_services_privately(full_testbed):
    app = full_testbed.host_exec("app1", "test -x /usr/share/tomcat10/bin/catalina.sh && test -x /usr/sbin/apache2")
    assert app.returncode == 0
    before = sorted(os.listdir("/var/lib/mysql")) if Path("/var/lib/mysql").is_dir() else []
    init = full_testbed.host_exec(
        "db", "mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/tmp/install.log 2>&1"
        " || { cat /tmp/install.log; exit 1; }", timeout=60)
    assert init.returncode == 0, init.stdout + init.stderr
    assert (full_testbed.state_dir / "hosts" / "db" / "mysql" / "mysql").is_dir()  # the host's own datadir
    assert (sorted(os.listdir("/var/lib/mysql")) if Path("/var/lib/mysql").is_dir() else []) == before


# ---- lifecycle -----------------------------------------------------------------------------------


def test_up_twice_reuses_and_recreate_replaces(small_testbed):
    first = small_testbed.up()
    again = small_testbed.up()
    assert again == first
    fresh = small_testbed.up(recreate=True)
    assert fresh["nodes"][0]["host_key"] != first["nodes"][0]["host_key"]
    client = connect(fresh, "app1")
    try:
        assert run(client, "hostname")[1] == "app1\n"
    finally:
        client.close()


def test_a_stopped_host_boots_again_with_its_disk(small_testbed):
    inv = small_testbed.up()
    assert small_testbed.host_exec("app1", "echo kept > /etc/jcc-kept").returncode == 0
    small_testbed.stop_host("app1")
    assert not small_testbed.status()["hosts"][1]["running"]
    small_testbed.start_host("app1")
    client = connect(inv, "app1")
    try:
        assert run(client, "cat /etc/jcc-kept")[1] == "kept\n"
    finally:
        client.close()


def test_down_after_a_crash_removes_everything(small_testbed):
    small_testbed.up()
    status = small_testbed.status()
    assert status["up"]
    # kill -9 of everything: keeper, unshare and every process inside the hosts.
    procs.send(status["processes"] + status["keepers"], signal.SIGKILL)
    procs.wait_gone(status["processes"] + status["keepers"], 5)
    assert not small_testbed.status()["up"]
    small_testbed.down()
    assert_nothing_left(small_testbed.prefix)
    small_testbed.up()  # and the prefix is usable again
    assert small_testbed.status()["up"]


def test_a_subnet_in_use_is_refused_and_leaves_nothing(light_testbed):
    tb = Testbed(unique_prefix("y"), app_servers=1, subnet=light_testbed["shared_directory"]["client_subnet"],
                 log=lambda m: None)
    with pytest.raises(TestbedError, match="already in use"):
        tb.up()
    assert_nothing_left(tb.prefix)


def test_clear_errors(monkeypatch):
    with pytest.raises(TestbedError, match="prefix"):
        Testbed("much-too-long-prefix")
    with pytest.raises(TestbedError, match="under /opt"):
        Testbed("jtz", wflow_home="/srv/wflow")
    monkeypatch.setitem(packages.PACKAGE_FILES, "tomcat10", ("/nonexistent/catalina.sh",))
    with pytest.raises(TestbedError, match=r"apt-get install -y tomcat10"):
        packages.require_packages(packages.FULL_PACKAGES)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TestbedError, match="needs root"):
        Testbed("jtz").up()


# ---- the command ---------------------------------------------------------------------------------


def _manage(*args: str) -> subprocess.CompletedProcess:
    if not os.environ.get("SECRET_KEY"):
        pytest.skip("manage.py needs SECRET_KEY, SECRETS_ENCRYPTION_KEY (and DATABASE_URL) in the environment")
    return subprocess.run([sys.executable, "manage.py", "testbed", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_command_up_prints_inventory_and_leaves_hosts_running(tmp_path):
    prefix = unique_prefix("c")
    try:
        up = _manage("up", "--light", "--app-servers", "1", "--spare", "1", "--prefix", prefix)
        assert up.returncode == 0, up.stderr
        inv = json.loads(up.stdout)  # standard output is the JSON alone
        assert "hosts answer SSH" in up.stderr
        for host in ("db", "spare1"):
            client = connect(inv, host)  # the command has exited; the hosts live on (the spare too, out of the cluster)
            try:
                assert run(client, "hostname")[1] == f"{host}\n"
            finally:
                client.close()
        assert [n["name"] for n in inv["nodes"]] == ["lb", "app1", "db"]
        spare = inv["spare_nodes"]
        assert [(s["name"], s["ssh_port"], s["ssh_user"]) for s in spare] == [("spare1", 22, "root")]
        assert spare[0]["host_key"].startswith("ssh-ed25519 ") and spare[0]["address"].endswith(".201")
        status = _manage("status", "--prefix", prefix)
        assert f"testbed {prefix}: up" in status.stdout
        assert _manage("up", "--prefix", prefix, "--app-servers", "1", "--spare", "1").stdout == up.stdout
    finally:
        down = _manage("down", "--prefix", prefix)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(prefix)


@pytest.mark.django_db
def test_inventory_imports_into_the_console(light_testbed, settings, tmp_path):
    from nodes.inventory import load_inventory

    settings.MEDIA_ROOT = tmp_path
    cluster = load_inventory(dict(light_testbed), replace=True)
    nodes = {n.name: n for n in cluster.nodes.all()}
    assert sorted(nodes) == ["app1", "app2", "db", "lb"]
    assert nodes["app2"].jvm_route == "node02"
    assert nodes["db"].host_key == light_testbed.node("db")["host_key"]
    assert base64.b64decode(nodes["db"].host_key.split()[1])
    assert cluster.shared_database.password == light_testbed["shared_database"]["password"]


@pytest.mark.django_db
def test_load_a_testbed_button_imports_its_key_and_artifacts(light_testbed, admin_client, settings, tmp_path):
    """The wizard's button reads the testbed's files from its own state directory (the web import reads none)."""
    from django.urls import reverse

    from nodes.models import Cluster

    settings.MEDIA_ROOT = tmp_path
    r = admin_client.post(reverse("deployments:wizard_import_testbed"), {"prefix": light_testbed.prefix})
    cluster = Cluster.objects.get(name=light_testbed["cluster"])
    assert r.status_code == 302 and r["Location"] == f"/clusters/{cluster.name}/wizard/nodes/"
    assert cluster.credential.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    schema = cluster.artifacts.get(kind="schema_sql")
    assert schema.file.read() == (light_testbed.state_dir / "schema.sql").read_bytes()


def test_root_in_a_host_cannot_change_the_machine(light_testbed):
    """The machine's own trees are read-only in a host; the host's private ones stay writable."""
    for path in ("/usr/jcc-probe", "/usr/local/bin/jcc-probe", "/home/jcc-probe", "/var/cache/jcc-probe",
                 "/srv/jcc-probe", "/var/spool/jcc-probe", "/jcc-probe"):
        status, _, err = light_testbed.ssh_run("app1", f"touch {path}")
        assert status != 0 and "Read-only file system" in err, path
        assert not Path(path).exists()
    for path in ("/etc/jcc-probe", "/var/lib/jcc-probe", "/var/log/jcc-probe", "/opt/jcc-probe", "/root/jcc-probe",
                 "/tmp/jcc-probe", "/var/tmp/jcc-probe"):
        status, _, err = light_testbed.ssh_run("app1", f"touch {path} && rm {path}")
        assert status == 0, (path, err)


def test_testbed_up_is_refused_on_a_production_console():
    if not os.environ.get("SECRET_KEY"):
        pytest.skip("manage.py needs SECRET_KEY, SECRETS_ENCRYPTION_KEY (and DATABASE_URL) in the environment")
    prefix = unique_prefix("p")
    r = subprocess.run([sys.executable, "manage.py", "testbed", "up", "--prefix", prefix], cwd=ROOT,
                       env={**os.environ, "HTTPS": "true"}, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "configured for production (HTTPS=true)" in r.stderr and "--force" in r.stderr
    assert r.stdout == ""
    assert_nothing_left(prefix)


@pytest.mark.django_db
def test_a_production_console_offers_no_testbed(light_testbed, admin_client, settings):
    from django.urls import reverse

    from nodes.models import Cluster

    settings.HTTPS = True
    page = admin_client.get(reverse("deployments:wizard_start"), secure=True).content.decode()
    assert light_testbed.prefix not in page
    r = admin_client.post(reverse("deployments:wizard_import_testbed"), {"prefix": light_testbed.prefix}, secure=True,
                          follow=True)
    assert f"No running testbed with prefix {light_testbed.prefix!r}" in r.content.decode().replace("&#x27;", "'")
    assert not Cluster.objects.exists()
