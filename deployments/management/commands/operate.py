import logging
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from deployments import engine, services
from deployments.follow import follow_to_end
from deployments.models import Deployment
from deployments.rolling import BACKED_UP_FIRST
from nodes import ssh
from nodes.models import BalancerState, Cluster

ROLLING = {"restart": Deployment.Operation.RESTART, "upgrade": Deployment.Operation.UPGRADE,
           "rollback": Deployment.Operation.ROLLBACK}
SCALE = {"add-node": Deployment.Operation.SCALE_OUT, "remove-node": Deployment.Operation.SCALE_IN}
MEMBER = {"disable": BalancerState.DISABLED, "enable": BalancerState.ENABLED, "drain": BalancerState.DRAIN}


class Command(BaseCommand):
    help = ("Day-2 operations on a serving cluster, node by node: restart, upgrade --war PATH, rollback; and an app "
            "server's member state in the balancer: disable, enable, drain NODE; an app server added to or "
            "removed from the serving cluster: add-node --name NAME --address ADDR --jvm-route ROUTE, remove-node "
            "NODE.")

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("operation", choices=[*ROLLING, *MEMBER, *SCALE])
        parser.add_argument("node", nargs="?", help="disable/enable/drain/remove-node: the app server.")
        new = parser.add_argument_group("add-node: the new app server")
        new.add_argument("--name")
        new.add_argument("--address")
        new.add_argument("--ssh-port", type=int, default=22)
        new.add_argument("--ssh-user", default="root")
        new.add_argument("--host-key", default="", help='its SSH host key, "TYPE BASE64" (as ssh-keyscan prints it)')
        new.add_argument("--jvm-route", help="its jvmRoute (unique in the cluster; a replacement may take over the "
                                             "route of a removed node)")
        parser.add_argument("--nodes", default="", help="restart: only these app servers (comma-separated).")
        parser.add_argument("--batch", type=int, default=None,
                            help="App servers restarted at once (default 1; always fewer than all).")
        parser.add_argument("--war", help="upgrade: the new jw.war (same Joget major version).")
        parser.add_argument("--no-backup", action="store_true",
                            help="upgrade, add-node, remove-node: do not back the cluster up first (the cluster's "
                                 "setting, on by default).")
        parser.add_argument("--follow", action="store_true", help="Print the live log and a recap; exit 1 on failure.")

    def handle(self, *args, cluster, operation, node, nodes, batch, war, no_backup, follow, **options):
        new = {k: options[k] for k in ("name", "address", "ssh_port", "ssh_user", "host_key", "jvm_route")}
        try:
            obj = Cluster.objects.get(name=cluster)
        except Cluster.DoesNotExist:
            raise CommandError(f"No cluster named {cluster!r}.") from None
        logging.getLogger("deployments.events").setLevel(logging.WARNING)  # this command says what it started
        try:
            if operation in SCALE:
                if no_backup:
                    new["backup_first"] = False
                dep = self._scale(obj, operation, node, new)
            else:
                dep = self._start(obj, operation, node, nodes, batch, war, no_backup)
        except engine.DeploymentRefused as exc:
            raise CommandError(str(exc)) from None
        waves = sorted(set(dep.runs.exclude(wave=0).values_list("wave", flat=True)))
        backup_id = dep.options.get("backup_first")
        self.stdout.write(f"Started {dep} ({dep.runs.count()} step runs"
                          + (f", {len(waves)} wave{'s' if len(waves) > 1 else ''}" if waves else "") + ")"
                          + (f", after a backup first: {backup_id}." if backup_id else "."))
        if follow:
            follow_to_end(dep, self.stdout, self.stderr)

    @staticmethod
    def _scale(cluster, operation, node, new) -> Deployment:
        if operation == "remove-node":
            if not node:
                raise CommandError(f"remove-node needs the app server's name: operate {cluster.name} remove-node NODE")
            return services.start_scale(None, cluster, SCALE[operation], node=node,
                                        backup_first=new.get("backup_first"))
        if node:
            raise CommandError("add-node takes no NODE argument: --name NAME --address ADDR --jvm-route ROUTE.")
        missing = [f"--{k.replace('_', '-')}" for k in ("name", "address", "jvm_route") if not new[k]]
        if missing:
            raise CommandError(f"add-node needs {', '.join(missing)}.")
        if not new["host_key"]:  # never pinned unseen: show what the node offers, for the admin to check
            try:
                offered = ssh.fetch_host_key(new["address"], new["ssh_port"], timeout=10)
            except ssh.SSHError as exc:
                raise CommandError(f"add-node needs --host-key \"TYPE BASE64\"; asking {new['address']} for it: {exc}"
                                   ) from None
            raise CommandError(f"add-node needs the node's host key, confirmed: {new['address']} offers {offered} "
                               f"({ssh.fingerprint(offered)}). Compare with `ssh-keygen -lf "
                               f"/etc/ssh/ssh_host_ed25519_key.pub` on the node, then pass --host-key \"{offered}\".")
        return services.start_scale(None, cluster, SCALE[operation], **new)

    def _start(self, cluster, operation, node, nodes, batch, war, no_backup) -> Deployment:
        if no_backup and ROLLING.get(operation) not in BACKED_UP_FIRST:
            raise CommandError(f"--no-backup is for upgrade, add-node and remove-node only: {operation} takes no "
                               "backup first.")
        if operation in MEMBER:
            if not node:
                raise CommandError(f"{operation} needs the app server's name: operate {cluster.name} {operation} NODE")
            target = cluster.nodes.filter(name=node).first()
            if target is None:
                raise CommandError(f"No node {node!r} in cluster {cluster.name}.")
            return services.set_member_state(None, target, MEMBER[operation])
        if node:
            raise CommandError(f"{operation} takes no NODE argument (restart: --nodes a,b).")
        if operation == "upgrade":
            if not war:
                raise CommandError("upgrade needs --war PATH (the new jw.war).")
            if not Path(war).is_file():
                raise CommandError(f"{war}: no such file.")
        elif war:
            raise CommandError("--war is for upgrade only.")
        names = [n.strip() for n in nodes.split(",") if n.strip()]
        if names and operation != "restart":
            raise CommandError("--nodes is for restart only: an upgrade or rollback rolls every app server.")
        return services.start_operation(None, cluster, ROLLING[operation], war=Path(war) if war else None,
                                        nodes=names, batch=batch, backup_first=False if no_backup else None)
