"""The light cluster with the test-only steps (tests/deployments/engine_steps.py), shared by the engine and
fault tests; modules that deploy the guide's steps define their own `cluster`."""

import pytest

from nodes.inventory import load_inventory


@pytest.fixture
def cluster(light_testbed, celery_worker_process):
    inv = dict(light_testbed)
    inv["artifacts"] = []
    c = load_inventory(inv, replace=True)
    for host in ("app1", "app2"):
        light_testbed.host_exec(host, "rm -f /run/jcc-marker /tmp/jcc-fail /run/jcc-after /run/jcc-later "
                                      "/tmp/jcc-slow-ticks")
    return c
