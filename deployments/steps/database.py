"""Step 2 of the guide: the shared MySQL/MariaDB database.

database.server (db node, managed): the server is installed, its data directory
initialized, it listens on the network (bind-address in a drop-in file of ours,
never an edit of the distribution's file) and it runs.
database.schema (db node, managed): the database exists, holds the Joget schema
(loaded from the cluster's schema_sql artifact, only into an empty database), and
the Joget user exists with the console's password and all privileges on it, in SQL
that works from MySQL 5.5 to 8.x and on MariaDB.
database.verify (app servers, both modes): each app server logs in as the Joget
user and creates, alters, fills, reads, changes, empties and drops a scratch table.

SQL text and the client (secrets as files in a private directory) are in mysql.py.
"""

# ruff: noqa: S608 - SQL is built here on purpose: every value goes through sql_string() or sql_ident().
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from nodes.models import Artifact, SharedDatabase
from nodes.ssh import fact, facts, quote

from . import register
from .base import Change, ManagedStep, Step, StepContext, StepFailed, file_diff
from .mysql import (
    ADMIN,
    ROOT_OPTS,
    SESSION,
    create_user_sql,
    explain_client_error,
    grant_sql,
    mask_sql,
    native_password_hash,
    parse_version,
    password_sql,
    rows,
    run_client,
    schema_tables,
    sql_ident,
    sql_string,
)
from .toolbox import PATH_SETUP, apt_install, service_control

# As the guide's "comment out bind-address": every interface; who may log in is decided per user and host.
BIND_ADDRESS = "0.0.0.0"  # noqa: S104
NEEDED_PRIVS = ("Select", "Insert", "Update", "Delete", "Create", "Drop", "Alter", "Index")
MARK = "# Joget cluster console: read the drop-in directory with the network settings"


# -- the server's facts (pure parsing, unit-tested) ---------------------------------------------------

SERVER_FACTS = r"""
set -f
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH
server=$(command -v mariadbd || command -v mysqld || true)
echo "server=$server"
if [ -n "$server" ]; then
  echo "version=$("$server" --version 2>/dev/null | head -n 1)"
  defaults=$("$server" --print-defaults 2>/dev/null | tail -n 1)
  echo "defaults=$defaults"
  datadir=$(printf '%s\n' $defaults | sed -n 's/^--datadir=//p' | tail -n 1)
  [ -d "${datadir:-/var/lib/mysql}/mysql" ] && echo initialized=1
fi
for d in /etc/mysql/mariadb.conf.d /etc/mysql/mysql.conf.d /etc/mysql/conf.d /etc/my.cnf.d; do
  [ -d "$d" ] && echo "confdir=$d"
done
for f in /etc/mysql/my.cnf /etc/my.cnf; do [ -e "$f" ] && echo "main_cnf=$(readlink -f "$f")"; done
[ -d /run/systemd/system ] && echo systemd=1
for s in mariadb mysql; do
  for u in /lib/systemd/system /usr/lib/systemd/system /etc/systemd/system; do
    [ -e "$u/$s.service" ] && echo "unit=$s"
  done
  if [ -x "/etc/init.d/$s" ]; then
    echo "initd=$s"
    for f in $(grep -o '/etc/mysql/[A-Za-z0-9._-]*' "/etc/init.d/$s" | sort -u); do
      [ -e "$f" ] || echo "initd_missing=$f"
    done
  fi
done
admin=$(command -v mariadb-admin || command -v mysqladmin || true)
set --; [ -r /etc/mysql/debian.cnf ] && set -- --defaults-extra-file=/etc/mysql/debian.cnf
[ -n "$admin" ] && "$admin" "$@" --connect-timeout=5 ping >/dev/null 2>&1 && echo running=1
command -v mariadb-install-db >/dev/null 2>&1 && echo installdb=mariadb-install-db
command -v mysql_install_db >/dev/null 2>&1 && echo installdb=mysql_install_db
sed 's/^/tcp=/' /proc/net/tcp /proc/net/tcp6 2>/dev/null
true
"""


def _hex_ip(value: str) -> str:
    """The address part of /proc/net/tcp{,6} (little-endian hex words) as text."""
    import ipaddress

    raw = bytes.fromhex(value)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listening(tcp_lines: list[str], port: int) -> set[str]:
    """Addresses with a socket in LISTEN state (0A) on `port`."""
    found = set()
    for line in tcp_lines:
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1] or fields[3] != "0A":
            continue
        addr, _, hexport = fields[1].rpartition(":")
        with contextlib.suppress(ValueError):
            if int(hexport, 16) == port:
                found.add(_hex_ip(addr))
    return found


def parse_defaults(line: str) -> dict[str, str]:
    """`--bind-address=1.2.3.4 --port=3306 ...` -> {'bind-address': ..., 'port': ...}; the last one wins,
    as in the server. Option names are normalized to dashes (bind_address == bind-address)."""
    out = {}
    for token in line.split():
        if token.startswith("--"):
            name, _, value = token[2:].partition("=")
            out[name.replace("_", "-")] = value
    return out


@dataclass
class ServerFacts:
    server: str = ""
    version: str = ""
    defaults: dict[str, str] = field(default_factory=dict)
    initialized: bool = False
    confdirs: list[str] = field(default_factory=list)
    main_cnf: str = ""
    systemd: bool = False
    unit: str = ""
    initd: str = ""
    initd_missing: list[str] = field(default_factory=list)
    running: bool = False
    installdb: list[str] = field(default_factory=list)
    tcp: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> ServerFacts:
        f = facts(text)

        def one(key: str) -> str:
            return fact(f, key)

        return cls(
            server=one("server"), version=one("version"), defaults=parse_defaults(one("defaults")),
            initialized="initialized" in f, confdirs=f.get("confdir", []), main_cnf=one("main_cnf"),
            systemd="systemd" in f, unit=one("unit"), initd=one("initd"), initd_missing=f.get("initd_missing", []),
            running="running" in f, installdb=f.get("installdb", []), tcp=f.get("tcp", []),
        )

    @property
    def installed(self) -> bool:
        return bool(self.server)

    @property
    def datadir(self) -> str:
        return self.defaults.get("datadir") or "/var/lib/mysql"

    def listens_as_planned(self, port: int) -> bool:
        addrs = listening(self.tcp, port)
        if BIND_ADDRESS in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
            return bool(addrs & {"0.0.0.0", "::"})  # noqa: S104
        return BIND_ADDRESS in addrs


def conf_path(confdirs: list[str], engine: str, main_cnf: str) -> str:
    """Our drop-in file: in the distribution's drop-in directory, named to be read after its own files
    (mariadb.conf.d: 50-server.cnf; mysql.conf.d: mysqld.cnf, hence the zz- there)."""
    if confdirs:
        d = confdirs[0]
    elif main_cnf == "/etc/my.cnf":
        d = "/etc/my.cnf.d"
    else:
        d = "/etc/mysql/mariadb.conf.d" if engine == SharedDatabase.Engine.MARIADB else "/etc/mysql/mysql.conf.d"
    return f"{d}/{'zz' if d.endswith('mysql.conf.d') else '60'}-joget-cluster.cnf"


def render_conf(port: int) -> str:
    return ("# Written by the Joget cluster console (step database.server): the app servers connect over the\n"
            "# network. Remove this file (and restart) to undo.\n"
            f"[mysqld]\nbind-address = {BIND_ADDRESS}\nport = {int(port)}\n")


def includes(text: str) -> tuple[set[str], list[str]]:
    """(!includedir directories, !include files) of an option file."""
    dirs, files = set(), []
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0] == "!includedir":
            dirs.add(parts[1].strip().rstrip("/"))
        elif len(parts) == 2 and parts[0] == "!include":
            files.append(parts[1].strip())
    return dirs, files


def service_command(action: str, f: ServerFacts) -> str:
    """start or restart the server: systemd if it runs; else the init script when every /etc/mysql file it
    needs exists (Debian's needs debian.cnf and debian-start); else mysqld_safe itself, detached."""
    log = f.defaults.get("log-error", "")
    tail = f"tail -n 20 {quote(log)} >&2; " if log.startswith("/") else ""
    admin = f"{ADMIN}; {ROOT_OPTS}"
    if action == "restart":
        admin += ('if "$admin" "$@" --connect-timeout=5 ping >/dev/null 2>&1; then '
                  '"$admin" "$@" shutdown || exit 1; fi; ')
    own = (
        f"{PATH_SETUP}; {admin}"
        "if id mysql >/dev/null 2>&1 && [ ! -d /run/mysqld ]; then install -d -m 0755 -o mysql -g root /run/mysqld; "
        "fi; if command -v mysqld_safe >/dev/null 2>&1; then setsid mysqld_safe </dev/null >/dev/null 2>&1 & "
        f"else setsid {quote(f.server or 'mysqld')} --user=mysql </dev/null >/dev/null 2>&1 & fi; "
        'i=0; while [ $i -lt 60 ]; do "$admin" "$@" --connect-timeout=2 ping >/dev/null 2>&1 && '
        '{ echo "the server answers"; exit 0; }; sleep 0.5; i=$((i+1)); done; '
        f'echo "the server did not answer within 30 s; the end of its error log:" >&2; {tail}exit 1'
    )
    # The unit and the script were read back from the node: service_control quotes them like any value.
    return service_control(action, unit=f.unit if f.systemd else "",
                           initd=f.initd if not f.initd_missing else "", own=own, known=True)


def init_datadir_command(f: ServerFacts) -> str:
    d = quote(f.datadir)
    prep = f"mkdir -p {d} && {{ ! id mysql >/dev/null 2>&1 || chown mysql:mysql {d}; }} && "
    mariadb, v = parse_version(f.version)
    if "mariadb-install-db" in f.installdb:
        return prep + f"mariadb-install-db --user=mysql --datadir={d} --skip-test-db"
    if not mariadb and v >= (5, 7, 6):
        # Leaves root@localhost without a password (local socket only), as Debian's own packaging does.
        return prep + f"{quote(f.server)} --initialize-insecure --user=mysql --datadir={d}"
    return prep + f"mysql_install_db --user=mysql --datadir={d}"


# -- steps -----------------------------------------------------------------------------------------

def shared_database(cluster) -> SharedDatabase | None:
    return cluster.layer("shared_database")


class _DatabaseStep(ManagedStep):
    layer = "database"
    layer_of = staticmethod(shared_database)


@register
class Server(_DatabaseStep):
    key = "database.server"
    title = "Database server: installed, listening on the network, running"
    hint = ("Look at the server's error log (log-error, often /var/log/mysql/error.log) on the database node, "
            "and `mariadbd --print-defaults` (or mysqld) for the options it starts with.")

    def _facts(self, ctx: StepContext) -> ServerFacts:
        return ServerFacts.parse(ctx.run(SERVER_FACTS, quiet=True).stdout)

    def probe(self, ctx):
        db = shared_database(ctx.cluster)
        f = self._facts(ctx)
        if not f.installed:
            package = "mariadb-server" if db.engine == SharedDatabase.Engine.MARIADB else "mysql-server"
            install = Change(f"install {package}", command=apt_install(package), timeout=900)
            return [install, *self._config_changes(ctx, db, f)[0],
                    Change("initialize the data directory and start the server")]
        if parse_version(f.version)[0] != (db.engine == SharedDatabase.Engine.MARIADB):
            ctx.log(f"note: the console says {db.get_engine_display()}, the node has {f.version}: using it")
        return self._plan(ctx, db, f)

    def _plan(self, ctx, db, f: ServerFacts) -> list[Change]:
        changes, config_changed = self._config_changes(ctx, db, f)
        if not f.initialized:
            changes.append(Change(f"initialize the data directory {f.datadir}", command=init_datadir_command(f),
                                  timeout=300))
        if not f.running or not f.initialized:
            changes.append(Change("start the server", command=service_command("start", f), timeout=120))
        elif config_changed or not f.listens_as_planned(db.port):
            changes.append(Change(f"restart the server (to listen on {BIND_ADDRESS}:{db.port})",
                                  command=service_command("restart", f), timeout=180))
        return changes

    def _config_changes(self, ctx, db, f: ServerFacts) -> tuple[list[Change], bool]:
        path = conf_path(f.confdirs, db.engine, f.main_cnf)
        changes = []
        conf = ctx.want_file(path, render_conf(db.port), description=f"listen on {BIND_ADDRESS}:{db.port} ({path})")
        if conf:
            changes.append(conf)
        include = self._include_change(ctx, path.rsplit("/", 1)[0], f.main_cnf or "/etc/mysql/my.cnf")
        if include:
            changes.append(include)
        return changes, bool(changes)

    def _include_change(self, ctx, confdir: str, main: str) -> Change | None:
        """Append an !includedir line when the main option file (or a file it includes) does not read
        our directory: some installs ship a flat my.cnf without one."""
        current = ctx.read_file(main)
        if self._reads_dir(ctx, current, confdir):
            return None
        text = current.decode("utf-8", "replace") if current is not None else ""
        wanted = (text if text.endswith("\n") or not text else text + "\n") + f"\n{MARK}\n!includedir {confdir}/\n"
        return Change(f"read {confdir}/ from {main}", path=main, content=wanted.encode(),
                      diff=file_diff(main, current, wanted.encode()))

    def _reads_dir(self, ctx, current: bytes | None, confdir: str, depth: int = 0) -> bool:
        if current is None or depth > 3:
            return False
        dirs, files = includes(current.decode("utf-8", "replace"))
        if confdir.rstrip("/") in dirs:
            return True
        return any(self._reads_dir(ctx, ctx.read_file(p), confdir, depth + 1) for p in files[:10])

    def apply(self, ctx, changes):
        if changes and changes[0].description.startswith("install "):
            super().apply(ctx, changes[:1])
            # What the package laid down (drop-in directory, service) decides the rest: look again.
            changes = self._plan(ctx, shared_database(ctx.cluster), self._facts(ctx))
        super().apply(ctx, changes)

    def verify(self, ctx):
        db = shared_database(ctx.cluster)
        f = self._facts(ctx)
        if not f.running:
            raise StepFailed(f"the database server on {ctx.node.name} does not answer `mariadb-admin ping`.")
        effective = (f.defaults.get("bind-address"), f.defaults.get("port"))
        if effective != (BIND_ADDRESS, str(db.port)):
            raise StepFailed(f"the server starts with bind-address={effective[0]} port={effective[1]}, not "
                             f"{BIND_ADDRESS}:{db.port}: an option file read after "
                             f"{conf_path(f.confdirs, db.engine, f.main_cnf)} overrides it.")
        if not f.listens_as_planned(db.port):
            found = ", ".join(sorted(listening(f.tcp, db.port))) or "nothing"
            raise StepFailed(f"the server does not listen on {BIND_ADDRESS}:{db.port} (found: {found}).")
        ctx.log(f"{f.version.split(' Ver ')[-1] if ' Ver ' in f.version else f.version} answers, "
                f"listening on {BIND_ADDRESS}:{db.port}")


@dataclass
class SqlChange(Change):
    """A change made in SQL as root on the database node; `sql` may hold the password, masked in the log."""

    sql: str = field(default="", repr=False)

    def apply(self, ctx, conn=None):
        db = shared_database(ctx.cluster)
        ctx.log(f"→ {self.description}")
        # Split on "\n" only: splitlines() also breaks at U+2028 and the like, cutting a password in two.
        for line in self.sql.strip().split("\n"):
            ctx.log(f"SQL: {mask_sql(line, db.password)}")
        r = run_client(ctx, SESSION + self.sql, conn=conn)
        if not r.ok:
            raise StepFailed(explain_client_error(r.stderr, self.description), exit_code=r.exit_code)


class LoadSchema(Change):
    """The cluster's schema SQL artifact loaded into the (empty) database."""

    def apply(self, ctx, conn=None):
        db = shared_database(ctx.cluster)
        ctx.log(f"→ {self.description}")
        artifact = Artifact.objects.get(cluster=db.cluster, kind=Artifact.Kind.SCHEMA_SQL)
        ctx.log(f"SQL: source {artifact.original_name} ({artifact.size} bytes, sha256 {artifact.sha256[:12]}…)")
        with artifact.file.open("rb") as fh:
            r = run_client(ctx, fh, conn=conn, args=f"--database={quote(db.name)}", quiet=False, timeout=900)
        if not r.ok:
            raise StepFailed(explain_client_error(r.stderr, f"loading {artifact.original_name}") +
                             f" The database {db.name} may now hold part of the schema: drop it before running again.",
                             exit_code=r.exit_code)


@dataclass
class SchemaState:
    version: str = ""
    database: bool = False
    tables: set[str] = field(default_factory=set)
    user: bool = False
    password_ok: bool = False
    grants_ok: bool = False


@register
class Schema(_DatabaseStep):
    key = "database.schema"
    title = "Database, Joget schema and user"
    hint = ("On the database node, `mariadb` (or `mysql`) as root shows what is there: SHOW DATABASES; "
            "SELECT user, host FROM mysql.user; SHOW GRANTS FOR 'joget'@'%'.")

    # -- reading the server --

    def _query(self, ctx, sql: str) -> dict[str, list[list[str]]]:
        r = run_client(ctx, SESSION + sql)
        if not r.ok:
            raise StepFailed(explain_client_error(r.stderr, f"SQL as root on {ctx.node.name}"), exit_code=r.exit_code)
        return rows(r.stdout)

    def _state(self, ctx, db: SharedDatabase) -> SchemaState:
        name, user = sql_string(db.name), sql_string(db.user)
        first = self._query(ctx, (
            "SELECT 'version', VERSION();\n"
            f"SELECT 'db', SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {name};\n"
            f"SELECT 'table', TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {name};\n"
            "SELECT 'column', COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mysql' "
            "AND TABLE_NAME = 'user' AND COLUMN_NAME IN ('Password', 'authentication_string', 'plugin');\n"
            f"SELECT 'grant', {', '.join(p + '_priv' for p in NEEDED_PRIVS)} FROM mysql.db "
            f"WHERE Db = {name} AND User = {user} AND Host = '%';\n"
        ))
        state = SchemaState(
            version=(first.get("version") or [[""]])[0][0], database=bool(first.get("db")),
            tables={t[0].lower() for t in first.get("table", [])},
            grants_ok=any(all(c == "Y" for c in g) for g in first.get("grant", [])),
        )
        columns = {c[0].lower() for c in first.get("column", [])}
        pick = [c if c.lower() in columns else "''" for c in ("plugin", "Password", "authentication_string")]
        found = self._query(ctx, f"SELECT 'user', {', '.join(pick)} FROM mysql.user WHERE User = {user} "
                                 "AND Host = '%';\n").get("user", [])
        state.user = bool(found)
        if found:
            state.password_ok = self._password_ok(ctx, db, *(found[0] + ["", "", ""])[:3])
        return state

    def _password_ok(self, ctx, db: SharedDatabase, plugin: str, password_col: str, auth: str) -> bool:
        if plugin in ("", "mysql_native_password"):
            return native_password_hash(db.password) in (password_col, auth)
        # A salted hash (caching_sha2_password, ...): only a login can tell.
        r = run_client(ctx, "SELECT 1;", password=db.password,
                       args=f"--protocol=TCP -h 127.0.0.1 -P {int(db.port)} -u {quote(db.user)}")
        if r.ok:
            return True
        if "ERROR 1045" in r.stderr:
            return False
        raise StepFailed(explain_client_error(r.stderr, f"login check of {db.user} on {ctx.node.name}"))

    # -- planning --

    def probe(self, ctx):
        db = shared_database(ctx.cluster)
        try:
            state = self._state(ctx, db)
        except StepFailed as exc:
            if not ctx.dry_run:
                raise
            ctx.log(f"the server does not answer yet ({str(exc).split(' — ')[0]}): planning as for an empty one")
            state = SchemaState()
        return self._changes(ctx, db, state)

    def _changes(self, ctx, db: SharedDatabase, state: SchemaState) -> list[Change]:
        changes: list[Change] = []
        if not state.database:
            changes.append(SqlChange(f"create the database {db.name}", sql=(
                f"CREATE DATABASE IF NOT EXISTS {sql_ident(db.name)} "
                "DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n")))
        load = self._schema_change(db, state)
        if load:
            changes.append(load)
        if not state.user:
            changes.append(SqlChange(f"create the user {db.user}@'%'", sql=create_user_sql(db.user, db.password)))
        elif not state.password_ok:
            changes.append(SqlChange(f"set the password of {db.user}@'%' (it differs from the console's)",
                                     sql=password_sql(state.version, db.user, db.password)))
        if not state.grants_ok:
            changes.append(SqlChange(f"grant all privileges on {db.name}.* to {db.user}@'%'",
                                     sql=grant_sql(db.name, db.user) + "\nFLUSH PRIVILEGES;\n"))
        return changes

    def _schema_change(self, db: SharedDatabase, state: SchemaState) -> Change | None:
        artifact = Artifact.objects.filter(cluster=db.cluster, kind=Artifact.Kind.SCHEMA_SQL).first()
        expected = self._expected_tables(artifact)
        if not state.tables:
            if artifact is None:
                raise StepFailed(f"The database {db.name} has no tables and the cluster has no Schema SQL "
                                 "artifact: upload jwdb-mysql.sql from the Joget bundle, then run again.")
            return LoadSchema(f"load the Joget schema {artifact.original_name} ({len(expected)} tables) into {db.name}")
        missing = sorted(expected - state.tables)
        if missing:
            # Never load into a database that already has tables: that would fail half-way or clobber data.
            raise StepFailed(f"The database {db.name} has {len(state.tables)} tables but lacks {len(missing)} of the "
                             f"schema's ({', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}): an earlier "
                             "load stopped half-way, or it holds something else. Empty it (DROP DATABASE) and run "
                             "again, or load the schema by hand.")
        return None

    @staticmethod
    def _expected_tables(artifact: Artifact | None) -> set[str]:
        if artifact is None:
            return set()
        with artifact.file.open("rb") as fh:
            return schema_tables(fh.read().decode("utf-8", "replace"))

    def verify(self, ctx):
        db = shared_database(ctx.cluster)
        state = self._state(ctx, db)
        left = [c.description for c in self._changes(ctx, db, state)]
        if left:
            raise StepFailed(f"after the changes, still to do: {'; '.join(left)}.")
        ctx.log(f"{db.name}: {len(state.tables)} tables; {db.user}@'%' has the console's password and all privileges")


@register
class Verify(Step):
    key = "database.verify"
    checks_only = True
    title = "Every app server uses the database (select, insert, update, delete, create, alter)"
    layer = "database"
    hint = ("From the app server: mariadb -h <db host> -P <port> -u <user> -p <database>. Check the user's host "
            "('%'), its grants, the server's bind-address and the firewall.")
    OPERATIONS = ("drop an old scratch table", "create", "insert", "update", "alter", "select", "delete",
                  "select", "drop")

    def applies(self, cluster) -> bool:
        return shared_database(cluster) is not None

    def targets(self, cluster):
        return list(cluster.app_servers()) if self.applies(cluster) else []

    def probe(self, ctx):
        if ctx.run("command -v mariadb || command -v mysql", quiet=True).ok:
            return []
        db = shared_database(ctx.cluster)
        package = "mariadb-client" if db.engine == SharedDatabase.Engine.MARIADB else "default-mysql-client"
        return [Change(f"install {package} (to check the database from this node)", command=apt_install(package),
                       timeout=900)]

    @staticmethod
    def scratch_sql(node_name: str) -> str:
        t = sql_ident("jcc_probe_" + re.sub(r"[^A-Za-z0-9_]", "_", node_name))
        return SESSION + "\n".join([
            f"DROP TABLE IF EXISTS {t};",
            f"CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, v VARCHAR(32));",
            f"INSERT INTO {t} (id, v) VALUES (1, 'inserted');",
            f"UPDATE {t} SET v = 'updated' WHERE id = 1;",
            f"ALTER TABLE {t} ADD COLUMN w INT NULL;",
            f"SELECT CONCAT('jcc-select:', v) FROM {t} WHERE id = 1;",
            f"DELETE FROM {t} WHERE id = 1;",
            f"SELECT CONCAT('jcc-count:', COUNT(*)) FROM {t};",
            f"DROP TABLE {t};",
        ]) + "\n"

    def verify(self, ctx):
        db = shared_database(ctx.cluster)
        host = db.connect_host
        where = f"{db.user}@{host}:{db.port}/{db.name} from {ctx.node.name}"
        ctx.log(f"connecting as {where}")
        r = run_client(ctx, self.scratch_sql(ctx.node.name), password=db.password, timeout=60, args=(
            f"--connect-timeout=10 -h {quote(host)} -P {int(db.port)} -u {quote(db.user)} --database={quote(db.name)}"))
        if not r.ok:
            raise StepFailed(self._failure(r.stderr, where), exit_code=r.exit_code)
        lines = r.stdout.split()
        if "jcc-select:updated" not in lines or "jcc-count:0" not in lines:
            raise StepFailed(f"{where}: the scratch table did not read back as written (got {r.stdout.strip()!r}).")
        ctx.log(f"{where}: create, insert, update, alter, select, delete and drop all worked")

    def _failure(self, stderr: str, where: str) -> str:
        m = re.search(r"at line (\d+)", stderr)
        if m:
            # Line 1 is the session's sql_mode; the scratch statements follow in OPERATIONS order.
            index = int(m.group(1)) - 2
            if 0 <= index < len(self.OPERATIONS):
                where = f"{where} ({self.OPERATIONS[index]} failed)"
        return explain_client_error(stderr, where)
