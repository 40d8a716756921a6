"""Render a stack's azure-native resources as an ARM template, so ARM scanners (checkov) read it.

Inputs captured under the mocks already carry ARM's camelCase property names: azure-native
flattens ARM's `properties` envelope into the resource's inputs and adds the URL path parameters
(resource group, parent names). Rendering therefore means: put the envelope keys (location, kind,
sku, identity...) at the top, rebuild the ARM name from the path parameters, drop the resource
group, and put everything else back under `properties`.

The API version comes from the installed SDK (each resource module states the Azure REST API
version it was generated from); the ARM resource type and name segments, which the Python SDK
does not carry, come from the one resource-type table in review/resource_types.py.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from review.model import Resource
from review.resource_types import (
    PROVIDER_PREFIX,
    ResourceType,
    UnmappedTypeError,
    arm_type,
    is_azure_native,
    name_segments,
    resource_type,
)

__all__ = ["UnmappedTypeError", "api_version", "mapping_for", "render_resource",
           "render_template"]

TEMPLATE_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
ENVELOPE_KEYS = frozenset(
    {"location", "kind", "sku", "identity", "tags", "zones", "extendedLocation", "plan"}
)
PATH_PARAMETERS = frozenset({"resourceGroupName"})


def mapping_for(type_token: str) -> ResourceType:
    """The table entry of an azure-native type (review/resource_types.py)."""
    return resource_type(type_token)


@cache
def api_version(resource_type: str) -> str:
    """The Azure REST API version the installed SDK's resource class was generated from."""
    module_name, class_name = resource_type.removeprefix(PROVIDER_PREFIX).split(":")
    module = importlib.import_module(f"pulumi_azure_native.{module_name}")
    source = inspect.getsource(inspect.getmodule(getattr(module, class_name)))
    found = re.search(r"Uses Azure REST API version ([0-9]{4}-[0-9]{2}-[0-9]{2}[\w-]*)", source)
    if not found:
        raise LookupError(f"{resource_type}: the SDK does not state its Azure REST API version")
    return found.group(1)


def arm_name(mapping: ResourceType, resource: Resource) -> str:
    try:
        return "/".join(name_segments(mapping, resource.inputs, resource.name))
    except ValueError as error:
        raise ValueError(f"{resource.ref}: {error}") from None


def render_resource(resource: Resource, skips: list[str] | None = None) -> dict[str, Any]:
    mapping = mapping_for(resource.type)
    not_properties = (set(mapping.name) | PATH_PARAMETERS | mapping.drop) - mapping.keep
    if mapping.scope:
        not_properties.add(mapping.scope)
    rendered: dict[str, Any] = {
        "type": arm_type(mapping, resource.inputs),
        "apiVersion": api_version(resource.type),
        "name": arm_name(mapping, resource),
    }
    properties: dict[str, Any] = {}
    for key, value in resource.inputs.items():
        if key in not_properties:
            continue
        if key in ENVELOPE_KEYS and key not in mapping.keep:
            rendered[key] = value
        elif key == "properties" and isinstance(value, Mapping):
            properties.update(value)
        else:
            properties[mapping.rename.get(key, key)] = value
    if mapping.scope and resource.inputs.get(mapping.scope):
        rendered["scope"] = resource.inputs[mapping.scope]
    if properties:
        rendered["properties"] = properties
    # checkov reads suppressions from the resource's metadata: "CKV_ID: justification".
    rendered["metadata"] = {"pulumi": resource.ref, **({"checkov": skips} if skips else {})}
    return rendered


def render_template(resources: list[Resource],
                    skips_for: Any = lambda resource: []) -> dict[str, Any]:
    """An ARM deployment template of every azure-native resource (other providers, and
    data-plane objects such as blobs, have no ARM)."""
    return {
        "$schema": TEMPLATE_SCHEMA,
        "contentVersion": "1.0.0.0",
        "resources": [
            render_resource(r, skips_for(r)) for r in resources
            if is_azure_native(r.type) and mapping_for(r.type).in_arm
        ],
    }
