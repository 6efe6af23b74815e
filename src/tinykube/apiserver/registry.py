"""The API's verbs, independent of HTTP: admission, metadata, subresources, deletion.

:class:`Registry` is what both transports call — the HTTP front end and the
in-process client used by controllers — so every write takes the same path:

    decode -> (patch) -> strategy (metadata, status/spec split, generation)
    -> defaulting -> validation (+ strict unknown fields) -> allocation
    -> compare-and-swap in the store -> managedFields

Per-kind behaviour that Kubernetes keeps in "strategies" lives here as small
tables (which kinds have a status subresource, bump ``generation`` on spec
changes, return the deleted object, may be created by PUT, ...).
"""

from __future__ import annotations

import base64
import builtins
import functools
import time
from dataclasses import dataclass
from typing import Any

import orjson

from ..api import checks, defaults, errors, events, fieldcheck, selectors, validation
from ..api.meta import new_uid, now_rfc3339, random_suffix
from ..api.resources import Resource, lookup
from ..store.store import Compacted, Entry, KeyExists, KeyNotFound, RevisionConflict, Store, Watch
from . import allocators, patch

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
GENERATION_KINDS = {"Deployment", "ReplicaSet"}
RETURN_DELETED_OBJECT = {"Pod", "Namespace", "Node", "Event"}
CREATE_ON_UPDATE = {"Endpoints", "Lease", "Event", "EndpointSlice", "Node"}

PATCH_JSON = "application/json-patch+json"
PATCH_MERGE = "application/merge-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"
PATCH_APPLY_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, PATCH_APPLY)

SCALE_RES = Resource("autoscaling", "v1", "Scale", "scale", "scale", True)


# Deeper request bodies are refused (400): the code that walks objects (patches, field checks, managedFields)
# recurses, and no Kubernetes object comes near this (a Deployment's deepest field is ~15 levels down).
MAX_DEPTH = 100


def check_depth(doc: Any) -> Any:
    """``doc`` itself, or 400 BadRequest when it is nested more than MAX_DEPTH levels deep."""
    stack: builtins.list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, builtins.list)):
            if d > MAX_DEPTH:
                raise errors.bad_request(f"the object is nested more than {MAX_DEPTH} levels deep")
            stack.extend((c, d + 1) for c in (o.values() if isinstance(o, dict) else o))
    return doc


def load_yaml(body: bytes) -> Any:
    """A request body's YAML as JSON-like data, refusing (400) what would crash or stall the server.

    * nesting deeper than MAX_DEPTH: libyaml's recursive composer overflows the C stack and the whole
      process dies (``[[[[...`` 100,000 deep); the parser's event stream is flat, so it is checked first;
    * an anchor used inside itself (``a: &x [*x]``): a self-referencing structure nothing downstream can walk;
    * aliases expanding far past the body's own size ("billion laughs": nine lines, 10^8 nodes).

    The result is what JSON could carry, as Kubernetes' YAML-to-JSON conversion makes it: timestamps and
    ``!!binary`` stay strings, mapping keys become strings (``1`` -> ``"1"``, ``true`` -> ``"true"``), integers
    beyond 64 bits become floats; ``.inf``/``.nan`` and ``!!set`` are refused.
    YAML syntax errors propagate as ``yaml.YAMLError`` (and ``ValueError`` for integers over 4300 digits).
    """
    import yaml

    loader = _yaml_loader()
    if len(body) > MAX_DEPTH:  # shorter bodies cannot nest that deep
        depth = 0
        for ev in yaml.parse(body, Loader=loader):
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise errors.bad_request(f"the object is nested more than {MAX_DEPTH} levels deep")
            elif isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1
    doc = yaml.load(body, Loader=loader)
    if b"*" in body:
        _check_yaml_aliases(doc, len(body) + 100_000)
    return _jsonish(check_depth(doc))  # (aliases can stack anchored subtrees deeper than the text is)


@functools.cache
def _yaml_loader() -> Any:
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    for tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"):
        Loader.add_constructor(tag, yaml.constructor.SafeConstructor.construct_yaml_str)
    return Loader


def _jsonish(o: Any) -> Any:
    if isinstance(o, dict):
        return {_jsonish_key(k): _jsonish(v) for k, v in o.items()}
    if isinstance(o, builtins.list):
        return [_jsonish(v) for v in o]
    if o is None or isinstance(o, (str, bool)):
        return o
    if isinstance(o, int):
        return o if -(2**63) <= o < 2**64 else _jsonish(float(o)) if abs(o) < 2**1023 else _jsonish(float("inf"))
    if isinstance(o, float):
        if o != o or o in (float("inf"), float("-inf")):
            raise errors.bad_request(f"error converting YAML to JSON: json: unsupported value: {o}")
        return o
    raise errors.bad_request(f"error converting YAML to JSON: unsupported value of type {type(o).__name__}")


def _jsonish_key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bool) or k is None:
        return {True: "true", False: "false", None: "null"}[k]
    if isinstance(k, (int, float)):
        return str(k)
    raise errors.bad_request(f"error converting YAML to JSON: unsupported mapping key of type {type(k).__name__}")


def _check_yaml_aliases(doc: Any, limit: int) -> None:
    sizes: dict[int, int] = {}
    walking: set[int] = set()

    def size(o: Any) -> int:
        if not isinstance(o, (dict, builtins.list)):
            return 1
        k = id(o)
        if k in sizes:
            return sizes[k]
        if k in walking:
            raise errors.bad_request("error converting YAML to JSON: an alias refers to its own anchor")
        walking.add(k)
        n = 1 + sum(size(v) for v in (o.values() if isinstance(o, dict) else o))
        walking.discard(k)
        if n > limit:
            raise errors.bad_request(f"error converting YAML to JSON: aliases expand the document to more than "
                                     f"{limit} nodes")
        sizes[k] = n
        return n

    size(doc)


@dataclass
class Options:
    """Per-request options shared by the write verbs."""

    dry_run: bool = False
    field_validation: str = "Strict"  # Strict | Warn | Ignore ("" counts as Warn, kube-apiserver's default)
    field_manager: str = ""
    force: bool = False
    user_agent: str = ""
    # In-process clients build their objects from stored ones, as upstream's typed clients serialize Go structs:
    # no unknown field can be in them, so the walk that looks for some is skipped (and, under
    # TINYKUBE_CHECK_SHARED, still run: finding one there is a bug in a component).
    typed: bool = False


@dataclass
class Result:
    """A write's outcome: the stored entry (or a synthesized object), HTTP status and warnings."""

    obj: dict[str, Any]
    raw: bytes | None
    code: int = 200
    warnings: list[str] | None = None


def _manager(opts: Options) -> str:
    if opts.field_manager:
        return opts.field_manager
    ua = opts.user_agent.split("/", 1)[0] if opts.user_agent else ""
    return ua or "unknown"


def _spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    skip = ("metadata", "status", "apiVersion", "kind")
    a = {k: v for k, v in old.items() if k not in skip}
    b = {k: v for k, v in new.items() if k not in skip}
    return a != b


def _port_key(p: dict[str, Any]) -> tuple[Any, Any]:
    """A Service port's (port, protocol), hashable whatever types the request put there."""
    port, proto = p.get("port"), p.get("protocol", "TCP")
    return (port if isinstance(port, (int, str)) else repr(port), proto if isinstance(proto, (int, str)) else repr(proto))


def _strip_for_compare(o: dict[str, Any]) -> dict[str, Any]:
    o = dict(o)
    md = dict(o.get("metadata") or {})
    md.pop("managedFields", None)
    md.pop("resourceVersion", None)
    o["metadata"] = md
    return o


class Registry:
    def __init__(self, store: Store, service_cidr: str = str(allocators.SERVICE_CIDR)) -> None:
        self.store = store
        self.services = allocators.ServiceRange(service_cidr)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _require_entry(self, res: Resource, ns: str | None, name: str) -> Entry:
        e = self.store.get(res.key(ns, name))
        if e is None:
            raise errors.not_found(res.plural, name, res.group)
        return e

    def _check_namespace(self, res: Resource, ns: str | None, creating: bool) -> None:
        if not res.namespaced:
            return
        if not ns:
            raise errors.bad_request("the namespace of the object is required")
        nse = self.store.get(f"/registry/namespaces/{ns}")
        if nse is None:
            raise errors.not_found("namespaces", ns)
        if creating and (nse.obj.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.ApiError(
                403, "Forbidden",
                f"{res.plural}{'.' + res.group if res.group else ''} \"\" is forbidden: unable to create new content "
                f"in namespace {ns} because it is being terminated",
                {"causes": [{"reason": "NamespaceTerminating", "message": f"namespace {ns} is being terminated",
                             "field": "metadata.namespace"}]})

    def _to_external(self, res: Resource, entry: Entry) -> tuple[dict[str, Any], bytes | None]:
        """The object as this resource presents it (events.k8s.io is a view of core events)."""
        if res.group == "events.k8s.io":
            return events.core_to_events_v1(entry.obj), None
        return entry.obj, entry.raw

    def _external_entry(self, res: Resource, entry: Entry) -> Entry:
        if res.group == "events.k8s.io":
            obj = events.core_to_events_v1(entry.obj)
            return Entry(entry.rev, orjson.dumps(obj), obj)
        return entry

    def _to_internal(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        if res.group == "events.k8s.io":
            return events.events_v1_to_core(obj)
        return obj

    def _storage_res(self, res: Resource) -> Resource:
        if res.group == "events.k8s.io":
            r = lookup("", "v1", "events")
            assert r is not None
            return r
        return res

    def _validate(self, res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        errs = validation.validate(res, obj, old)
        if errs:
            md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            name = md.get("name") or md.get("generateName") or "" if isinstance(md, dict) else ""
            raise errors.invalid(res.kind, str(name), errs, res.group)

    def _field_check(self, res: Resource, obj: dict[str, Any], opts: Options, warnings: list[str],
                     patching: bool = False) -> None:
        mode = opts.field_validation or "Warn"
        if opts.typed and not checks.CHECK:
            return
        unknown = fieldcheck.unknown_fields(res.group, res.version, res.kind, obj)
        if not unknown:
            return
        if opts.typed:
            checks.report(f"{opts.field_manager} sent unknown fields in a {res.kind}: {unknown}")
        if mode == "Strict":
            if patching:
                raise fieldcheck.strict_error(unknown)
            raise fieldcheck.strict_error(unknown, res.kind, res.version)
        if mode == "Warn":
            warnings.extend(fieldcheck.warnings(unknown))
        # As decoding into Kubernetes' typed objects does: unknown fields are never stored.
        fieldcheck.prune_unknown(res.group, res.version, res.kind, obj)

    def _decode_body(self, res: Resource, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request(f"Object '{res.kind}' is invalid: the request body must be a JSON object")
        kind = body.get("kind")
        api_version = body.get("apiVersion")
        if kind is not None and not isinstance(kind, str):
            raise errors.bad_request("Object 'Kind' is invalid: must be a string")
        if api_version is not None and not isinstance(api_version, str):
            raise errors.bad_request("Object 'apiVersion' is invalid: must be a string")
        if kind and kind != res.kind:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({res.api_version})" if api_version and api_version != res.api_version
                else f'Kind "{kind}" does not match the expected kind "{res.kind}"')
        if api_version and api_version != res.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({res.api_version})")
        md = body.get("metadata")
        if md is not None and not isinstance(md, dict):
            raise errors.bad_request("Object 'metadata' is invalid: must be an object")
        obj = dict(body)
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        obj["metadata"] = dict(md or {})
        return obj

    # -- reads -----------------------------------------------------------------------------------------------
    def get(self, res: Resource, ns: str | None, name: str) -> tuple[dict[str, Any], bytes | None]:
        sres = self._storage_res(res)
        e = self.store.get(sres.key(ns, name))
        if e is None:
            raise errors.not_found(res.plural, name, res.group)
        return self._to_external(res, e)

    def list(
        self,
        res: Resource,
        ns: str | None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[list[Entry], dict[str, Any]]:
        """Matching entries and the list metadata (resourceVersion, continue, remainingItemCount).

        Entries are returned as stored, so a plain JSON LIST writes their bytes without parsing them.
        """
        sres = self._storage_res(res)
        lsel = selectors.parse_label_selector(label_selector) if label_selector else None
        fsel = selectors.parse_field_selector(field_selector, res) if field_selector else None
        list_rev = self.store.rev
        start_after: str | None = None
        prefix = sres.prefix(ns)
        if continue_token:
            try:
                tok = orjson.loads(base64.urlsafe_b64decode(continue_token.encode() + b"=="))
                start_after = str(tok["start"])
                list_rev = int(tok["rv"])
                if not start_after.startswith(prefix):
                    raise ValueError("prefix")
            except Exception:
                raise errors.bad_request("continue key is not valid: invalid continue token") from None
            if list_rev < self.store.compacted_revision:
                raise errors.ApiError(
                    410, "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a "
                    "new list without the continue parameter.")
        items: list[Entry] = []
        name_only = fsel.exact_name() if fsel is not None else None
        if (name_only is not None and ns and sres.namespaced) or (name_only is not None and not sres.namespaced):
            e = self.store.get(sres.key(ns, name_only))
            candidates = [(sres.key(ns, name_only), e)] if e is not None else []
            it: Any = iter(candidates)
        else:
            it = self.store.list(prefix, start_after)
        last_key = ""
        more = False
        for key, e in it:
            if lsel is not None or fsel is not None:
                o = e.obj
                if lsel is not None and not lsel.matches((o.get("metadata") or {}).get("labels")):
                    continue
                if fsel is not None and not fsel.matches(o):
                    continue
            if limit and len(items) >= limit:
                more = True
                break
            items.append(self._external_entry(res, e))
            last_key = key
        meta: dict[str, Any] = {"resourceVersion": str(list_rev)}
        if more:
            tok = {"v": "meta.k8s.io/v1", "rv": list_rev, "start": last_key}
            meta["continue"] = base64.urlsafe_b64encode(orjson.dumps(tok)).decode().rstrip("=")
            if lsel is None and fsel is None:
                meta["remainingItemCount"] = self.store.count_after(prefix, last_key)
        return items, meta

    def watch(self, res: Resource, ns: str | None, resource_version: str) -> tuple[Watch, builtins.list[Entry]]:
        """A store watch for this resource plus the synthetic initial state, when asked for one.

        ``resource_version`` "" or "0": initial ADDED events for every existing object, then live;
        a number: replay after it (410 Gone if compacted).
        """
        sres = self._storage_res(res)
        prefix = sres.prefix(ns)
        initial: builtins.list[Entry] = []
        if resource_version in ("", "0"):
            initial = [e for _, e in self.store.list(prefix)]
            rev = self.store.rev
        else:
            try:
                rev = int(resource_version)
            except ValueError:
                raise errors.bad_request(f'invalid resource version "{resource_version}"') from None
        try:
            w = self.store.watch(prefix, rev)
        except Compacted:
            raise errors.gone(f"too old resource version: {rev} ({self.store.compacted_revision})") from None
        return w, initial

    # -- create ----------------------------------------------------------------------------------------------
    async def create(self, res: Resource, ns: str | None, body: Any, opts: Options) -> Result:
        if res.group == "events.k8s.io":
            body = self._to_internal(res, self._decode_body(res, body))
            sres = self._storage_res(res)
            r = await self.create(sres, ns, body, opts)
            r.obj, r.raw = events.core_to_events_v1(r.obj), None
            return r
        obj = self._decode_body(res, body)
        warnings: list[str] = []
        self._field_check(res, obj, opts, warnings)
        md = obj["metadata"]
        if res.namespaced:
            body_ns = md.get("namespace")
            if body_ns and ns and body_ns != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request")
            ns = ns or body_ns
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        if not md.get("name") and isinstance(md.get("generateName"), str) and md.get("generateName"):
            md["name"] = md["generateName"] + random_suffix()
        self._check_namespace(res, ns, creating=True)
        self._prepare_create(res, obj)
        defaults.apply_defaults(res, obj, creating=True)
        name = md.get("name")
        key = res.key(ns, name) if isinstance(name, str) and name else ""
        if key and self.store.get(key) is not None:
            raise errors.already_exists(res.plural, name, res.group)
        self._allocate(res, obj, None)
        self._validate(res, obj, None)
        mgr = _manager(opts)
        obj = patch.update_managed_fields(None, obj, mgr, "Update", res.group, res.version, res.kind, now_rfc3339()) \
            if not md.get("managedFields") else obj
        if opts.dry_run:
            obj["metadata"]["resourceVersion"] = ""
            return Result(obj, None, 201, warnings)
        try:
            e = await self.store.create(key, obj)
        except KeyExists:
            raise errors.already_exists(res.plural, name, res.group) from None
        return Result(obj, e.raw, 201, warnings)  # obj is what the store keeps (it may drop its parsed copy)

    def _prepare_create(self, res: Resource, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        md["uid"] = new_uid()
        md["creationTimestamp"] = now_rfc3339()
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        if res.kind in GENERATION_KINDS:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        if "status" in res.subresources or res.kind in ("Pod", "Namespace"):
            if res.kind == "Pod":
                obj["status"] = {}
                defaults.default_pod_status(obj)
            elif res.kind == "Namespace":
                obj["status"] = {"phase": "Active"}
            elif res.kind == "Service":
                obj["status"] = {"loadBalancer": {}}
            elif res.kind == "Node":
                pass  # kubelets register nodes with their status
            else:
                obj["status"] = {}

    def _allocate(self, res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if res.kind != "Service":
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        stype = spec.get("type", "ClusterIP")
        # Allocation runs before validation: skip what is not even shaped like ports (validation reports it).
        ports = [p for p in spec["ports"] if isinstance(p, dict)] if isinstance(spec.get("ports"), list) else []
        others = [e.obj for k, e in self.store.list("/registry/services/")
                  if old is None or (e.obj.get("metadata") or {}).get("uid") != (old.get("metadata") or {}).get("uid")]
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        elif old is not None and (old.get("spec") or {}).get("clusterIP") and not spec.get("clusterIP"):
            spec["clusterIP"] = old["spec"]["clusterIP"]
            spec["clusterIPs"] = old["spec"].get("clusterIPs") or [old["spec"]["clusterIP"]]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        elif old is None or not (old.get("spec") or {}).get("clusterIP"):
            used = allocators.used_ips(others)
            if not (obj["metadata"].get("name") == "kubernetes" and obj["metadata"].get("namespace") == "default"):
                used.add(self.services.first_ip)
            if spec.get("clusterIP"):
                allocators.check_ip(spec["clusterIP"], used, "spec.clusterIPs", self.services)
            else:
                spec["clusterIP"] = allocators.allocate_ip(used, self.services)
            spec["clusterIPs"] = [spec["clusterIP"]]
        if stype in ("NodePort", "LoadBalancer"):
            used_ports = allocators.used_node_ports(others)
            old_ports = {_port_key(p): p.get("nodePort")
                         for p in ((old or {}).get("spec") or {}).get("ports") or [] if isinstance(p, dict)}
            mine: set[int] = set()
            for i, p in enumerate(ports):
                np_ = p.get("nodePort")
                if isinstance(np_, int) and np_:
                    if np_ in used_ports or np_ in mine:
                        raise errors.invalid(res.kind, obj["metadata"].get("name", ""), [
                            errors.invalid_value(f"spec.ports[{i}].nodePort", np_, "provided port is already allocated")])
                    mine.add(np_)
            for p in ports:
                if not isinstance(p.get("nodePort"), int) or not p["nodePort"]:
                    prev = old_ports.get(_port_key(p))
                    if prev and prev not in used_ports and prev not in mine:
                        p["nodePort"] = prev
                    else:
                        p["nodePort"] = allocators.allocate_node_port(used_ports | mine)
                    mine.add(p["nodePort"])
        else:
            for p in ports:
                p.pop("nodePort", None)

    # -- update ----------------------------------------------------------------------------------------------
    async def update(self, res: Resource, ns: str | None, name: str, body: Any, opts: Options,
                     subresource: str = "") -> Result:
        if res.group == "events.k8s.io":
            body = self._to_internal(res, self._decode_body(res, body))
            r = await self.update(self._storage_res(res), ns, name, body, opts, subresource)
            r.obj, r.raw = events.core_to_events_v1(r.obj), None
            return r
        if subresource == "scale":
            return await self._update_scale(res, ns, name, body, opts)
        obj = self._decode_body(res, body)
        md = obj["metadata"]
        if md.get("name") and md["name"] != name:
            raise errors.bad_request(f"the name of the object ({md['name']}) does not match the name on the URL ({name})")
        if res.namespaced and md.get("namespace") and ns and md["namespace"] != ns:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        md["name"] = name
        key = res.key(ns, name)
        cur = self.store.get(key)
        if cur is None:
            if res.kind in CREATE_ON_UPDATE and not subresource:
                return await self.create(res, ns, obj, opts)
            raise errors.not_found(res.plural, name, res.group)
        expected: int | None = None
        rv = md.get("resourceVersion")
        if rv:
            try:
                expected = int(rv)
            except (TypeError, ValueError):
                raise errors.bad_request(f'invalid resourceVersion "{rv}"') from None
            if expected != cur.rev:
                raise errors.conflict(res.plural, name, res.group)
        return await self._commit_update(res, ns, name, cur, obj, opts, subresource, "Update")

    async def _commit_update(self, res: Resource, ns: str | None, name: str, cur: Entry, obj: dict[str, Any],
                             opts: Options, subresource: str, operation: str,
                             managed: bool = True, patching: bool = False) -> Result:
        warnings: list[str] = []
        if not subresource and operation != "Apply":
            self._field_check(res, obj, opts, warnings, patching)
        old = cur.obj
        new = self._prepare_update(res, old, obj, subresource)
        if subresource != "finalize":
            defaults.apply_defaults(res, new)
        if subresource == "status":
            errs = validation.validate_status(res, new, old)
            if errs:
                raise errors.invalid(res.kind, name, errs, res.group)
        else:
            self._allocate(res, new, old)
            self._validate(res, new, old)
        if managed:
            new = patch.update_managed_fields(old, new, _manager(opts), operation, res.group, res.version, res.kind,
                                              now_rfc3339())
        # Finalizers gone on an object being deleted: the deletion completes now.
        nmd = new["metadata"]
        if nmd.get("deletionTimestamp") and not nmd.get("finalizers") and not (
                res.kind == "Pod" and nmd.get("deletionGracePeriodSeconds")) and not (
                res.kind == "Namespace" and (new.get("spec") or {}).get("finalizers")):
            if opts.dry_run:
                return Result(new, None, 200, warnings)
            try:
                e = await self.store.delete(res.key(ns, name), cur.rev)
            except (KeyNotFound, RevisionConflict):
                raise errors.conflict(res.plural, name, res.group) from None
            return Result(e.obj, e.raw, 200, warnings)
        if _strip_for_compare(new) == _strip_for_compare(old):
            return Result(old, cur.raw, 200, warnings)  # no-op: no new revision, as upstream
        if opts.dry_run:
            return Result(new, None, 200, warnings)
        try:
            e = await self.store.update(res.key(ns, name), new, cur.rev)
        except RevisionConflict:
            raise errors.conflict(res.plural, name, res.group) from None
        except KeyNotFound:
            raise errors.not_found(res.plural, name, res.group) from None
        return Result(new, e.raw, 200, warnings)

    def _prepare_update(self, res: Resource, old: dict[str, Any], obj: dict[str, Any], subresource: str) -> dict[str, Any]:
        omd = old.get("metadata") or {}
        md = obj["metadata"]
        # System fields are the server's.
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in omd:
                md[k] = omd[k]
            else:
                md.pop(k, None)
        if res.namespaced:
            md["namespace"] = omd.get("namespace")
        md["name"] = omd.get("name", md.get("name"))  # immutable: a patch removing it must not store a nameless object
        md.pop("resourceVersion", None)
        md.pop("selfLink", None)
        if md.get("managedFields") is None and omd.get("managedFields"):
            md["managedFields"] = omd["managedFields"]
        has_status = "status" in res.subresources
        if subresource == "status":
            new = dict(old)
            if res.group == "apps" and res.kind in ("Deployment", "ReplicaSet"):
                # Upstream's status strategies for these reset only the spec (and a Deployment's labels): the
                # deployment controller records revision annotations with the status update.
                new["metadata"] = md
                if res.kind == "Deployment":
                    if "labels" in omd:
                        md["labels"] = omd["labels"]
                    else:
                        md.pop("labels", None)
            else:
                new["metadata"] = dict(omd)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            return new
        if subresource == "finalize":
            new = dict(old)
            new["spec"] = dict(old.get("spec") or {})
            new["spec"]["finalizers"] = (obj.get("spec") or {}).get("finalizers") or []
            return new
        new = obj
        if has_status or res.kind == "Namespace":
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if res.kind == "Namespace":
            new["spec"] = old.get("spec", {})
        if res.kind in GENERATION_KINDS and _spec_changed(old, new):
            md["generation"] = int(omd.get("generation") or 1) + 1
        return new

    # -- scale -----------------------------------------------------------------------------------------------
    def scale_of(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        md = obj.get("metadata") or {}
        sel = (obj.get("spec") or {}).get("selector") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in md},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": selectors.selector_to_string(sel, empty="") if sel else ""},
        }

    def get_scale(self, res: Resource, ns: str | None, name: str) -> dict[str, Any]:
        return self.scale_of(res, self._require_entry(res, ns, name).obj)

    async def _update_scale(self, res: Resource, ns: str | None, name: str, body: Any, opts: Options) -> Result:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a Scale object")
        cur = self._require_entry(res, ns, name)
        rv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body.get("metadata"), dict) else None
        if rv and str(rv) != str(cur.rev):
            raise errors.conflict(res.plural, name, res.group)
        spec = body.get("spec")
        replicas = spec.get("replicas", 0) if isinstance(spec, dict) else None
        if spec is not None and not isinstance(spec, dict):
            raise errors.bad_request("Scale.spec must be an object")
        errs = validation.validate_scale_replicas(replicas)
        if errs:
            raise errors.invalid("Scale", name, errs, "autoscaling")
        new = cur.copy()
        new.setdefault("spec", {})["replicas"] = replicas
        r = await self._commit_update(res, ns, name, cur, new, opts, "", "Update")
        return Result(self.scale_of(res, r.obj), None, 200, r.warnings)

    # -- patch -----------------------------------------------------------------------------------------------
    async def patch(self, res: Resource, ns: str | None, name: str, content_type: str, body: bytes, opts: Options,
                    subresource: str = "") -> Result:
        ct = content_type.split(";", 1)[0].strip().lower()
        if ct not in PATCH_TYPES:
            raise errors.ApiError(415, "UnsupportedMediaType", f'the server does not support the patch type "{ct}"' if ct
                                  else "the content type of the patch is required")
        if res.group == "events.k8s.io":  # apply too: it would store the events.k8s.io shape as a core Event
            raise errors.method_not_allowed("patching events.k8s.io events is not supported; patch core/v1 events")
        if ct == PATCH_APPLY:
            return await self.apply(res, ns, name, body, opts, subresource)
        try:
            doc = check_depth(orjson.loads(body))
        except orjson.JSONDecodeError as ex:
            raise errors.bad_request(f"error decoding patch: {ex}") from None
        cur = self._require_entry(res, ns, name)
        if subresource == "scale":
            view = self.scale_of(res, cur.obj)
            patched = self._apply_patch(ct, view, doc, "autoscaling", "v1", "Scale")
            return await self._update_scale(res, ns, name, patched, opts)
        base = cur.copy()
        patched = self._apply_patch(ct, base, doc, res.group, res.version, res.kind)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch produced something that is not an object")
        pmd = patched.get("metadata")
        if not isinstance(pmd, dict):
            raise errors.bad_request("metadata must be an object")
        if pmd.get("name") not in (None, name):
            raise errors.bad_request(f"the name of the object ({pmd.get('name')}) does not match the name on the URL ({name})")
        if res.namespaced and pmd.get("namespace") not in (None, ns):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        rv = pmd.get("resourceVersion")
        if rv and str(rv) != str(cur.rev):
            raise errors.conflict(res.plural, name, res.group)
        obj = self._decode_body(res, patched)
        return await self._commit_update(res, ns, name, cur, obj, opts, subresource, "Update", patching=True)

    def _apply_patch(self, ct: str, base: dict[str, Any], doc: Any, group: str, version: str, kind: str) -> Any:
        if ct == PATCH_JSON:
            return patch.json_patch(base, doc)
        if ct == PATCH_MERGE:
            if not isinstance(doc, dict):
                raise errors.bad_request("merge patch must be a JSON object")
            return patch.merge_patch(base, doc)
        if not isinstance(doc, dict):
            raise errors.bad_request("strategic merge patch must be a JSON object")
        return patch.strategic_merge_patch(base, doc, group, version, kind)

    async def apply(self, res: Resource, ns: str | None, name: str, body: bytes, opts: Options,
                    subresource: str = "") -> Result:
        import yaml

        if not opts.field_manager:
            raise errors.bad_request("PATCH, application/apply-patch+yaml requests must include the fieldManager query parameter")
        try:
            doc = load_yaml(body)
        except (yaml.YAMLError, ValueError, RecursionError) as ex:  # ValueError: an int over 4300 digits
            raise errors.bad_request(f"error decoding YAML: {ex}") from None
        applied = self._decode_body(res, doc)
        if applied["metadata"].get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({applied['metadata'].get('name')}) does not match the name on the URL ({name})")
        applied["metadata"]["name"] = name
        if res.namespaced and applied["metadata"].get("namespace") not in (None, ns):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        warnings: list[str] = []
        self._field_check(res, applied, opts, warnings)
        cur = self.store.get(res.key(ns, name))
        now = now_rfc3339()
        if cur is None:
            if subresource:
                raise errors.not_found(res.plural, name, res.group)
            new = patch.server_side_apply(None, applied, opts.field_manager, opts.force, res.group, res.version,
                                          res.kind, now)
            r = await self._create_applied(res, ns, new, opts)
            r.warnings = (r.warnings or []) + warnings
            return r
        new = patch.server_side_apply(cur.copy(), applied, opts.field_manager, opts.force, res.group, res.version,
                                      res.kind, now)
        obj = self._decode_body(res, new)
        r = await self._commit_update(res, ns, name, cur, obj, opts, subresource, "Apply", managed=False)
        r.warnings = (r.warnings or []) + warnings
        return r

    async def _create_applied(self, res: Resource, ns: str | None, obj: dict[str, Any], opts: Options) -> Result:
        o = Options(opts.dry_run, "Ignore", opts.field_manager, opts.force, opts.user_agent)
        return await self.create(res, ns, obj, o)

    # -- delete ----------------------------------------------------------------------------------------------
    async def delete(self, res: Resource, ns: str | None, name: str, options: dict[str, Any] | None,
                     dry_run: bool = False) -> Result:
        sres = self._storage_res(res)
        if sres is not res:
            r = await self.delete(sres, ns, name, options, dry_run)
            return r
        options = options or {}
        if res.kind == "Namespace" and name in IMMORTAL_NAMESPACES:
            raise errors.ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                                  {"name": name, "kind": "namespaces"})
        key = res.key(ns, name)
        cur = self.store.get(key)
        if cur is None:
            raise errors.not_found(res.plural, name, res.group)
        pre = options.get("preconditions") or {}
        if isinstance(pre, dict):
            omd = cur.obj.get("metadata") or {}
            if pre.get("uid") and pre["uid"] != omd.get("uid"):
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {omd.get('uid')}")
            if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(cur.rev):
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                      f"ResourceVersion in object meta: {cur.rev}")
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid("DeleteOptions", "", [errors.not_supported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan", "nil"])])
        grace = options.get("gracePeriodSeconds")
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise errors.bad_request("gracePeriodSeconds must be an integer")
        obj = cur.copy_top("status")  # only keys of metadata and status change below
        md = obj["metadata"]
        finalizers = list(md.get("finalizers") or [])
        if policy is not None and not md.get("deletionTimestamp"):
            # As upstream: an explicit policy replaces the garbage collector's finalizers with its own.
            finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
        pending = bool(finalizers)
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
            pending = True
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
            pending = True
        if res.kind == "Namespace":
            if (obj.get("spec") or {}).get("finalizers"):
                pending = True
            obj.setdefault("status", {})["phase"] = "Terminating"
        graceful = 0
        if res.kind == "Pod":
            graceful = self._pod_grace(obj, grace)
            if md.get("deletionTimestamp") and graceful >= int(md.get("deletionGracePeriodSeconds") or 0) and graceful:
                # Already terminating with a shorter or equal grace period: nothing changes.
                return Result(cur.obj, cur.raw, 200)
        if pending or graceful > 0:
            if not md.get("deletionTimestamp") or (graceful and graceful < int(md.get("deletionGracePeriodSeconds") or 0)):
                # An absurd grace period (up to 2**63-1 s) ends at 9999-12-31, the last representable timestamp.
                md["deletionTimestamp"] = now_rfc3339(min(time.time() + graceful, 253402300799.0))
                md["deletionGracePeriodSeconds"] = graceful
            md["finalizers"] = finalizers
            if obj == cur.obj:
                return Result(cur.obj, cur.raw, 202 if pending else 200)
            if dry_run:
                return Result(obj, None, 202)
            e = await self.store.update(key, obj, cur.rev)
            return Result(obj, e.raw, 202 if pending else 200)
        if dry_run:
            return Result(cur.obj, cur.raw, 200)
        e = await self.store.delete(key, cur.rev)
        if res.kind in RETURN_DELETED_OBJECT:
            return Result(e.obj, e.raw, 200)
        return Result(self.success_status(res, name, (e.obj.get("metadata") or {}).get("uid", "")), None, 200)

    def _pod_grace(self, pod: dict[str, Any], requested: int | None) -> int:
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0  # never scheduled or already finished: upstream deletes at once
        if requested is not None:
            return max(0, requested)
        g = spec.get("terminationGracePeriodSeconds", 30)
        return int(g) if isinstance(g, int) else 30

    def success_status(self, res: Resource, name: str, uid: str) -> dict[str, Any]:
        det: dict[str, Any] = {"name": name, "kind": res.plural, "uid": uid}
        if res.group:
            det["group"] = res.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": det}

    async def delete_collection(self, res: Resource, ns: str | None, label_selector: str, field_selector: str,
                                options: dict[str, Any] | None, dry_run: bool = False) -> dict[str, Any]:
        items, _meta = self.list(res, ns, label_selector, field_selector)
        deleted = []
        for e in items:
            obj = e.obj
            md = obj.get("metadata") or {}
            try:
                r = await self.delete(res, md.get("namespace"), md.get("name", ""), options, dry_run)
            except errors.ApiError as ex:
                if ex.code == 404:
                    continue
                raise
            deleted.append(r.obj if r.obj.get("kind") != "Status" else obj)
        return {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": {"resourceVersion": str(self.store.rev)},
                "items": deleted}

    # -- pods/binding ----------------------------------------------------------------------------------------
    async def bind(self, res: Resource, ns: str | None, name: str, body: Any, opts: Options) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("target"), dict):
            raise errors.bad_request("Binding must have a target")
        target = body["target"]
        node = target.get("name")
        errs: list[errors.FieldError] = []
        if not node or not isinstance(node, str):
            errs.append(errors.required("target.name"))
        if target.get("kind") not in (None, "", "Node"):
            errs.append(errors.not_supported("target.kind", target.get("kind"), ["Node", "<empty>"]))
        if errs:
            raise errors.invalid("Binding", name, errs)
        cur = self._require_entry(res, ns, name)
        pod = cur.copy_top("spec", "status")  # sets spec.nodeName and status.conditions (and the revision)
        spec = pod.setdefault("spec", {})
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.conflict("pods", name, "", "pod is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise errors.conflict("pods", name, "", f'pod {name} is already assigned to node "{spec["nodeName"]}"')
        spec["nodeName"] = node
        st = pod.setdefault("status", {})
        conds = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now_rfc3339()})
        st["conditions"] = conds
        if not opts.dry_run:
            await self.store.update(res.key(ns, name), pod, cur.rev)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    # -- bootstrap -------------------------------------------------------------------------------------------
    async def ensure(self, res_plural: str, group: str, ns: str | None, obj: dict[str, Any]) -> None:
        """Create an object if it does not exist (bootstrap of built-in namespaces and services)."""
        res = lookup(group, "v1", res_plural)
        assert res is not None
        name = obj["metadata"]["name"]
        if self.store.get(res.key(ns, name)) is None:
            try:
                await self.create(res, ns, obj, Options(field_manager="tinykube", field_validation="Ignore"))
            except errors.ApiError as ex:
                if ex.code != 409:
                    raise

