"""The plan: every step of the clustering guide, in order.

Each layer has its own module; this registry is the only place that lists them.
"""

from __future__ import annotations

import importlib

from .base import Change, Step, StepContext, StepFailed

_REGISTRY: dict[str, Step] = {}


def register(step_class: type[Step]) -> type[Step]:
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
    return _dependency_order(chosen)


def _dependency_order(steps: list[Step]) -> list[Step]:
    """Registration order, except that a step always comes after what it depends on."""
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


__all__ = ["Change", "Step", "StepContext", "StepFailed", "get_step", "plan_steps", "register"]
