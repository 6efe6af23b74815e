"""Running a build command (``RUN``, the python base's virtualenv) inside the image being built.

The command sees exactly what a container of the image will see — the host's
system directories read-only and the image's content merged into them
(:mod:`tinykube.agent.sandbox`) — except that the content is bound read-write,
the process is real root with every capability dropped (``USER`` other than
root runs as that uid in a user namespace instead, like Docker's ``RUN`` after
``USER``), and the network is the host's, so ``pip`` reaches PyPI.

Where writes go:

* into the image's own directories (``/app``, ``/opt/venv``): straight into the
  working copy of the content;
* to a *new* top-level path (``RUN mkdir /data``, ``echo x > /hello``): the
  sandbox root is a tmpfs, so a small wrapper shell copies every top-level
  entry that is not a mount (``cp -a``) into a capture directory when the
  command succeeds, and those entries join the content;
* ``/tmp``: private to the step and not part of the image;
* the host's system directories: read-only (``EROFS``); an image adds files
  there only with ``COPY``/``ADD``.

``pip``'s download cache is one directory shared by all builds
(``PIP_CACHE_DIR``, a bind at ``/.tinykube-build/pip-cache``), so a rebuild
that reinstalls requirements downloads nothing it already has.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import sandbox
from .tree import scoped

BUILD_DIR = "/.tinykube-build"
PIP_CACHE_TARGET = BUILD_DIR + "/pip-cache"
CAPTURE_TARGET = BUILD_DIR + "/capture"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy")

_WRAPPER = """\
"$@"
rc=$?
if [ "$rc" -eq 0 ]; then
  for p in /* /.[!.]* /..?*; do
    if [ ! -e "$p" ] && [ ! -L "$p" ]; then continue; fi
    case "$p" in
      {keep}) continue;;
    esac
    cp -a "$p" {capture}/ || exit 125
  done
fi
exit "$rc"
"""


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    home: str


def host_extra() -> list[str]:
    prefix = sandbox.python_prefix()
    return [prefix] if prefix else []


def in_host_view(path: str) -> bool:
    """Is ``path`` a directory the container sees from the host (under a system directory)?"""
    roots = (*sandbox.SYSTEM_DIRS, *host_extra())
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in roots) and os.path.isdir(path)


def _passwd(content: Path, name: str) -> list[list[str]]:
    own = scoped(content, f"/etc/{name}")
    path = own if own.is_file() else Path(f"/etc/{name}")
    try:
        return [line.split(":") for line in path.read_text(errors="replace").splitlines() if line and ":" in line]
    except OSError:
        return []


def resolve_user(content: Path, spec: str) -> User:
    """``USER`` values (``name``, ``uid``, ``name:group``, ``uid:gid``) against the image's passwd/group files (the
    host's, unless the image has its own). Raises ValueError with Docker's message when a name is unknown."""
    user, _, group = spec.partition(":")
    uid: int | None = None
    gid: int | None = None
    home = "/"
    if user.isdigit():
        uid = int(user)
        for f in _passwd(content, "passwd"):
            if len(f) > 5 and f[2] == user:
                gid, home = int(f[3]), f[5] or "/"
                break
    else:
        for f in _passwd(content, "passwd"):
            if len(f) > 5 and f[0] == user:
                uid, gid, home = int(f[2]), int(f[3]), f[5] or "/"
                break
        if uid is None:
            raise ValueError(f"unable to find user {user}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for f in _passwd(content, "group"):
                if len(f) > 2 and f[0] == group:
                    gid = int(f[2])
                    break
            else:
                raise ValueError(f"unable to find group {group}: no matching entries in group file")
    return User(uid, gid if gid is not None else 0, home)


def run(content: Path, argv: Sequence[str], *, env: dict[str, str], workdir: str, user: User | None,
        pip_cache: Path, scratch: Path, on_line: Callable[[str], None]) -> int:
    """Run ``argv`` in the image whose working content is ``content`` (modified in place); ``scratch`` is an empty
    private directory for the capture. Output lines go to ``on_line``; returns the exit code."""
    capture = scratch / "capture"
    capture.mkdir(mode=0o777)
    os.chmod(capture, 0o777)
    host = sandbox.host_binds(host_extra())
    binds = [*host, *_resolver_binds(), *sandbox.image_binds(content, host, read_only=False),
             sandbox.Bind(pip_cache, PIP_CACHE_TARGET, False), sandbox.Bind(capture, CAPTURE_TARGET, False)]
    keep = sorted({"/" + b.target.strip("/").split("/")[0] for b in binds} | {"/proc", "/dev", "/tmp", BUILD_DIR})
    script = _WRAPPER.format(keep="|".join(shlex.quote(k) for k in keep), capture=shlex.quote(CAPTURE_TARGET))
    if user is None or user.uid == 0:
        iso = sandbox.Isolation(user_namespace=False)
    else:
        iso = sandbox.Isolation(user_namespace=True, uid=user.uid, gid=user.gid, host_uid=user.uid,
                                host_gid=user.gid)
    cmd = sandbox.container_argv(["/bin/sh", "-c", script, "tinykube-run", *argv], binds, workdir=workdir or "/",
                                 iso=iso)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, close_fds=True)
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if rc == 0:
        for entry in sorted(capture.iterdir()):
            dest = content / entry.name
            if dest.exists() or dest.is_symlink():
                subprocess.run(["rm", "-rf", "--", str(dest)], check=True)
            os.rename(entry, dest)
    return rc


def _resolver_binds() -> list[sandbox.Bind]:
    """The host's ``/etc/resolv.conf`` and ``/etc/hosts`` when they are symlinks out of the container's view
    (systemd-resolved's ``/run/...``): the build's network is the host's, so is its name resolution."""
    out = []
    for f in ("/etc/resolv.conf", "/etc/hosts"):
        if os.path.islink(f):
            real = os.path.realpath(f)
            if os.path.isfile(real) and not in_host_view(os.path.dirname(real)):
                out.append(sandbox.Bind(Path(real), f, True))
    return out


def run_env(image_env: Sequence[str], args: dict[str, str], *, home: str, pip_cache: bool = True) -> dict[str, str]:
    """A RUN step's environment: the image's ``Env`` over the build ARGs in effect, ``PATH`` defaulted, ``HOME``,
    the host's proxy settings, and pip's shared cache."""
    env: dict[str, str] = {k: v for k, v in os.environ.items() if k in PROXY_VARS}
    env.update(args)
    for kv in image_env:
        k, _, v = kv.partition("=")
        env[k] = v
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home)
    if pip_cache:
        env.setdefault("PIP_CACHE_DIR", PIP_CACHE_TARGET)
    return env


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0
