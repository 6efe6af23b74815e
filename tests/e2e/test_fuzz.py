"""Fuzzing the API server: ≥ 10,000 malformed or random requests, then the cluster must be intact.

Hypothesis builds the requests (see :mod:`tests.e2e.fuzzing`): random methods on real and bogus paths,
garbage query parameters, mutated Kubernetes objects, broken encodings, every patch type. Each answer is
checked as it comes (no 5xx, no hang, every 4xx a ``Status``); afterwards the server process must be
alive and ready, its log free of tracebacks, and its store consistent: every served resource lists, every
listed object reads back at the same resourceVersion, pagination agrees with the full list, the built-in
namespaces exist and an ordinary create/get/delete works — and, after a restart, everything reads back from
disk unchanged.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tinykube.api.resources import RESOURCES, Resource

from .conftest import Cluster
from .fuzzing import (
    BUILTIN_NAMESPACES,
    FUZZ_NS,
    LIVE_NAMES,
    FuzzRequest,
    Runner,
    collection_path,
    fuzz_requests,
    item_path,
    make_client,
    summarize,
    template,
)

TARGET_REQUESTS = 10_000
BATCH = 10


def _pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return False
    return stat.read_text().split(") ", 1)[1][:1] not in ("Z", "X")


def _seed(client: httpx.Client) -> None:
    """Objects for the fuzzer to hit: fz-0..2 of every kind in `fuzz` and `default`, a pod bound to a node."""
    for name in (FUZZ_NS, *LIVE_NAMES):
        r = client.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        assert r.status_code in (201, 409), r.text
    for res in RESOURCES:
        if res.kind == "Namespace":
            continue
        for ns in ((FUZZ_NS, "default") if res.namespaced else (None,)):
            for name in LIVE_NAMES:
                r = client.post(collection_path(res, ns), json=template(res, name, ns))
                assert r.status_code in (201, 409), f"seeding {res.plural} {ns}/{name}: {r.text}"
    pods = next(r for r in RESOURCES if r.plural == "pods")
    r = client.post(item_path(pods, FUZZ_NS, "fz-1") + "/binding",
                    json={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "fz-1"},
                          "target": {"apiVersion": "v1", "kind": "Node", "name": "fz-0"}})
    assert r.status_code in (201, 409), r.text


def _list_all(client: httpx.Client, res: Resource, limit: int | None = None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cont = ""
    while True:
        params: dict[str, Any] = {}
        if limit:
            params["limit"] = limit
        if cont:
            params["continue"] = cont
        r = client.get(collection_path(res, None), params=params)
        assert r.status_code == 200, f"list {res.group}/{res.plural}: HTTP {r.status_code} {r.text[:500]}"
        doc = r.json()
        assert doc.get("kind") == res.list_kind, doc.get("kind")
        assert isinstance(doc.get("items"), list)
        items.extend(doc["items"])
        cont = (doc.get("metadata") or {}).get("continue") or ""
        if not limit or not cont:
            return items


def _consistency_problems(client: httpx.Client) -> list[str]:
    """Everything that is wrong with the store as seen through the API (empty when consistent)."""
    problems: list[str] = []
    for res in RESOURCES:
        full = _list_all(client, res)
        seen: dict[tuple[str, str], str] = {}
        for o in full:
            md = o.get("metadata")
            if not isinstance(md, dict) or not isinstance(md.get("name"), str) or not md["name"]:
                problems.append(f"{res.plural}: listed item without metadata.name: {str(o)[:300]}")
                continue
            rv = md.get("resourceVersion")
            if not isinstance(rv, str) or not rv.isdigit():
                problems.append(f"{res.plural}/{md['name']}: bad resourceVersion {rv!r}")
                continue
            if o.get("kind") not in (None, res.kind) or o.get("apiVersion") not in (None, res.api_version):
                problems.append(f"{res.plural}/{md['name']}: listed as {o.get('apiVersion')}/{o.get('kind')}")
            ns = md.get("namespace")
            if res.namespaced and (not isinstance(ns, str) or not ns):
                problems.append(f"{res.plural}/{md['name']}: namespaced object without a namespace")
                continue
            key = (ns or "", md["name"])
            if key in seen:
                problems.append(f"{res.plural}/{key}: listed twice")
            seen[key] = rv
            g = client.get(item_path(res, ns if res.namespaced else None, md["name"]))
            if g.status_code != 200:
                problems.append(f"GET {res.plural} {key}: HTTP {g.status_code} {g.text[:200]}")
            elif (g.json().get("metadata") or {}).get("resourceVersion") != rv:
                problems.append(f"GET {res.plural} {key}: resourceVersion {g.json()['metadata'].get('resourceVersion')}"
                                f" != listed {rv}")
        paged: list[dict[str, Any]] = [o["metadata"] if isinstance(o.get("metadata"), dict) else {}
                                       for o in _list_all(client, res, limit=3)]
        paged_keys = sorted((str(md.get("namespace") or ""), str(md.get("name")), str(md.get("resourceVersion")))
                            for md in paged)
        full_keys = sorted((k[0], k[1], v) for k, v in seen.items())
        if paged_keys != full_keys:
            problems.append(f"{res.plural}: paginated list ({len(paged_keys)}) != full list ({len(full_keys)})")
    namespaces = {o["metadata"]["name"]: o for o in _list_all(client, RESOURCES[0])}
    for ns in BUILTIN_NAMESPACES:
        if ns not in namespaces:
            problems.append(f"built-in namespace {ns} is gone")
        elif (namespaces[ns].get("status") or {}).get("phase") != "Active":
            problems.append(f"built-in namespace {ns} is {namespaces[ns].get('status')}")
    return problems


def _assert_consistent(client: httpx.Client) -> None:
    # The namespace controller may still be emptying namespaces the fuzzer deleted: let it settle.
    problems: list[str] = []
    for _ in range(10):
        problems = _consistency_problems(client)
        if not problems:
            return
        time.sleep(1)
    raise AssertionError("store inconsistent after fuzzing:\n" + "\n".join(problems[:50]))


def _snapshot(client: httpx.Client) -> tuple[dict[tuple[str, str, str], str], set[str]]:
    """Every stored object's resourceVersion by (resource, namespace, name), and the terminating namespaces."""
    objs: dict[tuple[str, str, str], str] = {}
    terminating: set[str] = set()
    for res in RESOURCES:
        if res.group == "events.k8s.io":
            continue  # a view of core events
        for o in _list_all(client, res):
            md = o["metadata"]
            objs[(res.qualified, md.get("namespace") or "", md["name"])] = md["resourceVersion"]
            if res.kind == "Namespace" and md.get("deletionTimestamp"):
                terminating.add(md["name"])
    return objs, terminating


def _assert_survives_restart(cluster: Cluster, client: httpx.Client) -> httpx.Client:
    """Restart the server: everything it acknowledged is read back from disk (at that revision or a later one).

    (Namespaces being deleted, and what is in them, may move on: the namespace controller resumes.)
    """
    before, terminating = _snapshot(client)
    client.close()
    cluster.down()
    cluster.up("--no-kubeconfig-merge")
    token = (cluster.data_dir / "token").read_text().strip()
    client = make_client(cluster.state["url"], token, str(cluster.data_dir / "ca.crt"))
    after, _ = _snapshot(client)
    # Controllers keep working (the scheduler re-evaluates pending pods, the deployment controller its status):
    # an object may have moved on to a newer revision, but none may be missing or older than acknowledged.
    lost = [f"{k}: rv {rv} -> {after.get(k)}" for k, rv in sorted(before.items())
            if k[1] not in terminating and not (k[0] == "namespaces" and k[2] in terminating)
            and (after.get(k) is None or int(after[k]) < int(rv))]
    assert not lost, f"{len(lost)} objects lost or older after a restart:\n" + "\n".join(lost[:50])
    assert sum(after.get(k) == rv for k, rv in before.items()) > len(before) // 2, "most objects should be untouched"
    return client


def _assert_ordinary_crud(client: httpx.Client) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-fuzz"}, "data": {"k": "v"}}
    path = "/api/v1/namespaces/default/configmaps"
    r = client.post(path, json=cm)
    assert r.status_code == 201, r.text
    rv = r.json()["metadata"]["resourceVersion"]
    g = client.get(f"{path}/after-fuzz")
    assert g.status_code == 200 and g.json()["data"] == {"k": "v"} and g.json()["metadata"]["resourceVersion"] == rv
    d = client.delete(f"{path}/after-fuzz")
    assert d.status_code == 200, d.text
    assert client.get(f"{path}/after-fuzz").status_code == 404


def test_fuzz_api_server(cluster: Cluster) -> None:
    state = cluster.state
    pid = int(state["pid"])
    token = (cluster.data_dir / "token").read_text().strip()
    client = make_client(state["url"], token, str(cluster.data_dir / "ca.crt"))
    log = cluster.data_dir / "server.log"
    log_start = log.stat().st_size if log.exists() else 0
    runner = Runner(client)
    try:
        _seed(client)

        @settings(max_examples=TARGET_REQUESTS // BATCH + 10, deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(st.lists(fuzz_requests(token), min_size=BATCH, max_size=BATCH))
        def fuzz(batch: list[FuzzRequest]) -> None:
            runner.submit(batch)

        t0 = time.monotonic()
        rounds = 0
        while runner.submitted < TARGET_REQUESTS and runner.gone is None and rounds < 5:
            fuzz()
            rounds += 1
        runner.finish()
        elapsed = time.monotonic() - t0
        report = summarize(runner, elapsed)
        print("\nfuzz:", report)

        if runner.gone is not None:
            last = "\n".join(f"- {r.describe()}" for r in runner.recent)
            raise AssertionError(f"the server went away: {runner.gone}; {report}\nlast requests sent:\n{last}")
        if runner.failures:
            lines = [f"- {f.problem}\n    {f.request.describe()}" for f in runner.failures[:40]]
            raise AssertionError(f"{len(runner.failures)} bad answers; {report}\n" + "\n".join(lines))
        assert runner.sent >= TARGET_REQUESTS, report
        assert not [k for k in runner.statuses if k >= 500 or k < 0], report

        assert _pid_alive(pid), "the server process died during fuzzing"
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.text == "ok", ready.text
        _assert_consistent(client)
        _assert_ordinary_crud(client)
        assert _pid_alive(pid) and os.path.exists(cluster.data_dir / "server.json")
        if log.exists():
            with log.open("rb") as f:
                f.seek(log_start)
                tail = f.read().decode("utf-8", "replace")
            assert "Traceback" not in tail and "internal error" not in tail, tail[-5000:]
        client = _assert_survives_restart(cluster, client)
        _assert_consistent(client)
        _assert_ordinary_crud(client)
    finally:
        runner.close()
        client.close()
