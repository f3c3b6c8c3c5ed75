"""The API's backups, restores and drift: the same service functions as the Backups page
(deployments/services.py), the same roles (viewers read; operators back up, restore, check and repair),
errors in the API's one format (a 409 names the run going on)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from nodes.models import Cluster

from .. import backups, drift, engine, services
from ..models import Backup
from . import serializers as s
from .errors import Conflict, invalid

ERRORS = {400: s.ErrorSerializer, 401: s.ErrorSerializer, 403: s.ErrorSerializer, 404: s.ErrorSerializer,
          409: s.ConflictSerializer}
NOT_FOUND = {401: s.ErrorSerializer, 403: s.ErrorSerializer, 404: s.ErrorSerializer}


def _cluster(name: str) -> Cluster:
    return get_object_or_404(Cluster, name=name)


def _backup_data(backup: Backup) -> dict:
    return s.BackupSerializer({**backups.summary(backup), "deployment": backup.deployment_id}).data


def _start(action):
    """Run a service's start; a refusal is a 409, naming the run going on when that is why."""
    try:
        return action()
    except engine.DeploymentRunning as exc:
        raise Conflict(str(exc), running_deployment=exc.running.pk) from None
    except engine.DeploymentRefused as exc:
        raise Conflict(str(exc)) from None


@extend_schema(methods=["GET"], responses={200: s.BackupSerializer(many=True), **NOT_FOUND},
               summary="Backups of a cluster, newest first (the last 100), as `manage.py backups` lists them")
@extend_schema(methods=["POST"], request=None, responses={201: s.BackupSerializer, **ERRORS},
               summary="Back the cluster up now (operator); `deployment` is the run; 409 names the run going on")
@api_view(["GET", "POST"])
def cluster_backups(request, name):
    cluster = _cluster(name)
    if request.method == "POST":
        backup = _start(lambda: services.start_backup(request, cluster))
        return Response(_backup_data(backup), status=status.HTTP_201_CREATED)
    return Response([_backup_data(b) for b in cluster.backups.all()[:100]])


@extend_schema(responses={200: s.BackupSerializer, **NOT_FOUND}, summary="One backup: state, sizes, sha256s")
@api_view(["GET"])
def backup_detail(request, name, backup_id):
    backup = get_object_or_404(Backup.objects.select_related("cluster"), cluster__name=name, backup_id=backup_id)
    return Response(_backup_data(backup))


@extend_schema(request=s.RestoreStartSerializer, responses={201: s.RestoreSerializer, **ERRORS},
               summary="Restore a complete backup (operator): the app servers stop. `confirm` must be the "
                       "cluster's name; `deployment` is the run")
@api_view(["POST"])
def backup_restore(request, name, backup_id):
    backup = get_object_or_404(Backup.objects.select_related("cluster"), cluster__name=name, backup_id=backup_id)
    body = s.RestoreStartSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        restore = _start(lambda: services.start_restore(request, backup, **body.validated_data))
    except services.NotConfirmed as exc:
        return invalid({"confirm": [str(exc)]})
    return Response(s.RestoreSerializer(restore).data, status=status.HTTP_201_CREATED)


def _check_data(check) -> dict:
    check.drifted_steps = drift.drifted_steps(check)
    return s.DriftCheckSerializer(check).data


@extend_schema(methods=["GET"], responses={200: s.DriftCheckSerializer, **NOT_FOUND},
               summary="The latest drift check and its findings (404 when the cluster has none yet)")
@extend_schema(methods=["POST"], request=s.DriftStartSerializer, responses={201: s.DriftStartedSerializer, **ERRORS},
               summary="Check for drift, or with `repair` deploy the drifted steps (operator); 409 when refused")
@api_view(["GET", "POST"])
def cluster_drift(request, name):
    cluster = _cluster(name)
    if request.method == "GET":
        check = drift.latest(cluster)
        if check is None:
            raise NotFound(f"Cluster {cluster.name} has no drift check yet.")
        return Response(_check_data(check))
    body = s.DriftStartSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    if body.validated_data["repair"]:
        dep = _start(lambda: services.repair_drift(request, cluster))
        data = {"deployment": dep.pk, "drift_check": None, "steps": dep.steps}
    else:
        check = _start(lambda: services.start_drift_check(request, cluster))
        data = {"deployment": check.deployment_id, "drift_check": check.pk, "steps": []}
    return Response(s.DriftStartedSerializer(data).data, status=status.HTTP_201_CREATED)
