"""Validation for every value that later reaches a shell, SQL or a config file.

Allow-lists, not deny-lists: a value either matches a plain shape that needs no
quoting anywhere it goes, or it is rejected with a message saying what is allowed.
(Passwords are the exception: they may hold anything printable and are always
quoted or escaped by the code that writes them.)
"""

import ipaddress
import re
import unicodedata

from django.core.exceptions import ValidationError

# `\Z`, not `$`: `$` also matches before a final newline, so "app1\n" would pass.
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_JVM_ROUTE = re.compile(r"^[A-Za-z0-9_]{1,32}\Z")
_POSIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
_DB_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_PATH_PART = re.compile(r"^[A-Za-z0-9._+@-]+\Z")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_COOKIE = re.compile(r"^[A-Za-z0-9_]{1,64}\Z")
_CONTEXT = re.compile(r"^/[A-Za-z0-9_-]{1,64}\Z")
_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
PASSWORD_MAX = 256


def validate_name(value: str) -> None:
    if not _NAME.match(value or ""):
        raise ValidationError(
            "Use 1-63 lowercase letters, digits and hyphens, starting and ending "
            "with a letter or digit (e.g. app1).",
            code="invalid_name",
        )


def validate_address(value: str) -> None:
    """A host name (RFC 1123) or an IPv4/IPv6 address, nothing else."""
    value = value or ""
    if "%" in value:
        # ip_address() takes any text after '%' as an IPv6 zone ("fe80::1%$(id)"): none goes into URLs or files.
        raise ValidationError("Enter the address without a zone (%interface): a global or unique-local IPv6 "
                              "address, an IPv4 address or a host name.", code="invalid_address")
    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or not value or not all(_HOSTNAME_LABEL.match(p) for p in labels):
        raise ValidationError(
            "Enter a host name (letters, digits, hyphens and dots) or an IP address.",
            code="invalid_address",
        )
    if labels[-1].isdigit():
        raise ValidationError("This looks like an IP address but is not a valid one.", code="invalid_address")


def validate_port(value: int) -> None:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError("A port is a number from 1 to 65535.", code="invalid_port")


# Directories of the operating system. Install paths are created, chowned (-R) to the service user and
# written by root: one of these, or a parent of one (`/`, `/usr`), would hand the system to that user.
SYSTEM_DIRECTORIES = frozenset({
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",  # noqa: S108 - directories refused, not used
    "/usr/bin", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec", "/usr/local",
    "/usr/local/bin", "/usr/local/lib", "/usr/local/sbin", "/usr/local/share", "/usr/sbin", "/usr/share",
    "/usr/src", "/var/backups", "/var/cache", "/var/lib", "/var/local", "/var/log", "/var/mail", "/var/opt",
    "/var/run", "/var/spool", "/var/tmp", "/var/www",  # noqa: S108 - directories refused, not used
})
# Trees that hold only the system's own files (configuration, kernel interfaces, programs, libraries):
# nothing of a Joget install belongs anywhere inside them.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin",
                "/sys", "/usr/bin", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec",
                "/usr/sbin")


def validate_absolute_path(value: str) -> None:
    """An install path: a plain absolute path, of a directory of its own (no system directory)."""
    value = value or ""
    parts = value.split("/")
    if (
        not value.startswith("/")
        or len(value) > 255
        or value != "/" and value.endswith("/")
        or any(p in (".", "..") for p in parts)
        or not all(_PATH_PART.match(p) for p in parts[1:] if p or value != "/")
        or "//" in value
    ):
        raise ValidationError(
            "Enter an absolute path such as /opt/joget/wflow: letters, digits and . _ - + @ "
            "between slashes, no '..', no trailing slash.",
            code="invalid_path",
        )
    if (value == "/" or value in SYSTEM_DIRECTORIES or any(d.startswith(value + "/") for d in SYSTEM_DIRECTORIES)
            or any(value.startswith(t + "/") for t in SYSTEM_TREES)):
        raise ValidationError(
            f"{value} is a system directory, holds one or lies inside one: the console makes the service user "
            "own what it installs there. Use a directory of its own, such as /opt/joget or /srv/wflow.",
            code="system_path",
        )


def validate_jvm_route(value: str) -> None:
    if not _JVM_ROUTE.match(value or ""):
        raise ValidationError(
            "A jvmRoute is 1-32 letters, digits or underscores (e.g. node01); it ends "
            "up in session cookies and in the balancer's route= settings.",
            code="invalid_jvm_route",
        )


def validate_posix_user(value: str) -> None:
    if not _POSIX_USER.match(value or ""):
        raise ValidationError(
            "A user name is up to 32 lowercase letters, digits, '_' or '-', starting "
            "with a letter or '_'.",
            code="invalid_user",
        )


def validate_db_identifier(value: str) -> None:
    if not _DB_IDENT.match(value or ""):
        raise ValidationError(
            "Use letters, digits and underscores, starting with a letter or '_' "
            "(at most 64), e.g. jwdb.",
            code="invalid_db_identifier",
        )


def validate_db_user(value: str) -> None:
    if not _DB_IDENT.match(value or "") or len(value) > 32:
        raise ValidationError(
            "A database user is up to 32 letters, digits and underscores, starting "
            "with a letter or '_' (MySQL 5.5 allows 16; keep it short).",
            code="invalid_db_user",
        )


def validate_password(value: str) -> None:
    # Anything printable goes; the writers quote it. Control characters (C0, DEL, C1) would
    # break properties files and terminals, and NUL cannot cross a shell.
    # U+2028/U+2029 (Zl, Zp) are line breaks too for Python's splitlines() and for JavaScript.
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value or ""):
        raise ValidationError("A password cannot contain control characters or line breaks.", code="invalid_password")
    # The MySQL client reads option files in 4 KB lines: a longer password line would be cut, and its
    # rest read as options of its own (any option, e.g. plugin-dir). 256 characters stay far below.
    if len(value or "") > PASSWORD_MAX:
        raise ValidationError(f"A password can have at most {PASSWORD_MAX} characters.", code="invalid_password")
    # A lone surrogate (possible from JSON "\ud800") cannot be encoded: it would fail at save, not here.
    if any(unicodedata.category(c) == "Cs" for c in value or ""):
        raise ValidationError("A password cannot contain unpaired UTF-16 surrogates.", code="invalid_password")


def validate_cidr(value: str) -> None:
    if "%" in (value or ""):
        # ip_network() keeps any zone text ("fe80::%a b(rw)/64"), which would split the /etc/exports line.
        raise ValidationError("Enter the subnet without a zone (%interface), e.g. 10.0.0.0/24.", code="invalid_subnet")
    try:
        ipaddress.ip_network(value or "", strict=False)
    except ValueError:
        raise ValidationError("Enter a subnet such as 10.0.0.0/24.", code="invalid_subnet") from None


def validate_site_name(value: str) -> None:
    if not _SITE.match(value or ""):
        raise ValidationError("A site name is letters, digits, '.', '_' or '-' (e.g. jwsite).", code="invalid_site")


def validate_cookie_name(value: str) -> None:
    if not _COOKIE.match(value or ""):
        raise ValidationError(
            "A cookie name is letters, digits and underscores (e.g. JSESSIONID).", code="invalid_cookie"
        )


def validate_context_path(value: str) -> None:
    if not _CONTEXT.match(value or ""):
        raise ValidationError("A context path is '/' and a name, e.g. /jw.", code="invalid_context")


def validate_profile_name(value: str) -> None:
    if not _PROFILE.match(value or ""):
        raise ValidationError("A profile name is letters, digits, '_' or '-' (e.g. default).", code="invalid_profile")
