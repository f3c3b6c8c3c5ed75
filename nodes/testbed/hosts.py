"""Simulated Linux hosts on one machine: bring a testbed up, list it, take it down.

Each host is a network namespace on a private bridge plus its own mount, UTS and PID
namespaces, with private /etc, /var/lib, /var/log (overlays over the real ones), a clean
/root, a private /opt, and fresh /run, /tmp, /var/tmp and /dev/shm; the rest of the machine
it sees read-only (isolation.py). sshd is PID 1 of each host (its files: hostfiles.py). The
app servers share one directory, bind-mounted at the same path (wflow home) on each.

Everything a testbed makes is named after its prefix (`<prefix>-br0`, `<prefix>-app1`, ...)
and recorded in /var/lib/jcc-testbed/<prefix>/state.json; `down` also finds leftovers by
name, so it cleans up after a crash (kill -9) too. See /work/shared/TESTBED-NOTES.md.

Usable without Django: `Testbed("tb", app_servers=2).up()` returns the inventory (docs/inventory.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import network, procs
from .artifacts import build_jw_war, generate_db_password, generate_keypair, write_private, write_schema
from .errors import TestbedError
from .hostfiles import mkdirs, prepare_host, render_keeper
from .layout import (
    DEFAULT_PREFIX,
    DEFAULT_WFLOW_HOME,
    PREFIX_RE,
    STATE_ROOT,
    Host,
    plan_hosts,
    validate_prefix,
    validate_wflow_home,
)
from .packages import preflight

STANDIN_ADMIN = ("admin", "admin")  # the stand-in jw.war's default login
CATALINA_HOME = "/usr/share/tomcat10"
INSTALL_PATH = "/opt/joget"
# The hosts' processes get this environment, never ours (which may hold the console's secrets).
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "HOME": "/root", "TERM": "dumb"}
READY_TIMEOUT = 20.0
# Keeper processes started by this process, per prefix: waited for by `down`, so none becomes a zombie.
_KEEPERS: dict[str, list[subprocess.Popen]] = {}


def stderr_log(message: str) -> None:
    """Progress goes to standard error (standard output carries only the inventory)."""
    # A closed stderr (e.g. `2>&1 | head`) must not abort a bring-up halfway and strand the hosts.
    with contextlib.suppress(OSError):
        print(f"testbed: {message}", file=sys.stderr, flush=True)


def port_open(address: str, port: int = 22, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """One testbed change at a time on this machine: subnet choice and bridge creation must not race."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(STATE_ROOT / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def known_prefixes() -> list[str]:
    """Prefixes with a state dir or leftovers (namespaces) on this machine."""
    names = {p.name for p in STATE_ROOT.glob("*") if p.is_dir() and PREFIX_RE.match(p.name)}
    with contextlib.suppress(FileNotFoundError):
        names |= {n.split("-", 1)[0] for n in os.listdir(network.NETNS_DIR) if "-" in n}
    return sorted(n for n in names if PREFIX_RE.match(n))


def _summary(removed: list[str]) -> str:
    """`removed 8 process(s) (…), 5 link(s) (…)`: one line instead of one per item."""
    kinds: dict[str, list[str]] = {}
    for item in removed:
        kind, _, name = item.partition(" ")
        kinds.setdefault(kind, []).append(name)
    return "removed " + ", ".join(f"{len(v)} {k}(s) ({' '.join(v)})" for k, v in kinds.items()) if kinds else ""


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in our mount namespace (mountinfo field 5, octal-escaped)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(path) or point.startswith(f"{path}/"):
            found.append(point)
    return found


# ---- the testbed -------------------------------------------------------------------------------


@dataclass
class Testbed:
    """One testbed, named by its prefix. `up()` returns the inventory; `down()` removes everything."""

    __test__ = False  # not a pytest test class, despite the name

    prefix: str = DEFAULT_PREFIX
    app_servers: int = 2
    file_server: bool = False
    spares: int = 0
    full: bool = False
    subnet: str | None = None
    wflow_home: str = DEFAULT_WFLOW_HOME
    cluster: str | None = None
    joget_version: str = "8.1"
    log: Callable[[str], None] = field(default=stderr_log, repr=False)

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        validate_wflow_home(self.wflow_home)
        if self.subnet:
            network.parse_subnet(self.subnet)
        if self.cluster is None:
            self.cluster = "testbed" if self.prefix == DEFAULT_PREFIX else f"testbed-{self.prefix}"

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.prefix

    @property
    def mode(self) -> str:
        return "full" if self.full else "light"

    # ---- state file --------------------------------------------------------------------------

    def read_state(self) -> dict | None:
        try:
            return json.loads((self.state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self, state: dict) -> None:
        tmp = self.state_dir / "state.json.tmp"
        write_private(tmp, json.dumps(state, indent=2))
        os.replace(tmp, self.state_dir / "state.json")  # atomic: a crash never leaves half a file

    def _shape(self) -> dict:
        """What a caller asked for; a running testbed of another shape is recreated, not reused."""
        names = [h.name for h in plan_hosts(self.prefix, ipaddress.ip_network("10.0.0.0/24"),
                                            self.app_servers, self.file_server, self.spares)]
        return {"hosts": names, "mode": self.mode, "wflow_home": self.wflow_home, "cluster": self.cluster,
                "joget_version": self.joget_version}

    # ---- up ----------------------------------------------------------------------------------

    def up(self, recreate: bool = False) -> dict:
        """Bring the hosts up (or find them up already) and return the inventory."""
        preflight(STATE_ROOT, self.full)
        with state_lock():
            state = self.read_state()
            if state and not recreate and self._reusable(state):
                self.log(f"testbed {self.prefix} is already up ({len(state['hosts'])} hosts on {state['subnet']}); "
                         "printing its inventory again (use --recreate for fresh hosts)")
                return state["inventory"]
            if state or self.state_dir.exists() or network.list_netns(self.prefix) or network.list_links(self.prefix):
                self.log(f"removing the previous run of prefix {self.prefix} first")
                self._down_locked()
            subnet = network.choose_subnet(self.prefix, self.subnet)
            try:
                return self._create(subnet)
            except BaseException:
                self.log("bring-up failed: removing what was made")
                self._down_locked()
                raise

    def _reusable(self, state: dict) -> bool:
        if "inventory" not in state:  # a bring-up that never finished
            return False
        shape_ok = state.get("shape") == self._shape() and (not self.subnet or state.get("subnet") == self.subnet)
        if not shape_ok:
            self.log(f"testbed {self.prefix} is up with another shape: recreating it")
            return False
        dead = [h["name"] for h in state["hosts"] if not self._host_running(h)]
        if dead:
            self.log(f"testbed {self.prefix} is up but host(s) {', '.join(dead)} are not running: recreating it")
        return not dead

    def _host_running(self, host: dict) -> bool:
        inode = network.netns_inode(host["netns"])
        pid = host.get("pid")
        return bool(inode and pid and procs.is_alive(pid) and procs.net_inode(pid) == inode[1])

    def _create(self, subnet: ipaddress.IPv4Network) -> dict:
        t0 = time.monotonic()
        hosts = plan_hosts(self.prefix, subnet, self.app_servers, self.file_server, self.spares)
        mkdirs(self.state_dir, mode=0o700)
        state = {"prefix": self.prefix, "subnet": str(subnet), "bridge": network.bridge_name(self.prefix),
                 "shape": self._shape(), "owner_pid": os.getpid(), "created": time.time(), "keepers": [],
                 "hosts": [asdict(h) for h in hosts]}
        self._write_state(state)  # before anything else exists: `down` after a crash reads it
        self.log(f"bringing up {len(hosts)} {self.mode} hosts on {subnet} (prefix {self.prefix})")

        identity = self.state_dir / "id_ed25519"
        client_pub = generate_keypair(identity, f"jcc-testbed-{self.prefix}")
        mkdirs(self.state_dir / "shared" / "wflow")
        for host in hosts:
            prepare_host(host, self.state_dir, client_pub, self.wflow_home)
        (self.state_dir / "known_hosts").write_text("".join(f"{h.address} {h.host_key}\n" for h in hosts))

        network.create_network(self.prefix, subnet, [(h.name, h.address) for h in hosts])
        state["keepers"].append(self._start_keeper(hosts, "keeper"))
        self._write_state(state)
        self._wait_ready(hosts)
        state["hosts"] = [asdict(h) for h in hosts]
        self._write_state(state)
        self.log(f"{len(hosts)} hosts answer SSH after {time.monotonic() - t0:.2f} s")

        state["inventory"] = self._inventory(hosts, subnet, identity)
        self._write_state(state)
        return state["inventory"]

    def _start_keeper(self, hosts: list[Host], name: str) -> int:
        script = self.state_dir / f"{name}.sh"
        script.write_text(render_keeper(hosts, self.state_dir))
        for host in hosts:
            (self.state_dir / "hosts" / host.name / "unshare.pid").unlink(missing_ok=True)
        with open(self.state_dir / f"{name}.log", "ab") as log:
            # A session of its own: the terminal's Ctrl-C (meant for `up`) must not reach the hosts.
            proc = subprocess.Popen(["sh", str(script)], stdin=subprocess.DEVNULL, stdout=log,  # noqa: S603,S607 - our generated script; root's PATH
                                    stderr=subprocess.STDOUT, start_new_session=True, env=HOST_ENV, cwd="/")
        _KEEPERS.setdefault(self.prefix, []).append(proc)
        return proc.pid

    def _wait_ready(self, hosts: list[Host], timeout: float = READY_TIMEOUT) -> None:
        """Until every host's sshd accepts TCP connections; a host that dies fails fast, with its log."""
        pending = list(hosts)
        deadline = time.monotonic() + timeout
        while pending:
            for host in list(pending):
                self._find_pids(host)
                if host.unshare_pid and not procs.is_alive(host.unshare_pid):
                    raise TestbedError(f"host {host.name} stopped while starting; its log says:\n"
                                       f"{self._log_tail(host)}")
                if host.pid and port_open(host.address, 22, timeout=0.2):
                    pending.remove(host)
            if pending and time.monotonic() > deadline:
                names = ", ".join(h.name for h in pending)
                raise TestbedError(f"host(s) {names} did not answer on port 22 within {timeout:.0f} s; "
                                   f"logs: {self.state_dir}/hosts/<name>/host.log\n{self._log_tail(pending[0])}")
            if pending:
                time.sleep(0.01)

    def _find_pids(self, host: Host) -> None:
        pidfile = self.state_dir / "hosts" / host.name / "unshare.pid"
        if host.unshare_pid is None and pidfile.exists():
            text = pidfile.read_text().strip()
            host.unshare_pid = int(text) if text.isdigit() else None
        if host.unshare_pid and host.pid is None:
            kids = procs.children(host.unshare_pid)
            host.pid = kids[0] if kids else None

    def _log_tail(self, host: Host, lines: int = 15) -> str:
        path = self.state_dir / "hosts" / host.name / "host.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _inventory(self, hosts: list[Host], subnet: ipaddress.IPv4Network, identity: Path) -> dict:
        nodes, spares = [], []
        for h in hosts:
            if h.spare:
                spares.append({"name": h.name, "address": h.address, "ssh_port": 22, "ssh_user": "root",
                               "host_key": h.host_key})
                continue
            node = {"name": h.name, "address": h.address, "roles": h.roles, "ssh_port": 22, "ssh_user": "root",
                    "host_key": h.host_key}
            if h.is_app_server:
                node.update(jvm_route=h.jvm_route, http_port=8080, install_path=INSTALL_PATH,
                            catalina_home=CATALINA_HOME, catalina_base=f"{INSTALL_PATH}/tomcat-base")
            nodes.append(node)
        artifacts = []
        war = build_jw_war(self.state_dir, self.joget_version, self.log)
        if war:
            artifacts.append({"kind": "jw_war", "path": str(war)})
        artifacts.append({"kind": "schema_sql", "path": str(write_schema(self.state_dir))})
        return {
            "cluster": self.cluster,
            "joget_version": self.joget_version,
            "context_path": "/jw",
            "wflow_home": self.wflow_home,
            "datasource_profile": "default",
            "multicast": True,
            # The stand-in's own login (docs/standin.md): the console reads system keys with it.
            "joget_admin_user": STANDIN_ADMIN[0],
            "joget_admin_password": STANDIN_ADMIN[1],
            "identity_file": str(identity),
            "known_hosts": str(self.state_dir / "known_hosts"),
            "nodes": nodes,
            # Already shared by a bind mount (kernel NFS is not available here): the console only verifies it.
            "shared_directory": {"mode": "existing", "node": "files" if self.file_server else None,
                                 "export_path": "/export/wflow", "client_subnet": str(subnet)},
            "shared_database": {"mode": "managed", "node": "db", "engine": "mariadb", "port": 3306,
                                "name": "jwdb", "user": "joget", "password": generate_db_password()},
            "load_balancer": {"mode": "managed", "node": "lb", "http_port": 80, "site_name": "jwsite",
                              "sticky_cookie": "JSESSIONID", "manager_allow": str(subnet[1])},
            "artifacts": artifacts,
            # Ready to become app servers (operate CLUSTER add-node), not in the cluster.
            "spare_nodes": spares,
        }

    # ---- down --------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Remove every process, mount, link, namespace and directory of this prefix; returns what it removed."""
        from .packages import require_root

        require_root()
        with state_lock():
            return self._down_locked()

    def _down_locked(self) -> list[str]:
        state = self.read_state() or {}
        removed = self._stop_processes(state)
        for point in reversed(_mounts_under(self.state_dir)):
            subprocess.run(["umount", "-l", point], capture_output=True)  # noqa: S603,S607 - fixed tool, a path we listed
            removed.append(f"mount {point}")
        removed += network.delete_network(self.prefix)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
            removed.append(f"dir {self.state_dir}")
        self.log(f"down {self.prefix}: " + (_summary(removed) or "nothing to remove"))
        return removed

    def _stop_processes(self, state: dict) -> list[str]:
        inodes = [i[1] for i in map(network.netns_inode, network.list_netns(self.prefix)) if i]
        pids = procs.pids_in_netns(inodes)
        inits = [p for p in pids if procs.is_namespace_init(p)]
        left = procs.terminate(inits, [p for p in pids if p not in inits])
        if left:
            self.log(f"WARNING: processes {left} did not end even after SIGKILL")
        self._stop_keepers(state)
        return [f"process {p}" for p in pids]

    def _stop_keepers(self, state: dict) -> None:
        """Keepers end by themselves once their hosts have; wait for ours, kill one that hangs on."""
        mine = _KEEPERS.pop(self.prefix, [])
        for proc in mine:
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        known = {p.pid for p in mine}
        for pid in state.get("keepers", []):
            # Only a process still running our keeper script: the pid may have been reused since.
            script = procs.cmdline(pid)[1:2]
            if pid not in known and script and script[0].startswith(str(self.state_dir)):
                procs.terminate([], [pid], timeout=2)

    # ---- status ------------------------------------------------------------------------------

    def status(self) -> dict:
        """What exists for this prefix: state, hosts (running? SSH answering?), namespaces, links, processes."""
        state = self.read_state() or {}
        netns = network.list_netns(self.prefix)
        inodes = [i[1] for i in map(network.netns_inode, netns) if i]
        hosts = []
        for h in state.get("hosts", []):
            running = self._host_running(h)
            hosts.append({"name": h["name"], "address": h["address"], "pid": h.get("pid"), "running": running,
                          "ssh": running and port_open(h["address"], 22)})
        netns_mounts = [str(network.NETNS_DIR / n) for n in netns]
        return {
            "prefix": self.prefix,
            "up": bool(hosts) and all(h["ssh"] for h in hosts),
            "state_dir": str(self.state_dir) if self.state_dir.exists() else None,
            "subnet": state.get("subnet"),
            "hosts": hosts,
            "netns": netns,
            "links": network.list_links(self.prefix),
            "mounts": netns_mounts + _mounts_under(self.state_dir),
            "processes": procs.pids_in_netns(inodes),
            "keepers": [p for p in state.get("keepers", []) if procs.is_alive(p)],
        }

    # ---- acting on hosts ---------------------------------------------------------------------

    def inventory(self) -> dict:
        state = self.read_state()
        if not state or "inventory" not in state:
            raise TestbedError(f"testbed {self.prefix} is not up: run `manage.py testbed up --prefix {self.prefix}`.")
        return state["inventory"]

    def _host(self, name: str) -> dict:
        state = self.read_state() or {}
        for h in state.get("hosts", []):
            if h["name"] == name:
                return h
        raise TestbedError(f"testbed {self.prefix} has no host {name!r}.")

    def host_exec(self, host: str, command: str | list[str], *, check: bool = False, timeout: float = 60.0,
                  input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command as root inside a host, without SSH (works when its sshd is being stopped).

        A string is a shell command line (run by `sh -c` inside the host); a list is an argv.
        """
        h = self._host(host)
        if not self._host_running(h):
            raise TestbedError(f"host {host} of testbed {self.prefix} is not running.")
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        full = ["ip", "netns", "exec", h["netns"], "nsenter", f"--target={h['pid']}", "--mount", "--uts", "--pid",
                "--wd=/root", "--", *argv]
        return subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input, env=HOST_ENV,  # noqa: S603 - argv list, no shell; names validated
                              check=check)

    def stop_host(self, name: str, timeout: float = 5.0) -> None:
        """Power a host off: SIGTERM its sshd (PID 1); the kernel ends everything else in it."""
        h = self._host(name)
        if h.get("pid") and procs.is_alive(h["pid"]):
            left = procs.terminate([h["pid"]], [h["unshare_pid"]] if h.get("unshare_pid") else [], timeout)
            if left:
                raise TestbedError(f"host {name}: processes {left} did not end.")

    def start_host(self, name: str) -> None:
        """Boot a stopped host again, keeping its disk (/etc, /var, /opt changes); /run and /tmp are fresh."""
        with state_lock():
            state = self.read_state()
            if not state:
                raise TestbedError(f"testbed {self.prefix} is not up.")
            hdict = next((h for h in state["hosts"] if h["name"] == name), None)
            if hdict is None:
                raise TestbedError(f"testbed {self.prefix} has no host {name!r}.")
            if self._host_running(hdict):
                return
            host = Host(**{**hdict, "unshare_pid": None, "pid": None})
            state["keepers"].append(self._start_keeper([host], f"keeper-{name}-{int(time.time() * 1000)}"))
            self._wait_ready([host])
            hdict.update(unshare_pid=host.unshare_pid, pid=host.pid)
            self._write_state(state)

    def stop_signal_safe(self) -> None:
        """`down` that never raises: for atexit and signal handlers."""
        try:
            self.down()
        except Exception as exc:  # noqa: BLE001 - last-resort cleanup must report, not raise
            self.log(f"WARNING: testbed {self.prefix} cleanup failed: {exc}")


def down_all(prefix_start: str, only_dead_owners: bool = True, log: Callable[[str], None] = stderr_log) -> list[str]:
    """Take down stale testbeds whose prefix starts with `prefix_start` (e.g. runs of crashed test sessions)."""
    removed = []
    for prefix in known_prefixes():
        if not prefix.startswith(prefix_start):
            continue
        tb = Testbed(prefix, log=log)
        owner = (tb.read_state() or {}).get("owner_pid")
        if only_dead_owners and owner and procs.is_alive(owner):
            continue
        removed += tb.down()
    return removed


__all__ = ["Testbed", "down_all", "known_prefixes", "stderr_log"]
