"""The checklist neither writes through a symlink in the shared directory nor lets HTTP go elsewhere."""

import http.server
import threading

import pytest

from deployments import checklist
from nodes.inventory import load_inventory

WFLOW = "/opt/joget/wflow"


class _Redirecting(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path == "/":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.end_headers()
        else:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"followed")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_http_checks_do_not_follow_redirects_nor_use_a_proxy(server, monkeypatch):
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    status, body = checklist._http_get(f"{server}/")
    assert status == 302 and "followed" not in body
    # A proxy from the environment would see the request (and the node's answer): it is not asked.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert checklist._http_get(f"{server}/elsewhere") == (200, "followed")


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_shared_directory_check_writes_nothing_through_planted_symlinks(light_testbed):
    tb = light_testbed
    inv = dict(tb)
    inv["artifacts"] = []
    cluster = load_inventory(inv, replace=True)
    # The service user owns the shared directory (as after a deployment) and plants symlinks there
    tb.host_exec("app1", f"chown tomcat:tomcat {WFLOW}; rm -f /etc/jcc-victim-check", check=True)
    # (for every pid the next commands on the host can get: the old check named its file after its shell's pid)
    plant = ("import os\nfor p in range(os.getpid(), os.getpid() + 2000):\n"
             f"    os.symlink('/etc/jcc-victim-check', '{WFLOW}/.jcc-check-app1-%d' % p)")
    tb.host_exec("app1", ["runuser", "-u", "tomcat", "--", "python3", "-c", plant], check=True)
    try:
        outcome = checklist.shared_directory_writable(cluster, cluster.nodes.get(name="app1"))
        assert outcome.ok and "writable" in outcome.found
        assert tb.host_exec("app1", "test -e /etc/jcc-victim-check").returncode == 1
    finally:
        tb.host_exec("app1", f"rm -f {WFLOW}/.jcc-check-* /etc/jcc-victim-check; chown root:root {WFLOW}")
