"""Kubernetes' official object schemas, loaded from data published on PyPI.

The ``kubernetes-validate`` package ships the official Kubernetes OpenAPI
definitions (one JSON document per release, as JSON Schema ``$defs``). We read
the v1.32 document once and turn it back into OpenAPI v2 shape:

* ``$ref: "#/$defs/NAME"`` becomes ``$ref: "#/definitions/NAME"``;
* nullable types (``["string", "null"]``) become plain ``type: string``;
* ``IntOrString`` and ``Quantity`` get upstream's ``format: int-or-string`` /
  ``quantity`` string form.

Everything else (descriptions, ``x-kubernetes-patch-merge-key``,
``x-kubernetes-patch-strategy``, ``x-kubernetes-group-version-kind``, list types)
is kept as published. OpenAPI documents, strict field validation and the
strategic-merge patch all read schemas through this module.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import orjson

K8S_SCHEMA_VERSION = "v1.32.0"

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _convert(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out[k] = v.replace("#/$defs/", "#/definitions/")
            elif k == "type" and isinstance(v, list):
                types = [t for t in v if t != "null"]
                out[k] = types[0] if len(types) == 1 else types
            elif k == "enum" and isinstance(v, list):
                out[k] = [e for e in v if e is not None]
            else:
                out[k] = _convert(v)
        return out
    if isinstance(node, list):
        return [_convert(x) for x in node]
    return node


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """All definitions in OpenAPI v2 form, keyed by name (``io.k8s.api.apps.v1.Deployment``)."""
    # Locate the data without importing the package (its __init__ pulls in jsonschema: ~150 ms at start-up).
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the kubernetes-validate package (official Kubernetes schemas) is not installed")
    base = Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema" / \
        f"{K8S_SCHEMA_VERSION}-local" / "_definitions.json"
    raw = orjson.loads(base.read_bytes())["$defs"]
    defs: dict[str, dict[str, Any]] = {name: _convert(s) for name, s in raw.items()}
    defs[INT_OR_STRING] = {"type": "string", "format": "int-or-string"}
    defs[QUANTITY] = {
        "type": "string",
        "format": "quantity",
        "description": defs.get(QUANTITY, {}).get("description", "Quantity is a fixed-point representation of a number."),
    }
    for d in defs.values():
        # The published data drops "type: object" from some definitions; OpenAPI consumers want it.
        if "properties" in d and "type" not in d:
            d["type"] = "object"
        # Kinds are written as enums in the JSON-schema form; OpenAPI has them as plain strings.
        for p in ("apiVersion", "kind"):
            prop = d.get("properties", {}).get(p)
            if isinstance(prop, dict):
                prop.pop("enum", None)
    return defs


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    idx: dict[tuple[str, str, str], str] = {}
    for name, d in definitions().items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
            # Prefer the real type over meta/v1 DeleteOptions/WatchEvent aliases listed for many GVKs.
            if key not in idx or not name.startswith("io.k8s.apimachinery"):
                idx[key] = name
    return idx


def definition_name(group: str, version: str, kind: str) -> str | None:
    """Definition name for a kind, e.g. ("apps", "v1", "Deployment") -> io.k8s.api.apps.v1.Deployment."""
    return _gvk_index().get((group, version, kind))


def get(name: str) -> dict[str, Any]:
    return definitions()[name]


def deref(schema: dict[str, Any] | None) -> dict[str, Any]:
    """Follow ``$ref`` (repeatedly) to the schema it names; ``{}`` for None or unknown refs."""
    seen = 0
    while schema and "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        schema = definitions().get(ref.rsplit("/", 1)[-1], {})
        seen += 1
    return schema or {}


def for_kind(group: str, version: str, kind: str) -> dict[str, Any]:
    name = definition_name(group, version, kind)
    return definitions()[name] if name else {}


def property_schema(schema: dict[str, Any], field: str) -> dict[str, Any]:
    """The (dereferenced) schema of one property of an object schema, ``{}`` if unknown."""
    s = deref(schema)
    props = s.get("properties")
    if props and field in props:
        return deref(props[field])
    ap = s.get("additionalProperties")
    if isinstance(ap, dict):
        return deref(ap)
    return {}


def items_schema(schema: dict[str, Any]) -> dict[str, Any]:
    s = deref(schema)
    it = s.get("items")
    return deref(it) if isinstance(it, dict) else {}
