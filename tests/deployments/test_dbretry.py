"""Which database errors the engine's writes wait out (deployments/dbretry.py)."""

import pytest
from django.db import InterfaceError, OperationalError

from deployments.dbretry import is_disconnect, through_restart


class DriverError(Exception):
    """Stands in for psycopg's error, which Django chains as __cause__ and which carries the SQLSTATE."""

    def __init__(self, pgcode):
        super().__init__(pgcode)
        self.pgcode = pgcode


def error_with(pgcode):
    exc = OperationalError("boom")
    exc.__cause__ = DriverError(pgcode)
    return exc


@pytest.mark.parametrize(("pgcode", "waited_out"), [
    (None, True),        # libpq lost the server or never reached it
    ("08006", True),     # connection failure
    ("57P01", True),     # admin shutdown: a restart
    ("53300", True),     # too many connections: frees up as other steps finish
    ("40P01", False),    # a deadlock is the statement's own problem
    ("23505", False),    # unique violation
])
def test_disconnects_and_full_connection_slots_are_waited_out(pgcode, waited_out):
    assert is_disconnect(error_with(pgcode)) is waited_out


def test_through_restart_retries_until_the_write_goes_through(monkeypatch):
    monkeypatch.setattr("deployments.dbretry.time.sleep", lambda s: None)
    attempts = []

    def write():
        attempts.append(1)
        if len(attempts) < 3:
            raise error_with("53300")
        return "written"

    assert through_restart(write) == "written" and len(attempts) == 3


def test_through_restart_gives_other_errors_back_at_once():
    def write():
        raise error_with("23505")

    with pytest.raises(OperationalError):
        through_restart(write)
    with pytest.raises(InterfaceError):
        through_restart(lambda: (_ for _ in ()).throw(InterfaceError("x")), retry_for=0)
