"""Host-key pinning and the probe, over real SSH to testbed hosts, through a real worker."""

import paramiko
import pytest
from django.urls import reverse

from nodes import ssh
from nodes.inventory import load_inventory
from nodes.models import Node
from tests.conftest import wait_for

pytestmark = [pytest.mark.light, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(light_testbed, celery_worker_process):
    inv = dict(light_testbed)
    inv["artifacts"] = []
    return load_inventory(inv, replace=True)


def test_connection_rejects_unknown_hosts_by_policy(cluster):
    node = cluster.nodes.get(name="app1")
    conn = ssh.open_connection(node).open()
    try:
        assert isinstance(conn._conn.client._policy, paramiko.RejectPolicy)
        assert conn.run("hostname").stdout.strip() == "app1"
    finally:
        conn.close()


def test_changed_host_key_refuses_to_run_anything(cluster, light_testbed):
    app1 = cluster.nodes.get(name="app1")
    app2 = cluster.nodes.get(name="app2")
    # Pin app2's key on app1's record: exactly what a man in the middle looks like.
    app1.host_key = app2.host_key
    app1.save()
    with pytest.raises(ssh.HostKeyMismatch) as exc:
        with ssh.open_connection(app1) as conn:
            conn.run("touch /tmp/should-not-exist")
    assert "host key changed" in str(exc.value) and ssh.fingerprint(app2.host_key) in str(exc.value)
    assert light_testbed.host_exec("app1", "test -e /tmp/should-not-exist; echo $?").stdout.strip() == "1"


def test_unpinned_node_refuses(cluster):
    node = cluster.nodes.get(name="db")
    node.host_key = ""
    node.save()
    with pytest.raises(ssh.HostKeyNotPinned, match="no confirmed host key"):
        ssh.open_connection(node).open()


def test_connect_fetches_fingerprint_and_admin_confirms(cluster, light_testbed, admin_client):
    node = cluster.nodes.get(name="lb")
    real_key = node.host_key
    node.host_key = ""
    node.save()
    r = admin_client.post(reverse("nodes:node_connect", args=[cluster.name, "lb"]), HTTP_HX_REQUEST="true")
    assert b"Fetching the host key" in r.content
    url = reverse("nodes:node_host_key", args=[cluster.name, "lb"])
    r = wait_for(lambda: (resp := admin_client.get(url, HTTP_HX_REQUEST="true")).status_code == 286 and resp,
                 message="the host key task")
    fp = ssh.fingerprint(real_key)
    assert fp in r.content.decode() and b"Confirm this key" in r.content
    # A stale fingerprint (the key changed after it was shown) is not pinned.
    admin_client.post(reverse("nodes:node_confirm_host_key", args=[cluster.name, "lb"]), {"fingerprint": "SHA256:x"})
    assert Node.objects.get(pk=node.pk).host_key == ""
    admin_client.post(reverse("nodes:node_confirm_host_key", args=[cluster.name, "lb"]), {"fingerprint": fp})
    node.refresh_from_db()
    assert node.host_key == real_key and node.host_key_confirmed_at


def test_connect_to_a_dead_port_says_so(cluster, admin_client):
    node = cluster.nodes.get(name="lb")
    node.ssh_port = 2
    node.save()
    admin_client.post(reverse("nodes:node_connect", args=[cluster.name, "lb"]), HTTP_HX_REQUEST="true")
    wait_for(lambda: Node.objects.get(pk=node.pk).offered_host_key_at, message="the host key task")
    node.refresh_from_db()
    assert "Cannot reach" in node.offered_host_key_error and not node.offered_host_key


def test_probe_node_fills_the_page(cluster, admin_client):
    url = reverse("nodes:node_probe", args=[cluster.name, "app1"])
    r = admin_client.post(url, HTTP_HX_REQUEST="true")
    assert b"Probing app1" in r.content
    facts_url = reverse("nodes:node_facts", args=[cluster.name, "app1"])
    r = wait_for(lambda: (resp := admin_client.get(facts_url, HTTP_HX_REQUEST="true")).status_code == 286 and resp,
                 message="the probe task")
    node = cluster.nodes.get(name="app1")
    assert node.facts["hostname"] == "app1"
    assert node.facts["os"].startswith("Debian")
    assert int(node.facts["cpus"]) >= 1 and int(node.facts["memory_mb"]) > 0
    page = admin_client.get(node.get_absolute_url()).content.decode()
    assert "app1" in page and node.facts["kernel"] in page


def test_probe_of_unreachable_node_shows_the_error(cluster, light_testbed):
    from nodes.services import probe_node

    light_testbed.stop_host("db")
    try:
        probe_node(cluster.nodes.get(name="db").pk)
        node = cluster.nodes.get(name="db")
        assert "Cannot reach" in node.facts_error or "SSH failed" in node.facts_error
    finally:
        light_testbed.start_host("db")
