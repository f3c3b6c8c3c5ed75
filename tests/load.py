"""Steady load through the testbed's balancer, for tests that change a serving cluster (rolls, scale-out).

`SteadyLoad(host)` runs N sessions, each a thread with its own cookie, asking the stand-in's session endpoint
(`/jw/testbed/session`: `node=<route> count=<n> build=<sha8> db=<ok>`) a few times a second, until `stop()`
(or its time or request bound). The report counts what a user would notice:

- failed: any answer but 200, or no answer (connection refused, reset, timeout);
- lost: the session is gone: a new session id (the part before the route), or a counter that starts again at 1;
- stale: the counter did not go up by one but the session is there: a node answered with an older copy of
  the session (asynchronous replication, right after the balancer moved the session);
- per node, per build, and per (node, build): who answered, with which WAR.

Only testbed addresses (private IPv4) are asked; every session is bounded in time and in requests.

    with SteadyLoad(tb.address("lb")) as load:
        ...operation...
    report = load.report
    assert report.failed == 0, report.summary()
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

SESSION_PATH = "/jw/testbed/session"
_ANSWER = re.compile(r"node=(\S+) count=(\d+)(?: build=(\S+))? db=(.*)")


@dataclass
class LoadReport:
    requests: int = 0
    failed: int = 0
    lost: int = 0
    stale: int = 0
    jumps: int = 0  # the counter went up by more than one (a request counted twice): should never happen
    nodes: Counter = field(default_factory=Counter)
    builds: Counter = field(default_factory=Counter)
    node_builds: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # the first few failures and losses, with their time
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms of each answered request

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def summary(self) -> str:
        return (f"{self.requests} requests in {self.seconds:.0f} s: failed={self.failed} lost={self.lost} "
                f"stale={self.stale} jumps={self.jumps}; latency p50 {self.percentile(50):.1f} ms p95 "
                f"{self.percentile(95):.1f} ms; nodes {dict(sorted(self.nodes.items()))}; builds "
                f"{dict(sorted(self.builds.items()))}" + (f"; first errors: {self.errors[:5]}" if self.errors else ""))


class _Session(threading.Thread):
    def __init__(self, load: SteadyLoad, index: int, route: str = ""):
        super().__init__(name=f"load-{index}", daemon=True)
        self.load, self.index = load, index
        # JSESSIONID=<id>.<route>; a made-up id with a route first sends the new session to that node
        self.cookie = f"JSESSIONID=seed.{route}" if route else ""
        self.seeded = bool(route)
        self.count = 0

    def run(self):
        load, interval = self.load, 1.0 / self.load.rate
        # Spread the sessions' first requests over one interval, so the load is steady rather than in bursts.
        time.sleep(interval * self.index / max(1, load.sessions))
        sent = 0
        while not load.stopping.is_set() and sent < load.max_requests and time.monotonic() < load.deadline:
            t0 = time.monotonic()
            self.one()
            sent += 1
            load.stopping.wait(max(0.0, interval - (time.monotonic() - t0)))

    def one(self):
        load = self.load
        conn = http.client.HTTPConnection(load.host, load.port, timeout=load.timeout)
        t0 = time.monotonic()
        try:
            conn.request("GET", SESSION_PATH, headers={"Cookie": self.cookie} if self.cookie else {})
            resp = conn.getresponse()
            body = resp.read(4096).decode(errors="replace")
            set_cookie = resp.getheader("Set-Cookie") or ""
            status = resp.status
        except (OSError, http.client.HTTPException) as exc:
            load.record(self, failed=f"{type(exc).__name__}: {exc}")
            return
        finally:
            conn.close()
        if status != 200:
            load.record(self, failed=f"HTTP {status}: {body[:80]!r}")
            return
        m = _ANSWER.search(body)
        if not m:
            load.record(self, failed=f"unexpected answer {body[:80]!r}")
            return
        node, count, build = m.group(1), int(m.group(2)), m.group(3) or "?"
        new_id = re.search(r"JSESSIONID=([^;]+)", set_cookie)
        lost = stale = jump = False
        if new_id:
            old_base = self.cookie.partition("=")[2].split(".")[0]
            if self.cookie and not self.seeded and new_id.group(1).split(".")[0] != old_base:
                lost = True  # a new session: the old one is gone
            self.cookie = f"JSESSIONID={new_id.group(1)}"
        if self.count and not lost:
            if count == 1:
                lost = True
            elif count <= self.count:
                stale = True
            elif count > self.count + 1:
                jump = True
        self.count, self.seeded = count, False
        load.record(self, node=node, build=build, lost=lost, stale=stale, jump=jump, seen=body.strip(),
                    ms=(time.monotonic() - t0) * 1000)


class SteadyLoad:
    """N sessions through the balancer at `rate` requests per second each, from start() (or `with`) to stop()."""

    def __init__(self, host: str, port: int = 80, *, sessions: int = 6, rate: float = 3.0, timeout: float = 10.0,
                 max_seconds: float = 600.0, max_requests: int = 5000, routes: tuple[str, ...] | list[str] = ()):
        if not ipaddress.ip_address(host).is_private:
            raise ValueError(f"{host}: the load generator asks testbed (private) addresses only")
        self.host, self.port, self.sessions, self.rate, self.timeout = host, port, sessions, rate, timeout
        self.max_seconds, self.max_requests = max_seconds, max_requests
        # the sessions' first nodes, in turn (a sticky cookie's route); empty: where the balancer sends them
        self.routes = tuple(routes or ())
        self.report = LoadReport()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[_Session] = []
        self.deadline = 0.0
        self._t0 = 0.0

    def record(self, session: _Session, *, failed: str = "", node: str = "", build: str = "", lost=False,
               stale=False, jump=False, seen: str = "", ms: float = 0.0) -> None:
        at = f"{time.monotonic() - self._t0:.1f}s s{session.index}"
        with self._lock:
            r = self.report
            r.requests += 1
            if failed:
                r.failed += 1
                r.errors.append(f"{at}: {failed}")
                return
            r.nodes[node] += 1
            r.latencies.append(ms)
            r.builds[build] += 1
            r.node_builds[(node, build)] += 1
            r.lost += lost
            r.stale += stale
            r.jumps += jump
            if lost or jump:
                r.errors.append(f"{at}: {'lost' if lost else 'jump'}: {seen}")

    def start(self) -> SteadyLoad:
        self._t0 = time.monotonic()
        self.deadline = self._t0 + self.max_seconds
        routes = self.routes
        self._threads = [_Session(self, i, routes[i % len(routes)] if routes else "") for i in range(self.sessions)]
        for t in self._threads:
            t.start()
        return self

    def wait_requests(self, n: int, timeout: float = 30.0) -> None:
        """Wait until `n` requests have been answered (the sessions exist before an operation starts)."""
        end = time.monotonic() + timeout
        while self.report.requests < n and time.monotonic() < end:
            time.sleep(0.1)

    def stop(self) -> LoadReport:
        self.stopping.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        self.report.seconds = time.monotonic() - self._t0
        return self.report

    def __enter__(self) -> SteadyLoad:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
