"""A container's view of the filesystem, built as bubblewrap arguments.

A container sees what it would in Docker: the host's system directories
read-only (its "base image" userland), its image's content at the image's paths,
its volumes at their mount paths, the pod's ``/etc/hosts`` and
``/etc/resolv.conf``, a private ``/tmp`` and its own ``/proc``. Nothing else of
the host (no ``/home``, ``/root``, ``/var``, ``/run``) is there.

bubblewrap starts from an empty tmpfs root and applies mounts in argument
order. A bind onto a path that already exists in an earlier mount just covers
it, even in a read-only mount; a bind onto a path that does *not* exist needs
a ``mkdir`` inside the earlier mount, which fails when that one is read-only
(the host's ``/usr`` with an image WORKDIR of ``/usr/src/app``). bubblewrap 0.8
has no overlay option, so :func:`view_args` *splits* such a mount instead: the
directory on the way down becomes a tmpfs directory (``--dir``) whose children
are bound one by one from the original source, except the child that leads to
the new mount, which is split again or left for the new mount itself. Host
symlinks along the way (``/lib -> usr/lib``, ``/etc/resolv.conf -> ../run/...``)
are reproduced with ``--symlink`` or replaced, never followed onto paths the
container does not have. The cost is a handful of extra binds, only where
mounts nest into paths their parent lacks.

:func:`container_argv` wraps a command with the namespaces a pod container
gets: a user namespace (uid 0 inside is an unprivileged uid outside, the
caller's; the agent drops to it with ``setpriv`` before ``bwrap``), its own PID,
IPC and UTS namespaces (hostname = pod name), no capabilities beyond the user
namespace's, and a new session. The network namespace is the pod's and is
entered before (see :mod:`tinykube.agent.network`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The host directories every container sees read-only: its userland.
SYSTEM_DIRS: tuple[str, ...] = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


@dataclass(frozen=True)
class Bind:
    """``source`` (a host path) appears at ``target`` inside the container."""

    source: Path
    target: str
    read_only: bool = True


def bwrap_path() -> str:
    found = shutil.which("bwrap")
    if not found:
        raise FileNotFoundError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    return found


def python_prefix() -> str | None:
    """The host Python's installation prefix when it lies outside the system directories (pyenv, /opt):
    image virtualenvs point at it, so containers must see it (read-only)."""
    prefix = os.path.realpath(sys.base_prefix)
    if any(prefix == d or prefix.startswith(d + "/") for d in SYSTEM_DIRS):
        return None
    return prefix


def host_binds(extra: Iterable[str] = ()) -> list[Bind]:
    """The host's system directories (those that exist) plus ``extra`` paths, read-only at the same paths."""
    out = []
    seen: set[str] = set()
    for d in (*SYSTEM_DIRS, *extra):
        if d in seen or not os.path.lexists(d):
            continue
        seen.add(d)
        out.append(Bind(Path(d), d, True))
    return out


def image_binds(content: Path, under: Sequence[Bind] = (), read_only: bool = True) -> list[Bind]:
    """An image's content directory (files at their container paths) merged into the binds ``under`` it.

    Image directories that also exist, as directories, in one of ``under``'s sources (the host's ``/usr``
    for an image with ``/usr/src/app``) are descended into, so the image adds to them instead of hiding
    them; everything else is one bind, as high up the tree as possible.
    """
    roots = {_norm(b.target): b for b in under}

    def host_dir(target: str) -> bool:
        for anc in (target, *reversed(_parent_chain(target))):
            b = roots.get(anc)
            if b is not None:
                rel = os.path.relpath(target, anc)
                src = b.source if rel == "." else b.source / rel
                return src.is_dir() and not src.is_symlink()
        return False

    out: list[Bind] = []

    def walk(src: Path, target: str) -> None:
        for name in sorted(os.listdir(src)):
            s, t = src / name, target.rstrip("/") + "/" + name
            if s.is_dir() and not s.is_symlink() and host_dir(t):
                walk(s, t)
            else:
                out.append(Bind(s, t, read_only))

    if content.is_dir():
        walk(content, "/")
    return out


def _norm(target: str) -> str:
    p = os.path.normpath("/" + target.lstrip("/"))
    return "/" if p == "//" else p


def _parent_chain(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]`` (proper ancestors, root excluded)."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def view_args(binds: Sequence[Bind]) -> list[str]:
    """bubblewrap arguments that make every bind appear at its target; later binds win on equal targets."""
    mounts: dict[str, Bind] = {}
    for b in binds:
        mounts[_norm(b.target)] = b  # later wins
    targets = sorted(mounts, key=lambda t: (t.count("/"), t))

    def owner(path: str) -> str | None:
        for anc in reversed(_parent_chain(path)):
            if anc in mounts:
                return anc
        return None

    def source_of(mount_target: str, path: str) -> Path:
        b = mounts[mount_target]
        rel = os.path.relpath(path, mount_target)
        return b.source if rel == "." else b.source / rel

    # Directories to split, each with the mount whose source provides its children.
    split: dict[str, str] = {}
    for t in targets:
        own = owner(t)
        if own is None:
            continue
        chain = [p for p in _parent_chain(t) if len(p) > len(own)] + [t]
        for i, p in enumerate(chain):
            src = source_of(own, p)
            last = i == len(chain) - 1
            if os.path.islink(src) or not os.path.lexists(src) or (not last and not src.is_dir()):
                # Everything from the owner down to p's parent must be split (p itself does not exist as needed).
                for q in [own, *chain[:i]]:
                    split.setdefault(q, own)
                break

    args: list[str] = []

    def emit_entry(src: Path, dst: str, ro: bool) -> None:
        if src.is_symlink():
            args.extend(["--symlink", os.readlink(src), dst])
        else:
            args.extend(["--ro-bind" if ro else "--bind", str(src), dst])

    def emit_split(mount_target: str, path: str) -> None:
        ro = mounts[mount_target].read_only
        args.extend(["--dir", path])
        src = source_of(mount_target, path)
        try:
            children = sorted(os.listdir(src))
        except OSError:
            children = []
        for name in children:
            child = path.rstrip("/") + "/" + name
            if child in mounts:
                continue  # its own mount, emitted after (deeper)
            if split.get(child) == mount_target:
                emit_split(mount_target, child)
            elif child in split:
                continue
            else:
                emit_entry(src / name, child, ro)

    made: set[str] = set()
    for t in targets:
        if owner(t) is None:
            # Parents that exist in no mount are made on the sandbox's root tmpfs: readable by everyone
            # (bubblewrap would make them 0700, and /root/.pyenv/... must be reachable by the container uid).
            for anc in _parent_chain(t):
                if anc not in made and anc not in mounts:
                    made.add(anc)
                    args.extend(["--perms", "0755", "--dir", anc])
        if split.get(t) == t:
            emit_split(t, t)
        else:
            b = mounts[t]
            emit_entry(b.source, t, b.read_only)
    return args


@dataclass(frozen=True)
class Isolation:
    """Namespaces and identity of a container.

    ``user_namespace``: uid/gid 0 (or ``uid``/``gid``) inside is ``host_uid``/``host_gid`` outside.
    Without it the command runs as real root with every capability dropped (image builds: ``RUN``
    writes the image's files as root, and only the image is writable).
    """

    hostname: str = ""
    uid: int = 0  # inside the user namespace
    gid: int = 0
    user_namespace: bool = True
    host_uid: int = 65534
    host_gid: int = 65534
    pid_namespace: bool = True
    tmp: bool = True
    rootless: bool = False  # the agent is not root: one unprivileged stage, the user namespace maps the agent's uid


def container_argv(argv: Sequence[str], binds: Sequence[Bind], *, workdir: str = "/",
                   iso: Isolation = Isolation()) -> list[str]:
    """The command line (run as root) that runs ``argv`` in a container view made of ``binds``.

    Two bubblewrap stages: the outer one runs as root, so it can bind any source (the data dir is 0700,
    pyenv's Python lives under ``/root``) and builds the whole view plus the PID, IPC and UTS
    namespaces; inside it, ``setpriv`` drops to the unprivileged host uid and a second bubblewrap makes
    the user namespace in which that uid is root. Mounts made by the outer stage belong to its
    namespace, so the container cannot undo them (read-only stays read-only).

    Without root (``iso.rootless``) there is one stage: bubblewrap makes the user namespace itself, in which
    the agent's own uid is the container's uid 0; the container can read only what that user can.
    """
    bw = bwrap_path()
    out = [bw, "--unshare-ipc"]
    if iso.rootless:
        out += ["--unshare-user", "--uid", str(iso.uid), "--gid", str(iso.gid)]
    if iso.pid_namespace:
        out += ["--unshare-pid"]
    if iso.hostname:
        out += ["--unshare-uts", "--hostname", iso.hostname]
    # /proc, /dev and /tmp first: volumes may be mounted below them.
    # /dev/shm as a container runtime gives it: a 64 MiB tmpfs anyone may write (Python's multiprocessing needs it).
    out += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(64 << 20), "--tmpfs", "/dev/shm"]
    if iso.tmp:
        out += ["--perms", "1777", "--tmpfs", "/tmp"]
    out += view_args(binds)
    out += ["--cap-drop", "ALL"]
    if not iso.user_namespace or iso.rootless:
        return [*out, "--new-session", "--die-with-parent", "--chdir", workdir or "/", "--", *argv]
    out += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--new-session", "--die-with-parent", "--",
            shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={iso.host_uid}", f"--regid={iso.host_gid}",
            "--clear-groups", bw, "--unshare-user", "--uid", str(iso.uid), "--gid", str(iso.gid),
            "--dev-bind", "/", "/", "--die-with-parent", "--chdir", workdir or "/", "--", *argv]
    return out


