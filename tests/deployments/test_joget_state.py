"""What Joget records (deployments/joget_state.py): servers.json stale entries and their removal, builds per
node, licensed nodes in wf_setup against the console's licenses."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from deployments import joget_state as js
from nodes.inventory import load_inventory


def test_wf_setup_rows_and_licensed_names():
    rows = js.parse_wf_setup("license.node::node01\tEE-ABC\nsetting\tnode::node02;node::node03\\nx\n")
    assert rows == [("license.node::node01", "EE-ABC"), ("setting", "node::node02;node::node03\nx")]
    assert js.licensed_names(rows) == {"node01", "node02", "node03"}


def test_license_differences_are_flagged():
    rows = js.compare_licenses({"node01": True, "node02": False}, {"node01", "old9"})
    assert [(r["node"], r["differs"], r["known"]) for r in rows] == [
        ("node01", False, True), ("node02", False, True), ("old9", True, False)]
    assert js.compare_licenses({"node02": True}, set())[0]["differs"]


def test_build_lines():
    assert js.parse_build("version=8.1\nabcdef012345\n") == "8.1 (abcdef012345)"
    assert js.parse_build("Implementation-Version: 8.1.6\n") == "8.1.6"
    assert js.parse_build("") == ""
    assert js.build_mismatch({"a": "8.1 (x)", "b": "8.2 (y)"}) and not js.build_mismatch({"a": "8.1", "b": "8.1"})


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_stale_servers_json_entries_shown_and_removed_and_builds_compared(light_testbed, capsys):
    inv = dict(light_testbed)
    inv["artifacts"] = []
    cluster = load_inventory(inv, replace=True)
    wflow = cluster.wflow_home
    light_testbed.host_exec("app1", f"printf '%s' '{json.dumps({'servers': ['node01', 'node02', 'old9']})}' "
                                    f"> {wflow}/servers.json", check=True)
    state = js.read_servers_json(cluster)
    assert state.names == ["node01", "node02", "old9"] and state.stale == ["old9"]
    assert js.remove_stale(cluster, ["node01", "old9"]) == ["old9"]  # a node's own entry is never removed
    assert js.read_servers_json(cluster).names == ["node01", "node02"]
    bases = {n.name: n.effective_catalina_base for n in cluster.app_servers()}
    for host, version in (("app1", "8.1"), ("app2", "8.2")):
        light_testbed.host_exec(host, f"mkdir -p {bases[host]}/webapps/jw/WEB-INF && printf 'version={version}\\n' "
                                      f"> {bases[host]}/webapps/jw/WEB-INF/standin.properties", check=True)
    try:
        found = js.builds(cluster)
        assert found == {"app1": "8.1", "app2": "8.2"} and js.build_mismatch(found)
        light_testbed.host_exec("app1", f"printf '%s' '{json.dumps({'servers': ['node01', 'gone']})}' "
                                        f"> {wflow}/servers.json", check=True)
        call_command("joget_state", cluster.name)
        out = capsys.readouterr().out
        assert "gone (STALE: no node of the cluster)" in out and "build app2: 8.2  MISMATCH" in out
        assert "wf_setup:" in out  # no database on the light testbed: said, not raised
    finally:
        for host in ("app1", "app2"):
            light_testbed.host_exec(host, f"rm -rf {bases[host]}/webapps/jw {wflow}/servers.json*")
