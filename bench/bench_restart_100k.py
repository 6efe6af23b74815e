#!/usr/bin/env python3
"""Goal 5: restart with 100,000 objects to ready in <= 3 s.

1. ``tinykube up`` on a fresh data dir (the server creates the built-in namespaces, the ``kubernetes``
   service, and the namespace controller its per-namespace objects), then NS namespaces through the API,
   then ``tinykube down``.
2. Baseline, same run: ``tinykube up`` / ``down`` on that almost empty data dir.
3. Populate the store in-process with N ConfigMaps (default 100,000) through
   ``tinykube.server.cluster.open_store(data_dir)`` and ``await store.create(key, obj)``, with objects shaped
   as the API stores them (uid, creationTimestamp, labels, managedFields, a few data keys; keys
   ``/registry/configmaps/<ns>/<name>``). The store is closed (WAL checkpointed) before the server starts.
4. Time ``tinykube up`` on that data dir until ready (R runs; ``down`` between), and print the server's
   ``store_load_seconds`` / ``startup_seconds`` and resident memory; after the first restart a GET and a full
   LIST check that every object is served.
5. Print the store's size on disk.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from _common import Cluster, RawConn, Reporter, Target, Workspace, base_parser, median, rss_mib, run_async, run_main

GOAL_S = 3.0


def configmap(ns: str, i: int, ts: str) -> dict[str, Any]:
    data = {"config.yaml": f"replicas: {i % 7}\nimage: registry.example/app:{i % 97}\nlogLevel: info\n",
            "mode": "fast", "index": str(i)}
    labels = {"app": f"app-{i % 50}", "bench": "restart"}
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": f"cm-{i:06d}", "namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": ts,
            "labels": labels,
            "managedFields": [{
                "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": ts,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, **{f"f:{k}": {} for k in data}},
                             "f:metadata": {"f:labels": {".": {}, **{f"f:{k}": {} for k in labels}}}},
            }],
        },
        "data": data,
    }


async def populate(c: Cluster, n: int, namespaces: list[str]) -> tuple[float, int]:
    from tinykube.server.cluster import open_store

    store = open_store(c.data_dir)
    try:
        ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        t = time.perf_counter()
        for i in range(n):
            ns = namespaces[i % len(namespaces)]
            obj = configmap(ns, i, ts)
            await store.create(f"/registry/configmaps/{ns}/{obj['metadata']['name']}", obj)
        dt = time.perf_counter() - t
        total = len(store._data)
    finally:
        store.close()
    return dt, total


async def api_ops(c: Cluster, n: int, namespaces: list[str]) -> tuple[float, float, float, int]:
    conn = await RawConn(Target.of(c)).open()
    try:
        i = n // 2
        ns = namespaces[i % len(namespaces)]
        t = time.perf_counter()
        code, body = await conn.request("GET", f"/api/v1/namespaces/{ns}/configmaps/cm-{i:06d}")
        t_get = time.perf_counter() - t
        if code != 200 or orjson.loads(body)["data"]["index"] != str(i):
            raise RuntimeError(f"GET cm-{i:06d}: {code} {body[:200]!r}")
        t = time.perf_counter()
        code, body = await conn.request("GET", "/api/v1/configmaps")
        t_list1 = time.perf_counter() - t
        if code != 200:
            raise RuntimeError(f"LIST: {code} {body[:200]!r}")
        items = orjson.loads(body)["items"]
        ours = sum(1 for o in items if o["metadata"]["name"].startswith("cm-"))
        t = time.perf_counter()
        code, body = await conn.request("GET", "/api/v1/configmaps")
        t_list2 = time.perf_counter() - t
    finally:
        conn.close()
    return t_get, t_list1, t_list2, ours


async def create_namespaces(c: Cluster, namespaces: list[str]) -> None:
    conn = await RawConn(Target.of(c)).open()
    try:
        for ns in namespaces:
            code, body = await conn.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": ns}}))
            if code != 201:
                raise RuntimeError(f"create namespace {ns}: {code} {body[:200]!r}")
        await asyncio.sleep(0.3)  # let the namespace controller add its per-namespace objects
    finally:
        conn.close()


def main() -> int:
    ap = base_parser(__doc__ or "")
    ap.add_argument("--objects", type=int, default=100_000, help="configmaps to put in the store")
    ap.add_argument("--namespaces", type=int, default=10, help="namespaces to spread them over")
    ap.add_argument("--runs", type=int, default=3, help="timed restarts with the full store")
    a = ap.parse_args()
    n = 10_000 if a.quick else a.objects
    runs = 2 if a.quick else a.runs
    namespaces = [f"bench-{k}" for k in range(a.namespaces)]
    rep = Reporter("5", f"restart with {n} objects to ready", a.quick)
    rep.header()
    with Workspace(a.keep) as ws:
        c = ws.new_cluster("big")
        c.up()
        run_async(create_namespaces(c, namespaces))
        c.down()

        base_times: list[float] = []
        base_load: list[float] = []
        for _ in range(runs):
            base_times.append(c.up())
            base_load.append(float(c.state["store_load_seconds"]))
            c.down()
        empty_size = c.store_bytes()

        dt_pop, total = run_async(populate(c, n, namespaces))
        rep.add(f"populate {n} configmaps in-process (store.create)", dt_pop, "s", kind="info",
                note=f"({n / dt_pop:.0f} creates/s; {total} live keys in the store)")
        size = c.store_bytes()

        times: list[float] = []
        load: list[float] = []
        startup: list[float] = []
        rss: list[float] = []
        downs: list[float] = []
        checks: tuple[float, float, float, int] | None = None
        rss_after_list = float("nan")
        for k in range(runs):
            times.append(c.up())
            st = c.state
            load.append(float(st["store_load_seconds"]))
            startup.append(float(st["startup_seconds"]))
            rss.append(rss_mib(c.pid))
            if k == 0:
                checks = run_async(api_ops(c, n, namespaces))
                rss_after_list = rss_mib(c.pid)
            downs.append(c.down())
            rep.info(f"restart {k + 1}: up {times[-1]:.3f} s, server startup {startup[-1]:.3f} s "
                     f"(store load {load[-1]:.3f} s), RSS at ready {rss[-1]:.0f} MiB")
        assert checks is not None
        size_after = c.store_bytes()
        c.down(purge=True)

    rep.add(f"restart with {n} objects: up to ready, median", median(times), "s", GOAL_S)
    rep.add(f"restart with {n} objects: up to ready, max", max(times), "s", GOAL_S)
    rep.add("restart, near-empty store (baseline): median", median(base_times), "s", kind="baseline",
            note=f"(store load {median(base_load) * 1000:.1f} ms)")
    rep.add("server store_load_seconds: median", median(load), "s", kind="info")
    rep.add("server startup_seconds: median", median(startup), "s", kind="info")
    rep.add("server RSS at ready: median", median(rss), "MiB", kind="info")
    rep.add("server RSS after the GET and two LISTs", rss_after_list, "MiB", kind="info")
    rep.add("down with the full store: median", median(downs), "s", kind="info")
    t_get, t_list1, t_list2, ours = checks
    rep.add("GET one configmap right after restart", t_get * 1000, "ms", kind="info")
    rep.add("first LIST of all configmaps after restart", t_list1 * 1000, "ms", kind="info",
            note=f"({ours} of {n} bench configmaps served)")
    rep.add("second LIST of all configmaps", t_list2 * 1000, "ms", kind="info")
    rep.add("objects served by LIST == objects written", float(ours == n), "bool", kind="info")
    rep.add("store on disk (state.db + WAL), full", size / 2**20, "MiB", kind="info",
            note=f"({size / max(n, 1):.0f} B/object; {size_after / 2**20:.1f} MiB after the restarts; "
                 f"{empty_size / 2**10:.0f} KiB before populating)")
    rep.footer()
    rep.write_json(a.json_out)
    return 0 if ours == n else 1


if __name__ == "__main__":
    run_main(main)
