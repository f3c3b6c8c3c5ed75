from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

from deployments import overview
from nodes import urls as nodes_urls

# The cluster overview shows every app's part of a cluster, so its view is on the top floor (deployments); it
# keeps the nodes: name and the path that Cluster.get_absolute_url and every link use. After nodes' own
# patterns, so that clusters/new/ and clusters/import/ still match first.
nodes_patterns = [*nodes_urls.urlpatterns,
                  path("clusters/<slug:name>/", overview.cluster_detail, name="cluster_detail")]


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
    path("", include("deployments.urls")),
    path("", include("licensing.urls")),
    path("", include((nodes_patterns, nodes_urls.app_name))),
]
