"""Pure helpers of the Deployment controller: arithmetic, annotations, conditions, hashing, ordering.

Everything here works on plain API dicts (as the informers cache them) and does no
I/O, mirroring upstream's ``pkg/controller/deployment/util`` and the ReplicaSet
helpers of ``pkg/controller/controller_utils.go``: the table tests of upstream are
reproduced against these functions.

Conventions
    * ReplicaSets and Deployments are read-only inputs; functions that "set"
      something (``set_new_replica_set_annotations``, ``set_condition``...) mutate
      only the object they are explicitly given to change, which callers copy first.
    * ``None`` stands for a nil ReplicaSet pointer (a Deployment without a new RS).
    * ``spec.replicas`` defaults to 1 when absent, as the API server defaults it.
    * Timestamps are RFC 3339 strings in objects and epoch seconds (``float``) in
      the time arithmetic; ``now`` is always passed in so tests can fix it.

Template hash
    ``compute_hash`` is upstream's ``controller.ComputeHash``: FNV-1a (32 bit) over
    a canonical serialization of the pod template (JSON with sorted keys instead of
    Go's spew dump), then the collision count as 8 little-endian bytes when set,
    and the decimal rendering of the sum mapped through the safe alphabet as
    ``rand.SafeEncodeString`` does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from ...api.meta import NAME_ALPHABET, now_rfc3339, parse_timestamp
from ...api.selectors import LabelSelector, from_label_selector_object

Obj = dict[str, Any]

# -- annotation and label keys -----------------------------------------------------------------------------------------
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED_CONFIG_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY = "pod-template-hash"

# Length cap of the revision-history annotation (upstream's maxRevHistoryLengthInChars).
MAX_REV_HISTORY_LENGTH_IN_CHARS = 2000
MAX_INT32 = 2**31 - 1

# -- condition types and reasons ----------------------------------------------------------------------------------------
PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"

REPLICA_SET_UPDATED_REASON = "ReplicaSetUpdated"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
NEW_REPLICA_SET_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_DEPLOY_REASON = "DeploymentPaused"
RESUMED_DEPLOY_REASON = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"

ROLLBACK_REVISION_NOT_FOUND = "DeploymentRollbackRevisionNotFound"
ROLLBACK_TEMPLATE_UNCHANGED = "DeploymentRollbackTemplateUnchanged"
ROLLBACK_DONE = "DeploymentRollback"

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"

# Annotations never copied from a Deployment to its ReplicaSets (nor back on rollback).
ANNOTATIONS_TO_SKIP = frozenset({
    LAST_APPLIED_CONFIG_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    DEPRECATED_ROLLBACK_TO,
})


# -- small accessors ----------------------------------------------------------------------------------------------------
def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    md: dict[str, Any] = obj.get("metadata") or {}
    return md


def spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    sp: dict[str, Any] = obj.get("spec") or {}
    return sp


def status(obj: Mapping[str, Any]) -> dict[str, Any]:
    st: dict[str, Any] = obj.get("status") or {}
    return st


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("uid", ""))


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    a: dict[str, str] = meta(obj).get("annotations") or {}
    return a


def replicas(obj: Mapping[str, Any] | None) -> int:
    """``spec.replicas`` of a Deployment or ReplicaSet (1 when unset, as defaulting makes it)."""
    if obj is None:
        return 0
    r = spec(obj).get("replicas")
    return 1 if r is None else int(r)


def _status_int(obj: Mapping[str, Any] | None, field: str) -> int:
    if obj is None:
        return 0
    return int(status(obj).get(field) or 0)


def status_replicas(obj: Mapping[str, Any] | None) -> int:
    return _status_int(obj, "replicas")


def available_replicas(obj: Mapping[str, Any] | None) -> int:
    return _status_int(obj, "availableReplicas")


def ready_replicas(obj: Mapping[str, Any] | None) -> int:
    return _status_int(obj, "readyReplicas")


def min_ready_seconds(obj: Mapping[str, Any]) -> int:
    return int(spec(obj).get("minReadySeconds") or 0)


def strategy_type(d: Mapping[str, Any]) -> str:
    return str((spec(d).get("strategy") or {}).get("type") or "")


def is_rolling_update(d: Mapping[str, Any]) -> bool:
    return strategy_type(d) == ROLLING_UPDATE


def creation_key(rs: Mapping[str, Any]) -> tuple[str, str]:
    """Sort key of upstream's ``ReplicaSetsByCreationTimestamp``: creation time, then name."""
    md = meta(rs)
    return (str(md.get("creationTimestamp") or ""), str(md.get("name", "")))


def by_creation_timestamp(rss: Iterable[Obj]) -> list[Obj]:
    return sorted(rss, key=creation_key)


def by_size_newer(rss: Iterable[Obj]) -> list[Obj]:
    """Larger first; equal sizes newest first (upstream's ``ReplicaSetsBySizeNewer``)."""
    items = sorted(rss, key=creation_key, reverse=True)
    return sorted(items, key=lambda r: -replicas(r))  # stable: ties keep newest-first


def by_size_older(rss: Iterable[Obj]) -> list[Obj]:
    """Larger first; equal sizes oldest first (upstream's ``ReplicaSetsBySizeOlder``)."""
    items = sorted(rss, key=creation_key)
    return sorted(items, key=lambda r: -replicas(r))


def by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest revision first; unparsable or equal revisions by creation time (``ReplicaSetsByRevision``)."""
    items = list(rss)

    def rev_or_none(rs: Obj) -> int | None:
        try:
            return revision(rs)
        except ValueError:
            return None

    revs = {id(rs): rev_or_none(rs) for rs in items}

    def cmp(a: Obj, b: Obj) -> int:
        ra, rb = revs[id(a)], revs[id(b)]
        if ra is None or rb is None or ra == rb:
            ka, kb = creation_key(a), creation_key(b)
            return -1 if ka < kb else (1 if ka > kb else 0)
        return -1 if ra < rb else 1

    return sorted(items, key=functools.cmp_to_key(cmp))


def filter_active(rss: Iterable[Obj | None]) -> list[Obj]:
    """ReplicaSets with ``spec.replicas > 0`` (upstream's ``FilterActiveReplicaSets``), nils dropped."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


# -- int-or-percent and the rolling-update fenceposts ------------------------------------------------------------------
def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: an int as is, ``"N%"`` of ``total`` rounded as asked."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if not value.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")
    try:
        pct = int(value[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: {value!r}") from None
    num = pct * total
    return -((-num) // 100) if round_up else num // 100


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """Surge (rounded up) and unavailable (rounded down); both 0 means unavailable 1."""
    surge = scaled_value(0 if max_surge is None else max_surge, desired, True)
    unavailable = scaled_value(0 if max_unavailable is None else max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        # Validation forbids both being zero; rounding down a percentage may still get here.
        unavailable = 1
    return surge, unavailable


def _rolling_params(d: Mapping[str, Any]) -> dict[str, Any]:
    ru: dict[str, Any] = (spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    return ru


def max_unavailable(d: Mapping[str, Any]) -> int:
    desired = replicas(d)
    if not is_rolling_update(d) or desired == 0:
        return 0
    ru = _rolling_params(d)
    _, unavailable = resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"), desired)
    return min(unavailable, desired)


def min_available(d: Mapping[str, Any]) -> int:
    if not is_rolling_update(d):
        return 0
    return replicas(d) - max_unavailable(d)


def max_surge(d: Mapping[str, Any]) -> int:
    if not is_rolling_update(d):
        return 0
    ru = _rolling_params(d)
    surge, _ = resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"), replicas(d))
    return surge


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    pds = spec(d).get("progressDeadlineSeconds")
    return pds is not None and int(pds) != MAX_INT32


def has_revision_history_limit(d: Mapping[str, Any]) -> bool:
    lim = spec(d).get("revisionHistoryLimit")
    return lim is not None and int(lim) != MAX_INT32


# -- replica counts -----------------------------------------------------------------------------------------------------
def replica_count(rss: Iterable[Obj | None]) -> int:
    """Sum of ``spec.replicas`` (``GetReplicaCountForReplicaSets``)."""
    return sum(replicas(rs) for rs in rss if rs is not None)


def actual_replica_count(rss: Iterable[Obj | None]) -> int:
    """Sum of ``status.replicas`` (``GetActualReplicaCountForReplicaSets``)."""
    return sum(status_replicas(rs) for rs in rss if rs is not None)


def ready_replica_count(rss: Iterable[Obj | None]) -> int:
    return sum(ready_replicas(rs) for rs in rss if rs is not None)


def available_replica_count(rss: Iterable[Obj | None]) -> int:
    return sum(available_replicas(rs) for rs in rss if rs is not None)


# -- revisions and annotations ------------------------------------------------------------------------------------------
def _parse_go_int(s: str) -> int:
    """``strconv.ParseInt(s, 10, 64)``: optional sign and digits only."""
    t = s[1:] if s[:1] in ("+", "-") else s
    if not t or not t.isascii() or not t.isdigit():
        raise ValueError(f"invalid syntax: {s!r}")
    return int(s)


def revision(obj: Mapping[str, Any]) -> int:
    """The revision annotation as a number (0 when absent); ``ValueError`` when unparsable."""
    v = annotations_of(obj).get(REVISION_ANNOTATION)
    if v is None:
        return 0
    return _parse_go_int(v)


def max_revision(rss: Iterable[Obj | None]) -> int:
    best = 0
    for rs in rss:
        if rs is None:
            continue
        try:
            v = revision(rs)
        except ValueError:
            continue  # upstream skips replica sets whose revision it cannot parse
        best = max(best, v)
    return best


def last_revision(rss: Iterable[Obj | None]) -> int:
    """The second highest revision (the one ``rollout undo`` goes back to)."""
    top, second = 0, 0
    for rs in rss:
        if rs is None:
            continue
        try:
            v = revision(rs)
        except ValueError:
            continue
        if v >= top:
            second, top = top, v
        elif v > second:
            second = v
    return second


def set_deployment_revision(d: Obj, rev: str) -> bool:
    md = d.setdefault("metadata", {})
    ann = md.get("annotations")
    if ann is None:
        ann = md["annotations"] = {}
    if ann.get(REVISION_ANNOTATION) != rev:
        ann[REVISION_ANNOTATION] = rev
        return True
    return False


def skip_copy_annotation(key: str) -> bool:
    return key in ANNOTATIONS_TO_SKIP


def copy_deployment_annotations_to_replica_set(d: Mapping[str, Any], rs: Obj) -> bool:
    md = rs.setdefault("metadata", {})
    ann = md.get("annotations")
    if ann is None:
        ann = md["annotations"] = {}
    changed = False
    for k, v in annotations_of(d).items():
        # The RS revision is computed, never copied (the deployment's may be stale).
        if skip_copy_annotation(k) or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    md = rs.setdefault("metadata", {})
    ann = md.get("annotations")
    if ann is None:
        ann = md["annotations"] = {}
    updated = False
    if ann.get(DESIRED_REPLICAS_ANNOTATION) != str(desired):
        ann[DESIRED_REPLICAS_ANNOTATION] = str(desired)
        updated = True
    if ann.get(MAX_REPLICAS_ANNOTATION) != str(max_replicas):
        ann[MAX_REPLICAS_ANNOTATION] = str(max_replicas)
        updated = True
    return updated


def replicas_annotations_need_update(rs: Mapping[str, Any], desired: int, max_replicas: int) -> bool:
    ann = meta(rs).get("annotations")
    if ann is None:
        return True
    return ann.get(DESIRED_REPLICAS_ANNOTATION) != str(desired) or ann.get(MAX_REPLICAS_ANNOTATION) != str(max_replicas)


def set_new_replica_set_annotations(d: Mapping[str, Any], rs: Obj, new_revision: str, exists: bool,
                                    rev_history_limit_in_chars: int = MAX_REV_HISTORY_LENGTH_IN_CHARS) -> bool:
    """Copy the Deployment's annotations to its new RS and bump the RS revision; True when anything changed.

    A revision that moves forward on an RS that had one means a rollback to it: the
    old number is appended to ``revision-history`` (oldest entries dropped past the
    length cap). A new RS also gets the desired/max replicas annotations.
    """
    changed = copy_deployment_annotations_to_replica_set(d, rs)
    ann: dict[str, str] = rs["metadata"]["annotations"]
    had_revision = REVISION_ANNOTATION in ann
    old_revision = ann.get(REVISION_ANNOTATION, "")
    try:
        old_rev = _parse_go_int(old_revision)
    except ValueError:
        if old_revision != "":
            return False  # upstream gives up on an RS whose revision is not a number
        old_rev = 0
    try:
        new_rev = _parse_go_int(new_revision)
    except ValueError:
        return False
    if old_rev < new_rev:
        ann[REVISION_ANNOTATION] = new_revision
        changed = True
    if had_revision and old_rev < new_rev:
        history = ann.get(REVISION_HISTORY_ANNOTATION, "")
        old_revisions = history.split(",")
        if len(old_revisions[0]) == 0:
            ann[REVISION_HISTORY_ANNOTATION] = old_revision
        else:
            total_len = len(history) + len(old_revision) + 1
            start = 0
            while total_len > rev_history_limit_in_chars and start < len(old_revisions):
                total_len -= len(old_revisions[start]) + 1
                start += 1
            if total_len <= rev_history_limit_in_chars:
                ann[REVISION_HISTORY_ANNOTATION] = ",".join([*old_revisions[start:], old_revision])
    if not exists:
        desired = replicas(d)
        if set_replicas_annotations(rs, desired, desired + max_surge(d)):
            changed = True
    return changed


def set_deployment_annotations_to(d: Obj, rollback_to_rs: Mapping[str, Any]) -> None:
    """On rollback, the Deployment takes the RS's annotations (skipped keys keep the Deployment's values)."""
    md = d.setdefault("metadata", {})
    kept = {k: v for k, v in (md.get("annotations") or {}).items() if skip_copy_annotation(k)}
    for k, v in annotations_of(rollback_to_rs).items():
        if not skip_copy_annotation(k):
            kept[k] = v
    md["annotations"] = kept


def _int_annotation(rs: Mapping[str, Any], key: str) -> int | None:
    v = annotations_of(rs).get(key)
    if v is None:
        return None
    try:
        n = _parse_go_int(v)
    except ValueError:
        return None
    if n < -(2**31) or n > MAX_INT32:
        return None
    return n


def desired_replicas_annotation(rs: Mapping[str, Any]) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)


def max_replicas_annotation(rs: Mapping[str, Any]) -> int | None:
    return _int_annotation(rs, MAX_REPLICAS_ANNOTATION)


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """The only active RS, or the newest one when none is active; None when several are active."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=creation_key, reverse=True)
    active = filter_active([*newest_first, new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def is_saturated(d: Mapping[str, Any], rs: Mapping[str, Any] | None) -> bool:
    """The RS owns all desired replicas (by spec, annotation and availability)."""
    if rs is None:
        return False
    desired_str = annotations_of(rs).get(DESIRED_REPLICAS_ANNOTATION, "")
    try:
        desired = _parse_go_int(desired_str)
    except ValueError:
        return False
    want = replicas(d)
    return replicas(rs) == want and desired == want and available_replicas(rs) == want


# -- proportional scaling -----------------------------------------------------------------------------------------------
def _round_half_away(x: float) -> int:
    """Go's ``math.Round`` (half away from zero), as ``integer.RoundToInt32`` uses."""
    t = math.trunc(x)
    if abs(x - t) >= 0.5:
        t += 1 if x > 0 else -1
    return t


def replica_set_fraction(rs: Mapping[str, Any], d: Mapping[str, Any]) -> int:
    """How many replicas ``rs`` should gain (or lose) when the Deployment's size changes."""
    want = replicas(d)
    if want == 0:
        return -replicas(rs)  # scaling to zero: the whole RS goes
    deployment_replicas = want + max_surge(d)
    annotated = max_replicas_annotation(rs)
    if annotated is None or annotated == 0:
        # Without the annotation, fall back to the current size of the Deployment.
        annotated = status_replicas(d)
    if annotated == 0:
        return 0  # nothing to take a proportion of (never scale up proportionally from zero)
    new_size = replicas(rs) * deployment_replicas / annotated
    return _round_half_away(new_size) - replicas(rs)


def replica_set_proportion(rs: Mapping[str, Any] | None, d: Mapping[str, Any], to_add: int, added: int) -> int:
    """``GetReplicaSetProportion``: the RS's share of ``to_add``, bounded by what is left to add."""
    if rs is None or replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    if to_add > 0:
        return min(fraction, allowed)  # never add more than allowed
    return max(fraction, allowed)  # never remove more than allowed


def new_rs_new_replicas(d: Mapping[str, Any], all_rss: Iterable[Obj | None], new_rs: Mapping[str, Any]) -> int:
    """How big the new RS may be now: within maxSurge for rolling updates, everything for Recreate."""
    st = strategy_type(d)
    if st == ROLLING_UPDATE:
        desired = replicas(d)
        surge = scaled_value(_rolling_params(d).get("maxSurge") or 0, desired, True)
        current = replica_count(all_rss)
        max_total = desired + surge
        if current >= max_total:
            return replicas(new_rs)  # cannot scale up
        scale_up = min(max_total - current, desired - replicas(new_rs))
        return replicas(new_rs) + scale_up
    if st == RECREATE:
        return replicas(d)
    raise ValueError(f"deployment type {st} isn't supported")


# -- templates ----------------------------------------------------------------------------------------------------------
def _semantic(v: Any) -> Any:
    """Drop null/empty values, as Go's semantic equality treats nil and empty alike."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            nx = _semantic(x)
            if nx is None or nx == {} or nx == []:
                continue
            out[k] = nx
        return out
    if isinstance(v, list):
        return [_semantic(x) for x in v]
    return v


def _without_hash(template: Mapping[str, Any] | None) -> dict[str, Any]:
    t = dict(template or {})
    md = dict(t.get("metadata") or {})
    labels = md.get("labels")
    if labels and DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY in labels:
        labels = dict(labels)
        del labels[DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY]
        md["labels"] = labels
    t["metadata"] = md
    return t


def equal_ignore_hash(t1: Mapping[str, Any] | None, t2: Mapping[str, Any] | None) -> bool:
    """Pod templates equal apart from the ``pod-template-hash`` label (``EqualIgnoreHash``)."""
    a, b = _without_hash(t1), _without_hash(t2)
    if a == b:
        return True
    return bool(_semantic(a) == _semantic(b))


def template_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = spec(obj).get("template") or {}
    return t


def find_new_replica_set(d: Mapping[str, Any], rs_list: Iterable[Obj]) -> Obj | None:
    """The oldest RS whose template matches the Deployment's (there may be duplicates after upgrades)."""
    tmpl = template_of(d)
    for rs in sorted(rs_list, key=creation_key):
        if equal_ignore_hash(template_of(rs), tmpl):
            return rs
    return None


def split_old_replica_sets(rs_list: Iterable[Obj], new_rs: Obj | None) -> tuple[list[Obj], list[Obj]]:
    """(old RSs that still have replicas, all old RSs), in creation order, given the new RS."""
    new_uid = uid_of(new_rs) if new_rs is not None else None
    required: list[Obj] = []
    all_old: list[Obj] = []
    for rs in sorted(rs_list, key=creation_key):
        if new_rs is not None and (rs is new_rs or uid_of(rs) == new_uid):
            continue
        all_old.append(rs)
        if replicas(rs) != 0:
            required.append(rs)
    return required, all_old


def find_old_replica_sets(d: Mapping[str, Any], rs_list: Sequence[Obj]) -> tuple[list[Obj], list[Obj]]:
    """``FindOldReplicaSets``: every RS but the new one; the first list only those with replicas."""
    return split_old_replica_sets(rs_list, find_new_replica_set(d, rs_list))


def set_from_replica_set_template(d: Obj, template: Mapping[str, Any]) -> Obj:
    """Put an RS's template back into the Deployment, without the hash label (rollback)."""
    t = orjson.loads(orjson.dumps(template))
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, None)
    d.setdefault("spec", {})["template"] = t
    return d


def clone_and_add_label(labels: Mapping[str, str] | None, key: str, value: str) -> dict[str, str]:
    out = dict(labels or {})
    out[key] = value
    return out


def clone_selector_and_add_label(selector: Mapping[str, Any] | None, key: str, value: str) -> dict[str, Any]:
    sel: dict[str, Any] = orjson.loads(orjson.dumps(selector or {}))
    sel["matchLabels"] = clone_and_add_label(sel.get("matchLabels"), key, value)
    return sel


# -- hashing --------------------------------------------------------------------------------------------------------------
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a_32(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(s: str) -> str:
    """``rand.SafeEncodeString``: every character mapped into the vowel-free alphabet."""
    n = len(NAME_ALPHABET)
    return "".join(NAME_ALPHABET[ord(c) % n] for c in s)


def compute_hash(template: Mapping[str, Any], collision_count: int | None) -> str:
    h = fnv1a_32(orjson.dumps(template, option=orjson.OPT_SORT_KEYS))
    if collision_count is not None:
        h = fnv1a_32(int(collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0", h)
    return safe_encode_string(str(h))


# -- conditions ------------------------------------------------------------------------------------------------------------
def new_condition(ctype: str, cstatus: str, reason: str, message: str, now: float | None = None) -> dict[str, Any]:
    ts = now_rfc3339(now)
    return {"type": ctype, "status": cstatus, "lastUpdateTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def get_condition(st: Mapping[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in (st or {}).get("conditions") or []:
        if c.get("type") == ctype:
            found: dict[str, Any] = c
            return found
    return None


def set_condition(st: dict[str, Any], cond: dict[str, Any]) -> None:
    """Add or replace a condition; same status and reason means no change, same status keeps the transition time."""
    cur = get_condition(st, cond["type"])
    if cur is not None and cur.get("status") == cond.get("status") and cur.get("reason") == cond.get("reason"):
        return
    if cur is not None and cur.get("status") == cond.get("status"):
        cond = {**cond, "lastTransitionTime": cur.get("lastTransitionTime")}
    rest = [c for c in st.get("conditions") or [] if c.get("type") != cond["type"]]
    st["conditions"] = [*rest, cond]


def remove_condition(st: dict[str, Any], ctype: str) -> None:
    conds = [c for c in st.get("conditions") or [] if c.get("type") != ctype]
    if conds:
        st["conditions"] = conds
    else:
        st.pop("conditions", None)


def replica_set_to_deployment_condition(cond: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": cond.get("type"), "status": cond.get("status"),
            "lastUpdateTime": cond.get("lastTransitionTime"), "lastTransitionTime": cond.get("lastTransitionTime"),
            "reason": cond.get("reason", ""), "message": cond.get("message", "")}


# -- rollout state ----------------------------------------------------------------------------------------------------------
def deployment_complete(d: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """All desired replicas updated and available, no old ones left, and the spec observed."""
    want = replicas(d)
    return (int(new_status.get("updatedReplicas") or 0) == want
            and int(new_status.get("replicas") or 0) == want
            and int(new_status.get("availableReplicas") or 0) == want
            and int(new_status.get("observedGeneration") or 0) >= int(meta(d).get("generation") or 0))


def deployment_progressing(d: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """Progress compared with the recorded status: new pods, fewer old ones, more ready or available."""
    old = status(d)

    def g(s: Mapping[str, Any], f: str) -> int:
        return int(s.get(f) or 0)

    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(new_status, "replicas") - g(new_status, "updatedReplicas")
    return (g(new_status, "updatedReplicas") > g(old, "updatedReplicas")
            or new_old < old_old
            or g(new_status, "readyReplicas") > g(old, "readyReplicas")
            or g(new_status, "availableReplicas") > g(old, "availableReplicas"))


def deployment_timed_out(d: Mapping[str, Any], new_status: Mapping[str, Any], now: float) -> bool:
    """The Progressing condition has not been updated for longer than progressDeadlineSeconds."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(new_status, PROGRESSING)
    if cond is None:
        return False
    # A finished rollout is not re-judged; a timed-out one stays timed out.
    if cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = parse_timestamp(cond.get("lastUpdateTime"))
    start = since if since is not None else -62135596800.0  # Go's zero time
    return start + int(spec(d)["progressDeadlineSeconds"]) < now


# -- misc ----------------------------------------------------------------------------------------------------------------
def rollback_to(d: Mapping[str, Any]) -> int | None:
    """The revision asked for by the deprecated rollback annotation (None when absent or invalid)."""
    v = annotations_of(d).get(DEPRECATED_ROLLBACK_TO, "")
    if not v:
        return None
    try:
        return _parse_go_int(v)
    except ValueError:
        return None


def selector_of(d: Mapping[str, Any]) -> LabelSelector:
    return from_label_selector_object(spec(d).get("selector"))


def deep_copy(obj: Obj) -> Obj:
    out: Obj = orjson.loads(orjson.dumps(obj))
    return out


def working_copy(obj: Obj) -> Obj:
    """A copy safe for what the controller changes in place, without a deep copy of everything.

    New dicts for the object, ``metadata``, its ``annotations``, ``spec`` and ``status`` (with a new
    ``conditions`` list); everything below (the pod template, condition entries...) stays shared with
    the cache, so code here only ever replaces those, never edits them.
    """
    out = dict(obj)
    md = out["metadata"] = dict(obj.get("metadata") or {})
    if md.get("annotations") is not None:
        md["annotations"] = dict(md["annotations"])
    out["spec"] = dict(obj.get("spec") or {})
    st = out["status"] = dict(obj.get("status") or {})
    if st.get("conditions") is not None:
        st["conditions"] = list(st["conditions"])
    return out
