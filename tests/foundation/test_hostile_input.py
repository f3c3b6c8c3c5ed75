"""Hostile input (issue 9): every field that reaches a shell, SQL or a config file is either refused with an
error naming the field, or carried through exactly, as the real reader of that file or command sees it.

Hypothesis draws arbitrary text (control characters, quotes, newlines, non-ASCII), near misses of each field's
shape (a trailing newline, an IPv6 zone) and valid shapes. Readers: `sh` itself for setenv.sh, shlex for command
lines and Apache lines, lxml for server.xml, jproperties for the datasource files, the local MariaDB server and
client for SQL and the client's option file.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import shlex
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase
from jproperties import Properties
from lxml import etree

from deployments import xmledit
from deployments.steps import database as d
from deployments.steps import joget, load_balancer, shared_directory
from deployments.steps import mysql as m
from deployments.steps import tomcat_tools as tomcat
from deployments.steps.toolbox import mask_properties
from nodes import validators as v
from nodes.inventory import InventoryError, load_inventory
from nodes.models import Cluster, LoadBalancer, Node, SharedDatabase, SharedDirectory

# Modest counts: the whole file runs in well under a minute on two cores; deadline off because the SQL
# properties wait for a real server.
settings.register_profile("hostile", max_examples=50, deadline=None)
HOSTILE = settings(settings.get_profile("hostile"))
HOSTILE_SQL = settings(settings.get_profile("hostile"), max_examples=30)

TOMCAT_SERVER_XML = Path("/usr/share/tomcat10/etc/server.xml")
NASTY = [
    "", " ", "a b", "a\nb", "x\n", "\n", "a\x00b", "a\tb", "a\rb", "$(touch /tmp/jcc-pwned)", "`id`", "a;b", "a|b",
    "a&b", "a'b", 'a"b', "a\\b", "a#b", "a=b", "a:b", "-rf", "..", "/a/../b", "é", "中", "ß", "%", "fe80::1%eth0",
    "fe80::1%$(id)", "::1%a b", "fd00::%x/64", "\u2028", "\x85", "a" * 300, "<x>", "&amp;", "]]>", "${x}",
]


def shaped(pattern: str) -> st.SearchStrategy[str]:
    """Arbitrary text, the field's own shape, the shape with a trailing newline or space, and known nasties."""
    shape = st.from_regex(pattern, fullmatch=True)
    return st.one_of(st.text(), shape, shape.map(lambda s: s + "\n"), shape.map(lambda s: s + " "),
                     st.builds(lambda a, b: a + b, shape, st.sampled_from(NASTY)), st.sampled_from(NASTY))


NAME = shaped(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?")
ROUTE = shaped(r"[A-Za-z0-9_]{1,32}")
PATH = st.one_of(shaped(r"(/[A-Za-z0-9._+@-]{1,12}){1,4}"), st.just("/"))
IDENT = shaped(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
SITE = shaped(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}")
COOKIE = shaped(r"[A-Za-z0-9_]{1,30}")
CONTEXT = shaped(r"/[A-Za-z0-9_-]{1,20}")
USER = shaped(r"[a-z_][a-z0-9_-]{0,20}")
ADDRESS = st.one_of(
    shaped(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,10}[A-Za-z0-9])?(?:\.[A-Za-z0-9]{1,8}){0,3}"),
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"), st.ip_addresses(v=6).map(lambda a: f"{a}%$(id)"),
)
NET4 = st.builds(lambda a, n: f"{a}/{n}", st.ip_addresses(v=4), st.integers(0, 32))
NET6 = st.builds(lambda a, n: f"{a}/{n}", st.ip_addresses(v=6), st.integers(0, 128))
SUBNET = st.one_of(NET4, NET6, shaped(r"10\.[0-9]{1,3}\.0\.0/[0-9]{1,2}"),
                   NET6.map(lambda n: n.replace("/", "%a b(rw)/")))
PASSWORD = st.one_of(st.text(), st.text(st.characters(codec="utf-8"), min_size=1),
                     st.text(st.sampled_from("'\"\\ ;$()`#=:!é中ß😀\u2028\x85"), min_size=1), st.sampled_from(NASTY))


def refused_or_accepted(obj, field: str, value, *, exclude=()) -> bool:
    """full_clean a copy of the (valid) `obj` with `field` set to `value`: if refused, the error names the field
    and says something, and False; if accepted, `obj` gets the value, and True."""
    trial = copy.copy(obj)
    setattr(trial, field, value)
    try:
        trial.full_clean(exclude=list(exclude), validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        messages = exc.message_dict.get(field)
        assert messages and all(m.strip() for m in messages), (field, value, exc.message_dict)
        return False
    setattr(obj, field, value)
    return True


def valid(validator, value) -> bool:
    try:
        validator(value)
    except ValidationError:
        return False
    return True


def plain(value: str) -> None:
    """What every allow-listed field promises: nothing any shell, SQL or config file reader would interpret."""
    assert value == value.strip() and value.isascii() and value.isprintable(), repr(value)
    assert shlex.quote(value) == value, repr(value)
    assert not set(value) & set("'\"`$;&|<>()\\#!*?[]{}~ %="), repr(value)


# ---- objects with every field valid; a test's value replaces a default only if the model accepts it -------

CLUSTER, NODE, REL = ["credential"], ["cluster", "credential"], ["cluster", "node"]


def cluster(**kw) -> Cluster:
    return Cluster(**{"name": "c1", "wflow_home": "/opt/joget/wflow", **kw})


def app_node(c: Cluster, **kw) -> Node:
    fields = {"name": "app1", "address": "10.0.0.11", "jvm_route": "node01", "is_app_server": True, **kw}
    return Node(cluster=c, **fields)


def database(c: Cluster, **kw) -> SharedDatabase:
    fields = {"mode": "existing", "node_id": 1, "host": "10.0.0.20", "name": "jwdb", "user": "joget",
              "password": "pw", **kw}
    return SharedDatabase(cluster=c, **fields)


def offer(obj, exclude, **values) -> None:
    """Offer each value to `obj`'s model: refused ones (named in the error) leave the valid default in place."""
    for field, value in values.items():
        refused_or_accepted(obj, field, value, exclude=exclude)


# ---- shell: setenv.sh read by a real sh, command lines by shlex ------------------------------------


@HOSTILE
@given(wflow=PATH, route=ROUTE, address=ADDRESS)
def test_setenv_sh_gives_catalina_exactly_the_options(wflow, route, address):
    c = cluster()
    offer(c, CLUSTER, wflow_home=wflow)
    node = app_node(c)
    offer(node, NODE, jvm_route=route, address=address)
    plain(c.wflow_home), plain(node.jvm_route)
    # catalina.sh sources setenv.sh and splits CATALINA_OPTS on blanks: each option must be one word.
    script = joget.render_setenv(c, node) + '\nprintf "%s\\n" $CATALINA_OPTS\n'
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "setenv.sh").write_text(script)
        r = subprocess.run(["sh", "-c", ". ./setenv.sh"], capture_output=True, text=True, cwd=tmp, timeout=10,
                           env={"PATH": "/usr/bin:/bin", "CATALINA_OPTS": ""}, check=False)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split("\n")[:-1]
    route = node.jvm_route
    assert words[:3] == [f"-Dwflow.home={c.wflow_home}", f"-Dwflow.name={route}", f"-DjvmRoute={route}"]


@HOSTILE
@given(home=PATH, install=PATH, base=PATH)
def test_catalina_paths_are_single_words_of_the_command(home, install, base):
    node = app_node(cluster())
    offer(node, NODE, catalina_home=home, install_path=install, catalina_base=base)
    words = shlex.split(tomcat.as_service_user(node, "catalina.sh") + " start")
    home = node.catalina_home or f"{node.install_path}/tomcat"
    base = node.catalina_base or f"{node.install_path}/tomcat-base"
    assert words[:2] == ["cd", base]
    assert words[words.index("env") + 1:] == [f"CATALINA_HOME={home}", f"CATALINA_BASE={base}",
                                              f"CATALINA_PID={base}/temp/catalina.pid", "catalina.sh", "start"]


@HOSTILE
@given(host=ADDRESS, user=USER | IDENT, name=IDENT, node_name=NAME)
def test_database_client_arguments_are_single_words(host, user, name, node_name):
    c = cluster()
    db = database(c, node=app_node(c, id=1, address="10.0.0.21"))  # an empty host means the node's address
    offer(db, REL, host=host, user=user, name=name)
    node = app_node(c)
    offer(node, NODE, name=node_name)
    # As database.verify builds them.
    args = (f"--connect-timeout=10 -h {m.quote(db.connect_host)} -P {int(db.port)} -u {m.quote(db.user)} "
            f"--database={m.quote(db.name)}")
    assert shlex.split(args) == ["--connect-timeout=10", "-h", db.host or "10.0.0.21", "-P", "3306", "-u", db.user,
                                 f"--database={db.name}"]
    # The node's name only reaches SQL as part of a scratch table's name, made an identifier.
    table = re.search(r"DROP TABLE IF EXISTS `(jcc_probe_[A-Za-z0-9_]+)`;", d.Verify.scratch_sql(node.name))
    assert table and table.group(1) == "jcc_probe_" + node.name.replace("-", "_")


# ---- config files: server.xml (lxml), Apache site (tokens), exports and fstab (fields) --------------


@pytest.mark.skipif(not TOMCAT_SERVER_XML.exists(), reason="needs Tomcat 10's stock server.xml (tomcat10)")
@HOSTILE
@given(route=ROUTE, me=ADDRESS, other=ADDRESS)
def test_server_xml_holds_the_route_and_member_addresses_exactly(route, me, other):
    c = cluster(multicast=False)
    node, peer = app_node(c), app_node(c, name="app2", jvm_route="node02")
    offer(node, NODE, jvm_route=route, address=me)
    offer(peer, NODE, address=other)
    local = xmledit.Member(host=node.address, unique_id=xmledit.unique_id(node.jvm_route))
    spec = xmledit.ClusterSpec(multicast=False, local=local,
                               others=[xmledit.Member(host=peer.address, unique_id=xmledit.unique_id("node02"))])
    out = xmledit.edit(TOMCAT_SERVER_XML.read_bytes(), xmledit.set_jvm_route(node.jvm_route), xmledit.set_cluster(spec))
    root = etree.fromstring(out)
    assert [e.get("jvmRoute") for e in root.iter("Engine")] == [node.jvm_route]
    assert [m.get("host") for m in root.iter("Member")] == [peer.address]
    assert [r.get("address") for r in root.iter("Receiver")] == [node.address]


@HOSTILE
@given(name=NAME, address=ADDRESS, route=ROUTE, ctx_path=CONTEXT, site=SITE, cookie=COOKIE, allow=ADDRESS | st.just(""))
def test_apache_site_lines_carry_each_value_as_one_token(name, address, route, ctx_path, site, cookie, allow):
    c = cluster()
    offer(c, CLUSTER, name=name, context_path=ctx_path)
    node = app_node(c, id=1)
    offer(node, NODE, address=address, jvm_route=route)
    lb = LoadBalancer(cluster=c, node=node)
    offer(lb, REL, site_name=site, sticky_cookie=cookie, manager_allow=allow)
    lines = {}
    for line in load_balancer.render_site(c, lb, [node], listen=True).splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.setdefault(words[0], []).append(words)
    member = lines["BalancerMember"][0]
    url = urllib.parse.urlsplit(member[1])
    assert url.netloc == f"{tomcat.url_host(node.address)}:8080" and url.path == c.context_path
    assert member[2:] == [f"route={node.jvm_route}", f"retry={load_balancer.MEMBER_RETRY}"]
    cookie = lb.sticky_cookie
    assert lines["ProxyPass"][0] == ["ProxyPass", c.context_path, f"balancer://{c.name}",
                                     f"stickysession={cookie}|{cookie.lower()}"]
    assert lines["ErrorLog"][0] == ["ErrorLog", f"${{APACHE_LOG_DIR}}/{lb.site_name}-error.log"]
    assert lines["Require"][-1] in (["Require", "ip", lb.manager_allow or "127.0.0.1"],
                                    ["Require", "host", lb.manager_allow])
    assert load_balancer.site_path(lb) == f"/etc/apache2/sites-available/{lb.site_name}.conf"


@HOSTILE
@given(export=PATH, subnet=SUBNET, mount=PATH, address=ADDRESS)
def test_exports_and_fstab_lines_have_exactly_the_fields(export, subnet, mount, address):
    c = cluster()
    offer(c, CLUSTER, wflow_home=mount)
    server = Node(cluster=c, id=2, name="fs", address="10.0.0.9", is_file_server=True)
    offer(server, NODE, address=address)
    sd = SharedDirectory(cluster=c, node=server, client_subnet="10.0.0.0/24")
    offer(sd, REL, export_path=export, client_subnet=subnet)
    exports = shared_directory.render_exports("/srv/other 10.9.0.0/16(ro)\n", sd.export_path, sd.client_subnet)
    ours = [line.split() for line in exports.splitlines() if line.split()[:1] == [sd.export_path]]
    net = str(ipaddress.ip_network(sd.client_subnet, strict=False))
    assert ours[-1][0] == sd.export_path and ours[-1][-1] == f"{net}({shared_directory.EXPORT_OPTIONS})"
    source = shared_directory.nfs_source(server.address, sd.export_path)
    fields = shared_directory.render_fstab("", source, c.wflow_home).splitlines()[-1].split()
    assert fields[1:] == [c.wflow_home, "nfs", shared_directory.FSTAB_OPTIONS, "0", "0"]
    # As mount.nfs splits it: "[v6]:path", else at the first colon.
    host, _, path = fields[0][1:].partition("]:") if fields[0].startswith("[") else fields[0].partition(":")
    assert (host, path) == (server.address, sd.export_path)


# ---- Joget's datasource files: jproperties reads back every value ------------------------------------


@HOSTILE
@given(password=PASSWORD, user=IDENT, name=IDENT, host=ADDRESS, profile=shaped(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}"),
       wflow=PATH)
def test_datasource_files_read_back_exactly(password, user, name, host, profile, wflow):
    c = cluster()
    offer(c, CLUSTER, datasource_profile=profile, wflow_home=wflow)
    db = database(c, node=app_node(c, id=1, address="10.0.0.21"))
    offer(db, REL, password=password, user=user, name=name, host=host)
    files = joget.datasource_files(c, db)
    prefix, profile = c.wflow_home.rstrip("/"), c.datasource_profile
    # "//x" is "/x" to every reader: compare the paths, not the spelling (wflow home "/").
    files = {re.sub("/+", "/", p): data for p, data in files.items()}
    assert sorted(files) == sorted([f"{prefix}/app_datasource.properties",
                                    f"{prefix}/app_datasource-{profile}.properties"])
    main, profile_file = (Properties(), Properties())
    main.load(files[f"{prefix}/app_datasource.properties"], "iso-8859-1")
    profile_file.load(files[f"{prefix}/app_datasource-{profile}.properties"], "iso-8859-1")
    assert main.properties == {"currentProfile": profile}
    got = profile_file.properties
    assert got["workflowPassword"] == db.password and got["workflowUser"] == db.user
    url = urllib.parse.urlsplit(got["workflowUrl"].removeprefix("jdbc:"))
    assert (url.netloc, url.path) == (f"{tomcat.url_host(db.connect_host)}:3306", f"/{db.name}")
    # The driver must send the password as the UTF-8 the server hashed, whatever the JVM's default charset.
    assert urllib.parse.parse_qs(url.query)["passwordCharacterEncoding"] == ["UTF-8"]
    # The diff shown to the admin masks the value, escaped or not.
    shown = mask_properties(files[f"{prefix}/app_datasource-{profile}.properties"], joget.PASSWORD_KEYS).splitlines()
    assert [line for line in shown if line.startswith(b"workflowPassword")] == [b"workflowPassword=********"]


# ---- SQL and the client's option file, on the local MariaDB -----------------------------------------


def _mariadb_reachable() -> bool:
    if not shutil.which("mariadb"):
        return False
    r = subprocess.run(["mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-e", "SELECT 1"],
                       capture_output=True, timeout=10, check=False)
    return r.returncode == 0


needs_mariadb = pytest.mark.skipif(not _mariadb_reachable(),
                                   reason="needs MariaDB on 127.0.0.1:3306 with root and no password")


def root_sql(sql: str, *, check: bool = True) -> str:
    """Run `sql` as root, the way run_client feeds the steps' SQL (utf8mb4, the session's sql_mode first)."""
    r = subprocess.run(["mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "--batch", "--skip-column-names",
                        "--default-character-set=utf8mb4"], input=(m.SESSION + sql).encode(), capture_output=True,
                       timeout=30, check=False)
    if check:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()


def login(user: str, password: str, database: str = "") -> subprocess.CompletedProcess:
    """Log in as the steps' client does: the password only in an option file (client_option_file)."""
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".cnf") as cnf:
        cnf.write(m.client_option_file(password))
        cnf.flush()
        args = ["mariadb", f"--defaults-extra-file={cnf.name}", "--batch", "--skip-column-names",
                "--default-character-set=utf8mb4", "--protocol=TCP", "-h", "127.0.0.1", "-P", "3306", "-u", user]
        if database:
            args.append(f"--database={database}")
        return subprocess.run([*args, "-e", "SELECT CURRENT_USER(), DATABASE()"], capture_output=True, timeout=30,
                              check=False)


HYP_USER = "jcc_hostile_pw"


@pytest.fixture(scope="module")
def scratch_user():
    if not _mariadb_reachable():
        pytest.skip("needs MariaDB on 127.0.0.1:3306 with root and no password")
    root_sql(f"DROP USER IF EXISTS {m.account(HYP_USER)};\n{m.create_user_sql(HYP_USER, 'start')}\n")
    version = root_sql("SELECT VERSION();").strip()
    yield version
    root_sql(f"DROP USER IF EXISTS {m.account(HYP_USER)};\n")


@needs_mariadb
@HOSTILE_SQL
@given(password=PASSWORD)
def test_password_set_in_sql_logs_in_through_the_option_file(scratch_user, password):
    db = database(cluster(), password="fallback pw")
    offer(db, REL, password=password)
    password = db.password
    root_sql(m.password_sql(scratch_user, HYP_USER, password) + "\n")
    r = login(HYP_USER, password)
    assert r.returncode == 0, (password, r.stderr.decode(errors="replace"))
    assert r.stdout.decode().split("\t")[0] == f"{HYP_USER}@%"
    # The schema step's probe compares this hash: equal means a second run changes nothing.
    stored = root_sql(f"SELECT authentication_string FROM mysql.user WHERE User = {m.sql_string(HYP_USER)} "
                      "AND Host = '%';").strip()
    assert stored == m.native_password_hash(password)
    # A near miss is refused: the login really checks this password.
    assert login(HYP_USER, password + "x").returncode != 0


@needs_mariadb
@HOSTILE_SQL
@given(user=IDENT, name=IDENT, password=PASSWORD)
def test_database_and_user_are_created_exactly_and_usable(scratch_user, user, name, password):
    db = database(cluster(), user="jcc_hyp_user", name="jcc_hyp_db")
    offer(db, REL, user=user, name=name, password=password)
    user, name, password = db.user, db.name, db.password
    # Never touch what the server already has (mysql, root, ...): names compare case-insensitively to be safe.
    existing_users = {u.lower() for u in root_sql("SELECT DISTINCT User FROM mysql.user;").split()}
    existing_dbs = {n.lower() for n in root_sql("SHOW DATABASES;").split()}
    assume(user.lower() not in existing_users and name.lower() not in existing_dbs)
    try:
        root_sql(f"CREATE DATABASE {m.sql_ident(name)};\n{m.create_user_sql(user, password)}\n"
                 f"{m.grant_sql(name, user)}\n")
        assert name in root_sql("SHOW DATABASES;").split("\n")
        r = login(user, password, name)
        assert r.returncode == 0, (user, name, password, r.stderr.decode(errors="replace"))
        assert r.stdout.decode().rstrip("\n").split("\t") == [f"{user}@%", name]
        out = root_sql(f"SELECT 'grant', Select_priv, Create_priv, Alter_priv FROM mysql.db WHERE Db = "
                       f"{m.sql_string(name)} AND User = {m.sql_string(user)} AND Host = '%';")
        assert m.rows(out) == {"grant": [["Y", "Y", "Y"]]}
    finally:
        root_sql(f"DROP USER IF EXISTS {m.account(user)};\nDROP DATABASE IF EXISTS {m.sql_ident(name)};\n",
                 check=False)


# ---- allow-listed fields and the inventory file -------------------------------------------------------

FIELDS = [
    (lambda: cluster(), "name", NAME, ["credential"]),
    (lambda: cluster(), "wflow_home", PATH, ["credential"]),
    (lambda: cluster(), "context_path", CONTEXT, ["credential"]),
    (lambda: cluster(), "datasource_profile", SITE, ["credential"]),
    (lambda: app_node(cluster()), "name", NAME, ["cluster", "credential"]),
    (lambda: app_node(cluster()), "address", ADDRESS, ["cluster", "credential"]),
    (lambda: app_node(cluster()), "ssh_user", USER, ["cluster", "credential"]),
    (lambda: app_node(cluster()), "jvm_route", ROUTE, ["cluster", "credential"]),
    (lambda: app_node(cluster()), "install_path", PATH, ["cluster", "credential"]),
    (lambda: database(cluster()), "host", ADDRESS, ["cluster", "node"]),
    (lambda: database(cluster()), "name", IDENT, ["cluster", "node"]),
    (lambda: database(cluster()), "user", IDENT, ["cluster", "node"]),
    (lambda: LoadBalancer(cluster=cluster(), node_id=1), "site_name", SITE, ["cluster", "node"]),
    (lambda: LoadBalancer(cluster=cluster(), node_id=1), "sticky_cookie", COOKIE, ["cluster", "node"]),
    (lambda: LoadBalancer(cluster=cluster(), node_id=1), "manager_allow", ADDRESS, ["cluster", "node"]),
    (lambda: SharedDirectory(cluster=cluster(), mode="existing"), "export_path", PATH, ["cluster", "node"]),
    (lambda: SharedDirectory(cluster=cluster(), mode="existing"), "client_subnet", SUBNET, ["cluster", "node"]),
]


@pytest.mark.parametrize("make, field, values, exclude", FIELDS,
                         ids=[f"{m().__class__.__name__}.{f}" for m, f, _, _ in FIELDS])
def test_allow_listed_fields_are_refused_by_name_or_plain(make, field, values, exclude):
    @HOSTILE
    @given(value=values)
    def check(value):
        if refused_or_accepted(make(), field, value, exclude=exclude) and value:
            plain(value)

    check()


def test_near_misses_that_used_to_pass_are_refused():
    # `$` in the allow-lists matched before a final newline; ip_address() takes any text as an IPv6 zone.
    for fn, value in [(v.validate_name, "app1\n"), (v.validate_jvm_route, "node01\n"),
                      (v.validate_absolute_path, "/opt/joget\n"), (v.validate_db_identifier, "jwdb\n"),
                      (v.validate_address, "fe80::1%$(touch /tmp/x)"), (v.validate_address, "app1\n"),
                      (v.validate_cidr, "fd00::%a b(rw)/64"), (v.validate_password, "x" * 257),
                      (v.validate_password, "a\x85b"), (v.validate_password, "a\ud800b")]:
        with pytest.raises(ValidationError):
            fn(value)
    v.validate_password("x" * 256)


def inventory(**overrides) -> dict:
    node = {"name": "app1", "address": "10.0.0.11", "roles": ["app_server", "database"], "jvm_route": "node01"}
    node.update(overrides.pop("node", {}))
    db = {"mode": "managed", "node": "app1", "name": "jwdb", "user": "joget", "password": "pw"}
    db.update(overrides.pop("db", {}))
    return {"cluster": "hostile", "nodes": [node], "shared_database": db, **overrides}


class TestInventoryFile(HypothesisTestCase):
    """load_inventory: a hostile value is refused with the field's name, and nothing is saved; or it is stored
    exactly (each example runs in its own transaction)."""

    def _load(self, doc: dict, where: str, read):
        try:
            c = load_inventory(doc, replace=True)
        except InventoryError as exc:
            assert where in exc.messages[0], (where, exc.messages)
            assert not Cluster.objects.filter(name="hostile").exists()
            return None
        return read(c)

    @HOSTILE
    @given(value=ROUTE)
    def test_jvm_route(self, value):
        got = self._load(inventory(node={"jvm_route": value}), "jvm_route", lambda c: c.nodes.get().jvm_route)
        assert got in (None, value)

    @HOSTILE
    @given(value=ADDRESS)
    def test_address(self, value):
        got = self._load(inventory(node={"address": value}), "address", lambda c: c.nodes.get().address)
        assert got in (None, value)

    @HOSTILE
    @given(value=PATH)
    def test_wflow_home(self, value):
        got = self._load(inventory(wflow_home=value), "wflow_home", lambda c: c.wflow_home)
        assert got in (None, value)

    @HOSTILE
    @given(value=PASSWORD)
    def test_database_password(self, value):
        got = self._load(inventory(db={"password": value}), "password",
                         lambda c: SharedDatabase.objects.get(cluster=c).password)
        assert got in (None, value)

    @HOSTILE
    @given(user=IDENT, name=IDENT)
    def test_database_user_and_name(self, user, name):
        try:
            c = load_inventory(inventory(db={"user": user, "name": name}), replace=True)
        except InventoryError as exc:
            assert "shared_database: " in exc.messages[0] and ("user:" in exc.messages[0] or "name:" in
                                                                exc.messages[0]), exc.messages
            return
        db = SharedDatabase.objects.get(cluster=c)
        assert (db.user, db.name) == (user, name)
