"""Go's duration and quoting formats, as upstream's messages print them."""

from __future__ import annotations

from tinykube.api import gofmt


def test_duration_ns() -> None:
    cases = {0: "0s", 1: "1ns", 1500: "1.5µs", 1_500_000: "1.5ms", 1_000_000_000: "1s", 90_000_000_000: "1m30s",
             3_600_000_000_000: "1h0m0s", 3_723_500_000_000: "1h2m3.5s", -2_000_000_000: "-2s",
             10_000_000: "10ms", 100_000_000_001: "1m40.000000001s"}
    for ns, text in cases.items():
        assert gofmt.duration_ns(ns) == text


def test_duration_seconds() -> None:
    assert [gofmt.duration(s) for s in (1, 0.05, 1.5, 90, 3600, 0.0015, 300)] == \
        ["1s", "50ms", "1.5s", "1m30s", "1h0m0s", "1.5ms", "5m0s"]


def test_quote() -> None:
    assert gofmt.quote('say "hi"\n') == '"say \\"hi\\"\\n"'
    assert gofmt.quote("tab\there\x00\u2028é") == '"tab\\there\\x00\\u2028é"'
