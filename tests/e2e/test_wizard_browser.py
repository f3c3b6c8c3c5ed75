"""The deploy wizard clicked through in headless Chromium, against the full testbed and a real Celery worker.

One walk, as an admin meets it: log in, import the testbed's inventory file, pin the one host key the file
leaves out, run the checklist (a broken shared directory on app2 fails, is fixed, passes), a dry run, a
deployment whose live log is read while its step runs, a failed step retried after the fix, the license page,
and the cluster overview. Every page is saved to docs/screenshots/ for the README.

The deployment runs the test-only steps of tests/deployments/engine_steps.py (EXTRA_STEP_MODULES in the test
environment): test.slow prints a tick every 0.1 s, test.flaky fails where /tmp/jcc-fail exists.
"""

import json
import re

import pytest

from nodes import ssh
from tests.testbed_plugin import _session_testbed

pytestmark = [
    pytest.mark.full,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(900),
]

CLUSTER = "testbed"
STEPS = "test.marker,test.flaky,test.after,test.slow"
TICKS = 150  # test.slow runs ~15 s: long enough to read its log while it runs


@pytest.fixture(scope="module")
def e2e_testbed():
    """Hosts of its own: other modules deploy Tomcat, Apache and MariaDB on the shared full testbed, and
    this walk starts from servers where nothing is deployed (the checklist's and overview's red)."""
    yield from _session_testbed("e2e", full=True)


@pytest.fixture
def inventory_file(e2e_testbed, tmp_path):
    """The testbed's inventory as the file an admin would upload, without app2's host key (to pin it by hand),
    and without files on the console machine (the web import refuses them: the key and artifacts are uploads)."""
    inventory = json.loads(json.dumps(dict(e2e_testbed)))
    inventory["cluster"] = CLUSTER
    inventory.pop("identity_file"), inventory.pop("known_hosts")
    inventory.pop("artifacts")
    for node in inventory["nodes"]:
        if node["name"] == "app2":
            node["host_key"] = ""
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inventory, indent=2))
    return path


@pytest.fixture
def hosts(e2e_testbed):
    """Undo what the test does to the hosts, whatever happens, so later sessions start clean."""
    wflow = ssh.quote(e2e_testbed["wflow_home"])
    yield e2e_testbed
    e2e_testbed.host_exec("app2", f"mount -o remount,bind,rw {wflow}")
    for host in e2e_testbed.app_servers:
        e2e_testbed.host_exec(host, "rm -f /tmp/jcc-fail /tmp/jcc-slow-ticks /run/jcc-marker /run/jcc-after")


def test_wizard_end_to_end(live_server, celery_worker_process, admin_user, hosts, inventory_file,
                           browser_page, screenshot):
    from playwright.sync_api import expect

    page = browser_page
    url = live_server.url
    wflow = ssh.quote(hosts["wflow_home"])

    # -- log in through the form ------------------------------------------------------------------------
    page.goto(f"{url}/wizard/")
    page.wait_for_url("**/login/?next=/wizard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url("**/wizard/")
    expect(page.locator("h1")).to_have_text("Deploy a Joget cluster")

    # -- start: upload the inventory file ----------------------------------------------------------------
    screenshot(page, "wizard-0-start")
    import_form = page.locator("form:has(input[name=action][value=import])")
    import_form.locator("input[name=file]").set_input_files(str(inventory_file))
    import_form.locator("input[name=identity]").set_input_files(hosts["identity_file"])
    import_form.get_by_role("button", name="Import").click()
    page.wait_for_url(f"**/clusters/{CLUSTER}/wizard/nodes/")

    # -- 1 nodes: every host key pinned from the file but app2's, which the admin confirms ---------------
    rows = page.locator("table.table tbody tr")
    expect(rows).to_have_count(4)
    for name in ("lb", "app1", "db"):
        expect(rows.filter(has_text=name).first).to_contain_text("pinned")
    expect(rows.filter(has_text="app2")).to_contain_text("not confirmed")
    # "Fetch all missing host keys": the worker fetches app2's key, the table shows it by itself.
    page.click("#fetch-keys")
    app2 = page.locator("#node-app2")
    expect(app2.get_by_role("button", name="Confirm")).to_be_visible()
    # What the admin compares with `ssh-keygen -lf` on the server: the key app2 really has.
    expect(app2.locator("code.fp")).to_have_text(ssh.fingerprint(hosts.node("app2")["host_key"]))
    app2.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"**/clusters/{CLUSTER}/wizard/nodes/")
    expect(page.locator("#node-app2 .status.ok")).to_have_text("pinned")
    expect(rows.filter(has_text="not confirmed")).to_have_count(0)
    screenshot(page, "wizard-1-nodes")

    # -- 2 layers, 3 artifacts (the stand-in jw.war and the schema, uploaded as an admin would) ------------
    page.click("#wizard-next")
    expect(page.locator(".page-head h1")).to_have_text("Layers")
    expect(page.locator(".layer").filter(has_text="Shared database")).to_contain_text("MariaDB")
    screenshot(page, "wizard-2-layers")
    page.click("#wizard-next")
    expect(page.locator(".page-head h1")).to_have_text("Artifacts")
    for artifact in hosts["artifacts"]:
        page.select_option("#upload-form select[name=kind]", artifact["kind"])
        page.set_input_files("#upload-form input[name=file]", artifact["path"])
        page.click("#upload-form button")
        page.wait_for_url(f"**/clusters/{CLUSTER}/wizard/artifacts/")
    expect(page.locator("table.table")).to_contain_text("jw.war")
    expect(page.locator("table.table")).to_contain_text("schema.sql")
    screenshot(page, "wizard-3-artifacts")

    # -- 4 checklist: app2's shared directory read-only fails; fixed, it passes ---------------------------
    hosts.host_exec("app2", f"mount -o remount,bind,ro {wflow}", check=True)
    page.click("#wizard-next")
    expect(page.locator(".page-head h1")).to_have_text("Checklist")
    expect(page.locator("#checklist")).to_contain_text("has not run yet")
    page.click("#run-checklist")
    app2_dir = page.locator('tr.check-row[data-item=shared_directory][data-node=app2]')
    app1_dir = page.locator('tr.check-row[data-item=shared_directory][data-node=app1]')
    expect(app2_dir).to_have_attribute("data-status", "fail", timeout=120_000)
    expect(app2_dir).to_contain_text("not writable")
    expect(app2_dir.locator(".hint")).to_contain_text("Make /opt/joget/wflow writable")
    expect(app1_dir).to_have_attribute("data-status", "pass")
    expect(page.locator("#checklist .run-head .status")).to_have_text("Failed", timeout=120_000)

    hosts.host_exec("app2", f"mount -o remount,bind,rw {wflow}", check=True)
    page.click("#run-checklist")
    expect(app2_dir).to_have_attribute("data-status", "pass", timeout=120_000)
    expect(app2_dir).to_contain_text("writable")
    # The rest of the run finishes too: database, HTTP and balancer are not there yet, and the deployment sets
    # them up, so they read "will be set up", not failed.
    expect(page.locator("#checklist .spinner")).to_have_count(0, timeout=120_000)
    db_app1 = page.locator('tr.check-row[data-item=database][data-node=app1]')
    expect(db_app1).to_have_attribute("data-status", "planned")
    expect(db_app1.locator(".status")).to_have_text("Will be set up")
    expect(page.locator("#checklist .run-head .status")).to_have_text("Passed")
    screenshot(page, "wizard-4-checklist")

    # -- 5 review: a dry run of the chosen steps --------------------------------------------------------
    page.click("#wizard-next")
    expect(page.locator(".page-head h1")).to_have_text("Review")
    page.fill("#steps-review", STEPS)
    page.click("#start-review")
    status = page.locator("#deployment-status .run-head .status.big")
    expect(status).to_have_text("Succeeded", timeout=120_000)
    expect(page.locator("#deployment-status .card.step")).to_have_count(4)
    # A dry run changes nothing, and says so: its planned changes read "Would change", never "Changed".
    expect(page.locator("#deployment-status .run-head")).to_contain_text("Dry run: nothing changed on the nodes")
    expect(page.locator("#deployment-status .runs .status.planned").first).to_have_text("Would change")
    expect(page.locator("#deployment-status")).to_contain_text("Would create /run/jcc-marker")
    expect(page.locator("#deployment-status .runs .status.changed")).to_have_count(0)
    # Disabled while the dry run ran, the start button comes back by itself once it has finished.
    expect(page.locator("#start-review")).to_be_enabled()
    expect(page.locator("#start-card")).not_to_contain_text("is running")
    screenshot(page, "wizard-5-review")

    # -- 6 run: live log while test.slow runs; test.flaky fails on app2 ----------------------------------
    hosts.host_exec("app2", "touch /tmp/jcc-fail", check=True)
    for host in hosts.app_servers:
        hosts.host_exec(host, f"echo {TICKS} > /tmp/jcc-slow-ticks", check=True)
    page.click("#wizard-next")
    expect(page.locator(".page-head h1")).to_have_text("Run")
    page.fill("#steps-run", STEPS)
    page.click("#start-run")
    page.wait_for_url(f"**/clusters/{CLUSTER}/wizard/run/")
    expect(status).to_have_text("Running")
    expect(page.locator("#start-run")).to_be_disabled()  # one deployment at a time

    slow = page.locator(".card.step").filter(has=page.locator(".mono", has_text="test.slow"))
    slow_app1 = slow.locator("tr.run-row").filter(has=page.locator("td.node", has_text="app1"))
    expect(slow_app1.locator(".status")).to_have_text("Running", timeout=120_000)
    log_button = slow_app1.get_by_role("button", name="Log")
    log = page.locator("#" + log_button.get_attribute("data-target"))
    log_button.click()
    expect(log.locator(".ln", has_text=re.compile(r"^tick 5$"))).to_have_count(1)
    # Lines arrived while the step still runs: the viewer is live and the last tick is still to come.
    expect(log.locator(".log-state")).to_have_text("live…")
    assert log.locator(".ln", has_text=f"tick {TICKS}").count() == 0
    expect(slow_app1.locator(".status")).to_have_text("Running")
    expect(log.locator(".ln", has_text=re.compile(rf"^tick {TICKS}$"))).to_have_count(1, timeout=120_000)
    expect(log.locator(".log-state")).to_have_text(re.compile("finished: (changed|ok)"))

    expect(status).to_have_text("Failed", timeout=120_000)
    expect(page.locator("#start-run")).to_be_enabled()  # re-rendered when the deployment finished
    flaky = page.locator(".card.step").filter(has=page.locator(".mono", has_text="test.flaky"))
    flaky_app2 = flaky.locator("tr.run-row").filter(has=page.locator("td.node", has_text="app2"))
    expect(flaky_app2.locator(".status")).to_have_text("Failed")
    expect(flaky_app2).to_contain_text("Remove /tmp/jcc-fail on that node, then retry.")
    after = page.locator(".card.step").filter(has=page.locator(".mono", has_text="test.after"))
    expect(after.locator("tr.run-row").filter(has=page.locator("td.node", has_text="app2")).locator(".status")
           ).to_have_text("Skipped")

    # The deployment's own page (from the cluster's list), with the failed node's log open.
    page.goto(f"{url}/clusters/{CLUSTER}/deployments/")
    page.locator("table.table tbody tr").first.get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/deployments/\d+/$"))
    expect(page.locator("h1")).to_contain_text("by admin")
    flaky_app2.get_by_role("button", name="Log").click()
    expect(flaky.locator(".log .ln.stderr").first).to_have_text("fail flag present")
    screenshot(page, "deployment")

    # -- retry where it failed, after the fix -----------------------------------------------------------
    hosts.host_exec("app2", "rm -f /tmp/jcc-fail", check=True)
    flaky.get_by_role("button", name="Retry where it failed").click()
    expect(page.locator(".flash-success")).to_contain_text("Retrying test.flaky where it failed.")
    expect(status).to_have_text("Succeeded", timeout=120_000)
    expect(flaky_app2.locator(".status")).to_have_text(re.compile("OK|Changed"))
    expect(after.locator("tr.run-row").filter(has=page.locator("td.node", has_text="app2")).locator(".status")
           ).to_have_text(re.compile("OK|Changed"))
    page.goto(f"{url}/clusters/{CLUSTER}/wizard/run/")
    expect(status).to_have_text("Succeeded")
    screenshot(page, "wizard-6-run")

    # -- 7 licenses: every app server has its system key row ---------------------------------------------
    page.click("#wizard-next")
    expect(page.locator(".page-head h1")).to_have_text("Licenses")
    for name in hosts.app_servers:
        expect(page.locator("#wizard-licenses tr", has_text=name)).to_contain_text("not read yet")
    screenshot(page, "wizard-7-licenses")
    page.get_by_role("link", name="Open the license page").click()
    page.wait_for_url(f"**/clusters/{CLUSTER}/licenses/")
    for name in hosts.app_servers:
        row = page.locator(f"#license-{name}")
        expect(row).to_contain_text(hosts.address(name))
        expect(row).to_contain_text("no key yet")  # Joget is not deployed: nothing to read yet
        expect(page.locator(f"#activate-{name}")).to_contain_text(f"Activate on {name}")
    expect(page.locator("table.licenses thead")).to_contain_text("System key")
    screenshot(page, "licenses")

    # -- 8 test ------------------------------------------------------------------------------------------
    page.goto(f"{url}/clusters/{CLUSTER}/wizard/test/")
    expect(page.locator(".page-head h1")).to_have_text("Test")
    expect(page.locator(".card.empty")).to_contain_text("did not include the post-deployment test")
    screenshot(page, "wizard-8-test")

    # -- checklist page and the overview, after one health check cycle -----------------------------------
    page.goto(f"{url}/clusters/{CLUSTER}/checklist/")
    # Run before the deployment: it says so, instead of passing for the cluster as it is now.
    expect(page.locator("#checklist .run-head .status")).to_have_text(re.compile(r"^Passed before deployment #\d+$"))
    screenshot(page, "checklist")

    page.goto(f"{url}/clusters/{CLUSTER}/status/")
    page.get_by_role("button", name="Check now").click()
    expect(page.locator("#cluster-status")).to_contain_text("Last check", timeout=120_000)
    page.goto(f"{url}/clusters/{CLUSTER}/")
    card = page.locator("#cluster-deployment")
    expect(card).to_contain_text("Last deployment")
    expect(card.locator(".status")).to_have_text("Succeeded")
    expect(card).to_contain_text("by admin")
    expect(card.get_by_role("link", name=re.compile(r"Open #\d+"))).to_be_visible()
    # Nothing is deployed: Tomcat is not running on the app servers, which the overview shows in red.
    expect(page.locator("#overview-nodes tr[data-node=app1] a.status").first).to_have_class(re.compile(r"\bbad\b"))
    expect(page.locator("#layer-app-servers .layer-health .status")).to_have_class(re.compile(r"\bbad\b"))
    expect(page.locator("#cluster-checklist .status")).to_have_text(re.compile(r"^Passed before deployment #\d+$"))
    screenshot(page, "overview")
