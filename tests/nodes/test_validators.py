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


@pytest.mark.parametrize("value", ["/opt/joget", "/opt/joget/wflow", "/srv/a_b-c.d", "/usr/share/tomcat10",
                                   "/var/lib/tomcat10", "/export/wflow", "/home/joget"])
def test_paths_accepted(value):
    v.validate_absolute_path(value)


@pytest.mark.parametrize("value", HOSTILE + ["opt/joget", "/opt/../etc", "/opt/joget/", "/a//b", "/a/./b", "/a b"])
def test_paths_rejected(value):
    with pytest.raises(ValidationError):
        v.validate_absolute_path(value)


@pytest.mark.parametrize("value", ["/", "/etc", "/usr", "/usr/share", "/var", "/var/lib", "/opt", "/home", "/root",
                                   "/etc/ssh", "/etc/ld.so.preload", "/usr/bin/joget", "/boot/x", "/proc/1"])
def test_system_directories_and_their_parents_are_refused(value):
    # `chown -R tomcat /` (a catalina_base of /) would hand the machine to the service user.
    with pytest.raises(ValidationError, match="system directory"):
        v.validate_absolute_path(value)


@pytest.mark.parametrize("field", ["install_path", "catalina_home", "catalina_base"])
def test_every_install_path_of_a_node_refuses_system_directories(field, db):
    from django.core.exceptions import ValidationError as DjangoValidationError

    from nodes.models import Cluster, Node

    node = Node(cluster=Cluster.objects.create(name="c"), name="app1", address="10.0.0.1", jvm_route="n1",
                roles=["app_server"], **{field: "/usr"})
    with pytest.raises(DjangoValidationError) as exc:
        node.full_clean(exclude=["cluster"])
    assert field in exc.value.message_dict and "system directory" in exc.value.message_dict[field][0]


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
