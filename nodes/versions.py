"""One profile per Joget major version: what the console writes (the app server's options, the JDBC driver
and URL options) and what it checks (Java and Tomcat ranges, the servlet API of the WAR).

Pure (no Django models, standard library only), on the nodes floor so that health checks, licensing and the
deployment steps can all read it. Every value and where it comes from: docs/joget-versions.md. A value
marked `confirmed=False` in a profile is the best reading of what the sources say, not a documented fact.
"""

from __future__ import annotations

import re
import shlex
import zipfile
from dataclasses import dataclass, field
from xml.etree import ElementTree  # noqa: S405 - parses the web.xml of a WAR the admin uploaded; no DTDs fetched

JAVAX, JAKARTA = "javax", "jakarta"
# The web-app namespace of each servlet API line: Java EE up to 8 (javax), Jakarta EE 9 and later (jakarta).
_NAMESPACES = {
    "http://java.sun.com/xml/ns/j2ee": JAVAX,        # Servlet 2.4
    "http://java.sun.com/xml/ns/javaee": JAVAX,      # Servlet 2.5, 3.0 (Joget DX 8's own web.xml)
    "http://xmlns.jcp.org/xml/ns/javaee": JAVAX,     # Servlet 3.1, 4.0
    "https://jakarta.ee/xml/ns/jakartaee": JAKARTA,  # Servlet 5.0, 6.0, 6.1
}


@dataclass(frozen=True)
class Profile:
    major: int
    name: str
    tomcat: tuple[int, ...]        # supported Tomcat majors
    java: tuple[int, ...]          # supported Java feature releases
    servlet_api: str               # what its jw.war is built against (JAVAX or JAKARTA)
    jdbc_driver: str
    jdbc_options: tuple[tuple[str, str], ...]  # URL options, in the order Joget's own profile file has them
    cluster_agent: bool            # -javaagent:<wflow>/wflow-cluster.jar when the bundle put it there
    extra_agents: bool             # aspectjweaver and glowroot agents when the bundle has them
    ignite: bool                   # -Dwflow.ignite=true and --add-opens for Ignite's off-heap buffers
    wars: tuple[str, ...] = ("jw",)
    confirmed: dict[str, bool] = field(default_factory=dict)  # which fields the sources state (else inferred)

    def tomcat_text(self) -> str:
        return " or ".join(f"Tomcat {t}" for t in self.tomcat)

    def java_text(self) -> str:
        return "/".join(str(j) for j in self.java)


# MySQL Connector/J 5.x: the old class name; 8.x: com.mysql.cj (the old name is deprecated there).
_CJ_OPTIONS = (("characterEncoding", "UTF-8"), ("useSSL", "false"), ("allowPublicKeyRetrieval", "true"),
               ("serverTimezone", "UTC"))
# useSSL/allowPublicKeyRetrieval: what the console has always written (Connector/J 5.1.4x knows both); Joget's
# own v5-v7 template has characterEncoding only.
_OLD_OPTIONS = (("characterEncoding", "UTF-8"), ("useSSL", "false"), ("allowPublicKeyRetrieval", "true"))

PROFILES: dict[int, Profile] = {p.major: p for p in (
    Profile(5, "Joget Workflow v5", tomcat=(7, 8), java=(7, 8), servlet_api=JAVAX,
            jdbc_driver="com.mysql.jdbc.Driver", jdbc_options=_OLD_OPTIONS, cluster_agent=False,
            extra_agents=False, ignite=False, wars=("jw", "jwdesigner"),
            confirmed={"wars": True, "jdbc_driver": True}),
    Profile(6, "Joget Workflow v6", tomcat=(8,), java=(8,), servlet_api=JAVAX,
            jdbc_driver="com.mysql.jdbc.Driver", jdbc_options=_OLD_OPTIONS, cluster_agent=False,
            extra_agents=False, ignite=False, confirmed={"jdbc_driver": True}),
    Profile(7, "Joget DX 7", tomcat=(8, 9), java=(8, 11), servlet_api=JAVAX,
            jdbc_driver="com.mysql.jdbc.Driver", jdbc_options=_OLD_OPTIONS, cluster_agent=False,
            extra_agents=False, ignite=False),
    Profile(8, "Joget DX 8", tomcat=(9,), java=(11, 17), servlet_api=JAVAX,
            jdbc_driver="com.mysql.cj.jdbc.Driver", jdbc_options=_CJ_OPTIONS, cluster_agent=True,
            extra_agents=True, ignite=False,
            confirmed={"tomcat": True, "java": True, "servlet_api": True, "jdbc_driver": True,
                       "jdbc_options": True, "cluster_agent": True, "extra_agents": True}),
    Profile(9, "Joget DX 9", tomcat=(9,), java=(11, 17), servlet_api=JAVAX,
            jdbc_driver="com.mysql.cj.jdbc.Driver", jdbc_options=_CJ_OPTIONS, cluster_agent=True,
            extra_agents=True, ignite=True, confirmed={"ignite": True}),
)}


def profile_for(major: int) -> Profile:
    """The profile of a Joget major; an unknown one gets the nearest known (older majors the oldest,
    newer the newest), which is what the console would have to assume anyway."""
    if major in PROFILES:
        return PROFILES[major]
    return PROFILES[min(PROFILES)] if major < min(PROFILES) else PROFILES[max(PROFILES)]


def major_of(version: str) -> int:
    head = str(version).strip().split(".", 1)[0]
    return int(head) if head.isdigit() else 0


# ---- the app server's options ------------------------------------------------------------------------

@dataclass(frozen=True)
class OptionLine:
    """One option for CATALINA_OPTS; `when_file` set: only when that file exists on the node (a shell test),
    `when_glob`: the first file matching that glob, substituted for `{file}` in `option`."""

    option: str
    why: str
    when_file: str = ""
    when_glob: str = ""


def jvm_options(profile: Profile, *, wflow_home: str, node_name: str, catalina_home: str,
                ignite_addresses: tuple[str, ...] = ()) -> list[OptionLine]:
    """The options in the order Joget documents: -Dwflow.name before -javaagent:wflow-cluster.jar (the agent
    reads the node name when it starts). The values are allow-listed model fields (paths, names)."""
    out = [OptionLine(f"-Dwflow.home={wflow_home} -Dwflow.name={node_name}",
                      "wflow.home: Joget's shared directory; wflow.name: this node's name in servers.json, "
                      "read by the cluster agent, so it comes first.")]
    if profile.ignite:
        out.append(OptionLine("-Dwflow.ignite=true --add-opens=java.base/java.nio=ALL-UNNAMED",
                              "DX 9's Ignite cache (Hibernate L2); Ignite reads java.nio buffers by reflection, "
                              "which Java 17 refuses unless the package is opened."))
        if ignite_addresses:
            out.append(OptionLine(f"-Dwflow.igniteStaticIP={','.join(ignite_addresses)}",
                                  "Ignite peers by static address (no multicast discovery)."))
    if profile.cluster_agent:
        out.append(OptionLine(f"-javaagent:{wflow_home}/wflow-cluster.jar",
                              "the cluster agent, when the bundle put it into the shared directory.",
                              when_file=f"{wflow_home}/wflow-cluster.jar"))
    if profile.extra_agents:
        out.append(OptionLine("-javaagent:{file}", "AspectJ load-time weaving, when the bundle's Tomcat has it.",
                              when_glob=f"{catalina_home}/lib/aspectjweaver-*.jar"))
        out.append(OptionLine(f"-javaagent:{wflow_home}/glowroot/glowroot.jar",
                              "the Glowroot APM agent, when the bundle put it into the shared directory.",
                              when_file=f"{wflow_home}/glowroot/glowroot.jar"))
    return out


def render_options(lines: list[OptionLine]) -> list[str]:
    """Shell lines appending each option to CATALINA_OPTS (the conditions as sh tests)."""
    out = []
    for line in lines:
        out.append(f"# {line.why}")
        if line.when_file:
            out += [f"if [ -f {shlex.quote(line.when_file)} ]; then",
                    f'  CATALINA_OPTS="$CATALINA_OPTS {line.option}"', "fi"]
        elif line.when_glob:
            folder, pattern = line.when_glob.rsplit("/", 1)
            out += [f"for f in {shlex.quote(folder)}/{pattern}; do",
                    f'  [ -f "$f" ] && CATALINA_OPTS="$CATALINA_OPTS {line.option.format(file="$f")}" && break',
                    "done"]
        else:
            out.append(f'CATALINA_OPTS="$CATALINA_OPTS {line.option}"')
    return out


# ---- JDBC ---------------------------------------------------------------------------------------------

def jdbc_query(profile: Profile, extra: tuple[tuple[str, str], ...] = ()) -> str:
    return "&".join(f"{k}={v}" for k, v in (*profile.jdbc_options, *extra))


# ---- servlet API --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServletApi:
    family: str   # JAVAX, JAKARTA or "" (unknown)
    version: str  # the web-app version attribute, e.g. "3.0", "6.0"

    def __str__(self):
        return f"{self.family or 'unknown'} (web-app {self.version or '?'})"


def servlet_api_of_web_xml(data: bytes) -> ServletApi:
    """The servlet API a web.xml declares by its root's namespace and version attribute."""
    try:
        root = ElementTree.fromstring(data)  # noqa: S314 - ElementTree fetches no external entities
    except ElementTree.ParseError:
        return ServletApi("", "")
    m = re.match(r"\{([^}]*)\}", root.tag)
    family = _NAMESPACES.get(m.group(1).rstrip("/") if m else "", "")
    return ServletApi(family, root.get("version", ""))


def servlet_api_of_war(path) -> ServletApi:
    try:
        with zipfile.ZipFile(path) as war:
            return servlet_api_of_web_xml(war.read("WEB-INF/web.xml"))
    except (KeyError, zipfile.BadZipFile, OSError):
        return ServletApi("", "")


def war_version(path) -> str:
    """The Joget version inside a jw.war (a path or a seekable file): the stand-in's
    WEB-INF/standin.properties, else the manifest's Implementation-Version, else the wflow-core jar's name;
    "" when none says. Raises zipfile.BadZipFile for a file that is not a WAR."""
    with zipfile.ZipFile(path) as war:
        names = war.namelist()
        if "WEB-INF/standin.properties" in names:
            m = re.search(r"^version=(\S+)", war.read("WEB-INF/standin.properties").decode(errors="replace"), re.M)
            if m:
                return m.group(1)
        if "META-INF/MANIFEST.MF" in names:
            manifest = war.read("META-INF/MANIFEST.MF").decode(errors="replace")
            m = re.search(r"^Implementation-Version:\s*(\S+)", manifest, re.M)
            if m:
                return m.group(1)
        for name in names:
            m = re.match(r"WEB-INF/lib/wflow-core-(\d[\w.-]*)\.jar$", name)
            if m:
                return m.group(1)
    return ""


def tomcat_servlet_api(tomcat_major: int) -> str:
    """Tomcat 10 moved to Jakarta EE 9 (jakarta.servlet); 9 and older are javax.servlet."""
    return JAKARTA if tomcat_major >= 10 else JAVAX


def servlet_mismatch(api: ServletApi, tomcat_major: int) -> str:
    """Why this WAR cannot run on this Tomcat, or "" (also when either is unknown: nothing to say)."""
    if not api.family or not tomcat_major:
        return ""
    wants = tomcat_servlet_api(tomcat_major)
    if api.family == wants:
        return ""
    return (f"the jw.war is a {api} web application, Tomcat {tomcat_major} runs only {wants}.servlet web "
            f"applications")


# ---- Java and Tomcat versions as the node reports them -----------------------------------------------

def java_feature(text: str) -> int:
    """`java -version` output (or a version string) -> the feature release: 1.8.0_292 -> 8, 17.0.15 -> 17."""
    m = re.search(r'version "?(\d+)(?:\.(\d+))?', text) or re.search(r"^(\d+)(?:\.(\d+))?", text.strip())
    if not m:
        return 0
    first = int(m.group(1))
    return int(m.group(2) or 0) if first == 1 else first


def tomcat_major(text: str) -> int:
    """`catalina.sh version` / ServerInfo output, or an archive name (apache-tomcat-9.0.85.tar.gz) -> 9."""
    m = re.search(r"Server number:\s*(\d+)", text) or re.search(r"Apache Tomcat/(\d+)", text) or \
        re.search(r"apache-tomcat-(\d+)\.", text) or re.search(r"tomcat(\d+)", text)
    return int(m.group(1)) if m else 0
