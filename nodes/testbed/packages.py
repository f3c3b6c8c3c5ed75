"""Checks that this machine can run a testbed: root, namespaces, overlayfs, and the Debian packages.

The full tier does not start Tomcat, Apache or MariaDB: the console's deployment steps do. It
only makes sure the packages' files are here, because every host shares this machine's /usr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import TestbedError

# Package -> files whose presence proves it is installed (the files the deployment steps use).
PACKAGE_FILES: dict[str, tuple[str, ...]] = {
    "openssh-server": ("/usr/sbin/sshd",),
    "tomcat10": ("/usr/share/tomcat10/bin/catalina.sh",),
    "apache2": ("/usr/sbin/apache2",),
    "mariadb-server": ("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db"),
    "libmariadb-java": ("/usr/share/java/mariadb-java-client.jar",),
    "nfs-common": ("/sbin/mount.nfs",),  # the managed shared directory's client side
}
LIGHT_PACKAGES = ("openssh-server",)
FULL_PACKAGES = tuple(PACKAGE_FILES)
TOOLS = {"ip": "iproute2", "unshare": "util-linux", "nsenter": "util-linux", "mount": "mount"}
OVERLAY_MAGIC = 0x794C7630  # statfs f_type of overlayfs


@dataclass(frozen=True)
class MissingPackage:
    package: str
    missing_files: tuple[str, ...]


def missing_packages(packages: tuple[str, ...] = FULL_PACKAGES) -> list[MissingPackage]:
    """The packages (of `packages`) whose files are not on this machine."""
    missing = []
    for package in packages:
        absent = tuple(f for f in PACKAGE_FILES[package] if not Path(f).exists())
        if absent:
            missing.append(MissingPackage(package, absent))
    return missing


def describe_missing(missing: list[MissingPackage]) -> str:
    lines = [f"  {m.package}: missing {', '.join(m.missing_files)}" for m in missing]
    fix = "apt-get install -y " + " ".join(m.package for m in missing)
    return "packages missing on this machine:\n" + "\n".join(lines) + f"\nInstall them with: {fix}"


def require_packages(packages: tuple[str, ...]) -> None:
    missing = missing_packages(packages)
    if missing:
        raise TestbedError(describe_missing(missing))


def require_root() -> None:
    if os.geteuid() != 0:
        raise TestbedError("the testbed needs root (network namespaces, bridges and mounts): run it with sudo.")


def require_tools() -> None:
    absent = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if absent:
        raise TestbedError(f"tools missing: install them with: apt-get install -y {' '.join(absent)}")


def require_overlayfs() -> None:
    # The module may simply not be loaded yet: try once before giving up.
    if "overlay" not in Path("/proc/filesystems").read_text():
        subprocess.run(["modprobe", "overlay"], capture_output=True)  # noqa: S607 - root's PATH
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise TestbedError("overlayfs is not available in this kernel (no 'overlay' in /proc/filesystems; "
                           "`modprobe overlay` failed): the hosts' private /etc and /var need it.")


def require_unshare() -> None:
    """Mount and PID namespaces must be allowed (some containers forbid them)."""
    proc = subprocess.run(["unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "true"],  # noqa: S603,S607 - fixed argv
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise TestbedError("cannot create mount/PID namespaces with unshare "
                           f"({proc.stderr.strip() or proc.returncode}); a container needs --privileged.")


def require_upper_capable(state_root: Path) -> None:
    """Overlay upper dirs cannot live on overlayfs (e.g. a container's root filesystem)."""
    state_root.mkdir(parents=True, exist_ok=True)
    if _fs_type(state_root) == OVERLAY_MAGIC:
        raise TestbedError(f"{state_root} is on overlayfs (a container's root?), where the hosts' overlay "
                           f"upper dirs cannot live: mount a tmpfs or a volume there first "
                           f"(mount -t tmpfs tmpfs {state_root}).")


def _fs_type(path: Path) -> int:
    # os.statvfs has no f_type; `stat -f -c %t` prints it in hex.
    out = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True).stdout  # noqa: S603,S607 - fixed argv
    return int(out.strip() or "0", 16)


def preflight(state_root: Path, full: bool) -> None:
    """Everything `up` needs, checked before anything is created, each with its fix."""
    require_root()
    require_tools()
    require_packages(FULL_PACKAGES if full else LIGHT_PACKAGES)
    require_overlayfs()
    require_unshare()
    require_upper_capable(state_root)
