"""Every view, every role: 403 where not allowed, 405 on the wrong method."""

import pytest
from django.contrib.auth.models import Group, User

from deployments.models import Deployment, StepRun
from nodes.models import Cluster, Node

pytestmark = pytest.mark.django_db

ROLES = ["none", "viewer", "operator", "admin"]
RANK = {r: i for i, r in enumerate(ROLES)}

# (method, url, least role). POSTs carry no data: a 403 must come before any validation.
ENDPOINTS = [
    ("get", "/", "viewer"),
    ("get", "/clusters/prod/", "viewer"),
    ("get", "/clusters/new/", "admin"),
    ("post", "/clusters/new/", "admin"),
    ("get", "/clusters/import/", "admin"),
    ("get", "/clusters/prod/edit/", "admin"),
    ("post", "/clusters/prod/delete/", "admin"),
    ("get", "/clusters/prod/layers/shared-database/", "admin"),
    ("get", "/clusters/prod/nodes/new/", "admin"),
    ("get", "/clusters/prod/nodes/app1/", "viewer"),
    ("get", "/clusters/prod/nodes/app1/edit/", "admin"),
    ("post", "/clusters/prod/nodes/app1/delete/", "admin"),
    ("post", "/clusters/prod/nodes/app1/connect/", "operator"),
    ("get", "/clusters/prod/nodes/app1/host-key/", "viewer"),
    ("post", "/clusters/prod/nodes/app1/host-key/confirm/", "admin"),
    ("post", "/clusters/prod/nodes/app1/probe/", "operator"),
    ("get", "/clusters/prod/nodes/app1/facts/", "viewer"),
    ("get", "/credentials/", "admin"),
    ("get", "/credentials/new/", "admin"),
    ("post", "/credentials/generate/", "admin"),
    ("get", "/clusters/prod/deployments/", "viewer"),
    ("post", "/clusters/prod/deployments/start/", "operator"),
    ("get", "/deployments/{dep}/", "viewer"),
    ("post", "/deployments/{dep}/cancel/", "operator"),
    ("post", "/deployments/{dep}/resume/", "operator"),
    ("post", "/deployments/{dep}/retry/", "operator"),
    ("get", "/deployments/{dep}/runs/{run}/log/", "viewer"),
    ("get", "/deployments/{dep}/runs/{run}/log.txt", "viewer"),
    ("get", "/clusters/prod/members/", "viewer"),
    ("post", "/clusters/prod/members/app1/", "operator"),
    ("post", "/clusters/prod/operate/restart/", "operator"),
    ("post", "/clusters/prod/operate/rollback/", "operator"),
    ("post", "/clusters/prod/operate/upgrade/", "admin"),
    ("get", "/clusters/prod/checklist/", "viewer"),
    ("post", "/clusters/prod/checklist/run/", "operator"),
    ("get", "/wizard/", "viewer"),
    ("post", "/wizard/", "admin"),
    ("post", "/wizard/testbed/", "admin"),
    ("get", "/clusters/prod/wizard/", "viewer"),
    ("post", "/clusters/prod/wizard/connect-all/", "operator"),
    ("post", "/clusters/prod/wizard/upload/", "admin"),
    ("get", "/clusters/prod/wizard/nodes/", "viewer"),
]


@pytest.fixture
def world():
    cluster = Cluster.objects.create(name="prod")
    node = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True,
                               jvm_route="node01")
    dep = Deployment.objects.create(cluster=cluster, status="failed")
    run = StepRun.objects.create(deployment=dep, step="test.marker", position=0, node=node, status="failed")
    return {"dep": dep.pk, "run": run.pk}


def client_for(client, role):
    user = User.objects.create_user(f"u-{role}", password="pw-123456789")
    if role != "none":
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ROLES)
def test_each_endpoint_for_each_role(client, world, role):
    client = client_for(client, role)
    for method, url, least in ENDPOINTS:
        url = url.format(**world)
        response = getattr(client, method)(url)
        if RANK[role] < RANK[least]:
            assert response.status_code == 403, f"{role} {method.upper()} {url}: {response.status_code}"
        else:
            assert response.status_code != 403, f"{role} {method.upper()} {url}: 403"


POST_ONLY = [e for e in ENDPOINTS if e[0] == "post" and ("get", e[1], e[2]) not in ENDPOINTS
             and not any(g[0] == "get" and g[1] == e[1] for g in ENDPOINTS)]


@pytest.mark.parametrize("method,url,least", POST_ONLY)
def test_wrong_method_is_405(admin_client, world, method, url, least):
    assert admin_client.get(url.format(**world)).status_code == 405


def test_anonymous_is_sent_to_login(client, world):
    for method, url, _ in ENDPOINTS:
        response = getattr(client, method)(url.format(**world))
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_a_run_of_another_deployment_is_not_reachable(admin_client, world):
    other = Deployment.objects.create(cluster=Cluster.objects.create(name="other"), status="failed")
    url = f"/deployments/{other.pk}/runs/{world['run']}/log/"
    assert admin_client.get(url).status_code == 404


def test_a_node_of_another_cluster_is_not_reachable(admin_client, world):
    Cluster.objects.create(name="other")
    assert admin_client.get("/clusters/other/nodes/app1/").status_code == 404
