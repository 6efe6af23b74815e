#!/usr/bin/env python3
"""Goal 4: one change reaches 100 watchers with p99 <= 50 ms.

Opens W concurrent HTTP watch streams (``GET .../namespaces/NS/configmaps?watch=1&resourceVersion=RV``, each
its own HTTPS connection) and makes C changes one at a time, on a fixed schedule (one every ~20 ms), each a
merge PATCH that sets ``data.seq`` of one ConfigMap to the change's number. For every (change, watcher) pair
the latency is from just before the write request is sent to the arrival, on that watcher's connection, of
the data completing the event line. Streams are read by a minimal protocol that only timestamps the bytes
as they arrive (decoding happens after the run), so one watcher's timestamp is not delayed by the
client's work on the others.

Baseline in the same run: the same changes with one watcher (the write + one delivery floor). Also printed:
the time until the last of the W watchers has a change, the write (PATCH) latency itself, and deliveries
that never arrived.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from _common import (
    Cluster,
    RawConn,
    RawStream,
    Reporter,
    Target,
    Workspace,
    base_parser,
    cpu_seconds,
    open_stream,
    percentile,
    run_async,
    run_main,
)

GOAL_P99_MS = 50.0
NS = "bench-watch"
CM = "watch-target"


class Phase:
    def __init__(self, watchers: int) -> None:
        self.watchers = watchers
        self.deliveries: list[float] = []  # seconds, over every (change, watcher)
        self.last_watcher: list[float] = []  # per change: until the last watcher had it
        self.writes: list[float] = []  # PATCH response latency
        self.missing = 0
        self.server_cpu_per_change = 0.0


async def run_phase(c: Cluster, target: Target, watchers: int, changes: int, interval: float, offset: int) -> Phase:
    ph = Phase(watchers)
    writer = await RawConn(target).open()
    path = f"/api/v1/namespaces/{NS}/configmaps/{CM}"
    code, body = await writer.request("GET", path)
    assert code == 200, body
    rv = orjson.loads(body)["metadata"]["resourceVersion"]
    watch_path = f"/api/v1/namespaces/{NS}/configmaps?watch=1&resourceVersion={rv}"
    streams: list[RawStream] = []
    for i in range(0, watchers, 25):
        streams += await asyncio.gather(*(open_stream(target, watch_path) for _ in range(min(25, watchers - i))))
    await asyncio.sleep(0.3)
    sent: dict[int, float] = {}
    pid = c.pid
    cpu0 = cpu_seconds(pid)
    start = time.monotonic() + 0.05
    for i in range(changes):
        seq = offset + i
        due = start + i * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        patch = orjson.dumps({"data": {"seq": str(seq)}})
        t = time.monotonic()
        sent[seq] = t
        code, body = await writer.request("PATCH", path, patch, "application/merge-patch+json")
        ph.writes.append(time.monotonic() - t)
        if code != 200:
            raise RuntimeError(f"PATCH: {code} {body[:200]!r}")
    # Wait (without decoding: that would delay later timestamps) until every stream has the last change.
    marker = f'"seq":"{offset + changes - 1}"'.encode()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(any(marker in d for _, d in s.pieces[-4:]) for s in streams):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    ph.server_cpu_per_change = (cpu_seconds(pid) - cpu0) / changes
    for s in streams:
        s.close()
    writer.close()
    per_change: dict[int, list[float]] = {seq: [] for seq in sent}
    for s in streams:
        got: set[int] = set()
        for t, line in s.lines():
            if not line.strip():
                continue
            ev = orjson.loads(line)
            seq_s = ((ev.get("object") or {}).get("data") or {}).get("seq")
            if ev.get("type") != "MODIFIED" or seq_s is None:
                continue
            seq = int(seq_s)
            if seq in sent and seq not in got:
                got.add(seq)
                dt = t - sent[seq]
                ph.deliveries.append(dt)
                per_change[seq].append(dt)
        ph.missing += len(sent) - len(got)
    ph.last_watcher = [max(v) for v in per_change.values() if len(v) == watchers]
    return ph


async def bench(c: Cluster, watchers: int, changes: int, interval: float, rep: Reporter) -> None:
    target = Target.of(c)
    conn = await RawConn(target).open()
    code, body = await conn.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": NS}}))
    assert code == 201, body
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM, "labels": {"app": "bench"}},
          "data": {"seq": "-1", "payload": "x" * 200}}
    code, body = await conn.request("POST", f"/api/v1/namespaces/{NS}/configmaps", orjson.dumps(cm))
    assert code == 201, body
    conn.close()
    await run_phase(c, target, 1, 20, interval, 100_000)  # warm-up, not reported
    phases = [("1 watcher (baseline)", await run_phase(c, target, 1, changes, interval, 0)),
              (f"{watchers} watchers", await run_phase(c, target, watchers, changes, interval, 10_000))]
    for name, ph in phases:
        baseline = ph.watchers == 1
        kind = "baseline" if baseline else "info"
        d = ph.deliveries
        rep.add(f"{name}: delivery p50", percentile(d, 50) * 1000, "ms", kind=kind)
        rep.add(f"{name}: delivery p99", percentile(d, 99) * 1000, "ms", None if baseline else GOAL_P99_MS,
                kind=kind if baseline else "figure", note=f"({len(d)} deliveries = changes x watchers)")
        rep.add(f"{name}: delivery max", max(d) * 1000 if d else float("nan"), "ms", kind="info")
        if not baseline:
            rep.add(f"{name}: until the last watcher has it, p50", percentile(ph.last_watcher, 50) * 1000, "ms",
                    kind="info")
            rep.add(f"{name}: until the last watcher has it, p99", percentile(ph.last_watcher, 99) * 1000, "ms",
                    kind="info")
        rep.add(f"{name}: missing deliveries", ph.missing, "events", None if baseline else 0, kind="info")
        rep.add(f"{name}: write (PATCH) latency p50", percentile(ph.writes, 50) * 1000, "ms", kind="info",
                note=f"(p99 {percentile(ph.writes, 99) * 1000:.2f} ms)")
        rep.add(f"{name}: server CPU per change", ph.server_cpu_per_change * 1000, "ms", kind="info")


def main() -> int:
    ap = base_parser(__doc__ or "")
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.020, help="seconds between changes")
    a = ap.parse_args()
    watchers = 10 if a.quick else a.watchers
    changes = 20 if a.quick else a.changes
    rep = Reporter("4", f"one change reaches {watchers} watchers", a.quick)
    rep.header()
    rep.info(f"{changes} changes, one every {a.interval * 1000:.0f} ms; {watchers} watch streams, one HTTPS connection each")
    with Workspace(a.keep) as ws:
        c = ws.new_cluster("watch")
        c.up()
        run_async(bench(c, watchers, changes, a.interval, rep))
        c.down(purge=True)
    rep.footer()
    rep.write_json(a.json_out)
    return 0


if __name__ == "__main__":
    run_main(main)
