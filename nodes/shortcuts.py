"""The lookups every app's views make: a cluster or a node by the names in the URL, else 404."""

from django.shortcuts import get_object_or_404

from .models import Cluster, Node


def get_cluster_or_404(name: str) -> Cluster:
    return get_object_or_404(Cluster, name=name)


def get_node_or_404(cluster_name: str, node_name: str) -> Node:
    return get_object_or_404(Node.objects.select_related("cluster"), cluster__name=cluster_name, name=node_name)
