"""Adding and removing an app server through the API, where it is refused: the admin's (it changes the inventory),
wrong fields a 400 on the field with the validators of the cluster page's form, a second add of a node or an unknown
node a 400 saying why, the cluster's state (not serving yet, another run going on, the last app server, a database
node) a 409. Nothing changes. The real runs are in tests/deployments/test_scale.py."""

import pytest

from deployments.models import Deployment, StepRun
from nodes.models import Node
from tests.deployments.test_rolling_plan import KEY

from .conftest import Api
from .test_operations import nothing_started, shop  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)
ADD, REMOVE = "/clusters/shop/operations/add-node/", "/clusters/shop/operations/remove-node/"
NEW = {"name": "app3", "address": "10.0.0.13", "jvm_route": "node03", "host_key": KEY}


def serving(cluster) -> Deployment:
    done = Deployment.objects.create(cluster=cluster, status=Deployment.Status.SUCCEEDED)
    StepRun.objects.create(deployment=done, step="load_balancer.site", position=0, status=StepRun.Status.CHANGED)
    return done


def test_only_an_admin_adds_or_removes_and_a_cluster_not_serving_yet_is_409(api_as, shop):  # noqa: F811
    for role in ("viewer", "operator"):
        caller: Api = api_as(role)
        for path, body in ((ADD, NEW), (REMOVE, {"node": "app1"})):
            refused = caller(path, "POST", body=body)
            assert refused.status == 403, (role, path, refused.status)
    admin = api_as("admin")
    refused = admin(ADD, "POST", body=NEW)
    assert refused.status == 409 and "does not serve through a load balancer yet" in refused.json["detail"]
    assert admin("/clusters/nope/operations/add-node/", "POST", body=NEW).status == 404
    nothing_started(shop)
    assert not Node.all_objects.filter(name="app3").exists()


def test_wrong_fields_a_second_add_and_an_unknown_node_are_400_with_nothing_changed(api_as, shop):  # noqa: F811
    done = serving(shop)
    admin = api_as("admin")
    bad = admin(ADD, "POST", body={**NEW, "name": "App 3!", "address": "10.0.0.13;reboot", "ssh_port": 70000})
    assert bad.status == 400 and set(bad.json["fields"]) == {"name", "address", "ssh_port"}, bad.json
    missing = admin(ADD, "POST", body={"name": "app3"})
    assert set(missing.json["fields"]) == {"address", "jvm_route", "host_key"}
    again = admin(ADD, "POST", body={**NEW, "name": "app1"})
    assert again.status == 400 and again.json["fields"] == {
        "name": ["app1 is an app server of shop already (10.0.0.11): nothing changed."]}
    taken = admin(ADD, "POST", body={**NEW, "jvm_route": "node02"})
    assert taken.status == 400 and list(taken.json["fields"]) == ["jvm_route"]
    not_a_key = admin(ADD, "POST", body={**NEW, "host_key": "ssh-ed25519 !!"})
    assert not_a_key.status == 400 and list(not_a_key.json["fields"]) == ["host_key"]
    unknown = admin(REMOVE, "POST", body={"node": "ghost"})
    assert unknown.status == 400 and unknown.json["fields"] == {"node": ["No node 'ghost' in cluster shop: nothing "
                                                                         "changed."]}
    database = admin(REMOVE, "POST", body={"node": "db"})
    assert database.status == 409 and "shared database holds every app's data" in database.json["detail"]
    nothing_started(shop, done)
    assert Node.all_objects.filter(cluster=shop).count() == 4 and not Node.objects.filter(leaving=True).exists()


def test_another_run_going_on_is_409_naming_it_and_the_node_is_not_recorded(api_as, shop):  # noqa: F811
    serving(shop)
    running = Deployment.objects.create(cluster=shop)
    refused = api_as("admin")(ADD, "POST", body=NEW)
    assert refused.status == 409 and refused.json["running_deployment"] == running.pk
    assert not Node.all_objects.filter(name="app3").exists()
    refused = api_as("admin")(REMOVE, "POST", body={"node": "app2"})
    assert refused.status == 409 and not Node.objects.filter(leaving=True).exists()
