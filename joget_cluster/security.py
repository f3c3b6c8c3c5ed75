"""Web hardening that Django 5.2 does not do by itself: the Content-Security-Policy
header, and the login page shown during a django-axes lockout."""

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render


class ContentSecurityPolicyMiddleware:
    """One fixed policy on every response (Django 6 has this built in; 5.2 does not,
    and one constant header needs no package). A view may set its own header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (f"Too many failed logins for this user name from your address: logging in is refused for "
            f"{minutes} minutes. Wait, or ask an admin to unlock it (manage.py axes_reset_username NAME).")


class _LockedOutForm(AuthenticationForm):
    # Shows the posted user name and the lockout as the form's error, without authenticating again.
    def clean(self):
        raise forms.ValidationError(lockout_message(), code="locked_out")


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the login page again, with the reason, as 429."""
    form = _LockedOutForm(request, data={"username": (credentials or {}).get("username", "")})
    form.is_valid()
    return render(request, "registration/login.html", {"form": form, "next": request.POST.get("next", "")},
                  status=429)
