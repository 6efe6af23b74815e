"""The build context: ``.dockerignore``, ``COPY``/``ADD`` sources, their cache identity, and copying.

``.dockerignore`` (or ``<Dockerfile>.dockerignore`` beside a named Dockerfile,
which wins) follows Docker's rules: one pattern per line, ``#`` comments, blank
lines ignored, surrounding blanks trimmed, paths cleaned and relative to the
context root (a leading ``/`` is dropped), ``*``/``?``/``[...]`` as in Go's
``filepath.Match`` (never crossing ``/``), ``**`` for any number of directories,
``!`` re-including; the last matching pattern decides, and a pattern that
matches a directory excludes everything below it.

A source's cache identity (:meth:`Context.sources_digest`) covers the names,
types, permission bits and contents of everything it selects, after
``.dockerignore`` — not times or owners — so editing a copied file invalidates
its ``COPY`` and every later step, while touching it does not.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .tree import file_digest

_WILD = re.compile(r"[*?\[]")


class ContextError(Exception):
    pass


def _translate(pattern: str) -> str:
    """A Go ``filepath.Match`` pattern (plus ``**``) as a regular expression."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern.startswith(("[^", "[!"), i) else i + 1)
            if j < 0:
                raise ContextError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1:j]
            neg = body[:1] in ("^", "!")
            if neg:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append(f"[{'^' if neg else ''}{body}]")
            i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    exclude: bool


class Ignore:
    """Compiled ``.dockerignore`` rules."""

    def __init__(self, lines: list[str]) -> None:
        self.rules: list[_Rule] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = True
            if line.startswith("!"):
                exclude, line = False, line[1:].strip()
            line = os.path.normpath(line.lstrip("/")) if line.lstrip("/") else "."
            if line == ".":
                continue
            self.rules.append(_Rule(re.compile(_translate(line)), exclude))
        self.has_exceptions = any(not r.exclude for r in self.rules)

    def ignored(self, rel: str) -> bool:
        """Is the context path ``rel`` (``a/b.txt``) excluded?"""
        if not self.rules:
            return False
        parts = rel.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        result = False
        for rule in self.rules:
            if any(rule.regex.fullmatch(p) for p in prefixes):
                result = rule.exclude
        return result


def load_ignore(context: Path, dockerfile: Path | None) -> Ignore:
    candidates = []
    if dockerfile is not None:
        candidates.append(dockerfile.with_name(dockerfile.name + ".dockerignore"))
    candidates.append(context / ".dockerignore")
    for c in candidates:
        if c.is_file():
            return Ignore(c.read_text(errors="replace").splitlines())
    return Ignore([])


@dataclass(frozen=True)
class Source:
    """A selected source: its context path (``""`` for the root) and host path."""

    rel: str
    path: Path

    @property
    def is_dir(self) -> bool:
        return self.path.is_dir() and not self.path.is_symlink()


class Context:
    """A build context directory and its ``.dockerignore``."""

    def __init__(self, root: Path, ignore: Ignore) -> None:
        self.root = root.resolve()
        self.ignore = ignore
        self._digests: dict[str, str] = {}

    def _walk(self, rel: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        base = self.root / rel if rel else self.root
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            ignored = self.ignore.ignored(r)
            if e.is_dir(follow_symlinks=False):
                if ignored and not self.ignore.has_exceptions:
                    continue
                if not ignored:
                    yield r, e
                yield from self._walk(r)
            elif not ignored:
                yield r, e

    def select(self, src: str) -> list[Source]:
        """The context entries a COPY/ADD source names (wildcards allowed); raises ContextError when none."""
        clean = os.path.normpath("/" + src).lstrip("/")
        if src.startswith("..") or os.path.normpath(src).startswith(".."):
            raise ContextError(f"forbidden path outside the build context: {src}")
        if clean in ("", "."):
            return [Source("", self.root)]
        if _WILD.search(clean):
            rx = re.compile(_translate(clean))
            found = [Source(r, self.root / r) for r, _e in self._walk("") if rx.fullmatch(r)]
            # Entries inside a matched directory are copied with it, not again.
            found = [s for s in found if not any(s.rel.startswith(o.rel + "/") for o in found if o.is_dir)]
            if not found:
                raise ContextError(f"no source files were specified (nothing matches {src!r} in the build context)")
            return found
        path = self.root / clean
        if self.ignore.ignored(clean) or not (path.exists() or path.is_symlink()):
            raise ContextError(f"file not found in build context or excluded by .dockerignore: stat {src}: "
                               "file does not exist")
        if path.is_symlink():
            real = Path(os.path.realpath(path))
            if real != self.root and self.root not in real.parents:
                raise ContextError(f"forbidden path outside the build context: {src} -> {os.readlink(path)}")
            path = real
        return [Source(clean, path)]

    def entries(self, s: Source) -> Iterator[tuple[str, os.DirEntry[str] | None]]:
        """Everything under a directory source (relative to it, not ignored); a file source is itself (``""``)."""
        if not s.is_dir:
            yield "", None
            return
        rel_root = os.path.relpath(s.path, self.root)
        rel_root = "" if rel_root == "." else rel_root
        for r, e in self._walk(rel_root):
            yield (r[len(rel_root) + 1:] if rel_root else r), e

    def sources_digest(self, sources: list[Source]) -> str:
        h = hashlib.sha256()
        for s in sources:
            h.update(f"S{s.rel}\n".encode())
            for r, e in self.entries(s):
                p = Path(e.path) if e is not None else s.path
                st = p.lstat()
                mode = f"{stat.S_IMODE(st.st_mode):o}"
                if stat.S_ISLNK(st.st_mode):
                    h.update(f"L{r}\0{mode}\0{os.readlink(p)}\n".encode("utf-8", "surrogateescape"))
                elif stat.S_ISDIR(st.st_mode):
                    h.update(f"D{r}\0{mode}\n".encode("utf-8", "surrogateescape"))
                elif stat.S_ISREG(st.st_mode):
                    h.update(f"F{r}\0{mode}\0{self._file_digest(p)}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def _file_digest(self, p: Path) -> str:
        key = str(p)
        d = self._digests.get(key)
        if d is None:
            d = self._digests[key] = file_digest(p)
        return d


@dataclass(frozen=True)
class Ownership:
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None

    def apply(self, path: Path) -> None:
        if self.uid is not None or self.gid is not None:
            os.lchown(path, -1 if self.uid is None else self.uid, -1 if self.gid is None else self.gid)
        if self.mode is not None and not path.is_symlink():
            os.chmod(path, self.mode)


def copy_source(ctx: Context, s: Source, dest: Path, *, into_dir: bool, own: Ownership, extract: bool) -> None:
    """Copy one selected source to ``dest`` (a host path inside the image's content): a directory's contents go
    into ``dest``; a file goes to ``dest/<name>`` when ``into_dir`` else to ``dest``; ``extract`` unpacks a local
    tar archive (ADD) into ``dest``."""
    if s.is_dir:
        _mkdirs(dest, own)
        for r, e in ctx.entries(s):
            assert e is not None
            target = dest / r
            if e.is_dir(follow_symlinks=False):
                if target.is_symlink() or (target.exists() and not target.is_dir()):
                    _remove(target)
                if not target.is_dir():
                    target.mkdir()
                shutil.copystat(e.path, target, follow_symlinks=False)
            else:
                _copy_file(Path(e.path), target)
            own.apply(target)
        return
    if extract and is_archive(s.path):
        _mkdirs(dest, own)
        with tarfile.open(s.path, mode="r:*") as tar:
            tar.extractall(dest, numeric_owner=True, filter="tar")
        return
    target = dest / s.path.name if into_dir else dest
    if into_dir:
        _mkdirs(dest, own)
    else:
        _mkdirs(dest.parent, Ownership())
    if target.is_dir() and not target.is_symlink():
        target = target / s.path.name
    _copy_file(s.path, target)
    own.apply(target)


def is_archive(p: Path) -> bool:
    try:
        return p.is_file() and tarfile.is_tarfile(p)
    except OSError:
        return False


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()


def _mkdirs(d: Path, own: Ownership) -> None:
    missing = []
    p = d
    while not p.exists() and not p.is_symlink():
        missing.append(p)
        p = p.parent
    for m in reversed(missing):
        m.mkdir(mode=0o755)
        os.chmod(m, 0o755)
        if own.uid is not None or own.gid is not None:
            own.apply(m) if own.mode is None else Ownership(own.uid, own.gid).apply(m)


def _copy_file(src: Path, target: Path) -> None:
    if target.is_symlink() or (target.exists() and target.is_dir()):
        _remove(target)
    elif target.exists():
        target.unlink()
    if src.is_symlink():
        os.symlink(os.readlink(src), target)
    else:
        shutil.copy2(src, target, follow_symlinks=False)
