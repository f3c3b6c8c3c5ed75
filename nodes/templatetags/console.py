from django import template

from nodes import models, ssh

register = template.Library()


@register.filter
def fingerprint(host_key: str) -> str:
    if not host_key:
        return ""
    try:
        return ssh.fingerprint(host_key)
    except ssh.SSHError as exc:
        return str(exc)


@register.filter
def filesize(n) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@register.filter
def role(name: str) -> str:
    return name.replace("_", " ")


@register.filter
def health_css(state: str) -> str:
    """A health state's colour class, as every status badge draws it."""
    return models.health_css(state)
