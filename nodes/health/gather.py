"""One SSH login and one command per node per cycle: the script that gathers every fact, and its parser."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from .. import ssh
from .base import ms_since, setting
from .jobs import NodeJob

TOMCAT_MAIN = "org.apache.catalina.startup.Bootstrap"



def gather_script(node: NodeJob, wflow_home: str, db_node: bool, lb_node: bool) -> str:
    """Every fact of one node in one round trip. Few processes on purpose (shell builtins read /proc; the
    parsing is done here, in Python): at 500 nodes every process spawned costs a core-second per cycle.

    Output: `key=value` lines, and raw sections between `@@name` and `@@end` lines."""
    q = ssh.quote
    # The bracketed dots keep the pattern from matching this very script's own command line.
    tomcat_re = TOMCAT_MAIN.replace(".", "[.]")
    lines = [
        "export LC_ALL=C",
        'read -r h < /proc/sys/kernel/hostname; echo "hostname=$h"',
        'read -r l1 rest < /proc/loadavg; echo "load1=$l1"',
        'read -r c < /sys/devices/system/cpu/online; echo "cpus_online=$c"',
        'while read -r k v rest; do case "$k" in MemTotal:) echo "mem_total_kb=$v";; '
        'MemAvailable:) echo "mem_avail_kb=$v";; esac; done < /proc/meminfo',
    ]
    if not node.is_app:
        lines.append("echo @@df; df -Pk / 2>/dev/null; echo @@end")
    else:
        lines += [
            f"W={q(wflow_home)}; B={q(node.catalina_base)}",
            'if [ -d "$W" ]; then echo @@df; df -Pk / "$W" 2>/dev/null; echo @@end',
            '  if [ -f "$W/servers.json" ]; then echo @@servers_json; head -c 65536 "$W/servers.json"; echo; '
            "echo @@end; else echo servers_json_missing=1; fi",
            "else echo wflow_missing=1; echo @@df; df -Pk / 2>/dev/null; echo @@end; fi",
            f"P=$(pgrep -d, -f '{tomcat_re}')",
            'if [ -n "$P" ]; then echo @@procs; ps -ww -o pid=,etimes=,args= -p "$P"; echo @@end; fi',
            # Read as the logs directory's owner: the service user may have made catalina.out a symlink.
            ssh.DIR_OWNER_SH + '\nL="$B/logs/catalina.out"',
            'if [ -f "$L" ]; then echo @@repl; as_dir_owner "$B/logs" tail -c 4000000 -- "$L" | grep -aE '
            "'Replication member added|Received member disappeared|Starting service \\[|Server version name' "
            "| tail -n 200; echo @@end; else echo catalina_out_missing=1; fi",
        ]
    if db_node:
        lines.append("if pgrep -x 'mariadbd|mysqld' >/dev/null; then echo db_process=1; else echo db_process=0; fi")
    if lb_node:
        lines.append("if pgrep -x 'apache2|httpd' >/dev/null; then echo lb_process=1; else echo lb_process=0; fi")
    lines.append("exit 0")
    return "\n".join(lines)


def _sections(stdout: str) -> tuple[dict, dict]:
    facts, sections, current = {}, {}, None
    for line in stdout.splitlines():
        if line.startswith("@@"):
            name = line[2:].strip()
            current = None if name == "end" else sections.setdefault(name, [])
        elif current is not None:
            current.append(line)
        else:
            key, sep, value = line.partition("=")
            if sep:
                facts[key.strip()] = value.strip()
    return facts, sections


def _df(lines: list[str]) -> list[tuple[int, int]]:
    """(used %, available KB) per data line of `df -Pk`."""
    rows = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) >= 6 and parts[4].endswith("%") and parts[3].isdigit():
            rows.append((int(parts[4][:-1]), int(parts[3])))
    return rows


def tomcat_process(lines: list[str], catalina_base: str) -> dict:
    """The Tomcat of this node among `ps pid etimes args` lines: the one with -Dcatalina.base=<its base>."""
    want = f"-Dcatalina.base={catalina_base}"
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and want in parts[2:]:
            found = {"tomcat_pid": parts[0], "tomcat_uptime": parts[1]}
            name = next((a.split("=", 1)[1] for a in parts[2:] if a.startswith("-Dwflow.name=")), "")
            if name:
                found["wflow_name"] = name
            return found
    return {}


def count_cpus(online: str) -> int:
    """`0-3,8-11` (the kernel's list of online CPUs) -> 8."""
    total = 0
    for part in online.split(","):
        low, _, high = part.partition("-")
        if low.strip().isdigit():
            total += int(high) - int(low) + 1 if high.strip().isdigit() else 1
    return total or 1


def parse_gather(stdout: str, catalina_base: str = "") -> dict:
    facts, sections = _sections(stdout)
    if "cpus_online" in facts:
        facts["cpus"] = str(count_cpus(facts.pop("cpus_online")))
    try:
        total, avail = int(facts.pop("mem_total_kb")), int(facts.pop("mem_avail_kb"))
        facts["mem_pct"] = str((total - avail) * 100 // total)
    except (KeyError, ValueError, ZeroDivisionError):
        pass
    df = _df(sections.get("df", []))
    if df:
        facts["disk_pct"] = str(df[0][0])
    if len(df) > 1:
        facts["wflow_free_kb"] = str(df[1][1])
    if "servers_json" in sections:
        facts["servers_json"] = "\n".join(sections["servers_json"]).strip()
    facts.update(tomcat_process(sections.get("procs", []), catalina_base))
    facts["repl"] = sections.get("repl", [])
    return facts


@dataclass
class Gathered:
    ok: bool = False
    ssh_ms: int | None = None
    facts: dict = field(default_factory=dict)
    error: str = ""
    kind: str = ""  # mismatch | unpinned | unreachable | config | timeout | internal


def gather(target: ssh.Target, script: str, catalina_base: str = "") -> Gathered:
    conn = ssh.open_connection(target, connect_timeout=setting("HEALTH_SSH_TIMEOUT"))
    t0 = time.monotonic()
    try:
        conn.open()
        ms = ms_since(t0)
        result = conn.run(script, timeout=setting("HEALTH_COMMAND_TIMEOUT"))
    except ssh.HostKeyMismatch as exc:
        return Gathered(error=str(exc), kind="mismatch")
    except ssh.HostKeyNotPinned as exc:
        return Gathered(error=str(exc), kind="unpinned")
    except ssh.ConnectFailed as exc:
        return Gathered(error=str(exc), kind="unreachable")
    except ssh.SSHError as exc:
        return Gathered(error=str(exc), kind="config")
    finally:
        conn.close()
    if result.timed_out:
        return Gathered(ssh_ms=ms, error=f"the health command timed out after {setting('HEALTH_COMMAND_TIMEOUT'):g} s",
                        kind="timeout")
    return Gathered(ok=True, ssh_ms=ms, facts=parse_gather(result.stdout, catalina_base))


# ---- what the checks read in gathered text ------------------------------------------------------------

_MEMBER = re.compile(r"tcp://\{([0-9, ]+)\}:(\d+)")
_ADDED = "Replication member added:["
_GONE = "Received member disappeared:["


def member_key(text: str) -> str:
    m = _MEMBER.search(text)
    if m:
        return ".".join(p.strip() for p in m.group(1).split(",")) + ":" + m.group(2)
    return text[:80]


def replication_members(lines: list[str]) -> set[str] | None:
    """Members seen since Tomcat's last start, from catalina.out lines; None if no start was seen."""
    members: set[str] | None = None
    for line in lines:
        if "Starting service [" in line or "Server version name" in line:
            members = set()
        elif members is None:
            continue
        elif _ADDED in line:
            members.add(member_key(line.split(_ADDED, 1)[1]))
        elif _GONE in line:
            members.discard(member_key(line.split(_GONE, 1)[1]))
    return members


def parse_servers_json(text: str) -> list[str] | None:
    """Joget's bare list of names (what ServerUtil writes, and the stand-in), or an object `{"servers": [...]}`
    (earlier stand-ins); None when the format is unknown."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = data.get("servers")
    if isinstance(data, list) and all(isinstance(s, str) for s in data):
        return data
    return None
