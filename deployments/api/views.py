"""The REST API's endpoints: thin functions over the services the console's pages use.

Roles as on the pages (deployments/api/access.py): viewers read, operators start checks and deployments,
admins change the inventory. Errors in one format (deployments/api/errors.py).
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Min
from django.forms.models import model_to_dict
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import ParseError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from joget_cluster import uploads
from joget_cluster.access import Role, require_role
from licensing import services as licensing
from nodes import audit, overview
from nodes.forms import NodeForm
from nodes.models import CheckState, Cluster, Credential, Node
from nodes.status_views import node_rows
from nodes.status_views import summary as health_summary

from .. import checklist, engine, services
from ..models import CheckRun, Deployment, LogLine
from ..overview import deployment_summary
from ..wizard import ArtifactUploadForm
from . import serializers as s
from .errors import Conflict, invalid

LOG_PAGE = 1000  # log lines per answer; `more` says when to ask again at once
LOG_SETTLE = timedelta(seconds=2)  # while a deployment runs, lines are served this long after they were printed
ERRORS = {400: s.ErrorSerializer, 401: s.ErrorSerializer, 403: s.ErrorSerializer, 404: s.ErrorSerializer}
NOT_FOUND = {401: s.ErrorSerializer, 403: s.ErrorSerializer, 404: s.ErrorSerializer}


def _cluster(name: str) -> Cluster:
    return get_object_or_404(Cluster, name=name)


def _deployment(pk: int) -> Deployment:
    return get_object_or_404(Deployment.objects.select_related("cluster", "started_by"), pk=pk)


# -- clusters -----------------------------------------------------------------------------------------------

@extend_schema(responses={200: s.ClusterSerializer(many=True), **NOT_FOUND}, summary="Clusters")
@api_view(["GET"])
def cluster_list(request):
    clusters = Cluster.objects.annotate(node_count=Count("nodes")).order_by("name")
    return Response(s.ClusterSerializer(clusters, many=True).data)


@extend_schema(responses={200: s.ClusterDetailSerializer, **NOT_FOUND},
               summary="A cluster: its layers, their health, the last deployment and checklist")
@api_view(["GET"])
def cluster_detail(request, name):
    cluster = get_object_or_404(Cluster.objects.annotate(node_count=Count("nodes")), name=name)
    cluster.layers = {kind: cluster.layer(kind) for kind in Cluster.LAYERS}
    cluster.layer_health = overview.layer_health(cluster)
    latest = deployment_summary(cluster)
    cluster.latest_deployment = latest["deployment"] if latest else None
    check_run = cluster.check_runs.first()
    cluster.checklist_summary = {**checklist.summary(check_run), "id": check_run.pk if check_run else None}
    return Response(s.ClusterDetailSerializer(cluster).data)


@extend_schema(responses={200: s.HealthSerializer, **NOT_FOUND},
               summary="Health: per layer and per node, as the last check cycle stored it")
@api_view(["GET"])
def cluster_health(request, name):
    cluster = _cluster(name)
    rows = node_rows(cluster)
    cluster_states = list(CheckState.objects.filter(cluster=cluster, node__isnull=True))
    nodes = [{"name": r.name, "address": r.address, "state": r.state, "since": r.since,
              "problems": [{"check": c, "state": st, "detail": d} for c, st, d, _ in r.problems]}
             for r in rows]
    data = {"overall": health_summary(rows, cluster_states)["overall"], "layers": overview.layer_health(cluster),
            "nodes": nodes}
    return Response(s.HealthSerializer(data).data)


# -- nodes ----------------------------------------------------------------------------------------------------

def _node_form(request, cluster: Cluster, instance: Node | None = None) -> NodeForm:
    """The console's node form, fed from JSON: the same validators, the same messages. A POST starts from the
    values the empty form shows (the model's defaults), a PATCH from the node as stored; `credential` is given
    by name."""
    if instance is None:
        blank = NodeForm(cluster=cluster)
        data = {n: blank[n].value() for n in blank.fields if blank[n].value() not in (None, "")}
    else:
        data = {k: v for k, v in model_to_dict(instance, fields=NodeForm.Meta.fields).items() if v is not None}
        data["roles"] = instance.roles
    data.update(request.data)
    credential = data.get("credential")
    if isinstance(credential, str):
        found = Credential.objects.filter(name=credential).values_list("pk", flat=True).first()
        data["credential"] = found if found is not None else credential  # unknown: the form says so
    return NodeForm(data, instance=instance, cluster=cluster)


def _save_node(request, cluster: Cluster, instance: Node | None, created_status: int) -> Response:
    if not isinstance(request.data, dict):
        raise ParseError("The body must be a JSON object of the node's fields.")
    form = _node_form(request, cluster, instance)
    if not form.is_valid():
        return invalid(form.errors)
    creating = form.instance._state.adding
    node = form.save()
    audit.record(request, audit.Action.NODE_CREATED if creating else audit.Action.NODE_CHANGED, target=node,
                 details="" if creating else audit.changed_fields(form))
    return Response(s.NodeSerializer(node).data, status=created_status)


@extend_schema(methods=["GET"], responses={200: s.NodeSerializer(many=True), **NOT_FOUND},
               summary="Nodes of a cluster")
@extend_schema(methods=["POST"], request=s.NodeInputSerializer, responses={201: s.NodeSerializer, **ERRORS},
               summary="Add a node (admin)")
@api_view(["GET", "POST"])
def cluster_nodes(request, name):
    cluster = _cluster(name)
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        return _save_node(request, cluster, None, status.HTTP_201_CREATED)
    nodes = cluster.nodes.select_related("credential").order_by("name")
    return Response(s.NodeSerializer(nodes, many=True).data)


@extend_schema(methods=["GET"], responses={200: s.NodeSerializer, **NOT_FOUND}, summary="A node")
@extend_schema(methods=["PATCH"], request=s.NodeInputSerializer, responses={200: s.NodeSerializer, **ERRORS},
               summary="Change a node (admin): the fields given, validated as the node form does")
@api_view(["GET", "PATCH"])
def node_detail(request, name, node):
    obj = get_object_or_404(Node.objects.select_related("cluster", "credential"), cluster__name=name, name=node)
    if request.method == "PATCH":
        require_role(request, Role.ADMIN)
        return _save_node(request, obj.cluster, obj, status.HTTP_200_OK)
    return Response(s.NodeSerializer(obj).data)


# -- artifacts --------------------------------------------------------------------------------------------------

@extend_schema(methods=["GET"], responses={200: s.ArtifactSerializer(many=True), **NOT_FOUND},
               summary="Artifacts of a cluster (jw.war, Tomcat archive, schema) with size and SHA-256")
@extend_schema(methods=["POST"], request={"multipart/form-data": s.ArtifactUploadSerializer},
               responses={201: s.ArtifactSerializer, **ERRORS},
               summary="Upload an artifact (admin); it replaces the one of its kind, the next deployment installs it")
@api_view(["GET", "POST"])
@parser_classes([MultiPartParser])
def cluster_artifacts(request, name):
    cluster = _cluster(name)
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        form = ArtifactUploadForm(request.data, request.FILES)
        if not uploads.is_valid(request, form):
            return invalid(form.errors)
        art = services.store_artifact(request, cluster, form.cleaned_data["kind"], form.cleaned_data["file"])
        return Response(s.ArtifactSerializer(art).data, status=status.HTTP_201_CREATED)
    return Response(s.ArtifactSerializer(cluster.artifacts.all(), many=True).data)


# -- deployments ----------------------------------------------------------------------------------------------

@extend_schema(methods=["GET"], responses={200: s.DeploymentSerializer(many=True), **NOT_FOUND},
               summary="Deployments of a cluster, newest first (the last 50)")
@extend_schema(methods=["POST"], request=s.DeploymentStartSerializer,
               responses={201: s.DeploymentSerializer, 409: s.ConflictSerializer, **ERRORS},
               summary="Start a deployment or dry run (operator); 409 names the one running")
@api_view(["GET", "POST"])
def cluster_deployments(request, name):
    cluster = _cluster(name)
    if request.method == "GET":
        deployments = cluster.deployments.select_related("cluster", "started_by")[:50]
        return Response(s.DeploymentSerializer(deployments, many=True).data)
    body = s.DeploymentStartSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        dep = services.start_deployment(request, cluster, **body.validated_data)
    except engine.UnknownSteps as exc:
        return invalid({"steps": [str(exc)]})
    except engine.DeploymentRunning as exc:
        raise Conflict(str(exc), running_deployment=exc.running.pk) from None
    except engine.DeploymentRefused as exc:
        raise Conflict(str(exc)) from None
    return Response(s.DeploymentSerializer(dep).data, status=status.HTTP_201_CREATED)


@extend_schema(responses={200: s.DeploymentDetailSerializer, **NOT_FOUND},
               summary="A deployment: status (running, succeeded, failed, cancelled), recap, each step run")
@api_view(["GET"])
def deployment_detail(request, pk):
    dep = _deployment(pk)
    return Response(s.DeploymentDetailSerializer(dep).data)


@extend_schema(
    parameters=[OpenApiParameter("after", OpenApiTypes.INT, description="The last line id you have; 0: from the "
                                 "start. Each line comes once.")],
    responses={200: s.LogPageSerializer, **ERRORS}, summary="Log lines of a deployment, after a cursor")
@api_view(["GET"])
def deployment_log(request, pk):
    dep = _deployment(pk)
    raw = request.query_params.get("after", "0")
    if not raw.isdigit():
        return invalid({"after": ["A line id: a whole number, 0 or more."]})
    after = int(raw)
    # Read the status first: lines written before it said "finished" are all in the query below.
    active = Deployment.objects.filter(pk=dep.pk, status=Deployment.Status.RUNNING).exists()
    lines = LogLine.objects.filter(run__deployment=dep, id__gt=after)
    if active:
        # Step threads write lines in concurrent transactions: a lower id can commit just after a higher one.
        # Serve only ids below the first line printed in the last LOG_SETTLE (those have been written and
        # committed), so the cursor never passes a line that is not visible yet. Not a filter on time itself:
        # within one write, ids follow the nodes, not the time, and a time filter would leave holes.
        recent = lines.filter(time__gt=timezone.now() - LOG_SETTLE).aggregate(first=Min("id"))["first"]
        if recent is not None:
            lines = lines.filter(id__lt=recent)
    lines = list(lines.select_related("run__node").order_by("id")[:LOG_PAGE + 1])
    more = len(lines) > LOG_PAGE
    lines = lines[:LOG_PAGE]
    dep.refresh_from_db(fields=["status"])
    data = {"lines": lines, "next_after": lines[-1].id if lines else after, "more": more,
            "finished": not active and not more, "status": dep.status}
    return Response(s.LogPageSerializer(data).data)


def _lever(request, pk, action) -> Response:
    dep = _deployment(pk)
    try:
        action(request, dep)
    except engine.DeploymentRunning as exc:
        raise Conflict(str(exc), running_deployment=exc.running.pk) from None
    except engine.DeploymentRefused as exc:
        raise Conflict(str(exc)) from None
    dep.refresh_from_db()
    return Response(s.DeploymentSerializer(dep).data)


LEVER = {200: s.DeploymentSerializer, 409: s.ConflictSerializer, **ERRORS}


@extend_schema(request=None, responses=LEVER, summary="Cancel a running deployment (operator)")
@api_view(["POST"])
def deployment_cancel(request, pk):
    return _lever(request, pk, services.cancel_deployment)


@extend_schema(request=None, responses=LEVER, summary="Resume a deployment from its failed steps (operator)")
@api_view(["POST"])
def deployment_resume(request, pk):
    return _lever(request, pk, services.resume_deployment)


@extend_schema(request=s.RetrySerializer, responses=LEVER, summary="Retry one step where it failed (operator)")
@api_view(["POST"])
def deployment_retry(request, pk):
    body = s.RetrySerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return _lever(request, pk, lambda req, dep: services.retry_step(req, dep, body.validated_data["step"]))


# -- checklist ------------------------------------------------------------------------------------------------

@extend_schema(methods=["GET"], responses={200: s.CheckRunSerializer(many=True), **NOT_FOUND},
               summary="Checklist runs of a cluster, newest first (the last 20)")
@extend_schema(methods=["POST"], request=None, responses={201: s.CheckRunSerializer, **ERRORS},
               summary="Run the prerequisite checklist (operator); results fill in as the checks end")
@api_view(["GET", "POST"])
def cluster_checklist(request, name):
    cluster = _cluster(name)
    if request.method == "POST":
        run = services.start_checklist(request, cluster)
        return Response(s.CheckRunSerializer(run).data, status=status.HTTP_201_CREATED)
    runs = cluster.check_runs.select_related("cluster", "started_by").prefetch_related("results__node")[:20]
    return Response(s.CheckRunSerializer(runs, many=True).data)


@extend_schema(responses={200: s.CheckRunSerializer, **NOT_FOUND}, summary="One checklist run and its results")
@api_view(["GET"])
def checklist_detail(request, pk):
    run = get_object_or_404(CheckRun.objects.select_related("cluster", "started_by"), pk=pk)
    return Response(s.CheckRunSerializer(run).data)


# -- licensing ------------------------------------------------------------------------------------------------

@extend_schema(
    parameters=[OpenApiParameter("format", str, enum=["json", "csv"], description="csv: the console's CSV export.")],
    responses={200: OpenApiResponse(s.SystemKeySerializer(many=True), description="JSON, or text/csv with "
                                    "?format=csv"), **NOT_FOUND},
    summary="System keys of the app servers, as last read from each node")
@api_view(["GET"])
def system_keys(request, name):
    cluster = _cluster(name)
    if request.query_params.get("format") == "csv":
        response = HttpResponse(licensing.export_csv(cluster), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="system-keys-{cluster.name}.csv"'
        return response
    return Response(s.SystemKeySerializer(licensing.export_rows(cluster), many=True).data)
