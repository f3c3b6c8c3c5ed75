"""The floor of the deployment benchmark: a bare Fabric script that sends the console's remote commands.

One SSH connection per host (host key checked against the testbed's known_hosts), the hosts in parallel,
each host's commands in series, as an admin's script would: no database, no task queue, no log storage.
The commands are those the console's steps send (read, multicast check, atomic write with a backup,
sha256 before and after the upload, the restart stand-in, the final check), so the difference between the
two is the console's orchestration, not different remote work.
"""

from __future__ import annotations

import base64
import io
import shlex
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import paramiko
from fabric import Config, Connection

from benchmarks import workload

q = shlex.quote


def connect(inventory: dict, node: dict) -> Connection:
    conn = Connection(node["address"], user=node["ssh_user"], port=node["ssh_port"],
                      config=Config(ssh_config=paramiko.SSHConfig()),
                      connect_kwargs={"key_filename": inventory["identity_file"], "look_for_keys": False,
                                      "allow_agent": False})
    conn.client.load_host_keys(inventory["known_hosts"])
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    conn.open()
    return conn


def sh(conn: Connection, command: str) -> str:
    return conn.run(command, hide=True, in_stream=False, timeout=120).stdout


def read(conn: Connection, path: str) -> bytes | None:
    r = conn.run(f"test -f {q(path)} && base64 -w0 {q(path)}", hide=True, warn=True, in_stream=False)
    return base64.b64decode(r.stdout.strip()) if r.ok else None


def write(conn: Connection, path: str, data, mode: str, owner: str) -> None:
    """Upload to a private staging dir, keep a dated backup, move into place (as the console does)."""
    stage = f"/tmp/floor-{uuid.uuid4().hex}"
    sh(conn, f"mkdir -m 0700 {stage}")
    sftp = conn.client.open_sftp()
    try:
        if isinstance(data, bytes):
            sftp.putfo(io.BytesIO(data), f"{stage}/data")
        else:
            sftp.put(str(data), f"{stage}/data")
    finally:
        sftp.close()
    p, tmp = q(path), q(f"{path}.floor-tmp")
    sh(conn, f"set -e; if [ -f {p} ]; then cp -p {p} {p}.bak-$(date +%Y%m%d%H%M%S); fi; "
             f"cat {stage}/data > {tmp}; rm -rf {stage}; chmod {mode} {tmp}; chown {owner} {tmp}; mv -f {tmp} {p}")


def server_xml(conn: Connection, node: dict, war, war_sha: str) -> None:
    """Read, check multicast, write, read back."""
    read(conn, workload.SERVER_XML)
    sh(conn, "ip -o addr show; echo ---; ip -o link show")
    sh(conn, "ip route get 228.0.0.4")
    wanted = workload.render("server.xml.j2", node["jvm_route"])
    write(conn, workload.SERVER_XML, wanted, "0640", "tomcat:tomcat")
    assert read(conn, workload.SERVER_XML) == wanted


def etc_hosts(conn: Connection, node: dict, war, war_sha: str) -> None:
    """The host name on the node's own address."""
    ip = node["address"]
    hostname = sh(conn, "hostname").strip()
    hosts = read(conn, "/etc/hosts").decode()
    write(conn, "/etc/hosts", hosts.replace(f"127.0.1.1\t{hostname}", f"{ip}\t{hostname}").encode(), "0644",
          "root:root")
    assert sh(conn, f"getent hosts {q(hostname)}").split()[0] == ip


def setenv(conn: Connection, node: dict, war, war_sha: str) -> None:
    wanted = workload.render("setenv.sh.j2", node["jvm_route"])
    read(conn, workload.SETENV)
    write(conn, workload.SETENV, wanted, "0755", "tomcat:tomcat")
    assert read(conn, workload.SETENV) == wanted


def jw_war(conn: Connection, node: dict, war, war_sha: str) -> None:
    """sha256 before, upload to a hidden name, sha256, move into place, sha256 again."""
    sh(conn, f"sha256sum {workload.WAR} 2>/dev/null || true")
    staging = f"{workload.BASE}/webapps/.jw.war.floor-upload"
    sftp = conn.client.open_sftp()
    try:
        sftp.put(str(war), staging)
    finally:
        sftp.close()
    assert sh(conn, f"sha256sum {staging}").split()[0] == war_sha
    sh(conn, f"chown tomcat:tomcat {staging} && chmod 0644 {staging} && mv -f {staging} {workload.WAR}")
    assert sh(conn, f"sha256sum {workload.WAR}").split()[0] == war_sha


PARTS = (server_xml, etc_hosts, setenv, jw_war)


def deploy_host(inventory: dict, node: dict, war, war_sha: str, parallel: bool) -> None:
    """The four parts in series (a plain script), or at once on the one connection (as the console runs
    its independent steps); then the restart stand-in and the final check."""
    conn = connect(inventory, node)
    try:
        if parallel:
            with ThreadPoolExecutor(len(PARTS)) as ex:
                for f in [ex.submit(part, conn, node, war, war_sha) for part in PARTS]:
                    f.result()
        else:
            for part in PARTS:
                part(conn, node, war, war_sha)
        sh(conn, workload.RESTART)
        sh(conn, workload.verify_command(node["name"], node["jvm_route"]))
    finally:
        conn.close()


def run(inventory: dict, war, war_sha: str, parallel: bool = False) -> float:
    """Seconds for the whole workload on every app server, hosts in parallel."""
    nodes = workload.app_hosts(inventory)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(nodes)) as ex:
        for f in [ex.submit(deploy_host, inventory, n, war, war_sha, parallel) for n in nodes]:
            f.result()
    return time.perf_counter() - t0
