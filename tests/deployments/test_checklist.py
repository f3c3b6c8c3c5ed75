"""The prerequisite checklist over real SSH: items fail with what was found and a fix, then pass once fixed."""

import shutil

import pytest
from django.core.management import call_command
from django.urls import reverse

from deployments import checklist
from deployments.models import CheckResult
from nodes.inventory import load_inventory
from tests.conftest import wait_for

pytestmark = [pytest.mark.light, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(light_testbed):
    inv = dict(light_testbed)
    inv["artifacts"] = []
    return load_inventory(inv, replace=True)


def result(run, item, node=None):
    qs = run.results.filter(item=item)
    return qs.get(node__name=node) if node else qs.get(node=None)


def test_same_directory_fails_when_one_app_server_has_its_own_then_passes(cluster, light_testbed):
    light_testbed.host_exec("app2", "mount -t tmpfs tmpfs /opt/joget/wflow", check=True)
    try:
        run = checklist.run_now(cluster)
        same = result(run, "shared_directory_same")
        assert same.status == "fail"
        assert "not seen on app2" in same.found and "must mount the same share" in same.fix
        assert run.status == "failed"
    finally:
        light_testbed.host_exec("app2", "umount /opt/joget/wflow", check=True)
    run = checklist.run_now(cluster)
    assert result(run, "shared_directory_same").status == "pass"
    for node in ("app1", "app2"):
        r = result(run, "shared_directory", node)
        assert r.status == "pass" and "writable" in r.found


def test_multicast_flag_missing_is_reported_with_a_fix(cluster, light_testbed):
    light_testbed.host_exec("app2", "ip link set dev eth0 multicast off", check=True)
    try:
        run = checklist.run_now(cluster)
        r = result(run, "replication", "app2")
        assert r.status == "fail" and "no MULTICAST flag on eth0" in r.found and "static membership" in r.fix
        assert result(run, "replication", "app1").status == "pass"
    finally:
        light_testbed.host_exec("app2", "ip link set dev eth0 multicast on", check=True)
    assert result(checklist.run_now(cluster), "replication", "app2").status == "pass"


def test_replication_ports_dropped_by_a_firewall_are_named(cluster, light_testbed):
    if not shutil.which("nft"):
        pytest.skip("nftables is not installed here (make test installs it)")
    # app2's firewall drops part of Tomcat's receiver range: only a timeout means filtered, as in real life.
    light_testbed.host_exec("app2", "nft add table inet jcc && nft 'add chain inet jcc input "
                                    "{ type filter hook input priority 0; }' && "
                                    "nft add rule inet jcc input tcp dport 4050-4060 drop", check=True)
    try:
        run = checklist.run_now(cluster)
        r = result(run, "replication", "app1")
        assert r.status == "fail" and "TCP 4050-4060 to app2 time out" in r.found, r.found
        assert "Open TCP 4000-4100 between the app servers" in r.fix
        assert result(run, "replication", "app2").status == "pass"  # app1 drops nothing
    finally:
        light_testbed.host_exec("app2", "nft delete table inet jcc", check=True)
    r = result(checklist.run_now(cluster), "replication", "app1")
    assert r.status == "pass" and "TCP 4000-4100 reachable: app2" in r.found


def test_static_membership_does_not_need_multicast(cluster, light_testbed):
    cluster.multicast = False
    cluster.save()
    light_testbed.host_exec("app1", "ip link set dev eth0 multicast off", check=True)
    try:
        r = result(checklist.run_now(cluster), "replication", "app1")
        assert r.status == "pass" and "static membership possible" in r.found
    finally:
        light_testbed.host_exec("app1", "ip link set dev eth0 multicast on", check=True)


def _deployed_once(cluster):
    """After a successful deployment of the whole plan, whatever fails is a failure, not something to set up."""
    from django.utils import timezone

    from deployments.models import Deployment

    Deployment.objects.create(cluster=cluster, status=Deployment.Status.SUCCEEDED, finished=timezone.now())


def test_layers_the_deployment_sets_up_read_will_be_set_up(cluster):
    run = checklist.run_now(cluster)
    db = result(run, "database", "app1")
    assert db.status == "planned", (db.found, db.fix)
    assert db.fix.startswith("Will be set up: the deployment installs and sets up the database")
    http = result(run, "app_http", "app1")
    assert http.status == "planned" and "starts Tomcat with Joget on app1" in http.fix
    assert result(run, "balancer").status == "planned"
    assert result(run, "shared_directory", "app1").status == "pass"
    assert run.status == "passed"


def test_database_and_http_failures_say_how_to_fix(cluster):
    _deployed_once(cluster)
    run = checklist.run_now(cluster)
    db = result(run, "database", "app1")
    assert db.status == "fail" and "joget@" in db.found and "bind-address" in db.fix
    http = result(run, "app_http", "app1")
    assert http.status == "fail" and ":8080/" in http.found and "Start the application server" in http.fix
    assert result(run, "balancer").status == "fail"


def test_app_http_passes_when_something_answers(cluster, light_testbed):
    light_testbed.host_exec(
        "app1", "setsid python3 -m http.server 8080 --bind 0.0.0.0 --directory /tmp </dev/null >/dev/null 2>&1 &")
    try:
        wait_for(lambda: checklist.app_answers_http(cluster, cluster.nodes.get(name="app1")).ok,
                 message="the HTTP server on app1")
        r = result(checklist.run_now(cluster), "app_http", "app1")
        assert r.status == "pass" and "answers HTTP 200" in r.found
    finally:
        light_testbed.host_exec("app1", "pkill -f 'http.server 8080' || true")


def test_command_exits_non_zero_on_failure(cluster, capsys):
    _deployed_once(cluster)
    with pytest.raises(SystemExit) as exc:
        call_command("check_prerequisites", cluster.name)
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert "PASS  Shared directory mounted and writable [app1]" in out
    assert "FAIL  Balancer sends /jw to the app servers [cluster]" in out
    assert out.strip().endswith("checklist failed")


def test_page_fills_in_live_through_the_worker(cluster, admin_client, celery_worker_process):
    r = admin_client.post(reverse("deployments:checklist_run", args=[cluster.name]))
    assert r.status_code == 302
    url = reverse("deployments:checklist", args=[cluster.name])
    page = wait_for(lambda: (resp := admin_client.get(url, HTTP_HX_REQUEST="true")).status_code == 286 and resp,
                    timeout=60, message="the checklist to finish")
    html = page.content.decode()
    assert "Shared directory mounted and writable" in html
    assert "Will be set up</span>" in html and "The deployment sets up the balancer" in html
    assert not CheckResult.objects.filter(status="pending").exists()
