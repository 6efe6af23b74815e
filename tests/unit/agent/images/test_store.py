"""The image store: names, resolution, removal and garbage, pins, save/load."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tinykube.agent.images.store import Image, ImageError, ImageNotFound, ImageStore, image_digest
from tinykube.api.imageref import InvalidReference


def make_image(store: ImageStore, tmp_path: Path, files: dict[str, str], names: list[str],
               cmd: list[str] | None = None) -> Image:
    work = store.work_dir()
    for rel, data in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        if data.startswith("->"):
            os.symlink(data[2:], work / rel)
        else:
            (work / rel).write_text(data)
    tree, _ = store.commit_snapshot(work)
    config = {"Env": ["A=1"], "Cmd": cmd or ["sh"], "Entrypoint": None, "WorkingDir": "/app", "User": "",
              "ExposedPorts": {"80/tcp": {}}, "Labels": {}}
    store.cache_put("k-" + tree, tree, "COPY")
    return store.add_image(config, tree, history=[{"created_by": "COPY . /app"}], chain=["k-" + tree], names=names)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def test_add_and_resolve_in_every_form(store: ImageStore, tmp_path: Path) -> None:
    img = make_image(store, tmp_path, {"app/app.py": "print(1)\n"}, ["registry-qcc.quantil.com/oe-tools/app:1.5.0",
                                                                      "app"])
    assert img.digest.startswith("sha256:") and len(img.digest) == 71
    assert img.names == ("docker.io/library/app:latest", "registry-qcc.quantil.com/oe-tools/app:1.5.0")
    assert (img.content / "app/app.py").read_text() == "print(1)\n"
    assert img.size == len("print(1)\n") and img.config["WorkingDir"] == "/app"
    assert img.digest == image_digest(img.config, img.tree)
    for ref in ("app", "app:latest", "docker.io/library/app", "registry-qcc.quantil.com/oe-tools/app:1.5.0",
                img.digest, img.digest[7:], img.short_id, img.digest[7:11], f"sha256:{img.digest[7:15]}",
                f"whatever@{img.digest}"):
        got = store.resolve(ref)
        assert got is not None and got.digest == img.digest, ref
    assert store.resolve("app:2") is None and store.resolve("other") is None
    with pytest.raises(InvalidReference):
        store.resolve("Bad Name")
    assert img.argv() == ["sh"] and img.argv(["python"], ["x"]) == ["python", "x"]
    assert img.argv(None, ["-v"]) == ["-v"] and img.argv(["run"]) == ["run"]
    assert img.env() == {"A": "1"}
    assert img.repo_digest() == f"docker.io/library/app@{img.digest}"


def test_same_content_and_config_is_the_same_image(store: ImageStore, tmp_path: Path) -> None:
    a = make_image(store, tmp_path, {"f": "x"}, ["a"])
    b = make_image(store, tmp_path, {"f": "x"}, ["b"])
    c = make_image(store, tmp_path, {"f": "y"}, ["c"])
    assert a.digest == b.digest != c.digest
    assert store.get(a.digest) is not None and store.get(a.digest).names == ("docker.io/library/a:latest",  # type: ignore[union-attr]
                                                                             "docker.io/library/b:latest")


def test_ambiguous_prefix(store: ImageStore, tmp_path: Path) -> None:
    imgs = [make_image(store, tmp_path, {"f": str(i)}, [f"i{i}"]) for i in range(40)]
    firsts = {}
    for i in imgs:
        firsts.setdefault(i.digest[7], []).append(i)
    prefix = next(k for k, v in firsts.items() if len(v) > 1)
    with pytest.raises(ImageError, match="ambiguous"):
        store.resolve(prefix)


def test_tag_list_and_remove_like_docker(store: ImageStore, tmp_path: Path) -> None:
    old = make_image(store, tmp_path, {"app/a": "1"}, ["app:1"])
    store.tag("app:1", "app:stable")
    new = make_image(store, tmp_path, {"app/a": "2"}, ["app:1"])  # the tag moves: old keeps only 'stable'
    assert store.resolve("app:1").digest == new.digest  # type: ignore[union-attr]
    assert store.get(old.digest).names == ("docker.io/library/app:stable",)  # type: ignore[union-attr]
    assert {i.digest for i in store.list()} == {old.digest, new.digest}
    with pytest.raises(ImageError, match="invalid reference format"):
        store.tag("app:1", "App:x")
    with pytest.raises(ImageNotFound, match="No such image: nope"):
        store.tag("nope", "x")
    store.tag("app:1", "app:2")
    with pytest.raises(ImageError, match="must be forced"):
        store.remove(new.short_id)
    assert store.remove("app:2") == ["Untagged: app:2"]
    assert store.remove("app:1") == ["Untagged: app:1", f"Deleted: {new.digest}"]
    assert not new.content.exists() and old.content.exists()
    assert store.resolve("app:1") is None
    store.tag("app:stable", "app:other")
    out = store.remove(old.digest, force=True)
    assert out == ["Untagged: app:other", "Untagged: app:stable", f"Deleted: {old.digest}"]
    assert store.list() == [] and not any((store.root / "cache").iterdir())
    assert [p.name for p in (store.root / "snapshots").iterdir()] == []


def test_pinned_images_are_not_removed(store: ImageStore, tmp_path: Path) -> None:
    img = make_image(store, tmp_path, {"x": "1"}, ["app"])
    store.pin(img, "pod-uid/web")
    assert store.pins(img) == ["pod-uid_web"]
    with pytest.raises(ImageError, match="in use by pod-uid_web"):
        store.remove("app")
    assert store.remove("app", force=True) == ["Untagged: app:latest"]
    assert store.get(img.digest) is not None and img.content.is_dir()
    assert store.prune() == ([], 0)  # dangling but in use
    store.unpin(img, "pod-uid/web")
    deleted, freed = store.prune()
    assert deleted == [img.digest] and freed == 1 and not img.content.exists()


def test_save_load_roundtrip(store: ImageStore, tmp_path: Path) -> None:
    a = make_image(store, tmp_path, {"app/app.py": "print(1)\n", "app/run.sh": "#!/bin/sh\n", "app/link": "->app.py"},
                   ["app:1", "app:2"])
    b = make_image(store, tmp_path, {"b": "b"}, ["reg.example.com/b:9"])
    buf = io.BytesIO()
    store.save(["app:1", b.short_id], buf)
    buf.seek(0)
    names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
    assert "manifest.json" in names and f"images/{a.digest[7:]}.json" in names
    other = ImageStore(tmp_path / "other")
    lines = other.load(buf)
    assert lines == ["Loaded image: app:1", "Loaded image: reg.example.com/b:9"]
    got = other.resolve("app:1")
    assert got is not None and got.digest == a.digest and got.tree == a.tree
    assert os.readlink(got.content / "app/link") == "app.py"
    assert got.history == a.history and other.resolve("app:2") is None


def test_load_rejects_tampered_archives(store: ImageStore, tmp_path: Path) -> None:
    make_image(store, tmp_path, {"f": "1"}, ["app"])
    buf = io.BytesIO()
    store.save(["app"], buf)
    src = tarfile.open(fileobj=io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name.startswith("images/"):
                rec = json.loads(data)  # type: ignore[arg-type]
                rec["config"]["Cmd"] = ["evil"]
                data = json.dumps(rec).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    out.seek(0)
    with pytest.raises(ImageError, match="does not match its configuration"):
        ImageStore(tmp_path / "o2").load(out)
    with pytest.raises(ImageError, match="not a tinykube image archive"):
        ImageStore(tmp_path / "o3").load(io.BytesIO(b"garbage"))


def test_inspect(store: ImageStore, tmp_path: Path) -> None:
    img = make_image(store, tmp_path, {"f": "1"}, ["app:1"])
    out = store.inspect("app:1")
    assert out["Id"] == img.digest and out["RepoTags"] == ["app:1"]
    assert out["Config"]["ExposedPorts"] == {"80/tcp": {}} and out["Content"] == str(img.content)
    assert out["RepoDigests"] == [f"docker.io/library/app@{img.digest}"]
