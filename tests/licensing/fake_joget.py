"""A tiny in-process Joget console for the licensing unit tests: form login with a session cookie, and a
License page shaped like the stand-in's (docs/standin.md), or any other markup a test sets."""

from __future__ import annotations

import html
import http.server
import threading
import urllib.parse
import uuid

STANDIN_PAGE = """<!DOCTYPE html><html><body><h1>License</h1>{message}
<table id="licenseInfo">
<tr><th>System Key</th><td><span id="systemKey">{key}</span></td></tr>
<tr><th>Status</th><td><span id="licenseStatus">{status}</span> - whatever</td></tr>
</table>{stored}
<form id="licenseForm" method="post" action="/jw/web/console/setting/license">
<input type="hidden" name="OWASP_CSRFTOKEN" value="tok&amp;en">
<textarea name="license"></textarea><input type="submit"></form></body></html>"""


class FakeJoget:
    def __init__(self, key="EE-0123456789ABCDEF0123456789ABCDEF", password="admin"):
        self.key, self.password, self.user = key, password, "admin"
        self.page = None  # a test may set raw HTML for the License page
        self.license = None
        self.sessions: set[str] = set()
        self.requests: list[dict] = []
        self.prg = False  # answer a license POST with a redirect (post/redirect/get)
        self.redirect_elsewhere = ""
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _session(self):
                for part in self.headers.get("Cookie", "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == "JSESSIONID" and value in fake.sessions:
                        return value
                return None

            def _form(self):
                length = int(self.headers.get("Content-Length") or 0)
                return dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))

            def _reply(self, status, body="", headers=None):
                data = body.encode()
                self.send_response(status)
                for k, v in {"Content-Type": "text/html;charset=UTF-8", "Content-Length": str(len(data)),
                             **(headers or {})}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append({"method": "GET", "path": self.path, "cookie": self.headers.get("Cookie")})
                if self.path.startswith("/jw/web/console/setting/license"):
                    if not self._session():
                        return self._reply(302, headers={"Location": "/jw/web/login"})
                    return self._reply(200, fake.render())
                self._reply(404, "not found")

            def do_POST(self):
                form = self._form()
                fake.requests.append({"method": "POST", "path": self.path, "cookie": self.headers.get("Cookie"),
                                      "form": form})
                if self.path == "/jw/j_spring_security_check":
                    if form.get("j_username") == fake.user and form.get("j_password") == fake.password:
                        sid = uuid.uuid4().hex
                        fake.sessions.add(sid)
                        return self._reply(302, headers={"Location": "/jw/web/console/home",
                                                         "Set-Cookie": f"JSESSIONID={sid}; Path=/jw; HttpOnly"})
                    return self._reply(302, headers={"Location": "/jw/web/login?login_error=1"})
                if self.path == "/jw/web/console/setting/license":
                    if not self._session():
                        return self._reply(302, headers={"Location": "/jw/web/login"})
                    text = form.get("license", "").strip()
                    if fake.key in text:
                        fake.license = text
                        message = '<div id="licenseMessage" class="success">License activated</div>'
                    else:
                        message = ('<div id="licenseError" class="error">Invalid license: not for key '
                                   f'{fake.key} (got {html.escape(text)})</div>')
                    if fake.redirect_elsewhere:
                        return self._reply(302, headers={"Location": fake.redirect_elsewhere})
                    if fake.prg:
                        return self._reply(302, headers={"Location": "/jw/web/console/setting/license?saved=1"})
                    return self._reply(200, fake.render(message))
                self._reply(404, "not found")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def render(self, message=""):
        if self.page is not None:
            return self.page
        # Like the stand-in: a license counts only for the key it was issued for.
        valid = bool(self.license) and self.key in self.license
        stored = f'<pre id="licenseText">{html.escape(self.license)}</pre>' if valid else ""
        return STANDIN_PAGE.format(key=self.key, status="activated" if valid else "none", stored=stored,
                                   message=message)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
