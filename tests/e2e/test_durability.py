"""Durability and process lifecycle of ``tinykube up``/``down``, driven by the official Python client.

Restart keeps every object and the revision history; ``kill -9`` of the server loses no acknowledged
write; a second ``up`` on a running data dir is a no-op; clusters with different data dirs run side by
side; ``down`` leaves no process behind.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from .conftest import Cluster, new_cluster, stop

REQUEST_TIMEOUT = 15


@contextlib.contextmanager
def api_client(c: Cluster, retries: int | None = None) -> Iterator[client.ApiClient]:
    """A private ApiClient for the cluster's current kubeconfig; closes its connections on exit."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(c.kubeconfig), client_configuration=cfg)
    if retries is not None:
        cfg.retries = retries
    ac = client.ApiClient(cfg)
    try:
        yield ac
    finally:
        ac.close()
        ac.rest_client.pool_manager.clear()


def process_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its (non-test) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(") ", 1)[1].startswith("Z")


def server_processes(data_dir: Path) -> list[int]:
    """Live processes whose command line is a tinykube server for data_dir."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            args = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tinykube.server" in args and str(data_dir).encode() in args and not process_gone(int(p.name)):
            found.append(int(p.name))
    return found


def down_and_check(c: Cluster) -> None:
    """``tinykube down``: the recorded server process is gone (at most a zombie) and its state file removed."""
    pid = c.pid()
    out = c.down().stdout
    assert f"tinykube stopped (pid {pid}" in out, out
    assert process_gone(pid), "down returned while the server process was still running"
    assert not (c.data_dir / "server.json").exists()


def is_our_server(pid: int, data_dir: Path) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"tinykube.server" in args and str(data_dir).encode() in args


def cm(name: str, data: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)


def watch_events(v1: client.CoreV1Api, ns: str, rv: str, count: int, timeout: int = 10) -> list[tuple[str, str, str]]:
    """The first `count` (type, name, resourceVersion) events of a configmap watch from rv."""
    got: list[tuple[str, str, str]] = []
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=timeout,
                       _request_timeout=REQUEST_TIMEOUT):
        o = ev["object"]
        got.append((ev["type"], o.metadata.name, o.metadata.resource_version))
        if len(got) >= count:
            w.stop()
            break
    return got


# -- (a) down + up ------------------------------------------------------------------------------------------------

def _without_status(d: dict[str, Any]) -> dict[str, Any]:
    d = dict(d)
    d.pop("status", None)
    md = dict(d["metadata"])
    for k in ("resource_version", "managed_fields"):
        md.pop(k, None)
    d["metadata"] = md
    return d


def test_data_survives_down_and_up(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.up("--no-kubeconfig-merge")
    ns = "durable"
    with api_client(c) as ac:
        v1, apps = client.CoreV1Api(ac), client.AppsV1Api(ac)
        v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={"keep": "yes"})))
        v1.create_namespaced_config_map(ns, cm("settings", {"color": "blue"}, {"app": "web"}))
        v1.create_namespaced_config_map(ns, cm("doomed", {"x": "1"}))
        v1.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="creds"),
                                                        string_data={"password": "hunter2"}))
        apps.create_namespaced_deployment(ns, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
        deadline = time.monotonic() + 10
        while not v1.list_namespaced_config_map(ns, field_selector="metadata.name=kube-root-ca.crt").items:
            assert time.monotonic() < deadline, "kube-root-ca.crt never created"
            time.sleep(0.02)
        # History after this mark must be replayable after the restart.
        mark = v1.list_namespaced_config_map(ns).metadata.resource_version
        v1.patch_namespaced_config_map("settings", ns, {"data": {"color": "green"}})
        v1.delete_namespaced_config_map("doomed", ns)
        before = {
            "ns": v1.read_namespace(ns).to_dict(),
            "cms": {i.metadata.name: i.to_dict() for i in v1.list_namespaced_config_map(ns).items},
            "secret": v1.read_namespaced_secret("creds", ns).to_dict(),
            "deploy": _without_status(apps.read_namespaced_deployment("web", ns).to_dict()),
        }
        last_rv = int(v1.list_namespace().metadata.resource_version)

    old_pid = c.pid()
    down_and_check(c)

    out = c.up("--no-kubeconfig-merge").stdout
    assert "tinykube is up at" in out and "already running" not in out
    assert c.pid() != old_pid
    with api_client(c) as ac:
        v1, apps = client.CoreV1Api(ac), client.AppsV1Api(ac)
        after_ns = v1.read_namespace(ns).to_dict()
        assert after_ns == before["ns"]
        assert {i.metadata.name: i.to_dict() for i in v1.list_namespaced_config_map(ns).items} == before["cms"]
        assert set(before["cms"]) == {"settings", "kube-root-ca.crt"}
        assert before["cms"]["settings"]["data"] == {"color": "green"}
        secret = v1.read_namespaced_secret("creds", ns)
        assert secret.to_dict() == before["secret"]
        assert base64.b64decode(secret.data["password"]) == b"hunter2"
        # Its status is the deployment controller's, re-derived after the restart; everything else must match.
        after_deploy = _without_status(apps.read_namespaced_deployment("web", ns).to_dict())
        assert after_deploy == before["deploy"]
        with pytest.raises(ApiException) as info:
            v1.read_namespaced_config_map("doomed", ns)
        assert info.value.status == 404

        # The revision log survived too: a watch from the mark replays exactly what happened after it.
        replay = watch_events(v1, ns, mark, 2)
        assert [(t, n) for t, n, _ in replay] == [("MODIFIED", "settings"), ("DELETED", "doomed")]
        assert all(int(rv) <= last_rv for _, _, rv in replay)

        # Revisions keep counting up from where they were: no resourceVersion is ever reused.
        assert int(v1.list_namespace().metadata.resource_version) >= last_rv
        new = v1.create_namespaced_config_map(ns, cm("after-restart"))
        assert int(new.metadata.resource_version) > last_rv
        patched = v1.patch_namespaced_config_map("settings", ns, {"data": {"color": "red"}})
        assert int(patched.metadata.resource_version) > int(new.metadata.resource_version)
    down_and_check(c)


def test_resource_versions_monotonic_across_compaction_and_restart(fresh_cluster: Cluster) -> None:
    """The newest revision may be a delete that compaction drops from the log; a restart must not reuse it."""
    c = fresh_cluster
    c.env["TINYKUBE_COMPACT_INTERVAL"] = "1"
    c.up("--no-kubeconfig-merge")
    with api_client(c) as ac:
        v1 = client.CoreV1Api(ac)
        v1.create_namespaced_config_map("default", cm("tomb"))
        v1.delete_namespaced_config_map("tomb", "default")
        deleted_rv = int(v1.list_namespaced_config_map("default").metadata.resource_version)
        # Wait until compaction has passed the delete: a watch from just before it is then 410.
        deadline = time.monotonic() + 10
        while True:
            try:
                got = watch_events(v1, "default", str(deleted_rv - 1), 1, timeout=1)
            except ApiException as e:
                assert e.status == 410, e.body
                break
            assert got == [("DELETED", "tomb", str(deleted_rv))]
            assert time.monotonic() < deadline, "compaction never passed the delete"
            time.sleep(0.2)
    down_and_check(c)
    c.up("--no-kubeconfig-merge")
    with api_client(c) as ac:
        v1 = client.CoreV1Api(ac)
        assert int(v1.list_namespaced_config_map("default").metadata.resource_version) >= deleted_rv
        created = v1.create_namespaced_config_map("default", cm("after"))
        assert int(created.metadata.resource_version) > deleted_rv
        # The compaction horizon is durable too.
        with pytest.raises(ApiException) as info:
            watch_events(v1, "default", str(deleted_rv - 1), 1, timeout=2)
        assert info.value.status == 410
    down_and_check(c)


# -- (b) kill -9 --------------------------------------------------------------------------------------------------

def test_kill_9_loses_no_acknowledged_write(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.up("--no-kubeconfig-merge")
    ns = "default"
    acked: list[tuple[str, int]] = []
    attempted: list[str] = []
    failure: list[BaseException] = []
    stop_writing = threading.Event()

    def writer() -> None:
        # No client-side retries: a request either got its 201 before the kill or it did not.
        with api_client(c, retries=0) as ac:
            v1 = client.CoreV1Api(ac)
            i = 0
            while not stop_writing.is_set():
                name = f"k9-{i:05d}"
                attempted.append(name)
                try:
                    obj, code, _ = v1.create_namespaced_config_map_with_http_info(
                        ns, cm(name, {"i": str(i)}), _request_timeout=REQUEST_TIMEOUT)
                except BaseException as e:
                    failure.append(e)
                    return
                if code != 201:
                    failure.append(AssertionError(f"create {name} answered {code}"))
                    return
                acked.append((name, int(obj.metadata.resource_version)))
                i += 1

    pid = c.pid()
    assert is_our_server(pid, c.data_dir.resolve()), f"pid {pid} from server.json is not this cluster's server"
    t = threading.Thread(target=writer)
    t.start()
    try:
        deadline = time.monotonic() + 15
        while len(acked) < 150 and not failure:
            assert time.monotonic() < deadline, f"only {len(acked)} creates acknowledged in 15 s"
            time.sleep(0.01)
        assert not failure, f"writer failed before the kill: {failure[0]!r}"
        os.kill(pid, signal.SIGKILL)
        t.join(timeout=REQUEST_TIMEOUT + 5)
    finally:
        stop_writing.set()
        t.join(timeout=REQUEST_TIMEOUT + 5)
    assert not t.is_alive()
    assert failure, "the writer never noticed the server was killed"
    # The writer stopped because the connection died, not because the server answered with an error.
    assert not (isinstance(failure[0], ApiException) and failure[0].status), repr(failure[0])
    deadline = time.monotonic() + 10
    while not process_gone(pid):
        assert time.monotonic() < deadline, "killed server still running"
        time.sleep(0.02)
    assert (c.data_dir / "server.json").exists(), "a killed server cannot have cleaned up its state file"

    out = c.up("--no-kubeconfig-merge").stdout
    assert "tinykube is up at" in out and "already running" not in out, out
    assert c.pid() != pid
    with api_client(c) as ac:
        v1 = client.CoreV1Api(ac)
        lst = v1.list_namespaced_config_map(ns)
        stored = {i.metadata.name: i for i in lst.items if i.metadata.name.startswith("k9-")}
        acked_names = [n for n, _ in acked]
        missing = [n for n in acked_names if n not in stored]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged creates lost: {missing[:5]}"
        # Nothing appears that was never sent; at most the one in-flight create may have committed.
        extra = set(stored) - set(acked_names)
        assert extra <= {attempted[-1]}, extra
        for name, rv in acked:
            o = stored[name]
            assert int(o.metadata.resource_version) == rv and o.data == {"i": str(int(name[3:]))}
        # A consistent store: distinct revisions, none above the list's, and the list's is a valid watch point.
        list_rv = int(lst.metadata.resource_version)
        revs = [int(i.metadata.resource_version) for i in lst.items]
        assert len(set(revs)) == len(revs) and max(revs) <= list_rv
        assert list_rv >= max(rv for _, rv in acked)
        fresh = v1.create_namespaced_config_map(ns, cm("after-crash"))
        assert int(fresh.metadata.resource_version) > list_rv
        assert watch_events(v1, ns, str(list_rv), 1) == [("ADDED", "after-crash", fresh.metadata.resource_version)]
        # Paginated reads agree with the single list.
        names: list[str] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"limit": 100}
            if token:
                kw["_continue"] = token
            page = v1.list_namespaced_config_map(ns, **kw)
            names.extend(i.metadata.name for i in page.items)
            token = page.metadata._continue
            if not token:
                break
        assert sorted(names) == sorted([*(i.metadata.name for i in lst.items), "after-crash"])
    down_and_check(c)


# -- (c) second up; side by side ----------------------------------------------------------------------------------

def test_second_up_is_a_noop_and_clusters_run_side_by_side(fresh_cluster: Cluster, tmp_path: Path) -> None:
    c1 = fresh_cluster
    c1.up("--no-kubeconfig-merge")
    state = c1.state
    again = c1.tinykube("up", "--data-dir", str(c1.data_dir), "--port", "0", "--no-kubeconfig-merge", check=False)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout and f"pid {state['pid']}" in again.stdout, again.stdout
    assert state["url"] in again.stdout
    assert c1.state == state, "a second up must not touch the running cluster's state"

    c2 = new_cluster(tmp_path / "second")
    try:
        c2.up("--no-kubeconfig-merge")
        s1, s2 = c1.state, c2.state
        assert s1["pid"] != s2["pid"] and s1["port"] != s2["port"]
        with api_client(c1) as a1, api_client(c2) as a2:
            v1, v2 = client.CoreV1Api(a1), client.CoreV1Api(a2)
            v1.create_namespaced_config_map("default", cm("only-in-one", {"n": "1"}))
            v2.create_namespaced_config_map("default", cm("only-in-two", {"n": "2"}))
            with pytest.raises(ApiException) as info:
                v2.read_namespaced_config_map("only-in-one", "default")
            assert info.value.status == 404
            with pytest.raises(ApiException) as info:
                v1.read_namespaced_config_map("only-in-two", "default")
            assert info.value.status == 404
            # Each cluster trusts only its own credentials.
            tok1 = (c1.data_dir / "token").read_text().strip()
            tok2 = (c2.data_dir / "token").read_text().strip()
            assert tok1 != tok2
            r = httpx.get(f"{s2['url']}/api/v1/namespaces", headers={"Authorization": f"Bearer {tok1}"},
                          verify=False, timeout=REQUEST_TIMEOUT)
            assert r.status_code == 401, r.text
        down_and_check(c2)
        with api_client(c1) as a1:
            assert client.CoreV1Api(a1).read_namespaced_config_map("only-in-one", "default").data == {"n": "1"}
        assert c1.tinykube("status", "--data-dir", str(c1.data_dir), check=False).returncode == 0
        assert c2.tinykube("status", "--data-dir", str(c2.data_dir), check=False).returncode == 3
        down_and_check(c1)
    finally:
        stop(c2)


# -- (d) down leaves nothing --------------------------------------------------------------------------------------

def test_down_leaves_no_process(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.up("--no-kubeconfig-merge")
    pid = c.pid()
    data_dir = c.data_dir.resolve()
    assert server_processes(data_dir) == [pid]
    # An open watch must not keep the server alive; the server ends it.
    ended = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def watcher() -> None:
        try:
            with api_client(c, retries=0) as ac:
                w = watch.Watch()
                for ev in w.stream(client.CoreV1Api(ac).list_namespaced_config_map, "default", timeout_seconds=60,
                                   _request_timeout=90):
                    seen.append(ev["type"])
        except BaseException as e:
            errors.append(e)
        finally:
            ended.set()

    t = threading.Thread(target=watcher)
    t.start()
    deadline = time.monotonic() + 10
    while "ADDED" not in seen:  # the initial events: the watch is established
        assert time.monotonic() < deadline and not ended.is_set(), f"watch never started: {errors}"
        time.sleep(0.02)
    out = c.down().stdout
    assert f"tinykube stopped (pid {pid}" in out
    assert process_gone(pid), "server pid still running after down returned"
    assert server_processes(data_dir) == []
    assert not (c.data_dir / "server.json").exists()
    assert ended.wait(10), "the watch stream outlived the server"
    t.join(5)
    # Down again is harmless and says so.
    again = c.down().stdout
    assert "not running" in again
