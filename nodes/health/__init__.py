"""Node health: a check cycle over every node of a cluster, the current state per check, events on change.

One cycle (`run_cycle`) of a cluster:

1. takes the cluster's lease (HealthRun), so two cycles of one cluster never overlap;
2. snapshots what the threads need (addresses, decrypted credentials) in the calling thread: the
   threads never touch the ORM;
3. runs, in one thread pool, per node: one SSH login + one command gathering every fact of that node
   (`gather_script`), the HTTP probe of Joget's anonymous page directly and through the balancer (sticky
   to the node's route), and for the cluster: the database login and the balancer's own page; then
   reads balancer-manager once (after the probes, so it shows what they just met);
4. evaluates one small function per check (`judge_*` in `checks`), pure: facts in, a Verdict out;
5. writes one HealthSample per node, the latest numbers (NodeHealth), and, for each check whose state
   changed, its CheckState and a HealthEvent, in one transaction;
6. sends the changes by e-mail and webhook when configured (failures are logged, never raised).

The console's address must be allowed to read balancer-manager (LoadBalancer.manager_allow).

Where each part lives: `cycle` (lease, the probes side by side, the order above), `jobs` (the snapshot),
`gather` (the SSH script and its parser), `probes` (HTTP, database, balancer-manager from the console),
`mysqlwire` and `balancer_manager` (the protocols those probes speak), `checks` (the pure checks),
`evaluate` (results and numbers), `record` (rows, retention), `notify`, `tail` (catalina.out on demand).
Callers import from this package.
"""

from ..models import HealthState
from .balancer_manager import Manager, member_state, parse_balancer_manager
from .base import CHECKS, SEVERITY, Verdict, setting, worst
from .checks import (
    judge_balancer,
    judge_balancer_member,
    judge_database,
    judge_disk,
    judge_host_key,
    judge_http,
    judge_load,
    judge_memory,
    judge_replication,
    judge_servers_json,
    judge_ssh,
    judge_tomcat,
    judge_wflow,
)
from .cycle import CycleReport, claim, cluster_ids, probe_all, run_cycle
from .evaluate import Observed, evaluate, numbers
from .gather import Gathered, count_cpus, gather, gather_script, parse_gather, parse_servers_json, replication_members
from .jobs import ClusterJob, NodeJob, snapshot
from .mysqlwire import MySQLError, parse_greeting
from .notify import notify
from .probes import Probe, mysql_ping, probe_joget
from .record import prune, record
from .tail import fetch_catalina_tail

__all__ = [
    "CHECKS", "ClusterJob", "CycleReport", "Gathered", "HealthState", "Manager", "MySQLError", "NodeJob", "Observed",
    "Probe",
    "SEVERITY", "Verdict", "claim", "cluster_ids", "count_cpus", "evaluate", "fetch_catalina_tail", "gather",
    "gather_script", "judge_balancer", "judge_balancer_member", "judge_database", "judge_disk", "judge_host_key",
    "judge_http", "judge_load", "judge_memory", "judge_replication", "judge_servers_json", "judge_ssh",
    "judge_tomcat", "judge_wflow", "member_state", "mysql_ping", "notify", "numbers", "parse_balancer_manager",
    "parse_gather", "parse_greeting", "parse_servers_json", "probe_all", "probe_joget", "prune", "record",
    "replication_members", "run_cycle", "setting", "snapshot", "worst",
]
