"""SSH into testbed hosts the way the console does: the generated client key and the pinned host key."""

from __future__ import annotations

import base64
import socket

import paramiko


def node_of(inventory: dict, name: str) -> dict:
    for node in [*inventory["nodes"], *inventory.get("spare_nodes", [])]:  # a spare host is reached the same way
        if node["name"] == name:
            return node
    raise KeyError(f"no node {name!r} in the inventory (nodes: {', '.join(n['name'] for n in inventory['nodes'])})")


def connect(inventory: dict, name: str, *, host_key: str | None = None, timeout: float = 10.0) -> paramiko.SSHClient:
    """An SSHClient logged in as root that accepts only the pinned host key (RejectPolicy).

    `host_key` overrides the pinned key (tests use it to check a wrong key is refused).
    """
    node = node_of(inventory, name)
    keytype, b64 = (host_key or node["host_key"]).split()[:2]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(node["address"], keytype, paramiko.PKey.from_type_string(keytype, base64.b64decode(b64)))
    sock = socket.create_connection((node["address"], node["ssh_port"]), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # ~20 ms less per command (TESTBED-NOTES)
    try:
        client.connect(node["address"], port=node["ssh_port"], username=node["ssh_user"],
                       key_filename=inventory["identity_file"], look_for_keys=False, allow_agent=False,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, sock=sock)
    except BaseException:
        client.close()
        sock.close()
        raise
    return client


def run(client: paramiko.SSHClient, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one command on an open connection."""
    _, out, err = client.exec_command(command, timeout=timeout)
    stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return out.channel.recv_exit_status(), stdout, stderr
