"""Validation of API objects, with kube-apiserver v1.32's messages and field paths.

:func:`validate` checks an object (already defaulted by :mod:`tinykube.api.defaults`)
on create (``old is None``) or update and returns a list of
:class:`~tinykube.api.errors.FieldError`; the API server turns a non-empty list
into the 422 ``Invalid`` status. :func:`validate_status` checks writes to the
``status`` subresource and :func:`validate_scale_replicas` the ``scale`` one.

The rules, the texts and the field paths follow upstream's
``apimachinery/pkg/util/validation``, ``apimachinery/pkg/api/validation`` and
``pkg/apis/{core,apps,discovery,coordination}/validation``, including their
quirks (``spec.template.labels`` for template labels, ``metadata.ownerReferences.uid``
without an index). Values that upstream prints with Go's ``%#v`` (maps, slices,
label selectors, ``IntOrString``) are rendered the same way through
:class:`~tinykube.api.errors.GoRepr`.

Objects are plain JSON dicts and may hold anything: a field of the wrong JSON
type is reported as an ``Invalid value`` error, never raised.

:func:`parse_quantity` / :func:`format_quantity` implement Kubernetes' resource
quantity syntax (``100m``, ``64Mi``, ``1e3``, ``1.5Gi``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from decimal import ROUND_CEILING, ROUND_UP, Context, Decimal, InvalidOperation
from typing import Any

import orjson

from tinykube.api.errors import (
    FieldError,
    GoRepr,
    duplicate,
    forbidden,
    invalid_value,
    not_supported,
    required,
    too_long,
)
from tinykube.api.resources import Resource

Obj = dict[str, Any]
Errs = list[FieldError]
NameFn = Callable[[str, bool], list[str]]

# ---------------------------------------------------------------------------
# Messages shared with upstream
# ---------------------------------------------------------------------------

IS_NEGATIVE_MSG = "must be greater than or equal to 0"
FIELD_IMMUTABLE_MSG = "field is immutable"
NOT_POSITIVE_MSG = "must be greater than zero"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
MAX_SECRET_SIZE = 1024 * 1024
MAX_INT32 = 2**31 - 1
NODE_PORT_RANGE = (30000, 32767)


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Upstream's ``RegexError``: the message, examples and the regex used."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    ex = " or ".join(f"'{e}', " for e in examples)  # upstream's odd "'a',  or 'b', " spacing
    return f"{msg} (e.g. {ex}regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


EMPTY_ERROR = "must be non-empty"


def _blen(s: str) -> int:
    """Length in bytes, as Go's ``len`` counts."""
    return len(s.encode("utf-8", "surrogatepass"))


# ---------------------------------------------------------------------------
# String formats (apimachinery/pkg/util/validation)
# ---------------------------------------------------------------------------

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_PERCENT_FMT = "[0-9]+%"
_PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_MSG = "a valid HTTP header must consist of alphanumeric characters or '-'"
_RELAXED_ENV_MSG = "a valid environment variable name must consist only of printable ASCII characters other than '='"

_RE_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_RE_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_RE_DNS1035_LABEL = re.compile(_DNS1035_LABEL_FMT)
_RE_QNAME = re.compile(_QNAME_FMT)
_RE_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)
_RE_CONFIG_KEY = re.compile(_CONFIG_KEY_FMT)
_RE_PERCENT = re.compile(_PERCENT_FMT)
_RE_HTTP_HEADER = re.compile(_HTTP_HEADER_FMT)
_RE_PORT_NAME_CHARS = re.compile("[-a-z0-9]+")
_RE_HAS_LETTER = re.compile("[a-z]")


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _RE_DNS1123_LABEL.fullmatch(value):
        if _RE_DNS1123_SUBDOMAIN.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _RE_DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _RE_DNS1035_LABEL.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: ``[prefix/]name``."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif _blen(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _RE_QNAME.fullmatch(name):
        errs.append("name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _RE_LABEL_VALUE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _has_chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _RE_CONFIG_KEY.fullmatch(value):
        errs.append(regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    errs.extend(_has_chdir_prefix(value))
    return errs


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 of ``[-a-z0-9]``, a letter, no ``--``, no edge hyphen."""
    errs: list[str] = []
    if _blen(port) > 15:
        errs.append(max_len_error(15))
    if not _RE_PORT_NAME_CHARS.fullmatch(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _RE_HAS_LETTER.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> list[str]:
    if not _RE_PERCENT.fullmatch(value):
        return [regex_error(_PERCENT_MSG, _PERCENT_FMT, "1%", "93%")]
    return []


def is_relaxed_env_var_name(value: str) -> list[str]:
    errs: list[str] = []
    if not value:
        errs.append("environment variable name " + EMPTY_ERROR)
    for ch in value:
        if ord(ch) > 127 or not ch.isprintable() or ch == "=":
            errs.append(_RELAXED_ENV_MSG)
            break
    return errs


def is_http_header_name(value: str) -> list[str]:
    if not _RE_HTTP_HEADER.fullmatch(value):
        return [regex_error(_HTTP_HEADER_MSG, _HTTP_HEADER_FMT, "X-Header-Name")]
    return []


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's ``netutils.ParseIPSloppy``: also accepts leading zeros in IPv4 octets."""
    if not value or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    parts = value.split(".")
    if len(parts) == 4 and all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        nums = [int(p) for p in parts]
        if all(n <= 255 for n in nums):
            return ipaddress.IPv4Address(".".join(str(n) for n in nums))
    return None


def is_valid_ip(value: str) -> bool:
    return _parse_ip(value) is not None


_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def _validate_ip(path: str, value: str) -> Errs:
    return [] if is_valid_ip(value) else [invalid_value(path, value, _IP_MSG)]


def _validate_non_special_ip(value: str, path: str) -> Errs:
    ip = _parse_ip(value)
    if ip is None:
        return [invalid_value(path, value, "must be a valid IP address")]
    errs: Errs = []
    if ip.is_unspecified:
        errs.append(invalid_value(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        errs.append(invalid_value(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local and not ip.is_multicast:
        errs.append(invalid_value(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    link_local_mc = (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("224.0.0.0/24")) or (
        isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("ff02::/16")
    )
    if link_local_mc:
        errs.append(
            invalid_value(path, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
        )
    return errs


def _validate_cidr(path: str, value: str) -> Errs:
    try:
        ipaddress.ip_network(value, strict=False)
        if "/" not in value:
            raise ValueError
    except ValueError:
        return [invalid_value(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    return []


# Name validators (ValidateNameFunc): ``prefix`` means a generateName prefix, where a trailing dash is fine.


def _mask_trailing_dash(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def _path_segment_name(name: str, prefix: bool) -> list[str]:
    if not prefix:
        for bad in (".", ".."):
            if name == bad:
                return [f"may not be '{bad}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# ---------------------------------------------------------------------------
# Go value rendering (%#v) for the values upstream prints that way
# ---------------------------------------------------------------------------


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote``."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\v":
            out.append("\\v")
        elif ch.isprintable():
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _go_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return go_quote(v)
    if v is None:
        return "<nil>"
    return str(v)


def go_string_map(m: Any) -> GoRepr:
    """``map[string]string{"a":"b"}`` (keys sorted, as fmt prints maps), or ``(nil)``."""
    if not isinstance(m, dict):
        return GoRepr("map[string]string(nil)")
    items = ", ".join(f"{go_quote(str(k))}:{_go_scalar(m[k])}" for k in sorted(m, key=str))
    return GoRepr("map[string]string{" + items + "}")


def go_string_slice(v: Any) -> GoRepr:
    if not isinstance(v, list):
        return GoRepr("[]string(nil)")
    return GoRepr("[]string{" + ", ".join(_go_scalar(x) for x in v) + "}")


def go_int_or_string(v: Any) -> GoRepr:
    if isinstance(v, str):
        return GoRepr(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(v)}}}")
    n = v if isinstance(v, int) and not isinstance(v, bool) else 0
    return GoRepr(f'intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:""}}')


def go_label_selector(sel: Any) -> GoRepr:
    """A ``metav1.LabelSelector`` the way field errors print it."""
    sel = sel if isinstance(sel, dict) else {}
    ml = sel.get("matchLabels")
    me = sel.get("matchExpressions")
    if isinstance(me, list):
        reqs = []
        for r in me:
            r = r if isinstance(r, dict) else {}
            reqs.append(
                "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}".format(
                    go_quote(str(r.get("key") or "")),
                    go_quote(str(r.get("operator") or "")),
                    go_string_slice(r.get("values")),
                )
            )
        exprs = "[]v1.LabelSelectorRequirement{" + ", ".join(reqs) + "}"
    else:
        exprs = "[]v1.LabelSelectorRequirement(nil)"
    return GoRepr(f"v1.LabelSelector{{MatchLabels:{go_string_map(ml)}, MatchExpressions:{exprs}}}")


# ---------------------------------------------------------------------------
# Quantities (apimachinery/pkg/api/resource)
# ---------------------------------------------------------------------------

QUANTITY_FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"
_DEC_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {v: k for k, v in _DEC_SUFFIXES.items()}
_BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BIN_NAMES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
_QCTX = Context(prec=200, Emax=10**8, Emin=-(10**8))
_MAX_QUANTITY = Decimal(2**63 - 1)
_NANO = Decimal("1e-9")


def _split_quantity(s: str) -> tuple[bool, str, str, str]:
    """Upstream's ``parseQuantityString``: (positive, numerator, denominator, suffix)."""
    if not s:
        raise ValueError(QUANTITY_FORMAT_ERROR)
    end = len(s)
    pos = 0
    positive = True
    if s[0] == "+":
        pos = 1
    elif s[0] == "-":
        positive = False
        pos = 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and "0" <= s[pos] <= "9":
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and "0" <= s[pos] <= "9":
            pos += 1
        denom = s[start:pos]
    if pos >= end:
        return positive, num, denom, ""
    suffix_start = pos
    while pos < end and s[pos] in "eEinumkKMGTP":
        pos += 1
    if pos < end and s[pos] in "-+":
        pos += 1
    while pos < end:
        if not "0" <= s[pos] <= "9":
            raise ValueError(QUANTITY_FORMAT_ERROR)
        pos += 1
    return positive, num, denom, s[suffix_start:end]


def _parse_quantity_full(s: str) -> tuple[Decimal, str]:
    """The value (rounded up to nano, capped at 2^63-1) and its format name."""
    if not isinstance(s, str):
        raise ValueError(QUANTITY_FORMAT_ERROR)
    positive, num, denom, suffix = _split_quantity(s)
    if suffix in _DEC_SUFFIXES:
        base, exp, fmt = 10, _DEC_SUFFIXES[suffix], "DecimalSI"
    elif suffix in _BIN_SUFFIXES:
        base, exp, fmt = 2, _BIN_SUFFIXES[suffix], "BinarySI"
    elif len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        sign = -1 if digits[0] == "-" else 1
        digits = digits.lstrip("+-")
        if not digits or len(suffix[1:]) - len(digits) > 1 or not digits.isdigit() or len(digits) > 18:
            raise ValueError(_QUANTITY_SUFFIX_ERROR)
        base, exp, fmt = 10, sign * int(digits), "DecimalExponent"
    else:
        raise ValueError(_QUANTITY_SUFFIX_ERROR)
    try:
        amount = _QCTX.create_decimal(f"{num}.{denom}" if denom else num)
    except InvalidOperation as exc:  # pragma: no cover - digits only
        raise ValueError("unable to parse numeric part of quantity") from exc
    if amount != 0:
        if base == 10 and exp > 100:
            amount = _MAX_QUANTITY
        elif base == 10 and exp < -100:
            amount = _NANO
        elif base == 10:
            amount = _QCTX.scaleb(amount, exp)
        else:
            amount = _QCTX.multiply(amount, Decimal(2**exp))
        if amount > _MAX_QUANTITY:
            amount = _MAX_QUANTITY
        elif _dec_exp(amount) < -9:
            amount = amount.quantize(_NANO, rounding=ROUND_CEILING, context=_QCTX)
        if fmt == "BinarySI" and amount < 1:
            fmt = "DecimalSI"
    if not positive:
        amount = -amount
    return amount, fmt


def _dec_exp(d: Decimal) -> int:
    e = d.as_tuple().exponent
    return e if isinstance(e, int) else 0


def parse_quantity(s: str) -> Decimal:
    """Parse a Kubernetes quantity (``100m``, ``64Mi``, ``1e3``, ``1.5Gi``) to its exact value.

    Raises ``ValueError`` with upstream's message for anything that is not a quantity.
    """
    return _parse_quantity_full(s)[0]


def _canonical_quantity(value: Decimal, fmt: str) -> str:
    if value == 0:
        return "0"
    if fmt == "BinarySI":
        if -1024 < value < 1024 or value != value.to_integral_value():
            fmt = "DecimalSI"
        else:
            mant = int(value)
            exp = 0
            while mant % 1024 == 0 and exp < 6:
                mant //= 1024
                exp += 1
            return f"{mant}{_BIN_NAMES[exp]}"
    sign, digits, _ = value.as_tuple()
    mant = int("".join(str(d) for d in digits)) if digits else 0
    exp = _dec_exp(value)
    while mant and mant % 10 == 0:
        mant //= 10
        exp += 1
    while exp % 3 != 0:
        mant *= 10
        exp -= 1
    number = ("-" if sign else "") + str(mant)
    if fmt == "DecimalExponent":
        return number + ("" if exp == 0 else f"e{exp}")
    return number + _DEC_BY_EXP.get(exp, f"e{exp}")


def format_quantity(s: str | int | float, round_milli: bool = False) -> str:
    """The canonical form upstream serializes a quantity as (``0.5`` -> ``500m``, ``1024Mi`` -> ``1Gi``).

    ``round_milli`` rounds up to milli units first, as resource lists are defaulted.
    Raises ``ValueError`` for an invalid quantity.
    """
    value, fmt = _parse_quantity_full(_quantity_text(s))
    if round_milli and value != 0 and _dec_exp(value) < -3:
        value = value.quantize(Decimal("0.001"), rounding=ROUND_UP, context=_QCTX)
    return _canonical_quantity(value, fmt)


def _quantity_text(v: Any) -> str:
    """Quantities may arrive as JSON numbers; Go's unmarshaller reads the literal."""
    if isinstance(v, bool):
        raise ValueError(QUANTITY_FORMAT_ERROR)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        if r in ("inf", "-inf", "nan"):
            raise ValueError(QUANTITY_FORMAT_ERROR)
        return r
    if isinstance(v, str):
        return v.strip()
    raise ValueError(QUANTITY_FORMAT_ERROR)


# ---------------------------------------------------------------------------
# Typed access to JSON: a wrong type is an error, never an exception
# ---------------------------------------------------------------------------

_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer"}


def _dict_of(d: Obj, key: str) -> Obj:
    x = d.get(key)
    return x if isinstance(x, dict) else {}


def _list_of(d: Obj, key: str) -> list[Any]:
    x = d.get(key)
    return x if isinstance(x, list) else []


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_error(path: str, value: Any, want: type) -> FieldError:
    return invalid_value(path, value, f"must be of type {_TYPE_NAMES.get(want, want.__name__)}")


class _V:
    """Collects errors while reading typed fields out of JSON dicts."""

    def __init__(self) -> None:
        self.errs: Errs = []

    def add(self, *errs: FieldError) -> None:
        self.errs.extend(errs)

    def extend(self, errs: Iterable[FieldError]) -> None:
        self.errs.extend(errs)

    def get_map(self, d: Obj, key: str, path: str) -> Obj | None:
        v = d.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            self.add(_type_error(_child(path, key), v, dict))
            return None
        return v

    def get_list(self, d: Obj, key: str, path: str) -> list[Any]:
        v = d.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            self.add(_type_error(_child(path, key), v, list))
            return []
        return v

    def get_str(self, d: Obj, key: str, path: str) -> str:
        v = d.get(key)
        if v is None:
            return ""
        if not isinstance(v, str):
            self.add(_type_error(_child(path, key), v, str))
            return ""
        return v

    def get_opt_str(self, d: Obj, key: str, path: str) -> str | None:
        v = d.get(key)
        if v is None:
            return None
        if not isinstance(v, str):
            self.add(_type_error(_child(path, key), v, str))
            return None
        return v

    def get_int(self, d: Obj, key: str, path: str, bits: int = 32) -> int | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            self.add(_type_error(_child(path, key), v, int))
            return None
        if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
            self.add(invalid_value(_child(path, key), v, f"must be of type int{bits}"))
            return None
        return v

    def get_bool(self, d: Obj, key: str, path: str) -> bool | None:
        v = d.get(key)
        if v is None:
            return None
        if not isinstance(v, bool):
            self.add(_type_error(_child(path, key), v, bool))
            return None
        return v

    def str_map(self, d: Obj, key: str, path: str) -> dict[str, str] | None:
        m = self.get_map(d, key, path)
        if m is None:
            return None
        out: dict[str, str] = {}
        for k, v in m.items():
            if v is None:
                out[k] = ""
            elif not isinstance(v, str):
                self.add(_type_error(f"{_child(path, key)}[{k}]", v, str))
            else:
                out[k] = v
        return out

    def str_list(self, d: Obj, key: str, path: str) -> list[str]:
        out: list[str] = []
        p = _child(path, key)
        for i, v in enumerate(self.get_list(d, key, path)):
            if not isinstance(v, str):
                self.add(_type_error(f"{p}[{i}]", v, str))
            else:
                out.append(v)
        return out

    def items(self, d: Obj, key: str, path: str) -> list[tuple[int, Obj, str]]:
        """The dict elements of a list field with their paths; other elements are type errors."""
        out: list[tuple[int, Obj, str]] = []
        p = _child(path, key)
        for i, v in enumerate(self.get_list(d, key, path)):
            if isinstance(v, dict):
                out.append((i, v, f"{p}[{i}]"))
            else:
                self.add(_type_error(f"{p}[{i}]", v, dict))
        return out

    def nonneg(self, d: Obj, key: str, path: str, bits: int = 32) -> None:
        v = self.get_int(d, key, path, bits)
        if v is not None and v < 0:
            self.add(invalid_value(_child(path, key), v, IS_NEGATIVE_MSG))

    def int_or_string(self, d: Obj, key: str, path: str) -> int | str | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31:
            return v
        self.add(invalid_value(_child(path, key), v, "must be an integer or a string"))
        return None


# ---------------------------------------------------------------------------
# ObjectMeta
# ---------------------------------------------------------------------------

_STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}


def validate_labels(v: _V, labels: dict[str, str] | None, path: str) -> None:
    for k in sorted(labels or {}):
        for msg in is_qualified_name(k):
            v.add(invalid_value(path, k, msg))
        for msg in is_valid_label_value((labels or {})[k]):
            v.add(invalid_value(path, (labels or {})[k], msg))


def validate_annotations(v: _V, annotations: dict[str, str] | None, path: str) -> None:
    total = 0
    for k in sorted(annotations or {}):
        for msg in is_qualified_name(k.lower()):
            v.add(invalid_value(path, k, msg))
        total += _blen(k) + _blen((annotations or {})[k])
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        v.add(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))


def _go_owner_ref(ref: Obj) -> str:
    def sp(key: str) -> str:
        return go_quote(str(ref.get(key) or ""))

    def bp(key: str) -> str:
        return "(*bool)(nil)" if ref.get(key) is None else "(*bool)(0xc000000000)"

    return (
        f"v1.OwnerReference{{APIVersion:{sp('apiVersion')}, Kind:{sp('kind')}, Name:{sp('name')}, "
        f"UID:{sp('uid')}, Controller:{bp('controller')}, BlockOwnerDeletion:{bp('blockOwnerDeletion')}}}"
    )


def _validate_owner_references(v: _V, meta: Obj, path: str) -> None:
    p = _child(path, "ownerReferences")
    refs = v.items(meta, "ownerReferences", path)
    first_controller = ""
    for _, ref, rpath in refs:
        api_version = v.get_str(ref, "apiVersion", rpath)
        kind = v.get_str(ref, "kind", rpath)
        name = v.get_str(ref, "name", rpath)
        uid = v.get_str(ref, "uid", rpath)
        controller = v.get_bool(ref, "controller", rpath)
        v.get_bool(ref, "blockOwnerDeletion", rpath)
        group, version = "", ""
        if api_version.count("/") == 0:
            version = api_version
        elif api_version.count("/") == 1:
            group, version = api_version.split("/")
        if not version:
            v.add(invalid_value(_child(p, "apiVersion"), api_version, "version must not be empty"))
        if not kind:
            v.add(invalid_value(_child(p, "kind"), kind, "must not be empty"))
        if not name:
            v.add(invalid_value(_child(p, "name"), name, "must not be empty"))
        if not uid:
            v.add(invalid_value(_child(p, "uid"), uid, "must not be empty"))
        if group == "" and version == "v1" and kind == "Event":
            v.add(invalid_value(p, GoRepr(_go_owner_ref(ref)), "/v1, Kind=Event is disallowed from being an owner"))
        if controller:
            cur = f"{kind}/{name}"
            if first_controller:
                all_refs = "[]v1.OwnerReference{" + ", ".join(_go_owner_ref(r) for _, r, _ in refs) + "}"
                v.add(
                    invalid_value(
                        p,
                        GoRepr(all_refs),
                        "Only one reference can have Controller set to true. "
                        f'Found "true" in references for {first_controller} and {cur}',
                    )
                )
            else:
                first_controller = cur


def _validate_finalizers(v: _V, finalizers: list[str], path: str) -> None:
    for f in finalizers:
        for msg in is_qualified_name(f):
            v.add(invalid_value(path, f, msg))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        v.add(
            invalid_value(
                path, go_string_slice(finalizers), "finalizer orphan and foregroundDeletion cannot be both set"
            )
        )


def _validate_kube_finalizer_name(v: _V, name: str, path: str) -> None:
    if "/" not in name and name not in _STANDARD_FINALIZERS:
        v.add(invalid_value(path, name, "name is neither a standard finalizer name nor is it fully qualified"))


def _meta(v: _V, obj: Obj) -> Obj:
    m = v.get_map(obj, "metadata", "")
    return m if m is not None else {}


def validate_object_meta(v: _V, meta: Obj, namespaced: bool, name_fn: NameFn, path: str = "metadata") -> None:
    """Upstream's ValidateObjectMeta (core flavour, with the kube finalizer name check)."""
    generate_name = v.get_str(meta, "generateName", path)
    name = v.get_str(meta, "name", path)
    namespace = v.get_str(meta, "namespace", path)
    if generate_name:
        for msg in name_fn(generate_name, True):
            v.add(invalid_value(_child(path, "generateName"), generate_name, msg))
    if not name:
        v.add(required(_child(path, "name"), "name or generateName is required"))
    else:
        for msg in name_fn(name, False):
            v.add(invalid_value(_child(path, "name"), name, msg))
    if namespaced:
        if not namespace:
            v.add(required(_child(path, "namespace")))
        else:
            for msg in name_is_dns_label(namespace, False):
                v.add(invalid_value(_child(path, "namespace"), namespace, msg))
    v.nonneg(meta, "generation", path, 64)
    validate_labels(v, v.str_map(meta, "labels", path), _child(path, "labels"))
    validate_annotations(v, v.str_map(meta, "annotations", path), _child(path, "annotations"))
    _validate_owner_references(v, meta, path)
    finalizers = v.str_list(meta, "finalizers", path)
    _validate_finalizers(v, finalizers, _child(path, "finalizers"))
    for i, f in enumerate(finalizers):
        _validate_kube_finalizer_name(v, f, f"{path}.finalizers[{i}]")


def _immutable(v: _V, new: Any, old: Any, path: str, shown: Any = None) -> None:
    if not _sem_equal(new, old):
        v.add(invalid_value(path, new if shown is None else shown, FIELD_IMMUTABLE_MSG))


def validate_object_meta_update(v: _V, meta: Obj, old_meta: Obj, path: str = "metadata") -> None:
    """Upstream's ValidateObjectMetaUpdate (core flavour)."""
    finalizers = v.str_list(meta, "finalizers", path)
    if old_meta.get("deletionTimestamp"):
        old_fin = _list_of(old_meta, "finalizers")
        extra = sorted({f for f in finalizers if f not in old_fin})
        if extra:
            v.add(
                forbidden(
                    _child(path, "finalizers"),
                    f"no new finalizers can be added if the object is being deleted, found new finalizers {go_string_slice(extra)}",
                )
            )
    gen = v.get_int(meta, "generation", path, 64)
    old_gen = old_meta.get("generation")
    if isinstance(gen, int) and isinstance(old_gen, int) and not isinstance(old_gen, bool) and gen < old_gen:
        v.add(invalid_value(_child(path, "generation"), gen, "must not be decremented"))
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        # An update that leaves a system field out keeps the stored one (upstream's rest.BeforeUpdate).
        if meta.get(key) in (None, ""):
            continue
        _immutable(
            v,
            meta.get(key),
            old_meta[key]
            if old_meta.get(key) not in (None, "")
            else ("" if key in ("name", "namespace", "uid") else None),
            _child(path, key),
        )
    validate_labels(v, v.str_map(meta, "labels", path), _child(path, "labels"))
    validate_annotations(v, v.str_map(meta, "annotations", path), _child(path, "annotations"))
    _validate_owner_references(v, meta, path)
    for i, f in enumerate(finalizers):
        _validate_kube_finalizer_name(v, f, f"{path}.finalizers[{i}]")


def _prune(x: Any) -> Any:
    """Drop nulls and empty lists/maps, as apimachinery's semantic equality ignores nil vs empty."""
    if isinstance(x, dict):
        out = {}
        for k, val in x.items():
            pv = _prune(val)
            if pv is None or pv == {} or pv == []:
                continue
            out[k] = pv
        return out
    if isinstance(x, list):
        return [_prune(i) for i in x]
    return x


def _sem_equal(a: Any, b: Any) -> bool:
    pa, pb = _prune(a), _prune(b)
    if pa in ({}, []) or pa is None:
        pa = None
    if pb in ({}, []) or pb is None:
        pb = None
    return bool(pa == pb)


# ---------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------


def _validate_label_selector(v: _V, sel: Obj, path: str) -> bool:
    """ValidateLabelSelector (strict values); returns whether LabelSelectorAsSelector would succeed."""
    ok = True
    before = len(v.errs)
    ml = v.str_map(sel, "matchLabels", path)
    validate_labels(v, ml, _child(path, "matchLabels"))
    for _, req, rpath in v.items(sel, "matchExpressions", path):
        op = v.get_str(req, "operator", rpath)
        values = v.str_list(req, "values", rpath)
        key = v.get_str(req, "key", rpath)
        if op in ("In", "NotIn"):
            if not values:
                v.add(required(_child(rpath, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                v.add(
                    forbidden(
                        _child(rpath, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                    )
                )
        else:
            v.add(invalid_value(_child(rpath, "operator"), op, "not a valid selector operator"))
        for msg in is_qualified_name(key):
            v.add(invalid_value(_child(rpath, "key"), key, msg))
        for i, val in enumerate(values):
            for msg in is_valid_label_value(val):
                v.add(invalid_value(f"{rpath}.values[{i}]", val, msg))
    if len(v.errs) > before:
        ok = False
    return ok


def selector_matches(sel: Obj | None, labels: dict[str, str] | None) -> bool:
    """Whether a (valid) metav1.LabelSelector selects these labels; ``None`` selects nothing."""
    if sel is None:
        return False
    labels = labels or {}
    ml = sel.get("matchLabels") or {}
    if isinstance(ml, dict):
        for k, val in ml.items():
            if labels.get(k) != val:
                return False
    me = sel.get("matchExpressions") or []
    if isinstance(me, list):
        for req in me:
            if not isinstance(req, dict):
                continue
            key, op, vals = req.get("key"), req.get("operator"), req.get("values")
            if not isinstance(key, str):
                return False
            vals = vals if isinstance(vals, list) else []
            has = key in labels
            if op == "In" and not (has and labels.get(key) in vals):
                return False
            if op == "NotIn" and has and labels.get(key) in vals:
                return False
            if op == "Exists" and not has:
                return False
            if op == "DoesNotExist" and has:
                return False
    return True


def _selector_empty(sel: Obj) -> bool:
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


# ---------------------------------------------------------------------------
# Paths and volumes
# ---------------------------------------------------------------------------


def _no_backsteps(target: str, path: str) -> Errs:
    if ".." in target.replace("\\", "/").split("/"):
        return [invalid_value(path, target, "must not contain '..'")]
    return []


def _local_descending_path(target: str, path: str) -> Errs:
    errs: Errs = []
    if target.startswith("/"):
        errs.append(invalid_value(path, target, "must be a relative path"))
    errs.extend(_no_backsteps(target, path))
    return errs


def _local_non_reserved_path(target: str, path: str) -> Errs:
    errs = _local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid_value(path, target, "must not start with '..'"))
    return errs


_FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"

# VolumeSource members in upstream's checking order, with the path its "more than 1" error uses.
_VOLUME_SOURCES = [
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
]
_HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"]
_VOLUME_DOWNWARD_PATHS = {
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.uid",
}


def _file_mode(v: _V, d: Obj, key: str, path: str) -> None:
    mode = v.get_int(d, key, path)
    if mode is not None and not 0 <= mode <= 0o777:
        v.add(invalid_value(_child(path, key), mode, _FILE_MODE_MSG))


def _key_to_paths(v: _V, src: Obj, path: str, seen: set[str] | None = None, owner: str = "", root: str = "") -> None:
    for _, kp, ipath in v.items(src, "items", path):
        key = v.get_str(kp, "key", ipath)
        p = v.get_str(kp, "path", ipath)
        if not key:
            v.add(required(_child(ipath, "key")))
        if not p:
            v.add(required(_child(ipath, "path")))
        v.extend(_local_non_reserved_path(p, _child(ipath, "path")))
        _file_mode(v, kp, "mode", ipath)
        if seen is not None and p:
            if p in seen:
                v.add(invalid_value(root, owner, "conflicting duplicate paths"))
            seen.add(p)


def _validate_object_field_selector(v: _V, fs: Obj, allowed: set[str], path: str) -> None:
    api_version = v.get_str(fs, "apiVersion", path)
    field_path = v.get_str(fs, "fieldPath", path)
    if not api_version:
        v.add(required(_child(path, "apiVersion")))
        return
    if not field_path:
        v.add(required(_child(path, "fieldPath")))
        return
    sub = _split_subscripted(field_path)
    if api_version != "v1":
        err = f"unsupported pod version: {api_version}"
    elif sub is not None:
        err = (
            ""
            if sub[0] in ("metadata.annotations", "metadata.labels")
            else f"field label does not support subscript: {field_path}"
        )
    elif field_path in _DOWNWARD_LABELS:
        err = ""
    elif field_path == "spec.host":
        field_path = "spec.nodeName"
        err = ""
    else:
        err = f"field label not supported: {field_path}"
    if err:
        v.add(invalid_value(_child(path, "fieldPath"), field_path, f"error converting fieldPath: {err}"))
        return
    if sub is not None:
        base, key = sub
        if base == "metadata.annotations":
            for msg in is_qualified_name(key.lower()):
                v.add(invalid_value(path, key.lower(), msg))
        elif base == "metadata.labels":
            for msg in is_qualified_name(key):
                v.add(invalid_value(path, key, msg))
        else:  # pragma: no cover - rejected by the conversion above
            v.add(invalid_value(path, base, "does not support subscript"))
    elif field_path not in allowed:
        v.add(not_supported(_child(path, "fieldPath"), field_path, sorted(allowed)))


_DOWNWARD_LABELS = {
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
    "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName",
    "status.phase", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
}  # fmt: skip
_ENV_DOWNWARD_PATHS = {
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
}  # fmt: skip
_RESOURCE_FIELD_PATHS = {
    "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "requests.cpu", "requests.memory", "requests.ephemeral-storage",
}  # fmt: skip


def _split_subscripted(fp: str) -> tuple[str, str] | None:
    if not fp.endswith("']"):
        return None
    parts = fp[:-2].split("['", 1)
    if len(parts) < 2 or not parts[0]:
        return None
    return parts[0], parts[1]


def _validate_resource_field_selector(v: _V, fs: Obj, path: str, volume: bool) -> None:
    container = v.get_str(fs, "containerName", path)
    res = v.get_str(fs, "resource", path)
    if volume and not container:
        v.add(required(_child(path, "containerName")))
    elif not res:
        v.add(required(_child(path, "resource")))
    elif res not in _RESOURCE_FIELD_PATHS and not res.startswith(("requests.hugepages-", "limits.hugepages-")):
        v.add(not_supported(_child(path, "resource"), res, sorted(_RESOURCE_FIELD_PATHS)))
    divisor = fs.get("divisor")
    if divisor is not None:
        try:
            d = format_quantity(divisor)
        except ValueError as exc:
            v.add(invalid_value(_child(path, "divisor"), divisor, str(exc)))
            return
        if d == "0":
            return
        if res in ("limits.cpu", "requests.cpu") and d not in ("1m", "1"):
            v.add(
                invalid_value(
                    _child(path, "divisor"), res, "only divisor's values 1m and 1 are supported with the cpu resource"
                )
            )


def _validate_volume_source(v: _V, vol: Obj, path: str, vol_name: str) -> None:
    num = 0
    for key, err_key in _VOLUME_SOURCES:
        src = vol.get(key)
        if src is None:
            continue
        if num > 0:
            v.add(forbidden(_child(path, err_key), "may not specify more than 1 volume type"))
            continue
        num += 1
        if not isinstance(src, dict):
            v.add(_type_error(_child(path, key), src, dict))
            continue
        sp = _child(path, key)
        if key == "emptyDir":
            limit = src.get("sizeLimit")
            if limit is not None:
                try:
                    if parse_quantity(_quantity_text(limit)) < 0:
                        v.add(forbidden(_child(sp, "sizeLimit"), "SizeLimit field must be a valid resource quantity"))
                except ValueError as exc:
                    v.add(invalid_value(_child(sp, "sizeLimit"), limit, str(exc)))
            v.get_str(src, "medium", sp)
        elif key == "hostPath":
            hp = v.get_str(src, "path", sp)
            if not hp:
                v.add(required(_child(sp, "path")))
                continue
            v.extend(_no_backsteps(hp, _child(sp, "path")))
            t = v.get_opt_str(src, "type", sp)
            if t is not None and t not in _HOST_PATH_TYPES:
                v.add(not_supported(_child(sp, "type"), t, _HOST_PATH_TYPES))
        elif key == "secret":
            if not v.get_str(src, "secretName", sp):
                v.add(required(_child(sp, "secretName")))
            _file_mode(v, src, "defaultMode", sp)
            _key_to_paths(v, src, sp)
        elif key == "configMap":
            if not v.get_str(src, "name", sp):
                v.add(required(_child(sp, "name")))
            _file_mode(v, src, "defaultMode", sp)
            _key_to_paths(v, src, sp)
        elif key == "persistentVolumeClaim":
            if not v.get_str(src, "claimName", sp):
                v.add(required(_child(sp, "claimName")))
        elif key == "nfs":
            server = v.get_str(src, "server", sp)
            npath = v.get_str(src, "path", sp)
            if not server:
                v.add(required(_child(sp, "server")))
            if not npath:
                v.add(required(_child(sp, "path")))
            if not npath.startswith("/"):
                v.add(invalid_value(_child(sp, "path"), npath, "must be an absolute path"))
        elif key == "downwardAPI":
            _file_mode(v, src, "defaultMode", sp)
            for _, f, _fpath in v.items(src, "items", sp):
                _validate_downward_file(v, f, sp)
        elif key == "projected":
            _file_mode(v, src, "defaultMode", sp)
            _validate_projected(v, src, sp)
        elif key == "csi":
            if not v.get_str(src, "driver", sp):
                v.add(required(_child(sp, "driver")))
        elif key == "image":
            if not v.get_str(src, "reference", sp):
                v.add(required(_child(sp, "reference")))
    if num == 0:
        v.add(required(path, "must specify a volume type"))


def _validate_downward_file(v: _V, f: Obj, path: str) -> None:
    fpath = v.get_str(f, "path", path)
    if not fpath:
        v.add(required(_child(path, "path")))
    v.extend(_local_non_reserved_path(fpath, _child(path, "path")))
    field_ref = v.get_map(f, "fieldRef", path)
    res_ref = v.get_map(f, "resourceFieldRef", path)
    if field_ref is not None:
        _validate_object_field_selector(v, field_ref, _VOLUME_DOWNWARD_PATHS, _child(path, "fieldRef"))
        if res_ref is not None:
            v.add(invalid_value(path, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
    elif res_ref is not None:
        _validate_resource_field_selector(v, res_ref, _child(path, "resourceFieldRef"), True)
    else:
        v.add(required(path, "one of fieldRef and resourceFieldRef is required"))
    _file_mode(v, f, "mode", path)


def _validate_projected(v: _V, src: Obj, path: str) -> None:
    seen: set[str] = set()
    for _, s, spath in v.items(src, "sources", path):
        num = 0
        for key in ("secret", "configMap", "downwardAPI", "serviceAccountToken", "clusterTrustBundle"):
            sub = v.get_map(s, key, spath)
            if sub is None:
                continue
            num += 1
            kp = _child(spath, key)
            if key in ("secret", "configMap"):
                name = v.get_str(sub, "name", kp)
                if not name:
                    v.add(required(_child(kp, "name")))
                _key_to_paths(v, sub, kp, seen, name, path)
            elif key == "downwardAPI":
                for _, f, _fp in v.items(sub, "items", kp):
                    _validate_downward_file(v, f, kp)
            elif key == "serviceAccountToken":
                exp = v.get_int(sub, "expirationSeconds", kp, 64)
                if exp is not None:
                    if exp < 10 * 60:
                        v.add(
                            invalid_value(
                                _child(kp, "expirationSeconds"), exp, "may not specify a duration less than 10 minutes"
                            )
                        )
                    if exp > 2**32:
                        v.add(
                            invalid_value(
                                _child(kp, "expirationSeconds"),
                                exp,
                                "may not specify a duration larger than 2^32 seconds",
                            )
                        )
                tpath = v.get_str(sub, "path", kp)
                if not tpath:
                    v.add(required(_child(kp, "path")))
        if num > 1:
            v.add(forbidden(spath, "may not specify more than 1 volume type per source"))


def _validate_volumes(v: _V, spec: Obj, path: str) -> dict[str, Obj]:
    names: set[str] = set()
    vols: dict[str, Obj] = {}
    for _, vol, vpath in v.items(spec, "volumes", path):
        sub = _V()
        name = sub.get_str(vol, "name", vpath)
        _validate_volume_source(sub, vol, vpath, name)
        if not name:
            sub.add(required(_child(vpath, "name")))
        else:
            for msg in is_dns1123_label(name):
                sub.add(invalid_value(_child(vpath, "name"), name, msg))
        if name in names:
            sub.add(duplicate(_child(vpath, "name"), name))
        if not sub.errs:
            names.add(name)
            vols[name] = vol
        else:
            v.extend(sub.errs)
    return vols


# ---------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------

_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_STANDARD_RESOURCES = {
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage",
    "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods", "services", "replicationcontrollers",
    "resourcequotas", "secrets", "persistentvolumeclaims", "configmaps", "storage", "requests.storage",
    "services.nodeports", "services.loadbalancers",
}  # fmt: skip


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def _is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_overcommit_allowed(name: str) -> bool:
    return _is_native_resource(name) and not _is_hugepages(name)


def _is_extended_resource(name: str) -> bool:
    if _is_native_resource(name) or name.startswith("requests."):
        return False
    return not is_qualified_name("requests." + name)


def _validate_container_resource_name(v: _V, name: str, path: str) -> None:
    errs = [invalid_value(path, name, msg) for msg in is_qualified_name(name)]
    if errs:
        v.extend(errs)
    elif "/" not in name and name not in _STANDARD_RESOURCES and not _is_hugepages(name):
        v.add(invalid_value(path, name, "must be a standard resource type or fully qualified"))
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not _is_hugepages(name):
            v.add(invalid_value(path, name, "must be a standard resource for containers"))
    elif not _is_native_resource(name) and not _is_extended_resource(name):
        v.add(invalid_value(path, name, "doesn't follow extended resource name standard"))


def _go_quantity(text: str, value: Decimal, fmt: str) -> GoRepr:
    canon = _canonical_quantity(value, fmt)
    cached = text if text == canon else ""
    return GoRepr(
        "resource.Quantity{i:resource.int64Amount{value:0, scale:0}, d:resource.infDecAmount{Dec:(*inf.Dec)(0xc000000000)}, "
        f's:{go_quote(cached)}, Format:"{fmt}"}}'
    )


def _resource_list(v: _V, res: Obj, key: str, path: str) -> dict[str, tuple[str, Decimal, str]]:
    """Parsed quantities by resource name, reporting names and unparsable or negative values."""
    out: dict[str, tuple[str, Decimal, str]] = {}
    m = v.get_map(res, key, path)
    if m is None:
        return out
    base = _child(path, key)
    for name in sorted(m):
        raw = m[name]
        fpath = f"{base}[{name}]"
        _validate_container_resource_name(v, name, fpath)
        try:
            text = _quantity_text(raw)
            q, fmt = _parse_quantity_full(text)
        except ValueError as exc:
            v.add(invalid_value(fpath, raw, str(exc)))
            continue
        if q < 0:
            v.add(invalid_value(fpath, _canonical_quantity(q, fmt), IS_NEGATIVE_MSG))
        if _is_extended_resource(name) and not _is_whole(q):
            v.add(invalid_value(fpath, _go_quantity(text, q, fmt), "must be an integer"))
        out[name] = (text, q, fmt)
    return out


def _is_whole(q: Decimal) -> bool:
    """``MilliValue() % 1000 == 0``: the value, rounded up to millis, is a whole number."""
    milli = _QCTX.multiply(q, Decimal(1000)).to_integral_value(rounding=ROUND_CEILING)
    return bool(_QCTX.remainder(milli, Decimal(1000)) == 0)


def _validate_resources(v: _V, ctr: Obj, path: str) -> None:
    res = v.get_map(ctr, "resources", path)
    if res is None:
        return
    rpath = _child(path, "resources")
    limits = _resource_list(v, res, "limits", rpath)
    requests = _resource_list(v, res, "requests", rpath)
    lim_path, req_path = _child(rpath, "limits"), _child(rpath, "requests")
    for name, (_, q, fmt) in requests.items():
        if name in limits:
            lq, lfmt = limits[name][1], limits[name][2]
            if q != lq and not _is_overcommit_allowed(name):
                v.add(
                    invalid_value(
                        req_path,
                        _canonical_quantity(q, fmt),
                        f"must be equal to {name} limit of {_canonical_quantity(lq, lfmt)}",
                    )
                )
            elif q > lq:
                v.add(
                    invalid_value(
                        req_path,
                        _canonical_quantity(q, fmt),
                        f"must be less than or equal to {name} limit of {_canonical_quantity(lq, lfmt)}",
                    )
                )
        elif not _is_overcommit_allowed(name):
            v.add(required(lim_path, "Limit must be set for non overcommitable resources"))
    has_cpu_mem = any(n in ("cpu", "memory") for n in list(limits) + list(requests))
    has_huge = any(_is_hugepages(n) for n in list(limits) + list(requests))
    if has_huge and not has_cpu_mem:
        v.add(forbidden(rpath, "HugePages require cpu or memory"))
    claims = v.items(res, "claims", rpath)
    for _, claim, cpath in claims:
        if not v.get_str(claim, "name", cpath):
            v.add(required(cpath))


def _validate_ports(v: _V, ctr: Obj, path: str) -> None:
    names: set[str] = set()
    for _, port, ppath in v.items(ctr, "ports", path):
        name = v.get_str(port, "name", ppath)
        if name:
            msgs = is_valid_port_name(name)
            if msgs:
                for m in msgs:
                    v.add(invalid_value(_child(ppath, "name"), name, m))
            elif name in names:
                v.add(duplicate(_child(ppath, "name"), name))
            else:
                names.add(name)
        raw_cp = port.get("containerPort")
        cp = v.get_int(port, "containerPort", ppath)
        if cp == 0 or raw_cp is None:
            v.add(required(_child(ppath, "containerPort")))
        elif cp is not None:
            for m in is_valid_port_num(cp):
                v.add(invalid_value(_child(ppath, "containerPort"), cp, m))
        hp = v.get_int(port, "hostPort", ppath)
        if hp:
            for m in is_valid_port_num(hp):
                v.add(invalid_value(_child(ppath, "hostPort"), hp, m))
        proto = v.get_str(port, "protocol", ppath)
        if not proto:
            v.add(required(_child(ppath, "protocol")))
        elif proto not in _PROTOCOLS:
            v.add(not_supported(_child(ppath, "protocol"), proto, _PROTOCOLS))
        v.get_str(port, "hostIP", ppath)


def _validate_env(v: _V, ctr: Obj, path: str) -> None:
    for _, ev, epath in v.items(ctr, "env", path):
        name = v.get_str(ev, "name", epath)
        if not name:
            v.add(required(_child(epath, "name")))
        else:
            for msg in is_relaxed_env_var_name(name):
                v.add(invalid_value(_child(epath, "name"), name, msg))
        value = v.get_str(ev, "value", epath)
        vf = v.get_map(ev, "valueFrom", epath)
        if vf is None:
            continue
        vpath = _child(epath, "valueFrom")
        num = 0
        fr = v.get_map(vf, "fieldRef", vpath)
        if fr is not None:
            num += 1
            _validate_object_field_selector(v, fr, _ENV_DOWNWARD_PATHS, _child(vpath, "fieldRef"))
        rr = v.get_map(vf, "resourceFieldRef", vpath)
        if rr is not None:
            num += 1
            _validate_resource_field_selector(v, rr, _child(vpath, "resourceFieldRef"), False)
        for key in ("configMapKeyRef", "secretKeyRef"):
            ref = v.get_map(vf, key, vpath)
            if ref is None:
                continue
            num += 1
            kpath = _child(vpath, key)
            rname = v.get_str(ref, "name", kpath)
            for msg in name_is_dns_subdomain(rname, False):
                v.add(invalid_value(_child(kpath, "name"), rname, msg))
            rkey = v.get_str(ref, "key", kpath)
            if not rkey:
                v.add(required(_child(kpath, "key")))
            else:
                for msg in is_config_map_key(rkey):
                    v.add(invalid_value(_child(kpath, "key"), rkey, msg))
            v.get_bool(ref, "optional", kpath)
        if num == 0:
            v.add(
                invalid_value(
                    vpath,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                )
            )
        elif value:
            v.add(invalid_value(vpath, "", "may not be specified when `value` is not empty"))
        elif num > 1:
            v.add(invalid_value(vpath, "", "may not have more than one field specified at a time"))


def _validate_env_from(v: _V, ctr: Obj, path: str) -> None:
    fpath = _child(path, "envFrom")
    for _, ef, epath in v.items(ctr, "envFrom", path):
        prefix = v.get_str(ef, "prefix", epath)
        if prefix:
            for msg in is_relaxed_env_var_name(prefix):
                v.add(invalid_value(_child(epath, "prefix"), prefix, msg))
        num = 0
        for key in ("configMapRef", "secretRef"):
            ref = v.get_map(ef, key, epath)
            if ref is None:
                continue
            num += 1
            kpath = _child(epath, key)
            name = v.get_str(ref, "name", kpath)
            if not name:
                v.add(required(_child(kpath, "name")))
            else:
                for msg in name_is_dns_subdomain(name, True):
                    v.add(invalid_value(_child(kpath, "name"), name, msg))
        if num == 0:
            v.add(invalid_value(fpath, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif num > 1:
            v.add(invalid_value(fpath, "", "may not have more than one field specified at a time"))


def _validate_volume_mounts(v: _V, ctr: Obj, vols: dict[str, Obj], path: str) -> None:
    mpath = _child(path, "volumeMounts")
    seen: set[str] = set()
    sc = _dict_of(ctr, "securityContext")
    privileged = bool(sc.get("privileged")) if isinstance(sc, dict) else False
    for _, mnt, ipath in v.items(ctr, "volumeMounts", path):
        name = v.get_str(mnt, "name", ipath)
        mount_path = v.get_str(mnt, "mountPath", ipath)
        if not name:
            v.add(required(_child(ipath, "name")))
        if name not in vols:
            v.add(FieldError("NotFound", _child(ipath, "name"), name))
        if not mount_path:
            v.add(required(_child(ipath, "mountPath")))
        if mount_path in seen:
            v.add(invalid_value(_child(ipath, "mountPath"), mount_path, "must be unique"))
        seen.add(mount_path)
        sub_path = v.get_str(mnt, "subPath", ipath)
        sub_expr = v.get_str(mnt, "subPathExpr", ipath)
        if name in vols and vols[name].get("image") is not None:
            if sub_path:
                v.add(invalid_value(_child(ipath, "subPath"), sub_path, "not allowed in image volume sources"))
            if sub_expr:
                v.add(invalid_value(_child(ipath, "subPathExpr"), sub_expr, "not allowed in image volume sources"))
        if sub_path:
            v.extend(_local_descending_path(sub_path, _child(mpath, "subPath")))
        if sub_expr:
            if sub_path:
                v.add(
                    invalid_value(
                        _child(ipath, "subPathExpr"), sub_expr, "subPathExpr and subPath are mutually exclusive"
                    )
                )
            v.extend(_local_descending_path(sub_expr, _child(mpath, "subPathExpr")))
        prop = v.get_opt_str(mnt, "mountPropagation", ipath)
        if prop is not None:
            ppath = _child(mpath, "mountPropagation")
            if prop not in ("Bidirectional", "HostToContainer", "None"):
                v.add(not_supported(ppath, prop, ["Bidirectional", "HostToContainer", "None"]))
            elif prop == "Bidirectional" and not privileged:
                v.add(forbidden(ppath, "Bidirectional mount propagation is available only to privileged containers"))
        v.get_bool(mnt, "readOnly", ipath)


def _validate_port_num_or_name(v: _V, d: Obj, key: str, path: str) -> None:
    port = v.int_or_string(d, key, path)
    fpath = _child(path, key)
    if isinstance(port, str):
        for msg in is_valid_port_name(port):
            v.add(invalid_value(fpath, port, msg))
    elif isinstance(port, int):
        for msg in is_valid_port_num(port):
            v.add(invalid_value(fpath, port, msg))
    elif key not in d or d.get(key) is None:
        for msg in is_valid_port_num(0):
            v.add(invalid_value(fpath, 0, msg))


def _validate_handler(v: _V, h: Obj, path: str, grace: int | None, kinds: tuple[str, ...]) -> None:
    num = 0
    for kind in kinds:
        sub = h.get(kind)
        if sub is None:
            continue
        kpath = _child(path, kind)
        if num > 0:
            v.add(forbidden(kpath, "may not specify more than 1 handler type"))
            continue
        num += 1
        if not isinstance(sub, dict):
            v.add(_type_error(kpath, sub, dict))
            continue
        if kind == "exec":
            if not v.str_list(sub, "command", kpath):
                v.add(required(_child(kpath, "command")))
        elif kind == "httpGet":
            if not v.get_str(sub, "path", kpath):
                v.add(required(_child(kpath, "path")))
            _validate_port_num_or_name(v, sub, "port", kpath)
            scheme = v.get_str(sub, "scheme", kpath)
            if scheme not in ("HTTP", "HTTPS"):
                v.add(not_supported(_child(kpath, "scheme"), scheme, ["HTTP", "HTTPS"]))
            for _, hdr, hpath in v.items(sub, "httpHeaders", kpath):
                hname = v.get_str(hdr, "name", hpath)
                for msg in is_http_header_name(hname):
                    v.add(invalid_value(_child(kpath, "httpHeaders"), hname, msg))
        elif kind == "tcpSocket":
            _validate_port_num_or_name(v, sub, "port", kpath)
        elif kind == "grpc":
            port = v.get_int(sub, "port", kpath)
            for msg in is_valid_port_num(port or 0):
                v.add(invalid_value(_child(kpath, "port"), port or 0, msg))
        elif kind == "sleep":
            secs = v.get_int(sub, "seconds", kpath, 64)
            if grace is not None and secs is not None and (secs <= 0 or secs > grace):
                v.add(
                    invalid_value(
                        kpath,
                        secs,
                        f"must be greater than 0 and less than terminationGracePeriodSeconds ({grace}). "
                        "Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.",
                    )
                )
    if num == 0:
        v.add(required(path, "must specify a handler type"))


def _validate_probe(v: _V, ctr: Obj, key: str, path: str, grace: int | None) -> None:
    probe = v.get_map(ctr, key, path)
    if probe is None:
        return
    ppath = _child(path, key)
    _validate_handler(v, probe, ppath, grace, ("exec", "httpGet", "tcpSocket", "grpc"))
    for f in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        v.nonneg(probe, f, ppath)
    tgps = v.get_int(probe, "terminationGracePeriodSeconds", ppath, 64)
    if tgps is not None and tgps <= 0:
        v.add(invalid_value(_child(ppath, "terminationGracePeriodSeconds"), tgps, "must be greater than 0"))
    if key in ("livenessProbe", "startupProbe"):
        st = probe.get("successThreshold")
        st = st if isinstance(st, int) and not isinstance(st, bool) else 0
        if st != 1:
            v.add(invalid_value(_child(ppath, "successThreshold"), st, "must be 1"))
    elif tgps is not None:
        v.add(
            invalid_value(_child(ppath, "terminationGracePeriodSeconds"), tgps, "must not be set for readinessProbes")
        )


def _validate_lifecycle(v: _V, ctr: Obj, path: str, grace: int | None) -> None:
    lc = v.get_map(ctr, "lifecycle", path)
    if lc is None:
        return
    lpath = _child(path, "lifecycle")
    for hook in ("postStart", "preStop"):
        h = v.get_map(lc, hook, lpath)
        if h is not None:
            _validate_handler(v, h, _child(lpath, hook), grace, ("exec", "httpGet", "tcpSocket", "sleep"))


def _validate_container_security_context(v: _V, ctr: Obj, path: str) -> None:
    sc = v.get_map(ctr, "securityContext", path)
    if sc is None:
        return
    spath = _child(path, "securityContext")
    for key in ("runAsUser", "runAsGroup"):
        n = v.get_int(sc, key, spath, 64)
        if n is not None and not 0 <= n <= 0xFFFFFFFF:
            v.add(invalid_value(_child(spath, key), n, inclusive_range_error(0, 0xFFFFFFFF)))
    for key in ("privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsNonRoot"):
        v.get_bool(sc, key, spath)
    pm = v.get_opt_str(sc, "procMount", spath)
    if pm is not None and pm not in ("Default", "Unmasked"):
        v.add(not_supported(_child(spath, "procMount"), pm, ["Default", "Unmasked"]))


def _validate_container_common(v: _V, ctr: Obj, vols: dict[str, Obj], path: str) -> None:
    name = v.get_str(ctr, "name", path)
    if not name:
        v.add(required(_child(path, "name")))
    else:
        for msg in is_dns1123_label(name):
            v.add(invalid_value(_child(path, "name"), name, msg))
    if not v.get_str(ctr, "image", path):
        v.add(required(_child(path, "image")))
    tmp = v.get_str(ctr, "terminationMessagePolicy", path)
    if not tmp:
        v.add(required(_child(path, "terminationMessagePolicy")))
    elif tmp not in ("File", "FallbackToLogsOnError"):
        v.add(not_supported(_child(path, "terminationMessagePolicy"), tmp, ["File", "FallbackToLogsOnError"]))
    v.get_str(ctr, "terminationMessagePath", path)
    v.get_str(ctr, "workingDir", path)
    v.str_list(ctr, "command", path)
    v.str_list(ctr, "args", path)
    _validate_ports(v, ctr, path)
    _validate_env(v, ctr, path)
    _validate_env_from(v, ctr, path)
    _validate_volume_mounts(v, ctr, vols, path)
    pp = v.get_str(ctr, "imagePullPolicy", path)
    if not pp:
        v.add(required(_child(path, "imagePullPolicy")))
    elif pp not in _PULL_POLICIES:
        v.add(not_supported(_child(path, "imagePullPolicy"), pp, _PULL_POLICIES))
    _validate_resources(v, ctr, path)
    _validate_container_security_context(v, ctr, path)
    for key in ("stdin", "stdinOnce", "tty"):
        v.get_bool(ctr, key, path)


def _host_port_conflicts(v: _V, containers: list[tuple[int, Obj, str]], path: str) -> None:
    seen: set[str] = set()
    for ci, ctr, _ in containers:
        ports = ctr.get("ports")
        if not isinstance(ports, list):
            continue
        for pi, port in enumerate(ports):
            if not isinstance(port, dict):
                continue
            hp = port.get("hostPort")
            if not hp:
                continue
            key = f"{port.get('protocol') or ''}/{port.get('hostIP') or ''}/{hp}"
            if key in seen:
                v.add(duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key))
            else:
                seen.add(key)


def _validate_containers(v: _V, spec: Obj, vols: dict[str, Obj], path: str, grace: int | None) -> list[str]:
    cpath = _child(path, "containers")
    raw = spec.get("containers")
    ctrs = v.items(spec, "containers", path)
    if not ctrs and not (isinstance(raw, list) and raw):
        v.add(required(cpath))
        return []
    names: set[str] = set()
    for _, ctr, ipath in ctrs:
        _validate_container_common(v, ctr, vols, ipath)
        name = _str_of(ctr, "name")
        if name in names:
            v.add(duplicate(_child(ipath, "name"), name))
        else:
            names.add(name)
        _validate_lifecycle(v, ctr, ipath, grace)
        _validate_probe(v, ctr, "livenessProbe", ipath, grace)
        _validate_probe(v, ctr, "readinessProbe", ipath, grace)
        _validate_probe(v, ctr, "startupProbe", ipath, grace)
        if ctr.get("restartPolicy") is not None:
            v.add(forbidden(_child(ipath, "restartPolicy"), "may not be set for non-init containers"))
    _host_port_conflicts(v, ctrs, cpath)
    return sorted(names)


def _validate_init_containers(v: _V, spec: Obj, vols: dict[str, Obj], path: str, grace: int | None) -> None:
    ipath_root = _child(path, "initContainers")
    names: set[str] = set()
    for c in _list_of(spec, "containers"):
        if isinstance(c, dict) and isinstance(c.get("name"), str):
            names.add(c["name"])
    for _, ctr, ipath in v.items(spec, "initContainers", path):
        _validate_container_common(v, ctr, vols, ipath)
        rp = v.get_opt_str(ctr, "restartPolicy", ipath)
        restart_always = False
        if rp is not None:
            if rp != "Always":
                v.add(not_supported(_child(ipath, "restartPolicy"), rp, ["Always"]))
            restart_always = rp == "Always"
        name = _str_of(ctr, "name")
        if name in names:
            v.add(duplicate(_child(ipath, "name"), name))
        elif name:
            names.add(name)
        _host_port_conflicts(v, [(0, ctr, ipath)], ipath_root)
        if restart_always:
            _validate_lifecycle(v, ctr, ipath, grace)
            _validate_probe(v, ctr, "livenessProbe", ipath, grace)
            _validate_probe(v, ctr, "readinessProbe", ipath, grace)
            _validate_probe(v, ctr, "startupProbe", ipath, grace)
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if ctr.get(key) is not None:
                    v.add(
                        forbidden(_child(ipath, key), "may not be set for init containers without restartPolicy=Always")
                    )


# ---------------------------------------------------------------------------
# PodSpec
# ---------------------------------------------------------------------------

_RESTART_POLICIES = ["Always", "OnFailure", "Never"]
_DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]


def _validate_tolerations(v: _V, spec: Obj, path: str) -> None:
    for _, t, tpath in v.items(spec, "tolerations", path):
        key = v.get_str(t, "key", tpath)
        op = v.get_str(t, "operator", tpath)
        value = v.get_str(t, "value", tpath)
        effect = v.get_str(t, "effect", tpath)
        secs = v.get_int(t, "tolerationSeconds", tpath, 64)
        if key:
            for msg in is_qualified_name(key):
                v.add(invalid_value(_child(tpath, "key"), key, msg))
        if not key and op != "Exists":
            v.add(
                invalid_value(
                    _child(tpath, "operator"),
                    op,
                    'operator must be Exists when `key` is empty, which means "match all values and all keys"',
                )
            )
        if secs is not None and effect != "NoExecute":
            v.add(
                invalid_value(
                    _child(tpath, "effect"), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"
                )
            )
        if op in ("Equal", ""):
            errs = is_valid_label_value(value)
            if errs:
                v.add(invalid_value(_child(tpath, "operator"), value, ";".join(errs)))
        elif op == "Exists":
            if value:
                v.add(
                    invalid_value(_child(tpath, "operator"), value, "value must be empty when `operator` is 'Exists'")
                )
        else:
            v.add(not_supported(_child(tpath, "operator"), op, ["Equal", "Exists"]))
        if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            v.add(not_supported(_child(tpath, "effect"), effect, ["NoSchedule", "PreferNoSchedule", "NoExecute"]))


def _validate_node_selector_requirement(v: _V, req: Obj, path: str, check_values: bool = True) -> None:
    op = v.get_str(req, "operator", path)
    values = v.str_list(req, "values", path)
    key = v.get_str(req, "key", path)
    if op in ("In", "NotIn"):
        if not values:
            v.add(required(_child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            v.add(
                forbidden(_child(path, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
            )
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            v.add(required(_child(path, "values"), "must be specified single value when `operator` is 'Lt' or 'Gt'"))
    else:
        v.add(invalid_value(_child(path, "operator"), op, "not a valid selector operator"))
    for msg in is_qualified_name(key):
        v.add(invalid_value(_child(path, "key"), key, msg))
    if check_values:
        for i, val in enumerate(values):
            for msg in is_valid_label_value(val):
                v.add(invalid_value(f"{path}.values[{i}]", val, msg))


def _validate_node_selector_term(v: _V, term: Obj, path: str, check_values: bool) -> None:
    for _, req, rpath in v.items(term, "matchExpressions", path):
        _validate_node_selector_requirement(v, req, rpath, check_values)
    for _, req, rpath in v.items(term, "matchFields", path):
        op = v.get_str(req, "operator", rpath)
        values = v.str_list(req, "values", rpath)
        key = v.get_str(req, "key", rpath)
        if op in ("In", "NotIn"):
            if len(values) != 1:
                v.add(
                    required(
                        _child(rpath, "values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    )
                )
        else:
            v.add(invalid_value(_child(rpath, "operator"), op, "not a valid selector operator"))
        if key != "metadata.name":
            v.add(invalid_value(_child(rpath, "key"), key, "not a valid field selector key"))
        else:
            for i, val in enumerate(values):
                for msg in name_is_dns_subdomain(val, False):
                    v.add(invalid_value(f"{rpath}.values[{i}]", val, msg))


def _validate_pod_affinity_terms(v: _V, d: Obj, key: str, path: str, weighted: bool) -> None:
    for _, term, tpath in v.items(d, key, path):
        if weighted:
            w = v.get_int(term, "weight", tpath)
            if w is None or w <= 0 or w > 100:
                v.add(invalid_value(_child(tpath, "weight"), w or 0, "must be in the range 1-100"))
            inner = v.get_map(term, "podAffinityTerm", tpath) or {}
            tpath = _child(tpath, "podAffinityTerm")
            term = inner
        sel = v.get_map(term, "labelSelector", tpath)
        if sel is not None:
            _validate_label_selector(v, sel, _child(tpath, "labelSelector"))
        nsel = v.get_map(term, "namespaceSelector", tpath)
        if nsel is not None:
            _validate_label_selector(v, nsel, _child(tpath, "namespaceSelector"))
        for ns in v.str_list(term, "namespaces", tpath):
            for msg in name_is_dns_label(ns, False):
                v.add(invalid_value(_child(tpath, "namespace"), ns, msg))
        topo = v.get_str(term, "topologyKey", tpath)
        if not topo:
            v.add(required(_child(tpath, "topologyKey"), "can not be empty"))
        for msg in is_qualified_name(topo):
            v.add(invalid_value(_child(tpath, "topologyKey"), topo, msg))


def _validate_affinity(v: _V, spec: Obj, path: str) -> None:
    aff = v.get_map(spec, "affinity", path)
    if aff is None:
        return
    apath = _child(path, "affinity")
    na = v.get_map(aff, "nodeAffinity", apath)
    if na is not None:
        napath = _child(apath, "nodeAffinity")
        req = v.get_map(na, "requiredDuringSchedulingIgnoredDuringExecution", napath)
        if req is not None:
            rpath = _child(napath, "requiredDuringSchedulingIgnoredDuringExecution")
            terms = v.items(req, "nodeSelectorTerms", rpath)
            if not terms:
                v.add(required(_child(rpath, "nodeSelectorTerms"), "must have at least one node selector term"))
            for _, term, tpath in terms:
                _validate_node_selector_term(v, term, tpath, True)
        for _, term, tpath in v.items(na, "preferredDuringSchedulingIgnoredDuringExecution", napath):
            w = v.get_int(term, "weight", tpath)
            if w is None or w <= 0 or w > 100:
                v.add(invalid_value(_child(tpath, "weight"), w or 0, "must be in the range 1-100"))
            pref = v.get_map(term, "preference", tpath) or {}
            _validate_node_selector_term(v, pref, _child(tpath, "preference"), False)
    for key in ("podAffinity", "podAntiAffinity"):
        pa = v.get_map(aff, key, apath)
        if pa is None:
            continue
        ppath = _child(apath, key)
        _validate_pod_affinity_terms(v, pa, "requiredDuringSchedulingIgnoredDuringExecution", ppath, False)
        _validate_pod_affinity_terms(v, pa, "preferredDuringSchedulingIgnoredDuringExecution", ppath, True)


def _validate_dns_config(v: _V, spec: Obj, dns_policy: str, path: str) -> None:
    cfg = v.get_map(spec, "dnsConfig", path)
    cpath = _child(path, "dnsConfig")
    if dns_policy == "None":
        if cfg is None:
            v.add(required(cpath, "must provide `dnsConfig` when `dnsPolicy` is None"))
            return
        if not cfg.get("nameservers"):
            v.add(
                required(
                    _child(cpath, "nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"
                )
            )
            return
    if cfg is None:
        return
    ns = v.str_list(cfg, "nameservers", cpath)
    if len(ns) > 3:
        v.add(invalid_value(_child(cpath, "nameservers"), go_string_slice(ns), "must not have more than 3 nameservers"))
    for i, n in enumerate(ns):
        v.extend(_validate_ip(f"{cpath}.nameservers[{i}]", n))
    searches = v.str_list(cfg, "searches", cpath)
    if len(searches) > 32:
        v.add(
            invalid_value(
                _child(cpath, "searches"), go_string_slice(searches), "must not have more than 32 search paths"
            )
        )
    if _blen(" ".join(searches)) > 2048:
        v.add(
            invalid_value(
                _child(cpath, "searches"),
                go_string_slice(searches),
                "must not have more than 2048 characters (including spaces) in the search list",
            )
        )
    for i, s in enumerate(searches):
        s = s[:-1] if s.endswith(".") else s
        for msg in is_dns1123_subdomain(s):
            v.add(invalid_value(f"{cpath}.searches[{i}]", s, msg))
    for _, opt, opath in v.items(cfg, "options", cpath):
        if not v.get_str(opt, "name", opath):
            v.add(required(opath, "must not be empty"))


def _validate_pod_security_context(v: _V, spec: Obj, path: str) -> None:
    sc = v.get_map(spec, "securityContext", path)
    if sc is None:
        return
    spath = _child(path, "securityContext")
    for key in ("fsGroup", "runAsUser", "runAsGroup"):
        n = v.get_int(sc, key, spath, 64)
        if n is not None and not 0 <= n <= 0xFFFFFFFF:
            v.add(invalid_value(_child(spath, key), n, inclusive_range_error(0, 0xFFFFFFFF)))
    groups = v.get_list(sc, "supplementalGroups", spath)
    for i, g in enumerate(groups):
        if isinstance(g, bool) or not isinstance(g, int):
            v.add(_type_error(f"{spath}.supplementalGroups[{i}]", g, int))
        elif not 0 <= g <= 0xFFFFFFFF:
            v.add(invalid_value(f"{spath}.supplementalGroups[{i}]", g, inclusive_range_error(0, 0xFFFFFFFF)))
    v.get_bool(sc, "runAsNonRoot", spath)
    policy = v.get_opt_str(sc, "fsGroupChangePolicy", spath)
    if policy is not None and policy not in ("Always", "OnRootMismatch"):
        v.add(not_supported(_child(spath, "fsGroupChangePolicy"), policy, ["Always", "OnRootMismatch"]))
    for _, s, sspath in v.items(sc, "sysctls", spath):
        if not v.get_str(s, "name", sspath):
            v.add(required(_child(sspath, "name")))


def _validate_topology_spread(v: _V, spec: Obj, path: str) -> None:
    for _, c, cpath in v.items(spec, "topologySpreadConstraints", path):
        skew = v.get_int(c, "maxSkew", cpath)
        if skew is None or skew <= 0:
            v.add(invalid_value(_child(cpath, "maxSkew"), skew or 0, NOT_POSITIVE_MSG))
        if not v.get_str(c, "topologyKey", cpath):
            v.add(required(_child(cpath, "topologyKey"), "can not be empty"))
        wu = v.get_str(c, "whenUnsatisfiable", cpath)
        if wu not in ("DoNotSchedule", "ScheduleAnyway"):
            v.add(not_supported(_child(cpath, "whenUnsatisfiable"), wu, ["DoNotSchedule", "ScheduleAnyway"]))
        sel = v.get_map(c, "labelSelector", cpath)
        if sel is not None:
            _validate_label_selector(v, sel, _child(cpath, "labelSelector"))


_POD_SPEC_MEMO: dict[bytes, list[FieldError]] = {}
_POD_SPEC_MEMO_SIZE = 256


def validate_pod_spec(v: _V, spec: Obj, path: str, is_pod: bool) -> None:
    """Upstream's ValidatePodSpec; ``is_pod`` is ``opts.ResourceIsPod``.

    The errors depend on the spec alone, and a ReplicaSet's pods share one: results are memoized by the spec's
    serialized form (a cache of recent specs, so 10,000 pods from one template are validated once).
    """
    try:
        key: bytes | None = orjson.dumps([path, is_pod, spec])
    except (orjson.JSONEncodeError, TypeError):
        key = None
    if key is not None:
        hit = _POD_SPEC_MEMO.get(key)
        if hit is not None:
            v.extend(hit)
            return
    sub = _V()
    _validate_pod_spec(sub, spec, path, is_pod)
    v.extend(sub.errs)
    if key is not None:
        if len(_POD_SPEC_MEMO) >= _POD_SPEC_MEMO_SIZE:
            _POD_SPEC_MEMO.clear()
        _POD_SPEC_MEMO[key] = list(sub.errs)


def _validate_pod_spec(v: _V, spec: Obj, path: str, is_pod: bool) -> None:
    grace = v.get_int(spec, "terminationGracePeriodSeconds", path, 64)
    if spec.get("terminationGracePeriodSeconds") is None:
        v.add(required(_child(path, "terminationGracePeriodSeconds")))
    vols = _validate_volumes(v, spec, path)
    _validate_containers(v, spec, vols, path, grace)
    _validate_init_containers(v, spec, vols, path, grace)
    host_network = v.get_bool(spec, "hostNetwork", path)
    v.get_bool(spec, "hostPID", path)
    v.get_bool(spec, "hostIPC", path)
    ctr_list = _list_of(spec, "containers")
    if host_network:
        for ci, ctr in enumerate(ctr_list):
            if not isinstance(ctr, dict):
                continue
            cpath = f"{path}.containers[{ci}]"
            ports = ctr.get("ports")
            for pi, port in enumerate(ports if isinstance(ports, list) else []):
                if not isinstance(port, dict):
                    continue
                hp = port.get("hostPort") or 0
                cp = port.get("containerPort") or 0
                if (is_pod or hp != 0) and hp != cp and isinstance(hp, int):
                    v.add(
                        invalid_value(
                            f"{cpath}.ports[{pi}].hostPort", hp, "must match `containerPort` when `hostNetwork` is true"
                        )
                    )
    rp = v.get_str(spec, "restartPolicy", path)
    if not rp:
        v.add(required(_child(path, "restartPolicy")))
    elif rp not in _RESTART_POLICIES:
        v.add(not_supported(_child(path, "restartPolicy"), rp, _RESTART_POLICIES))
    dp = v.get_str(spec, "dnsPolicy", path)
    if not dp:
        v.add(required(_child(path, "dnsPolicy")))
    elif dp not in _DNS_POLICIES:
        v.add(not_supported(_child(path, "dnsPolicy"), dp, _DNS_POLICIES))
    validate_labels(v, v.str_map(spec, "nodeSelector", path), _child(path, "nodeSelector"))
    _validate_pod_security_context(v, spec, path)
    for _, _ref, _rpath in v.items(spec, "imagePullSecrets", path):
        v.get_str(_ref, "name", _rpath)
    _validate_affinity(v, spec, path)
    _validate_dns_config(v, spec, dp, path)
    for _, gate, gpath in v.items(spec, "readinessGates", path):
        ct = v.get_str(gate, "conditionType", gpath)
        for msg in is_qualified_name(ct):
            v.add(invalid_value(_child(gpath, "conditionType"), ct, msg))
    seen_gates: set[str] = set()
    for _, gate, gpath in v.items(spec, "schedulingGates", path):
        gname = v.get_str(gate, "name", gpath)
        for msg in is_qualified_name(gname):
            v.add(invalid_value(gpath, gname, msg))
        if gname in seen_gates:
            v.add(duplicate(gpath, gname))
        seen_gates.add(gname)
    _validate_topology_spread(v, spec, path)
    for key, fn in (("serviceAccountName", name_is_dns_subdomain), ("nodeName", name_is_dns_subdomain)):
        val = v.get_str(spec, key, path)
        if val:
            for msg in fn(val, False):
                v.add(invalid_value(_child(path, key), val, msg))
    v.get_str(spec, "serviceAccount", path)
    ads = v.get_int(spec, "activeDeadlineSeconds", path, 64)
    if ads is not None and not 1 <= ads <= MAX_INT32:
        v.add(invalid_value(_child(path, "activeDeadlineSeconds"), ads, inclusive_range_error(1, MAX_INT32)))
    for key in ("hostname", "subdomain"):
        val = v.get_str(spec, key, path)
        if val:
            for msg in is_dns1123_label(val):
                v.add(invalid_value(_child(path, key), val, msg))
    _validate_tolerations(v, spec, path)
    for _, alias, apath in v.items(spec, "hostAliases", path):
        v.extend(_validate_ip(_child(apath, "ip"), v.get_str(alias, "ip", apath)))
        for j, hn in enumerate(v.str_list(alias, "hostnames", apath)):
            for msg in is_dns1123_subdomain(hn):
                v.add(invalid_value(f"{apath}.hostnames[{j}]", hn, msg))
    for key in ("priorityClassName",):
        val = v.get_str(spec, key, path)
        if val:
            for msg in name_is_dns_subdomain(val, False):
                v.add(invalid_value(_child(path, key), val, msg))
    rcn = v.get_opt_str(spec, "runtimeClassName", path)
    if rcn is not None:
        for msg in name_is_dns_subdomain(rcn, False):
            v.add(invalid_value(_child(path, "runtimeClassName"), rcn, msg))
    pp = v.get_opt_str(spec, "preemptionPolicy", path)
    if pp is not None:
        if not pp:
            v.add(required(_child(path, "preemptionPolicy")))
        elif pp not in ("PreemptLowerPriority", "Never"):
            v.add(not_supported(_child(path, "preemptionPolicy"), pp, ["PreemptLowerPriority", "Never"]))
    os_ = v.get_map(spec, "os", path)
    if os_ is not None:
        os_name = v.get_str(os_, "name", _child(path, "os"))
        if not os_name:
            v.add(required(_child(path, "os.name")))
        elif os_name not in ("linux", "windows"):
            v.add(not_supported(_child(path, "os.name"), os_name, ["linux", "windows"]))
    v.get_int(spec, "priority", path)
    v.get_bool(spec, "enableServiceLinks", path)
    v.get_bool(spec, "automountServiceAccountToken", path)
    v.get_str(spec, "schedulerName", path)


def validate_pod_template_spec(v: _V, tmpl: Obj, path: str) -> None:
    """Upstream's ValidatePodTemplateSpec (labels at ``<path>.labels``, as upstream reports them)."""
    meta = v.get_map(tmpl, "metadata", path) or {}
    mpath = _child(path, "metadata")
    validate_labels(v, v.str_map(meta, "labels", mpath), _child(path, "labels"))
    validate_annotations(v, v.str_map(meta, "annotations", mpath), _child(path, "annotations"))
    spec = v.get_map(tmpl, "spec", path)
    spec_path = _child(path, "spec")
    validate_pod_spec(v, spec if spec is not None else {}, spec_path, False)
    if spec is not None and spec.get("ephemeralContainers"):
        v.add(forbidden(_child(spec_path, "ephemeralContainers"), "ephemeral containers not allowed in pod template"))


# ---------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------

_UPDATABLE_POD_FIELDS = ",".join(
    [
        "`spec.containers[*].image`",
        "`spec.initContainers[*].image`",
        "`spec.activeDeadlineSeconds`",
        "`spec.tolerations` (only additions to existing tolerations)",
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    ]
)


_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def _valid_deletion_cost(value: str) -> bool:
    """No ``+`` and no leading zeros, then a 32-bit integer."""
    if not value or not (value[0] == "-" or value == "0" or "1" <= value[0] <= "9"):
        return False
    if not re.fullmatch(r"-?[0-9]+", value):
        return False
    return -(2**31) <= int(value) < 2**31


def _validate_pod_metadata_and_spec(v: _V, obj: Obj) -> None:
    meta = _meta(v, obj)
    validate_object_meta(v, meta, True, name_is_dns_subdomain)
    ann = _dict_of(meta, "annotations")
    cost = ann.get(_DELETION_COST) if isinstance(ann, dict) else None
    if isinstance(cost, str) and not _valid_deletion_cost(cost):
        v.add(invalid_value(f"metadata.annotations[{_DELETION_COST}]", cost, "must be a 32bit integer"))
    spec = v.get_map(obj, "spec", "")
    spec = spec if spec is not None else {}
    validate_pod_spec(v, spec, "spec", True)
    if not spec.get("serviceAccountName"):
        for vi, vol in enumerate(_list_of(spec, "volumes")):
            proj = vol.get("projected") if isinstance(vol, dict) else None
            srcs = proj.get("sources") if isinstance(proj, dict) else None
            for si, src in enumerate(srcs if isinstance(srcs, list) else []):
                if isinstance(src, dict) and src.get("serviceAccountToken") is not None:
                    v.add(
                        forbidden(
                            f"spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                            "must not be specified when serviceAccountName is not set",
                        )
                    )
    for key in ("containers", "initContainers"):
        lst = spec.get(key)
        for i, ctr in enumerate(lst if isinstance(lst, list) else []):
            image = ctr.get("image") if isinstance(ctr, dict) else None
            if isinstance(image, str) and image != image.strip():
                v.add(invalid_value(f"spec.{key}[{i}].image", image, "must not have leading or trailing whitespace"))


def _validate_pod_create(v: _V, obj: Obj) -> None:
    _validate_pod_metadata_and_spec(v, obj)
    spec = _dict_of(obj, "spec")
    if spec.get("ephemeralContainers"):
        v.add(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if spec.get("nodeName") and spec.get("schedulingGates"):
        v.add(forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"))


def _go_field(name: str) -> str:
    return name[:1].upper() + name[1:]


def _json_text(x: Any) -> str:
    try:
        return orjson.dumps(x, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(x)


def _spec_diff(old: Obj, new: Obj) -> str:
    """A short cmp.Diff-like rendering of the PodSpec fields that changed (old ``-``, new ``+``)."""
    lines = ["  core.PodSpec{"]
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if _sem_equal(a, b):
            continue
        if a is not None:
            lines.append(f"- \t{_go_field(key)}: {_json_text(a)},")
        if b is not None:
            lines.append(f"+ \t{_go_field(key)}: {_json_text(b)},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def _validate_pod_update(v: _V, obj: Obj, old: Obj) -> None:
    validate_object_meta_update(v, _meta(v, obj), _meta(_V(), old))
    _validate_pod_metadata_and_spec(v, obj)
    spec = _dict_of(obj, "spec")
    old_spec = _dict_of(old, "spec")
    for key in ("containers", "initContainers"):
        new_c = _list_of(spec, key)
        old_c = _list_of(old_spec, key)
        if len(new_c) != len(old_c):
            v.add(forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return
        for i, ctr in enumerate(new_c):
            image = ctr.get("image") if isinstance(ctr, dict) else None
            if not image:
                v.add(required(f"spec.{key}[{i}].image"))
    new_ads = spec.get("activeDeadlineSeconds")
    old_ads = old_spec.get("activeDeadlineSeconds")
    if isinstance(new_ads, int) and not isinstance(new_ads, bool):
        if new_ads < 0 or new_ads > MAX_INT32:
            v.add(invalid_value("spec.activeDeadlineSeconds", new_ads, inclusive_range_error(0, MAX_INT32)))
            return
        if isinstance(old_ads, int) and old_ads < new_ads:
            v.add(invalid_value("spec.activeDeadlineSeconds", new_ads, "must be less than or equal to previous value"))
            return
    elif new_ads is None and old_ads is not None:
        v.add(invalid_value("spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"))
    new_tol = _list_of(spec, "tolerations")
    old_tol = _list_of(old_spec, "tolerations")
    for t in old_tol:
        tt = {k: val for k, val in t.items() if k != "tolerationSeconds"} if isinstance(t, dict) else t
        if not any(
            _sem_equal(tt, {k: val for k, val in n.items() if k != "tolerationSeconds"} if isinstance(n, dict) else n)
            for n in new_tol
        ):
            v.add(forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"))
            break
    new_gates = _list_of(spec, "schedulingGates")
    old_gates = _list_of(old_spec, "schedulingGates")
    old_gate_names = {g.get("name") for g in old_gates if isinstance(g, dict) and isinstance(g.get("name"), str)}
    for i, g in enumerate(new_gates):
        if isinstance(g, dict) and isinstance(g.get("name"), str) and g.get("name") not in old_gate_names:
            v.add(
                forbidden(
                    f"spec.schedulingGates[{i}].name",
                    f"only deletion is allowed, but found new scheduling gate '{g.get('name')}'",
                )
            )
    if _sem_equal(spec, old_spec):
        return
    munged = dict(spec)
    for key in ("containers", "initContainers"):
        new_c = _list_of(spec, key)
        old_c = _list_of(old_spec, key)
        out = []
        for i, ctr in enumerate(new_c):
            if isinstance(ctr, dict) and i < len(old_c) and isinstance(old_c[i], dict):
                ctr = {**ctr, "image": old_c[i].get("image")}
            out.append(ctr)
        if key in spec:
            munged[key] = out
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        if key in old_spec:
            munged[key] = old_spec[key]
        else:
            munged.pop(key, None)
    old_tgps = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_tgps, int) and old_tgps < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_tgps
    if not _sem_equal(munged, old_spec):
        v.add(
            forbidden(
                "spec",
                f"pod updates may not change fields other than {_UPDATABLE_POD_FIELDS}\n{_spec_diff(old_spec, munged)}",
            )
        )


# ---------------------------------------------------------------------------
# Deployments and ReplicaSets (apps/v1)
# ---------------------------------------------------------------------------


def _intstr_value(x: int | str | None) -> int:
    """getIntOrPercentValue: the number of a percent string, else the int (0 for junk)."""
    if isinstance(x, str):
        if _RE_PERCENT.fullmatch(x):
            return int(x[:-1])
        return int(x) if re.fullmatch(r"[+-]?[0-9]{1,18}", x) else 0  # IntOrString.IntValue: Atoi of the string
    return x or 0


def _validate_positive_int_or_percent(v: _V, val: int | str | None, path: str) -> None:
    if isinstance(val, str):
        for msg in is_valid_percent(val):
            v.add(invalid_value(path, go_int_or_string(val), msg))
    elif isinstance(val, int):
        if val < 0:
            v.add(invalid_value(path, val, IS_NEGATIVE_MSG))


def _validate_deployment_strategy(v: _V, spec: Obj) -> None:
    strategy = v.get_map(spec, "strategy", "spec") or {}
    spath = "spec.strategy"
    stype = v.get_str(strategy, "type", spath)
    ru = v.get_map(strategy, "rollingUpdate", spath)
    if stype == "Recreate":
        if ru is not None:
            v.add(forbidden(_child(spath, "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
    elif stype == "RollingUpdate":
        if ru is None:
            v.add(required(_child(spath, "rollingUpdate"), "this should be defaulted and never be nil"))
        else:
            rpath = _child(spath, "rollingUpdate")
            mu = v.int_or_string(ru, "maxUnavailable", rpath)
            ms = v.int_or_string(ru, "maxSurge", rpath)
            _validate_positive_int_or_percent(v, mu, _child(rpath, "maxUnavailable"))
            _validate_positive_int_or_percent(v, ms, _child(rpath, "maxSurge"))
            if _intstr_value(mu) == 0 and _intstr_value(ms) == 0:
                v.add(
                    invalid_value(
                        _child(rpath, "maxUnavailable"), go_int_or_string(mu), "may not be 0 when `maxSurge` is 0"
                    )
                )
            if isinstance(mu, str) and _RE_PERCENT.fullmatch(mu) and int(mu[:-1]) > 100:
                v.add(
                    invalid_value(
                        _child(rpath, "maxUnavailable"), go_int_or_string(mu), "must not be greater than 100%"
                    )
                )
    else:
        ru_repr = (
            "(*apps.RollingUpdateDeployment)(nil)" if ru is None else "(*apps.RollingUpdateDeployment)(0xc000000000)"
        )
        v.add(
            not_supported(
                spath,
                GoRepr(f"apps.DeploymentStrategy{{Type:{go_quote(stype)}, RollingUpdate:{ru_repr}}}"),
                ["Recreate", "RollingUpdate"],
            )
        )


def _validate_replica_set_like_spec(v: _V, spec: Obj, kind_word: str) -> None:
    """The selector/template part shared by Deployment and ReplicaSet specs."""
    sel = v.get_map(spec, "selector", "spec")
    sel_ok = True
    if sel is None:
        v.add(required("spec.selector"))
    else:
        sel_ok = _validate_label_selector(v, sel, "spec.selector")
        if _selector_empty(sel):
            v.add(invalid_value("spec.selector", go_label_selector(sel), f"empty selector is invalid for {kind_word}"))
    if not sel_ok:
        v.add(invalid_value("spec.selector", go_label_selector(sel), "invalid label selector"))
        return
    tmpl = v.get_map(spec, "template", "spec")
    tmpl = tmpl if tmpl is not None else {}
    tmeta = _dict_of(tmpl, "metadata")
    labels = tmeta.get("labels") if isinstance(tmeta.get("labels"), dict) else None
    selects_everything = sel is not None and _selector_empty(sel)
    if not selects_everything and not selector_matches(sel, labels):
        v.add(
            invalid_value(
                "spec.template.metadata.labels", go_string_map(labels), "`selector` does not match template `labels`"
            )
        )
    validate_pod_template_spec(v, tmpl, "spec.template")
    tspec = _dict_of(tmpl, "spec")
    rp = tspec.get("restartPolicy")
    if rp != "Always":
        v.add(not_supported("spec.template.spec.restartPolicy", rp if isinstance(rp, str) else "", ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        v.add(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in ReplicaSet is not Supported"
            )
        )


def _validate_deployment_spec(v: _V, obj: Obj) -> None:
    spec = v.get_map(obj, "spec", "")
    spec = spec if spec is not None else {}
    v.nonneg(spec, "replicas", "spec")
    _validate_replica_set_like_spec(v, spec, "deployment")
    _validate_deployment_strategy(v, spec)
    v.nonneg(spec, "minReadySeconds", "spec")
    v.nonneg(spec, "revisionHistoryLimit", "spec")
    v.get_bool(spec, "paused", "spec")
    rb = v.get_map(spec, "rollbackTo", "spec")
    if rb is not None:
        v.nonneg(rb, "revision", "spec.rollback", 64)
    pds = v.get_int(spec, "progressDeadlineSeconds", "spec")
    if pds is not None:
        if pds < 0:
            v.add(invalid_value("spec.progressDeadlineSeconds", pds, IS_NEGATIVE_MSG))
        mrs = spec.get("minReadySeconds")
        mrs = mrs if isinstance(mrs, int) and not isinstance(mrs, bool) else 0
        if pds <= mrs:
            v.add(invalid_value("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))


def _validate_replica_set_spec(v: _V, obj: Obj) -> None:
    spec = v.get_map(obj, "spec", "")
    spec = spec if spec is not None else {}
    v.nonneg(spec, "replicas", "spec")
    v.nonneg(spec, "minReadySeconds", "spec")
    _validate_replica_set_like_spec(v, spec, "deployment")


def _selector_immutable(v: _V, obj: Obj, old: Obj) -> None:
    spec = _dict_of(obj, "spec")
    old_spec = _dict_of(old, "spec")
    new_sel, old_sel = spec.get("selector"), old_spec.get("selector")
    if not _sem_equal(new_sel, old_sel):
        shown = go_label_selector(new_sel) if isinstance(new_sel, dict) else "null"
        v.add(invalid_value("spec.selector", GoRepr(shown), FIELD_IMMUTABLE_MSG))


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _go_service_port(p: Obj) -> str:
    return (
        f'core.ServicePort{{Name:"", Protocol:{go_quote(str(p.get("protocol") or ""))}, AppProtocol:(*string)(nil), '
        f'Port:{p.get("port") or 0}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}'
    )


def _str_of(d: Obj, key: str) -> str:
    x = d.get(key)
    return x if isinstance(x, str) else ""


def _int_of(d: Obj, key: str) -> int:
    x = d.get(key)
    return x if isinstance(x, int) and not isinstance(x, bool) else 0


def _cluster_ips(spec: Obj) -> list[str]:
    ips = spec.get("clusterIPs")
    return [x for x in ips if isinstance(x, str)] if isinstance(ips, list) else []


def _is_headless(spec: Obj) -> bool:
    ips = _cluster_ips(spec)
    return len(ips) == 1 and ips[0] == "None"


def _validate_service_cluster_ips(v: _V, spec: Obj) -> None:
    if spec.get("type") == "ExternalName":
        return
    cluster_ip = v.get_str(spec, "clusterIP", "spec")
    ips = v.str_list(spec, "clusterIPs", "spec")
    families = v.str_list(spec, "ipFamilies", "spec")
    if cluster_ip:
        if not ips:
            v.add(required("spec.clusterIPs"))
        elif ips[0] != cluster_ip:
            v.add(invalid_value("spec.clusterIPs", go_string_slice(ips), "first value must match `clusterIP`"))
    elif ips:
        v.add(invalid_value("spec.clusterIPs", go_string_slice(ips), "must be empty when `clusterIP` is not specified"))
    seen: set[str] = set()
    for i, fam in enumerate(families):
        if fam not in ("IPv4", "IPv6"):
            v.add(not_supported(f"spec.ipFamilies[{i}]", fam, ["IPv4", "IPv6"]))
        if fam in seen:
            v.add(duplicate(f"spec.ipFamilies[{i}]", fam))
        seen.add(fam)
    policy = v.get_opt_str(spec, "ipFamilyPolicy", "spec")
    if policy is not None and policy not in ("PreferDualStack", "RequireDualStack", "SingleStack"):
        v.add(not_supported("spec.ipFamilyPolicy", policy, ["PreferDualStack", "RequireDualStack", "SingleStack"]))
    bad = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                v.add(invalid_value("spec.clusterIPs", go_string_slice(ips), "'None' must be the first and only value"))
            continue
        errs = _validate_ip(f"spec.clusterIPs[{i}]", ip)
        bad = bad or bool(errs)
        v.extend(errs)
    if len(ips) > 2:
        v.add(invalid_value("spec.clusterIPs", go_string_slice(ips), "may only hold up to 2 values"))
    if bad:
        return
    if len(ips) > 1:
        versions = [(_parse_ip(ip) or ipaddress.IPv4Address(0)).version for ip in ips]
        if len(set(versions)) != len(versions):
            v.add(
                invalid_value(
                    "spec.clusterIPs", go_string_slice(ips), "may specify no more than one IP for each IP family"
                )
            )
    if not _is_headless(spec) and ips and families:
        for i, ip in enumerate(ips):
            if i > len(families) - 1:
                break
            parsed = _parse_ip(ip)
            is6 = parsed is not None and parsed.version == 6
            if families[i] == "IPv4" and is6:
                v.add(
                    invalid_value(
                        f"spec.clusterIPs[{i}]", ip, f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"
                    )
                )
            if families[i] == "IPv6" and not is6:
                v.add(
                    invalid_value(
                        f"spec.clusterIPs[{i}]", ip, f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"
                    )
                )


def _externally_accessible(spec: Obj) -> bool:
    t = spec.get("type")
    return t in ("LoadBalancer", "NodePort") or (t == "ClusterIP" and bool(spec.get("externalIPs")))


def _validate_service(v: _V, obj: Obj) -> None:
    meta = _meta(v, obj)
    validate_object_meta(v, meta, True, name_is_dns1035_label)
    spec = v.get_map(obj, "spec", "")
    spec = spec if spec is not None else {}
    stype = v.get_str(spec, "type", "spec")
    ports = v.items(spec, "ports", "spec")
    headless = _is_headless(spec)
    if not ports and not headless and stype != "ExternalName":
        v.add(required("spec.ports"))
    ips = _cluster_ips(spec)
    if stype in ("LoadBalancer", "NodePort") and headless:
        v.add(invalid_value("spec.clusterIPs[0]", ips[0], f"may not be set to 'None' for {stype} services"))
    elif stype == "ExternalName":
        if ips:
            v.add(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            v.add(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            v.add(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = v.get_str(spec, "externalName", "spec")
        cname = cname[:-1] if cname.endswith(".") else cname
        if cname:
            for msg in is_dns1123_subdomain(cname):
                v.add(invalid_value("spec.externalName", cname, msg))
        else:
            v.add(required("spec.externalName"))
    names: set[str] = set()
    for _, port, ppath in ports:
        pname = v.get_str(port, "name", ppath)
        if len(ports) > 1 and not pname:
            v.add(required(_child(ppath, "name")))
        elif pname:
            for msg in is_dns1123_label(pname):
                v.add(invalid_value(_child(ppath, "name"), pname, msg))
            if pname in names:
                v.add(duplicate(_child(ppath, "name"), pname))
            else:
                names.add(pname)
        pnum = v.get_int(port, "port", ppath)
        for msg in is_valid_port_num(pnum or 0):
            v.add(invalid_value(_child(ppath, "port"), pnum or 0, msg))
        proto = v.get_str(port, "protocol", ppath)
        if not proto:
            v.add(required(_child(ppath, "protocol")))
        elif proto not in _PROTOCOLS:
            v.add(not_supported(_child(ppath, "protocol"), proto, _PROTOCOLS))
        _validate_port_num_or_name(v, port, "targetPort", ppath)
        ap = v.get_opt_str(port, "appProtocol", ppath)
        if ap is not None:
            for msg in is_qualified_name(ap):
                v.add(invalid_value(_child(ppath, "appProtocol"), ap, msg))
        v.get_int(port, "nodePort", ppath)
    selector = v.str_map(spec, "selector", "spec")
    if selector is not None:
        validate_labels(v, selector, "spec.selector")
    affinity = v.get_str(spec, "sessionAffinity", "spec")
    sac = v.get_map(spec, "sessionAffinityConfig", "spec")
    if not affinity:
        v.add(required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        v.add(not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
    if affinity == "ClientIP":
        cpath = "spec.sessionAffinityConfig"
        if sac is None:
            v.add(required(cpath, "when session affinity type is ClientIP"))
        else:
            cip = v.get_map(sac, "clientIP", cpath)
            if cip is None:
                v.add(required(_child(cpath, "clientIP"), "when session affinity type is ClientIP"))
            else:
                ts = v.get_int(cip, "timeoutSeconds", _child(cpath, "clientIP"))
                if ts is None:
                    v.add(required(f"{cpath}.clientIP.timeoutSeconds", "when session affinity type is ClientIP"))
                elif ts <= 0 or ts > 86400:
                    v.add(
                        invalid_value(
                            f"{cpath}.clientIP.timeoutSeconds", ts, "must be greater than 0 and less than 86400"
                        )
                    )
    elif affinity == "None" and sac is not None:
        v.add(forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"))
    _validate_service_cluster_ips(v, spec)
    for i, ip in enumerate(v.str_list(spec, "externalIPs", "spec")):
        errs = _validate_ip(f"spec.externalIPs[{i}]", ip)
        v.extend(errs if errs else _validate_non_special_ip(ip, f"spec.externalIPs[{i}]"))
    if not stype:
        v.add(required("spec.type"))
    elif stype not in _SERVICE_TYPES:
        v.add(not_supported("spec.type", stype, _SERVICE_TYPES))
    typed = [
        (port, ppath, _str_of(port, "protocol"), _int_of(port, "port"), _int_of(port, "nodePort"))
        for _, port, ppath in ports
    ]
    if stype == "ClusterIP":
        for _, ppath, _, _, np_ in typed:
            if np_:
                v.add(forbidden(_child(ppath, "nodePort"), "may not be used when `type` is 'ClusterIP'"))
    seen_np: set[tuple[str, int]] = set()
    for _, ppath, proto_, _, np_ in typed:
        if not np_:
            continue
        if (proto_, np_) in seen_np:
            v.add(duplicate(_child(ppath, "nodePort"), np_))
        seen_np.add((proto_, np_))
    seen_p: set[tuple[str, int]] = set()
    for port, ppath, proto_, pnum_, _ in typed:
        if (proto_, pnum_) in seen_p:
            v.add(duplicate(ppath, GoRepr(_go_service_port(port))))
        seen_p.add((proto_, pnum_))
    ranges = v.str_list(spec, "loadBalancerSourceRanges", "spec")
    if ranges:
        rpath = "spec.LoadBalancerSourceRanges"
        if stype != "LoadBalancer":
            v.add(forbidden(rpath, "may only be used when `type` is 'LoadBalancer'"))
        for i, r in enumerate(ranges):
            v.extend(_validate_cidr(f"{rpath}[{i}]", r.strip()))
    alb = v.get_bool(spec, "allocateLoadBalancerNodePorts", "spec")
    if alb is not None and stype != "LoadBalancer":
        v.add(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    if stype == "LoadBalancer" and alb is None:
        v.add(required("allocateLoadBalancerNodePorts"))
    lbc = v.get_opt_str(spec, "loadBalancerClass", "spec")
    if lbc is not None:
        if stype != "LoadBalancer":
            v.add(forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"))
        else:
            for msg in is_qualified_name(lbc):
                v.add(invalid_value("spec.loadBalancerClass", lbc, msg))
    etp = v.get_str(spec, "externalTrafficPolicy", "spec")
    if not _externally_accessible(spec):
        if etp:
            v.add(
                invalid_value("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services")
            )
    elif not etp:
        v.add(required("spec.externalTrafficPolicy"))
    elif etp not in ("Cluster", "Local"):
        v.add(not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    hcnp = v.get_int(spec, "healthCheckNodePort", "spec")
    needs_hc = stype == "LoadBalancer" and etp == "Local"
    if not needs_hc:
        if hcnp:
            v.add(
                invalid_value(
                    "spec.healthCheckNodePort",
                    hcnp,
                    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
                )
            )
    elif hcnp:  # an unset one is allocated (upstream allocates before validating)
        for msg in is_valid_port_num(hcnp):
            v.add(invalid_value("spec.healthCheckNodePort", hcnp, msg))
    itp = v.get_opt_str(spec, "internalTrafficPolicy", "spec")
    if itp is None:
        if stype in ("NodePort", "LoadBalancer", "ClusterIP"):
            v.add(required("spec.internalTrafficPolicy"))
    elif itp not in ("Cluster", "Local"):
        v.add(not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    td = v.get_opt_str(spec, "trafficDistribution", "spec")
    if td is not None and td != "PreferClose":
        v.add(not_supported("spec.trafficDistribution", td, ["PreferClose"]))
    # Node ports outside the range are refused by upstream's allocator (with this message) before storing.
    if stype in ("NodePort", "LoadBalancer"):
        lo, hi = NODE_PORT_RANGE
        for _, ppath, _, _, np_ in typed:
            if np_ and not lo <= np_ <= hi:
                v.add(
                    invalid_value(
                        _child(ppath, "nodePort"),
                        np_,
                        f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}",
                    )
                )


def _go_families(fams: list[str]) -> GoRepr:
    return GoRepr("[]core.IPFamily{" + ", ".join(go_quote(f) for f in fams) + "}")


def _str_items(d: Obj, key: str) -> list[str]:
    x = d.get(key)
    return [i for i in x if isinstance(i, str)] if isinstance(x, list) else []


def _validate_service_update(v: _V, obj: Obj, old: Obj) -> None:
    validate_object_meta_update(v, _meta(v, obj), _meta(_V(), old))
    spec = _dict_of(obj, "spec")
    old_spec = _dict_of(old, "spec")
    external = "ExternalName" in (spec.get("type"), old_spec.get("type"))
    new_h, old_h = _is_headless(spec), _is_headless(old_spec)
    new_ips, old_ips = _cluster_ips(spec), _cluster_ips(old_spec)
    shown_ips = go_string_slice(spec.get("clusterIPs"))
    policy = spec.get("ipFamilyPolicy")
    # clusterIPs: upgrades and downgrades only, never a change of the primary
    if not external and not (new_h and old_h):
        if len(new_ips) == len(old_ips):
            for i, ip in enumerate(old_ips):
                if ip != new_ips[i]:
                    v.add(invalid_value(f"spec.clusterIPs[{i}]", shown_ips, "may not change once set"))
        elif len(old_ips) > len(new_ips):
            if not new_ips:
                v.add(invalid_value("spec.clusterIPs[0]", shown_ips, "primary clusterIP can not be unset"))
            if old_ips and new_ips and new_ips[0] != old_ips[0]:
                v.add(invalid_value("spec.clusterIPs[0]", shown_ips, "may not change once set"))
            if len(new_ips) == 1 and policy != "SingleStack":
                v.add(
                    invalid_value(
                        "spec.ipFamilyPolicy",
                        policy,
                        "must be set to 'SingleStack' when releasing the secondary clusterIP",
                    )
                )
        elif old_ips and new_ips[0] != old_ips[0]:
            v.add(invalid_value("spec.clusterIPs[0]", shown_ips, "may not change once set"))
    # ipFamilies, likewise (headless services may change them)
    if not external and new_h == old_h and not new_h:
        nf, of = _str_items(spec, "ipFamilies"), _str_items(old_spec, "ipFamilies")
        if len(nf) == len(of):
            for i, fam in enumerate(of):
                if fam != nf[i]:
                    v.add(invalid_value("spec.ipFamilies[0]", _go_families(nf), "may not change once set"))
        elif len(of) > len(nf):
            if not new_ips:
                v.add(invalid_value("spec.ipFamilies[0]", _go_families(nf), "primary ipFamily can not be unset"))
            if nf and nf[0] != of[0]:
                v.add(invalid_value("spec.ipFamilies[0]", shown_ips, "may not change once set"))
            if len(nf) == 1 and policy != "SingleStack":
                v.add(
                    invalid_value(
                        "spec.ipFamilyPolicy",
                        policy,
                        "must be set to 'SingleStack' when releasing the secondary ipFamily",
                    )
                )
        elif of and nf and nf[0] != of[0]:
            v.add(invalid_value("spec.ipFamilies[0]", shown_ips, "may not change once set"))
    before_hc = old_spec.get("type") == "LoadBalancer" and old_spec.get("externalTrafficPolicy") == "Local"
    after_hc = spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
    if before_hc and after_hc and spec.get("healthCheckNodePort") != old_spec.get("healthCheckNodePort"):
        v.add(forbidden("spec.healthCheckNodePort", FIELD_IMMUTABLE_MSG))
    _validate_service(v, obj)


# ---------------------------------------------------------------------------
# ConfigMaps and Secrets
# ---------------------------------------------------------------------------


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def go_base64_decode(s: str) -> tuple[bytes | None, str]:
    """Go's ``base64.StdEncoding.DecodeString``: (bytes, "") or (None, its error text)."""
    src = s.encode("utf-8", "surrogatepass")
    n = len(src)
    si = 0
    out = bytearray()

    def corrupt(off: int) -> tuple[None, str]:
        return None, f"illegal base64 data at input byte {off}"

    while True:
        dbuf = [0, 0, 0, 0]
        dlen = 4
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out), ""
                return corrupt(si - j)
            c = src[si]
            si += 1
            if c in (0x0A, 0x0D):
                continue
            idx = _B64.find(chr(c)) if c < 128 else -1
            if idx >= 0:
                dbuf[j] = idx
                j += 1
                continue
            if c != ord("="):
                return corrupt(si - 1)
            if j in (0, 1):
                return corrupt(si - 1)
            if j == 2:
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return corrupt(n)
                if src[si] != ord("="):
                    return corrupt(si - 1)
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                return corrupt(si)
            dlen = j
            break
        val = dbuf[0] << 18 | dbuf[1] << 12 | dbuf[2] << 6 | dbuf[3]
        chunk = bytes([(val >> 16) & 0xFF, (val >> 8) & 0xFF, val & 0xFF])
        out.extend(chunk[: max(dlen - 1, 0)] if dlen < 4 else chunk)
        if dlen < 4:
            return bytes(out), ""


def _validate_data_keys(v: _V, data: dict[str, Any], path: str) -> None:
    for key in sorted(data):
        for msg in is_config_map_key(key):
            v.add(invalid_value(f"{path}[{key}]", key, msg))


def _binary_map(v: _V, obj: Obj, key: str) -> dict[str, int]:
    """Decoded sizes of a base64-valued map field; undecodable values are errors."""
    m = v.get_map(obj, key, "")
    sizes: dict[str, int] = {}
    for k in sorted(m or {}):
        raw = (m or {})[k]
        if raw is None:
            sizes[k] = 0
            continue
        if not isinstance(raw, str):
            v.add(_type_error(f"{key}[{k}]", "<secret contents redacted>", str))
            continue
        data, err = go_base64_decode(raw)
        if data is None:
            v.add(invalid_value(f"{key}[{k}]", "<secret contents redacted>", err))
            continue
        sizes[k] = len(data)
    return sizes


def _validate_config_map(v: _V, obj: Obj) -> None:
    validate_object_meta(v, _meta(v, obj), True, name_is_dns_subdomain)
    data = v.str_map(obj, "data", "") or {}
    binary = _binary_map(v, obj, "binaryData")
    v.get_bool(obj, "immutable", "")
    total = 0
    for key in sorted(data):
        for msg in is_config_map_key(key):
            v.add(invalid_value(f"data[{key}]", key, msg))
        if key in binary:
            v.add(invalid_value(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += _blen(data[key])
    bmap = _dict_of(obj, "binaryData")
    _validate_data_keys(v, bmap, "binaryData")
    total += sum(binary.values())
    if total > MAX_SECRET_SIZE:
        v.add(too_long("", MAX_SECRET_SIZE))


def _validate_secret(v: _V, obj: Obj) -> None:
    meta = _meta(v, obj)
    validate_object_meta(v, meta, True, name_is_dns_subdomain)
    sizes = _binary_map(v, obj, "data")
    raw = _dict_of(obj, "data")
    _validate_data_keys(v, raw, "data")
    if sum(sizes.values()) > MAX_SECRET_SIZE:
        v.add(too_long("data", MAX_SECRET_SIZE))
    v.get_bool(obj, "immutable", "")
    stype = v.get_str(obj, "type", "")
    ann = _dict_of(meta, "annotations")

    def decoded(key: str) -> bytes | None:
        val = raw.get(key)
        if not isinstance(val, str):
            return None if val is None and key not in raw else b""
        return go_base64_decode(val)[0]

    if stype == "kubernetes.io/service-account-token":
        if not ann.get("kubernetes.io/service-account.name"):
            v.add(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif stype in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if stype == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in raw:
            v.add(required(f"data[{key}]"))
        else:
            content = decoded(key) or b""
            msg = ""
            try:
                parsed = orjson.loads(content)
                if not isinstance(parsed, dict):
                    msg = "json: cannot unmarshal into Go value of type map[string]interface {}"
            except orjson.JSONDecodeError:
                msg = "unexpected end of JSON input" if not content.strip() else "invalid character in JSON input"
            if msg:
                v.add(invalid_value(f"data[{key}]", "<secret contents redacted>", msg))
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in raw and "password" not in raw:
            v.add(required("data[username]"))
            v.add(required("data[password]"))
    elif stype == "kubernetes.io/ssh-auth":
        if not decoded("ssh-privatekey"):
            v.add(required("data[ssh-privatekey]"))
    elif stype == "kubernetes.io/tls":
        if "tls.crt" not in raw:
            v.add(required("data[tls.crt]"))
        if "tls.key" not in raw:
            v.add(required("data[tls.key]"))


def _immutable_data_update(v: _V, obj: Obj, old: Obj, keys: tuple[str, ...]) -> None:
    if old.get("immutable") is True:
        if obj.get("immutable") is not True:
            v.add(forbidden("immutable", "field is immutable when `immutable` is set"))
        for key in keys:
            if not _sem_equal(obj.get(key), old.get(key)):
                v.add(forbidden(key, "field is immutable when `immutable` is set"))


# ---------------------------------------------------------------------------
# Other kinds
# ---------------------------------------------------------------------------


def _validate_namespace(v: _V, obj: Obj) -> None:
    validate_object_meta(v, _meta(v, obj), False, name_is_dns_label)
    spec = v.get_map(obj, "spec", "") or {}
    for f in v.str_list(spec, "finalizers", "spec"):
        for msg in is_qualified_name(f):
            v.add(invalid_value("spec.finalizers", f, msg))
        _validate_kube_finalizer_name(v, f, "spec.finalizers")


def _validate_taints(v: _V, spec: Obj) -> None:
    unique: dict[str, set[str]] = {}
    for _, taint, tpath in v.items(spec, "taints", "metadata"):
        key = v.get_str(taint, "key", tpath)
        value = v.get_str(taint, "value", tpath)
        effect = v.get_str(taint, "effect", tpath)
        for msg in is_qualified_name(key):
            v.add(invalid_value(_child(tpath, "key"), key, msg))
        errs = is_valid_label_value(value)
        if errs:
            v.add(invalid_value(_child(tpath, "value"), value, ";".join(errs)))
        if not effect:
            v.add(required(_child(tpath, "effect")))
        elif effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            v.add(not_supported(_child(tpath, "effect"), effect, ["NoSchedule", "PreferNoSchedule", "NoExecute"]))
        if key in unique.get(effect, set()):
            err = duplicate(
                tpath,
                GoRepr(
                    f"core.Taint{{Key:{go_quote(key)}, Value:{go_quote(value)}, Effect:{go_quote(effect)}, TimeAdded:<nil>}}"
                ),
            )
            err.detail = "taints must be unique by key and effect pair"
            v.add(err)
            continue
        unique.setdefault(effect, set()).add(key)


def _validate_node_resources(v: _V, obj: Obj) -> None:
    status = v.get_map(obj, "status", "") or {}
    for key in ("capacity", "allocatable"):
        m = v.get_map(status, key, "status") or {}
        for name in sorted(m):
            p = f"status.{key}.{name}"
            try:
                q, fmt = _parse_quantity_full(_quantity_text(m[name]))
            except ValueError as exc:
                v.add(invalid_value(p, m[name], str(exc)))
                continue
            if q < 0:
                v.add(invalid_value(p, _canonical_quantity(q, fmt), IS_NEGATIVE_MSG))


def _validate_node(v: _V, obj: Obj, old: Obj | None) -> None:
    meta = _meta(v, obj)
    if old is None:
        validate_object_meta(v, meta, False, name_is_dns_subdomain)
    else:
        validate_object_meta_update(v, meta, _meta(_V(), old))
    spec = v.get_map(obj, "spec", "") or {}
    if spec.get("taints"):
        _validate_taints(v, spec)
    _validate_node_resources(v, obj)
    cidrs = v.str_list(spec, "podCIDRs", "spec")
    if old is None:
        for i, c in enumerate(cidrs):
            v.extend(_validate_cidr(f"spec.podCIDRs[{i}]", c))
        return
    old_spec = _dict_of(old, "spec")
    old_cidrs = _list_of(old_spec, "podCIDRs")
    if old_cidrs and old_cidrs != cidrs:
        v.add(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
    old_pid = old_spec.get("providerID")
    if old_pid and old_pid != spec.get("providerID"):
        v.add(forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid'))
    if spec.get("externalID") != old_spec.get("externalID"):
        v.add(forbidden("spec.externalID", "may not be updated"))


def _validate_endpoints(v: _V, obj: Obj) -> None:
    validate_object_meta(v, _meta(v, obj), True, name_is_dns_subdomain)
    for _, ss, spath in v.items(obj, "subsets", ""):
        addrs = v.items(ss, "addresses", spath)
        not_ready = v.items(ss, "notReadyAddresses", spath)
        if not addrs and not not_ready:
            v.add(required(spath, "must specify `addresses` or `notReadyAddresses`"))
        for _, addr, apath in addrs + not_ready:
            ip = v.get_str(addr, "ip", apath)
            v.extend(_validate_ip(_child(apath, "ip"), ip))
            hn = v.get_str(addr, "hostname", apath)
            if hn:
                for msg in is_dns1123_label(hn):
                    v.add(invalid_value(_child(apath, "hostname"), hn, msg))
            nn = v.get_opt_str(addr, "nodeName", apath)
            if nn is not None:
                for msg in name_is_dns_subdomain(nn, False):
                    v.add(invalid_value(_child(apath, "nodeName"), nn, msg))
            v.extend(_validate_non_special_ip(ip, _child(apath, "ip")))
        ports = v.items(ss, "ports", spath)
        for _, port, ppath in ports:
            pname = v.get_str(port, "name", ppath)
            if len(ports) > 1 and not pname:
                v.add(required(_child(ppath, "name")))
            elif pname:
                for msg in is_dns1123_label(pname):
                    v.add(invalid_value(_child(ppath, "name"), pname, msg))
            pnum = v.get_int(port, "port", ppath) or 0
            for msg in is_valid_port_num(pnum):
                v.add(invalid_value(_child(ppath, "port"), pnum, msg))
            proto = v.get_str(port, "protocol", ppath)
            if not proto:
                v.add(required(_child(ppath, "protocol")))
            elif proto not in _PROTOCOLS:
                v.add(not_supported(_child(ppath, "protocol"), proto, _PROTOCOLS))
            ap = v.get_opt_str(port, "appProtocol", ppath)
            if ap is not None:
                for msg in is_qualified_name(ap):
                    v.add(invalid_value(_child(ppath, "appProtocol"), ap, msg))


def _validate_fqdn(path: str, name: str) -> Errs:
    if not name:
        return [required(path)]
    name = name[:-1] if name.endswith(".") else name
    errs = is_dns1123_subdomain(name)
    if errs:
        return [invalid_value(path, name, ",".join(errs))]
    labels = name.split(".")
    if len(labels) < 2:
        return [invalid_value(path, name, "should be a domain with at least two segments separated by dots")]
    for label in labels:
        errs = is_dns1123_label(label)
        if errs:
            return [invalid_value(path, label, ",".join(errs))]
    return []


def _validate_endpoint_slice(v: _V, obj: Obj, old: Obj | None) -> None:
    validate_object_meta(v, _meta(v, obj), True, name_is_dns_subdomain)
    at = v.get_str(obj, "addressType", "")
    valid = ["FQDN", "IPv4", "IPv6"] + (["IP"] if old is not None else [])
    if not at:
        v.add(required("addressType"))
    elif at not in valid:
        v.add(not_supported("addressType", at, sorted(valid)))
    eps = v.items(obj, "endpoints", "")
    if len(eps) > 1000:
        v.add(FieldError("TooMany", "endpoints", len(eps), "must have at most 1000 items"))
    else:
        for _, ep, epath in eps:
            apath = _child(epath, "addresses")
            addrs = v.str_list(ep, "addresses", epath)
            if not addrs:
                v.add(required(apath, "must contain at least 1 address"))
            elif len(addrs) > 100:
                v.add(FieldError("TooMany", apath, len(addrs), "must have at most 100 items"))
            for i, addr in enumerate(addrs):
                ipath = f"{apath}[{i}]"
                if at in ("IPv4", "IPv6"):
                    ip = _parse_ip(addr)
                    want = 4 if at == "IPv4" else 6
                    if ip is None or ip.version != want:
                        v.add(invalid_value(ipath, addr, f"must be a valid {at} address"))
                    v.extend(_validate_non_special_ip(addr, ipath))
                elif at == "FQDN":
                    v.extend(_validate_fqdn(ipath, addr))
            hn = v.get_opt_str(ep, "hostname", epath)
            if hn is not None:
                for msg in is_dns1123_label(hn):
                    v.add(invalid_value(_child(epath, "hostname"), hn, msg))
            v.get_map(ep, "conditions", epath)
    ports = v.items(obj, "ports", "")
    if len(ports) > 100:
        v.add(FieldError("TooMany", "ports", len(ports), "must have at most 100 items"))
        return
    names: set[str] = set()
    for _, port, ppath in ports:
        pname = v.get_str(port, "name", ppath)
        if pname:
            for msg in is_dns1123_label(pname):
                v.add(invalid_value(_child(ppath, "name"), pname, msg))
        if pname in names:
            v.add(duplicate(_child(ppath, "name"), pname))
        names.add(pname)
        proto = v.get_opt_str(port, "protocol", ppath)
        if proto is None:
            v.add(required(_child(ppath, "protocol")))
        elif proto not in _PROTOCOLS:
            v.add(not_supported(_child(ppath, "protocol"), proto, _PROTOCOLS))
        v.get_int(port, "port", ppath)
        ap = v.get_opt_str(port, "appProtocol", ppath)
        if ap is not None:
            for msg in is_qualified_name(ap):
                v.add(invalid_value(_child(ppath, "appProtocol"), ap, msg))
    if old is not None and obj.get("addressType") != old.get("addressType"):
        v.add(invalid_value("addressType", obj.get("addressType"), FIELD_IMMUTABLE_MSG))


def _validate_lease(v: _V, obj: Obj) -> None:
    validate_object_meta(v, _meta(v, obj), True, name_is_dns_subdomain)
    _validate_lease_spec(v, obj)


def _validate_lease_spec(v: _V, obj: Obj) -> None:
    spec = v.get_map(obj, "spec", "") or {}
    lds = v.get_int(spec, "leaseDurationSeconds", "spec")
    if lds is not None and lds <= 0:
        v.add(invalid_value("spec.leaseDurationSeconds", lds, "must be greater than 0"))
    lt = v.get_int(spec, "leaseTransitions", "spec")
    if lt is not None and lt < 0:
        v.add(invalid_value("spec.leaseTransitions", lt, IS_NEGATIVE_MSG))
    v.get_str(spec, "holderIdentity", "spec")


def _required_short(v: _V, obj: Obj, field: str, limit: int = 128) -> None:
    """An event string field that must be set and at most ``limit`` characters long."""
    value = v.get_str(obj, field, "")
    if not value:
        v.add(required(field))
    if _blen(value) > limit:
        v.add(invalid_value(field, "", f"can have at most {limit} characters"))


def _validate_core_event(v: _V, obj: Obj) -> None:
    """Upstream's legacy (core/v1) event validation, then the generic ObjectMeta check it falls back on."""
    meta = _meta(v, obj)
    namespace = v.get_str(meta, "namespace", "metadata")
    inv = v.get_map(obj, "involvedObject", "") or {}
    inv_ns = v.get_str(inv, "namespace", "involvedObject")
    before = len(v.errs)
    if not obj.get("eventTime"):
        if not inv_ns:
            if namespace not in ("", "default"):
                v.add(invalid_value("involvedObject.namespace", inv_ns, "does not match event.namespace"))
        elif namespace != inv_ns:
            v.add(invalid_value("involvedObject.namespace", inv_ns, "does not match event.namespace"))
    else:
        if not inv_ns and namespace not in ("default", "kube-system"):
            v.add(invalid_value("involvedObject.namespace", inv_ns, "does not match event.namespace"))
        rc = v.get_str(obj, "reportingComponent", "")
        if not rc:
            v.add(required("source"))
        for msg in is_qualified_name(rc):
            v.add(invalid_value("source", rc, msg))
        for field in ("reportingInstance", "action", "reason"):
            _required_short(v, obj, field)
        if _blen(v.get_str(obj, "message", "")) > 1024:
            v.add(invalid_value("message", "", "can have at most 1024 characters"))
    for msg in is_dns1123_subdomain(namespace):
        v.add(invalid_value("namespace", namespace, msg))
    if len(v.errs) == before:
        validate_object_meta(v, meta, True, _path_segment_name)


def _validate_events_v1_event(v: _V, obj: Obj) -> None:
    """events.k8s.io/v1 Event, strict (new-style) validation; kept to the basic required fields."""
    validate_object_meta(v, _meta(v, obj), True, name_is_dns_subdomain)
    if not obj.get("eventTime"):
        v.add(required("eventTime"))
    etype = v.get_str(obj, "type", "")
    if etype not in ("Normal", "Warning"):
        v.add(invalid_value("type", "", f"has invalid value: {etype}"))
    rc = v.get_str(obj, "reportingController", "")
    if not rc:
        v.add(required("reportingController"))
    for msg in is_qualified_name(rc):
        v.add(invalid_value("reportingController", rc, msg))
    for field in ("reportingInstance", "action", "reason"):
        _required_short(v, obj, field)
    if _blen(v.get_str(obj, "note", "")) > 1024:
        v.add(invalid_value("note", "", "can have at most 1024 characters"))


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def _validate(resource: Resource, obj: Any, old: Any) -> Errs:
    v = _V()
    if not isinstance(obj, dict):
        return [_type_error("", obj, dict)]
    if old is not None and not isinstance(old, dict):
        old = {}
    kind = (resource.group, resource.kind)
    if old is None:
        if kind == ("", "Pod"):
            _validate_pod_create(v, obj)
        elif kind == ("apps", "Deployment"):
            validate_object_meta(v, _meta(v, obj), True, name_is_dns_subdomain)
            _validate_deployment_spec(v, obj)
        elif kind == ("apps", "ReplicaSet"):
            validate_object_meta(v, _meta(v, obj), True, name_is_dns_subdomain)
            _validate_replica_set_spec(v, obj)
        elif kind == ("", "Service"):
            _validate_service(v, obj)
        elif kind == ("", "ConfigMap"):
            _validate_config_map(v, obj)
        elif kind == ("", "Secret"):
            _validate_secret(v, obj)
        elif kind == ("", "Namespace"):
            _validate_namespace(v, obj)
        elif kind == ("", "Node"):
            _validate_node(v, obj, None)
        elif kind == ("", "Endpoints"):
            _validate_endpoints(v, obj)
        elif kind == ("discovery.k8s.io", "EndpointSlice"):
            _validate_endpoint_slice(v, obj, None)
        elif kind == ("coordination.k8s.io", "Lease"):
            _validate_lease(v, obj)
        elif kind == ("", "Event"):
            _validate_core_event(v, obj)
        elif kind == ("events.k8s.io", "Event"):
            _validate_events_v1_event(v, obj)
        else:
            validate_object_meta(v, _meta(v, obj), resource.namespaced, name_is_dns_subdomain)
        return v.errs
    meta, old_meta = _meta(v, obj), _meta(_V(), old)
    if kind == ("", "Pod"):
        _validate_pod_update(v, obj, old)
    elif kind in (("apps", "Deployment"), ("apps", "ReplicaSet")):
        validate_object_meta_update(v, meta, old_meta)
        if kind[1] == "Deployment":
            _validate_deployment_spec(v, obj)
        else:
            _validate_replica_set_spec(v, obj)
        _selector_immutable(v, obj, old)
    elif kind == ("", "Service"):
        _validate_service_update(v, obj, old)
    elif kind == ("", "ConfigMap"):
        validate_object_meta_update(v, meta, old_meta)
        _immutable_data_update(v, obj, old, ("data", "binaryData"))
        _validate_config_map(v, obj)
    elif kind == ("", "Secret"):
        validate_object_meta_update(v, meta, old_meta)
        _immutable(v, obj.get("type") or "", old.get("type") or "", "type")
        _immutable_data_update(v, obj, old, ("data",))
        _validate_secret(v, obj)
    elif kind == ("", "Namespace"):
        validate_object_meta_update(v, meta, old_meta)
    elif kind == ("", "Node"):
        _validate_node(v, obj, old)
    elif kind == ("", "Endpoints"):
        validate_object_meta_update(v, meta, old_meta)
        _validate_endpoints(v, obj)
    elif kind == ("discovery.k8s.io", "EndpointSlice"):
        validate_object_meta_update(v, meta, old_meta)
        _validate_endpoint_slice(v, obj, old)
    elif kind == ("coordination.k8s.io", "Lease"):
        validate_object_meta_update(v, meta, old_meta)
        _validate_lease_spec(v, obj)
    elif kind == ("", "Event"):
        validate_object_meta_update(v, meta, old_meta)
        _validate_core_event(v, obj)
    elif kind == ("events.k8s.io", "Event"):
        validate_object_meta_update(v, meta, old_meta)
        _validate_events_v1_event(v, obj)
    elif kind == ("", "ServiceAccount"):
        validate_object_meta_update(v, meta, old_meta)
        validate_object_meta(v, meta, True, name_is_dns_subdomain)
    else:
        validate_object_meta_update(v, meta, old_meta)
    return v.errs


def _internal_error(exc: Exception) -> Errs:
    return [FieldError("Invalid", "", detail=f"internal error: {type(exc).__name__}: {exc}")]


def validate(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
    """Validate ``obj`` for create (``old is None``) or as an update of ``old``.

    Returns the field errors in upstream's order; an empty list means valid.
    The object is expected to be defaulted already.
    """
    try:
        return _validate(resource, obj, old)
    except Exception as exc:  # a validator must never take the server down; the fuzz tests keep this unused
        return _internal_error(exc)


def _validate_replica_status(v: _V, status: Obj, deployment: bool) -> None:
    p = "status"
    names = ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"]
    if deployment:
        v.nonneg(status, "observedGeneration", p, 64)
    else:
        names = ["replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas"]
    for n in names:
        v.nonneg(status, n, p)
    if not deployment:
        v.nonneg(status, "observedGeneration", p, 64)
    if deployment and status.get("collisionCount") is not None:
        v.nonneg(status, "collisionCount", p)

    def num(key: str) -> int:
        x = status.get(key)
        return x if isinstance(x, int) and not isinstance(x, bool) else 0

    msg = "cannot be greater than status.replicas"
    checks = (
        ["updatedReplicas", "readyReplicas", "availableReplicas"]
        if deployment
        else ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"]
    )
    for key in checks:
        if num(key) > num("replicas"):
            v.add(invalid_value(f"status.{key}", num(key), msg))
    if num("availableReplicas") > num("readyReplicas"):
        v.add(
            invalid_value("status.availableReplicas", num("availableReplicas"), "cannot be greater than readyReplicas")
        )


def _validate_status(resource: Resource, obj: Any, old: Any) -> Errs:
    v = _V()
    if not isinstance(obj, dict):
        return [_type_error("", obj, dict)]
    old = old if isinstance(old, dict) else {}
    validate_object_meta_update(v, _meta(v, obj), _meta(_V(), old))
    status = v.get_map(obj, "status", "") or {}
    old_status = _dict_of(old, "status")
    kind = (resource.group, resource.kind)
    if kind in (("apps", "Deployment"), ("apps", "ReplicaSet")):
        _validate_replica_status(v, status, kind[1] == "Deployment")
        if kind[1] == "Deployment":
            new_cc, old_cc = status.get("collisionCount"), old_status.get("collisionCount")
            if isinstance(old_cc, int) and (not isinstance(new_cc, int) or new_cc < old_cc):
                v.add(
                    invalid_value(
                        "status.collisionCount", new_cc if isinstance(new_cc, int) else 0, "cannot be decremented"
                    )
                )
    elif kind == ("", "Namespace"):
        meta = _dict_of(obj, "metadata")
        phase = status.get("phase")
        if not meta.get("deletionTimestamp"):
            if phase != "Active":
                v.add(
                    invalid_value("status.Phase", phase or "", "may only be 'Active' if `deletionTimestamp` is empty")
                )
        elif phase != "Terminating":
            v.add(
                invalid_value(
                    "status.Phase", phase or "", "may only be 'Terminating' if `deletionTimestamp` is not empty"
                )
            )
    elif kind == ("", "Pod"):
        spec = _dict_of(obj, "spec")
        old_spec = _dict_of(old, "spec")
        if (spec.get("nodeName") or "") != (old_spec.get("nodeName") or ""):
            v.add(forbidden("status.nodeName", "may not be changed directly"))
        nnn = v.get_str(status, "nominatedNodeName", "status")
        if nnn and nnn != old_status.get("nominatedNodeName"):
            for msg in name_is_dns_subdomain(nnn, False):
                v.add(invalid_value("status.nominatedNodeName", nnn, msg))
        _immutable(v, status.get("qosClass") or "", old_status.get("qosClass") or "", "status.qosClass")
        for _, pip, ppath in v.items(status, "podIPs", "status"):
            v.extend(_validate_ip(ppath, v.get_str(pip, "ip", ppath)))
    elif kind == ("", "Node"):
        _validate_node_resources(v, obj)
    return v.errs


def validate_status(resource: Resource, obj: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """Validate a write to the ``status`` subresource (metadata update rules plus the kind's status rules)."""
    try:
        return _validate_status(resource, obj, old)
    except Exception as exc:  # see validate()
        return _internal_error(exc)


def validate_scale_replicas(replicas: Any) -> list[FieldError]:
    """Validate ``spec.replicas`` of a ``Scale`` written to the ``scale`` subresource."""
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        return [_type_error("spec.replicas", replicas, int)]
    if not -(2**31) <= replicas < 2**31:
        return [invalid_value("spec.replicas", replicas, "must be of type int32")]
    if replicas < 0:
        return [invalid_value("spec.replicas", replicas, IS_NEGATIVE_MSG)]
    return []
