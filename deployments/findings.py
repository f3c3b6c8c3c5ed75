"""What a checklist item found (its own module so the item families in checklist_versions can share it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    """What one checklist item saw on one node (or the cluster); the checks are named after the requirement
    they test, not after nodes.health's checks, which watch a running cluster."""

    ok: bool
    found: str
    fix: str = ""
    # What is checked is not there at all (no directory, nothing answers), as opposed to there but wrong:
    # the former is what a layer on "Set it up for me" looks like before the deployment.
    missing: bool = False
