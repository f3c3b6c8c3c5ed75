"""A database password full of shell and SQL syntax works end to end on the full testbed, and runs nothing.

The password holds quotes, a space, backslashes, `;`, `$(...)` and backticks whose commands would create a
canary file, and non-ASCII letters. Through a real Celery worker and SSH the database steps create the user with
it (then change it, the ALTER path), the datasource file carries it, and the stand-in Joget opens its own JDBC
connection with it (`/jw/testbed/session` answers `db=ok`: docs/standin.md). The admin's own checks: the mariadb
client logs in from each app server (the password in MYSQL_PWD, passed as an argv without any shell, so it is
independent of the console's quoting), the datasource file read back with jproperties, no canary file on any node
or on this machine, and the password in no stored log line, step message or change.
"""

import json
import urllib.request
import uuid
from pathlib import Path

import pytest
from jproperties import Properties

from deployments import engine
from deployments.models import LogLine, StepRun
from deployments.steps import mysql as m
from nodes.inventory import load_inventory, register_artifact
from nodes.models import SharedDatabase
from tests.conftest import wait_for
from tests.testbed_plugin import _session_testbed

S = StepRun.Status
FIXTURE = Path(__file__).parent / "fixtures" / "small_schema.sql"
HOSTS = ("lb", "app1", "app2", "db")
DB_STEPS = ["database.server", "database.schema", "database.verify"]
APP_STEPS = ["tomcat.install", "tomcat.base", "replication.server_xml", "replication.hosts", "joget.datasource",
             "joget.setenv", "joget.war", "joget.running"]
PROFILE_FILE = "/opt/joget/wflow/app_datasource-default.properties"
CANARY = f"/tmp/jcc-pwned-{uuid.uuid4().hex[:12]}"


def hostile(tag: str) -> str:
    return (f"p'a\"s s\\\\;$(touch {CANARY}-{tag})`touch {CANARY}-{tag}b`;`id`"
            f"\\'\\\"$HOME %s é中ß {tag}")


FIRST, SECOND = hostile("one"), hostile("two")


def deploy(cluster, steps, timeout=600):
    dep = engine.start(cluster, steps=steps)

    def done():
        dep.refresh_from_db()
        return not dep.is_active

    wait_for(done, timeout=timeout, interval=0.5, message=f"{dep} to finish")
    return dep


def explain(dep) -> str:
    out = []
    for r in dep.runs.select_related("node").order_by("id"):
        out.append(f"{r.step} {r.node.name if r.node_id else '-'}: {r.status} {r.message[:300]}")
        if r.status == S.FAILED:
            out += [f"    | {t[:200]}" for t in reversed(r.lines.order_by("-seq").values_list("text", flat=True)[:25])]
    return "\n".join(out)


def login_from(tb, host: str, password: str) -> str:
    """CURRENT_USER() as the mariadb client on `host` sees it, or the client's error."""
    r = tb.host_exec(host, ["env", f"MYSQL_PWD={password}", "mariadb", "-N", "-B", "-h", tb.address("db"),
                            "-u", "joget", "jwdb", "-e", "SELECT CURRENT_USER()"])
    return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"


def session_line(tb, host: str) -> str:
    url = f"http://{tb.address(host)}:8080/jw/testbed/session"
    with urllib.request.urlopen(url, timeout=15) as resp:  # noqa: S310 - a testbed address
        return resp.read().decode().strip()


def datasource_password(tb, host: str) -> str:
    r = tb.host_exec(host, ["cat", PROFILE_FILE])
    assert r.returncode == 0, r.stderr
    props = Properties()
    props.load(r.stdout.encode("iso-8859-1"), "iso-8859-1")
    return props["workflowPassword"].data


def set_password(cluster, password: str) -> None:
    db = SharedDatabase.objects.get(cluster=cluster)
    db.password = password
    db.full_clean()  # the console accepts it as it is: nothing to reject here
    db.save()


def assert_ran_nothing(tb) -> None:
    for host in HOSTS:
        found = tb.host_exec(host, f"ls -d {CANARY}* 2>/dev/null || true").stdout.split()
        assert found == [], f"{host}: {found}"
    assert list(Path("/tmp").glob(f"{Path(CANARY).name}*")) == [], "on this machine (the worker's)"


def assert_never_stored(deployments, password: str) -> None:
    """Neither the password nor any piece of it that would only come from it (the canary's name), nor its SQL
    literal, in a log line, a step message or a stored change (diffs)."""
    forms = [password, m.sql_string(password), m.option_value(password), Path(CANARY).name]
    for dep in deployments:
        texts = list(LogLine.objects.filter(run__deployment=dep).values_list("text", flat=True))
        texts += [f"{r.message}\n{json.dumps(r.changes, ensure_ascii=False)}" for r in dep.runs.all()]
        assert texts
        leaks = [t for t in texts if any(f in t for f in forms)]
        assert leaks == [], leaks[:3]


@pytest.fixture(scope="module")
def hostile_testbed():
    """Hosts of their own: the step modules after this one expect app servers where nothing is deployed."""
    yield from _session_testbed("hostile", full=True)


@pytest.fixture
def cluster(hostile_testbed, celery_worker_process):
    inv = dict(hostile_testbed)
    c = load_inventory(inv, replace=True)
    register_artifact(c, "schema_sql", FIXTURE)
    return c


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_hostile_password_grant_datasource_and_app_connection(cluster, hostile_testbed):
    tb = hostile_testbed
    set_password(cluster, FIRST)

    dep = deploy(cluster, DB_STEPS + APP_STEPS)
    assert dep.status == "succeeded", explain(dep)
    texts = list(LogLine.objects.filter(run__deployment=dep).values_list("text", flat=True))
    created = "SQL: CREATE USER 'joget'@'%' IDENTIFIED BY '********';"
    changed = "SQL: ALTER USER 'joget'@'%' IDENTIFIED BY '********';"
    assert created in texts or changed in texts, "the schema step set the password"
    for host in ("app1", "app2"):
        assert login_from(tb, host, FIRST) == "joget@%"
        assert datasource_password(tb, host) == FIRST
        # The stand-in's own JDBC connection, with the password as Java's Properties read it from the file.
        assert session_line(tb, host).endswith(" db=ok")
    assert login_from(tb, "app1", FIRST[:-1]).startswith("error: ERROR 1045")

    # The ALTER USER path, and Tomcat restarted because the datasource file changed.
    set_password(cluster, SECOND)
    changed_dep = deploy(cluster, DB_STEPS + APP_STEPS)
    assert changed_dep.status == "succeeded", explain(changed_dep)
    schema = changed_dep.runs.get(step="database.schema")
    assert schema.status == S.CHANGED and "set the password of joget" in schema.message
    assert changed_dep.runs.get(step="joget.datasource").status == S.CHANGED
    for host in ("app1", "app2"):
        assert login_from(tb, host, SECOND) == "joget@%"
        assert login_from(tb, host, FIRST).startswith("error: ERROR 1045")
        assert datasource_password(tb, host) == SECOND
        assert session_line(tb, host).endswith(" db=ok")

    # Idempotent with such a password: the stored hash and the file compare equal, nothing changes.
    again = deploy(cluster, DB_STEPS + APP_STEPS)
    assert {r.status for r in again.runs.all()} == {S.OK}, explain(again)

    assert_ran_nothing(tb)
    for password in (FIRST, SECOND):
        assert_never_stored([dep, changed_dep, again], password)
