"""Pod volumes on the node: emptyDir (disk and tmpfs), projected data volumes, hostPath, mounts and cleanup.

These tests run as root (as CI does): ownership and tmpfs mounts are part of what is tested, so without root
they fail rather than skip.
"""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tinykube.agent.volumes import (
    DATA_LINK,
    FileProjection,
    Mount,
    VolumeError,
    cleanup,
    container_mounts,
    mounts_under,
    prepare,
    refresh,
    tmpfs_size,
    write_atomic,
)

OWNER = 65534


@pytest.fixture(autouse=True)
def _require_root() -> None:
    assert os.geteuid() == 0, "volume tests must run as root (ownership and tmpfs mounts are under test)"


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class FakeLookup:
    def __init__(self) -> None:
        self.configmaps: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.configmaps.get(f"{namespace}/{name}")

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get(f"{namespace}/{name}")

    def services(self, namespace: str) -> list[dict[str, Any]]:
        return []


def make_pod(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]] | None = None,
             resources: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-0", "namespace": "prod", "uid": "u-1", "labels": {"app": "web", "v": "1"},
                     "annotations": {"team": "blue"}},
        "spec": {"containers": [{"name": "app", "volumeMounts": mounts or [], "resources": resources or {}}],
                 "volumes": volumes},
    }


def owner(p: Path) -> int:
    return p.lstat().st_uid


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def read_tree(d: Path) -> dict[str, bytes]:
    """What a container sees: visible names (following the symlinks), hidden entries left out."""
    out: dict[str, bytes] = {}
    for entry in sorted(os.listdir(d)):
        if entry.startswith(".."):
            continue
        p = d / entry
        if p.is_dir():
            out.update({f"{entry}/{k}": v for k, v in read_tree(p).items()})
        else:
            out[entry] = p.read_bytes()
    return out


@pytest.fixture
def pod_dir(tmp_path: Path) -> Any:
    d = tmp_path / "pods" / "u-1"
    d.mkdir(parents=True)
    yield d
    if d.exists():
        cleanup(d)  # never leave a tmpfs behind, whatever the test did


# ------------------------------------------------------------------------------------------- emptyDir


def test_empty_dir_on_disk(pod_dir: Path) -> None:
    paths = prepare(make_pod([{"name": "scratch", "emptyDir": {}}]), pod_dir, FakeLookup(), owner_uid=OWNER)
    d = paths["scratch"]
    assert d == pod_dir / "volumes" / "kubernetes.io~empty-dir" / "scratch"
    assert d.is_dir() and mode(d) == 0o777 and owner(d) == OWNER
    assert mounts_under(pod_dir) == []
    (d / "kept").write_text("x")
    assert prepare(make_pod([{"name": "scratch", "emptyDir": {}}]), pod_dir, FakeLookup(), owner_uid=OWNER) == paths
    assert (d / "kept").read_text() == "x"  # idempotent: content survives a second prepare


def test_memory_empty_dir_is_a_sized_tmpfs_and_cleanup_unmounts_it(pod_dir: Path) -> None:
    pod = make_pod([{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}])
    d = prepare(pod, pod_dir, FakeLookup(), owner_uid=OWNER)["shm"]
    info = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    mine = [f for f in info if f[4] == str(d)]
    assert len(mine) == 1
    sep = mine[0].index("-")
    assert mine[0][sep + 1] == "tmpfs"
    assert "size=1024k" in mine[0][sep + 3]
    assert mode(d) == 0o777 and owner(d) == OWNER

    prepare(pod, pod_dir, FakeLookup(), owner_uid=OWNER)  # again: no second mount stacked
    assert mounts_under(pod_dir) == [str(d)]

    (d / "f").write_bytes(b"in memory")
    cleanup(pod_dir)
    assert not pod_dir.exists()
    assert str(d) not in Path("/proc/self/mountinfo").read_text()


def test_tmpfs_size_rules() -> None:
    src: dict[str, Any] = {"medium": "Memory"}
    alloc = {"memory": "8Gi"}
    no_limits = make_pod([])
    assert tmpfs_size(no_limits, src, None) is None
    assert tmpfs_size(no_limits, src, alloc) == 8 * 2**30
    limited = make_pod([], resources={"limits": {"memory": "256Mi"}})
    assert tmpfs_size(limited, src, alloc) == 256 * 2**20
    assert tmpfs_size(limited, {"sizeLimit": "64Mi"}, alloc) == 64 * 2**20
    assert tmpfs_size(limited, {"sizeLimit": "1Gi"}, alloc) == 256 * 2**20  # only ever lowered
    limited["spec"]["containers"].append({"name": "side"})  # one container without a limit: no pod limit
    assert tmpfs_size(limited, src, alloc) == 8 * 2**30


def test_cleanup_after_a_crash_finds_mounts_from_mountinfo(pod_dir: Path, tmp_path: Path) -> None:
    # mounts made by an earlier agent process: nothing in memory knows of them
    inner = pod_dir / "volumes" / "kubernetes.io~empty-dir" / "a"
    inner.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inner)], check=True)
    nested = inner / "nested"
    nested.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(nested)], check=True)
    # a bind mount of something outside the pod directory: its content must survive the cleanup
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    bound = pod_dir / "bound"
    bound.mkdir()
    subprocess.run(["mount", "--bind", str(outside), str(bound)], check=True)
    # a mount elsewhere whose path merely shares the prefix is not ours
    sibling = pod_dir.parent / (pod_dir.name + "-other")
    sibling.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sibling)], check=True)
    try:
        assert sorted(mounts_under(pod_dir)) == sorted([str(inner), str(nested), str(bound)])
        cleanup(pod_dir)
        assert not pod_dir.exists()
        assert (outside / "precious").read_text() == "keep me"
        assert mounts_under(pod_dir) == []
        assert mounts_under(sibling) == [str(sibling)]
    finally:
        subprocess.run(["umount", str(sibling)], check=False)


def test_cleanup_decodes_escaped_mount_points(tmp_path: Path) -> None:
    pod_dir = tmp_path / "pods dir" / "u\t1"  # mountinfo writes these as \040 and \011
    pod = make_pod([{"name": "m", "emptyDir": {"medium": "Memory"}}])
    d = prepare(pod, pod_dir, FakeLookup(), owner_uid=OWNER)["m"]
    assert mounts_under(pod_dir) == [str(d)]
    cleanup(pod_dir)
    assert not pod_dir.exists() and mounts_under(tmp_path) == []


def test_cleanup_of_a_missing_directory_is_a_no_op(tmp_path: Path) -> None:
    cleanup(tmp_path / "never-created")
    assert not (tmp_path / "never-created").exists()


# ------------------------------------------------------------------------------------------- configMap / secret


def test_config_map_volume(pod_dir: Path) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/cfg"] = {"data": {"app.conf": "port=80\n", "mode": "fast"},
                                     "binaryData": {"logo.bin": b64(b"\x00\x01\xff")}}
    d = prepare(make_pod([{"name": "conf", "configMap": {"name": "cfg"}}]), pod_dir, lookup, owner_uid=OWNER)["conf"]
    assert d == pod_dir / "volumes" / "kubernetes.io~configmap" / "conf"
    assert read_tree(d) == {"app.conf": b"port=80\n", "mode": b"fast", "logo.bin": b"\x00\x01\xff"}
    # the atomic writer's layout: visible names are links through ..data to a version directory
    assert (d / DATA_LINK).is_symlink()
    version = os.readlink(d / DATA_LINK)
    assert version.startswith("..") and "/" not in version
    assert os.readlink(d / "app.conf") == "..data/app.conf"
    assert mode(d / "app.conf") == 0o644
    assert owner(d / version / "app.conf") == OWNER


def test_config_map_items_modes_and_nested_paths(pod_dir: Path) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/cfg"] = {"data": {"a": "A", "b": "B", "c": "C"}}
    vol = {"name": "conf", "configMap": {"name": "cfg", "defaultMode": 0o600,
                                         "items": [{"key": "a", "path": "dir/sub/a.txt", "mode": 0o755},
                                                   {"key": "b", "path": "b.txt"}]}}
    d = prepare(make_pod([vol]), pod_dir, lookup, owner_uid=OWNER)["conf"]
    assert read_tree(d) == {"dir/sub/a.txt": b"A", "b.txt": b"B"}
    assert mode(d / "dir" / "sub" / "a.txt") == 0o755
    assert mode(d / "b.txt") == 0o600
    assert os.readlink(d / "dir") == "..data/dir"


def test_config_map_missing(pod_dir: Path) -> None:
    lookup = FakeLookup()
    with pytest.raises(VolumeError) as err:
        prepare(make_pod([{"name": "conf", "configMap": {"name": "cfg"}}]), pod_dir, lookup, owner_uid=OWNER)
    assert err.value.reason == "FailedMount"
    assert err.value.message == 'MountVolume.SetUp failed for volume "conf" : configmap "cfg" not found'

    d = prepare(make_pod([{"name": "conf", "configMap": {"name": "cfg", "optional": True}}]), pod_dir, lookup,
                owner_uid=OWNER)["conf"]
    assert d.is_dir() and read_tree(d) == {}

    lookup.configmaps["prod/cfg"] = {"data": {"a": "A"}}
    items = [{"key": "a", "path": "a"}, {"key": "zz", "path": "zz"}]
    with pytest.raises(VolumeError, match="configmap references non-existent config key: zz"):
        prepare(make_pod([{"name": "c2", "configMap": {"name": "cfg", "items": items}}]), pod_dir, lookup,
                owner_uid=OWNER)
    d = prepare(make_pod([{"name": "c3", "configMap": {"name": "cfg", "items": items, "optional": True}}]),
                pod_dir, lookup, owner_uid=OWNER)["c3"]
    assert read_tree(d) == {"a": b"A"}


def test_secret_volume(pod_dir: Path) -> None:
    lookup = FakeLookup()
    lookup.secrets["prod/s"] = {"data": {"id_rsa": b64("PRIVATE"), "raw": b64(b"\xff\xfe")}}
    vol = {"name": "keys", "secret": {"secretName": "s", "defaultMode": 0o400}}
    d = prepare(make_pod([vol]), pod_dir, lookup, owner_uid=OWNER)["keys"]
    assert d == pod_dir / "volumes" / "kubernetes.io~secret" / "keys"
    assert read_tree(d) == {"id_rsa": b"PRIVATE", "raw": b"\xff\xfe"}
    assert mode(d / "id_rsa") == 0o400
    assert (d / "id_rsa").stat().st_uid == OWNER  # the pod's root can read its 0400 key

    with pytest.raises(VolumeError) as err:
        prepare(make_pod([{"name": "k2", "secret": {"secretName": "gone"}}]), pod_dir, lookup, owner_uid=OWNER)
    assert err.value.message == 'MountVolume.SetUp failed for volume "k2" : secret "gone" not found'
    with pytest.raises(VolumeError, match="references non-existent secret key: nope"):
        prepare(make_pod([{"name": "k3", "secret": {"secretName": "s", "items": [{"key": "nope", "path": "x"}]}}]),
                pod_dir, lookup, owner_uid=OWNER)


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape", "a/../../b", "..data/x", "..hidden"])
def test_item_paths_are_validated(pod_dir: Path, path: str) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/cfg"] = {"data": {"a": "A"}}
    vol = {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "a", "path": path}]}}
    with pytest.raises(VolumeError, match="invalid path"):
        prepare(make_pod([vol]), pod_dir, lookup, owner_uid=OWNER)
    assert not (pod_dir.parent / "escape").exists()


def test_conflicting_item_paths_fail_cleanly(pod_dir: Path) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/cfg"] = {"data": {"a": "A", "b": "B"}}
    vol = {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "x"},
                                                                  {"key": "b", "path": "x/y"}]}}
    with pytest.raises(VolumeError) as err:
        prepare(make_pod([vol]), pod_dir, lookup, owner_uid=OWNER)
    assert err.value.message.startswith('MountVolume.SetUp failed for volume "conf" : writing ')


# ------------------------------------------------------------------------------------------- downwardAPI / projected


def test_downward_api_volume(pod_dir: Path) -> None:
    items = [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "meta/name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o600},
        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}},
    ]
    pod = make_pod([{"name": "info", "downwardAPI": {"items": items}}], resources={"limits": {"memory": "128Mi"}})
    d = prepare(pod, pod_dir, FakeLookup(), owner_uid=OWNER, node_allocatable={"cpu": "3", "memory": "1Gi"})["info"]
    assert d == pod_dir / "volumes" / "kubernetes.io~downward-api" / "info"
    assert read_tree(d) == {
        "labels": b'app="web"\nv="1"',
        "annotations": b'team="blue"',
        "meta/name": b"web-0",
        "app": b"web",
        "mem": b"128",
        "cpu": b"3000",  # no limit: the node's allocatable
    }
    assert mode(d / "meta" / "name") == 0o600 and mode(d / "labels") == 0o644


def test_downward_api_errors_are_aggregated(pod_dir: Path) -> None:
    items = [{"path": "a", "fieldRef": {"fieldPath": "spec.bogus"}},
             {"path": "b", "resourceFieldRef": {"resource": "limits.cpu"}}]
    with pytest.raises(VolumeError) as err:
        prepare(make_pod([{"name": "info", "downwardAPI": {"items": items}}]), pod_dir, FakeLookup(), owner_uid=OWNER)
    assert err.value.message == ('MountVolume.SetUp failed for volume "info" : '
                                 "[field label not supported: spec.bogus, container  not found]")


def test_projected_volume(pod_dir: Path) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/ca"] = {"data": {"ca.crt": "CERT"}}
    lookup.secrets["prod/s"] = {"data": {"user": b64("bob")}}
    vol = {"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
        {"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"secret": {"name": "s", "items": [{"key": "user", "path": "creds/user", "mode": 0o400}]}},
        {"secret": {"name": "absent", "optional": True}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}}
    d = prepare(make_pod([vol]), pod_dir, lookup, owner_uid=OWNER)["all"]
    assert d == pod_dir / "volumes" / "kubernetes.io~projected" / "all"
    assert read_tree(d) == {"token": b"", "ca.crt": b"CERT", "creds/user": b"bob", "namespace": b"prod"}
    assert mode(d / "ca.crt") == 0o440 and mode(d / "token") == 0o440 and mode(d / "creds" / "user") == 0o400

    bad = {"name": "bad", "projected": {"sources": [{"configMap": {"name": "x"}}, {"secret": {"name": "y"}}]}}
    with pytest.raises(VolumeError) as err:
        prepare(make_pod([bad]), pod_dir, lookup, owner_uid=OWNER)
    assert err.value.message.endswith(': [configmap "x" not found, secret "y" not found]')


# ------------------------------------------------------------------------------------------- updates


def test_refresh_rewrites_only_changed_volumes_atomically(pod_dir: Path) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/cfg"] = {"data": {"a": "1", "b": "2"}}
    lookup.secrets["prod/s"] = {"data": {"k": b64("v")}}
    pod = make_pod([{"name": "conf", "configMap": {"name": "cfg"}}, {"name": "sec", "secret": {"secretName": "s"}},
                    {"name": "tmp", "emptyDir": {}}])
    paths = prepare(pod, pod_dir, lookup, owner_uid=OWNER)
    d = paths["conf"]
    first = os.readlink(d / DATA_LINK)

    assert refresh(pod, pod_dir, lookup, owner_uid=OWNER) == []
    assert os.readlink(d / DATA_LINK) == first  # nothing written

    lookup.configmaps["prod/cfg"] = {"data": {"a": "one", "c": "3"}}
    assert refresh(pod, pod_dir, lookup, owner_uid=OWNER) == ["conf"]
    second = os.readlink(d / DATA_LINK)
    assert second != first
    assert read_tree(d) == {"a": b"one", "c": b"3"}
    assert not os.path.lexists(d / "b")  # a name that went away is removed
    assert not (d / first).exists()  # the old version is gone
    assert sorted(e for e in os.listdir(d) if e.startswith("..")) == sorted([DATA_LINK, second])
    assert read_tree(paths["sec"]) == {"k": b"v"}


def test_refresh_keeps_content_when_the_source_disappears(pod_dir: Path) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/cfg"] = {"data": {"a": "1"}}
    lookup.configmaps["prod/opt"] = {"data": {"o": "1"}}
    pod = make_pod([{"name": "conf", "configMap": {"name": "cfg"}},
                    {"name": "opt", "configMap": {"name": "opt", "optional": True}}])
    paths = prepare(pod, pod_dir, lookup, owner_uid=OWNER)
    del lookup.configmaps["prod/cfg"]
    del lookup.configmaps["prod/opt"]

    errors: list[VolumeError] = []
    assert refresh(pod, pod_dir, lookup, owner_uid=OWNER, errors=errors) == ["opt"]
    assert [e.volume for e in errors] == ["conf"]
    assert read_tree(paths["conf"]) == {"a": b"1"}  # kept
    assert read_tree(paths["opt"]) == {}  # an optional source that is gone empties the volume

    with pytest.raises(VolumeError, match='configmap "cfg" not found'):
        refresh(pod, pod_dir, lookup, owner_uid=OWNER)


def test_refresh_follows_label_changes(pod_dir: Path) -> None:
    pod = make_pod([{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}])
    d = prepare(pod, pod_dir, FakeLookup(), owner_uid=OWNER)["info"]
    pod["metadata"]["labels"]["v"] = "2"
    assert refresh(pod, pod_dir, FakeLookup(), owner_uid=OWNER) == ["info"]
    assert (d / "labels").read_bytes() == b'app="web"\nv="2"'


def test_refresh_ignores_volumes_not_prepared(pod_dir: Path) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/cfg"] = {"data": {"a": "1"}}
    pod = make_pod([{"name": "conf", "configMap": {"name": "cfg"}}])
    assert refresh(pod, pod_dir, lookup, owner_uid=OWNER) == []
    assert not (pod_dir / "volumes").exists()


def test_write_atomic_repairs_an_interrupted_write(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    target.mkdir()
    assert write_atomic(target, {"a": FileProjection(b"1", 0o644)}) is True
    current = os.readlink(target / DATA_LINK)
    # a crash left a half-written version, a dangling swap link, and lost a visible name
    (target / "..2020_01_01_00_00_00.half").mkdir()
    os.symlink("..2020_01_01_00_00_00.half", target / "..data_tmp")
    (target / "a").unlink()
    assert write_atomic(target, {"a": FileProjection(b"1", 0o644)}) is False  # same content: nothing rewritten
    assert os.readlink(target / DATA_LINK) == current
    assert (target / "a").read_bytes() == b"1"
    assert sorted(os.listdir(target)) == sorted([DATA_LINK, current, "a"])


# ------------------------------------------------------------------------------------------- hostPath


def test_host_path_types(tmp_path: Path, pod_dir: Path) -> None:
    def one(path: Path | str, kind: str) -> Path:
        vol = {"name": "h", "hostPath": {"path": str(path), "type": kind}}
        return prepare(make_pod([vol]), pod_dir, FakeLookup(), owner_uid=OWNER)["h"]

    def fails(path: Path | str, kind: str) -> str:
        with pytest.raises(VolumeError) as err:
            one(path, kind)
        assert err.value.reason == "FailedMount"
        assert err.value.message.startswith('MountVolume.SetUp failed for volume "h" : ')
        return err.value.message.split(" : ", 1)[1]

    made = tmp_path / "made" / "deep"
    assert one(made, "DirectoryOrCreate") == made
    assert made.is_dir() and mode(made) == 0o755 and owner(made) == OWNER
    assert one(made, "Directory") == made
    assert fails(tmp_path / "nope", "Directory") == f"hostPath type check failed: {tmp_path}/nope is not a directory"

    f = tmp_path / "file.txt"
    assert one(f, "FileOrCreate") == f
    assert f.is_file() and mode(f) == 0o644
    assert one(f, "File") == f
    assert fails(made, "File") == f"hostPath type check failed: {made} is not a file"
    assert fails(f, "DirectoryOrCreate") == f"hostPath type check failed: {f} is not a directory"
    assert fails(tmp_path / "no-parent" / "f", "FileOrCreate").startswith(f"open {tmp_path}/no-parent/f: ")

    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        assert one(sock_path, "Socket") == sock_path
    assert fails(f, "Socket") == f"hostPath type check failed: {f} is not a socket file"
    assert one("/dev/null", "CharDevice") == Path("/dev/null")
    assert fails(f, "CharDevice") == f"hostPath type check failed: {f} is not a character device"
    assert fails("/dev/null", "BlockDevice") == "hostPath type check failed: /dev/null is not a block device"
    assert fails(f, "Weird") == "Weird is an invalid volume type"

    untyped = tmp_path / "untyped"
    assert one(untyped, "") == untyped and untyped.is_dir()  # what the runtime does for a missing source
    assert one(f, "") == f


def test_unsupported_volume_type(pod_dir: Path) -> None:
    with pytest.raises(VolumeError, match=r"no volume plugin matched.*nfs"):
        prepare(make_pod([{"name": "n", "nfs": {"server": "x", "path": "/"}}]), pod_dir, FakeLookup(),
                owner_uid=OWNER)


# ------------------------------------------------------------------------------------------- container mounts


def test_container_mounts(pod_dir: Path, tmp_path: Path) -> None:
    lookup = FakeLookup()
    lookup.configmaps["prod/cfg"] = {"data": {"app.conf": "x"}}
    host = tmp_path / "host"
    host.mkdir()
    vols = [{"name": "conf", "configMap": {"name": "cfg"}}, {"name": "scratch", "emptyDir": {}},
            {"name": "h", "hostPath": {"path": str(host)}}]
    mounts = [
        {"name": "scratch", "mountPath": "/data"},
        {"name": "conf", "mountPath": "/etc/app"},
        {"name": "conf", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
        {"name": "scratch", "mountPath": "/cache", "subPath": "cache/one"},
        {"name": "h", "mountPath": "host", "readOnly": True},
    ]
    pod = make_pod(vols, mounts)
    paths = prepare(pod, pod_dir, lookup, owner_uid=OWNER)
    got = container_mounts(pod, pod["spec"]["containers"][0], paths, owner_uid=OWNER)
    scratch = paths["scratch"]
    assert got == [
        Mount(scratch, "/data", False),
        Mount(paths["conf"], "/etc/app", True),  # data volumes are always read-only
        Mount(paths["conf"] / "app.conf", "/etc/app.conf", True),
        Mount(scratch / "cache" / "one", "/cache", False),
        Mount(host, "/host", True),
    ]
    created = scratch / "cache" / "one"
    assert created.is_dir() and owner(created) == OWNER and mode(created) == 0o777


def test_container_mount_errors(pod_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pod = make_pod([{"name": "scratch", "emptyDir": {}}])
    paths = prepare(pod, pod_dir, FakeLookup(), owner_uid=OWNER)
    os.symlink(str(outside), paths["scratch"] / "escape")

    def fails(mount: dict[str, Any], env: dict[str, str] | None = None) -> VolumeError:
        ctr = {"name": "app", "volumeMounts": [mount]}
        with pytest.raises(VolumeError) as err:
            container_mounts(pod, ctr, paths, env=env)
        assert err.value.reason == "CreateContainerConfigError"
        return err.value

    assert fails({"name": "ghost", "mountPath": "/x"}).message == \
        'cannot find volume "ghost" to mount into container "app"'
    assert fails({"name": "scratch", "mountPath": "/x", "subPath": "/abs"}).message == \
        "error SubPath `/abs` must not be an absolute path"
    assert fails({"name": "scratch", "mountPath": "/x", "subPath": "a/../../b"}).message == \
        "unable to provision SubPath `a/../../b`: must not contain '..'"
    assert fails({"name": "scratch", "mountPath": "/x", "subPath": "escape"}).message == \
        'failed to prepare subPath for volumeMount "scratch" of container "app"'
    assert fails({"name": "scratch", "mountPath": "/x", "subPath": "escape/new"}).message == \
        'failed to create subPath directory for volumeMount "scratch" of container "app"'
    assert not (outside / "new").exists()
    assert "subPathExpr" in fails({"name": "scratch", "mountPath": "/x", "subPathExpr": "$(POD)"}).message
    assert fails({"name": "scratch", "mountPath": "/x", "subPathExpr": "$(POD)/$(NS)/$(EMPTY)"},
                 {"POD": "web-0", "EMPTY": ""}).message == "missing value for EMPTY, NS"


def test_sub_path_expr(pod_dir: Path) -> None:
    pod = make_pod([{"name": "logs", "emptyDir": {}}])
    paths = prepare(pod, pod_dir, FakeLookup(), owner_uid=OWNER)
    ctr = {"name": "app", "volumeMounts": [{"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"}]}
    got = container_mounts(pod, ctr, paths, env={"POD_NAME": "web-0"}, owner_uid=OWNER)
    assert got == [Mount(paths["logs"] / "web-0", "/logs", False)]
    assert (paths["logs"] / "web-0").is_dir()
