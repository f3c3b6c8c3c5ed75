from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

from deployments.api import token_views


@login_not_required
def healthz(request):
    # For the load balancer / compose healthcheck: the process answers.
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    # Browsers ask for /favicon.ico whatever the page links: send them to the icon the pages link.
    path("favicon.ico", login_not_required(RedirectView.as_view(url=static("favicon.svg"), permanent=True))),
    path("admin/", admin.site.urls),
    path("api/v1/", include("deployments.api.urls")),
    path("profile/api-tokens/", token_views.token_list, name="api_tokens"),
    path("profile/api-tokens/<slug:key_id>/revoke/", token_views.token_revoke, name="api_token_revoke"),
    path("", include("deployments.urls")),
    path("", include("licensing.urls")),
    path("", include("nodes.urls")),
]
