"""Licensing warnings for pages of other apps (cluster page, deployments page): one include each."""

from django import template

from licensing import services

register = template.Library()


@register.simple_tag
def license_void_nodes(cluster):
    """App servers whose license is void because their system key changed."""
    return [lic.node.name for lic in services.void_licenses(cluster)]


@register.simple_tag
def license_profile_warning(cluster):
    return services.profile_change_warning(cluster)
