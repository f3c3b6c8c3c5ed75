"""What a testbed host may not touch on the machine it runs on.

A host is a set of namespaces, not a virtual machine: its root is the machine's root. Its /etc,
/var/lib and /var/log are overlays and /root, /opt, /run, /tmp are its own; everything else it
sees is the machine's. Those trees are made read-only in the host's mount namespace, so root in a
host (anyone a testbed cluster's admin lets run code there) cannot change the machine's programs,
homes, spools or caches. It is not a security boundary against a root that sets out to escape
(it keeps every capability): testbeds are for trying the console, never beside a production one.
"""

from __future__ import annotations

from pathlib import Path

# "/" covers every directory on the root file system; the others name trees whose own mounts
# (a separate /home or /var, say) need remounting too.
READ_ONLY_TREES = ("/", "/usr", "/home", "/srv", "/boot", "/var")


def read_only_mounts(exclude: Path) -> list[str]:
    """Mount points of this machine to remount read-only in a host: "/" first, then those in READ_ONLY_TREES."""
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point != "/" and not Path(point).is_relative_to(exclude) and any(
                point == t or point.startswith(t + "/") for t in READ_ONLY_TREES[1:]):
            points.add(point)
    return ["/", *sorted(points)]
