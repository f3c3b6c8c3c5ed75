"""`manage.py testbed status` as text: what exists for one prefix, a line per host and per kind of thing."""

from __future__ import annotations


def status_lines(prefix: str, status: dict, other_prefixes: list[str]) -> list[str]:
    """The lines the status command prints for `Testbed(prefix).status()`."""
    if not any(status[k] for k in ("state_dir", "netns", "links", "processes")):
        others = [p for p in other_prefixes if p != prefix]
        return [f"testbed {prefix}: nothing exists" + (f" (other prefixes: {', '.join(others)})" if others else "")]
    lines = [f"testbed {prefix}: {'up' if status['up'] else 'NOT fully up'}, subnet {status['subnet']}"]
    for h in status["hosts"]:
        state = "running, ssh ok" if h["ssh"] else ("running, ssh not answering" if h["running"] else "stopped")
        lines.append(f"  host {h['name']:<6} {h['address']:<15} pid {h['pid']}: {state}")
    for key in ("netns", "links", "mounts", "processes", "keepers"):
        lines.append(f"  {key}: {' '.join(map(str, status[key])) or '-'}")
    lines.append(f"  state dir: {status['state_dir'] or '-'}")
    return lines
