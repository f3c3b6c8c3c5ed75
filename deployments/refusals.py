"""Why a run cannot start (or be retried, resumed, cancelled): the exceptions the pages, the commands and the API
catch. The engine re-exports them (`engine.DeploymentRefused`, ...), which is how callers name them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Deployment


class DeploymentRefused(Exception):
    """The deployment cannot start (or be retried/resumed); the message says why."""


class UnknownSteps(DeploymentRefused):
    """Steps were named that no module registers."""


class InvalidOption(DeploymentRefused):
    """An option of the request is wrong (`field` names it: war, nodes, batch, state, node), not the cluster's
    state: asking again the same way cannot succeed (the API answers 400). Nothing started."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class DeploymentRunning(DeploymentRefused):
    """Another deployment of the cluster runs: `running` is it."""

    def __init__(self, message: str, running: Deployment):
        super().__init__(message)
        self.running = running
