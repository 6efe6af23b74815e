"""A container's command line, working directory and environment, as the kubelet and its runtime build them.

Everything here is a pure function of the pod (a plain dict as the API stores it),
the image's config and what a :class:`Lookup` answers about ConfigMaps, Secrets and
Services; nothing touches the disk or the network, so the agent can call it on every
container start and tests can pin each rule down.

The environment
---------------
Upstream splits the work in two: the kubelet computes a list of variables and the
container runtime lays them over the image's ``ENV``. We keep that split:

* :func:`generated_env` is the kubelet's part. Three layers, each overriding the one
  before it:

  1. *service links*: for every Service of the pod's namespace that has a cluster IP
     (not ``""``/``"None"``), when ``spec.enableServiceLinks`` is true (the default),
     the ``{SVC}_SERVICE_HOST``/``_SERVICE_PORT``/``_SERVICE_PORT_{NAME}`` variables and
     the docker-link style ``{SVC}_PORT``, ``{SVC}_PORT_{port}_{PROTO}[_PROTO|_PORT|_ADDR]``.
     The ``kubernetes`` Service of the ``default`` namespace is always included, even
     with service links off; a Service of the same name in the pod's own namespace wins
     over it when links are on (upstream's rule). Services are taken in name order.
  2. ``envFrom``: every key of the ConfigMap's ``data`` / the Secret's decoded ``data``,
     behind the optional ``prefix``, sources in list order and keys in sorted order.
  3. ``env``: in declaration order. ``value`` is ``$(VAR)``-expanded against what is
     defined so far: earlier ``env`` entries, ``envFrom`` keys and service variables
     (not the image's ``ENV``), exactly upstream's mapping. ``valueFrom`` resolves a
     ``fieldRef``, ``resourceFieldRef``, ``configMapKeyRef`` or ``secretKeyRef``.

  Missing ConfigMaps/Secrets/keys raise :class:`ContainerConfigError` with the
  kubelet's wording unless the reference says ``optional: true``, in which case the
  source (or that one variable) is skipped.

* :func:`container_env` is the runtime's part: ``HOSTNAME`` (the pod's hostname, as
  containerd sets it), then the image's ``ENV`` strings, then the generated list.

Position rule (one rule for every layer, the way containerd merges its lists): a name
keeps the position where it first appeared and takes the value of its last
definition. So ``PATH`` from the image stays where the image put it even when the pod
overrides it, and a pod that sets ``HOSTNAME`` itself replaces the runtime's value.
Upstream builds the kubelet's list from a Go map (random order); our order is
deterministic instead, which is the only intended difference.

envFrom key names
-----------------
tinykube's API accepts environment variable names under the *relaxed* rule (any
printable ASCII except ``=``; the ``RelaxedEnvironmentVariableValidation`` behaviour
that v1.32 enables by default, where the kubelet no longer drops keys). So by default
an ``envFrom`` key is skipped only when it cannot be an environment variable at all
(empty, ``=``, non-printable). ``strict_names=True`` restores the historical kubelet
rule (a C-like identifier, ``[-._a-zA-Z][-._a-zA-Z0-9]*``) under which keys such as
``1badkey`` are dropped. Skipped keys are reported through the ``skipped`` list (one
:class:`SkippedKeys` per source, whose ``message`` is the text of upstream's
``InvalidEnvironmentVariableNames`` warning event) so the caller can record the event.

Command line
------------
:func:`command_line` applies the rules Kubernetes documents for ``command``/``args``
over the image's ``Entrypoint``/``Cmd``: ``command`` replaces the entrypoint and drops
``Cmd`` (``args``, if any, follow it); ``args`` alone replaces ``Cmd`` and keeps the
entrypoint; neither runs ``Entrypoint + Cmd``. Both are ``$(VAR)``-expanded first.
Upstream expands them against the kubelet's list only, so pass
``dict(generated_env(...))`` to get exactly that (passing the full container
environment also lets image variables expand). Nothing to run is the runtime's
``no command specified`` error, which the kubelet reports as ``CreateContainerError``.
"""

from __future__ import annotations

import base64
import binascii
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..api import gofmt
from ..api.validation import is_qualified_name
from ..scheduler.resources import milli_value, value

CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"
INVALID_ENV_NAMES_REASON = "InvalidEnvironmentVariableNames"
NO_COMMAND = "no command specified"

HOSTNAME_MAX_LEN = 63
_MASTER_SERVICES = ("kubernetes",)
_STRICT_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


class ContainerConfigError(Exception):
    """The container cannot be configured; ``reason`` is the waiting reason the kubelet reports."""

    def __init__(self, message: str, reason: str = CREATE_CONTAINER_CONFIG_ERROR) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Lookup(Protocol):
    """Read access to the objects a pod's environment and volumes refer to (None: not found)."""

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def services(self, namespace: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class SkippedKeys:
    """envFrom keys of one source that were left out because they are not valid variable names."""

    kind: str  # "configMap" or "secret", as upstream's event words it
    namespace: str
    name: str
    keys: tuple[str, ...]

    @property
    def reason(self) -> str:
        return INVALID_ENV_NAMES_REASON

    @property
    def message(self) -> str:
        return (f"Keys [{', '.join(self.keys)}] from the EnvFrom {self.kind} {self.namespace}/{self.name} "
                "were skipped since they are considered invalid environment variable names.")


# --------------------------------------------------------------------------------------------- expansion


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion.

    ``$(NAME)`` becomes ``env[NAME]`` when defined and stays as written otherwise;
    ``$$`` is an escaped ``$`` (so ``$$(X)`` gives ``$(X)``); a ``$`` followed by
    anything else, an unterminated ``$(`` and a trailing ``$`` are kept literally.
    """
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0 or dollar == n - 1:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        nxt = text[dollar + 1]
        if nxt == "$":
            out.append("$")
            i = dollar + 2
        elif nxt == "(":
            close = text.find(")", dollar + 2)
            if close < 0:
                out.append("$(")
                i = dollar + 2
            else:
                name = text[dollar + 2:close]
                found = env.get(name)
                out.append(found if found is not None else f"$({name})")
                i = close + 1
        else:
            out.append("$" + nxt)
            i = dollar + 2
    return "".join(out)


class _Chain(Mapping[str, str]):
    """First mapping that defines a name wins (upstream's MappingFuncFor over several contexts)."""

    def __init__(self, *maps: Mapping[str, str]) -> None:
        self._maps = maps

    def __getitem__(self, key: str) -> str:
        for m in self._maps:
            if key in m:
                return m[key]
        raise KeyError(key)

    def __iter__(self) -> Any:
        seen: set[str] = set()
        for m in self._maps:
            for k in m:
                if k not in seen:
                    seen.add(k)
                    yield k

    def __len__(self) -> int:
        return len(set().union(*self._maps)) if self._maps else 0


# --------------------------------------------------------------------------------------------- helpers


def _dict(obj: Any, key: str) -> dict[str, Any]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, dict) else {}


def _list(obj: Any, key: str) -> list[Any]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, list) else []


def _str(obj: Any, key: str) -> str:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, str) else ""


def merge_env(*layers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Lay lists of variables over each other: first position of a name, last value."""
    merged: dict[str, str] = {}
    for layer in layers:
        for name, val in layer:
            merged[name] = val  # dict keeps the first insertion position on reassignment
    return list(merged.items())


def parse_image_env(image_env: Iterable[str]) -> list[tuple[str, str]]:
    """Docker-style ``K=V`` strings to pairs; entries without ``=`` carry no value and are dropped."""
    out: list[tuple[str, str]] = []
    for item in image_env or ():
        name, sep, val = item.partition("=")
        if sep and name:
            out.append((name, val))
    return out


def decode_bytes(raw: bytes) -> str:
    """Bytes as an environment value: UTF-8, undecodable bytes kept (os.environ's surrogateescape)."""
    return raw.decode("utf-8", "surrogateescape")


def _decode_base64_map(values: Mapping[str, Any], field: str, kind: str) -> dict[str, bytes]:
    """Base64 values of a ``data``/``binaryData`` map decoded; a bad one is a ValueError naming key and kind."""
    out: dict[str, bytes] = {}
    for key, b64 in values.items():
        try:
            out[key] = base64.b64decode(b64 or "", validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise ValueError(f"invalid base64 {field} for key {key} in {kind}") from exc
    return out


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's decoded ``data`` (base64 in the API), with any ``stringData`` laid over it."""
    out = _decode_base64_map(_dict(secret, "data"), "data", "Secret")
    for key, text in _dict(secret, "stringData").items():
        out[key] = str(text).encode()
    return out


def configmap_binary_data(cm: Mapping[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's decoded ``binaryData`` (base64 in the API)."""
    return _decode_base64_map(_dict(cm, "binaryData"), "binaryData", "ConfigMap")


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """The pod's hostname: ``spec.hostname`` or the pod name, cut to 63 characters without a trailing ``-``/``.``.

    Host-network pods see the node's own hostname, as the runtime gives them.
    """
    spec = _dict(pod, "spec")
    if spec.get("hostNetwork") is True:
        return socket.gethostname()
    name = _str(_dict(pod, "metadata"), "name")
    hostname = _str(spec, "hostname") or name
    if len(hostname) > HOSTNAME_MAX_LEN:
        hostname = hostname[:HOSTNAME_MAX_LEN].rstrip("-.")
    return hostname


def _valid_key(name: str, strict: bool) -> bool:
    if strict:
        return _STRICT_NAME.fullmatch(name) is not None
    return bool(name) and all(" " <= ch <= "~" for ch in name) and "=" not in name


# --------------------------------------------------------------------------------------------- service links


def env_var_name(name: str) -> str:
    """A Service name as a variable prefix: upper case, ``.``/``-`` to ``_``, ``_`` before a leading digit."""
    out = name.replace(".", "_").replace("-", "_").upper()
    return "_" + out if out[:1].isdigit() else out


def _has_cluster_ip(svc: Mapping[str, Any]) -> bool:
    ip = _str(_dict(svc, "spec"), "clusterIP")
    return ip not in ("", "None")


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_env(services: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The variables that describe ``services`` (those without a cluster IP are ignored), in the given order."""
    out: list[tuple[str, str]] = []
    for svc in services:
        if not _has_cluster_ip(svc):
            continue
        spec = _dict(svc, "spec")
        ports = [p for p in _list(spec, "ports") if isinstance(p, dict)]
        if not ports:
            continue
        ip = _str(spec, "clusterIP")
        prefix = env_var_name(_str(_dict(svc, "metadata"), "name"))
        out.append((prefix + "_SERVICE_HOST", ip))
        out.append((prefix + "_SERVICE_PORT", str(ports[0].get("port"))))
        for p in ports:
            if p.get("name"):
                out.append((prefix + "_SERVICE_PORT_" + env_var_name(str(p["name"])), str(p.get("port"))))
        for i, p in enumerate(ports):
            proto = str(p.get("protocol") or "TCP")
            port = int(p.get("port") or 0)
            url = f"{proto.lower()}://{_host_port(ip, port)}"
            if i == 0:
                out.append((prefix + "_PORT", url))
            base = f"{prefix}_PORT_{port}_{proto.upper()}"
            out.append((base, url))
            out.append((base + "_PROTO", proto.lower()))
            out.append((base + "_PORT", str(port)))
            out.append((base + "_ADDR", ip))
    return out


def pod_services(lookup: Lookup, namespace: str, enable_service_links: bool) -> list[dict[str, Any]]:
    """The Services whose variables a pod of ``namespace`` gets, in name order (see the module docstring)."""
    chosen: dict[str, dict[str, Any]] = {}
    for svc in lookup.services("default"):
        name = _str(_dict(svc, "metadata"), "name")
        if name in _MASTER_SERVICES and _has_cluster_ip(svc):
            chosen[name] = svc
    if enable_service_links:
        for svc in lookup.services(namespace):
            meta = _dict(svc, "metadata")
            if meta.get("namespace") not in (None, namespace) or not _has_cluster_ip(svc):
                continue
            chosen[_str(meta, "name")] = svc
    return [chosen[name] for name in sorted(chosen)]


# --------------------------------------------------------------------------------------------- downward API


def _split_subscript(path: str) -> tuple[str, str] | None:
    """``metadata.labels['k']`` → (``metadata.labels``, ``k``); None when not subscripted."""
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, key


def format_map(m: Mapping[str, str]) -> str:
    """``key="value"`` lines in key order, no trailing newline (downward API label/annotation files)."""
    return "\n".join(f"{k}={gofmt.quote(str(m[k]))}" for k in sorted(m))


_POD_FIELDS = frozenset({
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
    "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName",
    "status.phase", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
})


def field_ref_value(pod: Mapping[str, Any], ref: Mapping[str, Any], *, pod_ips: Sequence[str] = (),
                    host_ips: Sequence[str] = (), node_name: str = "") -> str:
    """The value a ``fieldRef`` selects; raises ValueError with upstream's text for anything unsupported."""
    version = ref.get("apiVersion") or "v1"
    if version != "v1":
        raise ValueError(f"unsupported pod version: {version}")
    path = str(ref.get("fieldPath") or "")
    meta = _dict(pod, "metadata")
    sub = _split_subscript(path)
    if sub is not None:
        head, key = sub
        if head == "metadata.annotations":
            errs = is_qualified_name(key.lower())
            if errs:
                raise ValueError(f"invalid key subscript in {path}: {';'.join(errs)}")
            return str(_dict(meta, "annotations").get(key, ""))
        if head == "metadata.labels":
            errs = is_qualified_name(key)
            if errs:
                raise ValueError(f"invalid key subscript in {path}: {';'.join(errs)}")
            return str(_dict(meta, "labels").get(key, ""))
        raise ValueError(f"field label does not support subscript: {path}")
    if path == "spec.host":  # an old client's name for spec.nodeName
        path = "spec.nodeName"
    if path not in _POD_FIELDS:
        raise ValueError(f"field label not supported: {path}")
    spec = _dict(pod, "spec")
    if path == "spec.nodeName":
        return _str(spec, "nodeName") or node_name
    if path == "spec.serviceAccountName":
        return _str(spec, "serviceAccountName")
    if path == "status.hostIP":
        return host_ips[0] if host_ips else ""
    if path == "status.hostIPs":
        return ",".join(host_ips)
    if path == "status.podIP":
        return pod_ips[0] if pod_ips else ""
    if path == "status.podIPs":
        return ",".join(pod_ips)
    if path == "metadata.annotations":
        return format_map(_dict(meta, "annotations"))
    if path == "metadata.labels":
        return format_map(_dict(meta, "labels"))
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return _str(meta, path.split(".", 1)[1])
    raise ValueError(f"unsupported fieldPath: {path}")


_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")


def _find_container(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    spec = _dict(pod, "spec")
    for key in ("containers", "initContainers"):
        for ctr in _list(spec, key):
            if isinstance(ctr, dict) and ctr.get("name") == name:
                return ctr
    raise ValueError(f"container {name} not found")


def resource_field_ref_value(pod: Mapping[str, Any], container: Mapping[str, Any] | None, ref: Mapping[str, Any],
                             node_allocatable: Mapping[str, str] | None = None) -> str:
    """The value a ``resourceFieldRef`` selects, divided by its divisor and rounded up.

    ``containerName`` picks the container (else ``container``). A cpu, memory or
    ephemeral-storage limit that is unset (or zero) reads as the node's allocatable
    amount when ``node_allocatable`` is given, as the kubelet defaults it.
    """
    cname = ref.get("containerName")
    if cname:
        container = _find_container(pod, str(cname))
    if container is None:
        raise ValueError("no container given for resourceFieldRef")
    res = _dict(container, "resources")
    resource = str(ref.get("resource") or "")
    kind, _, rname = resource.partition(".")
    supported = rname in _DEFAULTED_LIMITS or rname.startswith("hugepages-")
    if kind not in ("limits", "requests") or not supported:
        raise ValueError(f"unsupported container resource : {resource}")
    amounts = dict(_dict(res, kind))
    if kind == "limits" and rname in _DEFAULTED_LIMITS and node_allocatable:
        cur = amounts.get(rname)
        if (cur is None or milli_value(cur) == 0) and rname in node_allocatable:
            amounts[rname] = node_allocatable[rname]
    amount = amounts.get(rname, "0")
    divisor = ref.get("divisor")
    if divisor is None or milli_value(divisor) == 0:
        divisor = "1"
    if rname == "cpu":
        num, den = milli_value(amount), milli_value(divisor)
    else:
        num, den = value(amount), max(value(divisor), 1)
    return str(-(-num // den))  # ceiling division


# --------------------------------------------------------------------------------------------- the environment


class _Sources:
    """ConfigMaps and Secrets fetched once per call, as the kubelet caches them within one container start."""

    def __init__(self, lookup: Lookup, namespace: str) -> None:
        self.lookup = lookup
        self.namespace = namespace
        self._cms: dict[str, dict[str, Any] | None] = {}
        self._secrets: dict[str, dict[str, bytes] | None] = {}

    def configmap(self, name: str) -> dict[str, Any] | None:
        if name not in self._cms:
            self._cms[name] = self.lookup.configmap(self.namespace, name)
        return self._cms[name]

    def secret(self, name: str) -> dict[str, bytes] | None:
        if name not in self._secrets:
            obj = self.lookup.secret(self.namespace, name)
            try:
                self._secrets[name] = None if obj is None else secret_data(obj)
            except ValueError as exc:
                raise ContainerConfigError(f"{exc} {self.namespace}/{name}") from exc
        return self._secrets[name]


def generated_env(pod: Mapping[str, Any], container: Mapping[str, Any], lookup: Lookup, *, pod_ip: str = "",
                  host_ip: str = "", node_name: str = "", enable_service_links: bool | None = None,
                  node_allocatable: Mapping[str, str] | None = None, pod_ips: Sequence[str] | None = None,
                  host_ips: Sequence[str] | None = None, skipped: list[SkippedKeys] | None = None,
                  strict_names: bool = False) -> list[tuple[str, str]]:
    """The variables the kubelet hands to the runtime (service links, ``envFrom``, ``env``); see the module doc.

    Raises :class:`ContainerConfigError` (reason ``CreateContainerConfigError``).
    """
    meta = _dict(pod, "metadata")
    namespace = _str(meta, "namespace") or "default"
    if enable_service_links is None:
        links = _dict(pod, "spec").get("enableServiceLinks")
        enable_service_links = links is not False
    ips_pod = list(pod_ips) if pod_ips else ([pod_ip] if pod_ip else [])
    ips_host = list(host_ips) if host_ips else ([host_ip] if host_ip else [])

    services = dict(service_env(pod_services(lookup, namespace, enable_service_links)))
    sources = _Sources(lookup, namespace)
    defined: dict[str, str] = {}  # envFrom + env so far: upstream's tmpEnv

    for ef in _list(container, "envFrom"):
        if not isinstance(ef, dict):
            continue
        prefix = _str(ef, "prefix")
        data: dict[str, str]
        if isinstance(ef.get("configMapRef"), dict):
            ref, kind = ef["configMapRef"], "configMap"
            name = _str(ref, "name")
            cm = sources.configmap(name)
            if cm is None:
                if ref.get("optional") is True:
                    continue
                raise ContainerConfigError(f'configmap "{name}" not found')
            data = {k: str(v) for k, v in _dict(cm, "data").items()}
        elif isinstance(ef.get("secretRef"), dict):
            ref, kind = ef["secretRef"], "secret"
            name = _str(ref, "name")
            sec = sources.secret(name)
            if sec is None:
                if ref.get("optional") is True:
                    continue
                raise ContainerConfigError(f'secret "{name}" not found')
            data = {k: decode_bytes(v) for k, v in sec.items()}
        else:
            continue
        bad: list[str] = []
        for key in sorted(data):
            full = prefix + key
            if not _valid_key(full, strict_names):
                bad.append(full)
                continue
            defined[full] = data[key]
        if bad and skipped is not None:
            skipped.append(SkippedKeys(kind, namespace, name, tuple(sorted(bad))))

    mapping = _Chain(defined, services)
    for ev in _list(container, "env"):
        if not isinstance(ev, dict) or not ev.get("name"):
            continue
        name = str(ev["name"])
        raw = ev.get("value")
        val = raw if isinstance(raw, str) else ""
        source = _dict(ev, "valueFrom")
        if val:
            val = expand(val, mapping)
        elif source:
            resolved = _resolve_value_from(pod, container, source, sources, namespace, ips_pod, ips_host,
                                           node_name, node_allocatable)
            if resolved is None:
                continue
            val = resolved
        defined[name] = val

    return merge_env(services.items(), defined.items())


def _resolve_value_from(pod: Mapping[str, Any], container: Mapping[str, Any], source: dict[str, Any],
                        sources: _Sources, namespace: str, pod_ips: list[str], host_ips: list[str],
                        node_name: str, node_allocatable: Mapping[str, str] | None) -> str | None:
    """One ``valueFrom``; None when an optional reference is missing (the variable is left out)."""
    try:
        if isinstance(source.get("fieldRef"), dict):
            return field_ref_value(pod, source["fieldRef"], pod_ips=pod_ips, host_ips=host_ips, node_name=node_name)
        if isinstance(source.get("resourceFieldRef"), dict):
            return resource_field_ref_value(pod, container, source["resourceFieldRef"], node_allocatable)
    except ValueError as exc:
        raise ContainerConfigError(str(exc)) from exc
    if isinstance(source.get("configMapKeyRef"), dict):
        ref = source["configMapKeyRef"]
        name, key, optional = _str(ref, "name"), _str(ref, "key"), ref.get("optional") is True
        cm = sources.configmap(name)
        if cm is None:
            if optional:
                return None
            raise ContainerConfigError(f'configmap "{name}" not found')
        data = _dict(cm, "data")
        if key not in data:
            if optional:
                return None
            raise ContainerConfigError(f"couldn't find key {key} in ConfigMap {namespace}/{name}")
        return str(data[key])
    if isinstance(source.get("secretKeyRef"), dict):
        ref = source["secretKeyRef"]
        name, key, optional = _str(ref, "name"), _str(ref, "key"), ref.get("optional") is True
        sec = sources.secret(name)
        if sec is None:
            if optional:
                return None
            raise ContainerConfigError(f'secret "{name}" not found')
        if key not in sec:
            if optional:
                return None
            raise ContainerConfigError(f"couldn't find key {key} in Secret {namespace}/{name}")
        return decode_bytes(sec[key])
    return ""


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], image_env: Iterable[str], lookup: Lookup, *,
                  pod_ip: str, host_ip: str, node_name: str, enable_service_links: bool | None = None,
                  node_allocatable: Mapping[str, str] | None = None, pod_ips: Sequence[str] | None = None,
                  host_ips: Sequence[str] | None = None, skipped: list[SkippedKeys] | None = None,
                  strict_names: bool = False) -> list[tuple[str, str]]:
    """The environment the container's process starts with: ``HOSTNAME``, the image's ``ENV``, then
    :func:`generated_env` — merged by the position rule of the module docstring."""
    generated = generated_env(pod, container, lookup, pod_ip=pod_ip, host_ip=host_ip, node_name=node_name,
                              enable_service_links=enable_service_links, node_allocatable=node_allocatable,
                              pod_ips=pod_ips, host_ips=host_ips, skipped=skipped, strict_names=strict_names)
    return merge_env([("HOSTNAME", pod_hostname(pod))], parse_image_env(image_env), generated)


# --------------------------------------------------------------------------------------------- command line


def _strings(v: Any) -> list[str]:
    return [str(x) for x in v] if isinstance(v, list) else []


def command_line(container: Mapping[str, Any], image_config: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The argv the container runs (see the module docstring); ContainerConfigError ``CreateContainerError``
    when there is nothing to run."""
    command = [expand(c, env) for c in _strings(container.get("command"))]
    args = [expand(a, env) for a in _strings(container.get("args"))]
    if not command:
        if not args:
            args = _strings(image_config.get("Cmd"))
        entrypoint = _strings(image_config.get("Entrypoint"))
        if entrypoint != [""]:  # Docker's way of saying "no entrypoint"
            command = entrypoint
    argv = command + args
    if not argv:
        raise ContainerConfigError(NO_COMMAND, CREATE_CONTAINER_ERROR)
    return argv


def working_dir(container: Mapping[str, Any], image_config: Mapping[str, Any]) -> str:
    """``workingDir`` of the container, else the image's ``WorkingDir``, else ``/``."""
    return _str(container, "workingDir") or _str(image_config, "WorkingDir") or "/"
