import pytest
from django.core.exceptions import ValidationError

from nodes import validators as v

HOSTILE = ["a;b", "$(id)", "`id`", "a b", "a'b", 'a"b', "a\nb", "../x", "-rf", "a|b", "a&b", "", "é"]


@pytest.mark.parametrize("value", ["app1", "10.0.0.1", "fe80::1", "db.example.com", "node-01"])
def test_addresses_accepted(value):
    v.validate_address(value)


@pytest.mark.parametrize("value", HOSTILE + ["256.1.1.1", "-host", "host-", "a" * 64 + ".com", "10.0.0"])
def test_addresses_rejected(value):
    with pytest.raises(ValidationError):
        v.validate_address(value)


@pytest.mark.parametrize("value", ["/opt/joget", "/opt/joget/wflow", "/", "/srv/a_b-c.d"])
def test_paths_accepted(value):
    v.validate_absolute_path(value)


@pytest.mark.parametrize("value", HOSTILE + ["opt/joget", "/opt/../etc", "/opt/joget/", "/a//b", "/a/./b", "/a b"])
def test_paths_rejected(value):
    with pytest.raises(ValidationError):
        v.validate_absolute_path(value)


@pytest.mark.parametrize(
    "fn,good",
    [
        (v.validate_jvm_route, "node01"),
        (v.validate_db_identifier, "jwdb"),
        (v.validate_db_user, "joget"),
        (v.validate_posix_user, "deploy"),
        (v.validate_name, "app1"),
        (v.validate_site_name, "jwsite"),
        (v.validate_cookie_name, "JSESSIONID"),
        (v.validate_profile_name, "default"),
    ],
)
def test_identifiers(fn, good):
    fn(good)
    for bad in HOSTILE:
        with pytest.raises(ValidationError):
            fn(bad)


def test_password_allows_shell_metacharacters_but_not_control_characters():
    v.validate_password("""p'a"s s$(id)`x`;\\ é""")
    for bad in ["a\nb", "a\x00b", "a\tb"]:
        with pytest.raises(ValidationError):
            v.validate_password(bad)


def test_ports():
    v.validate_port(22)
    for bad in (0, 65536, -1):
        with pytest.raises(ValidationError):
            v.validate_port(bad)
