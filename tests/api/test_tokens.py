"""Tokens: made by the command, shown once, stored hashed; none or revoked -> 401; roles as in the pages;
revoked on the profile page (own tokens; an admin's: anyone's); throttled per token; a browser session works
too, with CSRF enforced."""

import hashlib

import pytest
from django.conf import settings as django_settings

from deployments.models import ApiToken, Deployment
from nodes.models import AuditEvent, Cluster, Node

from .conftest import Api, browser_session, call, make_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prod(users):
    cluster = Cluster.objects.create(name="prod")
    Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True, jvm_route="node01")
    return cluster


def test_no_token_or_a_bad_one_is_401_with_the_bearer_challenge(live_server, prod):
    for headers in ({}, {"Authorization": "Bearer jcc_000000000000_not-a-real-token"}, {"Authorization": "Bearer"}):
        answer = call(f"{live_server.url}/api/v1/clusters/", headers=headers)
        assert answer.status == 401, headers
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert set(answer.json) == {"detail"} and answer.json["detail"]


def test_the_token_is_printed_once_stored_hashed_and_works(live_server, prod):
    token = make_token("viewer", "ci reader")
    assert token.startswith("jcc_")
    row = ApiToken.objects.get(name="ci reader")
    assert row.user.username == "viewer" and row.last_used is None
    assert row.digest == hashlib.sha256(token.encode()).hexdigest() and token not in (row.digest, row.key_id)

    answer = Api(live_server.url, token)("/clusters/")
    assert answer.status == 200
    assert [c["name"] for c in answer.json] == ["prod"] and answer.json[0]["nodes"] == 1
    row.refresh_from_db()
    assert row.last_used is not None
    assert AuditEvent.objects.filter(action="api_token_created", username="viewer").exists()


def test_a_revoked_token_is_401(live_server, prod):
    token = make_token("operator", "old ci")
    api = Api(live_server.url, token)
    assert api("/clusters/prod/").status == 200
    opener, csrf = browser_session(live_server.url, "operator")
    page = call(f"{live_server.url}/profile/api-tokens/", opener=opener)
    key_id = ApiToken.objects.get(name="old ci").key_id
    assert page.status == 200 and "old ci" in page.text and key_id in page.text
    revoked = call(f"{live_server.url}/profile/api-tokens/{key_id}/revoke/", "POST", opener=opener,
                   raw=f"csrfmiddlewaretoken={csrf}".encode(),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert revoked.status == 200 and "revoked" in revoked.text
    answer = api("/clusters/prod/")
    assert answer.status == 401 and "revoked" in answer.json["detail"]
    event = AuditEvent.objects.get(action="api_token_revoked")
    assert event.username == "operator" and "old ci" in event.target


def test_users_see_and_revoke_only_their_own_tokens_and_an_admin_any(live_server, prod):
    make_token("viewer", "viewer's token")
    make_token("operator", "operator's token")
    theirs = ApiToken.objects.get(name="operator's token")
    opener, csrf = browser_session(live_server.url, "viewer")
    page = call(f"{live_server.url}/profile/api-tokens/", opener=opener).text
    assert "viewer&#x27;s token" in page and "operator&#x27;s token" not in page
    form = {"raw": f"csrfmiddlewaretoken={csrf}".encode(), "headers": {"Content-Type":
                                                                      "application/x-www-form-urlencoded"}}
    assert call(f"{live_server.url}/profile/api-tokens/{theirs.key_id}/revoke/", "POST", opener=opener,
                **form).status == 404
    theirs.refresh_from_db()
    assert theirs.revoked is None

    opener, csrf = browser_session(live_server.url, "admin")
    page = call(f"{live_server.url}/profile/api-tokens/", opener=opener).text
    assert "viewer&#x27;s token" in page and "operator&#x27;s token" in page
    form["raw"] = f"csrfmiddlewaretoken={csrf}".encode()
    assert call(f"{live_server.url}/profile/api-tokens/{theirs.key_id}/revoke/", "POST", opener=opener,
                **form).status == 200
    theirs.refresh_from_db()
    assert theirs.revoked is not None


def test_roles_as_in_the_pages(api_as, prod):
    viewer, operator = api_as("viewer"), api_as("operator")
    answer = viewer("/clusters/prod/deployments/", "POST", body={"dry_run": True})
    assert answer.status == 403 and answer.json == {"detail": "This needs the operator role."}
    answer = viewer("/clusters/prod/checklist/", "POST")
    assert answer.status == 403
    assert not Deployment.objects.exists()
    assert viewer("/clusters/prod/deployments/").status == 200
    # Inventory changes are the admin's, as on the node form.
    answer = operator("/clusters/prod/nodes/app1/", "PATCH", body={"address": "10.0.0.12"})
    assert answer.status == 403 and answer.json == {"detail": "This needs the admin role."}
    assert Node.objects.get(name="app1").address == "10.0.0.11"
    # A user with no role at all: nothing, as on the pages.
    from .conftest import make_user
    make_user("nobody", None)
    with pytest.raises(Exception, match="no role"):
        make_token("nobody")


def test_throttled_per_token(api_as, prod, settings):
    settings.API_THROTTLE_RATE = "3/minute"
    first, second = api_as("viewer", "first"), api_as("viewer", "second")
    assert [first("/clusters/").status for _ in range(3)] == [200, 200, 200]
    answer = first("/clusters/")
    assert answer.status == 429 and "throttled" in answer.json["detail"].lower()
    assert int(answer.headers["retry-after"]) > 0
    assert second("/clusters/").status == 200  # another token has its own count
    assert django_settings.API_THROTTLE_RATE == "3/minute"


def test_a_logged_in_browser_uses_the_same_endpoints_with_csrf_enforced(live_server, prod):
    opener, csrf = browser_session(live_server.url, "admin")
    url = f"{live_server.url}/api/v1/clusters/prod/nodes/app1/"
    assert call(url, opener=opener).json["address"] == "10.0.0.11"
    refused = call(url, "PATCH", body={"address": "10.0.0.12"}, opener=opener)
    assert refused.status == 403 and "CSRF" in refused.json["detail"]
    assert Node.objects.get(name="app1").address == "10.0.0.11"
    done = call(url, "PATCH", body={"address": "10.0.0.12"}, opener=opener, headers={"X-CSRFToken": csrf})
    assert done.status == 200 and done.json["address"] == "10.0.0.12"
    event = AuditEvent.objects.get(action="node_changed")
    assert event.username == "admin" and event.details == "changed: address"  # a session: no token named
