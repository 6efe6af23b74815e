"""Server-side unknown-field detection (``fieldValidation=Strict|Warn``).

kube-apiserver decodes request bodies into Go structs with a strict JSON
decoder; every key that matches no struct field becomes an error such as
``unknown field "spec.template.spec.containers[0].imagee"``. Paths name struct
fields and map keys with ``.`` and list items with ``[i]``; the top-level field
has no leading dot. Errors are listed in body order, de-duplicated and capped at
100. ``Strict`` turns them into one 400 BadRequest
(``strict decoding error: unknown field "a", unknown field "b"``), ``Warn``
sends each as a ``Warning`` header.

We have no Go structs, so the published OpenAPI schema stands in for them. Each
definition is compiled once, on first use, into a small :class:`_Node` tree:

* ``OBJECT`` – a struct: a dict of known property names to child nodes; other
  keys are reported;
* ``MAP`` – ``additionalProperties``: any key, each value checked against one node;
* ``LIST`` – ``items``: each element checked against one node;
* ``ANY`` – scalars, ``x-kubernetes-preserve-unknown-fields`` and opaque types
  with no declared properties (RawExtension, FieldsV1): nothing to check.

Nodes for ``$ref`` targets are shared per definition (so recursive schemas
compile to cyclic graphs), which makes a check a plain walk over the object with
dict look-ups: a Deployment takes tens of microseconds. Values of the wrong JSON
type (a string where an object is expected) are not this module's concern and
are skipped.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import orjson

from tinykube.api import errors, schema

MAX_ERRORS = 100  # kube-apiserver's strict decoder stops collecting here

ANY, OBJECT, MAP, LIST = 0, 1, 2, 3


class _Node:
    __slots__ = ("item", "kind", "props")

    def __init__(self, kind: int = ANY) -> None:
        self.kind = kind
        self.props: dict[str, _Node] = {}
        self.item: _Node = self  # the element/value node of a LIST/MAP, set by the compiler


_OPEN = _Node(ANY)

_by_def: dict[str, _Node] = {}


def _def_node(name: str) -> _Node:
    node = _by_def.get(name)
    if node is not None:
        return node
    node = _by_def[name] = _Node(ANY)  # placeholder first: definitions may refer to themselves
    _fill(node, schema.definitions().get(name, {}))
    return node


def _compile(s: dict[str, Any]) -> _Node:
    ref = s.get("$ref")
    if isinstance(ref, str):
        return _def_node(ref.rsplit("/", 1)[-1])
    node = _Node(ANY)
    _fill(node, s)
    return node if node.kind != ANY else _OPEN


def _fill(node: _Node, s: dict[str, Any]) -> None:
    if s.get("x-kubernetes-preserve-unknown-fields"):
        node.kind = ANY
        return
    props = s.get("properties")
    if isinstance(props, dict) and props:
        node.kind = OBJECT
        node.props = {k: _compile(v) if isinstance(v, dict) else _OPEN for k, v in props.items()}
        return
    ap = s.get("additionalProperties")
    if isinstance(ap, dict):
        child = _compile(ap)
        if child.kind != ANY:
            node.kind, node.item = MAP, child
        return
    items = s.get("items")
    if isinstance(items, dict):
        child = _compile(items)
        if child.kind != ANY:
            node.kind, node.item = LIST, child


_lock = threading.Lock()


@functools.cache
def _kind_node(group: str, version: str, kind: str) -> _Node | None:
    name = schema.definition_name(group, version, kind)
    if not name:
        return None
    with _lock:  # a half-compiled graph must not be walked by another thread
        return _def_node(name)


def _walk(node: _Node, value: Any, path: str, out: list[str]) -> None:
    kind = node.kind
    if kind == OBJECT:
        if type(value) is not dict:
            return
        props = node.props
        for key, v in value.items():
            child = props.get(key)
            if child is None:
                if len(out) < MAX_ERRORS:
                    out.append(f"{path}.{key}" if path else key)
            elif child.kind != ANY and v is not None:
                _walk(child, v, f"{path}.{key}" if path else key, out)
    elif kind == LIST:
        if type(value) is not list:
            return
        item = node.item
        for i, v in enumerate(value):
            if v is not None:
                _walk(item, v, f"{path}[{i}]", out)
    elif kind == MAP:
        if type(value) is not dict:
            return
        item = node.item
        for key, v in value.items():
            if v is not None:
                _walk(item, v, f"{path}.{key}" if path else key, out)


def _any_unknown(node: _Node, value: Any) -> bool:
    """Whether :func:`_walk` would find anything (the common answer, no, without building paths)."""
    kind = node.kind
    if kind == OBJECT:
        if type(value) is not dict:
            return False
        props = node.props
        for key, v in value.items():
            child = props.get(key)
            if child is None:
                return True
            if v is not None and child.kind != ANY and _any_unknown(child, v):
                return True
    elif kind == LIST:
        if type(value) is not list:
            return False
        item = node.item
        for v in value:
            if v is not None and _any_unknown(item, v):
                return True
    elif kind == MAP:
        if type(value) is not dict:
            return False
        item = node.item
        for v in value.values():
            if v is not None and _any_unknown(item, v):
                return True
    return False


def unknown_fields(group: str, version: str, kind: str, obj: dict[str, Any]) -> list[str]:
    """Paths of the fields in ``obj`` that the kind's schema does not declare, in body order.

    ``[]`` when everything is known or the kind has no published schema.
    """
    node = _kind_node(group, version, kind)
    if node is None or not _any_unknown(node, obj):
        return []
    out: list[str] = []
    _walk(node, obj, "", out)
    return out


def _prune(node: _Node, value: Any) -> None:
    kind = node.kind
    if kind == OBJECT:
        if type(value) is not dict:
            return
        props = node.props
        for key in [k for k in value if k not in props]:
            del value[key]
        for key, v in value.items():
            child = props[key]
            if child.kind != ANY and v is not None:
                _prune(child, v)
    elif kind in (LIST, MAP):
        if type(value) not in (list, dict):
            return
        item = node.item
        for v in value if type(value) is list else value.values():
            if v is not None:
                _prune(item, v)


def prune_unknown(group: str, version: str, kind: str, obj: dict[str, Any]) -> None:
    """Drop, in place, the fields the kind's schema does not declare (what decoding into Kubernetes' typed
    structs does when fieldValidation is Warn or Ignore)."""
    node = _kind_node(group, version, kind)
    if node is not None:
        _prune(node, obj)


def _quote(s: str) -> str:
    """Go's ``%q`` for a field path (JSON string quoting agrees for everything a path can hold)."""
    return orjson.dumps(s).decode()


def _message(paths: list[str]) -> str:
    return "strict decoding error: " + ", ".join(f"unknown field {_quote(p)}" for p in paths)


def strict_error(paths: list[str], kind: str = "", version: str = "") -> errors.ApiError:
    """The 400 BadRequest of ``fieldValidation=Strict``.

    Without ``kind`` the message is the bare decoder error, as kube-apiserver returns it
    for PATCH: ``strict decoding error: unknown field "spec.foo"``. With ``kind`` and
    ``version`` (the body's kind and version, e.g. ``Deployment``/``v1``) it carries the
    prefix create and update requests get:
    ``Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: ...``.
    """
    msg = _message(paths)
    if kind:
        msg = f"{kind} in version {_quote(version)} cannot be handled as a {kind}: {msg}"
    return errors.bad_request(msg)


def warnings(paths: list[str]) -> list[str]:
    """``Warning`` header texts for ``fieldValidation=Warn`` (one per unknown field)."""
    return [f"unknown field {_quote(p)}" for p in paths]
