import pytest

from deployments.steps import Step, _dependency_order


def _step(key, *deps):
    return type(key, (Step,), {"key": key, "depends_on": deps})()


def test_dependencies_come_first_otherwise_registration_order():
    a, b, c, d = _step("a"), _step("b", "d"), _step("c"), _step("d", "a")
    assert [s.key for s in _dependency_order([a, b, c, d])] == ["a", "c", "d", "b"]


def test_dependencies_outside_the_plan_are_ignored():
    assert [s.key for s in _dependency_order([_step("x", "not-in-plan")])] == ["x"]


@pytest.mark.django_db
def test_cluster_secrets_holds_every_login_and_password_of_the_cluster_and_nothing_of_another():
    from nodes.models import Cluster, Credential, Node, SharedDatabase
    from nodes.secrets import cluster_secrets

    default = Credential.objects.create(name="default", kind="password", password="default-pw-1")
    own = Credential.objects.create(name="own", kind="key", private_key="k", passphrase="own-passphrase-2")
    other = Credential.objects.create(name="other", kind="password", password="other-cluster-pw")
    c = Cluster.objects.create(name="c1", credential=default, joget_admin_password="joget-admin-3")
    Node.objects.create(cluster=c, name="a1", address="10.0.0.1", is_app_server=True)
    Node.objects.create(cluster=c, name="a2", address="10.0.0.2", is_app_server=True, credential=own)
    SharedDatabase.objects.create(cluster=c, password="db-pw-4")
    c2 = Cluster.objects.create(name="c2", credential=other)
    Node.objects.create(cluster=c2, name="b1", address="10.0.0.3", is_app_server=True)

    assert sorted(cluster_secrets(c)) == sorted(["joget-admin-3", "default-pw-1", "own-passphrase-2", "db-pw-4"])
    assert cluster_secrets(c2) == ["other-cluster-pw"]


def test_the_plan_table_in_docs_is_the_plan_in_code():
    from pathlib import Path

    from deployments.steps import PLAN, get_step

    text = Path(__file__).resolve().parents[2].joinpath("docs", "steps.md").read_text()
    table = text.split("## The plan (keys and dependencies)", 1)[1].strip().splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:] if line.startswith("|")]
    assert rows == [[key, where, ", ".join(deps)] for key, where, deps in PLAN]
    assert all(get_step(key).depends_on == deps for key, _where, deps in PLAN)
