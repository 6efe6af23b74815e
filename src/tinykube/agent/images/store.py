"""The local image store: immutable, content-addressed images with names.

Layout under ``<data-dir>/images/``::

    refs.json                name -> image digest ({"refs": {"docker.io/library/app:1.0": "sha256:..."}})
    images/<hex>.json        one record per image: config, content tree, history, build chain, created
    snapshots/<tree>/        content trees (files at their container paths), never modified once here
    snapshots/<tree>.json    {"size": bytes}
    cache/<key>.json         build step cache: {"tree": ..., "created": ..., "step": "RUN ..."}
    pins/<hex>/<owner>       images in use by a container (the agent pins; ``rm`` refuses, GC keeps)
    tmp/                     build working copies (removed by the next GC)
    pip-cache/               pip's download cache, shared by every build's RUN steps
    gc.lock, refs.lock       flock(2) files

**Identity.** An image's digest is ``sha256`` of the canonical JSON of its
config (Docker's keys: ``Env``, ``Cmd``, ``Entrypoint``, ``WorkingDir``,
``User``, ``ExposedPorts``, ``Labels`` ...), OS, architecture and the digest
of its content tree (:func:`.tree.tree_digest`). The creation time and build
history are recorded beside it, not hashed: building the same files and
config again, anywhere, gives the same image ID, and a fully cached rebuild
finds the image it made last time (keeping its creation time, as Docker
does).

**Content.** An image's ``content`` is a snapshot directory named by its tree
digest, shared by every image and cache entry with the same files. Snapshots
are never changed after they are committed; a build step works on a copy
(:func:`.tree.copy_tree`) and commits the result, so containers (which see
the content read-only) and cached steps can share it.

**Names.** ``refs.json`` maps normalised references to digests; tagging moves
a name, leaving the old image *dangling* (``<none>``) until ``rm``/``prune``,
as Docker does. It is rewritten atomically under ``refs.lock``.

**Garbage.** Builds hold ``gc.lock`` shared for their whole run; collection
takes it exclusively and without waiting (a running build just defers
collection to the next ``rm`` or ``prune``). Live are: every image record, the
cache entries of every image's build chain (a removed image's steps go with it,
like Docker's untagged parents) and the snapshots they name; pinned images are
never removed.

**save/load** writes a tar archive::

    manifest.json            {"format": "tinykube-image/v1", "images": [{"digest", "names", "record", "tree"}]}
    images/<hex>.json        the image records
    trees/<tree>/...         each content tree, with modes and owners

``load`` verifies every tree's digest and every image's digest before adding
anything, then points the archive's names at its images.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import platform
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ...api import imageref
from .tree import tree_digest

FORMAT = "tinykube-image/v1"
_HEX = re.compile(r"[0-9a-f]{1,64}")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


class ImageError(Exception):
    """A store operation that cannot be done; the message is for the user."""


class ImageNotFound(ImageError):
    pass


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def architecture() -> str:
    m = platform.machine()
    return _ARCH.get(m, m)


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image_digest(config: dict[str, Any], tree: str) -> str:
    import hashlib

    body = {"architecture": architecture(), "os": "linux", "config": config,
            "rootfs": {"type": "tree", "digest": "sha256:" + tree}}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class Image:
    """An image in the store. ``content`` holds its files at their container paths (read-only, shared)."""

    digest: str
    names: tuple[str, ...]
    config: dict[str, Any] = field(hash=False, compare=False)
    content: Path
    created: str
    size: int
    tree: str = ""
    history: tuple[dict[str, Any], ...] = field(default=(), hash=False, compare=False)

    @property
    def id(self) -> str:
        return self.digest

    @property
    def short_id(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for kv in self.config.get("Env") or []:
            k, _, v = str(kv).partition("=")
            out[k] = v
        return out

    def argv(self, command: Sequence[str] | None = None, args: Sequence[str] | None = None) -> list[str]:
        """The process a container runs, by Kubernetes' rules: ``command`` replaces the Entrypoint (and drops
        the image's Cmd), ``args`` replaces the Cmd."""
        entry = list(command) if command else list(self.config.get("Entrypoint") or [])
        if args:
            return entry + list(args)
        if command:
            return entry
        return entry + list(self.config.get("Cmd") or [])

    def repo_digest(self) -> str:
        """``docker.io/library/app@sha256:...`` (the first name's repository), as a container's imageID."""
        repo = imageref.repository(self.names[0]) if self.names else ""
        return f"{repo}@{self.digest}" if repo else self.digest


@contextlib.contextmanager
def _flock(path: Path, mode: int, blocking: bool = True) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


class ImageStore:
    """The images of one data dir (``ImageStore(data_dir / "images")``, or :meth:`for_data_dir`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ImageStore:
        return cls(Path(data_dir) / "images")

    # -- layout -------------------------------------------------------------------------------------------

    def _ensure(self) -> None:
        if (self.root / "snapshots").is_dir():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for d in ("images", "snapshots", "cache", "pins", "tmp", "pip-cache"):
            (self.root / d).mkdir(exist_ok=True)

    def snapshot_path(self, tree: str) -> Path:
        return self.root / "snapshots" / tree

    @property
    def pip_cache(self) -> Path:
        self._ensure()
        return self.root / "pip-cache"

    def work_dir(self, prefix: str = "build-") -> Path:
        """A fresh private directory for a build's working copies (cleaned by GC if left behind)."""
        self._ensure()
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """Held (shared) while a build runs: garbage collection waits for no build and removes nothing under it."""
        self._ensure()
        with _flock(self.root / "gc.lock", fcntl.LOCK_SH):
            yield

    # -- snapshots and cache ------------------------------------------------------------------------------

    def has_snapshot(self, tree: str) -> bool:
        return (self.root / "snapshots" / tree).is_dir() and (self.root / "snapshots" / f"{tree}.json").is_file()

    def commit_snapshot(self, work: Path) -> tuple[str, int]:
        """Move the directory ``work`` into the store as an immutable snapshot; returns (tree digest, size).
        An identical snapshot already there is reused and ``work`` is removed."""
        self._ensure()
        tree, size = tree_digest(work)
        dest = self.root / "snapshots" / tree
        if self.has_snapshot(tree):
            shutil.rmtree(work, ignore_errors=True)
            return tree, size
        if dest.exists():  # a half-committed leftover
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.rename(work, dest)
        except OSError:
            if not self.has_snapshot(tree):
                raise
            shutil.rmtree(work, ignore_errors=True)
            return tree, size
        _write_json(self.root / "snapshots" / f"{tree}.json", {"size": size})
        return tree, size

    def snapshot_size(self, tree: str) -> int:
        meta = _read_json(self.root / "snapshots" / f"{tree}.json")
        return int(meta.get("size", 0)) if isinstance(meta, dict) else 0

    def cache_get(self, key: str) -> dict[str, Any] | None:
        entry = _read_json(self.root / "cache" / f"{key}.json")
        if not isinstance(entry, dict) or not self.has_snapshot(str(entry.get("tree", ""))):
            return None
        return entry

    def cache_put(self, key: str, tree: str, step: str, extra: dict[str, Any] | None = None) -> None:
        self._ensure()
        _write_json(self.root / "cache" / f"{key}.json",
                    {"tree": tree, "created": now_rfc3339(), "step": step, **(extra or {})})

    # -- images -------------------------------------------------------------------------------------------

    def _refs(self) -> dict[str, str]:
        data = _read_json(self.root / "refs.json")
        refs = data.get("refs") if isinstance(data, dict) else None
        return {str(k): str(v) for k, v in refs.items()} if isinstance(refs, dict) else {}

    @contextlib.contextmanager
    def _refs_update(self) -> Iterator[dict[str, str]]:
        self._ensure()
        with _flock(self.root / "refs.lock", fcntl.LOCK_EX):
            refs = self._refs()
            before = dict(refs)
            yield refs
            if refs != before:
                _write_json(self.root / "refs.json", {"refs": dict(sorted(refs.items()))})

    def _record(self, digest: str) -> dict[str, Any] | None:
        hexd = digest.removeprefix("sha256:")
        if not _HEX.fullmatch(hexd) or len(hexd) != 64:
            return None
        rec = _read_json(self.root / "images" / f"{hexd}.json")
        return rec if isinstance(rec, dict) else None

    def _image(self, rec: dict[str, Any], refs: dict[str, str]) -> Image:
        digest = str(rec["digest"])
        names = tuple(sorted(n for n, d in refs.items() if d == digest))
        tree = str(rec.get("tree", ""))
        return Image(digest=digest, names=names, config=dict(rec.get("config") or {}),
                     content=self.snapshot_path(tree), created=str(rec.get("created", "")),
                     size=int(rec.get("size", 0)), tree=tree,
                     history=tuple(h for h in rec.get("history") or [] if isinstance(h, dict)))

    def get(self, digest: str) -> Image | None:
        rec = self._record(digest)
        return self._image(rec, self._refs()) if rec else None

    def list(self) -> list[Image]:
        """Every image, newest first."""
        refs = self._refs()
        out = []
        d = self.root / "images"
        if d.is_dir():
            for p in d.glob("*.json"):
                rec = _read_json(p)
                if isinstance(rec, dict) and "digest" in rec:
                    out.append(self._image(rec, refs))
        out.sort(key=lambda i: (i.created, i.digest), reverse=True)
        return out

    def resolve(self, ref: str) -> Image | None:
        """The image ``ref`` names: ``name``, ``name:tag``, a full reference, ``sha256:<hex>``, ``name@sha256:...``
        (the digest decides), or a unique prefix of an image ID (with or without ``sha256:``).

        Returns None when nothing matches. Raises :class:`imageref.InvalidReference` for a malformed reference and
        :class:`ImageError` for an ambiguous ID prefix.
        """
        ref = ref.strip()
        if ref.startswith("sha256:"):
            return self._by_prefix(ref.removeprefix("sha256:"))
        try:
            parsed = imageref.parse(ref)
        except imageref.InvalidReference:
            if _HEX.fullmatch(ref):
                return self._by_prefix(ref)
            raise
        if parsed.digest:
            return self.get(parsed.digest)
        refs = self._refs()
        digest = refs.get(str(parsed))
        if digest:
            rec = self._record(digest)
            if rec:
                return self._image(rec, refs)
        if _HEX.fullmatch(ref):
            return self._by_prefix(ref)
        return None

    def _by_prefix(self, prefix: str) -> Image | None:
        if not _HEX.fullmatch(prefix):
            return None
        d = self.root / "images"
        matches = sorted(d.glob(f"{prefix}*.json")) if d.is_dir() else []
        if len(matches) > 1:
            raise ImageError(f"ambiguous image ID prefix {prefix!r}: matches {len(matches)} images")
        return self.get(matches[0].stem) if matches else None

    def require(self, ref: str) -> Image:
        try:
            img = self.resolve(ref)
        except imageref.InvalidReference as e:
            raise ImageError(f"{ref}: {e}") from None
        if img is None:
            raise ImageNotFound(f"No such image: {ref}")
        return img

    def add_image(self, config: dict[str, Any], tree: str, *, history: Sequence[dict[str, Any]] = (),
                  chain: Sequence[str] = (), names: Sequence[str] = ()) -> Image:
        """Record an image (or find the identical one already there) and point ``names`` at it."""
        self._ensure()
        if not self.has_snapshot(tree):
            raise ImageError(f"content tree {tree} is not in the store")
        digest = image_digest(config, tree)
        path = self.root / "images" / f"{digest.removeprefix('sha256:')}.json"
        rec = self._record(digest)
        if rec is None:
            rec = {"digest": digest, "tree": tree, "config": config, "created": now_rfc3339(),
                   "size": self.snapshot_size(tree), "history": list(history), "chain": list(chain),
                   "os": "linux", "architecture": architecture()}
            _write_json(path, rec)
        elif chain and not set(chain) <= set(rec.get("chain") or []):
            rec["chain"] = sorted(set(rec.get("chain") or []) | set(chain))
            _write_json(path, rec)
        if names:
            self.set_names(names, digest)
        img = self.get(digest)
        assert img is not None
        return img

    def set_names(self, names: Sequence[str], digest: str) -> None:
        full = [str(imageref.parse(n)) for n in names]
        with self._refs_update() as refs:
            for n in full:
                refs[n] = digest

    def tag(self, source: str, target: str) -> Image:
        img = self.require(source)
        try:
            ref = imageref.parse(target)
        except imageref.InvalidReference as e:
            raise ImageError(f"{target}: {e}") from None
        if ref.digest:
            raise ImageError(f"refusing to create a tag with a digest reference: {target}")
        self.set_names([str(ref)], img.digest)
        out = self.get(img.digest)
        assert out is not None
        return out

    # -- pins ---------------------------------------------------------------------------------------------

    def pin(self, image: Image | str, owner: str) -> None:
        """Mark an image in use by ``owner`` (e.g. a pod UID and container): it cannot be removed meanwhile."""
        digest = image.digest if isinstance(image, Image) else image
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", owner) or "_"
        d = self.root / "pins" / digest.removeprefix("sha256:")
        d.mkdir(parents=True, exist_ok=True)
        (d / safe).touch()

    def unpin(self, image: Image | str, owner: str) -> None:
        digest = image.digest if isinstance(image, Image) else image
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", owner) or "_"
        d = self.root / "pins" / digest.removeprefix("sha256:")
        with contextlib.suppress(OSError):
            (d / safe).unlink()
        with contextlib.suppress(OSError):
            d.rmdir()

    def pins(self, image: Image | str) -> builtins.list[str]:
        digest = image.digest if isinstance(image, Image) else image
        d = self.root / "pins" / digest.removeprefix("sha256:")
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    # -- removal ------------------------------------------------------------------------------------------

    def remove(self, ref: str, *, force: bool = False) -> builtins.list[str]:
        """``docker rmi``: a name is untagged, and an image left without names is deleted. Removing by ID an
        image with several names needs ``force`` (and removes them all). An image in use (pinned) is only
        untagged with ``force`` and kept until it is unpinned. Returns Docker's ``Untagged:``/``Deleted:`` lines."""
        img = self.require(ref)
        by_name = False
        full = ""
        if not ref.startswith("sha256:"):
            with contextlib.suppress(imageref.InvalidReference):
                p = imageref.parse(ref)
                full = str(p)
                by_name = not p.digest and full in img.names
        out: builtins.list[str] = []
        pinned = self.pins(img)
        if by_name and len(img.names) > 1:
            with self._refs_update() as refs:
                refs.pop(full, None)
            return [f"Untagged: {imageref.familiar(full)}"]
        if len(img.names) > 1 and not force:
            raise ImageError(f"conflict: unable to delete {img.short_id} (must be forced) - image is referenced "
                             "in multiple repositories")
        if pinned and not force:
            raise ImageError(f"conflict: unable to remove repository reference {ref!r} (must force) - image "
                             f"{img.short_id} is in use by {', '.join(pinned)}")
        with self._refs_update() as refs:
            for n in img.names:
                if refs.get(n) == img.digest:
                    del refs[n]
                    out.append(f"Untagged: {imageref.familiar(n)}")
        if not pinned:
            with contextlib.suppress(FileNotFoundError):
                (self.root / "images" / f"{img.digest.removeprefix('sha256:')}.json").unlink()
            out.append(f"Deleted: {img.digest}")
            self.collect()
        return out

    def prune(self) -> tuple[builtins.list[str], int]:
        """Remove dangling (nameless, unpinned) images and unused cache; returns (deleted IDs, bytes reclaimed)."""
        deleted: builtins.list[str] = []
        for img in self.list():
            if not img.names and not self.pins(img):
                with contextlib.suppress(FileNotFoundError):
                    (self.root / "images" / f"{img.digest.removeprefix('sha256:')}.json").unlink()
                deleted.append(img.digest)
        return deleted, self.collect()

    def collect(self) -> int:
        """Delete cache entries and snapshots no image needs; returns bytes reclaimed (0 if a build is running)."""
        if not (self.root / "snapshots").is_dir():
            return 0
        with _flock(self.root / "gc.lock", fcntl.LOCK_EX, blocking=False) as got:
            if not got:
                return 0
            live_trees: set[str] = set()
            live_keys: set[str] = set()
            for p in (self.root / "images").glob("*.json"):
                rec = _read_json(p)
                if not isinstance(rec, dict):
                    continue
                live_trees.add(str(rec.get("tree", "")))
                live_keys.update(str(k) for k in rec.get("chain") or [])
            for p in (self.root / "cache").glob("*.json"):
                if p.stem in live_keys:
                    entry = _read_json(p)
                    if isinstance(entry, dict):
                        live_trees.add(str(entry.get("tree", "")))
                        continue
                p.unlink(missing_ok=True)
            freed = 0
            for p in (self.root / "snapshots").iterdir():
                tree = p.name.removesuffix(".json")
                if tree in live_trees:
                    continue
                if p.suffix == ".json":
                    freed += self.snapshot_size(tree)
                    p.unlink(missing_ok=True)
                else:
                    _rmtree(p)
            for p in (self.root / "tmp").iterdir():
                _rmtree(p)
            return freed

    # -- inspect, save, load ------------------------------------------------------------------------------

    def inspect(self, ref: str) -> dict[str, Any]:
        """Docker-like ``image inspect`` output for one image."""
        img = self.require(ref)
        rec = self._record(img.digest) or {}
        return {
            "Id": img.digest,
            "RepoTags": [imageref.familiar(n) for n in img.names],
            "RepoDigests": sorted({f"{imageref.repository(n)}@{img.digest}" for n in img.names}),
            "Created": img.created,
            "Config": img.config,
            "Architecture": rec.get("architecture", architecture()),
            "Os": "linux",
            "Size": img.size,
            "RootFS": {"Type": "tree", "Digest": "sha256:" + img.tree},
            "Content": str(img.content),
            "History": list(img.history),
            "InUseBy": self.pins(img),
        }

    def save(self, refs: Sequence[str], out: IO[bytes]) -> None:
        """Write the images ``refs`` name (with the names given, or all their names for IDs) as a tar stream."""
        chosen: dict[str, tuple[Image, set[str]]] = {}
        for r in refs:
            img = self.require(r)
            names: set[str] = set()
            if r.startswith("sha256:") or (_HEX.fullmatch(r) and r not in (imageref.familiar(n) for n in img.names)):
                names = set(img.names)
            else:
                with contextlib.suppress(imageref.InvalidReference):
                    p = imageref.parse(r)
                    names = {str(p)} if not p.digest else set(img.names)
            prev = chosen.get(img.digest)
            chosen[img.digest] = (img, (prev[1] if prev else set()) | names)
        manifest = {"format": FORMAT, "images": []}
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            trees: set[str] = set()
            for digest, (img, names) in chosen.items():
                hexd = digest.removeprefix("sha256:")
                rec = self._record(digest) or {}
                rec = {k: v for k, v in rec.items() if k != "chain"}
                data = canonical_json(rec)
                info = tarfile.TarInfo(f"images/{hexd}.json")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                tar.addfile(info, _bytes_io(data))
                manifest["images"].append({"digest": digest, "names": sorted(names),  # type: ignore[attr-defined]
                                           "record": info.name, "tree": img.tree})
                if img.tree not in trees:
                    trees.add(img.tree)
                    tar.add(str(img.content), arcname=f"trees/{img.tree}", recursive=True)
            data = canonical_json(manifest)
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, _bytes_io(data))

    def load(self, src: IO[bytes]) -> builtins.list[str]:
        """Add the images of a :meth:`save` archive; returns Docker's ``Loaded image: ...`` lines."""
        self._ensure()
        work = self.work_dir("load-")
        try:
            with self.building():
                try:
                    with tarfile.open(fileobj=src, mode="r|*") as tar:
                        for member in tar:
                            if not (member.name == "manifest.json" or member.name.startswith(("images/", "trees/"))):
                                raise ImageError(f"not a tinykube image archive (unexpected member {member.name!r})")
                            tar.extract(member, work, numeric_owner=True, filter=_keep_owner_filter)
                except tarfile.TarError as e:
                    raise ImageError(f"not a tinykube image archive: {e}") from None
                manifest = _read_json(work / "manifest.json")
                if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                    raise ImageError("not a tinykube image archive (no manifest.json of format " + FORMAT + ")")
                loaded: builtins.list[tuple[str, builtins.list[str]]] = []
                for entry in manifest.get("images") or []:
                    digest, tree = str(entry.get("digest", "")), str(entry.get("tree", ""))
                    rec = _read_json(work / str(entry.get("record", "")))
                    tdir = work / "trees" / tree
                    if not isinstance(rec, dict) or not re.fullmatch(r"[0-9a-f]{64}", tree):
                        raise ImageError(f"archive entry for {digest} is incomplete")
                    if not self.has_snapshot(tree):
                        if not tdir.is_dir():
                            raise ImageError(f"archive has no content for {digest}")
                        got, _ = self.commit_snapshot(tdir)
                        if got != tree:
                            raise ImageError(f"content of {digest} does not match its digest (corrupt archive)")
                    config = rec.get("config") or {}
                    if image_digest(config, tree) != digest or rec.get("digest") != digest:
                        raise ImageError(f"image {digest} does not match its configuration (corrupt archive)")
                    path = self.root / "images" / f"{digest.removeprefix('sha256:')}.json"
                    if not path.exists():
                        _write_json(path, {**rec, "chain": [], "size": self.snapshot_size(tree)})
                    loaded.append((digest, [str(n) for n in entry.get("names") or []]))
                out = []
                for digest, names in loaded:
                    if names:
                        self.set_names(names, digest)
                        out += [f"Loaded image: {imageref.familiar(n)}" for n in names]
                    else:
                        out.append(f"Loaded image ID: {digest}")
                return out
        finally:
            _rmtree(work)


def _bytes_io(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)


def _keep_owner_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's ``data`` safety checks (no absolute paths, nothing outside ``dest``, no device files), but modes
    and owners kept: they are part of the content's identity."""
    tarfile.data_filter(member, dest)
    return member


def _rmtree(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            p.unlink()
