"""The project's testbed: simulated Linux hosts (network, mount, UTS and PID namespaces) on one machine.

`Testbed(prefix).up()` / `.down()` / `.status()` / `.host_exec(host, cmd)`; the CLI is
`manage.py testbed up|down|status`, the pytest fixtures are in tests/testbed_plugin.py.
"""

from .errors import TestbedError
from .hosts import DEFAULT_PREFIX, STATE_ROOT, Testbed, down_all, known_prefixes
from .packages import describe_missing, missing_packages

__all__ = ["DEFAULT_PREFIX", "STATE_ROOT", "Testbed", "TestbedError", "describe_missing", "down_all",
           "known_prefixes", "missing_packages"]
