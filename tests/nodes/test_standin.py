"""Tests for the Joget stand-in WAR (nodes/testbed/standin.py, docs/standin.md).

The fast tests only build the WAR. The ``full`` tests deploy it on a throw-away Tomcat 10
(CATALINA_BASE in a temp dir, free ports) against a MariaDB database and user created for the run
on 127.0.0.1:3306 (as root over the socket), and talk HTTP to it.

Run: .venv/bin/pytest tests/nodes/test_standin.py -p no:cacheprovider -o markers="full: full tier"
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nodes.testbed import standin  # noqa: E402

TOMCAT_HOME = Path("/usr/share/tomcat10")
CATALINA_SH = TOMCAT_HOME / "bin" / "catalina.sh"
JDBC_JAR = Path("/usr/share/java/mariadb-java-client.jar")
KEY_RE = re.compile(r'<span id="systemKey">(EE-[0-9A-F]{32})</span>')
STATUS_RE = re.compile(r'<span id="licenseStatus">([^<]*)</span>')
NODE = "node01"
# Quotes, spaces, $, a backslash (followed by "n", which must not turn into a newline) and the
# characters Java properties files treat specially.
DB_PASSWORD = "q'u\"o te $USER\\n=:#!x"

needs_jar = pytest.mark.skipif(not JDBC_JAR.is_file(), reason=f"{JDBC_JAR} missing: apt-get install libmariadb-java")
needs_tomcat = pytest.mark.skipif(not CATALINA_SH.is_file(), reason=f"{CATALINA_SH} missing: apt-get install tomcat10")
needs_mariadb = pytest.mark.skipif(shutil.which("mariadb") is None, reason="mariadb client missing")


# --------------------------------------------------------------------------- fast: build only


@needs_jar
def test_build_war_is_deterministic_and_complete(tmp_path):
    a = standin.build_war(tmp_path / "a")  # a directory that does not exist yet
    (tmp_path / "b").mkdir()
    b = standin.build_war(tmp_path / "b")  # an existing directory
    c = standin.build_war(tmp_path / "c" / "jw.war")  # a file path
    assert a == tmp_path / "a" / "jw.war" and b == tmp_path / "b" / "jw.war" and c == tmp_path / "c" / "jw.war"
    assert standin.sha256_of(a) == standin.sha256_of(b) == standin.sha256_of(c)
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
        assert {i.date_time for i in zf.infolist()} == {(2000, 1, 1, 0, 0, 0)}
        assert zf.read("WEB-INF/lib/mariadb-java-client.jar") == JDBC_JAR.read_bytes()
        assert "version=8.1\n" in zf.read("WEB-INF/standin.properties").decode()
        web_xml = zf.read("WEB-INF/web.xml")
    assert names[0] == "META-INF/MANIFEST.MF"
    for name in ("WEB-INF/jspf/standin.jspf", "WEB-INF/jsp/license.jsp", "WEB-INF/jsp/session.jsp"):
        assert name in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    ns = {"j": "https://jakarta.ee/xml/ns/jakartaee"}
    root = ElementTree.fromstring(web_xml)
    assert root.tag == "{https://jakarta.ee/xml/ns/jakartaee}web-app" and root.get("version") == "6.0"
    assert root.find("j:distributable", ns) is not None
    patterns = {e.text for e in root.iterfind("j:servlet-mapping/j:url-pattern", ns)}
    assert {
        "/web/json/workflow/currentUsername",
        "/web/login",
        "/j_spring_security_check",
        "/web/console/home",
        "/web/console/setting/license",
        "/testbed/session",
    } <= patterns
    jsp_files = {e.text for e in root.iterfind("j:servlet/j:jsp-file", ns)}
    assert len(jsp_files) == 8 and all(f.lstrip("/") in names for f in jsp_files)


@needs_jar
def test_build_war_bakes_in_the_version(tmp_path):
    war = standin.build_war(tmp_path / "x" / "jw.war", version="9.0.2")
    with zipfile.ZipFile(war) as zf:
        assert "version=9.0.2\n" in zf.read("WEB-INF/standin.properties").decode()
    assert standin.sha256_of(war) != standin.sha256_of(standin.build_war(tmp_path / "y", version="8.1"))
    for bad in ("", "8.1\nx=y", "v8", "8..1"):
        with pytest.raises(ValueError):
            standin.build_war(tmp_path / "z", version=bad)


def test_build_war_without_driver_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(standin, "MARIADB_JDBC_JAR", tmp_path / "nope.jar")
    with pytest.raises(standin.MissingJdbcDriverError, match="apt-get install libmariadb-java"):
        standin.build_war(tmp_path)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- full: on Tomcat 10


def prop_escape(value: str) -> str:
    """Escape a value for a java.util.Properties file (ISO-8859-1, like Joget writes them)."""
    out = []
    for i, ch in enumerate(value):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "=:#!":
            out.append("\\" + ch)
        elif ch == " " and i == 0:
            out.append("\\ ")
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        elif not 0x20 <= ord(ch) <= 0x7E:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def mariadb_root(sql: str) -> None:
    subprocess.run(["mariadb", "-uroot", "--batch"], input=sql, text=True, check=True, capture_output=True, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_datasource(home: Path, profile: str, db: dict, *, password: str | None = None, select: bool = True) -> None:
    url = (
        f"jdbc:mysql://127.0.0.1:3306/{db['name']}"
        "?characterEncoding=UTF-8&useSSL=false&allowPublicKeyRetrieval=true&serverTimezone=UTC"
    )
    lines = {
        "workflowDriver": "com.mysql.cj.jdbc.Driver",
        "workflowUrl": url,
        "workflowUser": db["user"],
        "profileName": "",
        "workflowPassword": db["password"] if password is None else password,
    }
    text = "".join(f"{k}={prop_escape(v)}\n" for k, v in lines.items())
    (home / f"app_datasource-{profile}.properties").write_text(text, encoding="latin-1")
    if select:
        (home / "app_datasource.properties").write_text(f"currentProfile={profile}\n", encoding="latin-1")


class Client:
    """A tiny HTTP client that keeps cookies and does not follow redirects."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, http.client.HTTPMessage, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8")
        finally:
            conn.close()
        for cookie in resp.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return resp.status, resp.headers, text

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, form: dict):
        return self.request("POST", path, form)

    def login(self, username: str = "admin", password: str = "admin") -> str:
        status, headers, _ = self.post("/jw/j_spring_security_check", {"j_username": username, "j_password": password})
        assert status == 302
        return headers["Location"]


class Tomcat:
    def __init__(self, base: Path, wflow: Path, war: Path):
        self.base, self.wflow = base, wflow
        self.port, self.shutdown_port = free_port(), free_port()
        shutil.copytree(TOMCAT_HOME / "etc", base / "conf")
        for d in ("logs", "webapps", "work", "temp"):
            (base / d).mkdir(parents=True)
        server_xml = base / "conf" / "server.xml"
        text = server_xml.read_text()
        text, n1 = re.subn(r'<Server port="-?\d+"', f'<Server port="{self.shutdown_port}"', text, count=1)
        text, n2 = re.subn(r'<Connector port="8080"', f'<Connector port="{self.port}"', text, count=1)
        text = re.sub(r"\s*<Listener className=\"org\.apache\.catalina\.core\.AprLifecycleListener\"\s*/>", "", text)
        assert n1 == n2 == 1, "unexpected server.xml layout"
        server_xml.write_text(text)
        shutil.copy(war, base / "webapps" / "jw.war")
        self.pid_file = base / "tomcat.pid"
        self.env = dict(
            os.environ,
            CATALINA_HOME=str(TOMCAT_HOME),
            CATALINA_BASE=str(base),
            CATALINA_PID=str(self.pid_file),
            CATALINA_TMPDIR=str(base / "temp"),
            JAVA_OPTS=f"-Dwflow.home={wflow} -Dwflow.name={NODE} -Xmx256m",
        )
        self.started = False

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def start(self) -> None:
        subprocess.run(
            [str(CATALINA_SH), "start"], env=self.env, cwd=self.base, check=True, capture_output=True, timeout=60
        )
        self.started = True
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                # /jw/web/login touches neither servers.json nor the database
                if Client(self.port).get("/jw/web/login")[0] == 200:
                    return
            except OSError:
                pass
            if not self.alive():
                break
            time.sleep(0.5)
        raise AssertionError(f"Tomcat did not come up; catalina.out:\n{self.log_tail()}")

    def log_tail(self) -> str:
        out = self.base / "logs" / "catalina.out"
        return out.read_text(errors="replace")[-6000:] if out.exists() else "(no catalina.out)"

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        pid = self.pid()
        try:
            subprocess.run(
                [str(CATALINA_SH), "stop", "30"], env=self.env, cwd=self.base, capture_output=True, timeout=90
            )
        except subprocess.TimeoutExpired:
            pass
        if pid is not None:
            for _ in range(40):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.25)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def database():
    try:
        mariadb_root("SELECT 1;")
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"MariaDB on 127.0.0.1:3306 not usable as root: {exc}")
    suffix = f"{os.getpid()}_{int(time.time())}"
    db = {"name": f"standin_{suffix}", "user": f"standin_u{suffix}"[:32], "password": DB_PASSWORD}
    users = [f"'{db['user']}'@'{host}'" for host in ("localhost", "127.0.0.1", "%")]
    mariadb_root(
        f"CREATE DATABASE `{db['name']}`;\n"
        + "".join(f"CREATE USER {u} IDENTIFIED BY {sql_string(DB_PASSWORD)};\n" for u in users)
        + "".join(f"GRANT ALL ON `{db['name']}`.* TO {u};\n" for u in users)
    )
    try:
        # sanity: the account really has the awkward password
        subprocess.run(
            [
                "mariadb",
                "-h127.0.0.1",
                "-P3306",
                f"-u{db['user']}",
                f"--password={DB_PASSWORD}",
                db["name"],
                "-e",
                "SELECT 1",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        yield db
    finally:
        drop_users = "".join(f"DROP USER IF EXISTS {u};\n" for u in users)
        mariadb_root(f"DROP DATABASE IF EXISTS `{db['name']}`;\n{drop_users}")


@pytest.fixture(scope="module")
def tomcat(tmp_path_factory, database):
    tmp = tmp_path_factory.mktemp("standin")
    wflow = tmp / "wflow"
    wflow.mkdir()
    write_datasource(wflow, "default", database)
    (wflow / "servers.json").write_text(json.dumps({"servers": ["node00"]}))  # an earlier stand-in's format: read too
    war = standin.build_war(tmp / "build", version="8.1", build="test")
    server = Tomcat(tmp / "catalina_base", wflow, war)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def datasource_restored(tomcat, database):
    yield
    write_datasource(tomcat.wflow, "default", database)


FULL_MARKS = (pytest.mark.full, needs_tomcat, needs_jar, needs_mariadb)


def full(func):
    """Mark a test as full tier (needs Tomcat 10, the JDBC jar and MariaDB)."""
    for mark in FULL_MARKS:
        func = mark(func)
    return func


@full
def test_startup_registers_node_in_servers_json(tomcat):
    # Checked before any request that re-registers: jspInit of the load-on-startup page wrote it.
    data = json.loads((tomcat.wflow / "servers.json").read_text())
    assert data == ["node00", NODE]  # rewritten in Joget's own format, a bare array
    assert "Joget stand-in: datasource profile default, database ok" in "".join(
        p.read_text(errors="replace") for p in (tomcat.base / "logs").glob("localhost.*.log")
    )


@full
def test_current_username_anonymous(tomcat):
    status, headers, body = Client(tomcat.port).get("/jw/web/json/workflow/currentUsername")
    assert status == 200
    assert headers["Content-Type"].split(";")[0].strip() == "application/json"
    assert json.loads(body) == {"username": "roleAnonymous"}
    assert headers.get("Set-Cookie") is None  # probes create no sessions


@full
def test_login_flow(tomcat):
    c = Client(tomcat.port)
    status, headers, _ = c.get("/jw/web/console/home")
    assert status == 302 and headers["Location"].endswith("/jw/web/login")
    status, _, page = c.get("/jw/web/login")
    assert status == 200
    assert 'action="/jw/j_spring_security_check"' in page
    assert 'name="j_username"' in page and 'name="j_password"' in page
    assert 'id="loginError"' not in page

    assert c.login("admin", "wrong").endswith("/jw/web/login?login_error=1")
    assert c.login("nobody", "admin").endswith("/jw/web/login?login_error=1")
    status, headers, _ = c.get("/jw/j_spring_security_check?j_username=admin&j_password=admin")
    assert status == 302 and headers["Location"].endswith("login_error=1")  # POST only, like Spring
    assert 'id="loginError"' in c.get("/jw/web/login?login_error=1")[2]
    assert json.loads(c.get("/jw/web/json/workflow/currentUsername")[2]) == {"username": "roleAnonymous"}

    assert c.login().endswith("/jw/web/console/home")
    status, _, home = c.get("/jw/web/console/home")
    assert status == 200
    assert re.search(r'<a id="footerLicense" href="/jw/web/console/setting/license">License</a>', home)
    assert '<span id="username">admin</span>' in home and '<span id="version">8.1</span>' in home
    assert json.loads(c.get("/jw/web/json/workflow/currentUsername")[2]) == {"username": "admin"}

    status, headers, _ = c.get("/jw/j_spring_security_logout")
    assert status == 302 and headers["Location"].endswith("/jw/web/login")
    assert json.loads(c.get("/jw/web/json/workflow/currentUsername")[2]) == {"username": "roleAnonymous"}
    assert c.get("/jw/web/console/home")[0] == 302


@full
def test_admin_password_from_wflow_home(tomcat):
    creds = tomcat.wflow / "standin-admin.properties"
    creds.write_text(f"username=boss\npassword={prop_escape('s3cr:t pw')}\n", encoding="latin-1")
    try:
        assert Client(tomcat.port).login("admin", "admin").endswith("login_error=1")
        c = Client(tomcat.port)
        assert c.login("boss", "s3cr:t pw").endswith("/jw/web/console/home")
        assert json.loads(c.get("/jw/web/json/workflow/currentUsername")[2]) == {"username": "boss"}
    finally:
        creds.unlink()
    assert Client(tomcat.port).login().endswith("/jw/web/console/home")


def license_page(c: Client, form: dict | None = None) -> tuple[str, str, str]:
    if form is None:
        status, _, page = c.get("/jw/web/console/setting/license")
    else:
        status, _, page = c.post("/jw/web/console/setting/license", form)
    assert status == 200, page
    key = KEY_RE.search(page)
    assert key, page
    return key.group(1), STATUS_RE.search(page).group(1), page


def system_mac_addresses() -> set[str]:
    macs = set()
    for iface in Path("/sys/class/net").iterdir():
        try:
            macs.add((iface / "address").read_text().strip().upper())
        except OSError:
            pass
    return macs - {"00:00:00:00:00:00"}


@full
def test_license_page_system_key(tomcat, database, datasource_restored):
    anon = Client(tomcat.port)
    status, headers, _ = anon.get("/jw/web/console/setting/license")
    assert status == 302 and headers["Location"].endswith("/jw/web/login")
    status, headers, _ = anon.post("/jw/web/console/setting/license", {"license": "x"})
    assert status == 302 and headers["Location"].endswith("/jw/web/login")

    c = Client(tomcat.port)
    c.login()
    key, lic_status, page = license_page(c)
    assert re.fullmatch(r"EE-[0-9A-F]{32}", key)
    assert lic_status == "none"
    assert 'name="license"' in page and 'action="/jw/web/console/setting/license"' in page

    # The documented algorithm, from the inputs the page shows.
    mac = re.search(r'<span id="keyMac">([^<]*)</span>', page).group(1)
    assert re.search(r'<span id="keyProfile">default</span>', page)
    expected = "EE-" + hashlib.sha256(f"{mac}|default|8|enterprise".encode()).hexdigest().upper()[:32]
    assert key == expected
    if Path("/sys/class/net").is_dir():
        assert mac in system_mac_addresses()

    # Stable, and a new profile name changes it (read at every request, no restart needed).
    assert license_page(c)[0] == key
    write_datasource(tomcat.wflow, "other", database)
    other_key, _, page = license_page(c)
    assert re.fullmatch(r"EE-[0-9A-F]{32}", other_key) and other_key != key
    assert '<span id="keyProfile">other</span>' in page
    write_datasource(tomcat.wflow, "default", database)
    assert license_page(c)[0] == key


@full
def test_license_activation(tomcat, database, datasource_restored):
    c = Client(tomcat.port)
    c.login()
    key, lic_status, _ = license_page(c)
    assert lic_status == "none"

    for bad in ("", "   ", "garbage", key[:-1], key.replace("EE-", "XX-")):
        _, lic_status, page = license_page(c, {"license": bad})
        assert 'id="licenseError"' in page and "Invalid license" in page
        assert lic_status == "none"
    assert not list(tomcat.wflow.glob("license-*.txt"))

    good = f"JOGET-LICENSE\nkey={key}\nsigned=whatever"
    _, lic_status, page = license_page(c, {"license": good})
    assert 'id="licenseMessage"' in page and 'id="licenseError"' not in page
    assert lic_status == "activated" and "Licensed" in page
    stored = tomcat.wflow / f"license-{key}.txt"
    assert stored.read_text().strip() == good.strip()
    assert stored.stat().st_mode & 0o777 == 0o644
    assert license_page(c)[1] == "activated"

    # Another profile means another key: not licensed there; switching back finds the license again.
    write_datasource(tomcat.wflow, "other", database)
    other_key, lic_status, _ = license_page(c)
    assert other_key != key and lic_status == "none"
    _, lic_status, page = license_page(c, {"license": good})  # the old key's license does not fit
    assert lic_status == "none" and 'id="licenseError"' in page
    write_datasource(tomcat.wflow, "default", database)
    assert license_page(c)[1] == "activated"


@full
def test_session_counts_and_database(tomcat):
    c = Client(tomcat.port)
    lines = [c.get("/jw/testbed/session")[2] for _ in range(3)]
    assert lines == [f"node={NODE} count={i} build=test db=ok\n" for i in (1, 2, 3)]
    assert "JSESSIONID" in c.cookies
    assert Client(tomcat.port).get("/jw/testbed/session")[2] == f"node={NODE} count=1 build=test db=ok\n"
    assert c.get("/jw/testbed/session")[2] == f"node={NODE} count=4 build=test db=ok\n"


@full
def test_session_reports_database_errors(tomcat, database, datasource_restored):
    c = Client(tomcat.port)
    wrong = DB_PASSWORD + "-wrong"
    write_datasource(tomcat.wflow, "default", database, password=wrong)
    line = c.get("/jw/testbed/session")[2]
    m = re.fullmatch(rf"node={NODE} count=1 build=test db=(.+)\n", line)
    assert m and m.group(1) != "ok", line
    assert "Access denied" in m.group(1)
    assert wrong not in line and DB_PASSWORD not in line

    (tomcat.wflow / "app_datasource.properties").write_text("currentProfile=missing\n")
    line = c.get("/jw/testbed/session")[2]
    assert re.fullmatch(rf"node={NODE} count=2 build=test db=no app_datasource-missing\.properties in .+\n", line), line

    write_datasource(tomcat.wflow, "default", database)
    assert c.get("/jw/testbed/session")[2] == f"node={NODE} count=3 build=test db=ok\n"


@full
def test_stop_unregisters_node(tomcat):
    # Keep this test last: it stops the module's Tomcat.
    body = Client(tomcat.port).get("/jw/web/json/workflow/currentUsername")[2]
    assert json.loads(body) == {"username": "roleAnonymous"}
    assert NODE in json.loads((tomcat.wflow / "servers.json").read_text())
    tomcat.stop()
    assert not tomcat.alive()
    assert json.loads((tomcat.wflow / "servers.json").read_text()) == ["node00"]
    log = tomcat.log_tail()
    assert "failed to unregister it" not in log
