"""Decoding of Kubernetes protobuf request bodies into JSON-shaped objects.

kubectl's typed clients (``kubectl create deployment|configmap|secret|namespace|
service|serviceaccount|quota|pdb``, ``kubectl autoscale``...) send bodies as
``application/vnd.kubernetes.protobuf``. The rest of tinykube works on the JSON
form of objects, so :func:`decode` turns such a body into exactly the dict the
JSON form of the same request would give; responses stay JSON (kubectl accepts
both).

Wire format
-----------
A body is the 4-byte magic ``k8s\\x00`` followed by a ``runtime.Unknown``
envelope: ``typeMeta`` (1: apiVersion = 1, kind = 2), ``raw`` (2: the encoded
object), ``contentEncoding`` (3) and ``contentType`` (4). ``raw`` is the
protobuf message of the kind's Go type, e.g. ``k8s.io.api.apps.v1.Deployment``.

Schema
------
Field numbers, names and types come from ``protoschema.json``, extracted from
the descriptors embedded in kubectl v1.32 itself by
``scripts/extract_proto_schema.py`` (see there for the table format). Proto
field names are the JSON names. The table is compiled once, on first use, into
:class:`_Message` objects whose fields are plain tuples, so the decoding loop
does one dict lookup per field.

JSON representation
-------------------
* Types with a custom JSON form are decoded by hand: ``IntOrString`` -> int or
  str, ``Quantity`` -> str, ``Time`` -> RFC 3339 (seconds) or ``None`` when
  zero (empty), ``MicroTime`` -> RFC 3339 with microseconds, ``Duration`` ->
  Go duration string (``1h2m3s``), ``RawExtension`` / ``FieldsV1`` -> the
  embedded JSON, ``Verbs`` -> list.
* ``bytes`` -> base64 (Secret ``data``, ConfigMap ``binaryData``), maps ->
  dicts, repeated fields -> lists, 64-bit ints -> ``int``.
* Presence follows Go: a pointer field present on the wire is kept even when
  zero (``replicas: 0``) and absent fields stay absent. Non-pointer fields are
  always on the wire (gogoproto writes them even when zero), so a zero value
  of an ``omitempty`` field is dropped (the table's ``omitZero`` flag), just
  as Go's JSON encoder drops it. Nested structs that are present appear, even
  empty (``strategy: {}``, ``resources: {}``).

Malformed input (bad magic, truncation, wrong wire types, unknown kinds,
nesting too deep) raises :func:`tinykube.api.errors.bad_request`, never any
other exception. Unknown field numbers are skipped, as protobuf requires.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import struct
from collections.abc import Callable
from importlib import resources as _ilr
from typing import Any

import orjson

from tinykube.api.errors import ApiError, bad_request

from . import gofmt

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_MAX_DEPTH = 100
_MASK64 = (1 << 64) - 1

# Field codes: how the value of a field is read and converted.
_STRING, _BYTES, _BOOL, _INT32, _INT64, _UINT32, _UINT64, _SINT32, _SINT64 = range(9)
_FIXED32, _FIXED64, _SFIXED32, _SFIXED64, _FLOAT, _DOUBLE, _MESSAGE, _MAP, _SPECIAL = range(9, 18)

_SCALARS: dict[str, tuple[int, int]] = {  # kind -> (code, wire type)
    "string": (_STRING, 2),
    "bytes": (_BYTES, 2),
    "bool": (_BOOL, 0),
    "int32": (_INT32, 0),
    "int64": (_INT64, 0),
    "enum": (_INT32, 0),
    "uint32": (_UINT32, 0),
    "uint64": (_UINT64, 0),
    "sint32": (_SINT32, 0),
    "sint64": (_SINT64, 0),
    "fixed32": (_FIXED32, 5),
    "fixed64": (_FIXED64, 1),
    "sfixed32": (_SFIXED32, 5),
    "sfixed64": (_SFIXED64, 1),
    "float": (_FLOAT, 5),
    "double": (_DOUBLE, 1),
}
_ZERO: dict[int, Any] = {_STRING: "", _BYTES: "", _BOOL: False, _FLOAT: 0.0, _DOUBLE: 0.0}

# A compiled field: (json name, code, wire type, sub, repeated, omit zero). ``sub`` is the _Message of a
# message field, the decoder of a special type, or (key field, value field) of a map.
_Field = tuple[str, int, int, Any, bool, bool]
_Special = Callable[[bytes, int, int, int], Any]


class _Message:
    __slots__ = ("fields", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[int, _Field] = {}


def _malformed(why: str) -> ApiError:
    return bad_request(f"unable to decode protobuf body: {why}")


# --- wire primitives ---------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while pos < end:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise _malformed("varint longer than 10 bytes")
    raise _malformed("truncated varint")


def _length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a length prefix; return (start, stop) of the delimited bytes."""
    n, pos = _varint(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise _malformed("length-delimited field runs past the end of its message")
    return pos, stop


def _skip(buf: bytes, pos: int, end: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos, end)[1]
    if wire == 2:
        return _length(buf, pos, end)[1]
    if wire == 1 or wire == 5:
        pos += 8 if wire == 1 else 4
        if pos > end:
            raise _malformed("truncated fixed-size field")
        return pos
    raise _malformed(f"unsupported wire type {wire}")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _convert_varint(code: int, v: int) -> Any:
    if code == _INT64:
        return _signed64(v)
    if code == _INT32:
        return _signed32(v)
    if code == _BOOL:
        return v != 0
    if code == _UINT32:
        return v & 0xFFFFFFFF
    if code == _UINT64:
        return v
    if code == _SINT32 or code == _SINT64:
        return (v >> 1) ^ -(v & 1)
    raise _malformed("varint for a non-integer field")  # pragma: no cover - guarded by the wire check


_FIXED_FORMATS = {_FIXED32: "<I", _FIXED64: "<Q", _SFIXED32: "<i", _SFIXED64: "<q", _FLOAT: "<f", _DOUBLE: "<d"}


def _read_fixed(buf: bytes, pos: int, end: int, code: int, wire: int) -> tuple[Any, int]:
    stop = pos + (8 if wire == 1 else 4)
    if stop > end:
        raise _malformed("truncated fixed-size field")
    return struct.unpack_from(_FIXED_FORMATS[code], buf, pos)[0], stop


# --- values ---------------------------------------------------------------------------------------


def _value(buf: bytes, pos: int, end: int, wire: int, f: _Field, depth: int) -> tuple[Any, int]:
    """Read one value of field ``f`` (whose wire type was already checked); return (value, next position)."""
    code = f[1]
    if wire == 2:
        start, stop = _length(buf, pos, end)
        if code == _STRING:
            return buf[start:stop].decode("utf-8", "replace"), stop
        if code == _MESSAGE:
            return _message(buf, start, stop, f[3], depth + 1), stop
        if code == _SPECIAL:
            return f[3](buf, start, stop, depth + 1), stop
        if code == _BYTES:
            return base64.b64encode(buf[start:stop]).decode("ascii"), stop
        raise _malformed(f"length-delimited value for field {f[0]!r}")  # pragma: no cover
    if wire == 0:
        v, pos = _varint(buf, pos, end)
        return _convert_varint(code, v), pos
    return _read_fixed(buf, pos, end, code, wire)


def _map_entry(buf: bytes, pos: int, end: int, kv: tuple[_Field, _Field], depth: int) -> tuple[Any, Any]:
    kf, vf = kv
    key: Any = None
    val: Any = None
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        num, wire = tag >> 3, tag & 7
        f = kf if num == 1 else vf if num == 2 else None
        if f is None:
            pos = _skip(buf, pos, end, wire)
            continue
        if wire != f[2]:
            raise _malformed(f"wrong wire type {wire} for map {'key' if num == 1 else 'value'}")
        v, pos = _value(buf, pos, end, wire, f, depth)
        if num == 1:
            key = v
        else:
            val = v
    if key is None:
        key = _ZERO.get(kf[1], 0)
    if val is None:
        if vf[1] == _MESSAGE:
            val = {}
        elif vf[1] == _SPECIAL:
            val = vf[3](buf, end, end, depth + 1)
        else:
            val = _ZERO.get(vf[1], 0)
    return key, val


def _message(buf: bytes, pos: int, end: int, msg: _Message, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise _malformed("objects nested too deeply")
    out: dict[str, Any] = {}
    fields = msg.fields
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        num = tag >> 3
        wire = tag & 7
        f = fields.get(num)
        if f is None:
            if num == 0:
                raise _malformed(f"field number 0 in {msg.name}")
            pos = _skip(buf, pos, end, wire)
            continue
        name, code, fwire, sub, repeated, omit = f
        if wire != fwire:
            if wire == 2 and repeated and fwire != 2:  # packed repeated scalars
                start, stop = _length(buf, pos, end)
                lst = out.setdefault(name, [])
                while start < stop:
                    v, start = _value(buf, start, stop, fwire, f, depth)
                    lst.append(v)
                pos = stop
                continue
            raise _malformed(f"wrong wire type {wire} for field {name!r} of {msg.name}")
        if code == _MAP:
            start, stop = _length(buf, pos, end)
            k, v = _map_entry(buf, start, stop, sub, depth + 1)
            out.setdefault(name, {})[k] = v
            pos = stop
            continue
        value, pos = _value(buf, pos, end, wire, f, depth)
        if repeated:
            out.setdefault(name, []).append(value)
        elif omit and not value:
            out.pop(name, None)
        else:
            out[name] = value
    return out


# --- types with a custom JSON form ----------------------------------------------------------------


def _raw_fields(buf: bytes, pos: int, end: int) -> dict[int, int | bytes]:
    """The fields of a small message by number (last one wins): ints for varint/fixed, bytes for delimited."""
    out: dict[int, int | bytes] = {}
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            out[num], pos = _varint(buf, pos, end)
        elif wire == 2:
            start, pos = _length(buf, pos, end)
            out[num] = buf[start:pos]
        else:
            start = pos
            pos = _skip(buf, pos, end, wire)
            out[num] = int.from_bytes(buf[start:pos], "little")
    return out


def _int_field(fields: dict[int, int | bytes], num: int, what: str) -> int:
    v = fields.get(num, 0)
    if not isinstance(v, int):
        raise _malformed(f"wrong wire type for {what}")
    return v


def _bytes_field(fields: dict[int, int | bytes], num: int, what: str) -> bytes:
    v = fields.get(num, b"")
    if not isinstance(v, bytes):
        raise _malformed(f"wrong wire type for {what}")
    return v


_EPOCH = _dt.datetime(1970, 1, 1)


def _timestamp(seconds: int, micros: int | None) -> str:
    try:
        t = _EPOCH + _dt.timedelta(seconds=seconds, microseconds=micros or 0)
    except OverflowError:
        raise _malformed(f"time out of range ({seconds}s)") from None
    s = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{s}.{t.microsecond:06d}Z" if micros is not None else s + "Z"


def _time(buf: bytes, pos: int, end: int, depth: int) -> str | None:
    """``meta/v1 Time``: empty means the zero time (JSON null); nanoseconds are dropped, as upstream does."""
    if pos == end:
        return None
    f = _raw_fields(buf, pos, end)
    return _timestamp(_signed64(_int_field(f, 1, "Time.seconds")), None)


def _micro_time(buf: bytes, pos: int, end: int, depth: int) -> str | None:
    """``meta/v1 MicroTime``: like Time, with microseconds (``2026-11-23T10:00:00.000000Z``)."""
    if pos == end:
        return None
    f = _raw_fields(buf, pos, end)
    seconds = _signed64(_int_field(f, 1, "MicroTime.seconds"))
    nanos = _signed32(_int_field(f, 2, "MicroTime.nanos"))
    extra, nanos = divmod(nanos, 1_000_000_000)
    return _timestamp(seconds + extra, nanos // 1000)


def _duration(buf: bytes, pos: int, end: int, depth: int) -> str:
    return gofmt.duration_ns(_signed64(_int_field(_raw_fields(buf, pos, end), 1, "Duration.duration")))


def _int_or_string(buf: bytes, pos: int, end: int, depth: int) -> int | str:
    f = _raw_fields(buf, pos, end)
    if _int_field(f, 1, "IntOrString.type") == 1:
        return _bytes_field(f, 3, "IntOrString.strVal").decode("utf-8", "replace")
    return _signed32(_int_field(f, 2, "IntOrString.intVal"))


def _quantity(buf: bytes, pos: int, end: int, depth: int) -> str:
    f = _raw_fields(buf, pos, end)
    if 1 not in f:
        return "0"  # the zero Quantity
    return _bytes_field(f, 1, "Quantity.string").decode("utf-8", "replace")


def _embedded_json(raw: bytes, what: str, depth: int) -> Any:
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return _unknown(raw, len(MAGIC), len(raw), depth + 1)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _malformed(f"{what} does not hold JSON") from None


def _raw_extension(buf: bytes, pos: int, end: int, depth: int) -> Any:
    return _embedded_json(_bytes_field(_raw_fields(buf, pos, end), 1, "RawExtension.raw"), "RawExtension", depth)


def _fields_v1(buf: bytes, pos: int, end: int, depth: int) -> Any:
    return _embedded_json(_bytes_field(_raw_fields(buf, pos, end), 1, "FieldsV1.Raw"), "FieldsV1", depth)


def _verbs(buf: bytes, pos: int, end: int, depth: int) -> list[str]:
    out: list[str] = []
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        if tag >> 3 == 1 and tag & 7 == 2:
            start, pos = _length(buf, pos, end)
            out.append(buf[start:pos].decode("utf-8", "replace"))
        else:
            pos = _skip(buf, pos, end, tag & 7)
    return out


_SPECIALS: dict[str, _Special] = {
    _META + "Time": _time,
    _META + "MicroTime": _micro_time,
    _META + "Duration": _duration,
    _META + "FieldsV1": _fields_v1,
    _META + "Verbs": _verbs,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _quantity,
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": _quantity,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _raw_extension,
}


# --- the schema table -----------------------------------------------------------------------------


@functools.cache
def schema_table() -> dict[str, Any]:
    """The raw table of ``protoschema.json`` (``messages`` and ``types``)."""
    data: dict[str, Any] = orjson.loads((_ilr.files("tinykube.api") / "protoschema.json").read_bytes())
    return data


def _compile_field(name: str, kind: str, ref: Any, repeated: bool, omit: bool, messages: dict[str, _Message]) -> _Field:
    if kind == "message":
        special = _SPECIALS.get(ref)
        if special is not None:
            return (name, _SPECIAL, 2, special, repeated, False)
        return (name, _MESSAGE, 2, messages[ref], repeated, False)
    if kind == "map":
        key_kind, value_kind, value_ref = ref
        kv = (
            _compile_field("key", key_kind, None, False, False, messages),
            _compile_field("value", value_kind, value_ref, False, False, messages),
        )
        return (name, _MAP, 2, kv, False, False)
    code, wire = _SCALARS[kind]
    return (name, code, wire, None, repeated, omit)


@functools.cache
def _compiled() -> tuple[dict[str, _Message], dict[str, str]]:
    table = schema_table()
    messages = {name: _Message(name) for name in table["messages"]}
    for name, flds in table["messages"].items():
        msg = messages[name]
        for num, (fname, kind, ref, repeated, omit) in flds.items():
            msg.fields[int(num)] = _compile_field(fname, kind, ref, bool(repeated), bool(omit), messages)
    return messages, table["types"]


def message_for(api_version: str, kind: str) -> str | None:
    """Full protobuf message name of a kind (``apps/v1``, ``Deployment`` -> ``k8s.io.api.apps.v1.Deployment``)."""
    types = _compiled()[1]
    return types.get(f"{api_version}/{kind}") or types.get(f"meta.k8s.io/v1/{kind}")


# --- public API -----------------------------------------------------------------------------------


def is_protobuf(content_type: str) -> bool:
    """Whether a Content-Type names the Kubernetes protobuf encoding (parameters ignored)."""
    return content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE


def _unknown(buf: bytes, pos: int, end: int, depth: int) -> dict[str, Any]:
    """Decode a ``runtime.Unknown`` envelope (after the magic) and the object it carries."""
    if depth > _MAX_DEPTH:
        raise _malformed("objects nested too deeply")
    env = _raw_fields(buf, pos, end)
    tm = _raw_fields(*_whole(_bytes_field(env, 1, "Unknown.typeMeta")))
    api_version = _bytes_field(tm, 1, "TypeMeta.apiVersion").decode("utf-8", "replace")
    kind = _bytes_field(tm, 2, "TypeMeta.kind").decode("utf-8", "replace")
    raw = _bytes_field(env, 2, "Unknown.raw")
    encoding = _bytes_field(env, 3, "Unknown.contentEncoding")
    content_type = _bytes_field(env, 4, "Unknown.contentType").decode("utf-8", "replace")
    if encoding:
        raise _malformed(f"unsupported contentEncoding {encoding.decode('utf-8', 'replace')!r}")
    if not kind or not api_version:
        raise _malformed("the object has no apiVersion or kind")
    if content_type and not is_protobuf(content_type):
        if "json" not in content_type:
            raise _malformed(f"unsupported embedded contentType {content_type!r}")
        obj = _embedded_json(raw, "the embedded object", depth)
        if not isinstance(obj, dict):
            raise _malformed("the embedded JSON is not an object")
        return {"apiVersion": api_version, "kind": kind, **obj}
    name = message_for(api_version, kind)
    if name is None:
        raise bad_request(f'no kind "{kind}" is registered for version "{api_version}" in the protobuf schema')
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    out.update(_message(raw, 0, len(raw), _compiled()[0][name], depth + 1))
    return out


def _whole(b: bytes) -> tuple[bytes, int, int]:
    return b, 0, len(b)


def decode(body: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode a ``application/vnd.kubernetes.protobuf`` body into the object's JSON form (a dict).

    Raises the ``400 BadRequest`` :class:`~tinykube.api.errors.ApiError` for anything malformed.
    """
    buf = bytes(body)
    if not buf.startswith(MAGIC):
        raise _malformed("the body does not start with the Kubernetes protobuf prefix 'k8s\\x00'")
    try:
        return _unknown(buf, len(MAGIC), len(buf), 0)
    except RecursionError:
        raise _malformed("objects nested too deeply") from None
