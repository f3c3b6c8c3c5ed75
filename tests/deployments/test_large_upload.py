"""A 300 MB artifact upload through the web server `make run` starts (gunicorn, threads), as a browser sends it.

The body is streamed from disk in 1 MB pieces; the assertion is on the web process's own peak
memory (VmHWM from /proc): a server that held the upload in memory would grow by 300 MB or more.
"""

import hashlib
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from nodes.models import Artifact, Cluster
from tests.conftest import ROOT, worker_database_url

SIZE = 300 * 1024 * 1024
CHUNK = 1024 * 1024
pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web_server(transactional_db, tmp_path):
    """gunicorn with the options of scripts/run.sh, on the test database, media in a temp dir."""
    env = dict(os.environ, MEDIA_ROOT=str(tmp_path / "media"), DATABASE_URL=worker_database_url())
    port = _free_port()
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "joget_cluster.wsgi", "-b", f"127.0.0.1:{port}", "--threads", "8"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2).close()  # noqa: S310 - loopback
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start: {(tmp_path / 'gunicorn.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield port, proc, tmp_path / "media"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)
    log.close()


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))


def test_a_300_mb_war_is_streamed_to_storage_with_its_size_and_checksum(web_server, admin_user, tmp_path):
    port, proc, media = web_server
    Cluster.objects.create(name="prod")
    # A logged-in browser: its session cookie, and the CSRF token the upload form carries.
    client = Client()
    client.force_login(admin_user)
    cookies = {"sessionid": client.cookies[settings.SESSION_COOKIE_NAME].value}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", "/clusters/prod/wizard/artifacts/", headers={"Cookie": _cookie(cookies)})
    page = conn.getresponse()
    html = page.read().decode()
    assert page.status == 200
    cookies["csrftoken"] = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie")).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    war = tmp_path / "jw.war"
    digest = hashlib.sha256()
    with war.open("wb") as fh:
        block = os.urandom(CHUNK)
        for i in range(SIZE // CHUNK):
            piece = i.to_bytes(4, "big") + block[4:]  # every MB differs: a truncated or reordered copy shows
            digest.update(piece)
            fh.write(piece)
    worker = _worker_pid(proc.pid)
    before = _peak_rss_kib(worker)

    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\njw_war\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"jw.war\"\r\n"
            "Content-Type: application/java-archive\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    conn.putrequest("POST", "/clusters/prod/wizard/upload/")
    conn.putheader("Cookie", _cookie(cookies))
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + SIZE + len(tail)))
    conn.putheader("Referer", f"http://127.0.0.1:{port}/clusters/prod/wizard/artifacts/")
    conn.endheaders()
    conn.send(head)
    with war.open("rb") as fh:
        for piece in iter(lambda: fh.read(CHUNK), b""):
            conn.send(piece)
    conn.send(tail)
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 302, reply.status
    assert reply.getheader("Location") == "/clusters/prod/wizard/artifacts/"

    art = Artifact.objects.get(cluster__name="prod", kind="jw_war")
    assert art.size == SIZE and art.sha256 == digest.hexdigest()
    stored = media / art.file.name
    assert stored.stat().st_size == SIZE
    grown_mib = (_peak_rss_kib(worker) - before) / 1024
    assert grown_mib < 64, f"the web process grew by {grown_mib:.0f} MiB during a 300 MiB upload"

    conn.request("GET", "/clusters/prod/wizard/artifacts/", headers={"Cookie": _cookie(cookies)})
    page = conn.getresponse().read().decode()
    assert art.sha256 in page and "300.0 MB" in page


def _cookie(cookies: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())
