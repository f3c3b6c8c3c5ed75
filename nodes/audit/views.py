"""The audit trail page: read-only, for operators and admins (viewers see no
user names or addresses)."""

from django import forms
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from joget_cluster.access import operator_required

from ..models import AuditEvent, Cluster

PAGE_SIZE = 50


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(choices=[("", "any action"), *AuditEvent.Action.choices], required=False)
    user = forms.CharField(required=False, max_length=150)
    cluster = forms.CharField(required=False, max_length=63)
    since = forms.DateField(required=False, label="from", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The 'from' date is after the 'to' date.")
        return data


def filtered_events(form: AuditFilterForm):
    """The events the form's valid fields select (an invalid field filters nothing)."""
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    qs = AuditEvent.objects.all()
    if data.get("action"):
        qs = qs.filter(action=data["action"])
    if data.get("user"):
        qs = qs.filter(username__iexact=data["user"].strip())
    if data.get("cluster"):
        qs = qs.filter(cluster=data["cluster"].strip())
    if data.get("since"):
        qs = qs.filter(time__date__gte=data["since"])
    if data.get("until"):
        qs = qs.filter(time__date__lte=data["until"])
    return qs


@require_GET
@operator_required
def audit_list(request):
    form = AuditFilterForm(request.GET or None)
    page = Paginator(filtered_events(form), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    ctx = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "usernames": get_user_model().objects.order_by("username").values_list("username", flat=True),
        "clusters": sorted(set(Cluster.objects.values_list("name", flat=True))
                           | set(AuditEvent.objects.exclude(cluster="").order_by()
                                 .values_list("cluster", flat=True).distinct())),
    }
    return render(request, "nodes/audit_list.html", ctx)
