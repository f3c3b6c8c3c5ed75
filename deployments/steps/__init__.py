"""The plan: every step of the clustering guide, in order.

Each layer has its own module, its steps register themselves; PLAN below is the one place that says in
which order they run, where, and what each waits for (docs/steps.md shows it, a test keeps the two equal).
"""

from __future__ import annotations

import importlib

from .base import Change, Step, StepContext, StepFailed

# (key, where, depends on): the guide's order. A step of an extra module (tests) that is not listed here
# keeps its own `depends_on` and comes after these.
PLAN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("shared_directory.export", "file server (managed only)", ()),
    ("shared_directory.mount", "app servers (managed only)", ("shared_directory.export",)),
    ("shared_directory.verify", "cluster", ("shared_directory.mount",)),
    ("database.server", "database node (managed only)", ()),
    ("database.schema", "database node (managed only)", ("database.server",)),
    ("database.verify", "app servers", ("database.schema",)),
    ("tomcat.install", "app servers", ()),
    ("tomcat.base", "app servers", ("tomcat.install",)),
    ("replication.server_xml", "app servers", ("tomcat.base",)),
    ("replication.hosts", "app servers", ()),
    ("joget.datasource", "cluster", ("shared_directory.verify", "database.schema")),
    ("joget.setenv", "app servers", ("tomcat.base",)),
    ("joget.war", "app servers", ("tomcat.base",)),
    ("joget.running", "app servers", ("replication.server_xml", "replication.hosts", "joget.setenv", "joget.war",
                                      "joget.datasource", "database.verify")),
    ("replication.members", "app servers", ("joget.running",)),
    ("load_balancer.server", "balancer node (managed only)", ()),
    ("load_balancer.site", "balancer node", ("load_balancer.server", "joget.running")),
    ("post_test", "cluster", ("load_balancer.site", "replication.members")),
)
_PLANNED = {key: (position, deps) for position, (key, _where, deps) in enumerate(PLAN)}

_REGISTRY: dict[str, Step] = {}


def register(step_class: type[Step]) -> type[Step]:
    if step_class.key in _PLANNED:
        step_class.depends_on = _PLANNED[step_class.key][1]
    step = step_class()
    if step.key in _REGISTRY:
        raise ValueError(f"step key {step.key!r} registered twice")
    _REGISTRY[step.key] = step
    return step_class


_LOADED = False


def load_steps() -> None:
    """Import the layer modules (their steps register themselves, in the guide's
    order), then any extra modules named in settings (tests use this)."""
    global _LOADED
    if _LOADED:
        return
    from django.conf import settings

    for module in settings.DEPLOYMENT_STEP_MODULES:
        importlib.import_module(module)
    _LOADED = True


def plan_steps(cluster=None, only: list[str] | None = None) -> list[Step]:
    """The steps of a deployment: those named in `only`, or the default plan for the cluster."""
    load_steps()
    if only:
        unknown = [k for k in only if k not in _REGISTRY]
        if unknown:
            raise KeyError(f"unknown step(s): {', '.join(unknown)}; known: {', '.join(_REGISTRY)}")
        chosen = [s for s in _REGISTRY.values() if s.key in only]
    else:
        chosen = [s for s in _REGISTRY.values() if s.in_default_plan and (cluster is None or s.applies(cluster))]
    return _dependency_order(sorted(chosen, key=lambda s: _PLANNED.get(s.key, (len(PLAN),))[0]))


def _dependency_order(steps: list[Step]) -> list[Step]:
    """The given order (PLAN's), except that a step always comes after what it depends on."""
    keys = {s.key for s in steps}
    placed: list[Step] = []
    done: set[str] = set()
    pending = list(steps)
    while pending:
        for i, step in enumerate(pending):
            if all(d in done or d not in keys for d in step.depends_on):
                placed.append(pending.pop(i))
                done.add(step.key)
                break
        else:
            raise ValueError(f"dependency cycle among steps: {', '.join(s.key for s in pending)}")
    return placed


def get_step(key: str) -> Step:
    load_steps()
    return _REGISTRY[key]


__all__ = ["PLAN", "Change", "Step", "StepContext", "StepFailed", "get_step", "plan_steps", "register"]
