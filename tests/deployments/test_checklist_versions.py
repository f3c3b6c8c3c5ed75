"""Checklist items of the version profile (deployments/checklist_versions.py) and the tomcat.install gate, on
the light testbed (sshd hosts sharing this machine's /usr: Java 17, Debian's Tomcat 10 in /usr/share/tomcat10)."""

from __future__ import annotations

import re
import zipfile

import pytest

from deployments import checklist
from deployments import checklist_versions as cv
from deployments.steps import StepContext, StepFailed, compat
from deployments.steps.tomcat import TomcatInstall
from nodes import ssh
from nodes.inventory import load_inventory, register_artifact
from nodes.models import Artifact
from nodes.testbed.standin import build_war
from tests.conftest import wait_for

# ---- pure -------------------------------------------------------------------------------------------------

def test_clocks_within_two_seconds_pass_and_beyond_fail_naming_the_node():
    assert cv.judge_clock({"app1": 0.1, "app2": -0.4}).ok
    f = cv.judge_clock({"app1": 0.1, "app2": 2.6})
    assert not f.ok and "app2 is 2.6 s off the console" in f.found and "NTP" in f.fix
    spread = cv.judge_clock({"app1": 1.5, "app2": -1.5})
    assert not spread.ok and "3.0 s apart" in spread.found


def test_duplicate_wflow_names_fail_naming_the_nodes():
    assert cv.judge_names({"app1": ("node01", "running"), "app2": ("node02", "planned")}).ok
    f = cv.judge_names({"app1": ("node01", "running"), "app2": ("node01", "running")})
    assert not f.ok and "wflow.name=node01 on app1, app2" in f.found and "jvmRoute" in f.fix


def test_versions_parsed_from_the_probe_output():
    out = ('java=openjdk version "11.0.22" 2024-01-16\ntomcat=Server version: Apache Tomcat/9.0.85\n'
           "tomcat=Server number:  9.0.85.0\n")
    assert compat.parse_versions(out) == compat.NodeVersions(
        11, 'openjdk version "11.0.22" 2024-01-16', 9, "Server version: Apache Tomcat/9.0.85 Server number:  9.0.85.0")
    assert compat.parse_versions("", "apache-tomcat-9.0.85.tar.gz").tomcat == 9


@pytest.mark.django_db
def test_the_uploaded_wars_joget_version_must_match_the_profile_the_cluster_is_set_to(tmp_path):
    from nodes.models import Cluster
    from nodes.testbed import standin

    if not standin.MARIADB_JDBC_JAR.is_file():
        pytest.skip("libmariadb-java is not installed")
    c = Cluster.objects.create(name="prod", joget_version="8.1")
    assert cv.war_matches_profile(c, None).ok  # nothing uploaded: the setting decides
    register_artifact(c, Artifact.Kind.JW_WAR, build_war(tmp_path / "nine" / "jw.war", "9.0.2"))
    f = cv.war_matches_profile(c, None)
    assert not f.ok and "is Joget 9.0.2 (Joget DX 9)" in f.found and "set to Joget 8.1 (Joget DX 8)" in f.found
    assert "Set the cluster's Joget version to 9.0.2" in f.fix
    c.joget_version = "9.0"
    c.save()
    f = cv.war_matches_profile(c, None)
    assert f.ok and "Joget 9.0.2, the cluster's Joget DX 9 profile" in f.found


# ---- on the light testbed -------------------------------------------------------------------------------



@pytest.fixture
def cluster(light_testbed):
    inv = dict(light_testbed)
    inv["artifacts"] = []
    return load_inventory(inv, replace=True)


def _javax_war(tmp_path):
    """The stand-in with its web.xml rewritten to Java EE 8 (javax, web-app 4.0): what a Tomcat 9 build is."""
    src = build_war(tmp_path / "jakarta.war")
    dest = tmp_path / "jw.war"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "WEB-INF/web.xml":
                text = data.decode()
                text = text.replace("https://jakarta.ee/xml/ns/jakartaee/web-app_6_0.xsd",
                                    "http://xmlns.jcp.org/xml/ns/javaee/web-app_4_0.xsd")
                text = text.replace("https://jakarta.ee/xml/ns/jakartaee", "http://xmlns.jcp.org/xml/ns/javaee")
                data = re.sub(r'version="6\.0"', 'version="4.0"', text).encode()
            zout.writestr(item, data)
    return dest


def _result(run, item, node=None):
    qs = run.results.filter(item=item)
    return qs.get(node__name=node) if node else qs.get(node=None)


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_version_items_pass_with_the_stand_in_on_tomcat_10(cluster, tmp_path):
    register_artifact(cluster, Artifact.Kind.JW_WAR, build_war(tmp_path / "jw.war"))
    run = checklist.run_now(cluster)
    for node in ("app1", "app2"):
        api = _result(run, "servlet_api", node)
        assert api.status == "pass" and "jakarta (web-app 6.0) on Tomcat 10" in api.found, api.found
        java = _result(run, "java", node)
        assert java.status == "pass" and "Java 17" in java.found
        # Nothing listens on 8080 before the deployment: the deployment starts Tomcat.
        assert _result(run, "app_peers", node).status == "planned"
    assert _result(run, "clock").status == "pass"
    assert _result(run, "war_version").status == "pass"
    names = _result(run, "wflow_name")
    assert names.status == "pass" and "app1 node01 (planned)" in names.found


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_a_javax_war_on_tomcat_10_fails_the_checklist_and_tomcat_install_naming_both(cluster, tmp_path):
    register_artifact(cluster, Artifact.Kind.JW_WAR, _javax_war(tmp_path))
    run = checklist.run_now(cluster)
    r = _result(run, "servlet_api", "app1")
    assert r.status == "fail" and run.status == "failed"
    assert "javax (web-app 4.0)" in r.found and "Tomcat 10" in r.found and "jakarta.servlet" in r.found
    assert "Tomcat 9" in r.fix
    node = cluster.nodes.get(name="app1")
    with ssh.open_connection(node) as conn:
        ctx = StepContext(cluster=cluster, node=node, conn=conn, log=lambda t: None,
                          emit=lambda s, t: None, connect=lambda other: conn)
        with pytest.raises(StepFailed) as exc:
            TomcatInstall().probe(ctx)
    assert "javax (web-app 4.0)" in str(exc.value) and "Tomcat 10 runs only jakarta.servlet" in str(exc.value)


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_an_older_java_than_the_profile_fails_with_the_supported_releases(cluster):
    cluster.joget_version = "5.0.1"  # v5 supports Java 7/8; the hosts run 17
    cluster.save()
    r = _result(checklist.run_now(cluster), "java", "app1")
    assert r.status == "fail" and "17" in r.found and "supports Java 7/8" in r.fix


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_app_servers_reaching_each_other(cluster, light_testbed):
    light_testbed.host_exec(
        "app2", "setsid python3 -m http.server 8080 --bind 0.0.0.0 --directory /tmp </dev/null >/dev/null 2>&1 &")
    try:
        app1, app2 = cluster.nodes.get(name="app1"), cluster.nodes.get(name="app2")
        wait_for(lambda: cv.app_peers(cluster, app1).ok, message="app1 reaching app2:8080")
        assert "reaches app2:8080" in cv.app_peers(cluster, app1).found
        f = cv.app_peers(cluster, app2)
        assert not f.ok and "from app2: app1:8080 refused" in f.found and "log viewer" in f.fix and f.missing
    finally:
        light_testbed.host_exec("app2", "pkill -f 'http.server 8080' || true")
