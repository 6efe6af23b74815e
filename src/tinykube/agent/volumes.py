"""A pod's volumes, materialised in the pod's directory on the node.

Layout
------
Each pod has a directory (``pod_dir``, e.g. ``DATA/agent/NODE/pods/UID``). Volumes
live under ``pod_dir/volumes/<plugin>/<name>`` with the kubelet's plugin directory
names (``kubernetes.io~empty-dir``, ``~configmap``, ``~secret``, ``~downward-api``,
``~projected``), so a node's disk reads like a kubelet's. ``hostPath`` volumes are
not copied: the host path itself is the source.

Containers run as an unprivileged host uid (``owner_uid``; uid 0 in the pod's user
namespace maps to it), so everything created here is owned by ``owner_uid`` (group
id ``owner_uid`` too) when the agent runs as root; without root, ownership is left
alone. Inside the pod those files then look owned by root, as they do under a real
kubelet.

Volume types
------------
* ``emptyDir``: a directory, mode 0777. ``medium: Memory`` mounts a tmpfs there
  (``mount -t tmpfs``) when running as root, sized like the kubelet does: the node's
  allocatable memory, lowered to the pod's memory limit when every container declares
  one, lowered to ``sizeLimit`` when that is smaller. Without root (no ``mount``), a
  Memory emptyDir is a plain directory on disk. A disk ``sizeLimit`` is not enforced
  here (upstream enforces it by eviction).
* ``configMap``, ``secret``, ``downwardAPI``, ``projected``: files projected from the
  API objects; ``items`` (key/path/mode), ``defaultMode`` (0644 when unset) and
  ``optional`` as upstream (a missing optional source gives an empty volume; a missing
  optional key is left out). ConfigMap ``binaryData`` and Secret ``data`` are base64 in
  the API and written decoded. Label/annotation files use the ``k="v"`` line format.
  A projected ``serviceAccountToken`` is, for now, an empty placeholder file at its
  path (tokens are issued later by another part of the agent). Secrets are written to
  the pod's directory on disk, not to a tmpfs as the kubelet does.
* ``hostPath``: the path with its ``type`` check (``DirectoryOrCreate``, ``Directory``,
  ``FileOrCreate``, ``File``, ``Socket``, ``CharDevice``, ``BlockDevice`` or none) and
  upstream's error text. Created directories are 0755 and created files 0644, as
  upstream, but owned by ``owner_uid`` so the pod's root can write to them as it could
  under a kubelet. With no type and nothing at the path, a directory is created (what
  the container runtime does for a missing bind-mount source).

Atomic projection
-----------------
Data volumes are written so that a running container sees an update all at once,
never a mix of old and new files: a new version is written to a fresh hidden
directory ``..<UTC timestamp>.<random>``; then a symlink ``..data_tmp`` pointing at it
is renamed over ``..data`` (``rename`` replaces a symlink atomically); the names a
container sees are relative symlinks ``name -> ..data/name`` for each top-level entry
of the payload. Afterwards names that disappeared are unlinked and older version
directories removed. When the content (bytes and modes) equals what ``..data`` points
at, nothing is written at all, so :func:`refresh` can run on every sync. Leftovers of
an interrupted write (stray version directories, missing name links) are repaired on
the next call. A file mounted with ``subPath`` is bound at container start and does
not see later updates (as upstream).

Mounts and cleanup
------------------
:func:`container_mounts` turns a container's ``volumeMounts`` into bind-mount
descriptions; configMap/secret/downwardAPI/projected volumes are always read-only.
:func:`cleanup` finds every mount point at or below ``pod_dir`` in
``/proc/self/mountinfo`` (so it works after a crash, with nothing remembered),
unmounts them deepest first, checks that none is left and only then deletes the
directory tree. Every mount is unmounted, not only our tmpfs mounts: deleting a tree
across a bind mount would delete what it shows, which lives outside ``pod_dir``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..scheduler.resources import value
from .envvars import (
    CREATE_CONTAINER_CONFIG_ERROR,
    Lookup,
    configmap_binary_data,
    expand,
    field_ref_value,
    resource_field_ref_value,
    secret_data,
)

FAILED_MOUNT = "FailedMount"
DEFAULT_MODE = 0o644
EMPTY_DIR_MODE = 0o777
DATA_LINK = "..data"
_DATA_TMP = "..data_tmp"
_VERSION_DIR_MODE = 0o755
_MAX_PATH = 4096
_MAX_NAME = 255
MOUNTINFO = "/proc/self/mountinfo"

PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
DATA_KINDS = ("configMap", "secret", "downwardAPI", "projected")
_KINDS = (*PLUGIN_DIRS, "hostPath")


class VolumeError(Exception):
    """A volume could not be set up or mounted; ``reason``/``message`` are the event's."""

    def __init__(self, message: str, reason: str = FAILED_MOUNT, volume: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.volume = volume


def _setup_failed(volume: str, detail: str) -> VolumeError:
    return VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : {detail}', FAILED_MOUNT, volume)


@dataclass(frozen=True)
class Mount:
    """A bind mount: ``source`` on the host at ``target`` (absolute) in the container."""

    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class FileProjection:
    """One file of a data volume."""

    data: bytes
    mode: int


# --------------------------------------------------------------------------------------------- helpers


def _dict(obj: Any, key: str) -> dict[str, Any]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, dict) else {}


def _list(obj: Any, key: str) -> list[Any]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, list) else []


def _is_root() -> bool:
    return os.geteuid() == 0


def _own(path: Path | str, uid: int | None) -> None:
    """chown (not following symlinks) to uid:uid when running as root."""
    if uid is not None and _is_root():
        os.lchown(path, uid, uid)


def _mode(value_: Any, default: int) -> int:
    return value_ if isinstance(value_, int) and not isinstance(value_, bool) else default


def volume_kind(vol: Mapping[str, Any]) -> str | None:
    """The source type of a pod volume (``emptyDir``, ``configMap``...), None for unsupported ones."""
    for kind in _KINDS:
        if isinstance(vol.get(kind), dict):
            return kind
    return None


def _other_kind(vol: Mapping[str, Any]) -> str:
    return next((k for k, v in vol.items() if k != "name" and isinstance(v, dict)), "unknown")


def volume_dir(pod_dir: Path, kind: str, name: str) -> Path:
    """Where a volume of ``kind`` lives under the pod's directory."""
    return Path(pod_dir) / "volumes" / PLUGIN_DIRS[kind] / name


def _mkdir(path: Path, mode: int, uid: int | None) -> None:
    """A directory with exactly ``mode`` and owner; missing parents are created (0755, root-owned)."""
    if not path.is_dir():
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.mkdir(mode=mode, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != mode:
        os.chmod(path, mode)
    _own(path, uid)


# --------------------------------------------------------------------------------------------- atomic writer


def _check_path(p: str) -> str:
    """A payload path, validated (relative, no ``..``, not hidden behind ``..``) and normalised."""
    if not p:
        raise ValueError("invalid path: must not be empty")
    if p.startswith("/"):
        raise ValueError(f"invalid path: must be relative path: {p}")
    if len(p) > _MAX_PATH:
        raise ValueError(f"invalid path: must be less than or equal to {_MAX_PATH} characters")
    parts = p.split("/")
    for part in parts:
        if part == "..":
            raise ValueError(f"invalid path: must not contain '..': {p}")
        if len(part) > _MAX_NAME:
            raise ValueError(f"invalid path: filenames must be less than or equal to {_MAX_NAME} characters")
    if parts[0].startswith("..") and len(parts[0]) > 2:
        raise ValueError(f"invalid path: must not start with '..': {p}")
    clean = posixpath.normpath(p)
    if clean == ".":
        raise ValueError(f"invalid path: must name a file: {p}")
    return clean


def _read_tree(root: Path) -> dict[str, FileProjection]:
    out: dict[str, FileProjection] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            full = Path(dirpath) / f
            st = full.lstat()
            if not stat.S_ISREG(st.st_mode):
                out[str(full.relative_to(root))] = FileProjection(b"", -1)  # never equal to a payload entry
                continue
            out[str(full.relative_to(root))] = FileProjection(full.read_bytes(), stat.S_IMODE(st.st_mode))
    return out


def _current_version(target: Path) -> Path | None:
    link = target / DATA_LINK
    if not link.is_symlink():
        return None
    name = os.readlink(link)
    if "/" in name or not name.startswith(".."):
        return None
    version = target / name
    return version if version.is_dir() and not version.is_symlink() else None


def _top_names(paths: Any) -> set[str]:
    return {p.split("/", 1)[0] for p in paths}


def _link(target: Path, name: str, dest: str) -> None:
    """Make ``target/name`` a symlink to ``dest``, replacing whatever is there, atomically when it was a link."""
    path = target / name
    if path.is_symlink() and os.readlink(path) == dest:
        return
    if path.exists() and not path.is_symlink():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    tmp = target / f"..{name}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(dest, tmp)
    os.replace(tmp, path)


def write_atomic(target: Path, payload: Mapping[str, FileProjection], uid: int | None = None) -> bool:
    """Project ``payload`` (relative path → file) into ``target`` as described in the module docstring.

    Returns True when something was written, False when the content was already there.
    Raises ValueError for an invalid path.
    """
    clean = {_check_path(p): f for p, f in payload.items()}
    target = Path(target)
    current = _current_version(target)
    old = _read_tree(current) if current is not None else None
    names = _top_names(clean)
    if old is not None and old == clean:
        version = current
        changed = False
    else:
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        version = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
        os.chmod(version, _VERSION_DIR_MODE)
        _own(version, uid)
        for rel in sorted(clean):
            proj = clean[rel]
            path = version / rel
            for parent in reversed(path.relative_to(version).parents[:-1]):
                d = version / parent
                if not d.is_dir():
                    d.mkdir(mode=_VERSION_DIR_MODE)
                    os.chmod(d, _VERSION_DIR_MODE)
                    _own(d, uid)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                _write_all(fd, proj.data)
                os.fchmod(fd, proj.mode & 0o7777)
                if uid is not None and _is_root():
                    os.fchown(fd, uid, uid)
            finally:
                os.close(fd)
        tmp = target / _DATA_TMP
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(version.name, tmp)
        _own(tmp, uid)
        os.replace(tmp, target / DATA_LINK)
        changed = True
    for name in sorted(names):
        _link(target, name, f"{DATA_LINK}/{name}")
        _own(target / name, uid)
    # names of earlier versions that are gone now, and earlier version directories
    for entry in os.listdir(target):
        path = target / entry
        if entry.startswith(".."):
            if entry == DATA_LINK or path == version:
                continue
            if path.is_symlink():  # a link left by an interrupted swap
                path.unlink()
            elif path.is_dir():  # an older (or half-written) version
                shutil.rmtree(path)
            continue
        if entry not in names and path.is_symlink() and os.readlink(path).startswith(DATA_LINK + "/"):
            path.unlink()
    return changed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# --------------------------------------------------------------------------------------------- payloads


def _aggregate(errors: list[str]) -> str:
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def _configmap_payload(lookup: Lookup, namespace: str, name: str, items: list[Any], default_mode: int,
                       optional: bool) -> dict[str, FileProjection]:
    cm = lookup.configmap(namespace, name)
    if cm is None:
        if optional:
            return {}
        raise ValueError(f'configmap "{name}" not found')
    text = {k: str(v).encode() for k, v in _dict(cm, "data").items()}
    binary = configmap_binary_data(cm)
    if not items:
        out = {k: FileProjection(v, default_mode) for k, v in text.items()}
        out.update({k: FileProjection(v, default_mode) for k, v in binary.items()})
        return out
    out = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key") or "")
        data = text.get(key, binary.get(key))
        if data is None:
            if optional:
                continue
            raise ValueError(f"configmap references non-existent config key: {key}")
        out[str(item.get("path") or "")] = FileProjection(data, _mode(item.get("mode"), default_mode))
    return out


def _secret_payload(lookup: Lookup, namespace: str, name: str, items: list[Any], default_mode: int,
                    optional: bool) -> dict[str, FileProjection]:
    obj = lookup.secret(namespace, name)
    if obj is None:
        if optional:
            return {}
        raise ValueError(f'secret "{name}" not found')
    data = secret_data(obj)
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in data.items()}
    out: dict[str, FileProjection] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key") or "")
        if key not in data:
            if optional:
                continue
            raise ValueError(f"references non-existent secret key: {key}")
        out[str(item.get("path") or "")] = FileProjection(data[key], _mode(item.get("mode"), default_mode))
    return out


@dataclass(frozen=True)
class _PodContext:
    pod: Mapping[str, Any]
    lookup: Lookup
    namespace: str
    pod_ip: str
    host_ip: str
    node_allocatable: Mapping[str, str] | None


def _downward_payload(ctx: _PodContext, items: list[Any], default_mode: int) -> dict[str, FileProjection]:
    out: dict[str, FileProjection] = {}
    errors: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        path = str(item.get("path") or "")
        mode = _mode(item.get("mode"), default_mode)
        try:
            if isinstance(item.get("fieldRef"), dict):
                text = field_ref_value(ctx.pod, item["fieldRef"], pod_ips=[ctx.pod_ip] if ctx.pod_ip else [],
                                       host_ips=[ctx.host_ip] if ctx.host_ip else [])
            elif isinstance(item.get("resourceFieldRef"), dict):
                ref = item["resourceFieldRef"]
                if not ref.get("containerName"):
                    raise ValueError("container  not found")  # a volume must name the container
                text = resource_field_ref_value(ctx.pod, None, ref, ctx.node_allocatable)
            else:
                text = ""
        except ValueError as exc:
            errors.append(str(exc))
            continue
        out[path] = FileProjection(text.encode(), mode)
    if errors:
        raise ValueError(_aggregate(errors))
    return out


def _projected_payload(ctx: _PodContext, src: Mapping[str, Any]) -> dict[str, FileProjection]:
    default_mode = _mode(src.get("defaultMode"), DEFAULT_MODE)
    out: dict[str, FileProjection] = {}
    errors: list[str] = []
    for source in _list(src, "sources"):
        if not isinstance(source, dict):
            continue
        try:
            if isinstance(source.get("secret"), dict):
                s = source["secret"]
                out.update(_secret_payload(ctx.lookup, ctx.namespace, str(s.get("name") or ""), _list(s, "items"),
                                           default_mode, s.get("optional") is True))
            elif isinstance(source.get("configMap"), dict):
                c = source["configMap"]
                out.update(_configmap_payload(ctx.lookup, ctx.namespace, str(c.get("name") or ""),
                                              _list(c, "items"), default_mode, c.get("optional") is True))
            elif isinstance(source.get("downwardAPI"), dict):
                out.update(_downward_payload(ctx, _list(source["downwardAPI"], "items"), default_mode))
            elif isinstance(source.get("serviceAccountToken"), dict):
                # Placeholder: the token itself is issued by the agent's token manager, later.
                path = str(source["serviceAccountToken"].get("path") or "token")
                out[path] = FileProjection(b"", default_mode)
            else:
                kind = next(iter(source), "unknown")
                errors.append(f"projected source {kind} is not supported")
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ValueError(_aggregate(errors))
    return out


def _payload(ctx: _PodContext, kind: str, src: Mapping[str, Any]) -> dict[str, FileProjection]:
    default_mode = _mode(src.get("defaultMode"), DEFAULT_MODE)
    if kind == "configMap":
        return _configmap_payload(ctx.lookup, ctx.namespace, str(src.get("name") or ""), _list(src, "items"),
                                  default_mode, src.get("optional") is True)
    if kind == "secret":
        return _secret_payload(ctx.lookup, ctx.namespace, str(src.get("secretName") or ""), _list(src, "items"),
                               default_mode, src.get("optional") is True)
    if kind == "downwardAPI":
        return _downward_payload(ctx, _list(src, "items"), default_mode)
    return _projected_payload(ctx, src)


# --------------------------------------------------------------------------------------------- mount points


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo`` octal."""
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and all(c in "01234567" for c in field[i + 1:i + 4]):
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mount_points() -> Iterator[tuple[str, str]]:
    """(mount point, filesystem type) for every mount this process sees."""
    with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 7:
                continue
            fstype = ""
            if "-" in fields[6:]:
                sep = fields.index("-", 6)
                fstype = fields[sep + 1] if sep + 1 < len(fields) else ""
            yield _unescape(fields[4]), fstype


def mounts_under(root: Path | str) -> list[str]:
    """Mount points at or below ``root`` (resolved), from /proc/self/mountinfo."""
    base = os.path.realpath(root)
    prefix = base.rstrip("/") + "/"
    return [mp for mp, _ in _mount_points() if mp == base or mp.startswith(prefix)]


def is_mount_point(path: Path | str) -> bool:
    base = os.path.realpath(path)
    return any(mp == base for mp, _ in _mount_points())


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


# --------------------------------------------------------------------------------------------- emptyDir / hostPath


def _pod_memory_limit(pod: Mapping[str, Any]) -> int | None:
    """The pod's memory limit as its cgroup would get it; None unless every container declares one."""
    spec = _dict(pod, "spec")
    app, init = 0, 0
    for key in ("containers", "initContainers"):
        for ctr in _list(spec, key):
            limit = _dict(_dict(ctr, "resources"), "limits").get("memory")
            amount = value(limit) if limit is not None else 0
            if amount <= 0:
                return None
            if key == "containers":
                app += amount
            else:
                init = max(init, amount)
    overhead = _dict(spec, "overhead").get("memory")
    return max(app, init) + (value(overhead) if overhead is not None else 0)


def tmpfs_size(pod: Mapping[str, Any], src: Mapping[str, Any],
               node_allocatable: Mapping[str, str] | None) -> int | None:
    """Bytes for a Memory emptyDir's tmpfs (None: the kernel's default); see the module docstring."""
    size: int | None = None
    if node_allocatable and node_allocatable.get("memory"):
        size = value(node_allocatable["memory"]) or None
    for candidate in (_pod_memory_limit(pod), value(src["sizeLimit"]) if src.get("sizeLimit") else None):
        if candidate is not None and candidate > 0 and (size is None or candidate <= size):
            size = candidate
    return size


def _empty_dir(pod: Mapping[str, Any], name: str, src: Mapping[str, Any], path: Path, uid: int,
               node_allocatable: Mapping[str, str] | None) -> None:
    medium = src.get("medium") or ""
    if medium not in ("", "Memory"):
        raise _setup_failed(name, f"emptyDir medium {medium} is not supported")
    _mkdir(path, EMPTY_DIR_MODE, uid)
    if medium == "Memory" and _is_root() and not is_mount_point(path):
        size = tmpfs_size(pod, src, node_allocatable)
        argv = ["mount", "-t", "tmpfs"]
        if size is not None:
            argv += ["-o", f"size={size}"]
        argv += ["tmpfs", str(path)]
        done = _run(argv)
        if done.returncode != 0:
            raise _setup_failed(name, f"mount failed: {done.stderr.strip() or done.returncode}")
        os.chmod(path, EMPTY_DIR_MODE)
        _own(path, uid)


_HOST_PATH_CHECKS = {
    "Directory": (stat.S_ISDIR, "is not a directory"),
    "File": (stat.S_ISREG, "is not a file"),
    "Socket": (stat.S_ISSOCK, "is not a socket file"),
    "CharDevice": (stat.S_ISCHR, "is not a character device"),
    "BlockDevice": (stat.S_ISBLK, "is not a block device"),
}


def _host_path(name: str, src: Mapping[str, Any], uid: int) -> Path:
    raw = str(src.get("path") or "")
    path = Path(raw)
    kind = src.get("type") or ""
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _setup_failed(name, f"stat {raw}: {(exc.strerror or str(exc)).lower()}") from exc
    try:
        if st is None and kind in ("DirectoryOrCreate", ""):
            path.mkdir(mode=0o755, parents=True)
            os.chmod(path, 0o755)
            _own(path, uid)
            return path
        if st is None and kind == "FileOrCreate":
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            _own(path, uid)
            return path
    except OSError as exc:
        op = "open" if kind == "FileOrCreate" else "mkdir"
        raise _setup_failed(name, f"{op} {raw}: {(exc.strerror or str(exc)).lower()}") from exc
    if kind == "":
        return path
    check = {"DirectoryOrCreate": "Directory", "FileOrCreate": "File"}.get(kind, kind)
    if check not in _HOST_PATH_CHECKS:
        raise _setup_failed(name, f"{kind} is an invalid volume type")
    test, what = _HOST_PATH_CHECKS[check]
    if st is None or not test(st.st_mode):
        raise _setup_failed(name, f"hostPath type check failed: {raw} {what}")
    return path


# --------------------------------------------------------------------------------------------- public API


def _context(pod: Mapping[str, Any], lookup: Lookup, pod_ip: str, host_ip: str,
             node_allocatable: Mapping[str, str] | None) -> _PodContext:
    namespace = str(_dict(pod, "metadata").get("namespace") or "default")
    return _PodContext(pod, lookup, namespace, pod_ip, host_ip, node_allocatable)


def _project(ctx: _PodContext, name: str, kind: str, src: Mapping[str, Any], path: Path, uid: int) -> bool:
    try:
        payload = _payload(ctx, kind, src)
    except ValueError as exc:
        raise _setup_failed(name, str(exc)) from exc
    _mkdir(path, _VERSION_DIR_MODE, uid)
    try:
        return write_atomic(path, payload, uid)
    except ValueError as exc:
        raise _setup_failed(name, str(exc)) from exc
    except OSError as exc:  # e.g. items "a" and "a/b": a file where a directory must go
        raise _setup_failed(name, f"writing {exc.filename}: {(exc.strerror or str(exc)).lower()}") from exc


def prepare(pod: Mapping[str, Any], pod_dir: Path, lookup: Lookup, *, owner_uid: int, pod_ip: str = "",
            host_ip: str = "", node_allocatable: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Create (or bring up to date) every volume of ``pod``; volume name → host path, in the pod's order.

    Idempotent: calling it again rewrites nothing that is already right. Raises
    :class:`VolumeError` (reason ``FailedMount``) at the first volume that cannot be set up.
    """
    ctx = _context(pod, lookup, pod_ip, host_ip, node_allocatable)
    out: dict[str, Path] = {}
    for vol in _list(_dict(pod, "spec"), "volumes"):
        if not isinstance(vol, dict) or not vol.get("name"):
            continue
        name = str(vol["name"])
        kind = volume_kind(vol)
        if kind is None:
            raise _setup_failed(name, f"no volume plugin matched ({_other_kind(vol)} volumes are not supported)")
        src = vol[kind]
        if kind == "hostPath":
            out[name] = _host_path(name, src, owner_uid)
            continue
        path = volume_dir(pod_dir, kind, name)
        if kind == "emptyDir":
            _empty_dir(pod, name, src, path, owner_uid, node_allocatable)
        else:
            _project(ctx, name, kind, src, path, owner_uid)
        out[name] = path
    return out


def refresh(pod: Mapping[str, Any], pod_dir: Path, lookup: Lookup, *, owner_uid: int, pod_ip: str = "",
            host_ip: str = "", node_allocatable: Mapping[str, str] | None = None,
            errors: list[VolumeError] | None = None) -> list[str]:
    """Re-project the pod's data volumes already set up by :func:`prepare`; the names whose content changed.

    A volume whose source cannot be read keeps its current content. Its error is
    appended to ``errors`` when a list is given; otherwise the first error is raised
    once every other volume has been refreshed.
    """
    ctx = _context(pod, lookup, pod_ip, host_ip, node_allocatable)
    updated: list[str] = []
    failed: list[VolumeError] = []
    for vol in _list(_dict(pod, "spec"), "volumes"):
        if not isinstance(vol, dict) or not vol.get("name"):
            continue
        kind = volume_kind(vol)
        if kind not in DATA_KINDS:
            continue
        name = str(vol["name"])
        path = volume_dir(pod_dir, kind, name)
        if not path.is_dir():
            continue
        try:
            if _project(ctx, name, kind, vol[kind], path, owner_uid):
                updated.append(name)
        except VolumeError as exc:
            failed.append(exc)
    if errors is not None:
        errors.extend(failed)
    elif failed:
        raise failed[0]
    return updated


class _MissingRecorder(Mapping[str, str]):
    """An environment for subPathExpr that notes names that are undefined or empty."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.missing: set[str] = set()

    def __getitem__(self, key: str) -> str:
        val = self.env.get(key, "")
        if not val:
            self.missing.add(key)
        return val

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)


def _config_error(message: str, volume: str) -> VolumeError:
    return VolumeError(message, CREATE_CONTAINER_CONFIG_ERROR, volume)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def container_mounts(pod: Mapping[str, Any], container: Mapping[str, Any], volumes: Mapping[str, Path], *,
                     env: Mapping[str, str] | None = None, owner_uid: int | None = None) -> list[Mount]:
    """The container's ``volumeMounts`` as bind mounts, in list order.

    ``subPath`` (or ``subPathExpr`` expanded with ``env``, the kubelet-generated
    variables) selects a path inside the volume, created as a directory when missing
    (owned by ``owner_uid``), and must stay inside the volume. Errors are
    :class:`VolumeError` with reason ``CreateContainerConfigError``, as the kubelet
    reports them when the container cannot be created.
    """
    kinds = {str(v.get("name")): volume_kind(v) for v in _list(_dict(pod, "spec"), "volumes") if isinstance(v, dict)}
    cname = str(container.get("name") or "")
    out: list[Mount] = []
    for vm in _list(container, "volumeMounts"):
        if not isinstance(vm, dict):
            continue
        name = str(vm.get("name") or "")
        if name not in volumes:
            raise _config_error(f'cannot find volume "{name}" to mount into container "{cname}"', name)
        source = Path(volumes[name])
        sub = str(vm.get("subPath") or "")
        if vm.get("subPathExpr"):
            if env is None:
                raise _config_error(f'volumeMount "{name}" of container "{cname}" uses subPathExpr, '
                                    "which needs the container's environment", name)
            rec = _MissingRecorder(env)
            sub = expand(str(vm["subPathExpr"]), rec)
            if rec.missing:
                raise _config_error(f"missing value for {', '.join(sorted(rec.missing))}", name)
        if sub:
            if sub.startswith("/"):
                raise _config_error(f"error SubPath `{sub}` must not be an absolute path", name)
            if ".." in sub.split("/"):
                raise _config_error(f"unable to provision SubPath `{sub}`: must not contain '..'", name)
            host = source / sub
            if not os.path.lexists(host):
                try:
                    mode = stat.S_IMODE(source.stat().st_mode)
                    _make_subpath(source, sub, mode, owner_uid)
                except OSError as exc:
                    raise _config_error(f'failed to create subPath directory for volumeMount "{name}" '
                                        f'of container "{cname}"', name) from exc
            real = os.path.realpath(host)
            if not os.path.exists(real) or not _within(real, os.path.realpath(source)):
                raise _config_error(f'failed to prepare subPath for volumeMount "{name}" of container "{cname}"',
                                    name)
            source = host
        target = str(vm.get("mountPath") or "")
        if not target.startswith("/"):
            target = "/" + target
        read_only = vm.get("readOnly") is True or kinds.get(name) in DATA_KINDS
        out.append(Mount(source, target, read_only))
    return out


def _make_subpath(volume: Path, sub: str, mode: int, uid: int | None) -> None:
    """Create ``volume/sub`` level by level, refusing to step through a symlink that leaves the volume."""
    root = os.path.realpath(volume)
    cur = volume
    for part in [p for p in sub.split("/") if p and p != "."]:
        cur = cur / part
        if os.path.lexists(cur):
            if not _within(os.path.realpath(cur), root):
                raise OSError(f"{cur} leaves the volume")
            continue
        cur.mkdir(mode=mode)
        os.chmod(cur, mode)
        _own(cur, uid)


def cleanup(pod_dir: Path) -> None:
    """Unmount everything mounted at or below ``pod_dir`` and delete it (see the module docstring).

    Raises OSError when a mount point cannot be unmounted; the tree is then left in place.
    """
    pod_dir = Path(pod_dir)
    if not os.path.lexists(pod_dir):
        return
    for _ in range(16):  # mounts can be stacked on one point: repeat until none is left
        points = mounts_under(pod_dir)
        if not points:
            break
        for mp in sorted(points, key=lambda p: p.count("/"), reverse=True):
            if _run(["umount", mp]).returncode != 0:
                _run(["umount", "-l", mp])  # busy (a process still uses it): detach it now
    left = mounts_under(pod_dir)
    if left:
        raise OSError(f"cannot remove {pod_dir}: still mounted: {', '.join(sorted(set(left)))}")
    shutil.rmtree(pod_dir)
