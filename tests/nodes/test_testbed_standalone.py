"""The testbed package is usable without Django, and `manage.py testbed status` prints what it always has.

No root and no hosts needed: the first test imports every module of nodes.testbed in a fresh
interpreter where importing Django fails; the others check the status text the command prints.
"""

import subprocess
import sys
from pathlib import Path

from nodes.testbed import status_lines

ROOT = Path(__file__).resolve().parents[2]

IMPORT_ALL_WITHOUT_DJANGO = """
import importlib, pkgutil, sys
sys.modules["django"] = None  # any `import django...` now raises ImportError
import nodes.testbed
for info in pkgutil.iter_modules(nodes.testbed.__path__):
    importlib.import_module(f"nodes.testbed.{info.name}")
print(sorted(m for m in sys.modules if m.startswith("nodes.testbed.")))
"""


def test_every_testbed_module_imports_without_django():
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL_WITHOUT_DJANGO], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "nodes.testbed.hosts" in done.stdout and "nodes.testbed.layout" in done.stdout


def test_status_of_nothing_names_the_other_prefixes():
    empty = {"state_dir": None, "netns": [], "links": [], "processes": []}
    assert status_lines("tb", empty, ["tb", "x1"]) == ["testbed tb: nothing exists (other prefixes: x1)"]
    assert status_lines("tb", empty, ["tb"]) == ["testbed tb: nothing exists"]


def test_status_lists_hosts_and_what_exists():
    status = {"up": True, "subnet": "10.213.5.0/24", "state_dir": "/var/lib/jcc-testbed/tb", "netns": ["tb-lb"],
              "links": ["tb-br0"], "mounts": [], "processes": [101, 102], "keepers": [100],
              "hosts": [{"name": "lb", "address": "10.213.5.10", "pid": 102, "running": True, "ssh": True},
                        {"name": "app1", "address": "10.213.5.101", "pid": None, "running": False, "ssh": False}]}
    assert status_lines("tb", status, []) == [
        "testbed tb: up, subnet 10.213.5.0/24",
        "  host lb     10.213.5.10     pid 102: running, ssh ok",
        "  host app1   10.213.5.101    pid None: stopped",
        "  netns: tb-lb",
        "  links: tb-br0",
        "  mounts: -",
        "  processes: 101 102",
        "  keepers: 100",
        "  state dir: /var/lib/jcc-testbed/tb",
    ]
