"""Label and field selectors, parsed once and matched fast.

Label selectors
    :func:`parse_label_selector` reads the query-string syntax
    (``a=b,c!=d,e in (x,y),f notin (z),g,!h``, plus ``==``, ``>`` and ``<``) with a
    small lexer and a recursive-descent parser that follow kube-apiserver's
    grammar, so malformed selectors fail with the same messages
    (``unable to parse requirement: found ...``) and as a 400 ``BadRequest``.
    :func:`from_label_selector_object` builds the same :class:`LabelSelector`
    from a ``metav1.LabelSelector`` object, and :func:`selector_to_string`
    renders such an object the way ``metav1.FormatLabelSelector`` does
    (requirements sorted by key, set values sorted: ``app=x,tier in (a,b)``).

Field selectors
    :func:`parse_field_selector` splits ``f=v,g!=w`` terms (backslash escapes in
    values, as upstream) and checks every field against what kube-apiserver
    accepts for that kind.  Kinds that upstream registers a field-label
    conversion for (pods, nodes, namespaces, secrets, services, core and
    ``events.k8s.io`` events) reject others with ``field label not supported:
    X``; the rest accept only ``metadata.name`` / ``metadata.namespace`` and
    reject others with upstream's ``"X" is not a known field selector: only
    "metadata.name", "metadata.namespace"``.  (Upstream's apps/v1 ReplicaSet
    registers no conversion, so ``status.replicas`` is rejected there too.)

Speed
    Selectors are applied to every object of large lists, so parsing compiles
    each requirement into a closure once; matching is then a few dict lookups
    per object.  Field values are read straight from the stored JSON form
    (``spec.hostNetwork`` as ``"true"``/``"false"``, ``status.podIP`` from
    ``status.podIPs[0]`` as upstream does).  Event fields accept both the core
    (``involvedObject``) and the ``events.k8s.io`` (``regarding``) shape, since
    both API groups serve one stored object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tinykube.api import errors
from tinykube.api.resources import Resource
from tinykube.api.validation import is_qualified_name, is_valid_label_value

# Label keys and values are checked by the same rules (and messages) as object validation uses.
label_key_errors = is_qualified_name
label_value_errors = is_valid_label_value


class _GoStrings:
    """Renders a string list as Go's ``%#v`` does (``[]string{"a", "b"}``) inside field errors."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = list(values)

    def __repr__(self) -> str:
        inner = ", ".join(orjson.dumps(v).decode() for v in self.values)
        return "[]string{" + inner + "}"


class _SelectorError(Exception):
    """A parse or validation failure; the message is upstream's."""


# --------------------------------------------------------------------------------------------------------------------
# Label selector model
# --------------------------------------------------------------------------------------------------------------------

# Operator spellings are upstream's selection.Operator values.
OP_EQUALS = "="
OP_DOUBLE_EQUALS = "=="
OP_NOT_EQUALS = "!="
OP_IN = "in"
OP_NOT_IN = "notin"
OP_EXISTS = "exists"
OP_DOES_NOT_EXIST = "!"
OP_GT = "gt"
OP_LT = "lt"

_BINARY_OPS = (OP_IN, OP_NOT_IN, OP_EQUALS, OP_DOUBLE_EQUALS, OP_NOT_EQUALS, OP_GT, OP_LT)
_MISSING: Any = object()

LabelMatcher = Callable[[Mapping[str, str] | None], bool]


def _never(labels: Mapping[str, str] | None) -> bool:
    return False


def _always(labels: Mapping[str, str] | None) -> bool:
    return True


def _conjunction(matchers: tuple[LabelMatcher, ...]) -> LabelMatcher:
    """One callable for all terms; small arities avoid the loop (matching runs per listed object)."""
    if not matchers:
        return _always
    if len(matchers) == 1:
        return matchers[0]
    if len(matchers) == 2:
        m1, m2 = matchers
        return lambda labels: m1(labels) and m2(labels)
    if len(matchers) == 3:
        m1, m2, m3 = matchers
        return lambda labels: m1(labels) and m2(labels) and m3(labels)

    def all_of(labels: Mapping[str, str] | None) -> bool:
        for m in matchers:
            if not m(labels):
                return False
        return True

    return all_of


def _to_int(s: str) -> int | None:
    """Parse like Go's ``strconv.ParseInt(s, 10, 64)`` (optional sign, decimal digits, 64-bit range)."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not body.isascii() or not body.isdigit():
        return None
    n = int(s)
    if not -(2**63) <= n < 2**63:
        return None
    return n


@dataclass(frozen=True)
class Requirement:
    """One ``key op values`` term of a label selector."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def compile(self) -> LabelMatcher:
        """A closure deciding this requirement for one label map (``None`` reads as no labels)."""
        key = self.key
        op = self.operator
        if op in (OP_EQUALS, OP_DOUBLE_EQUALS, OP_IN):
            if len(self.values) == 1:
                want = self.values[0]
                return lambda labels: labels is not None and labels.get(key, _MISSING) == want
            wanted = frozenset(self.values)
            return lambda labels: labels is not None and labels.get(key, _MISSING) in wanted
        if op in (OP_NOT_EQUALS, OP_NOT_IN):
            if len(self.values) == 1:
                unwanted = self.values[0]
                return lambda labels: labels is None or labels.get(key, _MISSING) != unwanted
            unwanted_set = frozenset(self.values)
            return lambda labels: labels is None or labels.get(key, _MISSING) not in unwanted_set
        if op == OP_EXISTS:
            return lambda labels: labels is not None and key in labels
        if op == OP_DOES_NOT_EXIST:
            return lambda labels: labels is None or key not in labels
        if op in (OP_GT, OP_LT):
            bound = _to_int(self.values[0]) if len(self.values) == 1 else None
            if bound is None:
                return _never
            greater = op == OP_GT

            def compare(labels: Mapping[str, str] | None) -> bool:
                raw = labels.get(key) if labels is not None else None
                if raw is None:
                    return False
                n = _to_int(raw)
                if n is None:
                    return False
                return n > bound if greater else n < bound

            return compare
        return _never

    def __str__(self) -> str:
        op = self.operator
        if op == OP_EXISTS:
            return self.key
        if op == OP_DOES_NOT_EXIST:
            return "!" + self.key
        vals = self.values if len(self.values) == 1 else tuple(sorted(self.values))
        joined = ",".join(vals)
        if op == OP_IN:
            return f"{self.key} in ({joined})"
        if op == OP_NOT_IN:
            return f"{self.key} notin ({joined})"
        sym = {OP_GT: ">", OP_LT: "<"}.get(op, op)
        return f"{self.key}{sym}{joined}"


class LabelSelector:
    """A conjunction of :class:`Requirement` terms, compiled for fast matching.

    An empty selector matches everything; :meth:`nothing` builds the selector that
    matches no object (what a ``null`` ``metav1.LabelSelector`` means upstream).

    ``matches(labels)`` is a per-instance closure built once from the terms (not a
    method), so the per-object cost is just the terms' dict lookups; ``labels`` may be
    ``None`` (an object without labels).
    """

    __slots__ = ("_nothing", "matches", "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        reqs = sorted(requirements, key=lambda r: r.key)  # deterministic order, as upstream sorts by key
        self.requirements: tuple[Requirement, ...] = tuple(reqs)
        self._nothing = nothing
        self.matches: LabelMatcher = _never if nothing else _conjunction(tuple(r.compile() for r in self.requirements))

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls(nothing=True)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything."""
        return not self._nothing and not self.requirements

    @property
    def matches_nothing(self) -> bool:
        return self._nothing

    def requires_exact_match(self, key: str) -> str | None:
        """The value ``key`` must have when the selector pins it to a single value (``k=v`` / ``k in (v)``)."""
        for r in self.requirements:
            if r.key == key:
                if r.operator in (OP_EQUALS, OP_DOUBLE_EQUALS, OP_IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        if self._nothing:
            return ""
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})" if not self._nothing else "LabelSelector(<nothing>)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self._nothing == other._nothing and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))


def _new_requirement(key: str, op: str, values: list[str], path: str = "") -> Requirement:
    """Validate a requirement as upstream's ``labels.NewRequirement`` does (errors aggregated)."""
    prefix = path + "." if path else ""
    errs: list[errors.FieldError] = []
    key_errs = label_key_errors(key)
    if key_errs:
        errs.append(errors.invalid_value(prefix + "key", key, "; ".join(key_errs)))
    values_path = prefix + "values"
    if op in (OP_IN, OP_NOT_IN):
        if not values:
            errs.append(
                errors.invalid_value(
                    values_path, _GoStrings(values), "for 'in', 'notin' operators, values set can't be empty"
                )
            )
    elif op in (OP_EQUALS, OP_DOUBLE_EQUALS, OP_NOT_EQUALS):
        if len(values) != 1:
            errs.append(
                errors.invalid_value(
                    values_path, _GoStrings(values), "exact-match compatibility requires one single value"
                )
            )
    elif op in (OP_EXISTS, OP_DOES_NOT_EXIST):
        if values:
            errs.append(
                errors.invalid_value(
                    values_path, _GoStrings(values), "values set must be empty for exists and does not exist"
                )
            )
    elif op in (OP_GT, OP_LT):
        if len(values) != 1:
            errs.append(
                errors.invalid_value(
                    values_path, _GoStrings(values), "for 'Gt', 'Lt' operators, exactly one value is required"
                )
            )
        for i, v in enumerate(values):
            if _to_int(v) is None:
                errs.append(
                    errors.invalid_value(
                        f"{values_path}[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer"
                    )
                )
    else:
        errs.append(
            errors.not_supported(prefix + "operator", op, ["in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!"])
        )
    for i, v in enumerate(values):
        val_errs = label_value_errors(v)
        if val_errs:
            errs.append(errors.invalid_value(f"{values_path}[{i}][{key}]", v, "; ".join(val_errs)))
    if errs:
        if len(errs) == 1:
            raise _SelectorError(str(errs[0]))
        raise _SelectorError("[" + ", ".join(str(e) for e in errs) + "]")
    return Requirement(key, op, tuple(sorted(set(values))))  # normalized: equal selectors compare equal


# --------------------------------------------------------------------------------------------------------------------
# Label selector string syntax: lexer + parser
# --------------------------------------------------------------------------------------------------------------------

# Token kinds.
_T_END = 0
_T_CLOSE = 1
_T_COMMA = 2
_T_NOT = 3
_T_DEQ = 4
_T_EQ = 5
_T_GT = 6
_T_IDENT = 7
_T_IN = 8
_T_LT = 9
_T_NEQ = 10
_T_NOTIN = 11
_T_OPEN = 12

_SYMBOLS = {
    ")": _T_CLOSE,
    ",": _T_COMMA,
    "!": _T_NOT,
    "==": _T_DEQ,
    "=": _T_EQ,
    ">": _T_GT,
    "<": _T_LT,
    "!=": _T_NEQ,
    "(": _T_OPEN,
}
_KEYWORDS = {"in": _T_IN, "notin": _T_NOTIN}
_SPECIAL = frozenset("=!(),><")
_SPACE = frozenset(" \t\r\n")


def _lex(s: str) -> list[tuple[int, str]]:
    """Tokenize a label selector; identifiers are maximal runs of non-special, non-blank characters."""
    toks: list[tuple[int, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _SPACE:
            i += 1
        if i >= n:
            toks.append((_T_END, ""))
            return toks
        ch = s[i]
        if ch in _SPECIAL:
            two = s[i : i + 2]
            if two in ("!=", "=="):
                toks.append((_SYMBOLS[two], two))
                i += 2
            else:
                toks.append((_SYMBOLS[ch], ch))
                i += 1
            continue
        j = i
        while j < n and s[j] not in _SPECIAL and s[j] not in _SPACE:
            j += 1
        word = s[i:j]
        toks.append((_KEYWORDS.get(word, _T_IDENT), word))
        i = j


class _Parser:
    """Recursive descent over the token list; ``in``/``notin`` read as identifiers where a value is expected."""

    def __init__(self, text: str) -> None:
        self.toks = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.toks[self.pos]
        if values and tok in (_T_IN, _T_NOTIN):
            tok = _T_IDENT
        return tok, lit

    def take(self, values: bool = True) -> tuple[int, str]:
        item = self.peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.peek()
            if tok in (_T_IDENT, _T_NOT):
                try:
                    reqs.append(self.requirement())
                except _SelectorError as e:
                    raise _SelectorError(f"unable to parse requirement: {e}") from None
                tok, lit = self.take()
                if tok == _T_END:
                    return reqs
                if tok == _T_COMMA:
                    tok2, lit2 = self.peek()
                    if tok2 not in (_T_IDENT, _T_NOT):
                        raise _SelectorError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise _SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == _T_END:
                return reqs
            else:
                raise _SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        op = ""
        tok, key = self.take()
        if tok == _T_NOT:
            op = OP_DOES_NOT_EXIST
            tok, key = self.take()
        if tok != _T_IDENT:
            raise _SelectorError(f"found '{key}', expected: identifier")
        key_errs = label_key_errors(key)
        if key_errs:
            raise _SelectorError(str(errors.invalid_value("<nil>", key, "; ".join(key_errs))))
        if self.peek()[0] in (_T_END, _T_COMMA) and op != OP_DOES_NOT_EXIST:
            op = OP_EXISTS
        if op in (OP_EXISTS, OP_DOES_NOT_EXIST):
            return _new_requirement(key, op, [])
        op = self.operator()
        values = self.set_values() if op in (OP_IN, OP_NOT_IN) else self.exact_value()
        return _new_requirement(key, op, sorted(values))

    def operator(self) -> str:
        tok, lit = self.take(values=False)
        op = {
            _T_IN: OP_IN,
            _T_EQ: OP_EQUALS,
            _T_DEQ: OP_DOUBLE_EQUALS,
            _T_GT: OP_GT,
            _T_LT: OP_LT,
            _T_NOTIN: OP_NOT_IN,
            _T_NEQ: OP_NOT_EQUALS,
        }.get(tok)
        if op is None:
            raise _SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPS)}")
        return op

    def set_values(self) -> set[str]:
        tok, lit = self.take()
        if tok != _T_OPEN:
            raise _SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok in (_T_IDENT, _T_COMMA):
            vals = self.identifiers()
            if self.take()[0] != _T_CLOSE:
                raise _SelectorError(f"found '{lit}', expected: ')'")
            return vals
        if tok == _T_CLOSE:
            self.take()
            return {""}
        raise _SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        vals: set[str] = set()
        while True:
            tok, lit = self.take()
            if tok == _T_IDENT:
                vals.add(lit)
                tok2, lit2 = self.peek()
                if tok2 == _T_COMMA:
                    continue
                if tok2 == _T_CLOSE:
                    return vals
                raise _SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _T_COMMA:  # "(," ",," and ",)" stand for empty values
                if not vals:
                    vals.add("")
                tok2 = self.peek()[0]
                if tok2 == _T_CLOSE:
                    vals.add("")
                    return vals
                if tok2 == _T_COMMA:
                    vals.add("")
                continue
            raise _SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.peek()[0] in (_T_END, _T_COMMA):
            return {""}
        tok, lit = self.take()
        if tok == _T_IDENT:
            return {lit}
        raise _SelectorError(f"found '{lit}', expected: identifier")


_LABEL_CACHE: dict[str, LabelSelector] = {}
_LABEL_CACHE_MAX = 512


def parse_label_selector(s: str) -> LabelSelector:
    """Parse the ``labelSelector`` query-string syntax; errors are 400 ``BadRequest`` with upstream's message.

    Parsed selectors are immutable and cached by text, so a watch or a controller re-parsing the
    same selector pays for it once.
    """
    hit = _LABEL_CACHE.get(s)
    if hit is not None:
        return hit
    try:
        sel = LabelSelector(_Parser(s).parse())
    except _SelectorError as e:
        raise errors.bad_request(str(e)) from None
    if len(_LABEL_CACHE) >= _LABEL_CACHE_MAX:
        _LABEL_CACHE.clear()
    _LABEL_CACHE[s] = sel
    return sel


# --------------------------------------------------------------------------------------------------------------------
# metav1.LabelSelector objects
# --------------------------------------------------------------------------------------------------------------------

_OBJECT_OPS = {"In": OP_IN, "NotIn": OP_NOT_IN, "Exists": OP_EXISTS, "DoesNotExist": OP_DOES_NOT_EXIST}


def _object_to_selector(sel: Mapping[str, Any] | None) -> LabelSelector:
    if sel is None:
        return LabelSelector.nothing()
    match_labels = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []
    if not match_labels and not exprs:
        return LabelSelector.everything()
    reqs: list[Requirement] = []
    for k, v in match_labels.items():
        reqs.append(_new_requirement(str(k), OP_EQUALS, [str(v)]))
    for expr in exprs:
        raw_op = expr.get("operator", "")
        op = _OBJECT_OPS.get(raw_op)
        if op is None:
            raise _SelectorError(f"{orjson.dumps(str(raw_op)).decode()} is not a valid label selector operator")
        reqs.append(_new_requirement(str(expr.get("key", "")), op, [str(v) for v in expr.get("values") or []]))
    return LabelSelector(reqs)


def from_label_selector_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """Build a selector from a ``metav1.LabelSelector`` object (``{matchLabels, matchExpressions}``).

    As upstream's ``LabelSelectorAsSelector``: ``None`` selects nothing, ``{}`` selects everything;
    invalid keys, values or operators raise a 400 ``BadRequest``.
    """
    try:
        return _object_to_selector(sel)
    except _SelectorError as e:
        raise errors.bad_request(str(e)) from None


def selector_to_string(sel: Mapping[str, Any] | None, empty: str = "<none>") -> str:
    """Render a ``metav1.LabelSelector`` as ``metav1.FormatLabelSelector`` does (``app=x,tier in (a,b)``).

    ``empty`` is what a selector without terms renders as: ``<none>`` for printed columns; pass ``""``
    for ``Scale.status.selector``. An invalid selector renders as ``<error>``.
    """
    try:
        text = str(_object_to_selector(sel))
    except _SelectorError:
        return "<error>"
    return text or empty


# --------------------------------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------------------------------

FieldGetter = Callable[[Mapping[str, Any]], str]


def _path_getter(*path: str) -> FieldGetter:
    """Read a string field at ``path`` (missing or null reads as ``""``)."""
    if len(path) == 1:
        (a,) = path

        def get1(obj: Mapping[str, Any]) -> str:
            v = obj.get(a)
            return "" if v is None else str(v)

        return get1
    if len(path) == 2:
        a, b = path

        def get2(obj: Mapping[str, Any]) -> str:
            v = (obj.get(a) or {}).get(b)
            return "" if v is None else str(v)

        return get2

    def getn(obj: Mapping[str, Any]) -> str:
        cur: Any = obj
        for p in path:
            if not isinstance(cur, Mapping):
                return ""
            cur = cur.get(p)
        return "" if cur is None else str(cur)

    return getn


def _bool_getter(*path: str) -> FieldGetter:
    """A boolean field rendered as upstream's ``strconv.FormatBool`` (absent means ``false``)."""
    a, b = path

    def get(obj: Mapping[str, Any]) -> str:
        return "true" if (obj.get(a) or {}).get(b) is True else "false"

    return get


def _int_getter(*path: str) -> FieldGetter:
    a, b = path

    def get(obj: Mapping[str, Any]) -> str:
        v = (obj.get(a) or {}).get(b)
        return str(int(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else "0"

    return get


def _pod_ip(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    ips = status.get("podIPs")
    if ips:
        first = ips[0]
        if isinstance(first, Mapping):
            return str(first.get("ip") or "")
    return str(status.get("podIP") or "")


def _pod_service_account(obj: Mapping[str, Any]) -> str:
    spec = obj.get("spec") or {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "")


def _event_ref(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = obj.get("involvedObject")
    if ref is None:
        ref = obj.get("regarding")
    return ref if isinstance(ref, Mapping) else {}


def _event_ref_getter(field_name: str) -> FieldGetter:
    def get(obj: Mapping[str, Any]) -> str:
        v = _event_ref(obj).get(field_name)
        return "" if v is None else str(v)

    return get


def _event_reporting(obj: Mapping[str, Any]) -> str:
    v = obj.get("reportingComponent")
    if v is None:
        v = obj.get("reportingController")
    return "" if v is None else str(v)


def _event_source(obj: Mapping[str, Any]) -> str:
    src = obj.get("source")
    if src is None:
        src = obj.get("deprecatedSource")
    component = src.get("component") if isinstance(src, Mapping) else None
    return str(component) if component else _event_reporting(obj)


_META_NAME = _path_getter("metadata", "name")
_META_NAMESPACE = _path_getter("metadata", "namespace")

# Core v1 Event's selectable fields (upstream pkg/registry/core/event ToSelectableFields).
_EVENT_FIELDS: dict[str, FieldGetter] = {
    "metadata.name": _META_NAME,
    "metadata.namespace": _META_NAMESPACE,
    **{
        f"involvedObject.{f}": _event_ref_getter(f)
        for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    },
    "reason": _path_getter("reason"),
    "reportingComponent": _event_reporting,
    "source": _event_source,
    "type": _path_getter("type"),
}


@dataclass(frozen=True)
class _FieldSpec:
    """Which field labels a kind accepts (label -> stored field name) and how to read each stored field."""

    labels: dict[str, str]
    getters: dict[str, FieldGetter]
    strict: bool  # True: upstream registers a conversion func ("field label not supported: X")

    def convert(self, label: str) -> str:
        target = self.labels.get(label)
        if target is not None:
            return target
        if self.strict:
            raise _SelectorError(f"field label not supported: {label}")
        raise _SelectorError(f'"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"')


def _identity(*labels: str) -> dict[str, str]:
    return {lb: lb for lb in labels}


_DEFAULT_SPEC = _FieldSpec(
    _identity("metadata.name", "metadata.namespace"),
    {"metadata.name": _META_NAME, "metadata.namespace": _META_NAMESPACE},
    strict=False,
)

_SPECS: dict[tuple[str, str], _FieldSpec] = {
    ("", "Pod"): _FieldSpec(
        {
            **_identity(
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ),
            "spec.host": "spec.nodeName",  # legacy v1 clients
        },
        {
            "metadata.name": _META_NAME,
            "metadata.namespace": _META_NAMESPACE,
            "spec.nodeName": _path_getter("spec", "nodeName"),
            "spec.restartPolicy": _path_getter("spec", "restartPolicy"),
            "spec.schedulerName": _path_getter("spec", "schedulerName"),
            "spec.serviceAccountName": _pod_service_account,
            "spec.hostNetwork": _bool_getter("spec", "hostNetwork"),
            "status.phase": _path_getter("status", "phase"),
            "status.podIP": _pod_ip,
            "status.nominatedNodeName": _path_getter("status", "nominatedNodeName"),
        },
        strict=True,
    ),
    ("", "Node"): _FieldSpec(
        _identity("metadata.name", "spec.unschedulable"),
        {"metadata.name": _META_NAME, "spec.unschedulable": _bool_getter("spec", "unschedulable")},
        strict=True,
    ),
    ("", "Namespace"): _FieldSpec(
        _identity("metadata.name", "status.phase"),
        {"metadata.name": _META_NAME, "status.phase": _path_getter("status", "phase")},
        strict=True,
    ),
    ("", "Secret"): _FieldSpec(
        _identity("metadata.name", "metadata.namespace", "type"),
        {"metadata.name": _META_NAME, "metadata.namespace": _META_NAMESPACE, "type": _path_getter("type")},
        strict=True,
    ),
    ("", "Service"): _FieldSpec(
        _identity("metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"),
        {
            "metadata.name": _META_NAME,
            "metadata.namespace": _META_NAMESPACE,
            "spec.clusterIP": _path_getter("spec", "clusterIP"),
            "spec.type": _path_getter("spec", "type"),
        },
        strict=True,
    ),
    ("", "ReplicationController"): _FieldSpec(
        _identity("metadata.name", "metadata.namespace", "status.replicas"),
        {
            "metadata.name": _META_NAME,
            "metadata.namespace": _META_NAMESPACE,
            "status.replicas": _int_getter("status", "replicas"),
        },
        strict=True,
    ),
    ("", "Event"): _FieldSpec(_identity(*_EVENT_FIELDS), _EVENT_FIELDS, strict=True),
    # events.k8s.io names its fields after its own schema and maps them onto the stored core fields.
    ("events.k8s.io", "Event"): _FieldSpec(
        {
            "metadata.name": "metadata.name",
            "metadata.namespace": "metadata.namespace",
            **{
                f"regarding.{f}": f"involvedObject.{f}"
                for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
            },
            "reason": "reason",
            "reportingController": "reportingComponent",
            "source": "source",
            "type": "type",
        },
        _EVENT_FIELDS,
        strict=True,
    ),
}


def supported_fields(resource: Resource) -> list[str]:
    """The field labels ``resource`` accepts in a field selector."""
    return sorted(_SPECS.get((resource.group, resource.kind), _DEFAULT_SPEC).labels)


@dataclass(frozen=True)
class FieldRequirement:
    """``field = value`` or ``field != value``; ``field`` is the stored (converted) field name."""

    field: str
    operator: str  # "=" or "!="
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape_value(self.value)}"


ObjectMatcher = Callable[[Mapping[str, Any]], bool]


def _all_objects(obj: Mapping[str, Any]) -> bool:
    return True


def _field_term(getter: FieldGetter, value: str, equal: bool) -> ObjectMatcher:
    if equal:
        return lambda obj: getter(obj) == value
    return lambda obj: getter(obj) != value


class FieldSelector:
    """A conjunction of field terms, compiled to per-field readers for fast matching.

    As with :class:`LabelSelector`, ``matches(obj)`` is a per-instance closure built once;
    ``obj`` is the stored JSON form of the object.
    """

    __slots__ = ("matches", "requirements")

    def __init__(
        self, requirements: Iterable[FieldRequirement] = (), getters: Iterable[FieldGetter] | None = None
    ) -> None:
        self.requirements: tuple[FieldRequirement, ...] = tuple(requirements)
        readers = list(getters) if getters is not None else [_default_getter(r.field) for r in self.requirements]
        terms = [_field_term(g, r.value, r.operator == "=") for g, r in zip(readers, self.requirements, strict=True)]
        self.matches: ObjectMatcher
        if not terms:
            self.matches = _all_objects
        elif len(terms) == 1:
            self.matches = terms[0]
        elif len(terms) == 2:
            t1, t2 = terms
            self.matches = lambda obj: t1(obj) and t2(obj)
        else:
            all_terms = tuple(terms)

            def all_of(obj: Mapping[str, Any]) -> bool:
                for t in all_terms:
                    if not t(obj):
                        return False
                return True

            self.matches = all_of

    @classmethod
    def everything(cls) -> FieldSelector:
        return cls()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def requires_exact(self, field_name: str) -> str | None:
        """The value ``field_name`` must equal when some ``=`` term pins it (upstream ``RequiresExactMatch``)."""
        for r in self.requirements:
            if r.field == field_name and r.operator == "=":
                return r.value
        return None

    def exact_name(self) -> str | None:
        """The name the selector pins via ``metadata.name=X``, if any.

        A caller may fetch that single object instead of scanning, but must still apply
        :meth:`matches` to it unless :attr:`only_exact_name` is true.
        """
        return self.requires_exact("metadata.name")

    @property
    def only_exact_name(self) -> bool:
        """True when the whole selector is one ``metadata.name=X`` term."""
        return len(self.requirements) == 1 and self.exact_name() is not None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"


def _default_getter(field_name: str) -> FieldGetter:
    """A reader for a stored field given by its dotted path (used when no kind-specific reader exists)."""
    return _DEFAULT_SPEC.getters.get(field_name) or _path_getter(*field_name.split("."))


def _escape_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_terms(s: str) -> list[str]:
    """Split on commas that are not backslash-escaped (the backslash is kept for :func:`_unescape`)."""
    if "\\" not in s:
        return s.split(",")
    terms: list[str] = []
    start = 0
    escaped = False
    for i, c in enumerate(s):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """Split at the first operator (``!=``, ``==``, then ``=``); the left side takes no escapes."""
    for i in range(len(term)):
        c = term[i]
        if c == "!" and term.startswith("!=", i):
            return term[:i], "!=", term[i + 2 :]
        if c == "=":
            if term.startswith("==", i):
                return term[:i], "=", term[i + 2 :]
            return term[:i], "=", term[i + 1 :]
    return None


def _unescape(v: str) -> str:
    if "\\" not in v and "," not in v and "=" not in v:
        return v
    out: list[str] = []
    escaped = False
    for c in v:
        if escaped:
            if c not in "\\,=":
                raise _SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            raise _SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if escaped:
        raise _SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _parse_field_selector(s: str, resource: Resource) -> FieldSelector:
    parsed: list[tuple[str, str, str]] = []
    for part in sorted(_split_terms(s)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise _SelectorError(f"invalid selector: '{s}'; can't understand '{part}'")
        lhs, op, rhs = split
        parsed.append((lhs, op, _unescape(rhs)))
    spec = _SPECS.get((resource.group, resource.kind), _DEFAULT_SPEC)
    reqs: list[FieldRequirement] = []
    getters: list[FieldGetter] = []
    for lhs, op, value in parsed:
        stored = spec.convert(lhs)
        reqs.append(FieldRequirement(stored, op, value))
        getters.append(spec.getters.get(stored) or _default_getter(stored))
    return FieldSelector(reqs, getters)


_FIELD_CACHE: dict[tuple[str, str, str], FieldSelector] = {}
_FIELD_CACHE_MAX = 512


def parse_field_selector(s: str, resource: Resource) -> FieldSelector:
    """Parse a ``fieldSelector`` for ``resource``; errors are 400 ``BadRequest`` with upstream's message."""
    cache_key = (resource.group, resource.kind, s)
    hit = _FIELD_CACHE.get(cache_key)
    if hit is not None:
        return hit
    try:
        sel = _parse_field_selector(s, resource)
    except _SelectorError as e:
        raise errors.bad_request(str(e)) from None
    if len(_FIELD_CACHE) >= _FIELD_CACHE_MAX:
        _FIELD_CACHE.clear()
    _FIELD_CACHE[cache_key] = sel
    return sel
