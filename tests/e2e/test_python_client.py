"""The official ``kubernetes`` Python client against a cluster started by ``tinykube up``.

CRUD through the generated models, selectors and pagination, watches (live, resumed, 410 after
compaction), the API's error statuses, and optimistic concurrency under contention.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from .conftest import Cluster

REQUEST_TIMEOUT = 15


@contextlib.contextmanager
def api_client(c: Cluster, kubeconfig: Path | None = None) -> Iterator[client.ApiClient]:
    """A private ApiClient for the cluster (never the process-wide default configuration).

    On exit its keep-alive connections are closed too (``ApiClient.close`` only stops its thread pool), so
    idle TLS connections do not hold up the server's graceful shutdown at teardown.
    """
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig or c.kubeconfig), client_configuration=cfg)
    ac = client.ApiClient(cfg)
    try:
        yield ac
    finally:
        ac.close()
        ac.rest_client.pool_manager.clear()


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    with api_client(cluster) as ac:
        yield client.CoreV1Api(ac)


@pytest.fixture
def apps(cluster: Cluster) -> Iterator[client.AppsV1Api]:
    with api_client(cluster) as ac:
        yield client.AppsV1Api(ac)


def status_body(e: ApiException) -> dict[str, Any]:
    assert e.body, f"no Status body on {e.status} {e.reason}"
    body: dict[str, Any] = json.loads(e.body)
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    return body


def raises_api(status: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as info:
        fn(*args, **kwargs)
    assert info.value.status == status, f"expected {status}, got {info.value.status}: {info.value.body}"
    return info.value


def make_namespace(core: client.CoreV1Api, name: str) -> None:
    """Create a namespace and wait for the controller's kube-root-ca.crt, so later watches see only our writes."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 10
    while not core.list_namespaced_config_map(name, field_selector="metadata.name=kube-root-ca.crt").items:
        assert time.monotonic() < deadline, f"namespace {name} never got its kube-root-ca.crt"
        time.sleep(0.02)


def deployment(name: str, replicas: int, image: str = "nginx:1.27") -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="web", image=image,
                    ports=[client.V1ContainerPort(container_port=80)],
                    env=[client.V1EnvVar(name="MODE", value="prod")])]),
            ),
        ),
    )


# -- 1. CRUD, selectors, pagination ------------------------------------------------------------------------------

def test_configmap_crud(core: client.CoreV1Api) -> None:
    ns = "py-cm"
    make_namespace(core, ns)
    cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}), data={"color": "blue"}))
    assert isinstance(cm, client.V1ConfigMap)
    assert cm.metadata.uid and cm.metadata.creation_timestamp is not None
    rv1 = int(cm.metadata.resource_version)

    got = core.read_namespaced_config_map("settings", ns)
    assert got.data == {"color": "blue"} and got.metadata.resource_version == cm.metadata.resource_version

    got.data["size"] = "10"
    replaced = core.replace_namespaced_config_map("settings", ns, got)
    assert replaced.data == {"color": "blue", "size": "10"}
    assert int(replaced.metadata.resource_version) > rv1

    patched = core.patch_namespaced_config_map("settings", ns, {"data": {"color": "red"}})
    assert patched.data == {"color": "red", "size": "10"}
    assert int(patched.metadata.resource_version) > int(replaced.metadata.resource_version)

    status = core.delete_namespaced_config_map("settings", ns)
    assert status is not None
    e = raises_api(404, core.read_namespaced_config_map, "settings", ns)
    body = status_body(e)
    assert body["reason"] == "NotFound" and body["message"] == 'configmaps "settings" not found'
    raises_api(404, core.delete_namespaced_config_map, "settings", ns)


def test_secret_string_data_is_stored_base64(core: client.CoreV1Api) -> None:
    ns = "py-secret"
    make_namespace(core, ns)
    created = core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds"), string_data={"password": "s3cr3t", "user": "admin"}))
    assert created.type == "Opaque"
    assert created.string_data is None
    assert created.data == {"password": base64.b64encode(b"s3cr3t").decode(),
                            "user": base64.b64encode(b"admin").decode()}
    got = core.read_namespaced_secret("creds", ns)
    assert base64.b64decode(got.data["password"]) == b"s3cr3t" and got.string_data is None
    # string_data on an update overrides data for that key.
    got.string_data = {"password": "rotated"}
    updated = core.replace_namespaced_secret("creds", ns, got)
    assert base64.b64decode(updated.data["password"]) == b"rotated"
    assert base64.b64decode(updated.data["user"]) == b"admin"
    core.delete_namespaced_secret("creds", ns)
    raises_api(404, core.read_namespaced_secret, "creds", ns)


def test_deployment_crud_patch_and_scale(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    ns = "py-deploy"
    make_namespace(core, ns)
    d = apps.create_namespaced_deployment(ns, deployment("web", 2))
    assert isinstance(d, client.V1Deployment)
    assert d.metadata.generation == 1 and d.spec.replicas == 2
    # Defaults applied by the server come back through the model.
    assert d.spec.strategy.type == "RollingUpdate" and d.spec.revision_history_limit == 10
    assert d.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"

    # The deployment controller writes status meanwhile: read-modify-replace retries on 409, as client-go's
    # RetryOnConflict does.
    for _attempt in range(20):
        got = apps.read_namespaced_deployment("web", ns)
        assert got.metadata.uid == d.metadata.uid
        got.spec.replicas = 3
        got.metadata.labels["tier"] = "front"
        try:
            replaced = apps.replace_namespaced_deployment("web", ns, got)
            break
        except ApiException as ex:
            if ex.status != 409:
                raise
    else:
        raise AssertionError("replace kept conflicting")
    assert replaced.spec.replicas == 3 and replaced.metadata.labels == {"app": "web", "tier": "front"}
    assert replaced.metadata.generation == 2

    # A dict body is sent as a strategic merge patch: the container list merges by name, so the
    # container's other fields (ports, env) survive a patch that only names it and sets its image.
    patched = apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}})
    (container,) = patched.spec.template.spec.containers
    assert container.image == "nginx:1.28"
    assert [p.container_port for p in container.ports] == [80]
    assert [(v.name, v.value) for v in container.env] == [("MODE", "prod")]
    assert patched.metadata.generation == 3

    scale = apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})
    assert isinstance(scale, client.V1Scale)
    assert scale.spec.replicas == 5 and scale.status.selector == "app=web"
    assert apps.read_namespaced_deployment_scale("web", ns).spec.replicas == 5
    after = apps.read_namespaced_deployment("web", ns)
    assert after.spec.replicas == 5 and after.metadata.generation == 4

    apps.delete_namespaced_deployment("web", ns)
    raises_api(404, apps.read_namespaced_deployment, "web", ns)


def test_namespace_crud(core: client.CoreV1Api) -> None:
    ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-ns", labels={"team": "a"})))
    assert ns.status.phase == "Active"
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "py-ns"
    core.create_namespaced_config_map("py-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="inside")))
    patched = core.patch_namespace("py-ns", {"metadata": {"labels": {"team": "b"}}})
    assert patched.metadata.labels["team"] == "b"
    names = [n.metadata.name for n in core.list_namespace(label_selector="team=b").items]
    assert names == ["py-ns"]
    core.delete_namespace("py-ns")
    # The namespace empties itself (the in-process controller) and then goes away.
    deadline = time.monotonic() + 15
    while True:
        try:
            phase = core.read_namespace("py-ns").status.phase
        except ApiException as e:
            assert e.status == 404, e.body
            break
        assert phase == "Terminating"
        assert time.monotonic() < deadline, "namespace py-ns was never deleted"
        time.sleep(0.1)
    raises_api(404, core.read_namespaced_config_map, "inside", "py-ns")


def test_list_with_label_and_field_selectors(core: client.CoreV1Api) -> None:
    ns = "py-select"
    make_namespace(core, ns)
    specs = {
        "a": {"app": "web", "tier": "front", "env": "prod"},
        "b": {"app": "web", "tier": "back", "env": "dev"},
        "c": {"app": "db", "tier": "back", "env": "prod", "canary": "true"},
        "d": {"app": "cache"},
    }
    for name, labels in specs.items():
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels)))

    def names(**kw: Any) -> list[str]:
        items = core.list_namespaced_config_map(ns, **kw).items
        return sorted(i.metadata.name for i in items if i.metadata.name != "kube-root-ca.crt")

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app==web,tier=back") == ["b"]
    assert names(label_selector="app!=web") == ["c", "d"]
    assert names(label_selector="tier in (front,back)") == ["a", "b", "c"]
    assert names(label_selector="env notin (prod)") == ["b", "d"]
    assert names(label_selector="canary") == ["c"]
    assert names(label_selector="!tier") == ["d"]
    assert names(label_selector="app in (web,db),!canary") == ["a", "b"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="metadata.name!=c", label_selector="app=web") == ["a", "b"]
    assert names(field_selector="metadata.name=nope") == []
    e = raises_api(400, core.list_namespaced_config_map, ns, label_selector="app in (web")
    assert status_body(e)["reason"] == "BadRequest"
    # Across namespaces, with the namespace field.
    everywhere = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}",
                                                         label_selector="app=db")
    assert [(i.metadata.namespace, i.metadata.name) for i in everywhere.items] == [(ns, "c")]


def test_pagination_returns_every_object_once(core: client.CoreV1Api) -> None:
    ns = "py-pages"
    make_namespace(core, ns)
    want = {f"item-{i:02d}" for i in range(25)}
    for name in sorted(want, reverse=True):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels={"paged": "yes"})))
    seen: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"limit": 7, "label_selector": "paged=yes"}
        if token:
            kw["_continue"] = token
        page = core.list_namespaced_config_map(ns, **kw)
        pages += 1
        assert len(page.items) <= 7
        seen.extend(i.metadata.name for i in page.items)
        token = page.metadata._continue
        if not token:
            break
        assert pages < 10, "pagination does not terminate"
    assert pages == 4
    assert len(seen) == 25 and set(seen) == want
    assert seen == sorted(seen)
    # Unlabelled pagination covers the namespace's own configmap too.
    first = core.list_namespaced_config_map(ns, limit=10)
    assert len(first.items) == 10 and first.metadata._continue
    assert first.metadata.remaining_item_count == 26 - 10


# -- 2. Watch ----------------------------------------------------------------------------------------------------

def _collect(w: watch.Watch, fn: Callable[..., Any], ns: str, rv: str, until: Callable[[list[tuple[str, str, str]]], bool],
             on_event: Callable[[list[tuple[str, str, str]]], None] | None = None) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of events from a watch at rv, until `until` says stop (10 s at most)."""
    got: list[tuple[str, str, str]] = []
    for ev in w.stream(fn, ns, resource_version=rv, timeout_seconds=10, _request_timeout=REQUEST_TIMEOUT):
        o = ev["object"]
        got.append((ev["type"], o.metadata.name, o.metadata.resource_version))
        if on_event is not None:
            on_event(got)
        if until(got):
            w.stop()
            break
    return got


def test_watch_live_then_resume_from_resource_version(cluster: Cluster, core: client.CoreV1Api) -> None:
    ns = "py-watch"
    make_namespace(core, ns)
    rv0 = core.list_namespaced_config_map(ns).metadata.resource_version

    def writer() -> None:
        time.sleep(0.3)
        with api_client(cluster) as ac:
            v1 = client.CoreV1Api(ac)
            v1.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w"), data={"n": "0"}))
            v1.patch_namespaced_config_map("w", ns, {"data": {"n": "1"}})
            v1.patch_namespaced_config_map("w", ns, {"data": {"n": "2"}})
            v1.delete_namespaced_config_map("w", ns)

    t = threading.Thread(target=writer)
    t.start()
    try:
        events = _collect(watch.Watch(), core.list_namespaced_config_map, ns, rv0,
                          lambda got: got[-1][0] == "DELETED")
    finally:
        t.join()
    assert [(typ, name) for typ, name, _ in events] == [
        ("ADDED", "w"), ("MODIFIED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    revs = [int(r) for _, _, r in events]
    assert revs == sorted(revs) and len(set(revs)) == 4 and revs[0] > int(rv0)

    # Resume from the first MODIFIED: exactly the events after it are replayed, then a live one arrives.
    resume_rv = events[1][2]
    fired: list[bool] = []

    def write_live(got: list[tuple[str, str, str]]) -> None:
        if len(got) == 2 and not fired:
            fired.append(True)
            core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="live")))

    replay = _collect(watch.Watch(), core.list_namespaced_config_map, ns, resume_rv,
                      lambda got: len(got) >= 3, on_event=write_live)
    assert replay[:2] == events[2:]
    assert replay[2][:2] == ("ADDED", "live") and int(replay[2][2]) > revs[-1]


def test_watch_typed_objects_and_field_selector(core: client.CoreV1Api) -> None:
    ns = "py-watch-sel"
    make_namespace(core, ns)
    rv0 = core.list_namespaced_config_map(ns).metadata.resource_version
    for name in ("one", "two", "three"):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": name}))
    core.patch_namespaced_config_map("two", ns, {"data": {"k": "2"}})
    w = watch.Watch()
    got: list[Any] = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv0, field_selector="metadata.name=two",
                       timeout_seconds=10, _request_timeout=REQUEST_TIMEOUT):
        got.append(ev)
        if len(got) == 2:
            w.stop()
            break
    assert [e["type"] for e in got] == ["ADDED", "MODIFIED"]
    assert all(isinstance(e["object"], client.V1ConfigMap) for e in got)
    assert got[1]["object"].data == {"k": "2"} and got[1]["raw_object"]["data"] == {"k": "2"}


# -- 3. 410 Gone after compaction --------------------------------------------------------------------------------

def test_watch_from_compacted_resource_version_is_410(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.env["TINYKUBE_COMPACT_INTERVAL"] = "1"
    c.up("--no-kubeconfig-merge")
    with api_client(c) as ac:
        v1 = client.CoreV1Api(ac)
        old = v1.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="hist"), data={"n": "0"})).metadata.resource_version
        for i in range(1, 6):
            v1.patch_namespaced_config_map("hist", "default", {"data": {"n": str(i)}})
        time.sleep(3)
        v1.patch_namespaced_config_map("hist", "default", {"data": {"n": "last"}})

        # With timeout_seconds the client does not retry: the first 410 surfaces as ApiException.
        # Without it, the client retries once from the same version and then raises. Both must be 410.
        for kw in ({"timeout_seconds": 5}, {}):
            w = watch.Watch()
            with pytest.raises(ApiException) as info:
                for ev in w.stream(v1.list_namespaced_config_map, "default", resource_version=old,
                                   _request_timeout=REQUEST_TIMEOUT, **kw):
                    pytest.fail(f"a watch from a compacted resourceVersion delivered {ev['type']}")
            e = info.value
            assert e.status == 410, (e.status, e.reason, e.body)
            # Either an HTTP 410 Status body or an ERROR event's Status (reason "Expired: <message>").
            text = f"{e.reason} {e.body or ''}"
            assert "too old resource version" in text and "Expired" in text, text

        # Recovery as the client docs prescribe: re-list, then watch from the list's resourceVersion.
        lst = v1.list_namespaced_config_map("default", field_selector="metadata.name=hist")
        assert lst.items[0].data == {"n": "last"}
        w = watch.Watch()
        for ev in w.stream(v1.list_namespaced_config_map, "default", resource_version=lst.metadata.resource_version,
                           timeout_seconds=2, _request_timeout=REQUEST_TIMEOUT):
            pytest.fail(f"unexpected event {ev['type']} after re-list")
        v1.patch_namespaced_config_map("hist", "default", {"data": {"n": "after"}})
        for ev in w.stream(v1.list_namespaced_config_map, "default", resource_version=lst.metadata.resource_version,
                           timeout_seconds=5, _request_timeout=REQUEST_TIMEOUT):
            assert ev["type"] == "MODIFIED" and ev["object"].data == {"n": "after"}
            w.stop()
            break
        else:
            pytest.fail("no event after re-listing")
    pid = c.pid()
    c.down()
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1] == "Z"


# -- 4. Error statuses -------------------------------------------------------------------------------------------

def test_update_with_stale_resource_version_is_409(core: client.CoreV1Api) -> None:
    ns = "default"
    cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cas"),
                                                                  data={"v": "1"}))
    fresh = core.read_namespaced_config_map("cas", ns)
    fresh.data["v"] = "2"
    core.replace_namespaced_config_map("cas", ns, fresh)
    cm.data["v"] = "stale"
    e = raises_api(409, core.replace_namespaced_config_map, "cas", ns, cm)
    body = status_body(e)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "cas": the object has been modified; '
                               "please apply your changes to the latest version and try again")
    assert core.read_namespaced_config_map("cas", ns).data == {"v": "2"}
    # Creating an existing name is a 409 too (AlreadyExists).
    e = raises_api(409, core.create_namespaced_config_map, ns,
                   client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cas")))
    assert status_body(e)["reason"] == "AlreadyExists"


def test_invalid_deployment_is_422_with_causes(apps: client.AppsV1Api) -> None:
    e = raises_api(422, apps.create_namespaced_deployment, "default", deployment("negative", -1))
    body = status_body(e)
    assert body["reason"] == "Invalid"
    assert body["message"] == ('Deployment.apps "negative" is invalid: '
                               "spec.replicas: Invalid value: -1: must be greater than or equal to 0")
    cause = body["details"]["causes"][0]
    assert cause["field"] == "spec.replicas" and cause["reason"] == "FieldValueInvalid"
    assert body["details"]["name"] == "negative" and body["details"]["kind"] == "Deployment"
    raises_api(404, apps.read_namespaced_deployment, "negative", "default")
    # The same rule on an update of a valid object, and via the scale subresource.
    apps.create_namespaced_deployment("default", deployment("positive", 1))
    e = raises_api(422, apps.patch_namespaced_deployment, "positive", "default", {"spec": {"replicas": -1}})
    assert status_body(e)["details"]["causes"][0]["field"] == "spec.replicas"
    e = raises_api(422, apps.patch_namespaced_deployment_scale, "positive", "default", {"spec": {"replicas": -1}})
    assert status_body(e)["code"] == 422
    assert apps.read_namespaced_deployment("positive", "default").spec.replicas == 1


def test_wrong_token_is_401(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.state["url"]
    for headers in ({"Authorization": "Bearer not-the-token"}, {}):
        r = httpx.get(f"{url}/api/v1/namespaces", headers=headers, verify=False, timeout=REQUEST_TIMEOUT)
        assert r.status_code == 401, r.text
        body = r.json()
        assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401
    # The right token over the same raw path works, so the 401 is about the token alone.
    token = (cluster.data_dir / "token").read_text().strip()
    r = httpx.get(f"{url}/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"}, verify=False,
                  timeout=REQUEST_TIMEOUT)
    assert r.status_code == 200 and r.json()["kind"] == "NamespaceList"

    # The official client, from a kubeconfig whose token was changed.
    kc = yaml.safe_load(cluster.kubeconfig.read_text())
    for u in kc["users"]:
        u["user"]["token"] = "wrong-" + u["user"]["token"]
    bad = tmp_path / "kubeconfig"
    bad.write_text(yaml.safe_dump(kc))
    with api_client(cluster, bad) as ac:
        e = raises_api(401, client.CoreV1Api(ac).list_namespace)
        assert status_body(e)["reason"] == "Unauthorized"


# -- 5. Optimistic concurrency -----------------------------------------------------------------------------------

def test_concurrent_read_modify_write_counter(cluster: Cluster, core: client.CoreV1Api) -> None:
    ns = "default"
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="counter"),
                                                             data={"n": "0"}))
    workers, increments = 20, 25
    conflicts: queue.Queue[int] = queue.Queue()
    errors: queue.Queue[BaseException] = queue.Queue()
    start = threading.Barrier(workers)

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with api_client(cluster) as ac:
                v1 = client.CoreV1Api(ac)
                start.wait(timeout=30)
                done = lost = 0
                while done < increments:
                    cm = v1.read_namespaced_config_map("counter", ns, _request_timeout=REQUEST_TIMEOUT)
                    cm.data["n"] = str(int(cm.data["n"]) + 1)
                    try:
                        v1.replace_namespaced_config_map("counter", ns, cm, _request_timeout=REQUEST_TIMEOUT)
                    except ApiException as e:
                        if e.status != 409:
                            raise
                        lost += 1
                        time.sleep(rnd.uniform(0, 0.005))
                        continue
                    done += 1
                conflicts.put(lost)
        except BaseException as e:
            errors.put(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "workers did not finish"
    assert errors.empty(), repr(errors.get())
    assert conflicts.qsize() == workers
    final = core.read_namespaced_config_map("counter", ns)
    assert final.data["n"] == str(workers * increments)
    total_conflicts = sum(conflicts.get() for _ in range(workers))
    assert total_conflicts > 0, "20 concurrent writers never conflicted: the test did not exercise CAS"
