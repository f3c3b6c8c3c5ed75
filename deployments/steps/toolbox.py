"""What every layer's steps share, beside base.py: the idioms a step needs on a node.

- Files: `ctx.read_file` / `ctx.write_file` (NodeConnection's one reader and writer), `ctx.want_file`.
- Facts: `nodes.ssh.facts(text)` parses the `key=value` lines a probe script prints (a key may repeat).
- Services: `service_control(...)` starts, restarts or reloads a daemon through systemd where it runs,
  else its init script, else the daemon's own command; `apt_install(package)` installs a package.
- HTTP from the console: `nodes.web.get` (one GET, errors as text); Tomcat on an app server: tomcat_tools.
- Secrets: the engine masks every log line and diff with `nodes.secrets.masker(cluster_secrets(...))`;
  `mask_properties` is the one format-aware redaction (a file's old value is no secret the console knows).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nodes.secrets import MASK
from nodes.ssh import quote

PATH_SETUP = 'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH'
SYSTEMD_RUNS = "[ -d /run/systemd/system ]"


def init_script(name: str, action: str) -> str:
    """`/etc/init.d/<name> <action>`, its output kept in a file and printed afterwards: daemons the script
    leaves running would otherwise hold the SSH channel open. Exits with the script's status on failure."""
    return (f"l=$(mktemp); {quote('/etc/init.d/' + name)} {action} </dev/null >\"$l\" 2>&1; rc=$?; cat \"$l\"; "
            "rm -f \"$l\"; [ $rc -eq 0 ] || exit $rc")


def service_control(action: str, *, unit: str = "", initd: str = "", own: str = "", known: bool = False) -> str:
    """A shell command that does `action` (start, restart, reload) to a daemon: through systemd where it runs
    (so that it keeps tracking the service), else through its init script, else with `own` (the daemon's
    own control command). No systemd on many hosts (containers, the testbed).

    `known=False`: the node decides (a test for systemd and for the script). `known=True`: the caller read
    the node's facts; `unit` and `initd` are given only when they are there, and the first one given is used.
    """
    ways = []
    if unit:
        ways.append((SYSTEMD_RUNS, f"systemctl {action} {quote(unit)}"))
    if initd:
        ways.append((f"[ -x {quote('/etc/init.d/' + initd)} ]", init_script(initd, action)))
    if known or not ways:
        return ways[0][1] if ways else own
    text = ""
    for i, (test, command) in enumerate(ways):
        text += f"{'if' if i == 0 else '; elif'} {test}; then {command}"
    return text + (f"; else {own}; fi" if own else "; fi")


def apt_install(package: str) -> str:
    """Install a Debian package; refresh the package lists only when the first try fails."""
    inst = f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {quote(package)}"
    return (f"if ! command -v apt-get >/dev/null 2>&1; then echo 'apt-get not found: install {package} "
            f"(or its equivalent) by hand, then run this step again' >&2; exit 3; fi; "
            f"{inst} || {{ apt-get update -q && {inst}; }}")


def mask_properties(data: bytes | None, keys: Iterable[str]) -> bytes | None:
    """A Java properties file with the values of `keys` masked, for a diff that is stored and shown.

    Format-aware because the file on the node may hold an older password, which is no longer among the
    cluster's secrets (the masker would let it through), and because the file escapes what it holds."""
    if data is None:
        return None
    names = "|".join(re.escape(k) for k in keys)
    return re.sub(rb"(?m)^(\s*(?:" + names.encode() + rb")\s*[=:]?\s*).*$", lambda m: m.group(1) + MASK.encode(),
                  data)
