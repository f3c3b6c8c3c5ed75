"""server.xml and web.xml edits: on Tomcat 10's stock server.xml, Joget's own server.xml and Joget's web.xml."""

import zipfile
from pathlib import Path

import pytest
from lxml import etree

from deployments import warpatch
from deployments import xmledit as x

TOMCAT10 = Path("/usr/share/tomcat10/etc/server.xml")
JOGET_SERVER = Path("/work/shared/joget-reference/server.xml")
JOGET_WEB = Path("/work/shared/joget-reference/jw-web.xml")
SERVER_XMLS = [pytest.param(p, id=p.parent.name + "/" + p.name) for p in (TOMCAT10, JOGET_SERVER)]


def _need(path: Path) -> bytes:
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    return path.read_bytes()


def _all_edits(route="node01", spec=None):
    return (x.set_http_port(8080), x.drop_apr_listener, x.set_jvm_route(route), x.set_cluster(spec or x.ClusterSpec()))


STATIC = x.ClusterSpec(multicast=False, local=x.Member("10.0.0.101", x.unique_id("node01")),
                       others=[x.Member("10.0.0.102", x.unique_id("node02")), x.Member("app3", x.unique_id("node03"))])


@pytest.mark.parametrize("path", SERVER_XMLS)
def test_server_xml_keeps_comments_and_declaration_and_is_idempotent(path):
    original = _need(path)
    once = x.edit(original, *_all_edits())
    twice = x.edit(once, *_all_edits())
    assert twice == once
    assert once.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!--\n  Licensed to the Apache')
    # Every comment survives, including the commented-out Cluster and the license header; one is added
    # where the APR listener was.
    before, after = x.comments(original), x.comments(once)
    assert [c for c in after if "Removed by the Joget cluster console" not in c] == before
    assert len(after) == len(before) + 1
    s = x.server_xml_summary(once)
    assert s == {"jvm_route": "node01", "http_port": 8080, "clusters": 1, "cluster_in_engine": True,
                 "static": False, "members": [], "apr_listener": False}
    root = etree.fromstring(once)
    engine = root.find("Service/Engine")
    cluster = engine.find("Cluster")
    assert cluster.attrib == {"className": "org.apache.catalina.ha.tcp.SimpleTcpCluster"}
    # Placed right after the stock commented-out Cluster, on its own line.
    assert "SimpleTcpCluster" in cluster.getprevious().text
    assert b'\n      <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster"/>\n' in once
    # Everything else is still there.
    assert root.find("Service/Engine/Host").get("appBase") == "webapps"
    assert root.find("GlobalNamingResources/Resource").get("pathname") == "conf/tomcat-users.xml"


@pytest.mark.parametrize("path", SERVER_XMLS)
def test_static_membership_lists_the_other_nodes_and_switching_back_restores_multicast(path):
    multicast = x.edit(_need(path), *_all_edits())
    static = x.edit(multicast, *_all_edits(spec=STATIC))
    assert x.edit(static, *_all_edits(spec=STATIC)) == static
    s = x.server_xml_summary(static)
    assert s["clusters"] == 1 and s["static"] and s["members"] == ["10.0.0.102", "app3"]
    cluster = etree.fromstring(static).find("Service/Engine/Cluster")
    membership = cluster.find("Channel/Membership")
    assert membership.get("className") == "org.apache.catalina.tribes.membership.StaticMembershipService"
    assert membership.find("LocalMember").get("uniqueId") == x.unique_id("node01")
    members = membership.findall("Member")
    assert [(m.get("host"), m.get("port"), m.get("uniqueId")) for m in members] == [
        ("10.0.0.102", "4000", x.unique_id("node02")), ("app3", "4000", x.unique_id("node03"))]
    receiver = cluster.find("Channel/Receiver")
    assert (receiver.get("address"), receiver.get("port")) == ("10.0.0.101", "4000")
    # A changed member list replaces the element in place; multicast again gives the multicast file back.
    fewer = x.ClusterSpec(multicast=False, local=STATIC.local, others=STATIC.others[:1])
    assert x.server_xml_summary(x.edit(static, x.set_cluster(fewer)))["members"] == ["10.0.0.102"]
    assert x.edit(static, *_all_edits()) == multicast


def test_unique_ids_are_16_signed_bytes_stable_and_distinct():
    a = x.unique_id("node01")
    values = [int(v) for v in a.strip("{}").split(",")]
    assert len(values) == 16 and all(-128 <= v <= 127 for v in values)
    assert a == x.unique_id("node01") != x.unique_id("node02")


def test_extra_cluster_elements_are_removed_and_an_engine_one_is_kept():
    xml = b"""<?xml version='1.0' encoding='utf-8'?>
<Server port="8005" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="8080" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost">
      <!-- mine -->
      <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelSendOptions="6"/>
      <Host name="localhost" appBase="webapps">
        <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster"/>
      </Host>
    </Engine>
  </Service>
</Server>
"""
    out = x.edit(xml, x.set_jvm_route("n1"), x.set_cluster(x.ClusterSpec()))
    assert out.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<Server")
    s = x.server_xml_summary(out)
    assert s["clusters"] == 1 and s["cluster_in_engine"]
    # The admin's own multicast Cluster (channelSendOptions) is kept as it was.
    assert b'channelSendOptions="6"' in out and b"<!-- mine -->" in out
    assert b'<Host name="localhost" appBase="webapps">\n      </Host>' in out


def test_http_port_and_errors():
    out = x.edit(_need(TOMCAT10), x.set_http_port(8181))
    assert x.server_xml_summary(out)["http_port"] == 8181
    with pytest.raises(x.XmlEditError, match="not well-formed"):
        x.edit(b"<Server><Service>", x.set_http_port(1))
    with pytest.raises(x.XmlEditError, match="no plain HTTP"):
        x.edit(b"<Server><Service><Connector protocol='AJP/1.3'/></Service></Server>", x.set_http_port(1))
    with pytest.raises(x.XmlEditError, match="no <Service><Engine>"):
        x.edit(b"<Server/>", x.set_jvm_route("a"))


def test_distributable_added_to_jogets_web_xml_namespace_aware_and_idempotent():
    original = _need(JOGET_WEB)
    assert not x.has_distributable(original)
    once = x.edit_web_xml(original)
    assert x.edit_web_xml(once) == once
    assert once.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<web-app xmlns="http://java.sun.com/xml/ns/javaee"')
    root = etree.fromstring(once)
    ns = "{http://java.sun.com/xml/ns/javaee}"
    dist = root.findall(f"{ns}distributable")
    assert len(dist) == 1 and dist[0].getprevious().tag == f"{ns}display-name"
    assert b"\n    <display-name>Joget DX</display-name>\n    <distributable/>\n    <context-param>" in once
    assert x.comments(once) == x.comments(original)
    # Nothing else moved: the only added line is <distributable/>.
    added = set(once.decode().splitlines()) - set(original.decode().splitlines())
    assert added == {"    <distributable/>"}


def test_distributable_without_namespace_and_in_an_empty_web_app():
    assert x.edit_web_xml(b"<web-app><servlet/></web-app>") == b"<web-app><distributable/><servlet/></web-app>"
    out = x.edit_web_xml(b'<web-app xmlns="urn:x">\n</web-app>\n')
    assert out == b'<web-app xmlns="urn:x">\n  <distributable/>\n</web-app>\n'
    with pytest.raises(x.XmlEditError, match="not <web-app>"):
        x.edit_web_xml(b"<beans/>")


def _war(tmp_path: Path, web_xml: bytes) -> Path:
    war = tmp_path / "jw.war"
    with zipfile.ZipFile(war, "w") as z:
        z.writestr(zipfile.ZipInfo("META-INF/", (2001, 2, 3, 4, 5, 6)), b"")
        z.writestr(zipfile.ZipInfo("META-INF/MANIFEST.MF", (2001, 2, 3, 4, 5, 6)), b"Manifest-Version: 1.0\n")
        info = zipfile.ZipInfo("WEB-INF/web.xml", (2001, 2, 3, 4, 5, 6))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, web_xml)
        big = zipfile.ZipInfo("WEB-INF/lib/a.jar", (2002, 1, 1, 0, 0, 0))
        big.compress_type = zipfile.ZIP_STORED
        z.writestr(big, bytes(range(256)) * 4096)
    return war


def test_war_patch_adds_distributable_keeps_entries_and_is_deterministic(tmp_path):
    src = _war(tmp_path, _need(JOGET_WEB))
    assert warpatch.needs_patch(src)
    a, b = tmp_path / "a.war", tmp_path / "b.war"
    assert warpatch.patch_war(src, a) and warpatch.patch_war(src, b)
    assert a.read_bytes() == b.read_bytes()
    assert not warpatch.needs_patch(a)
    assert not warpatch.patch_war(a, tmp_path / "c.war") and not (tmp_path / "c.war").exists()
    with zipfile.ZipFile(src) as zs, zipfile.ZipFile(a) as za:
        assert [i.filename for i in zs.infolist()] == [i.filename for i in za.infolist()]
        for i in zs.infolist():
            j = za.getinfo(i.filename)
            assert (j.date_time, j.compress_type) == (i.date_time, i.compress_type)
            if i.filename != "WEB-INF/web.xml":
                assert za.read(i.filename) == zs.read(i.filename)
        assert za.read("WEB-INF/web.xml") == x.edit_web_xml(zs.read("WEB-INF/web.xml"))
    assert not list(tmp_path.glob(".*.tmp"))


def test_war_patch_errors(tmp_path):
    not_zip = tmp_path / "x.war"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(warpatch.WarPatchError, match="not a ZIP"):
        warpatch.needs_patch(not_zip)
    empty = tmp_path / "e.war"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("index.html", "")
    with pytest.raises(warpatch.WarPatchError, match="no WEB-INF/web.xml"):
        warpatch.needs_patch(empty)
