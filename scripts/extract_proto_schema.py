#!/usr/bin/env python3
"""Extract the Kubernetes protobuf wire schema from a kubectl binary into ``protoschema.json``.

Why
---
kubectl's typed clients (``kubectl create deployment|configmap|secret|...``,
``kubectl autoscale``) send request bodies as ``application/vnd.kubernetes.protobuf``.
To decode them, :mod:`tinykube.api.protobuf` needs, for every message, the
number, name and type of each field. Rather than hand-writing that table, we
take it from the one place that is guaranteed to agree with the client: the
client itself. Every Go package generated from a Kubernetes ``generated.proto``
registers its ``FileDescriptorProto`` (gzip-compressed) in the binary, so a
kubectl v1.32 binary carries the exact v1.32 schema.

How
---
1. Scan the binary for gzip member headers (``1f 8b 08 00 00 00 00 00``) and
   inflate each candidate; a descriptor starts with field 1 (the file name,
   e.g. ``k8s.io/api/apps/v1/generated.proto``).
2. Parse the wanted descriptors with a tiny protobuf wire reader (no
   ``google.protobuf`` needed): messages (recursively, with nested types),
   fields, map-entry markers and the gogoproto ``nullable`` field option.
3. Write ``src/tinykube/api/protoschema.json`` (compact, no indentation)::

       {"messages": {"<full.message.Name>": {"<number>": [jsonName, kind, typeRef, repeated, omitZero]}},
        "types": {"<apiVersion>/<Kind>": "<full.message.Name>"}}

   * ``kind`` is a protobuf scalar type name (``string``, ``bytes``, ``bool``,
     ``int32``, ``int64``, ``uint32``, ``double``, ...), ``message`` (``typeRef``
     is the message's full name, without the leading dot) or ``map`` (``typeRef``
     is ``[keyKind, valueKind, valueTypeRef-or-null]``; protobuf encodes a map as
     repeated ``XxxEntry`` messages with key = 1 and value = 2). ``typeRef`` is
     ``null`` for scalars; ``repeated`` is 0 or 1 (always 0 for maps).
   * ``jsonName`` is the proto field name: Kubernetes' generator names proto
     fields after their JSON names.
   * ``omitZero`` is 1 when a zero value on the wire must be dropped to match
     the JSON form. gogoproto writes every non-pointer Go field
     (``nullable=false``), even when it is zero (``generateName: ""``,
     ``minReadySeconds: 0``), while Go's JSON encoder drops zero values of
     ``omitempty`` fields. So a scalar field gets ``omitZero`` when it is a Go
     value (``nullable=false``, or ``bytes``) and is not listed as required in
     the official v1.32 OpenAPI schema (required fields are exactly the ones
     without ``omitempty``/``+optional``). Pointer fields (``replicas``) keep
     their zero: present on the wire means present in the object.
   * ``types`` lists every top-level kind: messages whose field 1 is
     ``metadata`` of type ``ObjectMeta`` or ``ListMeta`` (minus embedded ones
     such as ``PodTemplateSpec``, which the OpenAPI schema defines without a
     group-version-kind), plus ``DeleteOptions``.
     The key is ``apiVersion + "/" + kind`` (``v1/Pod``, ``apps/v1/Deployment``);
     meta/v1 kinds are listed under ``meta.k8s.io/v1``.

Run it again (``python scripts/extract_proto_schema.py [path/to/kubectl]``)
after moving to a new Kubernetes minor version; the output is committed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import zlib
from pathlib import Path
from typing import Any

GZIP_MAGIC = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"

# descriptor file -> apiVersion its top-level kinds belong to
FILES: dict[str, str] = {
    "k8s.io/api/core/v1/generated.proto": "v1",
    "k8s.io/api/apps/v1/generated.proto": "apps/v1",
    "k8s.io/api/autoscaling/v1/generated.proto": "autoscaling/v1",
    "k8s.io/api/coordination/v1/generated.proto": "coordination.k8s.io/v1",
    "k8s.io/api/discovery/v1/generated.proto": "discovery.k8s.io/v1",
    "k8s.io/api/events/v1/generated.proto": "events.k8s.io/v1",
    "k8s.io/api/policy/v1/generated.proto": "policy/v1",
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto": "meta.k8s.io/v1",
    "k8s.io/apimachinery/pkg/api/resource/generated.proto": "",
    "k8s.io/apimachinery/pkg/runtime/generated.proto": "",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto": "",
    "k8s.io/apimachinery/pkg/runtime/schema/generated.proto": "",
}
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
EXTRA_KINDS = {META + "DeleteOptions": "meta.k8s.io/v1/DeleteOptions"}

# FieldDescriptorProto.Type -> our kind name
SCALARS = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32", 8: "bool",
           9: "string", 12: "bytes", 13: "uint32", 14: "enum", 15: "sfixed32", 16: "sfixed64", 17: "sint32",
           18: "sint64"}
TYPE_MESSAGE = 11
LABEL_REPEATED = 3
GOGO_NULLABLE = 65001


# --- a minimal protobuf wire reader ---------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """All (field number, value) pairs of one message: ints for varint/fixed, bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        out.append((number, value))
    return out


def _str(v: int | bytes) -> str:
    assert isinstance(v, bytes)
    return v.decode()


# --- descriptor extraction -------------------------------------------------------------------------

def find_descriptors(binary: bytes) -> dict[str, bytes]:
    """Every gzip-compressed FileDescriptorProto in the binary, by file name."""
    found: dict[str, bytes] = {}
    i = binary.find(GZIP_MAGIC)
    while i != -1:
        try:
            raw = zlib.decompressobj(31).decompress(binary[i:i + (8 << 20)])
            if raw[:1] == b"\x0a":
                n, p = _varint(raw, 1)
                name = raw[p:p + n].decode()
                if name.endswith(".proto"):
                    found.setdefault(name, raw)
        except (zlib.error, ValueError, UnicodeDecodeError):
            pass
        i = binary.find(GZIP_MAGIC, i + 1)
    return found


class Field:
    def __init__(self, desc: bytes) -> None:
        self.name = ""
        self.number = 0
        self.repeated = False
        self.type = 0
        self.type_name = ""
        self.nullable = True
        for num, v in fields(desc):
            if num == 1:
                self.name = _str(v)
            elif num == 3:
                assert isinstance(v, int)
                self.number = v
            elif num == 4:
                self.repeated = v == LABEL_REPEATED
            elif num == 5:
                assert isinstance(v, int)
                self.type = v
            elif num == 6:
                self.type_name = _str(v).lstrip(".")
            elif num == 8:
                assert isinstance(v, bytes)
                for onum, ov in fields(v):
                    if onum == GOGO_NULLABLE:
                        self.nullable = bool(ov)


def parse_messages(prefix: str, descs: list[bytes], out: dict[str, tuple[list[Field], bool]]) -> None:
    """Collect messages (and their nested types) as full name -> (fields, is_map_entry)."""
    for d in descs:
        name = ""
        flds: list[Field] = []
        nested: list[bytes] = []
        map_entry = False
        for num, v in fields(d):
            if num == 1:
                name = _str(v)
            elif num == 2:
                assert isinstance(v, bytes)
                flds.append(Field(v))
            elif num == 3:
                assert isinstance(v, bytes)
                nested.append(v)
            elif num == 7:
                assert isinstance(v, bytes)
                map_entry = any(onum == 7 and ov == 1 for onum, ov in fields(v))
        full = f"{prefix}.{name}"
        out[full] = (flds, map_entry)
        parse_messages(full, nested, out)


def parse_file(raw: bytes, out: dict[str, tuple[list[Field], bool]]) -> list[str]:
    """Add the file's messages to ``out``; return the full names of its top-level messages."""
    package = ""
    top: list[bytes] = []
    for num, v in fields(raw):
        if num == 2:
            package = _str(v)
        elif num == 4:
            assert isinstance(v, bytes)
            top.append(v)
    parse_messages(package, top, out)
    names = []
    for d in top:
        for num, v in fields(d):
            if num == 1:
                names.append(f"{package}.{_str(v)}")
    return names


def _definition_name(message: str) -> str:
    """OpenAPI definition name of a proto message: k8s.io.api.apps.v1.Deployment -> io.k8s.api.apps.v1.Deployment."""
    return "io.k8s." + message.removeprefix("k8s.io.")


def _required(openapi: dict[str, Any], message: str) -> set[str]:
    """JSON fields the official OpenAPI schema marks required for the message's definition."""
    definition = openapi.get(_definition_name(message), {})
    return set(definition.get("required", []))


def build(descriptors: dict[str, bytes], openapi: dict[str, Any]) -> dict[str, Any]:
    messages: dict[str, tuple[list[Field], bool]] = {}
    kinds: dict[str, str] = {}
    for fname, api_version in FILES.items():
        if fname not in descriptors:
            raise SystemExit(f"descriptor {fname} not found in the binary")
        tops = parse_file(descriptors[fname], messages)
        for full in tops if api_version else []:
            flds = messages[full][0]
            first = next((f for f in flds if f.number == 1), None)
            if not first or first.name != "metadata" or first.type_name not in (META + "ObjectMeta", META + "ListMeta"):
                continue
            definition = openapi.get(_definition_name(full))
            if definition is not None and "x-kubernetes-group-version-kind" not in definition:
                continue  # embedded with metadata but not a kind of its own (PodTemplateSpec)
            kinds[f"{api_version}/{full.rsplit('.', 1)[1]}"] = full
    for full, type_key in EXTRA_KINDS.items():
        kinds[type_key] = full

    table: dict[str, dict[str, list[Any]]] = {}
    for full, (flds, map_entry) in messages.items():
        if map_entry:
            continue
        required = _required(openapi, full)
        entry: dict[str, list[Any]] = {}
        for f in flds:
            if f.type == TYPE_MESSAGE:
                target = messages.get(f.type_name)
                if target is None:
                    raise SystemExit(f"{full}.{f.name}: unknown message type {f.type_name}")
                if target[1]:  # map<K, V>
                    kv = {x.number: x for x in target[0]}
                    key, val = kv[1], kv[2]
                    if key.type not in SCALARS:
                        raise SystemExit(f"{full}.{f.name}: unsupported map key type")
                    vkind = "message" if val.type == TYPE_MESSAGE else SCALARS[val.type]
                    entry[str(f.number)] = [f.name, "map", [SCALARS[key.type], vkind, val.type_name or None], 0, 0]
                else:
                    entry[str(f.number)] = [f.name, "message", f.type_name, int(f.repeated), 0]
            elif f.type in SCALARS:
                kind = SCALARS[f.type]
                go_value = not f.nullable or kind == "bytes"
                omit = int(go_value and not f.repeated and f.name not in required)
                entry[str(f.number)] = [f.name, kind, None, int(f.repeated), omit]
            else:
                raise SystemExit(f"{full}.{f.name}: unsupported field type {f.type}")
        table[full] = entry
    return {"messages": table, "types": dict(sorted(kinds.items()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("kubectl", nargs="?", default=shutil.which("kubectl"), help="kubectl binary (default: on PATH)")
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parent.parent / "src" / "tinykube" / "api" / "protoschema.json")
    args = ap.parse_args(argv)
    if not args.kubectl:
        ap.error("kubectl not found on PATH; pass its path")
    binary = Path(args.kubectl).resolve().read_bytes()
    descriptors = find_descriptors(binary)

    from tinykube.api import schema  # the official v1.32 OpenAPI definitions (for required fields)

    doc = build(descriptors, schema.definitions())
    data = json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()
    args.output.write_bytes(data + b"\n")
    print(f"{args.output}: {len(doc['messages'])} messages, {len(doc['types'])} kinds, {len(data)} bytes",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
