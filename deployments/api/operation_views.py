"""The API's day-2 operations on a serving cluster: rolling restart, rolling upgrade (upload the new jw.war and
start the roll in one call), rollback, the app servers' member states in the balancer (read and set), and an app
server added or removed (scale out and in).

The same services as the cluster page's buttons and `manage.py operate` (services.start_operation, start_upgrade,
set_member_state), the same roles (operators operate; an upgrade also needs the admin role, as on the page: it
replaces the cluster's jw.war), the same audit trail (with the token's name). Each answers 201 with its run (a
deployment): follow it at /deployments/{id}/ and /deployments/{id}/log/.

Another operation is its options' serializer (serializers.py), a view that validates them and calls its service
inside `_started`, and a URL: `_started` turns the service's refusals into the API's errors.
"""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from joget_cluster import uploads
from joget_cluster.access import Role, require_role
from nodes.models import Cluster, Node

from .. import engine, services
from ..models import Deployment
from ..operate_views import member_rows
from . import serializers as s
from .errors import Conflict, invalid

Operation = Deployment.Operation
STARTED = {201: s.DeploymentSerializer, 400: s.ErrorSerializer, 401: s.ErrorSerializer, 403: s.ErrorSerializer,
           404: s.ErrorSerializer, 409: s.ConflictSerializer}


def _cluster(name: str) -> Cluster:
    return get_object_or_404(Cluster, name=name)


def _options(serializer_class, request) -> dict:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


def _started(start) -> Response:
    """Call a service's start and answer 201 with the run it started. A wrong option (a WAR of another major
    version, an unknown node, too big a batch) is a 400 on that field with the reason as `detail`; a refusal for
    the cluster's state a 409, naming the run going on when that is why."""
    try:
        dep = start()
    except engine.InvalidOption as exc:
        return invalid({exc.field: [str(exc)]}, detail=str(exc))
    except engine.DeploymentRunning as exc:
        raise Conflict(str(exc), running_deployment=exc.running.pk) from None
    except engine.DeploymentRefused as exc:
        raise Conflict(str(exc)) from None
    return Response(s.DeploymentSerializer(dep).data, status=status.HTTP_201_CREATED)


@extend_schema(request=s.RestartSerializer, responses=STARTED,
               summary="Rolling restart (operator): the app servers (or `nodes`) one batch at a time, each out of the "
                       "balancer until it serves again; 201 with the run, 409 names the run going on")
@api_view(["POST"])
def cluster_restart(request, name):
    cluster = _cluster(name)
    options = _options(s.RestartSerializer, request)
    return _started(lambda: services.start_operation(request, cluster, Operation.RESTART, **options))


@extend_schema(request={"multipart/form-data": s.UpgradeSerializer}, responses=STARTED,
               summary="Upload a jw.war and roll it out (admin): the same Joget major version (else 400 with the "
                       "reason); the cluster is backed up first in the same run (unless `no_backup` or the cluster's "
                       "setting is off); the WAR it replaces is kept for a rollback; 201 with the run")
@api_view(["POST"])
@parser_classes([MultiPartParser])
def cluster_upgrade(request, name):
    cluster = _cluster(name)
    require_role(request, Role.ADMIN)  # it replaces the cluster's jw.war: artifacts are the admin's
    request.data  # noqa: B018 - parses the body: the size-limit handler marks a file it dropped
    if "war" in getattr(request, "uploads_refused", ()):
        return invalid({"war": [uploads.too_large("file", settings.UPLOAD_MAX_BYTES, "UPLOAD_MAX_MB")]})
    options = _options(s.UpgradeSerializer, request)
    return _started(lambda: services.start_upgrade(request, cluster, options["war"], batch=options["batch"],
                                                   backup_first=False if options["no_backup"] else None))


@extend_schema(request=s.RollbackSerializer, responses=STARTED,
               summary="Roll back to the previous jw.war (operator), node by node; 409 when there is none")
@api_view(["POST"])
def cluster_rollback(request, name):
    cluster = _cluster(name)
    options = _options(s.RollbackSerializer, request)
    return _started(lambda: services.start_operation(request, cluster, Operation.ROLLBACK, **options))


@extend_schema(responses={200: s.MembersSerializer, 401: s.ErrorSerializer, 403: s.ErrorSerializer,
                          404: s.ErrorSerializer},
               summary="The app servers in the balancer: the state the console keeps, and what balancer-manager "
                       "reports now (status, requests in flight)")
@api_view(["GET"])
def cluster_members(request, name):
    rows, error = member_rows(_cluster(name))
    return Response(s.MembersSerializer({"members": rows, "error": error}).data)


@extend_schema(request=s.MemberStateSerializer, responses=STARTED,
               summary="Set an app server's member state in the balancer (operator): enabled, disabled or drain, at "
                       "runtime and in the balancer's site file; 201 with the run that applies it")
@api_view(["POST"])
def node_member_state(request, name, node):
    target = get_object_or_404(Node.objects.select_related("cluster"), cluster__name=name, name=node)
    options = _options(s.MemberStateSerializer, request)
    return _started(lambda: services.set_member_state(request, target, options["state"]))


@extend_schema(request=s.AddNodeSerializer, responses=STARTED,
               summary="Add an app server to the serving cluster (admin: it changes the inventory): its own steps on "
                       "it alone, the others' static member lists rolled, the balancer's member added (graceful), "
                       "after a backup (unless `no_backup` or the cluster's setting is off); 201 "
                       "with the run; 400 on the field at fault (a node of that name already: nothing changed)")
@api_view(["POST"])
def cluster_add_node(request, name):
    cluster = _cluster(name)
    require_role(request, Role.ADMIN)
    options = _options(s.AddNodeSerializer, request)
    first = False if options.pop("no_backup") else None
    return _started(lambda: services.start_scale(request, cluster, Operation.SCALE_OUT, backup_first=first, **options))


@extend_schema(request=s.RemoveNodeSerializer, responses=STARTED,
               summary="Remove an app server (admin): out of the balancer, stopped, its member removed (graceful), "
                       "static member lists rolled, then it leaves the cluster; 400 for an unknown node, 409 for the "
                       "last app server, a database, balancer or file server (the reason says what it would mean)")
@api_view(["POST"])
def cluster_remove_node(request, name):
    cluster = _cluster(name)
    require_role(request, Role.ADMIN)
    options = _options(s.RemoveNodeSerializer, request)
    return _started(lambda: services.start_scale(request, cluster, Operation.SCALE_IN, node=options["node"],
                                                 backup_first=False if options["no_backup"] else None))
