#!/usr/bin/env python3
"""Goal 2: single-object GET and PATCH p99 <= 10 ms at 500 req/s (Kubernetes' SLO is 1 s).

An open-loop load generator: request i is due at ``start + i / rate`` whatever happened to the earlier
ones, and its latency is measured from that scheduled time to the end of the response, so queueing
(in the client's connection pool or in the server) counts. Requests go over a few keep-alive HTTPS
connections (httpx on uvloop). PATCH is a JSON merge patch of one ConfigMap's ``data`` (a new value each
time, so every PATCH is a real write). The baseline, measured in the same run with the same client, is
``GET /healthz``: no store work, so its figures are the client + TLS + HTTP floor.

Besides latency percentiles it prints the achieved rate, errors, how late the client itself dispatched
requests (client lag: if that is high, the load generator is the bottleneck, not the server) and the
server's CPU per request (from /proc/PID/stat).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from _common import (
    Cluster,
    LoadResult,
    RawPool,
    Reporter,
    Target,
    Workspace,
    base_parser,
    cpu_seconds,
    percentile,
    run_async,
    run_main,
)

GOAL_P99_MS = 10.0
NS = "bench"
CM = "latency-target"


async def open_loop(send: Callable[[int], Awaitable[int]], rate: float, duration: float) -> LoadResult:
    """Fire ``send(i)`` at a fixed rate for duration seconds; latency counted from each scheduled time."""
    n = max(1, int(rate * duration))
    res = LoadResult()
    start = time.monotonic() + 0.01
    res.first_sched = start
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        res.lags.append(time.monotonic() - due)
        try:
            code = await send(i)
        except Exception:
            code = 0
        done = time.monotonic()
        res.statuses[code] = res.statuses.get(code, 0) + 1
        if 200 <= code < 300:
            res.latencies.append(done - due)
            res.samples.append((due, done - due))
        else:
            res.errors += 1
        res.last_done = max(res.last_done, done)

    for i in range(n):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.create_task(one(i, due))
        pending.add(t)
        t.add_done_callback(pending.discard)
    while pending:
        await asyncio.gather(*list(pending))
    return res


async def watch_db_writes(db: Path, out: list[float]) -> None:
    """Record when the SQLite main file changes: in WAL mode only a checkpoint writes to it."""
    last = None
    while True:
        try:
            st = db.stat()
            cur = (st.st_mtime_ns, st.st_size)
        except OSError:
            cur = None
        if last is not None and cur != last:
            out.append(time.monotonic())
        last = cur
        await asyncio.sleep(0.005)


def stall_episodes(samples: list[tuple[float, float]], over: float) -> list[tuple[float, float, float]]:
    """Group requests slower than ``over`` into episodes: (start, end, worst latency), 100 ms apart at least."""
    slow = sorted((due, lat) for due, lat in samples if lat > over)
    eps: list[tuple[float, float, float]] = []
    for due, lat in slow:
        if eps and due - eps[-1][1] < 0.1:
            a, b, w = eps[-1]
            eps[-1] = (a, max(b, due + lat), max(w, lat))
        else:
            eps.append((due, due + lat, lat))
    return eps


class Client:
    """The load generator's transport: the raw HTTP/1.1 pool (default) or httpx, for comparison."""

    def __init__(self, c: Cluster, kind: str, conns: int) -> None:
        self.kind = kind
        self.pool = RawPool(Target.of(c), conns)
        self.httpx = c.httpx_client(connections=conns) if kind == "httpx" else None

    async def __aenter__(self) -> Client:
        if self.httpx is None:
            await self.pool.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.pool.close()
        if self.httpx is not None:
            await self.httpx.aclose()

    async def request(self, method: str, path: str, body: bytes = b"",
                      content_type: str = "application/json") -> tuple[int, bytes]:
        if self.httpx is not None:
            r = await self.httpx.request(method, path, content=body or None,
                                         headers={"Content-Type": content_type} if body else None)
            return r.status_code, r.content
        return await self.pool.request(method, path, body, content_type)


async def bench(c: Cluster, rate: float, duration: float, conns: int, client_kind: str, rep: Reporter) -> None:
    pid = c.pid
    async with Client(c, client_kind, conns) as client:
        base = f"/api/v1/namespaces/{NS}"
        code, body = await client.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": NS}}))
        assert code in (201, 409), body
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": CM, "labels": {"app": "bench", "tier": "latency"}},
              "data": {f"key{k}": "v" * 64 for k in range(4)} | {"counter": "0"}}
        code, body = await client.request("POST", f"{base}/configmaps", orjson.dumps(cm))
        assert code == 201, body

        async def healthz(i: int) -> int:
            return (await client.request("GET", "/healthz"))[0]

        async def get(i: int) -> int:
            return (await client.request("GET", f"{base}/configmaps/{CM}"))[0]

        counter = iter(range(1, 10**9))

        async def patch(i: int) -> int:
            body = orjson.dumps({"data": {"counter": str(next(counter))}})
            return (await client.request("PATCH", f"{base}/configmaps/{CM}", body, "application/merge-patch+json"))[0]

        # Warm every connection and code path (not measured).
        for fn in (healthz, get, patch):
            await open_loop(fn, rate, min(1.0, duration))

        results: dict[str, tuple[LoadResult, float, float]] = {}
        db_writes: dict[str, list[float]] = {}
        db = c.data_dir / "state.db"
        for name, fn in (("GET /healthz (baseline)", healthz), ("GET configmap", get),
                         ("PATCH configmap (merge)", patch)):
            cpu0, cl0 = cpu_seconds(pid), time.process_time()
            writes: list[float] = []
            watcher = asyncio.create_task(watch_db_writes(db, writes))
            res = await open_loop(fn, rate, duration)
            watcher.cancel()
            cpu1, cl1 = cpu_seconds(pid), time.process_time()
            n = len(res.latencies) + res.errors
            results[name] = (res, (cpu1 - cpu0) / max(n, 1), (cl1 - cl0) / max(n, 1))
            db_writes[name] = writes
            await asyncio.sleep(0.5)
        code, body = await client.request("GET", f"{base}/configmaps/{CM}")
        final = orjson.loads(body)["data"]["counter"]

    for name, (res, srv_cpu, cl_cpu) in results.items():
        lat = res.latencies
        baseline = "baseline" in name
        goal = None if baseline else GOAL_P99_MS
        p = {q: percentile(lat, q) * 1000 for q in (50, 90, 99)}
        rep.add(f"{name}: p50", p[50], "ms", kind="baseline" if baseline else "info")
        rep.add(f"{name}: p90", p[90], "ms", kind="baseline" if baseline else "info")
        rep.add(f"{name}: p99", p[99], "ms", goal, kind="baseline" if baseline else "figure")
        rep.add(f"{name}: max", max(lat) * 1000 if lat else float("nan"), "ms", kind="info")
        rep.add(f"{name}: achieved rate (target {rate:.0f})", res.achieved_rate, "req/s", kind="info")
        rep.add(f"{name}: errors (non-2xx)", res.errors, "req", None if baseline else 0, kind="info")
        rep.add(f"{name}: client dispatch lag p99", percentile(res.lags, 99) * 1000, "ms", kind="info")
        rep.add(f"{name}: server CPU per request", srv_cpu * 1000, "ms", kind="info",
                note=f"(client CPU {cl_cpu * 1000:.2f} ms/req; statuses {res.statuses})")
        eps = stall_episodes(res.samples, GOAL_P99_MS / 1000)
        if eps:
            near = sum(1 for a, b, _ in eps if any(a - 0.02 <= w <= b + 0.02 for w in db_writes[name]))
            worst = max(w for _, _, w in eps)
            rep.info(f"{name}: {sum(1 for _, lat in res.samples if lat > GOAL_P99_MS / 1000)} requests over "
                     f"{GOAL_P99_MS:.0f} ms in {len(eps)} stall episode(s) (worst {worst * 1000:.0f} ms); {near} of them "
                     f"coincide with a write to state.db itself, i.e. a WAL checkpoint ({len(db_writes[name])} such "
                     "writes seen during the run)")
    rep.info(f"configmap counter after the PATCH run: {final} (every PATCH wrote a new revision)")


def main() -> int:
    ap = base_parser(__doc__ or "")
    ap.add_argument("--rate", type=float, default=500.0, help="requests per second (open loop)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    ap.add_argument("--connections", type=int, default=4, help="keep-alive HTTPS connections")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="raw: minimal HTTP/1.1 client (default); httpx: ~10x the client CPU per request")
    a = ap.parse_args()
    duration = 2.0 if a.quick else a.duration
    rep = Reporter("2", f"single-object GET and PATCH at {a.rate:.0f} req/s (open loop)", a.quick)
    rep.header()
    rep.info(f"{duration:.0f} s per run, {a.connections} keep-alive connections ({a.client} client), "
             "latency from the scheduled send time")
    with Workspace(a.keep) as ws:
        c = ws.new_cluster("latency")
        c.up()
        run_async(bench(c, a.rate, duration, a.connections, a.client, rep))
        c.down(purge=True)
    rep.footer()
    rep.write_json(a.json_out)
    return 0


if __name__ == "__main__":
    run_main(main)
