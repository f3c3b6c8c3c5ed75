"""Apache's balancer-manager page: its member tables, and a member's status words as a health state."""

from __future__ import annotations

import html.parser
import re
from dataclasses import dataclass

from ..models import HealthState


class _Tables(html.parser.HTMLParser):
    """Rows of cell texts of every <table>, with the last heading seen before each table."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._heading, self._in_h, self._row, self._cell = "", False, None, None

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3"):
            self._in_h, self._heading = True, ""
        elif tag == "table":
            self.tables.append((self._heading, []))
        elif tag == "tr" and self.tables:
            self._row = []
            self.tables[-1][1].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3"):
            self._in_h = False
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_h:
            self._heading += data


def parse_balancer_manager(page: str) -> dict[str, dict]:
    """route -> {url, status, balancer} from Apache's balancer-manager page (the member tables)."""
    parser = _Tables()
    parser.feed(page)
    members = {}
    for heading, rows in parser.tables:
        if not rows or not {"Worker URL", "Route", "Status"} <= set(rows[0]):
            continue
        col = {name: i for i, name in enumerate(rows[0])}
        m = re.search(r"balancer://\S+", heading)
        for row in rows[1:]:
            if len(row) < len(col):
                continue
            route = row[col["Route"]]
            members[route or row[col["Worker URL"]]] = {
                "url": row[col["Worker URL"]], "status": row[col["Status"]], "balancer": m.group(0) if m else "",
                # In flight and chosen so far (httpd 2.4 shows Busy since 2.4.x; absent: None).
                "busy": _number(row, col.get("Busy")), "elected": _number(row, col.get("Elected"))}
    return members


def _number(row: list[str], i: int | None) -> int | None:
    return int(row[i]) if i is not None and row[i].isdigit() else None


def member_state(status: str) -> str:
    """Apache's worker status words (Init Ok, Err, Dis, Drn, Stby, HcFl, Stop) to a state."""
    words = set(status.split())
    if words & {"Err", "HcFl"}:
        return HealthState.BAD
    if words & {"Dis", "Drn", "Stop", "Stby"}:
        return HealthState.WARN
    return HealthState.OK if "Ok" in words else HealthState.UNKNOWN


@dataclass
class Manager:
    members: dict | None = None
    error: str = ""
