"""Directory trees as image content: identity hashing, copying, and paths scoped to a root.

:func:`tree_digest` is the content identity of an image (and the name of its
snapshot on disk): a SHA-256 over every entry's path, type, permission bits,
owner, and file content or symlink target, in sorted order. Modification times
are left out, so the same files give the same digest on every build and after a
save/load round trip.

:func:`copy_tree` makes a step's working copy of its parent snapshot with
``cp -a --reflink=auto`` (a free copy-on-write clone where the filesystem can,
a real copy elsewhere): a ``RUN`` may change any file in place, so its tree
never shares inodes with a snapshot. ``WORKDIR`` and ``COPY`` only create or
replace (unlink, then write) files, so they hard-link the parent's files
instead (``cp -al``): fast, and the snapshots share disk.

:func:`scoped` maps a container path to a host path under a content root,
resolving symlinks *inside* the root (``/app/current -> /app/v2``, a venv's
``lib64 -> lib``) so a build never writes through a link out of the image.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

_CHUNK = 1 << 20


def tree_digest(root: Path) -> tuple[str, int]:
    """(hex SHA-256 of the tree's identity, total size in bytes of its files and links)."""
    h = hashlib.sha256()
    size = 0

    def walk(d: str, rel: str) -> None:
        nonlocal size
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for e in entries:
            st = e.stat(follow_symlinks=False)
            path = f"{rel}/{e.name}" if rel else e.name
            mode = stat.S_IMODE(st.st_mode)
            head = f"{path}\0{mode:o}\0{st.st_uid}\0{st.st_gid}\0"
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(e.path)
                h.update(f"L{head}{target}\n".encode("utf-8", "surrogateescape"))
                size += len(target)
            elif stat.S_ISDIR(st.st_mode):
                h.update(f"D{head}\n".encode("utf-8", "surrogateescape"))
                walk(e.path, path)
            elif stat.S_ISREG(st.st_mode):
                h.update(f"F{head}{file_digest(e.path)}\n".encode("utf-8", "surrogateescape"))
                size += st.st_size
            else:
                h.update(f"O{head}{stat.S_IFMT(st.st_mode)}\n".encode("utf-8", "surrogateescape"))

    walk(str(root), "")
    return h.hexdigest(), size


def file_digest(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def copy_tree(src: Path, dst: Path, *, link: bool = False) -> None:
    """``dst`` (which must not exist) becomes a copy of ``src``: modes, owners, times, links.

    ``link`` hard-links the files instead of copying them (directories are always new): only for steps that add
    or *replace* files (unlink, then create) and never write into an existing file or change its metadata —
    ``WORKDIR`` and ``COPY``. A ``RUN`` gets an independent copy.
    """
    if not any(src.iterdir()):
        dst.mkdir(mode=0o755)
        os.chmod(dst, stat.S_IMODE(src.stat().st_mode))
        return
    mode = "-al" if link else "-a"
    extra = [] if link else ["--reflink=auto"]
    subprocess.run(["cp", mode, *extra, "--", str(src), str(dst)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def scoped(root: Path, container_path: str, *, follow_last: bool = True) -> Path:
    """The host path of ``container_path`` inside ``root``, symlinks resolved as the container would see them
    but never leaving ``root``. Missing components are fine (the result may not exist)."""
    parts = [p for p in container_path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        cand = root.joinpath(*resolved, name)
        if cand.is_symlink() and (parts or follow_last):
            hops += 1
            if hops > 40:
                raise OSError(f"too many levels of symbolic links: {container_path}")
            target = os.readlink(cand)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(name)
    return root.joinpath(*resolved)
