"""Small helpers on object metadata shared by the API server and components: timestamps and generated names."""

from __future__ import annotations

import functools
import os
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Kubernetes' "safe" alphabet (no vowels, no 0/1/3 that read as letters): generated names and template hashes.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


_last_second: list[Any] = [None, ""]


def now_rfc3339(t: float | None = None) -> str:
    """An RFC 3339 ``Time`` (second precision, UTC) for epoch seconds ``t`` (now by default)."""
    sec = int(t if t is not None else time.time())
    if _last_second[0] == sec:  # formatted once per second: every write stamps the current time
        return str(_last_second[1])
    s = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _last_second[0], _last_second[1] = sec, s
    return s


def now_micro(t: float | None = None) -> str:
    """An RFC 3339 ``MicroTime`` (microsecond precision, UTC), as Leases and events.k8s.io use."""
    return datetime.fromtimestamp(t if t is not None else time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(ts: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp (``Time`` or ``MicroTime``); None when unset, zero or unparsable."""
    if not isinstance(ts, str) or not ts:
        return None
    return _parse_timestamp(ts)


@functools.lru_cache(maxsize=4096)
def _parse_timestamp(ts: str) -> float | None:
    """Cached: timestamps have second resolution, so thousands of pods share a few dozen of them."""
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    if parsed.year == 1 and parsed.month == 1 and parsed.day == 1 and parsed.hour == 0 and parsed.minute == 0:
        return None  # Go's zero time ("0001-01-01T00:00:00Z") means "unset"
    return parsed.timestamp()


def random_suffix(n: int = 5) -> str:
    """``n`` random characters of the safe alphabet (what generateName appends)."""
    return "".join(secrets.choice(NAME_ALPHABET) for _ in range(n))


def new_uid() -> str:
    """A random (version 4) UUID in its text form; ``str(uuid.uuid4())`` without the object in between."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's ``metadata`` (empty when absent), typed for readers of API JSON."""
    md: Mapping[str, Any] = obj.get("metadata") or {}
    return md


def spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's ``spec`` (empty when absent)."""
    spec: Mapping[str, Any] = obj.get("spec") or {}
    return spec
