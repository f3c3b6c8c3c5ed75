"""Version profiles (nodes/versions.py): the options, JDBC values and servlet API each Joget major gets,
against the documented values (docs/joget-versions.md) and Joget's own files (/work/shared/joget-reference)."""

from __future__ import annotations

import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
from jproperties import Properties

from nodes import versions as v
from nodes.testbed.standin import SOURCE_DIR

REFERENCE = Path("/work/shared/joget-reference")
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="no Joget reference files on this machine")


def _opts(major: int, **kw) -> list[str]:
    """The options a JVM would get from the rendered lines, with every bundle file present or absent."""
    lines = v.jvm_options(v.profile_for(major), wflow_home=kw.get("wflow", "/w"), node_name="node01",
                          catalina_home=kw.get("home", "/t"), ignite_addresses=kw.get("ignite", ()))
    with tempfile.TemporaryDirectory() as tmp:
        script = "\n".join(v.render_options(lines)) + '\nprintf "%s\\n" $CATALINA_OPTS\n'
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                           cwd=tmp, check=True, timeout=10)
    return r.stdout.split()


def test_one_profile_per_major_and_the_nearest_for_unknown_ones():
    assert sorted(v.PROFILES) == [5, 6, 7, 8, 9]
    assert v.profile_for(4).major == 5 and v.profile_for(10).major == 9
    assert v.major_of("8.1.6") == 8 and v.major_of("DX") == 0


def test_dx8_documented_options_without_bundle_files():
    # dev.joget.org DX8 Server Clustering Guide: -Dwflow.name must be placed before -javaagent:wflow-cluster.jar;
    # the agents only when the files exist.
    assert _opts(8) == ["-Dwflow.home=/w", "-Dwflow.name=node01"]


def test_dx8_agents_when_the_bundle_has_them(tmp_path):
    wflow, home = tmp_path / "wflow", tmp_path / "tomcat"
    (wflow / "glowroot").mkdir(parents=True)
    (home / "lib").mkdir(parents=True)
    files = (wflow / "wflow-cluster.jar", wflow / "glowroot" / "glowroot.jar", home / "lib" / "aspectjweaver-1.9.7.jar")
    for f in files:
        f.write_bytes(b"")
    opts = _opts(8, wflow=str(wflow), home=str(home))
    assert opts == [f"-Dwflow.home={wflow}", "-Dwflow.name=node01", f"-javaagent:{wflow}/wflow-cluster.jar",
                    f"-javaagent:{home}/lib/aspectjweaver-1.9.7.jar", f"-javaagent:{wflow}/glowroot/glowroot.jar"]
    assert opts.index("-Dwflow.name=node01") < opts.index(f"-javaagent:{wflow}/wflow-cluster.jar")


def test_dx9_adds_ignite_and_opens_java_nio(tmp_path):
    (tmp_path / "wflow-cluster.jar").write_bytes(b"")
    opts = _opts(9, wflow=str(tmp_path), ignite=("10.0.0.1:47500..47509", "10.0.0.2:47500..47509"))
    assert opts[:5] == [f"-Dwflow.home={tmp_path}", "-Dwflow.name=node01", "-Dwflow.ignite=true",
                        "--add-opens=java.base/java.nio=ALL-UNNAMED",
                        "-Dwflow.igniteStaticIP=10.0.0.1:47500..47509,10.0.0.2:47500..47509"]
    assert opts[5] == f"-javaagent:{tmp_path}/wflow-cluster.jar"


@pytest.mark.parametrize("major", [5, 6, 7])
def test_older_majors_get_home_and_name_only(major, tmp_path):
    (tmp_path / "wflow-cluster.jar").write_bytes(b"")
    assert _opts(major, wflow=str(tmp_path)) == [f"-Dwflow.home={tmp_path}", "-Dwflow.name=node01"]


@needs_reference
def test_dx8_jdbc_values_equal_jogets_own_profile_file():
    props = Properties()
    props.load((REFERENCE / "app_datasource-default.properties").read_bytes(), "iso-8859-1")
    p = v.profile_for(8)
    assert props["workflowDriver"].data == p.jdbc_driver == "com.mysql.cj.jdbc.Driver"
    assert props["workflowUrl"].data.split("?", 1)[1] == v.jdbc_query(p)


def test_old_majors_use_connector_j_5_class():
    assert {v.profile_for(m).jdbc_driver for m in (5, 6, 7)} == {"com.mysql.jdbc.Driver"}
    assert "serverTimezone" not in v.jdbc_query(v.profile_for(5))


@needs_reference
def test_servlet_api_of_jogets_web_xml_and_the_stand_in():
    assert v.servlet_api_of_web_xml((REFERENCE / "jw-web.xml").read_bytes()) == v.ServletApi(v.JAVAX, "3.0")
    assert v.servlet_api_of_web_xml((SOURCE_DIR / "WEB-INF" / "web.xml").read_bytes()) == v.ServletApi(v.JAKARTA, "6.0")
    assert v.servlet_api_of_web_xml(b"not xml") == v.ServletApi("", "")


def test_servlet_mismatch_names_both(tmp_path):
    war = tmp_path / "jw.war"
    with zipfile.ZipFile(war, "w") as z:
        z.writestr("WEB-INF/web.xml", '<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="4.0"/>')
    api = v.servlet_api_of_war(war)
    assert api == v.ServletApi(v.JAVAX, "4.0")
    why = v.servlet_mismatch(api, 10)
    assert "javax (web-app 4.0)" in why and "Tomcat 10" in why and "jakarta" in why
    assert v.servlet_mismatch(api, 9) == ""
    assert "Tomcat 9" in v.servlet_mismatch(v.ServletApi(v.JAKARTA, "6.0"), 9)
    assert v.servlet_mismatch(v.ServletApi("", ""), 10) == "" and v.servlet_mismatch(api, 0) == ""


def test_version_parsers():
    assert v.java_feature('openjdk version "17.0.15" 2025-04-15') == 17
    assert v.java_feature('java version "1.8.0_292"') == 8
    assert v.java_feature('openjdk version "21" 2023-09-19') == 21
    assert v.java_feature("nothing") == 0
    assert v.tomcat_major("Server version: Apache Tomcat/10.1.60 (Debian)\nServer number:  10.1.60.0") == 10
    assert v.tomcat_major("apache-tomcat-9.0.85.tar.gz") == 9
    assert v.tomcat_major("") == 0
