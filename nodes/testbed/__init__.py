"""The project's testbed: simulated Linux hosts (network, mount, UTS and PID namespaces) on one machine.

`Testbed(prefix).up()` / `.down()` / `.status()` / `.host_exec(host, cmd)`; the CLI is
`manage.py testbed up|down|status` (a thin command over this package), the pytest fixtures are in
tests/testbed_plugin.py. Nothing here imports Django: the testbed runs without the console.
"""

from .errors import TestbedError
from .hosts import Testbed, down_all, known_prefixes, stderr_log
from .layout import DEFAULT_PREFIX, DEFAULT_WFLOW_HOME, STATE_ROOT
from .packages import describe_missing, missing_packages
from .report import status_lines

__all__ = ["DEFAULT_PREFIX", "DEFAULT_WFLOW_HOME", "STATE_ROOT", "Testbed", "TestbedError", "describe_missing",
           "down_all", "known_prefixes", "missing_packages", "status_lines", "stderr_log"]
