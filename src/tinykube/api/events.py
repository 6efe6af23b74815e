"""One Event, two API shapes: core/v1 ``Event`` and ``events.k8s.io/v1`` ``Event``.

kube-apiserver stores events once, as core/v1, and serves them through both API
groups by converting on the way in and out.  The fields map one to one (upstream
``pkg/apis/events/v1/conversion.go``):

================================  ==============================
core/v1                           events.k8s.io/v1
================================  ==============================
``involvedObject``                ``regarding``
``message``                       ``note``
``reportingComponent``            ``reportingController``
``source``                        ``deprecatedSource``
``firstTimestamp``                ``deprecatedFirstTimestamp``
``lastTimestamp``                 ``deprecatedLastTimestamp``
``count``                         ``deprecatedCount``
``related``, ``reason``, ``type``, ``eventTime``, ``series``, ``reportingInstance``, ``action``: same names
================================  ==============================

Each function emits its target shape exactly as upstream's JSON encoder would:
keys in Go struct order, zero-valued ``omitempty`` fields dropped, and fields
without ``omitempty`` present even when empty (core: ``involvedObject``,
``source``, ``firstTimestamp``/``lastTimestamp``/``eventTime`` as ``null``,
``reportingComponent``/``reportingInstance`` as ``""``; events.k8s.io:
``eventTime`` as ``null``, ``regarding`` and ``deprecatedSource`` as ``{}``,
``deprecatedFirst/LastTimestamp`` as ``null``).  Fields neither shape knows are
dropped, as decoding into Go types drops them.  ``metadata`` is shallow-copied
(nested maps are shared with the input).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CORE_API_VERSION = "v1"
EVENTS_API_VERSION = "events.k8s.io/v1"
KIND = "Event"

_REF_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def _ref(value: Any) -> dict[str, Any]:
    """An ObjectReference with its (all ``omitempty``) empty fields dropped, in Go field order."""
    if not isinstance(value, Mapping):
        return {}
    return {k: value[k] for k in _REF_FIELDS if value.get(k) not in (None, "")}


def _source(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    return {k: value[k] for k in ("component", "host") if value.get(k)}


def _series(value: Any, *, core: bool) -> dict[str, Any] | None:
    """EventSeries: core/v1 omits a zero count; events.k8s.io/v1 always writes both fields."""
    if not isinstance(value, Mapping):
        return None
    count = value.get("count") or 0
    out: dict[str, Any] = {}
    if count or not core:
        out["count"] = count
    out["lastObservedTime"] = value.get("lastObservedTime") or None
    return out


def _metadata(ev: Mapping[str, Any]) -> dict[str, Any]:
    meta = ev.get("metadata")
    return dict(meta) if isinstance(meta, Mapping) else {}


def _nonempty(out: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, "", 0, {}, []):
        out[key] = value


def core_to_events_v1(ev: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a core/v1 Event to its events.k8s.io/v1 form."""
    out: dict[str, Any] = {"kind": KIND, "apiVersion": EVENTS_API_VERSION, "metadata": _metadata(ev)}
    out["eventTime"] = ev.get("eventTime") or None
    series = _series(ev.get("series"), core=False)
    if series is not None:
        out["series"] = series
    _nonempty(out, "reportingController", ev.get("reportingComponent"))
    _nonempty(out, "reportingInstance", ev.get("reportingInstance"))
    _nonempty(out, "action", ev.get("action"))
    _nonempty(out, "reason", ev.get("reason"))
    out["regarding"] = _ref(ev.get("involvedObject"))
    if isinstance(ev.get("related"), Mapping):
        out["related"] = _ref(ev["related"])
    _nonempty(out, "note", ev.get("message"))
    _nonempty(out, "type", ev.get("type"))
    out["deprecatedSource"] = _source(ev.get("source"))
    out["deprecatedFirstTimestamp"] = ev.get("firstTimestamp") or None
    out["deprecatedLastTimestamp"] = ev.get("lastTimestamp") or None
    _nonempty(out, "deprecatedCount", ev.get("count"))
    return out


def events_v1_to_core(ev: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an events.k8s.io/v1 Event to its core/v1 (stored) form."""
    out: dict[str, Any] = {"kind": KIND, "apiVersion": CORE_API_VERSION, "metadata": _metadata(ev)}
    out["involvedObject"] = _ref(ev.get("regarding"))
    _nonempty(out, "reason", ev.get("reason"))
    _nonempty(out, "message", ev.get("note"))
    out["source"] = _source(ev.get("deprecatedSource"))
    out["firstTimestamp"] = ev.get("deprecatedFirstTimestamp") or None
    out["lastTimestamp"] = ev.get("deprecatedLastTimestamp") or None
    _nonempty(out, "count", ev.get("deprecatedCount"))
    _nonempty(out, "type", ev.get("type"))
    out["eventTime"] = ev.get("eventTime") or None
    series = _series(ev.get("series"), core=True)
    if series is not None:
        out["series"] = series
    _nonempty(out, "action", ev.get("action"))
    if isinstance(ev.get("related"), Mapping):
        out["related"] = _ref(ev["related"])
    out["reportingComponent"] = ev.get("reportingController") or ""
    out["reportingInstance"] = ev.get("reportingInstance") or ""
    return out


def normalize_core(ev: Mapping[str, Any]) -> dict[str, Any]:
    """A core/v1 Event in the exact shape kube-apiserver would serve it (Go field order and empties)."""
    return events_v1_to_core(core_to_events_v1(ev))


def to_api_version(ev: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    """Convert a stored (core/v1) Event for the API version a client asked for."""
    if api_version == EVENTS_API_VERSION:
        return core_to_events_v1(ev)
    return normalize_core(ev)
