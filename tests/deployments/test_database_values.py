"""Values that reach the database step's shell and log: line separators in a password, names read from the node."""

import shlex
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from deployments.steps import database as d
from deployments.steps import mysql as m
from nodes import validators
from nodes.secrets import masker
from nodes.ssh import Result


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"])
def test_a_password_with_a_unicode_line_separator_never_shows_in_the_log(monkeypatch, separator):
    password = f"FirstHalf{separator}SecondHalf"
    with pytest.raises(ValidationError, match="line breaks"):
        validators.validate_password(password)
    # One stored before the validator refused it is still masked whole in every "SQL:" line.
    logged = []
    monkeypatch.setattr(d, "shared_database", lambda cluster: SimpleNamespace(password=password))
    monkeypatch.setattr(d, "run_client", lambda ctx, source, **kw: Result(0, "", ""))
    ctx = SimpleNamespace(cluster=None, log=logged.append)
    d.Schema().apply(ctx, [d.SqlChange("create the user", sql=m.create_user_sql("joget", password)),
                           d.SqlChange("set its password", sql=m.password_sql("10.11.6-MariaDB", "joget", password))])
    shown = "\n".join(masker([password])(line) for line in logged)
    assert "SQL: CREATE USER 'joget'@'%' IDENTIFIED BY '********';" in shown
    assert "FirstHalf" not in shown and "SecondHalf" not in shown


def test_service_names_read_back_from_the_node_are_quoted():
    unit = d.ServerFacts(server="/usr/sbin/mariadbd", systemd=True, unit="mariadb;touch /tmp/jcc-pwned")
    assert shlex.split(d.service_command("restart", unit)) == ["systemctl", "restart", "mariadb;touch /tmp/jcc-pwned"]
    initd = d.ServerFacts(server="/usr/sbin/mariadbd", initd="mysql$(touch /tmp/jcc-pwned)")
    assert "'/etc/init.d/mysql$(touch /tmp/jcc-pwned)' start" in d.service_command("start", initd)
