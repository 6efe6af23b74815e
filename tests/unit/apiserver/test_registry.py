"""Registry semantics through the in-process client: metadata, subresources, deletion, dry-run, conflicts."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from tinykube.api import errors
from tinykube.api.resources import lookup
from tinykube.apiserver.registry import Options, Registry
from tinykube.client.local import LocalClient
from tinykube.server.cluster import bootstrap, open_store

DEPLOY = lookup("apps", "v1", "deployments")
PODS = lookup("", "v1", "pods")
CMS = lookup("", "v1", "configmaps")
NS = lookup("", "v1", "namespaces")
SVC = lookup("", "v1", "services")
assert DEPLOY and PODS and CMS and NS and SVC


def deployment(name: str, replicas: int = 2) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}


@pytest.fixture
async def env(tmp_path: Path) -> Any:
    store = open_store(tmp_path)
    reg = Registry(store)
    await bootstrap(reg, 6443)
    yield reg, LocalClient(reg)
    store.close()


async def test_create_sets_metadata_and_defaults(env: Any) -> None:
    reg, c = env  # noqa: RUF059
    d = await c.create(DEPLOY, "default", deployment("web"))
    md = d["metadata"]
    assert md["uid"] and md["creationTimestamp"].endswith("Z") and md["generation"] == 1
    assert md["namespace"] == "default" and int(md["resourceVersion"]) > 0
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert d["status"] == {}
    with pytest.raises(errors.ApiError) as ei:
        await c.create(DEPLOY, "default", deployment("web"))
    assert ei.value.code == 409 and ei.value.reason == "AlreadyExists"
    with pytest.raises(errors.ApiError) as ei:
        await c.create(DEPLOY, "nope", deployment("web"))
    assert ei.value.code == 404 and 'namespaces "nope" not found' in ei.value.message


async def test_generate_name_and_dry_run(env: Any) -> None:
    reg, c = env  # noqa: RUF059
    r = await reg.create(CMS, "default", {"metadata": {"generateName": "cfg-"}}, Options())
    assert r.obj["metadata"]["name"].startswith("cfg-") and len(r.obj["metadata"]["name"]) == 9
    before = reg.store.rev
    r = await reg.create(CMS, "default", {"metadata": {"name": "dry"}}, Options(dry_run=True))
    assert r.code == 201 and reg.store.rev == before and reg.store.get(CMS.key("default", "dry")) is None


async def test_generation_only_on_spec_change_and_status_split(env: Any) -> None:
    reg, c = env  # noqa: RUF059
    d = await c.create(DEPLOY, "default", deployment("gen"))
    d["metadata"]["labels"] = {"x": "y"}
    d = await c.update(DEPLOY, "default", d)
    assert d["metadata"]["generation"] == 1
    d["spec"]["replicas"] = 5
    d["status"] = {"replicas": 99}
    d = await c.update(DEPLOY, "default", d)
    assert d["metadata"]["generation"] == 2 and d["status"] == {}  # status ignored on the main resource
    d["status"] = {"replicas": 3, "observedGeneration": 2}
    d["spec"]["replicas"] = 1
    d = await c.update(DEPLOY, "default", d, subresource="status")
    assert d["status"]["replicas"] == 3 and d["spec"]["replicas"] == 5  # spec ignored on /status


async def test_stale_update_conflicts_and_noop_keeps_revision(env: Any) -> None:
    reg, c = env  # noqa: RUF059
    cm = await c.create(CMS, "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    same = await c.update(CMS, "default", cm)
    assert same["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]
    cm2 = dict(cm, data={"a": "2"})
    await c.update(CMS, "default", cm2)
    with pytest.raises(errors.ApiError) as ei:
        await c.update(CMS, "default", dict(cm, data={"a": "3"}))
    assert ei.value.code == 409 and ei.value.reason == "Conflict"


async def test_scale_subresource(env: Any) -> None:
    reg, c = env
    await c.create(DEPLOY, "default", deployment("sc", 2))
    s = reg.get_scale(DEPLOY, "default", "sc")
    assert s["kind"] == "Scale" and s["spec"]["replicas"] == 2 and s["status"]["selector"] == "app=sc"
    r = await reg.patch(DEPLOY, "default", "sc", "application/merge-patch+json", b'{"spec":{"replicas":7}}',
                        Options(), "scale")
    assert r.obj["spec"]["replicas"] == 7
    assert (await c.get(DEPLOY, "default", "sc"))["spec"]["replicas"] == 7
    with pytest.raises(errors.ApiError) as ei:
        await reg.patch(DEPLOY, "default", "sc", "application/merge-patch+json", b'{"spec":{"replicas":-1}}',
                        Options(), "scale")
    assert ei.value.code == 422 and "spec.replicas" in ei.value.message


async def test_binding_and_graceful_pod_deletion(env: Any) -> None:
    reg, c = env
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await c.create(PODS, "default", pod)
    out = await reg.bind(PODS, "default", "p", {"target": {"kind": "Node", "name": "node-1"}}, Options())
    assert out["status"] == "Success"
    p = await c.get(PODS, "default", "p")
    assert p["spec"]["nodeName"] == "node-1"
    assert any(cd["type"] == "PodScheduled" and cd["status"] == "True" for cd in p["status"]["conditions"])
    with pytest.raises(errors.ApiError) as ei:
        await reg.bind(PODS, "default", "p", {"target": {"name": "node-2"}}, Options())
    assert ei.value.code == 409
    r = await reg.delete(PODS, "default", "p", {})
    assert r.obj["metadata"]["deletionTimestamp"] and r.obj["metadata"]["deletionGracePeriodSeconds"] == 30
    assert reg.store.get(PODS.key("default", "p")) is not None  # the kubelet finishes it
    await reg.delete(PODS, "default", "p", {"gracePeriodSeconds": 0})
    assert reg.store.get(PODS.key("default", "p")) is None
    # An unscheduled pod goes at once.
    await c.create(PODS, "default", dict(pod, metadata={"name": "q"}))
    await reg.delete(PODS, "default", "q", {})
    assert reg.store.get(PODS.key("default", "q")) is None


async def test_finalizers_and_foreground(env: Any) -> None:
    reg, c = env
    await c.create(CMS, "default", {"metadata": {"name": "f", "finalizers": ["example.com/hold"]}})
    r = await reg.delete(CMS, "default", "f", {})
    assert r.code == 202 and r.obj["metadata"]["deletionTimestamp"]
    cm = await c.get(CMS, "default", "f")
    cm["metadata"]["finalizers"] = []
    await c.update(CMS, "default", cm)
    assert reg.store.get(CMS.key("default", "f")) is None
    await c.create(DEPLOY, "default", deployment("fg"))
    r = await reg.delete(DEPLOY, "default", "fg", {"propagationPolicy": "Foreground"})
    assert "foregroundDeletion" in r.obj["metadata"]["finalizers"]
    with pytest.raises(errors.ApiError) as ei:
        await reg.delete(DEPLOY, "default", "fg", {"propagationPolicy": "Sideways"})
    assert ei.value.code == 422


async def test_services_get_cluster_ips_and_node_ports(env: Any) -> None:
    reg, c = env  # noqa: RUF059
    svc = {"metadata": {"name": "s1"}, "spec": {"type": "NodePort", "selector": {"app": "x"},
                                                "ports": [{"port": 80, "targetPort": 8080}]}}
    s = await c.create(SVC, "default", svc)
    assert s["spec"]["clusterIP"].startswith("10.96.") and s["spec"]["clusterIP"] != "10.96.0.1"
    np_ = s["spec"]["ports"][0]["nodePort"]
    assert 30000 <= np_ <= 32767
    dup = {"metadata": {"name": "s2"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": np_}]}}
    with pytest.raises(errors.ApiError) as ei:
        await c.create(SVC, "default", dup)
    assert ei.value.code == 422 and "provided port is already allocated" in ei.value.message
    s["spec"]["selector"] = {"app": "y"}
    s2 = await c.update(SVC, "default", s)
    assert s2["spec"]["clusterIP"] == s["spec"]["clusterIP"] and s2["spec"]["ports"][0]["nodePort"] == np_


async def test_a_cluster_service_range_and_its_load_balancer_pool(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        reg = Registry(store, "10.97.0.0/16")
        await bootstrap(reg, 6443)
        c = LocalClient(reg)
        k = await c.get(SVC, "default", "kubernetes")
        assert k["spec"]["clusterIP"] == "10.97.0.1"
        for i in range(20):
            s = await c.create(SVC, "default", {"metadata": {"name": f"s{i}"}, "spec": {"ports": [{"port": 80}]}})
            ip = ipaddress.IPv4Address(s["spec"]["clusterIP"])
            assert ip in ipaddress.IPv4Network("10.97.0.0/16") and ip not in ipaddress.IPv4Network("10.97.255.0/24")
        for ip, text in (("10.97.255.7", "reserved for LoadBalancer"), ("10.96.3.3", "not in the valid range"),
                         ("10.97.0.1", "already allocated")):
            with pytest.raises(errors.ApiError) as ei:
                await c.create(SVC, "default", {"metadata": {"name": "x"},
                                                "spec": {"clusterIP": ip, "ports": [{"port": 80}]}})
            assert ei.value.code == 422 and text in ei.value.message, ei.value.message
        s = await c.create(SVC, "default", {"metadata": {"name": "x"}, "spec": {"clusterIP": "10.97.3.3",
                                                                                 "ports": [{"port": 80}]}})
        assert s["spec"]["clusterIPs"] == ["10.97.3.3"]
    finally:
        store.close()


async def test_list_selectors_and_pagination(env: Any) -> None:
    reg, c = env
    for i in range(7):
        await c.create(CMS, "default", {"metadata": {"name": f"c{i}", "labels": {"i": str(i % 2)}}})
    items, meta = reg.list(CMS, "default", "i=1")
    assert sorted(e.obj["metadata"]["name"] for e in items) == ["c1", "c3", "c5"]
    names: list[str] = []
    token = ""
    while True:
        items, meta = reg.list(CMS, "default", "i in (0,1)", "", 2, token)
        names += [e.obj["metadata"]["name"] for e in items]
        token = meta.get("continue", "")
        if not token:
            break
    assert names == [f"c{i}" for i in range(7)]
    with pytest.raises(errors.ApiError) as ei:
        reg.list(CMS, "default", "", "", 2, "garbage!")
    assert ei.value.code == 400


async def test_system_namespaces_cannot_be_deleted(env: Any) -> None:
    reg, _ = env
    for name in ("default", "kube-system", "kube-public"):
        with pytest.raises(errors.ApiError) as ei:
            await reg.delete(NS, None, name, {})
        assert ei.value.code == 403 and "may not be deleted" in ei.value.message


async def test_unknown_fields_are_dropped_unless_strict(env: Any) -> None:
    reg, _ = env
    body = deployment("unk")
    body["spec"]["bogus"] = 1
    body["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    body["metadata"]["labels"] = {"free.form/keys": "ok"}
    r = await reg.create(DEPLOY, "default", body, Options(field_validation="Warn"))
    assert r.warnings and any("spec.bogus" in w for w in r.warnings)
    stored = reg.store.get(DEPLOY.key("default", "unk")).obj
    assert "bogus" not in stored["spec"] and "imagee" not in stored["spec"]["template"]["spec"]["containers"][0]
    assert stored["metadata"]["labels"] == {"free.form/keys": "ok"}
    body = deployment("unk2")
    body["spec"]["bogus"] = 1
    with pytest.raises(errors.ApiError) as ei:
        await reg.create(DEPLOY, "default", body, Options(field_validation="Strict"))
    assert ei.value.code == 400 and 'unknown field "spec.bogus"' in ei.value.message
