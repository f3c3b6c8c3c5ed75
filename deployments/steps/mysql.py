"""MySQL and MariaDB from a step: SQL text with every value quoted, and the client run on a node.

Secrets never reach a command line: SQL and the client's password travel as files (SFTP) inside a
fresh 0700 directory (mktemp -d, umask 077) that the same remote command removes as soon as the client
has read them. The password goes in a client option file ([client] password="..."), the way MySQL
documents as safe; MYSQL_PWD is deprecated in MySQL 8 and readable by the account in /proc/<pid>/environ
for as long as the client runs. (Feeding stdin through Fabric is not an option either: it sends one byte
per 10 ms.)
"""

# ruff: noqa: S608 - SQL is built here on purpose: every value goes through sql_string() or sql_ident().
from __future__ import annotations

import contextlib
import hashlib
import io
import re

from nodes.secrets import MASK, masker
from nodes.ssh import SSHError, quote

from .base import StepContext, StepFailed

DEBIAN_CNF = "/etc/mysql/debian.cnf"  # root's (or debian-sys-maint's) local login on Debian-family installs
ROOT_OPTS = f'set --; [ -r {DEBIAN_CNF} ] && set -- --defaults-extra-file={DEBIAN_CNF}; '
CLIENT = ('client=$(command -v mariadb || command -v mysql) || '
          '{ echo "no mariadb or mysql client on this node" >&2; exit 127; }')
ADMIN = 'admin=$(command -v mariadb-admin || command -v mysqladmin)'
SESSION = "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';\n"  # never NO_BACKSLASH_ESCAPES: see sql_string


# -- quoting (pure, unit-tested) -------------------------------------------------------------------

def sql_string(value: str) -> str:
    """A MySQL string literal. Backslash and quote are escaped; the session's sql_mode (SESSION) is set
    without NO_BACKSLASH_ESCAPES, so `\\\\` means one backslash on every server."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def mask_sql(sql: str, password: str) -> str:
    """SQL fit for the log: the password's literal (as sql_string writes it) shown as '********'."""
    return masker([sql_string(password)], shown_as=lambda _: f"'{MASK}'", min_length=1)(sql) if password else sql


def sql_ident(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


def account(user: str) -> str:
    return f"{sql_string(user)}@'%'"


def option_value(value: str) -> str:
    """A value for a MySQL option file: double-quoted, with backslash and double quote escaped
    (mysys reads \\\\ \\" \\' \\n \\t \\r \\b \\s inside values; quotes keep spaces and #)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_option_file(password: str) -> str:
    return f"[client]\npassword={option_value(password)}\n"


def native_password_hash(password: str) -> str:
    """What mysql_native_password stores: '*' + SHA1(SHA1(password)) in upper-case hex."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()  # noqa: S324 - the format


def parse_version(text: str) -> tuple[bool, tuple[int, ...]]:
    """(is MariaDB, (major, minor, patch)) from `VERSION()` or `mysqld --version` text."""
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text or "")
    numbers = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
    return "mariadb" in (text or "").lower(), numbers


def password_sql(version: str, user: str, password: str) -> str:
    """Change a password: ALTER USER where it exists (MariaDB 10.2+, MySQL 5.7.6+), else SET PASSWORD."""
    mariadb, v = parse_version(version)
    if (mariadb and v >= (10, 2, 0)) or (not mariadb and v >= (5, 7, 6)):
        return f"ALTER USER {account(user)} IDENTIFIED BY {sql_string(password)};"
    return f"SET PASSWORD FOR {account(user)} = PASSWORD({sql_string(password)});"


def create_user_sql(user: str, password: str) -> str:
    # No IF NOT EXISTS (not in 5.5/5.6): the probe looked in mysql.user first.
    return f"CREATE USER {account(user)} IDENTIFIED BY {sql_string(password)};"


def grant_sql(database: str, user: str) -> str:
    # No IDENTIFIED BY here: MySQL 8 refuses it inside GRANT.
    return f"GRANT ALL PRIVILEGES ON {sql_ident(database)}.* TO {account(user)};"


def schema_tables(sql_text: str) -> set[str]:
    """Table names a schema file creates (lower-cased: lower_case_table_names may fold them)."""
    pattern = r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?([A-Za-z0-9_$]+)`?"
    return {m.lower() for m in re.findall(pattern, sql_text, flags=re.IGNORECASE)}


# -- running SQL on a node ---------------------------------------------------------------------------

def run_client(ctx: StepContext, source, *, conn=None, password: str | None = None, args: str = "",
               quiet: bool = True, timeout: float | None = None):
    """Run the mariadb/mysql client with `source` (SQL text or a binary file object) as its input.

    Without `password`: as root over the local socket (Debian's debian.cnf if there). With it: an option
    file holds the password. Both files go into a fresh 0700 directory that the command removes."""
    conn = conn or ctx.conn
    made = conn.run("umask 077; mktemp -d /tmp/jcc-sql.XXXXXXXX", sudo=False)
    if not made.ok:
        raise StepFailed(f"cannot create a private temporary directory on the node: {made.stderr.strip()[-200:]}")
    tmp = made.stdout.strip()
    try:
        data = io.BytesIO(source.encode()) if isinstance(source, str) else source
        conn.upload(data, f"{tmp}/input.sql")
        if password is None:
            opts = f'{ROOT_OPTS}"$client" "$@"'
        else:
            conn.upload(io.BytesIO(client_option_file(password).encode()), f"{tmp}/client.cnf")
            opts = f'"$client" --defaults-extra-file={quote(tmp + "/client.cnf")}'
        cmd = (f"{CLIENT}; {opts} --batch --skip-column-names --default-character-set=utf8mb4 {args} "
               f"< {quote(tmp + '/input.sql')}; rc=$?; rm -rf {quote(tmp)}; exit $rc")
        result = ctx.run(cmd, conn=conn, quiet=quiet, timeout=timeout)
        if result.timed_out:  # the remote shell never reached its own rm
            conn.run(f"rm -rf {quote(tmp)}")
        return result
    except BaseException:
        with contextlib.suppress(SSHError, OSError):
            conn.run(f"rm -rf {quote(tmp)}")
        raise


def rows(output: str) -> dict[str, list[list[str]]]:
    """Tab-separated rows whose first column is a tag -> {tag: [other columns]}."""
    out: dict[str, list[list[str]]] = {}
    for line in output.splitlines():
        cols = line.split("\t")
        out.setdefault(cols[0], []).append(cols[1:])
    return out


def explain_client_error(stderr: str, where: str) -> str:
    """A client error as the admin needs it: what failed and what to do."""
    text = stderr.strip()
    codes = {
        "1045": "the user or password is wrong (or the user does not exist for this host)",
        "1044": "the user has no access to the database: GRANT ALL PRIVILEGES ON <db>.* TO the user",
        "1142": "a privilege is missing: GRANT ALL PRIVILEGES ON <db>.* TO the user",
        "1049": "the database does not exist",
        "1130": "this host is not allowed to connect: the user needs host '%' (or this host's address)",
        "2002": "nothing answers there: is the server running and listening on the network (bind-address)?",
        "2003": "nothing answers there: is the server running, listening on the network (bind-address), "
                "and the port open in the firewall?",
        "2005": "the database host name does not resolve on this node",
        "2013": "the connection was cut: a firewall or a server crash",
    }
    m = re.search(r"ERROR (\d+)", text)
    why = codes.get(m.group(1), "") if m else ""
    last = text.splitlines()[-1] if text else "no error text"
    return f"{where}: {last}" + (f" — {why}." if why else "")
