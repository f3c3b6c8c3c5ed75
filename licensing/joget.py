"""An HTTP client for one app server's Joget console: log in, read the License page, submit a license.

It talks to the node's own address and HTTP port, never to the load balancer: the system key is
per server, and through the balancer the admin would get whichever node answered. Standard library
only (urllib), short timeouts, no proxy from the environment, redirects looked at rather than
followed, one cookie jar per client (so per node). Called from Celery tasks and the management
command, never inside a web request. Where the License page is and how the key, the status and an
error are found are settings (see docs/licensing.md); the page is kept when they do not match.
"""

from __future__ import annotations

import html
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from django.conf import settings

from nodes import web

MAX_BODY = 2 * 1024 * 1024  # a License page is a few KB; never hold a runaway response in memory
_HIDDEN_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r"""([a-zA-Z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.I | re.S)


class JogetError(Exception):
    """Reading or activating failed; the message is safe to show. `page` is what the node answered, if anything."""

    def __init__(self, message: str, page: str = ""):
        super().__init__(message)
        self.page = page


class Unreachable(JogetError):
    pass


class LoginFailed(JogetError):
    pass


@dataclass
class Response:
    status: int
    headers: dict
    body: str
    url: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


@dataclass
class LicensePage:
    """What the License page says; `system_key` is None when the pattern found nothing."""

    url: str
    html: str
    system_key: str | None
    licensed: bool | None  # None: the status pattern did not match, so we cannot tell
    error: str = ""  # the node's own refusal message after a POST, if the error pattern matched
    form: dict = field(default_factory=dict)  # hidden fields of the license form, sent back with a POST


def license_path(major: int) -> str:
    urls = settings.JOGET_LICENSE_PAGE_URLS
    if major in urls:
        return urls[major]
    # An unknown major (e.g. 9): the newest known version's page is the best guess.
    return urls[max(urls)] if urls else web.LICENSE_PATH


def parse_license_page(url: str, text: str) -> LicensePage:
    """Extract the key, the status, an error message and the form's hidden fields with the configured patterns."""
    m = re.search(settings.JOGET_SYSTEM_KEY_PATTERN, text, re.S)
    key = m.group("key").strip() if m else None
    s = re.search(settings.JOGET_LICENSE_STATUS_PATTERN, text, re.S)
    licensed = None
    if s:
        values = {v.strip().lower() for v in settings.JOGET_LICENSE_ACTIVATED_VALUES}
        licensed = s.group("status").strip().lower() in values
    e = re.search(settings.JOGET_LICENSE_ERROR_PATTERN, text, re.S)
    error = _text_of(e.group("message")) if e else ""
    return LicensePage(url=url, html=text, system_key=key, licensed=licensed, error=error, form=_hidden_fields(text))


def _text_of(fragment: str) -> str:
    """HTML fragment -> one line of plain text (at most 500 characters)."""
    plain = html.unescape(re.sub(r"<[^>]+>", " ", fragment))
    return " ".join(plain.split())[:500]


def _hidden_fields(text: str) -> dict:
    """Hidden inputs of the form that holds the license field (a CSRF token, if the page has one)."""
    for form in _FORM.findall(text):
        if f'name="{settings.JOGET_LICENSE_FORM_FIELD}"' not in form and \
                f"name='{settings.JOGET_LICENSE_FORM_FIELD}'" not in form:
            continue
        fields = {}
        for tag in _HIDDEN_INPUT.findall(form):
            attrs = {m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
                     for m in _ATTR.finditer(tag)}
            if attrs.get("type", "").lower() == "hidden" and attrs.get("name"):
                fields[attrs["name"]] = attrs.get("value", "")
        return fields
    return {}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect tells us something (login page = not logged in): look at it, do not follow it.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def direct_opener(*handlers) -> urllib.request.OpenerDirector:
    """A urllib opener for asking a node itself: no proxy from the environment (http_proxy), and
    redirects answered as they are (an HTTPError with the 3xx status), never followed."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect(), *handlers)


class JogetConsole:
    """One logged-in session with one node's Joget console."""

    def __init__(self, address: str, port: int, context_path: str, username: str, password: str,
                 *, major: int = 8, timeout: float | None = None, label: str = ""):
        host = f"[{address}]" if ":" in address else address
        self.base = f"http://{host}:{port}"
        self.context = context_path.rstrip("/")
        self.username = username
        self._password = password
        self.major = major
        self.timeout = timeout or settings.JOGET_HTTP_TIMEOUT
        self.label = label or f"{address}:{port}"
        self.cookies = http.cookiejar.CookieJar()
        self._opener = direct_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.requests: list[tuple[str, str, int]] = []  # (method, url, status): what was asked of whom

    @classmethod
    def for_node(cls, node) -> JogetConsole:
        cluster = node.cluster
        return cls(node.address, node.http_port, cluster.context_path, cluster.joget_admin_user,
                   cluster.joget_admin_password, major=cluster.major_version, label=node.name)

    @property
    def license_path(self) -> str:
        return self.context + license_path(self.major)

    @property
    def license_url(self) -> str:
        return self.base + self.license_path

    def same_node_path(self, location: str) -> str:
        """The path of a redirect target on this node; a redirect elsewhere (e.g. to the balancer's public
        URL) is refused rather than followed."""
        target = urllib.parse.urlsplit(urllib.parse.urljoin(self.license_url, location))
        if f"{target.scheme}://{target.netloc}" != self.base:
            raise JogetError(f"{self.label}: the node redirected to {target.scheme}://{target.netloc}, not to "
                             "itself: refusing to follow (the key must come from the node directly).")
        return target.path + (f"?{target.query}" if target.query else "")

    # -- HTTP ---------------------------------------------------------------------------------------

    def request(self, method: str, path: str, form: dict | None = None) -> Response:
        """One request to this node: `path` is below its base URL, so nothing can send us to another host."""
        if not path.startswith("/"):
            raise ValueError(f"not a path: {path!r}")
        url = self.base + path
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        # http:// + the node's own address, always (S310 guards against file: or custom schemes).
        req = urllib.request.Request(url, data=data, method=method,  # noqa: S310
                                     headers={"Accept": "text/html,*/*"})
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            resp = self._opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx: still an answer
            resp = exc
        except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
            reason = getattr(exc, "reason", exc)
            self.requests.append((method, url, 0))
            raise Unreachable(f"{self.label}: {self.base} did not answer ({reason}).") from None
        try:
            raw = resp.read(MAX_BODY) if resp.fp is not None else b""
        except OSError as exc:
            raise Unreachable(f"{self.label}: the answer from {self.base} broke off ({exc}).") from None
        finally:
            resp.close()
        status = resp.getcode()
        self.requests.append((method, url, status))
        charset = resp.headers.get_content_charset() or "utf-8"
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Response(status, headers, raw.decode(charset, errors="replace"), url)

    # -- Joget --------------------------------------------------------------------------------------

    def login(self) -> None:
        """Spring Security form login; raises LoginFailed when Joget sends us back to the login page."""
        if not self._password:
            raise LoginFailed(f"{self.label}: no Joget admin password is stored for this cluster: "
                              "set it on the cluster's page first.")
        resp = self.request("POST", f"{self.context}/j_spring_security_check",
                            {"j_username": self.username, "j_password": self._password})
        if resp.status in (301, 302, 303, 307) and not _is_login_url(resp.location):
            return
        if resp.status == 200 and "j_password" not in resp.body:
            return
        raise LoginFailed(f"{self.label}: Joget refused the admin login as {self.username!r} "
                          f"(HTTP {resp.status}{', back to the login page' if resp.location else ''}): "
                          "check the cluster's Joget admin user and password.", page=resp.body)

    def license_page(self) -> LicensePage:
        return self._license_response(self.request("GET", self.license_path))

    def activate(self, license_text: str, page: LicensePage | None = None) -> LicensePage:
        """POST the license to the License page; returns the page the node answered with."""
        form = dict(page.form) if page else {}
        form[settings.JOGET_LICENSE_FORM_FIELD] = license_text
        resp = self.request("POST", self.license_path, form)
        if resp.status in (301, 302, 303) and not _is_login_url(resp.location):
            # Post/redirect/get: the answer is the page the node sends us to.
            resp = self.request("GET", self.same_node_path(resp.location))
        return self._license_response(resp)

    def _license_response(self, resp: Response) -> LicensePage:
        if resp.status in (301, 302, 303, 307) and _is_login_url(resp.location):
            raise LoginFailed(f"{self.label}: the License page sent us to the login page: the admin session "
                              "was not accepted.", page=resp.body)
        if resp.status == 404:
            raise JogetError(f"{self.label}: {resp.url} does not exist (HTTP 404): set JOGET_LICENSE_PAGE_URLS "
                             f"for Joget {self.major}.", page=resp.body)
        if resp.status != 200:
            raise JogetError(f"{self.label}: {resp.url} answered HTTP {resp.status}.", page=resp.body)
        page = parse_license_page(resp.url, resp.body)
        if page.system_key is None and 'name="j_password"' in resp.body:
            raise LoginFailed(f"{self.label}: the License page showed a login form: the admin session was not "
                              "accepted.", page=resp.body)
        return page


def _is_login_url(location: str) -> bool:
    path = urllib.parse.urlsplit(location).path
    return path.endswith("/web/login") or "login_error" in location or path.endswith("/login")
