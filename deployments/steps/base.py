"""What a deployment step is: probe, apply, verify, over one connection helper.

A step compares the node with what the cluster says it should be (`probe`),
returns the differences as `Change`s, and the engine applies them (by default:
write each file, run each command) and then checks the result (`verify`).
A second run finds nothing to change and says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nodes.ssh import NodeConnection, RemoteFileError, Result, quote

if TYPE_CHECKING:
    from nodes.models import Cluster, Node


class StepFailed(Exception):
    """A step could not do or verify its work; the message is shown to the admin."""

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Change:
    """One difference between the node and the plan.

    `path`+`content`: a file to write (atomically, old one backed up), shown as a
    unified diff. `command`: a shell command to run (already quoted).
    """

    description: str
    path: str = ""
    content: bytes | None = None
    mode: str = ""  # as NodeConnection.write_file: "" keeps the mode of the file it replaces (0644 if new)
    owner: str = ""
    diff: str = ""
    command: str = ""
    timeout: float | None = None

    def as_json(self) -> dict:
        return {"description": self.description, "path": self.path, "diff": self.diff}

    def apply(self, ctx: StepContext, conn: NodeConnection | None = None) -> None:
        """Make the change on the step's node (or `conn`): write the file, then run the command.
        A kind of change that does something else (SQL, an upload, a mount) subclasses this."""
        ctx.log(f"→ {self.description}")
        if self.content is not None:
            ctx.write_file(self.path, self.content, mode=self.mode, owner=self.owner, conn=conn)
        if self.command:
            ctx.run(self.command, timeout=self.timeout, check=True, conn=conn)


def file_diff(path: str, old: bytes | None, new: bytes) -> str:
    old_lines = (old or b"").decode("utf-8", "replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(
        difflib.unified_diff(old_lines, new_lines, fromfile=f"{path} (now)" if old is not None else "/dev/null",
                             tofile=f"{path} (planned)")
    )


UNREAD = object()  # want_file(): the step has not read the file: read it


@dataclass
class StepContext:
    """What a step sees while it runs on one node (or on the cluster)."""

    cluster: Cluster
    node: Node | None
    conn: NodeConnection | None
    log: Callable[[str], None]
    emit: Callable[[str, str], None]
    connect: Callable[[Node], NodeConnection]
    wrap: Callable[[str], str] = field(default=lambda cmd: cmd)
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)
    deployment: object = None  # the Deployment (its operation and options), for steps of day-2 operations
    rolling: bool = False  # this run is one node of a roll (deployments/rolling.py): restart it node by node

    def note(self, text: str) -> None:
        """A finding worth keeping beside the step's changes (e.g. a check made in verify)."""
        self.notes.append(text)
        self.log(text)

    def run(self, command: str, *, timeout: float | None = None, check: bool = False, quiet: bool = False,
            conn: NodeConnection | None = None) -> Result:
        """Run on this node (or `conn`), output live in the step's log."""
        target = conn or self.conn
        if not quiet:
            self.emit("info", f"$ {command if len(command) < 400 else command[:400] + ' …'}")
        result = target.run(self.wrap(command), timeout=timeout, emit=None if quiet else self.emit)
        if check and not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise StepFailed(
                f"`{command[:120]}` exited with {result.exit_code}" + (f": {' / '.join(tail)}" if tail else ""),
                exit_code=result.exit_code,
            )
        return result

    def read_file(self, path: str, conn: NodeConnection | None = None) -> bytes | None:
        try:
            return (conn or self.conn).read_file(path)
        except RemoteFileError as exc:
            raise StepFailed(str(exc)) from None

    def write_file(self, path: str, data, *, conn: NodeConnection | None = None, **options) -> None:
        """NodeConnection.write_file on this node (or `conn`); a refusal or failure fails the step."""
        try:
            (conn or self.conn).write_file(path, data, **options)
        except RemoteFileError as exc:
            raise StepFailed(str(exc)) from None

    def want_file(self, path: str, content: bytes | str, *, mode: str = "", owner: str = "",
                  description: str = "", on_node: bytes | None | object = UNREAD) -> Change | None:
        """A Change if the file on the node differs from `content`, else None. `on_node`: the file as the
        step has just read it (None: absent), which spares a second read over SSH."""
        data = content.encode() if isinstance(content, str) else content
        current = self.read_file(path) if on_node is UNREAD else on_node
        if current == data:
            return None
        return Change(
            description=description or (f"write {path}" if current is not None else f"create {path}"),
            path=path, content=data, mode=mode, owner=owner, diff=file_diff(path, current, data),
        )


class Step:
    """Subclass per guide step. Class attributes describe it; methods do the work."""

    key: str = ""
    title: str = ""
    layer: str = ""
    depends_on: tuple[str, ...] = ()
    hint: str = ""
    in_default_plan: bool = True
    # A step whose work is checking (in verify, which a dry run does not run): a dry run says it did not check.
    checks_only: bool = False

    def applies(self, cluster: Cluster) -> bool:
        return True

    def rolls(self, cluster: Cluster) -> bool:
        """Whether its runs go one node (batch) at a time, each waiting for the one before (deployments/rolling.py)."""
        return False

    def targets(self, cluster: Cluster) -> list[Node | None]:
        """Nodes to run on; [None] for a step that runs once for the cluster."""
        return [None]

    def probe(self, ctx: StepContext) -> list[Change]:
        return []

    def apply(self, ctx: StepContext, changes: list[Change]) -> None:
        """Each change applies itself, in order; override only for what is not one change after another."""
        for change in changes:
            change.apply(ctx)

    def verify(self, ctx: StepContext) -> None:
        pass


class AppServerStep(Step):
    """A step on every app server of the cluster."""

    def targets(self, cluster: Cluster) -> list[Node | None]:
        return list(cluster.app_servers())


class ManagedStep(Step):
    """A step of a layer the console manages (mode "managed", on the layer's node); in "existing" mode the
    step is left out. `layer_of(cluster)` gives the layer's row (SharedDirectory, SharedDatabase, ...)."""

    def layer_of(self, cluster: Cluster):
        raise NotImplementedError

    def applies(self, cluster: Cluster) -> bool:
        from nodes.models import LayerMode

        layer = self.layer_of(cluster)
        return bool(layer and layer.mode == LayerMode.MANAGED and layer.node_id)

    def targets(self, cluster: Cluster) -> list[Node | None]:
        # Also asked for steps named explicitly (`steps=[...]`), which the plan does not filter by applies().
        return self.managed_targets(cluster) if self.applies(cluster) else []

    def managed_targets(self, cluster: Cluster) -> list[Node | None]:
        return [self.layer_of(cluster).node]


__all__ = ["AppServerStep", "Change", "ManagedStep", "Step", "StepContext", "StepFailed", "file_diff", "quote"]
