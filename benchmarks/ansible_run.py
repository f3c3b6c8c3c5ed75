"""Ansible's side of the deployment benchmark: its own venv, an inventory of the testbed, one playbook run.

ansible-core (pinned in benchmarks/requirements-ansible.txt) goes into var/bench-ansible, made on first
use, so the console's own .venv never carries Ansible. Every run gets a fresh ControlPath directory: an SSH
master left over from the previous run (ControlPersist) would hand the next run open connections.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import workload

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "var" / "bench-ansible"
REQUIREMENTS = ROOT / "benchmarks" / "requirements-ansible.txt"
PLAYBOOK = ROOT / "benchmarks" / "ansible" / "playbook.yml"


def ensure_venv(log=print, *, venv: Path = VENV, requirements: Path = REQUIREMENTS) -> Path:
    """<venv>/bin/ansible-playbook, installed from the pinned requirements when missing or stale (the stamp is
    the requirements file's text, and of the files it includes with -r)."""
    stamp = venv / "requirements.txt"
    playbook = venv / "bin" / "ansible-playbook"
    wanted = _requirements_text(requirements)
    if playbook.exists() and stamp.exists() and stamp.read_text() == wanted:
        return playbook
    log(f"installing {requirements.name} into {venv.relative_to(ROOT)} (once) ...")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(requirements)], check=True)
    stamp.write_text(wanted)
    return playbook


def _requirements_text(path: Path) -> str:
    text = path.read_text()
    for line in text.splitlines():
        if line.startswith("-r "):
            text += _requirements_text(path.parent / line[3:].strip())
    return text


def version(venv: Path = VENV) -> str:
    playbook = venv / "bin" / "ansible-playbook"
    if not playbook.exists():  # a run without Ansible among its tools never made the venv
        return "Ansible not run"
    out = subprocess.run([str(playbook), "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "?"


def hosts_doc(inventory: dict) -> dict:
    """The app servers as an Ansible inventory group (SSH as the console does: its key, the pinned host keys)."""
    hosts = {}
    for node in workload.app_hosts(inventory):
        hosts[node["name"]] = {
            "ansible_host": node["address"], "ansible_user": node["ssh_user"], "ansible_port": node["ssh_port"],
            "jvm_route": node["jvm_route"], "verify_command": workload.verify_command(node["name"], node["jvm_route"]),
        }
    return {"app_servers": {"hosts": hosts, "vars": {
        "ansible_ssh_private_key_file": inventory["identity_file"],
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={inventory['known_hosts']} -o StrictHostKeyChecking=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
    }}}


def _kill_masters(control_dir: str) -> None:
    """End the ControlPersist ssh masters this run left (found by their ControlPath, ended by pid)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if control_dir in cmdline and cmdline.startswith("ssh"):
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except ProcessLookupError:
                pass


def run(inventory: dict, war: Path, war_sha: str, *, forks: int | None, pipelining: bool) -> float:
    """Seconds of one `ansible-playbook` run (the process's start included: the admin waits for it too)."""
    return run_playbook(PLAYBOOK, hosts_doc(inventory), {"war": str(war), "war_sha256": war_sha}, forks=forks,
                        pipelining=pipelining)[0]


def run_playbook(playbook: Path, hosts: dict, extra: dict, *, forks: int | None, pipelining: bool,
                 venv: Path = VENV) -> tuple[float, str]:
    """(seconds, stdout) of one `ansible-playbook` run of `playbook` on the inventory `hosts` with `extra` vars."""
    with tempfile.TemporaryDirectory(prefix="jcc-bench-ansible-") as tmp:
        tmp = Path(tmp)
        (tmp / "hosts.yml").write_text(json.dumps(hosts))  # JSON is YAML
        cfg = ["[defaults]", "host_key_checking = True", "interpreter_python = /usr/bin/python3",
               "retry_files_enabled = False", f"local_tmp = {tmp}/local"]
        if forks:
            cfg.append(f"forks = {forks}")
        cfg += ["[ssh_connection]", f"control_path_dir = {tmp}/cp"]
        if pipelining:
            cfg.append("pipelining = True")
        (tmp / "ansible.cfg").write_text("\n".join(cfg) + "\n")
        env = {**os.environ, "ANSIBLE_CONFIG": str(tmp / "ansible.cfg"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "ANSIBLE_NOCOLOR": "1", "HOME": str(tmp)}
        for key in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "SECRETS_ENCRYPTION_KEY", "DATABASE_URL"):
            env.pop(key, None)  # the console's secrets are none of Ansible's business
        argv = [str(venv / "bin" / "ansible-playbook"), "-i", str(tmp / "hosts.yml"), str(playbook),
                "-e", json.dumps(extra)]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(argv, cwd=playbook.parent, env=env, capture_output=True, text=True, timeout=1800)
        finally:
            seconds = time.perf_counter() - t0
            _kill_masters(str(tmp / "cp"))
        if r.returncode != 0:
            raise RuntimeError(f"ansible-playbook failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
        return seconds, r.stdout
