"""Cancel kills only what the run started on the node: its pid file is where only root can write."""

import time

import pytest

from deployments import engine
from nodes import ssh
from nodes.inventory import load_inventory

pytestmark = [pytest.mark.light, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def node(light_testbed):
    inv = dict(light_testbed)
    inv["artifacts"] = []
    return load_inventory(inv, replace=True).nodes.get(name="app1")


def on_node(tb, command: str) -> str:
    return tb.host_exec("app1", command).stdout.strip()


def test_cancel_kills_only_what_the_run_started(node, light_testbed):
    tb = light_testbed
    run_id = 900_000 + int(time.time()) % 1000
    # Another user's process, and a pid file planted where the old code kept it: "1" meant kill -TERM -1.
    plant = f"echo 1 > /tmp/jcc-step-{run_id}.pid; (setsid sleep 300 </dev/null >/dev/null 2>&1 &)"
    r = tb.host_exec("app1", ["runuser", "-u", "tomcat", "--", "sh", "-c", plant])
    assert r.returncode == 0, r.stderr
    sleepers = on_node(tb, "pgrep -u tomcat -x sleep")
    assert sleepers
    engine._kill_remote(node, run_id)
    time.sleep(0.5)
    assert on_node(tb, "pgrep -u tomcat -x sleep") == sleepers
    assert on_node(tb, f"stat -c '%a %U' {engine.STEP_PID_DIR} 2>/dev/null || echo none") in ("700 root", "none")

    # A real run's command is killed; a stale pid file (same pid, another start time) kills nothing.
    with ssh.open_connection(node) as conn:
        wrapped = engine._cancellable(run_id)("sleep 301")
        conn.run(f"({wrapped}) </dev/null >/dev/null 2>&1 &", timeout=10)
        time.sleep(0.5)
        assert on_node(tb, "pgrep -x -f 'sleep 301' | wc -l") == "1"
        assert on_node(tb, f"stat -c '%a %U' {engine.STEP_PID_DIR}") == "700 root"
        pid = on_node(tb, f"cut -d' ' -f1 {engine.STEP_PID_DIR}/{run_id}.pid")
        tb.host_exec("app1", f"echo '{pid} 12345' > {engine.STEP_PID_DIR}/{run_id}.pid.real; "
                             f"mv {engine.STEP_PID_DIR}/{run_id}.pid {engine.STEP_PID_DIR}/{run_id}.pid.keep; "
                             f"mv {engine.STEP_PID_DIR}/{run_id}.pid.real {engine.STEP_PID_DIR}/{run_id}.pid")
        engine._kill_remote(node, run_id)
        time.sleep(0.3)
        assert on_node(tb, "pgrep -x -f 'sleep 301' | wc -l") == "1"
        tb.host_exec("app1", f"mv {engine.STEP_PID_DIR}/{run_id}.pid.keep {engine.STEP_PID_DIR}/{run_id}.pid")
        engine._kill_remote(node, run_id)
        time.sleep(0.3)
        assert on_node(tb, "pgrep -x -f 'sleep 301' | wc -l") == "0"
    tb.host_exec("app1", "pkill -u tomcat -x sleep; rm -f /tmp/jcc-step-*")
