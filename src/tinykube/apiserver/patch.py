"""Patching and field ownership: JSON patch, merge patch, strategic merge patch, server-side apply.

Everything here is pure computation over plain JSON values (dicts, lists,
scalars): no I/O, no storage. Inputs are never mutated; every function returns
a new object. Failures are always :class:`tinykube.api.errors.ApiError` with
the code kube-apiserver answers.

JSON patch (RFC 6902)
    Applied with the ``jsonpatch`` library one operation at a time, so a failing
    operation can be reported the way kube-apiserver (evanphx/json-patch) words
    it. A body that is not a list of objects is a 400; an operation that cannot
    be applied (failed ``test``, ``remove`` of a missing path, ...) is upstream's
    generic 422 ``the server rejected our request due to an error in our
    request`` with the detail in ``details.causes``.

JSON merge patch (RFC 7386)
    Maps merge recursively, ``null`` deletes, anything else replaces.

Strategic merge patch
    A port of the *server half* of k8s.io/apimachinery's strategicpatch, driven
    by the official OpenAPI definitions (``x-kubernetes-patch-strategy`` /
    ``x-kubernetes-patch-merge-key`` on each property):

    * lists whose strategy includes ``merge`` merge by their merge key (lists of
      maps) or as a union (lists of scalars, e.g. finalizers); other lists are
      replaced. Items are ordered exactly as upstream orders them: the patch's
      relative order wins for the items it names, server-only items keep
      theirs, and the two are interleaved by the live order, so an item new to
      the server lands *before* the server's items when no ``$setElementOrder``
      says otherwise (``kubectl patch`` adding a container puts it first). With
      ``$setElementOrder``, upstream orders against the live list as it looks
      after its own in-place deletes and appends; that quirk is reproduced
      because it decides where ``kubectl apply`` puts added items;
    * directives: ``$patch: replace|delete`` in maps and list items,
      ``$retainKeys``, ``$deleteFromPrimitiveList/<f>``, ``$setElementOrder/<f>``
      (precedence: ``$setElementOrder`` > patch order > live order); ``null``
      deletes; nulls inside brand-new subtrees are dropped.
    * Unknown kinds and fields have no patch metadata, so their maps merge and
      their lists are replaced: merge-patch semantics for that subtree.

    Deliberate simplifications: ``$patch: merge`` in a map is accepted as a
    plain merge (upstream rejects it); a brand-new subtree carrying
    ``$patch: replace`` keeps its content (upstream silently drops it);
    directive keys are always stripped from stored values (upstream leaves
    unknown ``$`` keys for the typed decoder to drop); malformed directives
    that upstream reports as a 500 are reported as 400 BadRequest with
    upstream's message.

Server-side apply and managed fields
    A port of the behaviour of sigs.k8s.io/structured-merge-diff as used by
    kube-apiserver's field manager. Field sets use the FieldsV1 encoding
    (``f:<field>``, ``k:{"key":value}`` for list-map items, ``v:<json>`` for set
    items, ``.`` for "this node itself"). Internally a set is the same nested
    dict with every *member* node carrying a ``"."`` child, which makes union,
    difference and intersection plain recursive dict operations.

    * List semantics follow the schema conversion upstream uses:
      ``x-kubernetes-list-type`` wins (``map`` keyed by
      ``x-kubernetes-list-map-keys``, ``set``, ``atomic``); otherwise a ``merge``
      patch strategy makes a map-list keyed by the patch merge key (or a set for
      scalars); everything else is atomic. ``x-kubernetes-map-type: atomic``
      maps are leaves.
    * Apply: the configuration is merged into the live object (list items keep
      upstream's merge order), fields the applier owned last time but no longer
      applies are pruned unless someone else owns them, and a change to a field
      owned by another manager is a 409 ``FieldManagerConflict`` unless forced
      (forcing moves ownership). As upstream, the ``kubectl`` manager may take
      over fields listed in the client-side ``last-applied-configuration``
      annotation without conflict, and keeps that annotation in sync.
    * Update: the fields that changed between the old and new object become the
      manager's, and are taken away from everyone else. Objects whose managed
      fields were cleared stay untracked on update, as upstream; applying to
      such an object first records a ``before-first-apply`` manager. Update
      managers are capped at 10 (the oldest merge into ``ancient-changes``).
    * Never tracked: ``apiVersion``, ``kind``, ``metadata.{name, namespace, uid,
      resourceVersion, generation, creationTimestamp, selfLink, managedFields}``
      and, for kinds with a status subresource, ``status`` (the applied
      ``status`` is ignored there).

    Simplifications: one version per kind (no conversion between versions);
    fields absent from the schema are tracked like fields of a schemaless
    object instead of being rejected (strict field validation is done
    elsewhere); on create, the Go zero value of the object (which decides
    whether a struct node is marked ``.``) is approximated by a small table of
    non-pointer struct fields; empty lists and maps in an applied
    configuration are not owned (as in structured-merge-diff's ToFieldSet).
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonpatch
import orjson

from tinykube.api import errors, schema
from tinykube.api.resources import by_kind

JSON = dict[str, Any]
Tree = dict[str, Any]  # internal field set: pe -> subtree; member nodes carry "."

_MISSING: Any = object()
_EMPTY: JSON = {}

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_JSON_PATCH_OPERATIONS = 10000
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList"

# metadata fields never tracked in managed fields (upstream's stripMeta set).
_STRIP_META = frozenset(
    {"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation", "managedFields",
     "resourceVersion"}
)
_STRIP_META_PE = frozenset("f:" + f for f in _STRIP_META)

# Defaults for list-map key fields that the published schema does not carry.
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}

# Non-pointer struct fields of the Go types: they exist (empty) in a freshly made object, so creating an
# object does not mark them as added nodes. Top-level metadata/spec/status are added for every kind.
_VALUE_STRUCTS: dict[str, tuple[str, ...]] = {
    "io.k8s.api.apps.v1.DeploymentSpec": ("strategy", "template"),
    "io.k8s.api.apps.v1.ReplicaSetSpec": ("template",),
    "io.k8s.api.apps.v1.StatefulSetSpec": ("template", "updateStrategy"),
    "io.k8s.api.apps.v1.DaemonSetSpec": ("template", "updateStrategy"),
    "io.k8s.api.batch.v1.JobSpec": ("template",),
    "io.k8s.api.batch.v1.CronJobSpec": ("jobTemplate",),
    "io.k8s.api.batch.v1.JobTemplateSpec": ("metadata", "spec"),
    "io.k8s.api.core.v1.PodTemplateSpec": ("metadata", "spec"),
    "io.k8s.api.core.v1.ServiceStatus": ("loadBalancer",),
    "io.k8s.api.core.v1.NodeStatus": ("daemonEndpoints", "nodeInfo"),
    "io.k8s.api.core.v1.NodeDaemonEndpoints": ("kubeletEndpoint",),
    "io.k8s.api.core.v1.Event": ("involvedObject", "source"),
    "io.k8s.api.events.v1.Event": ("regarding", "deprecatedSource"),
}
# Fields without ``omitempty``: a fresh Go object has them as ``null``, so they are not "added" nodes either.
_NULL_FIELDS: dict[str, tuple[str, ...]] = {
    "io.k8s.api.core.v1.PodSpec": ("containers",),
    "io.k8s.api.apps.v1.DeploymentSpec": ("selector",),
    "io.k8s.api.apps.v1.ReplicaSetSpec": ("selector",),
    "io.k8s.api.apps.v1.StatefulSetSpec": ("selector",),
    "io.k8s.api.apps.v1.DaemonSetSpec": ("selector",),
    "io.k8s.api.discovery.v1.EndpointSlice": ("endpoints", "ports"),
}


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


def _clone(v: Any) -> Any:
    """Deep copy of a JSON value (orjson's round trip is several times faster than walking it in Python)."""
    if isinstance(v, dict) and v:
        try:
            return orjson.loads(orjson.dumps(v))
        except (orjson.JSONEncodeError, TypeError):
            return _clone_walk(v)
    return _clone_walk(v)


def _clone_walk(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clone_walk(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clone_walk(x) for x in v]
    return v


def _hkey(v: Any) -> Any:
    """A hashable identity for a JSON value with Go-like equality (``true`` is not ``1``)."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", v)
    if isinstance(v, str):
        return ("s", v)
    if v is None:
        return ("z",)
    try:
        return ("j", orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    except (TypeError, orjson.JSONEncodeError):
        return ("r", repr(v))


def _same(a: Any, b: Any) -> bool:
    if type(a) is type(b) and isinstance(a, str):
        return bool(a == b)
    return bool(_hkey(a) == _hkey(b))


def _gofmt(v: Any) -> str:
    """Roughly Go's ``%v`` of a decoded JSON value (for error messages that quote patch content)."""
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_gofmt(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_gofmt(x) for x in v) + "]"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _gotype(v: Any) -> str:
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    return "<nil>"


def _json_kind(v: Any) -> str:
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return "null"


def _unprocessable(detail: str) -> errors.ApiError:
    """Upstream's generic 422 (``NewGenericServerResponse``) with the detail as a cause."""
    return errors.ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": detail}]},
    )


def _api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _prop(sch: JSON, key: str) -> tuple[JSON, JSON]:
    """(raw property schema, with its extensions; dereferenced schema) of ``key`` in an object schema."""
    s = schema.deref(sch) if "$ref" in sch else sch
    props = s.get("properties")
    if props is not None:
        raw = props.get(key)
        if raw is not None:
            return raw, (schema.deref(raw) if "$ref" in raw else raw)
    ap = s.get("additionalProperties")
    if isinstance(ap, dict):
        return ap, (schema.deref(ap) if "$ref" in ap else ap)
    return _EMPTY, _EMPTY


def _items(res: JSON) -> tuple[JSON, JSON]:
    it = res.get("items")
    if isinstance(it, dict):
        return it, (schema.deref(it) if "$ref" in it else it)
    return _EMPTY, _EMPTY


def _strategies(raw: JSON) -> tuple[str, ...]:
    s = raw.get("x-kubernetes-patch-strategy")
    return tuple(s.split(",")) if isinstance(s, str) and s else ()


# ---------------------------------------------------------------------------------------------------------------
# JSON patch


def json_patch(obj: JSON, ops: Any) -> JSON:
    """Apply an RFC 6902 JSON patch (what ``kubectl patch --type=json`` sends)."""
    if ops is None:
        ops = []
    if not isinstance(ops, list):
        raise errors.bad_request(f"json: cannot unmarshal {_json_kind(ops)} into Go value of type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise errors.bad_request(
                f"json: cannot unmarshal {_json_kind(op)} into Go value of type jsonpatch.Operation")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise errors.ApiError(
            413,
            "RequestEntityTooLarge",
            f"Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
        )
    doc: Any = _clone(obj)
    for op in ops:
        try:
            doc = jsonpatch.JsonPatch([_clone(op)]).apply(doc, in_place=True)
        except Exception as e:  # jsonpatch/jsonpointer raise a zoo of exception types
            raise _unprocessable(_json_patch_failure(op, e)) from None
    if not isinstance(doc, dict):
        raise _unprocessable("the patched document is not a JSON object")
    return doc


def _json_patch_failure(op: JSON, exc: Exception) -> str:
    kind = op.get("op")
    path = op.get("path")
    if kind == "test" and isinstance(exc, jsonpatch.JsonPatchTestFailed):
        return f"testing value {path} failed: test failed"
    if kind not in ("add", "remove", "replace", "move", "copy", "test"):
        return f"Unexpected kind: {kind if isinstance(kind, str) else ''}"
    if not isinstance(path, str):
        return f"{kind} operation does not apply: missing path"
    if kind == "replace":
        return f"replace operation does not apply: doc is missing key: {path}: missing value"
    if kind in ("move", "copy") and "from" in op:
        return f'{kind} operation does not apply: doc is missing from path: "{op.get("from")}": missing value'
    if kind in ("add", "remove", "move", "copy"):
        return f'{kind} operation does not apply: doc is missing path: "{path}": missing value'
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------------------------
# JSON merge patch


def merge_patch(obj: JSON, patch: Any) -> JSON:
    """Apply an RFC 7386 JSON merge patch (``kubectl label``/``annotate``/``scale``, ``--type=merge``)."""
    if patch is None:
        raise errors.bad_request("Invalid JSON Patch")
    if not isinstance(patch, dict):
        raise errors.bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type map[string]interface {{}}")
    return _merge_into(_clone(obj), patch)


def _merge_into(target: JSON, patch: JSON) -> JSON:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict):
            cur = target.get(k)
            target[k] = _merge_into(cur if isinstance(cur, dict) else {}, v)
        else:
            target[k] = _clone(v)
    return target


# ---------------------------------------------------------------------------------------------------------------
# Strategic merge patch


def strategic_merge_patch(obj: JSON, patch: Any, group: str, version: str, kind: str) -> JSON:
    """Apply a Kubernetes strategic merge patch, using the schema of ``group/version, kind``."""
    if not isinstance(patch, dict):
        raise errors.bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type map[string]interface {{}}")
    root = schema.for_kind(group, version, kind)
    return _smp_map(_clone(obj), patch, root)


def _bad_arg_type(expected: str, actual: Any) -> errors.ApiError:
    return errors.bad_request(f"expected a {expected}, but received a {_gotype(actual)}")


def _no_merge_key(m: Any, key: str) -> errors.ApiError:
    return errors.bad_request(f"map: {_gofmt(m)} does not contain declared merge key: {key}")


def _extract_key(k: str, prefix: str) -> str:
    head, sep, rest = k.partition("/")
    if not sep or head != prefix:
        if prefix == _DELETE_PRIMITIVE:
            raise errors.bad_request("invalid patch format of primitive list")
        raise errors.bad_request("invalid patch format of setElementOrder list")
    return rest


def _strip_new(v: Any, in_list: bool = False) -> tuple[Any, bool]:
    """A patch value going in where nothing was: drop directives and nulls. Returns (value, keep)."""
    if isinstance(v, dict):
        if _DIRECTIVE in v:
            d = v[_DIRECTIVE]
            if in_list or d not in ("replace", "merge"):
                return None, False
        out: JSON = {}
        for k, x in v.items():
            if x is None or k.startswith("$"):
                continue
            sx, keep = _strip_new(x)
            if keep:
                out[k] = sx
        return out, True
    if isinstance(v, list):
        res: list[Any] = []
        for x in v:
            sx, keep = _strip_new(x, in_list=True)
            if keep:
                res.append(sx)
        return res, True
    return v, True


def _smp_map(original: JSON, patch: JSON, sch: JSON) -> JSON:
    """Merge ``patch`` into ``original`` (ours to mutate); ``patch`` is left untouched."""
    if _DIRECTIVE in patch:
        d = patch[_DIRECTIVE]
        if d == "replace":
            out, _ = _strip_new({k: v for k, v in patch.items() if k != _DIRECTIVE})
            return dict(out)
        if d == "delete":
            return {}
        if d != "merge":
            raise errors.bad_request(f"unknown patch type: {_gofmt(d)} in map: {_gofmt(patch)}")
        patch = {k: v for k, v in patch.items() if k != _DIRECTIVE}

    handled: set[str] = set()

    if _RETAIN_KEYS in patch:
        handled.add(_RETAIN_KEYS)
        retain = patch[_RETAIN_KEYS]
        if not isinstance(retain, list):
            raise errors.bad_request("invalid patch format of retainKeys")
        keep = {k for k in retain if isinstance(k, str)}
        for k, v in patch.items():
            if v is None or k == _RETAIN_KEYS or k.startswith(_DELETE_PRIMITIVE) or k.startswith(_SET_ORDER):
                continue
            if k not in keep:
                raise errors.bad_request("invalid patch format of retainKeys")
        for k in [k for k in original if k not in keep]:
            del original[k]

    for key, order in patch.items():
        if key.startswith(_SET_ORDER):
            handled.add(key)
            field = _extract_key(key, _SET_ORDER)
            if _apply_set_element_order(original, patch, field, order, sch):
                handled.add(field)

    for k, pv in patch.items():
        if k in handled:
            continue
        delete_list = False
        if k.startswith(_DELETE_PRIMITIVE):
            k = _extract_key(k, _DELETE_PRIMITIVE)
            delete_list = True
        elif k.startswith("$"):
            continue  # unknown directive-looking key: nothing a typed object could hold
        if pv is None:
            original.pop(k, None)
            continue
        ov = original.get(k, _MISSING)
        if ov is _MISSING:
            if not delete_list:
                sv, keep_it = _strip_new(pv)
                if keep_it:
                    original[k] = sv
            continue
        if isinstance(ov, dict) and isinstance(pv, dict):
            raw, res = _prop(sch, k)
            if "replace" in _strategies(raw):
                original[k] = _strip_new(pv)[0]
            else:
                original[k] = _smp_map(ov, pv, res)
        elif isinstance(ov, list) and isinstance(pv, list):
            raw, res = _prop(sch, k)
            original[k] = _merge_slice_handler(ov, pv, raw, res, delete_list)
        elif delete_list:
            continue
        else:
            sv, keep_it = _strip_new(pv)
            if keep_it:
                original[k] = sv
            else:
                del original[k]
    return original


def _merge_slice_handler(original: list[Any], patch: list[Any], raw: JSON, res: JSON, delete_list: bool) -> list[Any]:
    if "merge" in _strategies(raw):
        merge_key = raw.get("x-kubernetes-patch-merge-key")
        _, item_res = _items(res)
        return _merge_slice(original, patch, item_res, merge_key if isinstance(merge_key, str) else "", delete_list)
    if delete_list:
        gone = {_hkey(v) for v in patch}
        return [v for v in original if _hkey(v) not in gone]
    return list(_strip_new(patch)[0])


def _merge_slice(original: list[Any], patch: list[Any], item_res: JSON, merge_key: str, delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    elems = original + patch
    first = elems[0]
    if isinstance(first, list):
        raise _unprocessable("lists of lists are not supported")
    is_map = isinstance(first, dict)
    for e in elems:
        if isinstance(e, dict) != is_map or isinstance(e, list):
            raise errors.bad_request(f"list element types are not identical: {_gofmt([original, patch])}")
    if not is_map:
        if delete_list:
            gone = {_hkey(v) for v in patch}
            return [v for v in original if _hkey(v) not in gone]
        merged: list[Any] = []
        seen: set[Any] = set()
        for v in elems:
            h = _hkey(v)
            if h not in seen:
                seen.add(h)
                merged.append(_clone(v))
        in_patch = {_hkey(v) for v in patch}
        p_items = [v for v in merged if _hkey(v) in in_patch]
        s_items = [v for v in merged if _hkey(v) not in in_patch]
        return _normalize_order(p_items, s_items, patch, original, "")
    if not merge_key:
        raise errors.bad_request("cannot merge lists without merge key for type map")
    original, patch = _merge_special_elements(original, patch, merge_key)
    merged = _merge_by_key(original, patch, merge_key, item_res)
    p_items, s_items = _partition_maps(merged, patch, merge_key)
    return _normalize_order(p_items, s_items, patch, original, merge_key)


def _merge_special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Apply ``$patch`` list items; returns (original, patch without directive items)."""
    plain: list[Any] = []
    replace = False
    for v in patch:
        if _DIRECTIVE not in v:
            plain.append(v)
            continue
        d = v[_DIRECTIVE]
        if d == "delete":
            if merge_key not in v:
                raise _no_merge_key(v, merge_key)
            mv = v[merge_key]
            kept = []
            for o in original:
                if not isinstance(o, dict):
                    raise errors.bad_request(f"value for key {merge_key} is not a map.")
                if merge_key in o and _same(o[merge_key], mv):
                    continue
                kept.append(o)
            original = kept
        elif d == "replace":
            replace = True
        elif d == "merge":
            raise errors.bad_request("merging lists cannot yet be specified in the patch")
        else:
            raise errors.bad_request(f"unknown patch type: {_gofmt(d)} in map: {_gofmt(v)}")
    if replace:
        return [_strip_new(v)[0] for v in plain], []
    return original, plain


def _merge_by_key(original: list[Any], patch: list[Any], merge_key: str, item_res: JSON) -> list[Any]:
    result = list(original)
    for v in patch:
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        mv = v[merge_key]
        found = -1
        for i, o in enumerate(result):
            if not isinstance(o, dict):
                raise errors.bad_request(f"value for key {i} is not a map.")
            if merge_key in o and _same(o[merge_key], mv):
                found = i
                break
        if found >= 0:
            result[found] = _smp_map(result[found], v, item_res)
        else:
            sv, keep = _strip_new(v)
            if keep:
                result.append(sv)
    return result


def _merge_key_of(item: Any, merge_key: str) -> Any:
    if not isinstance(item, dict):
        raise _bad_arg_type("map[string]interface {}", item)
    if merge_key not in item:
        raise _no_merge_key(item, merge_key)
    return _hkey(item[merge_key])


def _partition_maps(merged: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    keys = {_hkey(b[merge_key]) for b in by if isinstance(b, dict) and merge_key in b}
    p_items: list[Any] = []
    s_items: list[Any] = []
    for v in merged:
        (p_items if _merge_key_of(v, merge_key) in keys else s_items).append(v)
    return p_items, s_items


def _identity(v: Any, merge_key: str) -> Any:
    if merge_key:
        return _hkey(v.get(merge_key)) if isinstance(v, dict) else ("?",)
    return _hkey(v)


def _positions(order: list[Any], merge_key: str) -> dict[Any, int]:
    pos: dict[Any, int] = {}
    for i, v in enumerate(order):
        pos.setdefault(_identity(v, merge_key), i)
    return pos


def _sort_by(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    if merge_key:
        for v in items:
            _merge_key_of(v, merge_key)
        for v in order:
            _merge_key_of(v, merge_key)
    pos = _positions(order, merge_key)
    big = len(order)
    return sorted(items, key=lambda v: pos.get(_identity(v, merge_key), big))


def _normalize_order(p_items: list[Any], s_items: list[Any], patch_order: list[Any], server_order: list[Any],
                     merge_key: str) -> list[Any]:
    """Upstream's normalizeElementOrder: sort both halves, then interleave by the live order."""
    p_items = _sort_by(p_items, patch_order, merge_key)
    s_items = _sort_by(s_items, server_order, merge_key)
    spos = _positions(server_order, merge_key)
    out: list[Any] = []
    i = j = 0
    while i < len(s_items) or j < len(p_items):
        if i >= len(s_items):
            out.append(p_items[j])
            j += 1
        elif j >= len(p_items):
            out.append(s_items[i])
            i += 1
        else:
            li = spos.get(_identity(s_items[i], merge_key), -1)
            ri = spos.get(_identity(p_items[j], merge_key), -1)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(s_items[i])
                i += 1
            else:
                out.append(p_items[j])
                j += 1
    return out


def _validate_set_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list must be a subsequence of the ``$setElementOrder`` list (delete items aside)."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        items = [v for v in patch_list if not (isinstance(v, dict) and v.get(_DIRECTIVE) == "delete")]
    pi = si = 0
    while pi < len(items) and si < len(order):
        cur = items[pi]
        if isinstance(cur, dict) and _DIRECTIVE in cur:
            pi += 1
            continue
        if merge_key:
            equal = _merge_key_of(cur, merge_key) == _merge_key_of(order[si], merge_key)
        else:
            equal = _same(cur, order[si])
        if equal:
            pi += 1
        si += 1
    if pi < len(items) and si >= len(order):
        raise errors.bad_request(
            f"the order in patch list:\n{_gofmt(patch_list)}\n doesn't match {_SET_ORDER} list:\n{_gofmt(order)}")


def _apply_set_element_order(original: JSON, patch: JSON, field: str, order: Any, sch: JSON) -> bool:
    """Merge ``field`` and order it by ``$setElementOrder/<field>``; True if the patch list was consumed."""
    if not isinstance(order, list):
        raise _bad_arg_type("[]interface {}", order)
    orig = original.get(field, _MISSING)
    if orig is None:
        orig = _MISSING  # a null live list is as good as none
    plist = patch.get(field, _MISSING)
    if plist is None:
        return False  # the list is being deleted; the main loop does that
    if orig is not _MISSING and not isinstance(orig, list):
        raise _bad_arg_type("[]interface {}", orig)
    if plist is not _MISSING and not isinstance(plist, list):
        raise _bad_arg_type("[]interface {}", plist)
    raw, res = _prop(sch, field)
    mk = raw.get("x-kubernetes-patch-merge-key")
    merge_key = mk if isinstance(mk, str) and "merge" in _strategies(raw) else ""
    _validate_set_order(plist if plist is not _MISSING else [], order, merge_key)
    if orig is not _MISSING and plist is _MISSING:
        merged = orig
    elif orig is _MISSING and plist is not _MISSING:
        merged = list(_strip_new(plist)[0])
    elif orig is not _MISSING:
        merged = _merge_slice_handler(orig, plist, raw, res, False)
    else:
        return False
    if merge_key:
        p_items, s_items = _partition_maps(merged, order, merge_key)
    else:
        in_order = {_hkey(v) for v in order}
        p_items = [v for v in merged if _hkey(v) in in_order]
        s_items = [v for v in merged if _hkey(v) not in in_order]
    server_order: list[Any] = orig if orig is not _MISSING else []
    if merge_key and orig is not _MISSING and plist is not _MISSING:
        server_order = _aliased_view(orig, plist, merge_key)
    original[field] = _normalize_order(p_items, s_items, order, server_order, merge_key)
    return True


def _aliased_view(orig: list[Any], plist: list[Any], merge_key: str) -> list[Any]:
    """The live list as upstream sees it when it finally orders a ``$setElementOrder`` list.

    Upstream deletes items from, and appends new items to, the very array backing the live list, so the
    order it then uses as "the live order" is the live list's first ``len(live)`` slots after those in-place
    edits: survivors shifted left, then newly added items, then stale tail copies. Reproduced here because it
    decides where items added and removed by one ``kubectl apply`` end up.
    """
    backing = list(orig)
    n = length = len(backing)
    if not n:
        return []
    plain: list[Any] = []
    replace = False
    for v in plist:
        if not isinstance(v, dict) or _DIRECTIVE not in v:
            plain.append(v)
        elif v[_DIRECTIVE] == "delete":
            key = _hkey(v.get(merge_key))
            while True:
                i = next((i for i in range(length) if isinstance(backing[i], dict) and merge_key in backing[i]
                          and _hkey(backing[i][merge_key]) == key), -1)
                if i < 0:
                    break
                backing[i:length - 1] = backing[i + 1:length]
                length -= 1
        elif v[_DIRECTIVE] == "replace":
            replace = True
    for v in [] if replace else plain:
        key = _hkey(v.get(merge_key)) if isinstance(v, dict) else None
        if any(isinstance(x, dict) and _hkey(x.get(merge_key)) == key for x in backing[:length]):
            continue  # merged in place: same key, same slot
        if length < len(backing):
            backing[length] = v
        else:
            backing.append(v)
        length += 1
    return backing[:n]


# ---------------------------------------------------------------------------------------------------------------
# Field sets (structured-merge-diff semantics)


class _TypedError(Exception):
    """A value that does not fit its schema; ``path`` is filled in on the way up."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _map_atomic(raw: JSON, res: JSON) -> bool:
    return raw.get("x-kubernetes-map-type") == "atomic" or res.get("x-kubernetes-map-type") == "atomic"


def _is_scalar_schema(res: JSON) -> bool:
    t = res.get("type")
    return isinstance(t, str) and t not in ("object", "array")


def _list_kind(raw: JSON, res: JSON) -> tuple[str, tuple[str, ...]]:
    """("atomic" | "set" | "map", map keys) as upstream's schema conversion decides it."""
    for s in (raw, res):
        lt = s.get("x-kubernetes-list-type")
        if lt == "map":
            keys = tuple(k for k in (s.get("x-kubernetes-list-map-keys") or ()) if isinstance(k, str))
            return ("map", keys) if keys else ("atomic", ())
        if lt in ("set", "atomic"):
            return lt, ()
    strat = _strategies(raw) or _strategies(res)
    if "merge" in strat:
        mk = raw.get("x-kubernetes-patch-merge-key") or res.get("x-kubernetes-patch-merge-key")
        return ("map", (mk,)) if isinstance(mk, str) and mk else ("set", ())
    return "atomic", ()


def _key_default(item_res: JSON, key: str) -> Any:
    p = (item_res.get("properties") or {}).get(key)
    if isinstance(p, dict) and "default" in p:
        return p["default"]
    return _KEY_DEFAULTS.get(key, _MISSING)


def _dumps(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()


def _item_pe(item: Any, lt: str, keys: tuple[str, ...], item_res: JSON, index: int, strict: bool) -> str | None:
    """The path element of a list item (``k:{...}`` or ``v:...``); None if it has none and strict is off."""
    try:
        if lt == "set":
            return "v:" + _dumps(item)
        if not isinstance(item, dict):
            raise _TypedError(f"element {index}: associative list with keys has an element that is not a map")
        kv: JSON = {}
        for k in keys:
            if k in item:
                kv[k] = item[k]
            else:
                d = _key_default(item_res, k)
                if d is _MISSING:
                    raise _TypedError(
                        f'element {index}: associative list with keys has an element that omits key field "{k}" '
                        f"(and doesn't have default value)")
                kv[k] = d
        return "k:" + _dumps(kv)
    except _TypedError:
        if strict:
            raise
        return None
    except (TypeError, orjson.JSONEncodeError):
        if strict:
            raise _TypedError(f"element {index}: value cannot be encoded") from None
        return None


def _pe_str(pe: str) -> str:
    """Path element as upstream prints it in conflict messages (``.spec``, ``[name="c"]``, ``[="x"]``)."""
    tag, body = pe[:2], pe[2:]
    if tag == "f:":
        return "." + body
    if tag == "k:":
        try:
            kv = orjson.loads(body)
            return "[" + ",".join(f"{k}={_value_str(v)}" for k, v in kv.items()) + "]"
        except orjson.JSONDecodeError:
            return "[" + body + "]"
    if tag == "v:":
        try:
            return "[=" + _value_str(orjson.loads(body)) + "]"
        except orjson.JSONDecodeError:
            return "[=" + body + "]"
    if tag == "i:":
        return "[" + body + "]"
    return pe


def _value_str(v: Any) -> str:
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return _dumps(v)


_PE_RANK = {"f:": 0, "k:": 1, "v:": 2, "i:": 3}


def _pe_sort(pe: str) -> tuple[int, str]:
    return _PE_RANK.get(pe[:2], 4), pe[2:]


def _node_set(value: Any, raw: JSON, res: JSON, strict: bool) -> tuple[bool, Tree]:
    """ToFieldSet of one node: (node is a leaf, its children's set)."""
    if isinstance(value, dict):
        if _map_atomic(raw, res) or _is_scalar_schema(res):
            return True, {}
        props = res.get("properties") or _EMPTY
        out: Tree = {}
        for k, v in value.items():
            craw, cres = _prop(res, k)
            try:
                leaf, ch = _node_set(v, craw, cres, strict)
            except _TypedError as e:
                e.path = "." + k + e.path
                raise
            named = k in props
            if leaf:
                out["f:" + k] = {".": {}}
            elif not named:
                ch["."] = {}
                out["f:" + k] = ch
            elif ch:
                out["f:" + k] = ch
        return False, out
    if isinstance(value, list):
        lt, keys = _list_kind(raw, res)
        if lt == "atomic":
            return True, {}
        iraw, ires = _items(res)
        out = {}
        for i, item in enumerate(value):
            pe = _item_pe(item, lt, keys, ires, i, strict)
            if pe is None:
                continue
            try:
                leaf, ch = _node_set(item, iraw, ires, strict)
            except _TypedError as e:
                e.path = _pe_str(pe) + e.path
                raise
            ch["."] = {}
            if pe in out:
                if strict:
                    raise _TypedError(f"duplicate entries for key {_pe_str(pe)}")
                out[pe] = _union(out[pe], ch)
            else:
                out[pe] = ch
        return False, out
    if value is None and (
        (("properties" in res or "additionalProperties" in res) and not _map_atomic(raw, res))
        or (res.get("type") == "array" and _list_kind(raw, res)[0] != "atomic")
    ):
        return False, {}
    return True, {}


def _root_set(obj: Any, res: JSON, strict: bool) -> Tree:
    if not isinstance(obj, dict):
        return {}
    return _node_set(obj, _EMPTY, res, strict)[1]


def _union(a: Tree, b: Tree) -> Tree:
    if not a:
        return b
    if not b:
        return a
    out = dict(a)
    for k, v in b.items():
        out[k] = _union(out[k], v) if k in out else v
    return out


def _diff(a: Tree, b: Tree) -> Tree:
    """``a`` without ``b``; ``a`` itself when they share nothing (so unchanged entries keep their encoding)."""
    if not b or not a:
        return a
    out: Tree = {}
    same = True
    for k, v in a.items():
        if k not in b:
            out[k] = v
        elif k != ".":
            d = _diff(v, b[k])
            if d:
                out[k] = d
            if d is not v:
                same = False
        else:
            same = False
    return a if same else out


def _inter(a: Tree, b: Tree) -> Tree:
    if len(b) < len(a):
        a, b = b, a
    out: Tree = {}
    for k, v in a.items():
        if k in b:
            if k == ".":
                out[k] = v
            else:
                i = _inter(v, b[k])
                if i:
                    out[k] = i
    return out


def _paths(t: Tree, prefix: str = "") -> list[str]:
    """Member paths of a set in upstream's iteration order (members first, then children)."""
    keys = sorted((k for k in t if k != "."), key=_pe_sort)
    out = [prefix + _pe_str(k) for k in keys if "." in t[k]]
    for k in keys:
        sub = t[k]
        if len(sub) > (1 if "." in sub else 0):
            out.extend(_paths(sub, prefix + _pe_str(k)))
    return out


def _to_v1(t: Tree) -> JSON:
    out: JSON = {}
    # Upstream orders path elements f: < k: < v: < i:, then by the rest; a plain string sort agrees (and puts
    # "." first) unless an i: element sits beside other kinds, which the slow path handles.
    keys = sorted(t)
    dot = bool(keys) and keys[0] == "."
    if dot:
        del keys[0]
    if keys:
        lo = bisect.bisect_left(keys, "i:")
        if lo < len(keys) and keys[lo].startswith("i:") and not (keys[0].startswith("i:") and keys[-1].startswith("i:")):
            keys.sort(key=_pe_sort)
        if dot:
            out["."] = {}
    for k in keys:
        out[k] = _to_v1(t[k])
    return out


def _from_v1(v: Any) -> Tree:
    if not isinstance(v, dict):
        return {}
    if not v:
        return {".": {}}
    out: Tree = {}
    for k, x in v.items():
        if k == ".":
            out["."] = {}
        elif isinstance(k, str) and isinstance(x, dict):
            out[k] = _from_v1(x)
    return out


def _strip_tree(t: Tree, exclude_status: bool, subresource: str = "") -> Tree:
    if subresource == "status":
        return {"f:status": t["f:status"]} if "f:status" in t else {}
    out = {k: v for k, v in t.items() if k not in ("f:apiVersion", "f:kind", ".")}
    if exclude_status:
        out.pop("f:status", None)
    md = out.get("f:metadata")
    if md is not None:
        md2 = {k: v for k, v in md.items() if k != "." and k not in _STRIP_META_PE}
        if md2:
            out["f:metadata"] = md2
        else:
            del out["f:metadata"]
    return out


def _status_excluded(group: str, version: str, kind: str, res: JSON) -> bool:
    r = by_kind(group, version, kind)
    if r is not None:
        return "status" in r.subresources
    return "status" in (res.get("properties") or _EMPTY)


def _tracked(obj: JSON, exclude_status: bool, subresource: str = "") -> JSON:
    """The part of an object field ownership is about (shallow; never mutate the result's children)."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if exclude_status:
        out.pop("status", None)
    md = out.get("metadata")
    if isinstance(md, dict):
        out["metadata"] = {k: v for k, v in md.items() if k not in _STRIP_META}
    return out


def fields_v1(obj: JSON, group: str, version: str, kind: str) -> JSON:
    """The FieldsV1 set of every field set in ``obj`` (what an apply of ``obj`` would own)."""
    res = schema.for_kind(group, version, kind)
    tree = _root_set(obj, res, strict=False)
    return _to_v1(_strip_tree(tree, _status_excluded(group, version, kind, res)))


# -- comparison -------------------------------------------------------------------------------------------------


def _attach(t: Tree, pe: str, member: bool, children: Tree) -> None:
    if member or children:
        node = dict(children)
        if member:
            node["."] = {}
        t[pe] = node


def _is_emptyish(v: Any) -> bool:
    return v is _MISSING or v is None or (isinstance(v, (dict, list)) and not v)


def _compare(lhs: Any, rhs: Any, raw: JSON, res: JSON) -> tuple[str, Tree, Tree, Tree]:
    """Compare two values of one node: (state of the node itself: "A"/"M"/"R"/"", added, modified, removed)."""
    if lhs is rhs or (lhs is not _MISSING and rhs is not _MISSING and lhs == rhs):
        return "", _EMPTY, _EMPTY, _EMPTY
    container = ""
    if isinstance(lhs, dict) or isinstance(rhs, dict):
        if (not _map_atomic(raw, res) and not _is_scalar_schema(res)
                and all(isinstance(v, dict) or v is None or v is _MISSING for v in (lhs, rhs))
                and not (_is_emptyish(lhs) and _is_emptyish(rhs))):
            container = "map"
    elif isinstance(lhs, list) or isinstance(rhs, list):
        if (_list_kind(raw, res)[0] != "atomic"
                and all(isinstance(v, list) or v is None or v is _MISSING for v in (lhs, rhs))
                and not (_is_emptyish(lhs) and _is_emptyish(rhs))):
            container = "list"
    if not container:
        if lhs is _MISSING:
            return ("A" if rhs is not _MISSING else ""), {}, {}, {}
        if rhs is _MISSING:
            return "R", {}, {}, {}
        return ("" if _same_value(lhs, rhs) else "M"), {}, {}, {}
    added: Tree = {}
    modified: Tree = {}
    removed: Tree = {}
    if container == "map":
        lm = lhs if isinstance(lhs, dict) else _EMPTY
        rm = rhs if isinstance(rhs, dict) else _EMPTY
        for k in list(lm) + [k for k in rm if k not in lm]:
            craw, cres = _prop(res, k)
            st, a, m, r = _compare(lm.get(k, _MISSING), rm.get(k, _MISSING), craw, cres)
            pe = "f:" + k
            _attach(added, pe, st == "A", a)
            _attach(modified, pe, st == "M", m)
            _attach(removed, pe, st == "R", r)
    else:
        lt, keys = _list_kind(raw, res)
        iraw, ires = _items(res)
        lidx = _index_items(lhs if isinstance(lhs, list) else [], lt, keys, ires)
        ridx = _index_items(rhs if isinstance(rhs, list) else [], lt, keys, ires)
        for pe in list(lidx) + [p for p in ridx if p not in lidx]:
            st, a, m, r = _compare(lidx.get(pe, _MISSING), ridx.get(pe, _MISSING), iraw, ires)
            _attach(added, pe, st == "A", a)
            _attach(modified, pe, st == "M", m)
            _attach(removed, pe, st == "R", r)
    state = "A" if lhs is _MISSING else "R" if rhs is _MISSING else ""
    return state, added, modified, removed


def _same_value(a: Any, b: Any) -> bool:
    if type(a) is not type(b) and (isinstance(a, bool) or isinstance(b, bool)):
        return False
    return bool(a == b)


def _index_items(items: list[Any], lt: str, keys: tuple[str, ...], ires: JSON) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        pe = _item_pe(item, lt, keys, ires, i, False) or f"i:{i}"
        out.setdefault(pe, item)
    return out


def _changes(old: JSON, new: JSON, res: JSON) -> tuple[Tree, Tree]:
    """(added or modified, removed) between two tracked objects."""
    _, a, m, r = _compare(old, new, _EMPTY, res)
    return _union(m, a), r


# -- apply merge and prune --------------------------------------------------------------------------------------


def _merge(lhs: Any, rhs: Any, raw: JSON, res: JSON) -> Any:
    """structured-merge-diff's merge: ``rhs`` (the applied configuration) wins, maps and keyed lists merge."""
    if rhs is _MISSING:
        return _clone(lhs)
    if lhs is _MISSING:
        return _clone(rhs)
    if isinstance(lhs, dict) and not _map_atomic(raw, res) and not _is_scalar_schema(res):
        if isinstance(rhs, dict):
            if not lhs and not rhs:
                return {}
            out: JSON = {}
            for k, v in lhs.items():
                if k in rhs:
                    craw, cres = _prop(res, k)
                    out[k] = _merge(v, rhs[k], craw, cres)
                else:
                    out[k] = _clone(v)
            for k, v in rhs.items():
                if k not in lhs:
                    out[k] = _clone(v)
            return out
        if rhs is None and lhs:
            return _clone(lhs)
    if isinstance(lhs, list):
        lt, keys = _list_kind(raw, res)
        if lt != "atomic":
            if isinstance(rhs, list) and (lhs or rhs):
                return _merge_list(lhs, rhs, lt, keys, res)
            if rhs is None and lhs:
                return _clone(lhs)
    return _clone(rhs)


def _merge_list(lhs: list[Any], rhs: list[Any], lt: str, keys: tuple[str, ...], res: JSON) -> list[Any]:
    iraw, ires = _items(res)
    lorder: list[str] = []
    lmap: dict[str, Any] = {}
    for i, item in enumerate(lhs):
        pe = _item_pe(item, lt, keys, ires, i, False) or f"i:{i}"
        if pe not in lmap:
            lmap[pe] = item
            lorder.append(pe)
    rorder: list[str] = []
    rmap: dict[str, Any] = {}
    for i, item in enumerate(rhs):
        pe = _item_pe(item, lt, keys, ires, i, False) or f"r:{i}"
        if pe not in rmap:
            rmap[pe] = item
            rorder.append(pe)
    shared = [pe for pe in rorder if pe in lmap]
    si = 0
    out: list[Any] = []
    li = ri = 0
    while li < len(lorder) or ri < len(rorder):
        before = (li, ri)
        next_shared = shared[si] if si < len(shared) else None
        if li < len(lorder) and ri < len(rorder):
            lpe = lorder[li]
            if lpe == rorder[ri]:
                out.append(_merge(lmap[lpe], rmap[lpe], iraw, ires))
                li += 1
                ri += 1
                si += 1
                continue
            if lpe in rmap and next_shared is not None and next_shared != lpe:
                li += 1  # emitted later, in the applied order
                continue
        if li < len(lorder) and lorder[li] not in rmap:
            out.append(_clone(lmap[lorder[li]]))
            li += 1
            continue
        if ri < len(rorder):
            rpe = rorder[ri]
            out.append(_merge(lmap.get(rpe, _MISSING), rmap[rpe], iraw, ires))
            ri += 1
            if next_shared == rpe:
                si += 1
        if (li, ri) == before:  # defensive: never spin
            li += 1
    return out


def _prune(value: Any, last: Tree, keep: Tree, raw: JSON, res: JSON) -> None:
    """Remove (in place) what ``last`` owned and ``keep`` does not; named struct fields count as owned when
    anything below them is (upstream's EnsureNamedFieldsAreMembers)."""
    if isinstance(value, dict):
        props = res.get("properties") or _EMPTY
        for pe, lsub in last.items():
            if not pe.startswith("f:"):
                continue
            k = pe[2:]
            if k not in value:
                continue
            ksub = keep.get(pe)
            named = k in props
            if (named or "." in lsub) and not (ksub is not None and (named or "." in ksub)):
                del value[k]
            elif len(lsub) > (1 if "." in lsub else 0):
                craw, cres = _prop(res, k)
                _prune(value[k], lsub, ksub or _EMPTY, craw, cres)
    elif isinstance(value, list):
        lt, keys = _list_kind(raw, res)
        if lt == "atomic":
            return
        iraw, ires = _items(res)
        kept: list[Any] = []
        for i, item in enumerate(value):
            ipe = _item_pe(item, lt, keys, ires, i, False)
            isub = last.get(ipe) if ipe is not None else None
            if ipe is None or isub is None:
                kept.append(item)
                continue
            ksub = keep.get(ipe)
            lsub = isub
            if "." in lsub and not (ksub is not None and "." in ksub):
                continue
            if len(lsub) > (1 if "." in lsub else 0):
                _prune(item, lsub, ksub or _EMPTY, iraw, ires)
            kept.append(item)
        value[:] = kept


# -- managed fields entries -------------------------------------------------------------------------------------


@dataclass
class _Manager:
    manager: str
    operation: str
    api_version: str
    time: str | None
    subresource: str
    fields: Tree
    # The fieldsV1 this entry was decoded from, with the tree it gave: re-encoded as is while ``fields`` is
    # still that tree (most entries are untouched by an update).
    source: tuple[Tree, JSON] | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.manager, self.operation, "" if self.operation == "Apply" else self.api_version,
                self.subresource)

    def identity(self) -> str:
        """Upstream's manager identifier: the entry's JSON without time and fields."""
        ident: JSON = {"manager": self.manager, "operation": self.operation}
        if self.operation != "Apply":
            ident["apiVersion"] = self.api_version
        if self.subresource:
            ident["subresource"] = self.subresource
        return orjson.dumps(ident).decode()

    def describe(self) -> str:
        """Upstream's printManager (the time is never part of a manager's identity)."""
        s = orjson.dumps(self.manager).decode()
        if self.subresource:
            s += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            s += f" using {self.api_version}"
        return s


def _decode_managers(entries: Any, stored: bool = False) -> list[_Manager]:
    """Entries as managers; ``stored`` entries (already canonical) remember their encoding for reuse."""
    out: dict[tuple[str, str, str, str], _Manager] = {}
    if not isinstance(entries, list):
        return []
    for e in entries:
        if not isinstance(e, dict):
            continue
        t = e.get("time")
        v1 = e.get("fieldsV1")
        m = _Manager(
            manager=str(e.get("manager") or ""),
            operation=str(e.get("operation") or ""),
            api_version=str(e.get("apiVersion") or ""),
            time=t if isinstance(t, str) else None,
            subresource=str(e.get("subresource") or ""),
            fields=_from_v1(v1) if e.get("fieldsType", "FieldsV1") == "FieldsV1" else {},
        )
        if stored and isinstance(v1, dict) and v1:
            m.source = (m.fields, v1)
        if m.key in out:
            out[m.key].fields = _union(out[m.key].fields, m.fields)
        else:
            out[m.key] = m
    return list(out.values())


def _seconds(t: str | None) -> float:
    if not t:
        return 0.0
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _encode_managers(managers: list[_Manager]) -> list[JSON]:
    ms = sorted(managers, key=lambda m: (m.operation, int(_seconds(m.time)), m.manager, m.api_version, m.subresource))
    out: list[JSON] = []
    for m in ms:
        e: JSON = {"manager": m.manager, "operation": m.operation, "apiVersion": m.api_version}
        if m.time is not None:
            e["time"] = m.time
        e["fieldsType"] = "FieldsV1"
        src = m.source
        e["fieldsV1"] = src[1] if src is not None and src[0] is m.fields else _to_v1(m.fields)
        if m.subresource:
            e["subresource"] = m.subresource
        out.append(e)
    return out


def _cap_update_managers(managers: list[_Manager]) -> list[_Manager]:
    """Merge the oldest Update managers into per-version ``ancient-changes`` buckets, as upstream does."""
    updaters = [m for m in managers if m.operation != "Apply"]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return managers
    updaters.sort(key=lambda m: (int(_seconds(m.time)), m.identity()))
    by_key = {m.key: m for m in managers}
    first: dict[str, _Manager] = {}
    length = len(updaters)
    for m in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        v = m.api_version
        if v not in first:
            first[v] = m
            continue
        bucket_key = (ANCIENT_CHANGES, "Update", v, "")
        if m.key == bucket_key:
            continue
        bucket = by_key.get(bucket_key)
        if bucket is None:
            f = first[v]
            del by_key[f.key]
            bucket = _Manager(ANCIENT_CHANGES, "Update", v, f.time, "", f.fields)
            by_key[bucket_key] = bucket
        bucket.fields = _union(bucket.fields, m.fields)
        bucket.time = m.time
        del by_key[m.key]
        length -= 1
    return list(by_key.values())


@functools.cache
def _zero_object(def_name: str, top: bool) -> JSON:
    d = schema.definitions().get(def_name, _EMPTY)
    props = d.get("properties") or _EMPTY
    fields = list(_VALUE_STRUCTS.get(def_name, ()))
    if top:
        fields += [f for f in ("metadata", "spec", "status") if f in props and f not in fields]
    out: JSON = {}
    for f in fields:
        p = props.get(f)
        if not isinstance(p, dict):
            continue
        ref = p.get("$ref")
        out[f] = _zero_object(ref.rsplit("/", 1)[-1], False) if isinstance(ref, str) else {}
    for f in _NULL_FIELDS.get(def_name, ()):
        out[f] = None
    return out


def _zero(group: str, version: str, kind: str) -> JSON:
    name = schema.definition_name(group, version, kind)
    return _zero_object(name, True) if name else {}


# -- update ---------------------------------------------------------------------------------------------------


def update_managed_fields(old: JSON | None, new: JSON, manager: str, operation: str, group: str, version: str,
                          kind: str, now: str, *, subresource: str = "") -> JSON:
    """Record, in a (shallow) copy of ``new``, that ``manager`` changed what differs between ``old`` and ``new``.

    Called for every create (``old`` None), update and non-apply patch. ``new.metadata.managedFields``, when a
    client sends a non-empty list, replaces the stored entries (``[{}]`` clears them); otherwise the entries of
    ``old`` are carried over. ``subresource="status"`` records a status-subresource update.
    """
    # Only metadata's own keys change below: a shallow copy of the top and of metadata is enough (the rest is
    # shared with ``new``, as read-only as the stored objects it came from).
    result: JSON = dict(new)
    md = result.get("metadata")
    if not isinstance(md, dict):
        return result
    md = result["metadata"] = dict(md)
    provided = md.pop("managedFields", None)
    memo_key: bytes | None = None
    if old is None and not (isinstance(provided, list) and provided):
        # Creations from one template (a ReplicaSet's pods) own the same fields: compute that set once.
        memo_key = _create_memo_key(result, manager, operation, group, version, kind, subresource)
        hit = _CREATE_MEMO.get(memo_key)
        if hit is not None:
            # New entries (their own time), sharing the memo's fieldsV1 maps: stored objects are never changed
            # in place, so one map serves every pod of a template (in memory too).
            if hit:
                md["managedFields"] = [{**e, "time": now} for e in hit]
            return result
    stored: Any = None
    if isinstance(provided, list) and provided:
        managers = _decode_managers(provided)
    else:
        old_md = old.get("metadata") if old is not None else None
        stored = old_md.get("managedFields") if isinstance(old_md, dict) else None
        managers = _decode_managers(stored, True)
        if old is not None and not managers:
            return result  # untracked object: stays untracked until someone applies
    res = schema.for_kind(group, version, kind)
    excl = _status_excluded(group, version, kind, res)
    api_version = _api_version(group, version)
    base = old if old is not None else _zero(group, version, kind)
    changed, removed = _changes(_tracked(base, excl, subresource), _tracked(result, excl, subresource), res)
    changed = _strip_tree(changed, excl, subresource)
    removed = _strip_tree(removed, excl, subresource)
    if not changed and not removed and stored:
        md["managedFields"] = stored  # nothing changed hands (shared: stored entries are never changed in place)
        return result
    for m in managers:
        m.fields = _diff(_diff(m.fields, changed), removed)
    current = _diff(changed, removed)
    if current:
        me = _Manager(manager, operation, api_version, now, subresource, current)
        prev = next((m for m in managers if m.key == me.key), None)
        if prev is not None:
            prev.fields = _union(prev.fields, current)
            prev.time = now
        else:
            managers.append(me)
    managers = _cap_update_managers([m for m in managers if m.fields])
    if managers:
        md["managedFields"] = _encode_managers(managers)
    if memo_key is not None:
        if len(_CREATE_MEMO) >= _CREATE_MEMO_SIZE:
            _CREATE_MEMO.clear()
        _CREATE_MEMO[memo_key] = _clone(md.get("managedFields") or [])
    return result


_CREATE_MEMO: dict[bytes, list[JSON]] = {}
_CREATE_MEMO_SIZE = 512


def _shape(v: Any) -> Any:
    """A map's scalar values never appear in a field set (only which fields are set does); list items can
    (keys of associative lists, set members), so lists are kept whole."""
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list) or v is None:
        return v
    return ""


def _create_memo_key(obj: JSON, *parts: str) -> bytes:
    try:
        return orjson.dumps([parts, _shape(obj)])
    except (orjson.JSONEncodeError, TypeError):
        return b"\0" + repr((parts, obj)).encode()


# -- apply ----------------------------------------------------------------------------------------------------


def _conflict_error(conflicts: list[tuple[_Manager, Tree]]) -> errors.ApiError:
    conflicts = sorted(conflicts, key=lambda c: (c[0].manager, c[0].operation, c[0].api_version, c[0].subresource))
    flat = [(m.describe(), p) for m, t in conflicts for p in _paths(t)]
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": p} for who, p in flat]
    if len(flat) == 1:
        msg = f"Apply failed with 1 conflict: conflict with {flat[0][0]}: {flat[0][1]}"
    else:
        lines: list[str] = []
        for m, t in conflicts:
            lines.append(f"conflicts with {m.describe()}:")
            lines.extend(f"- {p}" for p in _paths(t))
        msg = f"Apply failed with {len(flat)} conflicts: " + "\n".join(lines)
    return errors.ApiError(409, "Conflict", msg, {"causes": causes})


def _last_applied_allows(live: JSON, conflicts: list[tuple[_Manager, Tree]], res: JSON, excl: bool) -> bool:
    """Upstream's lastAppliedManager: ``kubectl`` may take over what client-side apply last applied."""
    md = live.get("metadata")
    ann = md.get("annotations") if isinstance(md, dict) else None
    text = ann.get(LAST_APPLIED) if isinstance(ann, dict) else None
    if not isinstance(text, str):
        return False
    try:
        cfg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(cfg, dict):
        return False
    allowed = _strip_tree(_root_set(cfg, res, strict=False), excl)
    wanted: Tree = {}
    for _, t in conflicts:
        wanted = _union(wanted, t)
    return not _diff(wanted, allowed)


def _sync_last_applied(obj: JSON, applied: JSON, manager: str) -> None:
    """Upstream's lastAppliedUpdater: keep a client-side-apply annotation in step with ``kubectl`` applies."""
    if manager != "kubectl":
        return
    md = obj.get("metadata")
    ann = md.get("annotations") if isinstance(md, dict) else None
    if not isinstance(ann, dict) or LAST_APPLIED not in ann:
        return
    cfg = _clone(applied)
    cmd = cfg.get("metadata")
    if isinstance(cmd, dict) and isinstance(cmd.get("annotations"), dict):
        cmd["annotations"].pop(LAST_APPLIED, None)
        if not cmd["annotations"]:
            del cmd["annotations"]
    try:
        ann[LAST_APPLIED] = _dumps(cfg) + "\n"
    except (TypeError, orjson.JSONEncodeError):
        pass


def server_side_apply(live: JSON | None, applied: JSON, manager: str, force: bool, group: str, version: str,
                      kind: str, now: str) -> JSON:
    """Server-side apply of ``applied`` by ``manager``; returns the object to store (``live`` None: to create)."""
    if not isinstance(applied, dict):
        raise errors.bad_request(
            f"json: cannot unmarshal {_json_kind(applied)} into Go value of type map[string]interface {{}}")
    amd = applied.get("metadata")
    if isinstance(amd, dict) and amd.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    res = schema.for_kind(group, version, kind)
    excl = _status_excluded(group, version, kind, res)
    api_version = _api_version(group, version)
    config = {k: v for k, v in applied.items() if not (excl and k == "status")}
    try:
        full_set = _root_set(config, res, strict=True)
    except _TypedError as e:
        raise errors.bad_request(
            f"failed to create typed patch object ({group}/{version}, Kind={kind}): {e}") from None
    new_set = _strip_tree(full_set, excl)

    if live is None:
        result: JSON = _clone(config)
        md = result.get("metadata")
        if isinstance(md, dict):
            if new_set:
                md["managedFields"] = _encode_managers([_Manager(manager, "Apply", api_version, now, "", new_set)])
            _sync_last_applied(result, applied, manager)
        return result

    current: JSON = _clone(live)
    cmd = current.get("metadata")
    prior = cmd.pop("managedFields", None) if isinstance(cmd, dict) else None
    managers = _decode_managers(prior, True)
    if not managers:
        changed, removed = _changes(_tracked(_zero(group, version, kind), excl), _tracked(current, excl), res)
        before = _strip_tree(_diff(changed, removed), excl)
        if before:
            managers = [_Manager(BEFORE_FIRST_APPLY, "Update", api_version, now, "", before)]

    mine = next((m for m in managers if m.key == (manager, "Apply", "", "")), None)
    others = [m for m in managers if m is not mine]

    merged = _merge(current, config, _EMPTY, res)
    if mine is not None and mine.fields:
        keep = full_set
        for m in others:
            keep = _union(keep, m.fields)
        _prune(merged, mine.fields, keep, _EMPTY, res)

    changed, removed = _changes(_tracked(current, excl), _tracked(merged, excl), res)
    changed = _strip_tree(changed, excl)
    removed = _strip_tree(removed, excl)
    conflicts = [(m, c) for m in others if (c := _inter(m.fields, changed))]
    if conflicts and not force and not (manager == "kubectl" and _last_applied_allows(current, conflicts, res, excl)):
        raise _conflict_error(conflicts)
    for m, c in conflicts:
        m.fields = _diff(m.fields, c)
    for m in others:
        m.fields = _diff(m.fields, removed)

    if mine is None:
        managers.append(_Manager(manager, "Apply", api_version, now, "", new_set))
    else:
        unchanged = mine.fields == new_set and merged == current and mine.api_version == api_version
        mine.fields = new_set
        mine.api_version = api_version
        if not unchanged or mine.time is None:
            mine.time = now
    managers = _cap_update_managers([m for m in managers if m.fields])

    _sync_last_applied(merged, applied, manager)
    mmd = merged.get("metadata")
    if isinstance(mmd, dict):
        mmd.pop("managedFields", None)
        if managers:
            mmd["managedFields"] = _encode_managers(managers)
    return merged
