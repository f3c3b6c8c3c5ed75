"""The MySQL/MariaDB client protocol, just enough to log in and ping.

A probe that only opened a TCP connection and left would count as a handshake error, and
max_connect_errors of them block the console; so the probe logs in and says goodbye properly.
"""

from __future__ import annotations

import hashlib
import struct

CLIENT_CAPS = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000  # long password, with db, protocol 41, secure conn, plugin auth


def _mysql_read(sock) -> tuple[int, bytes]:
    head = _recv_exact(sock, 4)
    length = head[0] | head[1] << 8 | head[2] << 16
    return head[3], _recv_exact(sock, length)


def _recv_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    return buf


def _mysql_send(sock, seq: int, payload: bytes) -> None:
    sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def mysql_scramble(plugin: str, password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    pw = password.encode()
    if plugin == "caching_sha2_password":
        h1 = hashlib.sha256(pw).digest()
        return _xor(h1, hashlib.sha256(hashlib.sha256(h1).digest() + nonce).digest())
    # mysql_native_password: the protocol mandates SHA-1; nothing is stored with it.
    h1 = hashlib.sha1(pw).digest()  # noqa: S324
    return _xor(h1, hashlib.sha1(nonce + hashlib.sha1(h1).digest()).digest())  # noqa: S324


def parse_greeting(payload: bytes) -> tuple[str, bytes, str]:
    """(server version, 20-byte nonce, auth plugin) from a protocol-10 greeting."""
    if payload[:1] == b"\xff":
        raise MySQLError(_mysql_error(payload))
    if payload[:1] != b"\x0a":
        raise MySQLError("not a MySQL/MariaDB server (unexpected greeting)")
    end = payload.index(b"\0", 1)
    version = payload[1:end].decode(errors="replace")
    pos = end + 1 + 4
    nonce = payload[pos:pos + 8]
    pos += 8 + 1 + 2 + 1 + 2 + 2
    auth_len = payload[pos]
    pos += 1 + 10
    nonce += payload[pos:pos + max(13, auth_len - 8)].rstrip(b"\0")[:12]
    pos += max(13, auth_len - 8)
    plugin = payload[pos:].split(b"\0", 1)[0].decode() or "mysql_native_password"
    return version, nonce, plugin


class MySQLError(Exception):
    pass


class LoginUnverified(MySQLError):
    """MySQL 8 asks for the password over TLS (or RSA) until the user's first login since its start."""


def _mysql_error(payload: bytes) -> str:
    code = struct.unpack("<H", payload[1:3])[0]
    msg = payload[9:] if payload[3:4] == b"#" else payload[3:]
    return f"error {code}: {msg.decode(errors='replace')}"


def _login_response(user: str, database: str, plugin: str, scramble: bytes) -> bytes:
    return (struct.pack("<IIB", CLIENT_CAPS, 1 << 24, 45) + b"\0" * 23 + user.encode() + b"\0"
            + bytes([len(scramble)]) + scramble + database.encode() + b"\0" + plugin.encode() + b"\0")


def _mysql_auth(sock, seq: int, payload: bytes, password: str) -> None:
    """Follow the server's answers to our login until OK; raise MySQLError on refusal."""
    for _ in range(4):
        kind = payload[:1]
        if kind == b"\x00":
            return
        if kind == b"\xff":
            raise MySQLError(_mysql_error(payload))
        if kind == b"\xfe":  # switch to another plugin, with a new nonce
            plugin, _, nonce = payload[1:].partition(b"\0")
            _mysql_send(sock, seq + 1, mysql_scramble(plugin.decode(), password, nonce.rstrip(b"\0")))
        elif payload[:2] == b"\x01\x03":  # caching_sha2 fast path accepted: OK follows
            pass
        elif payload[:2] == b"\x01\x04":
            raise LoginUnverified("reached; the login needs caching_sha2 full authentication (TLS): not verified")
        else:
            raise MySQLError(f"unexpected answer to the login (0x{payload[:1].hex()})")
        seq, payload = _mysql_read(sock)
    raise MySQLError("the login did not finish")



def login_and_ping(sock, user: str, password: str, database: str) -> str:
    """Log in on a connected socket, ping, quit; the server's version. Raises MySQLError (LoginUnverified
    when the server was reached but the login could not be verified without TLS)."""
    seq, payload = _mysql_read(sock)
    version, nonce, plugin = parse_greeting(payload)
    _mysql_send(sock, seq + 1, _login_response(user, database, plugin, mysql_scramble(plugin, password, nonce)))
    seq, payload = _mysql_read(sock)
    _mysql_auth(sock, seq, payload, password)
    _mysql_send(sock, 0, b"\x0e")  # COM_PING
    _, payload = _mysql_read(sock)
    if payload[:1] != b"\x00":
        raise MySQLError("ping refused")
    _mysql_send(sock, 0, b"\x01")  # COM_QUIT: a clean goodbye, not an aborted connection
    return version
