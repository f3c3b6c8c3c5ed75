import logging
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from deployments import drift, engine
from deployments.models import Deployment, DriftCheck

from .backup import follow_run, get_cluster


class Command(BaseCommand):
    help = ("Check CLUSTER for drift: the plan's probes, changing nothing, against what the console last "
            "deployed. Exit 0: no drift; 1: drift (each step/node and its diff printed). --repair deploys "
            "only the drifted steps and exits 0 when that cleared it.")

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("--repair", action="store_true", help="Deploy only the drifted steps, then check again.")
        parser.add_argument("--follow", action="store_true", help="Print the live log of the runs.")

    def handle(self, *args, cluster, repair: bool, follow: bool, **options):
        obj = get_cluster(cluster)
        logging.getLogger("deployments.events").setLevel(logging.WARNING)
        check = self.run_check(obj, follow)
        if check.state == DriftCheck.State.CLEAN:
            self.stdout.write(f"No drift: {obj.name} is as last deployed.")
            return
        for line in drift.describe(check):
            self.stdout.write(line)
        if check.state == DriftCheck.State.FAILED and not drift.drifted_steps(check):
            self.stderr.write("The check could not probe everything (see above).")
            sys.exit(2)
        self.stdout.write(f"Drifted: {', '.join(drift.drifted_steps(check))}.")
        if not repair:
            sys.exit(1)
        try:
            dep = drift.repair(check)
        except engine.DeploymentRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Repairing with {dep} (steps: {', '.join(dep.steps)}).")
        self.wait(dep, follow)
        if dep.status != Deployment.Status.SUCCEEDED:
            self.stderr.write(f"The repair {dep} {dep.status}.")
            sys.exit(1)
        again = self.run_check(obj, follow)
        if again.state != DriftCheck.State.CLEAN:
            for line in drift.describe(again):
                self.stdout.write(line)
            self.stderr.write("Still drifted after the repair.")
            sys.exit(1)
        self.stdout.write(f"Repaired: {obj.name} is as last deployed.")

    def run_check(self, cluster, follow: bool) -> DriftCheck:
        try:
            check = drift.start_check(cluster)
        except engine.DeploymentRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Checking {cluster.name} for drift ({check.deployment}).")
        self.wait(check.deployment, follow)
        check.refresh_from_db()
        return drift.conclude(check)

    def wait(self, dep: Deployment, follow: bool) -> None:
        if follow:
            follow_run(self, dep)
            return
        while True:
            dep.refresh_from_db(fields=["status"])
            if not dep.is_active:
                return
            time.sleep(0.3)
