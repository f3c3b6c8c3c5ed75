"""The one connection helper for all remote work.

Every SSH session the console opens goes through `open_connection()`: Fabric's
Connection wrapped (not subclassed) with the node's pinned host key, a
RejectPolicy, a connect timeout, a command timeout and output streamed to a
writer. Fabric's own default trusts any host key (AutoAddPolicy); we replace
that policy before the first byte is sent.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import shlex
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import paramiko
from django.conf import settings
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

quote = shlex.quote


def facts(text: str) -> dict[str, list[str]]:
    """`key=value` lines of a probe script's output -> {key: [values]} (a key may repeat; lines without `=`
    are left out). Every probe on a node prints its findings this way."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out.setdefault(key.strip(), []).append(value)
    return out


def fact(found: dict[str, list[str]], key: str, default: str = "") -> str:
    """The first value of `key` in `facts()` output."""
    return found.get(key, [default])[0]


class SSHError(Exception):
    """An SSH failure whose message is safe to show to the admin."""


class HostKeyNotPinned(SSHError):
    pass


class HostKeyMismatch(SSHError):
    def __init__(self, message: str, offered: str = ""):
        super().__init__(message)
        self.offered = offered  # the key the server offered ("type base64"), for the admin to compare


class ConnectFailed(SSHError):
    pass


class RemoteFileError(SSHError):
    """A file could not be read or written on the node (the connection itself is fine)."""


class UnsafePath(RemoteFileError):
    """A file operation refused: root would act in a directory that other users can change."""


UNSAFE_EXIT = 5

# Shell functions (no values inside: paths come as arguments) that say who may act in a directory.
# dir_owner DIR prints `root` when root alone can change DIR and every directory above it (as given
# and as resolved; a sticky /tmp above is fine), else the user owning DIR; a directory owned by root
# that others can still change (through a parent, or group/other write) is refused (exit 5).
# as_dir_owner DIR CMD... runs CMD as that user. DIR may not exist yet: its nearest existing parent
# decides. A symlink planted by a service user is then only ever followed with that user's rights.
DIR_OWNER_SH = r"""dir_owner() {
  _a=$1; _d=$1
  while [ ! -e "$_d" ]; do _d=${_d%/*}; [ -n "$_d" ] || _d=/; done
  _r=$(readlink -f -- "$_d") && [ -d "$_r" ] || { echo "$_a: not a directory" >&2; return 1; }
  set --
  for _p in "$_d" "$_r"; do
    while [ "$_p" != / ]; do set -- "$@" "$_p"; _p=${_p%/*}; [ -n "$_p" ] || _p=/; done
  done
  _bad=$({ stat -L -c '%u %a 0' -- / "$@"; stat -L -c '%u %a 1' -- "$_d" "$_r"; } | while read -r _o _m _f; do
    [ "$_o" = 0 ] && { [ $(( 0$_m & 022 )) -eq 0 ] || [ "$_f$(( 0$_m & 01000 ))" = 0512 ]; } || echo x; done)
  [ -z "$_bad" ] && { echo root; return 0; }
  _u=$(stat -c %U -- "$_r")
  [ "$_u" != root ] && [ "$_u" != UNKNOWN ] && { echo "$_u"; return 0; }
  echo "$_a: other users than root can change this directory or one above it: refusing to act in it as root" >&2
  return 5
}
as_dir_owner() {
  _u=$(dir_owner "$1") || return; shift
  if [ "$_u" = root ]; then "$@"; else runuser -u "$_u" -- "$@"; fi
}"""

# The write itself, after DIR_OWNER_SH and S (private stage), P, M, OU, OG, B are set (see write_file).
_WRITE_SH = r"""D=${P%/*}; N=${P##*/}; [ -n "$D" ] || D=/
U=$(dir_owner "$D") || exit
[ -d "$D" ] || as_dir_owner "$D" mkdir -p -- "$D" || exit 1
R=$(readlink -f -- "$D")
if [ "$U" = root ]; then
  [ -n "$M" ] || M=$(stat -L -c %a -- "$R/$N" 2>/dev/null) || M=644
  [ -n "$OU" ] || { OU=$(stat -L -c %U -- "$R/$N" 2>/dev/null) && OG=$(stat -L -c %G -- "$R/$N"); } || OU=root
  if [ "$B" = 1 ] && [ -f "$R/$N" ]; then
    K=$(mktemp -- "$R/$N.bak-$(date +%Y%m%d%H%M%S)-XXXXXX") && cp -p -- "$R/$N" "$K" || exit 1
  fi
  T=$(mktemp -- "$R/.$N.jcc-XXXXXX") || exit 1
  install -m "$M" -o "$OU" ${OG:+-g "$OG"} -- "$S/data" "$T" && mv -f -T -- "$T" "$R/$N" || { rm -f -- "$T"; exit 1; }
else
  runuser -u "$U" -- sh -c '
    set -e; R=$1; N=$2; M=$3
    if [ -n "$4" ] && [ "$4" != "$(id -un)" ]; then
      echo "$R belongs to $(id -un), who writes there (never root): $N cannot belong to $4" >&2; exit 1; fi
    [ -n "$M" ] || { [ ! -L "$R/$N" ] && M=$(stat -c %a -- "$R/$N" 2>/dev/null); } || M=644
    if [ "$6" = 1 ] && { [ -f "$R/$N" ] || [ -L "$R/$N" ]; }; then
      K=$(mktemp -- "$R/$N.bak-$(date +%Y%m%d%H%M%S)-XXXXXX"); cp -pP -- "$R/$N" "$K"; fi
    T=$(mktemp -- "$R/.$N.jcc-XXXXXX"); trap "rm -f -- \"$T\"" EXIT
    cat > "$T"; chmod "$M" "$T"; [ -z "$5" ] || chgrp "$5" "$T"; mv -f -T -- "$T" "$R/$N"' \
    sh "$R" "$N" "$M" "$OU" "$OG" "$B" < "$S/data"
fi"""


def as_dir_owner(directory: str, command: str) -> str:
    """A shell command running `command` as whoever controls `directory` (see DIR_OWNER_SH): how to read
    a file that a service user could have replaced with a symlink (a log shown to viewers)."""
    return f"{DIR_OWNER_SH}\nas_dir_owner {quote(directory)} sh -c {quote(command)}"


def parse_host_key(line: str) -> paramiko.PKey:
    """`ssh-ed25519 AAAA...` (optionally with a comment) -> a paramiko key."""
    try:
        keytype, b64 = line.split()[:2]
        return paramiko.PKey.from_type_string(keytype, base64.b64decode(b64))
    except (ValueError, TypeError, paramiko.SSHException, IndexError):
        raise SSHError("The stored host key is not an OpenSSH public key line (type and base64).") from None


def fingerprint(line: str) -> str:
    """The SHA256 fingerprint as `ssh-keygen -l` prints it."""
    key = parse_host_key(line)
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _tcp(address: str, port: int, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise ConnectFailed(f"Cannot reach {address}:{port}: {exc.strerror or exc}.") from None
    # ~20 ms less per command on an open connection (measured on the testbed).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def fetch_host_key(address: str, port: int = 22, timeout: float | None = None) -> str:
    """Ask a server for its host key without logging in; returns `type base64`."""
    timeout = timeout or settings.SSH_CONNECT_TIMEOUT
    sock = _tcp(address, port, timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ConnectFailed(f"{address}:{port} did not complete an SSH handshake: {exc}.") from None
    finally:
        transport.close()
    return f"{key.get_name()} {key.get_base64()}"


def load_private_key(text: str, passphrase: str = "") -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise SSHError("The private key is encrypted: give its passphrase.") from None
        except (paramiko.SSHException, ValueError):
            continue
    raise SSHError("The private key is not an OpenSSH, PEM RSA, ECDSA or Ed25519 key.")


@dataclass
class Target:
    """Everything needed to reach one host; built from a Node or by hand."""

    address: str
    port: int = 22
    user: str = "root"
    host_key: str = ""
    private_key: str = ""
    passphrase: str = ""
    password: str = ""
    name: str = ""

    @classmethod
    def for_node(cls, node) -> Target:
        cred = node.effective_credential
        return cls(
            address=node.address,
            port=node.ssh_port,
            user=node.ssh_user,
            host_key=node.host_key,
            private_key=cred.private_key if cred else "",
            passphrase=cred.passphrase if cred else "",
            password=cred.password if cred else "",
            name=node.name,
        )

    @property
    def label(self) -> str:
        return self.name or f"{self.address}:{self.port}"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class LineWriter(io.TextIOBase):
    """A file-like sink that hands complete lines to `emit(stream, line)`."""

    def __init__(self, emit: Callable[[str, str], None], stream: str):
        self._emit, self._stream, self._buf = emit, stream, ""

    def write(self, s: str) -> int:
        self._buf += s
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._emit(self._stream, line)
        return len(s)

    def flush(self) -> None:
        if self._buf:
            self._emit(self._stream, self._buf)
            self._buf = ""


@dataclass
class NodeConnection:
    """An open SSH session to one host. Use as a context manager."""

    target: Target
    connect_timeout: float = field(default_factory=lambda: settings.SSH_CONNECT_TIMEOUT)
    _conn: Connection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # paramiko's SFTP client is not thread-safe, and steps share this connection across threads.
    _sftp_lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> NodeConnection:
        t = self.target
        if not t.host_key:
            raise HostKeyNotPinned(
                f"{t.label}: no confirmed host key. Use 'Connect' on the node page and confirm the fingerprint."
            )
        pinned = parse_host_key(t.host_key)
        connect_kwargs = {"look_for_keys": False, "allow_agent": False, "banner_timeout": self.connect_timeout,
                          "auth_timeout": self.connect_timeout}
        if t.private_key:
            connect_kwargs["pkey"] = load_private_key(t.private_key, t.passphrase)
        elif t.password:
            connect_kwargs["password"] = t.password
        else:
            raise SSHError(f"{t.label}: no credential (SSH key or password) to log in with.")
        connect_kwargs["sock"] = _tcp(t.address, t.port, self.connect_timeout)
        conn = Connection(
            host=t.address,
            port=t.port,
            user=t.user,
            config=Config(ssh_config=paramiko.SSHConfig()),  # ignore ~/.ssh/config
            connect_timeout=self.connect_timeout,
            connect_kwargs=connect_kwargs,
        )
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        host_keys = conn.client.get_host_keys()
        host_keys.clear()
        entry = t.address if t.port == 22 else f"[{t.address}]:{t.port}"
        host_keys.add(entry, pinned.get_name(), pinned)
        try:
            conn.open()
        except paramiko.BadHostKeyException as exc:
            conn.close()
            offered = f"{exc.key.get_name()} {exc.key.get_base64()}"
            connect_kwargs["sock"].close()
            raise HostKeyMismatch(
                f"{t.label}: the host key changed. Pinned {fingerprint(t.host_key)}, offered "
                f"{fingerprint(offered)}. Nothing was run. If the server was reinstalled, "
                "confirm the new key on the node page; otherwise treat this as an attack.",
                offered=offered,
            ) from None
        except paramiko.AuthenticationException:
            conn.close()  # a refused login would otherwise leave its transport open
            raise ConnectFailed(f"{t.label}: login as {t.user} was refused (check the credential).") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            conn.close()
            raise ConnectFailed(f"{t.label}: SSH failed: {exc}.") from None
        self._conn = conn
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self.open() if self._conn is None else self

    def __exit__(self, *exc):
        self.close()

    @property
    def is_active(self) -> bool:
        """Open, and its session not dropped (a node reboot ends it while nobody uses it)."""
        transport = self._conn.transport if self._conn is not None else None
        return bool(transport and transport.is_active())

    def _dropped(self) -> bool:
        # The transport thread records why it ended (EOF, socket error) before it closes the channels,
        # so this is reliable even before is_active() turns False.
        transport = self._conn.transport if self._conn is not None else None
        return transport is None or not transport.is_active() or isinstance(transport.saved_exception,
                                                                            (EOFError, OSError))

    @property
    def is_root(self) -> bool:
        return self.target.user == "root"

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        emit: Callable[[str, str], None] | None = None,
        sudo: bool = True,
        stdin: str | None = None,
    ) -> Result:
        """Run a shell command; output lines go to `emit(stream, line)` as they arrive.

        Callers build `command` from constants and quote() every value. Non-root
        logins run it through `sudo -n sh -c` so the same steps work for both.
        """
        if self._conn is None:
            self.open()
        if sudo and not self.is_root:
            command = f"sudo -n sh -c {quote(command)}"
        out_w = LineWriter(emit, "stdout") if emit else io.StringIO()
        err_w = LineWriter(emit, "stderr") if emit else io.StringIO()
        kwargs = {
            "warn": True,
            "hide": False,
            "pty": False,
            "timeout": timeout or settings.SSH_COMMAND_TIMEOUT,
            "out_stream": out_w,
            "err_stream": err_w,
        }
        if stdin is None:
            kwargs["in_stream"] = False
        else:
            kwargs["in_stream"] = io.StringIO(stdin)
        try:
            r = self._conn.run(command, **kwargs)
        except CommandTimedOut as exc:
            for w in (out_w, err_w):
                w.flush()
            return Result(124, exc.result.stdout, exc.result.stderr, timed_out=True)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectFailed(f"{self.target.label}: connection lost: {exc}.") from None
        for w in (out_w, err_w):
            w.flush()
        if r.exited == -1 and self._dropped():
            # No exit status because the session died (node down, sshd stopped), not the command.
            raise ConnectFailed(
                f"{self.target.label}: connection lost while a command ran (the node went down or its "
                "sshd stopped); what the command did before is unknown."
            )
        return Result(r.exited, r.stdout, r.stderr)

    # -- streams: large data through the channel, never whole in memory (nodes/sshstream.py) ------------

    def stream(self, command: str, sink: Callable[[bytes], object], **kwargs) -> Result:
        """Run `command`, its stdout handed to `sink(chunk)` as it arrives; see sshstream.stream."""
        from .sshstream import stream

        return stream(self, command, sink, **kwargs)

    def feed(self, command: str, source, **kwargs) -> Result:
        """Run `command` with the binary file object `source` as its stdin; see sshstream.feed."""
        from .sshstream import feed

        return feed(self, command, source, **kwargs)

    # -- files: one reader, one writer --------------------------------------------------------------
    #
    # Root never opens, writes or chowns a path that another user could have planted: every file
    # operation in a directory is done by whoever controls that directory (see DIR_OWNER_SH).

    def upload(self, fileobj, remote: str) -> None:
        """Copy a file object to `remote` over an SFTP channel of its own, closed afterwards.

        Fabric keeps one SFTP client per connection, and steps running in parallel on a node share
        the connection: two uploads at once on that client deadlock (paramiko's SFTP client is not
        thread-safe). Separate SFTP channels on the same SSH transport are independent.
        """
        if self._conn is None:
            self.open()
        sftp = self._conn.client.open_sftp()
        try:
            sftp.putfo(fileobj, remote)
        finally:
            sftp.close()

    def _stage(self, data) -> str:
        """Upload `data` (bytes or a binary file object) as `<dir>/data` in a new private directory
        (0700, an unguessable name that must not exist yet, like mktemp -d); returns the directory."""
        if self._conn is None:
            self.open()
        stage = f"/tmp/jcc-stage-{uuid.uuid4().hex}"  # noqa: S108 - a random name; mkdir below fails if it exists
        fileobj = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        sftp = self._conn.client.open_sftp()
        try:
            sftp.mkdir(stage, 0o700)  # fails if the name exists: nobody else's directory is ever used
            sftp.chmod(stage, 0o700)  # whatever the server's umask
            sftp.putfo(fileobj, f"{stage}/data")
        except OSError as exc:
            raise RemoteFileError(f"{self.target.label}: could not upload to a private directory in /tmp: "
                                  f"{exc}") from None
        finally:
            sftp.close()
        return stage

    @contextlib.contextmanager
    def staged(self, data) -> Iterator[str]:
        """`with conn.staged(data) as path:` the node's path of `data` in a private directory that only
        the login user (root, or the sudo user) can enter; the directory is removed afterwards."""
        stage = self._stage(data)
        try:
            yield f"{stage}/data"
        finally:
            with contextlib.suppress(SSHError):
                self.run(f"rm -rf {quote(stage)}", timeout=60)

    def read_file(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist (or its directory's owner cannot read it).

        Read by the user who controls the file's directory (root only where nobody else can change
        the path), so a symlink planted by a service user never makes root read a file for it."""
        script = (f"{DIR_OWNER_SH}\nP={quote(path)}; D=${{P%/*}}; [ -n \"$D\" ] || D=/\n"
                  'as_dir_owner "$D" sh -c \'test -f "$1" && exec base64 -w0 -- "$1"\' sh "$P"')
        r = self.run(script)
        if r.exit_code == UNSAFE_EXIT:
            raise UnsafePath(f"{self.target.label}: {r.stderr.strip()[-300:]}")
        if not r.ok:
            return None
        return base64.b64decode(r.stdout.strip() or b"")

    def write_file(self, path: str, data, *, mode: str = "", owner: str = "", backup: bool = True,
                   sha256: str = "") -> None:
        """Put `data` (bytes, or a binary file object for large files) at `path`, atomically.

        - mode: octal text ("0640"); "" keeps the mode of the file it replaces (0644 for a new one).
        - owner: "user" or "user:group"; "" keeps the owner of the file it replaces (root for a new one).
        - backup: keep what was there as `<path>.bak-<time>-<random>` beside it.
        - sha256: the expected checksum of `data`, checked on the node before anything is replaced.

        The data goes first into a private directory; then, in the target directory, a new file with a
        random name is filled and renamed over `path` (a symlink at `path` is replaced, never followed).
        Where only root can change the directory and every directory above it, root does that with
        `install -m -o -g`; where another user controls it (Tomcat's base, the wflow home), that user
        does it (runuser), and `owner` must then be that user. Raises RemoteFileError when it cannot.
        """
        user, _, group = owner.partition(":")
        stage = self._stage(data)
        check = (f'echo {quote(sha256)}"  $S/data" | sha256sum -c --quiet - || '
                 f'{{ echo "the upload does not have sha256 {sha256}" >&2; exit 4; }}\n' if sha256 else "")
        script = (f"{DIR_OWNER_SH}\numask 022; S={quote(stage)}; trap 'rm -rf \"$S\"' EXIT\n{check}"
                  f"P={quote(path)}; M={quote(mode)}; OU={quote(user)}; OG={quote(group)}; B={int(backup)}\n"
                  f"{_WRITE_SH}")
        r = self.run(script, timeout=max(120, settings.SSH_COMMAND_TIMEOUT))
        if not r.ok:
            why = (r.stderr or r.stdout).strip()[-300:] or f"exit code {r.exit_code}"
            with contextlib.suppress(SSHError):
                self.run(f"rm -rf {quote(stage)}", timeout=30)  # when the script did not get to its trap
            raise (UnsafePath if r.exit_code == UNSAFE_EXIT else RemoteFileError)(
                f"{self.target.label}: could not write {path}: {why}")

    def interrupt(self) -> None:
        """Drop the session from another thread: the running command's channel
        closes and the remote side gets SIGHUP."""
        with self._lock:
            if self._conn is not None and self._conn.transport is not None:
                self._conn.transport.close()


def open_connection(node_or_target, **kwargs) -> NodeConnection:
    target = node_or_target if isinstance(node_or_target, Target) else Target.for_node(node_or_target)
    return NodeConnection(target, **kwargs)
