"""Edit Tomcat's server.xml and a web app's web.xml as XML, keeping everything else.

The admin's comments, the XML declaration and every element we do not own stay as
they are. lxml re-serialises attributes on one line, so the first edit of a stock
file shows some reformatting; after that, editing again gives identical bytes
(the steps compare bytes to decide whether anything changed).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lxml import etree

CLUSTER_CLASS = "org.apache.catalina.ha.tcp.SimpleTcpCluster"
# Synchronous replication: the request ends once the other members acknowledged the session (6 = 2|4; Tomcat
# 8.5+ parses the option names too, which marks the value as the console's).
SYNCHRONOUS_SEND_OPTIONS = "use_ack,synchronized_ack"
APR_LISTENER = "org.apache.catalina.core.AprLifecycleListener"
STATIC_SERVICE = "org.apache.catalina.tribes.membership.StaticMembershipService"
STATIC_MEMBER = "org.apache.catalina.tribes.membership.StaticMember"
RECEIVER_PORT = 4000
_DECLARATION = re.compile(rb"^\s*(<\?xml[^>]*\?>)")


class XmlEditError(Exception):
    """The file is not XML, or lacks what an edit needs; the message says what."""


@dataclass
class Document:
    root: etree._Element
    declaration: bytes = b""
    encoding: str = "UTF-8"
    trailing_newline: bool = True


def parse(data: bytes, what: str = "the file") -> Document:
    # Comments are kept (remove_comments=False); entities are left alone, nothing is fetched.
    parser = etree.XMLParser(remove_comments=False, remove_pis=False, remove_blank_text=False,
                             resolve_entities=False, no_network=True, load_dtd=False, strip_cdata=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise XmlEditError(f"{what} is not well-formed XML: {exc}") from None
    match = _DECLARATION.match(data)
    return Document(
        root=root,
        declaration=match.group(1) if match else b"",
        encoding=root.getroottree().docinfo.encoding or "UTF-8",
        trailing_newline=data.endswith(b"\n"),
    )


def serialize(doc: Document) -> bytes:
    """The declaration as it was written, then the comments before the root, the root, what follows."""
    parts = [doc.declaration] if doc.declaration else []
    for node in reversed(list(doc.root.itersiblings(preceding=True))):
        parts.append(etree.tostring(node, encoding=doc.encoding, with_tail=False))
    body = etree.tostring(doc.root, encoding=doc.encoding, with_tail=False)
    parts.append(body)
    for node in doc.root.itersiblings():
        parts.append(etree.tostring(node, encoding=doc.encoding, with_tail=False))
    # tostring with an encoding adds its own declaration to each part for non-UTF-8 encodings: strip it.
    parts = [p if p is doc.declaration else _DECLARATION.sub(b"", p).lstrip() for p in parts]
    return b"\n".join(parts) + (b"\n" if doc.trailing_newline else b"")


def edit(data: bytes, *edits: Callable[[etree._Element], None], what: str = "the file") -> bytes:
    """Apply `edits` (each takes the root element) and return the new bytes."""
    doc = parse(data, what)
    for fn in edits:
        fn(doc.root)
    return serialize(doc)


# ---- small tree helpers ----------------------------------------------------------------------


def _local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _children(el, name: str) -> list:
    return [c for c in el if _local(c) == name]


def _indent_of(el) -> str:
    """The whitespace that precedes `el` on its line (to indent what we insert next to it)."""
    prev, parent = el.getprevious(), el.getparent()
    if parent is None:
        return ""
    text = (prev.tail if prev is not None else parent.text) or ""
    return text.rsplit("\n", 1)[-1] if "\n" in text else ""


def _child_indent(parent) -> str:
    for child in parent:
        return _indent_of(child)
    return _indent_of(parent) + "  "


def _remove_keep_layout(el) -> None:
    """Remove `el`; the whitespace that followed it now follows its previous sibling."""
    parent, prev = el.getparent(), el.getprevious()
    tail = el.tail
    if prev is not None:
        prev.tail = tail
    else:
        parent.text = tail
    parent.remove(el)


def _insert_after(anchor, new, parent) -> None:
    """Insert `new` after `anchor` (or as the first child when anchor is None) on a line of its own."""
    if anchor is not None:
        new.tail = anchor.tail
        anchor.addnext(new)
        return
    lead = parent.text if parent.text and not parent.text.strip() else ""
    if len(parent):
        new.tail = lead or None  # the same layout before the new first child as before the old one
    else:
        new.tail = lead or "\n" + _indent_of(parent)
        parent.text = "\n" + _indent_of(parent) + "  "
    parent.insert(0, new)


def _service_engines(root) -> list:
    engines = [e for s in _children(root, "Service") for e in _children(s, "Engine")]
    if not engines:
        raise XmlEditError("server.xml has no <Service><Engine> element.")
    return engines


# ---- server.xml edits ------------------------------------------------------------------------


def _is_http_connector(conn) -> bool:
    protocol = conn.get("protocol", "HTTP/1.1")
    return ("HTTP/1.1" in protocol or "Http11" in protocol) and conn.get("SSLEnabled", "false") != "true"


def set_http_port(port: int) -> Callable:
    """The first plain-HTTP Connector listens on `port` (the node's HTTP port)."""

    def apply(root) -> None:
        for service in _children(root, "Service"):
            for conn in _children(service, "Connector"):
                if _is_http_connector(conn):
                    conn.set("port", str(port))
                    return
        raise XmlEditError("server.xml has no plain HTTP <Connector> to set the port on.")

    return apply


def drop_apr_listener(root) -> None:
    """Replace the AprLifecycleListener by a comment: without libtcnative it only logs a SEVERE at start."""
    for listener in _children(root, "Listener"):
        if listener.get("className") == APR_LISTENER:
            old = etree.tostring(listener, with_tail=False).decode().replace("--", "- -")
            note = etree.Comment(f" Removed by the Joget cluster console (no Tomcat Native here): {old} ")
            note.tail = listener.tail
            listener.getparent().replace(listener, note)


def set_jvm_route(route: str) -> Callable:
    def apply(root) -> None:
        for engine in _service_engines(root):
            engine.set("jvmRoute", route)

    return apply


@dataclass(frozen=True)
class Member:
    host: str
    unique_id: str
    port: int = RECEIVER_PORT


def unique_id(jvm_route: str) -> str:
    """16 bytes derived from the jvmRoute (signed, as Tomcat's Byte.parseByte reads them): stable per node."""
    raw = hashlib.sha256(f"jcc-member:{jvm_route}".encode()).digest()[:16]
    return "{" + ",".join(str(b - 256 if b > 127 else b) for b in raw) + "}"


@dataclass
class ClusterSpec:
    """Membership of one node: multicast (Tomcat's defaults), or static with the other app servers listed."""

    multicast: bool = True
    local: Member | None = None
    others: list[Member] = field(default_factory=list)
    send_options: str = ""  # channelSendOptions; "": Tomcat's default (8, asynchronous)


def render_static_cluster(spec: ClusterSpec, indent: str) -> etree._Element:
    """An explicit SimpleTcpCluster with StaticMembershipService: for networks without multicast."""
    if spec.local is None:
        raise XmlEditError("static membership needs this node's own address and unique id.")
    i = [indent + "  " * n for n in range(4)]
    members = "".join(
        f'\n{i[3]}<Member className="{STATIC_MEMBER}" host="{m.host}" port="{m.port}" uniqueId="{m.unique_id}"/>'
        for m in spec.others
    )
    text = f"""<Cluster className="{CLUSTER_CLASS}" channelSendOptions="{spec.send_options or 8}">
{i[1]}<Manager className="org.apache.catalina.ha.session.DeltaManager" expireSessionsOnShutdown="false" \
notifyListenersOnReplication="true"/>
{i[1]}<Channel className="org.apache.catalina.tribes.group.GroupChannel">
{i[2]}<Membership className="{STATIC_SERVICE}">
{i[3]}<LocalMember className="{STATIC_MEMBER}" uniqueId="{spec.local.unique_id}"/>{members}
{i[2]}</Membership>
{i[2]}<Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver" address="{spec.local.host}" \
port="{spec.local.port}" autoBind="1" selectorTimeout="5000" maxThreads="6"/>
{i[2]}<Sender className="org.apache.catalina.tribes.transport.ReplicationTransmitter">
{i[3]}<Transport className="org.apache.catalina.tribes.transport.nio.PooledParallelSender"/>
{i[2]}</Sender>
{i[2]}<Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpPingInterceptor"/>
{i[2]}<Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"/>
{i[2]}<Interceptor className="org.apache.catalina.tribes.group.interceptors.MessageDispatchInterceptor"/>
{i[1]}</Channel>
{i[1]}<Valve className="org.apache.catalina.ha.tcp.ReplicationValve" filter=""/>
{i[1]}<Valve className="org.apache.catalina.ha.session.JvmRouteBinderValve"/>
{i[1]}<ClusterListener className="org.apache.catalina.ha.session.ClusterSessionListener"/>
{i[0]}</Cluster>"""
    return etree.fromstring(text)


def _same_element(a, b) -> bool:
    """Equal ignoring layout whitespace (text/tails that are only whitespace)."""
    if a.tag != b.tag or dict(a.attrib) != dict(b.attrib) or (a.text or "").strip() != (b.text or "").strip():
        return False
    ca = [c for c in a if isinstance(c.tag, str)]
    cb = [c for c in b if isinstance(c.tag, str)]
    return len(ca) == len(cb) and all(_same_element(x, y) for x, y in zip(ca, cb, strict=True))


def _is_static(cluster) -> bool:
    return any("StaticMembership" in (el.get("className") or "") for el in cluster.iter())


def _cluster_comment(engine):
    """The stock commented-out Cluster element, to put the live one right after it."""
    for child in engine:
        if isinstance(child, etree._Comment) and CLUSTER_CLASS in (child.text or ""):
            return child
    return None


def _set_send_options(cluster, send_options: str) -> None:
    """channelSendOptions as the cluster says: set when it asks for some; when it does not, only the console's own
    value goes (written by name, so that it is told apart from an admin's own number, which stays)."""
    if send_options:
        cluster.set("channelSendOptions", send_options)
    elif cluster.get("channelSendOptions") == SYNCHRONOUS_SEND_OPTIONS:
        del cluster.attrib["channelSendOptions"]


def set_cluster(spec: ClusterSpec) -> Callable:
    """Exactly one Cluster element, inside the Engine, as `spec` says; others are removed."""

    def apply(root) -> None:
        engine = _service_engines(root)[0]
        clusters = [c for c in root.iter() if _local(c) == "Cluster"]
        keep = next((c for c in clusters if c.getparent() is engine), None)
        for c in clusters:
            if c is not keep:
                _remove_keep_layout(c)
        if spec.multicast:
            ok = keep is not None and keep.get("className") == CLUSTER_CLASS and not _is_static(keep)
            wanted = etree.Element("Cluster", className=CLUSTER_CLASS)
            if ok:  # the admin's own element is kept; only its send options follow the cluster's setting
                _set_send_options(keep, spec.send_options)
            else:
                _set_send_options(wanted, spec.send_options)
        else:
            wanted = render_static_cluster(spec, _indent_of(keep) if keep is not None else _child_indent(engine))
            ok = keep is not None and _same_element(keep, wanted)
        if ok:
            return
        if keep is not None:
            wanted.tail = keep.tail
            engine.replace(keep, wanted)
        else:
            _insert_after(_cluster_comment(engine), wanted, engine)

    return apply


def server_xml_summary(data: bytes) -> dict:
    """What the steps verify: jvmRoute, HTTP port, Cluster elements, membership kind, static members."""
    root = parse(data, "server.xml").root
    engine = _service_engines(root)[0]
    clusters = [c for c in root.iter() if _local(c) == "Cluster"]
    ports = [c.get("port") for s in _children(root, "Service") for c in _children(s, "Connector")
             if _is_http_connector(c)]
    return {
        "jvm_route": engine.get("jvmRoute"),
        "http_port": int(ports[0]) if ports and (ports[0] or "").isdigit() else None,
        "clusters": len(clusters),
        "cluster_in_engine": any(c.getparent() is engine for c in clusters),
        "static": any(_is_static(c) for c in clusters),
        "members": [m.get("host") for c in clusters for m in c.iter() if _local(m) == "Member"],
        "apr_listener": any(el.get("className") == APR_LISTENER for el in _children(root, "Listener")),
    }


# ---- web.xml ---------------------------------------------------------------------------------

# Elements that, in the old web-app 2.3 DTD, must come before <distributable/>.
_BEFORE_DISTRIBUTABLE = {"icon", "display-name", "description"}


def has_distributable(data: bytes) -> bool:
    root = parse(data, "web.xml").root
    return any(_local(c) == "distributable" for c in root)


def ensure_distributable(root) -> None:
    """<distributable/> in the web-app's own namespace, after any leading description elements."""
    if _local(root) != "web-app":
        raise XmlEditError(f"web.xml: the root element is <{_local(root)}>, not <web-app>.")
    if any(_local(c) == "distributable" for c in root):
        return
    ns = etree.QName(root).namespace
    # Made as a child first so that it takes the root's (default) namespace, then moved into place.
    new = etree.SubElement(root, f"{{{ns}}}distributable" if ns else "distributable")
    root.remove(new)
    anchor = None
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if _local(child) in _BEFORE_DISTRIBUTABLE:
            anchor = child
        else:
            break
    _insert_after(anchor, new, root)


def edit_web_xml(data: bytes) -> bytes:
    """web.xml with <distributable/>; bytes unchanged when it is there already."""
    if has_distributable(data):
        return data
    return edit(data, ensure_distributable, what="web.xml")


def comments(data: bytes) -> list[str]:
    """Every comment's text, in order (tests use it to show nothing was lost)."""
    doc = parse(data)
    out = [c.text for c in reversed(list(doc.root.itersiblings(preceding=True))) if isinstance(c, etree._Comment)]
    return out + [c.text for c in doc.root.iter(etree.Comment)]


__all__: Iterable[str] = [
    "ClusterSpec", "Member", "XmlEditError", "comments", "drop_apr_listener", "edit", "edit_web_xml",
    "ensure_distributable", "has_distributable", "parse", "render_static_cluster", "serialize",
    "server_xml_summary", "set_cluster", "set_http_port", "set_jvm_route", "unique_id",
]
