"""Text the way Go's standard library formats it, for messages that must read as upstream's do.

``duration`` is ``time.Duration.String`` (``1h2m3.5s``, ``1.5ms``, ``0s``) — used for protobuf Durations,
back-off and probe messages; ``quote`` is ``%q`` / ``strconv.Quote`` — used in probe errors and in the
downward API's labels and annotations files.
"""

from __future__ import annotations

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            "\\": "\\\\", '"': '\\"'}


def _frac(value: int, unit: int) -> str:
    """``value / unit`` as Go prints it: integer part, then the fraction without trailing zeros."""
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def duration_ns(ns: int) -> str:
    """Nanoseconds as Go's ``time.Duration.String`` prints them."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_frac(u, 1000)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_frac(u, 1_000_000)}ms"
    secs, sub = divmod(u, 1_000_000_000)
    hours, rem = divmod(secs, 3600)
    minutes, seconds = divmod(rem, 60)
    text = _frac(seconds * 1_000_000_000 + sub, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def duration(seconds: float) -> str:
    """Seconds as Go's ``time.Duration.String`` prints them."""
    return duration_ns(round(seconds * 1e9))


def quote(text: str) -> str:
    """``text`` as Go's ``%q`` writes it (Python's printable set is Go's ``IsPrint``)."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)
