"""``tinykube image build``: a Dockerfile into an image, with Docker's step cache.

**Stages and steps.** Each ``FROM`` starts a stage; the last stage (or
``--target``) is the image. A stage's state is its config (Docker's keys), its
content snapshot (a tree digest in the store), its ARGs and SHELL. Metadata
instructions (``ENV``, ``ARG``, ``LABEL``, ``EXPOSE``, ``CMD``, ``ENTRYPOINT``,
``USER``, ``SHELL``, ``STOPSIGNAL``, ``MAINTAINER``) only change the state;
filesystem steps (``WORKDIR`` when it creates a directory, ``COPY``, ``ADD``,
``RUN``) produce a new snapshot.

**Cache.** A filesystem step's key is SHA-256 over the previous step's key (the
base image's digest for the first), the whole config at that point (so an
``ENV`` change upstream invalidates later ``RUN`` steps), the instruction after
substitution, and its inputs: for ``COPY``/``ADD`` the digest of the selected
files' names, modes and contents (not times); for ``RUN`` the command and the
build ARGs in effect (proxy ARGs excepted, as in Docker). A key found in the
store's cache reuses that step's snapshot (printed ``CACHED``); everything
after a miss runs. A step works on a ``cp --reflink=auto`` copy of the previous
snapshot and commits the result (:meth:`.store.ImageStore.commit_snapshot`).

**Bases.** ``FROM`` looks in the local store first (an earlier stage's name,
then any image by name, ID or digest). Otherwise tinykube "pulls" what it can
make from the host:

* ``python:*`` — a virtualenv made *inside the sandbox* with the host's Python
  at ``/opt/venv`` (so its scripts' shebangs and ``pyvenv.cfg`` name container
  paths), ``PATH=/opt/venv/bin:...``, ``VIRTUAL_ENV=/opt/venv``,
  ``LANG=C.UTF-8``, ``PYTHON_VERSION=<host's>``, ``CMD ["python3"]``. One
  virtualenv per host interpreter is cached; every ``python:TAG`` asked for is
  tagged on it. A requested version other than the host's gets a warning on
  stderr (the host's is what runs).
* ``scratch``, ``debian``, ``ubuntu``, ``busybox``, ``alpine`` — the host's
  userland with empty content (``scratch`` is not stored, as in Docker).

Anything else is an error naming the Dockerfile line. Base images appear in
``tinykube image ls`` like pulled images in ``docker images``.

**Output** follows BuildKit's plain progress: ``#N [stage i/n] INSTRUCTION``,
command output as ``#N <seconds> <line>``, then ``#N CACHED`` or
``#N DONE <s>``; a failure prints ``#N ERROR: ...`` and raises
:class:`BuildError` (``file:line: message``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ...api import imageref
from . import runner
from .context import Context, ContextError, Ignore, Ownership, copy_source, is_archive, load_ignore
from .dockerfile import Dockerfile, DockerfileError, Instruction, SubstitutionError, Words, parse
from .store import Image, ImageError, ImageStore, canonical_json
from .tree import copy_tree, scoped

KEY_VERSION = "tinykube-build/1"
VENV = "/opt/venv"
HOST_BASES: dict[str, list[str] | None] = {"scratch": None, "debian": ["bash"], "ubuntu": ["/bin/bash"],
                                           "busybox": ["sh"], "alpine": ["/bin/sh"]}
FS_STEPS = ("FROM", "WORKDIR", "COPY", "ADD", "RUN")


class BuildError(Exception):
    """A failed build: ``path:line: message`` (line 0: not tied to a line)."""

    def __init__(self, message: str, path: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.message, self.path, self.line = message, path, line

    def __str__(self) -> str:
        if self.path and self.line:
            return f"{self.path}:{self.line}: {self.message}"
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class BuildOptions:
    context: Path
    dockerfile: Path | None = None  # default: <context>/Dockerfile
    dockerfile_text: str | None = None  # instead of a file (``-f -``)
    tags: Sequence[str] = ()
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    target: str | None = None
    quiet: bool = False


def empty_config() -> dict[str, Any]:
    return {"Env": [], "Cmd": None, "Entrypoint": None, "WorkingDir": "", "User": "", "ExposedPorts": {},
            "Labels": {}}


def host_python() -> tuple[str, str]:
    """(the host interpreter's real path, its version ``3.11.7``)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    exe = os.path.realpath(base if base.exists() else sys.executable)
    return exe, ".".join(str(x) for x in sys.version_info[:3])


class Progress:
    """BuildKit-style plain progress lines."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.n = 0

    def step(self, title: str) -> int:
        self.n += 1
        self.emit(f"#{self.n} {title}")
        return self.n

    def emit(self, line: str) -> None:
        if self.out is not None:
            print(line, file=self.out, flush=True)


@dataclass
class Stage:
    index: int
    name: str | None
    config: dict[str, Any]
    tree: str
    key: str
    total: int
    args: dict[str, str | None] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    cmd_set: bool = False
    done: int = 0
    keys: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def label(self, named: bool) -> str:
        prefix = f"{self.name} " if named and self.name else (f"stage-{self.index} " if named else "")
        return f"[{prefix}{self.done}/{self.total}]"

    def env(self) -> dict[str, str]:
        """Variables for substitution: ARGs in effect, overridden by ENV."""
        out = {k: v for k, v in self.args.items() if v is not None}
        for kv in self.config.get("Env") or []:
            k, _, v = str(kv).partition("=")
            out[k] = v
        return out


def _key(*parts: Any) -> str:
    return hashlib.sha256(canonical_json([KEY_VERSION, *parts])).hexdigest()


class Builder:
    def __init__(self, store: ImageStore, opts: BuildOptions, out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.store = store
        self.opts = opts
        self.progress = Progress(None if opts.quiet else out)
        self.err = err if err is not None else sys.stderr
        self.context_dir = Path(opts.context)
        dfp = opts.dockerfile or self.context_dir / "Dockerfile"
        self.df_path = dfp
        self.df_display = os.path.normpath(str(dfp)) if opts.dockerfile_text is None else "Dockerfile"
        self.df: Dockerfile | None = None
        self.ctx: Context | None = None
        self.stages: list[Stage] = []
        self.consumed: set[str] = set()
        self.global_args: dict[str, str | None] = {}
        self.work = Path()

    # -- helpers ------------------------------------------------------------------------------------------

    def fail(self, ins: Instruction | None, msg: str) -> BuildError:
        return BuildError(msg, self.df_display, ins.line if ins else 0)

    def warn(self, msg: str) -> None:
        print(f"warning: {msg}", file=self.err, flush=True)

    def context(self) -> Context:
        if self.ctx is None:
            self.ctx = Context(self.context_dir, load_ignore(self.context_dir, self.df_path))
        return self.ctx

    def new_work(self, parent_tree: str, *, link: bool = False) -> Path:
        d = self.work / f"w{len(os.listdir(self.work))}"
        copy_tree(self.store.snapshot_path(parent_tree), d, link=link)
        return d

    def empty_tree(self) -> str:
        d = self.work / f"e{len(os.listdir(self.work))}"
        d.mkdir()
        tree, _ = self.store.commit_snapshot(d)
        return tree

    # -- entry --------------------------------------------------------------------------------------------

    def build(self) -> Image:
        opts = self.opts
        names = []
        for t in opts.tags:
            try:
                names.append(str(imageref.parse(t)))
            except imageref.InvalidReference as e:
                raise BuildError(f'invalid argument "{t}" for "-t, --tag" flag: {e}') from None
            if imageref.parse(t).digest:
                raise BuildError(f'invalid argument "{t}" for "-t, --tag" flag: a tag cannot contain a digest')
        if not self.context_dir.is_dir():
            raise BuildError(f"unable to prepare context: path {str(self.context_dir)!r} not found")
        n = self.progress.step(f"[internal] load build definition from {self.df_path.name}")
        if opts.dockerfile_text is not None:
            text = opts.dockerfile_text
        else:
            try:
                text = self.df_path.read_text(errors="replace")
            except OSError as e:
                raise BuildError(f"failed to read dockerfile: open {self.df_display}: {e.strerror}") from None
        try:
            self.df = parse(text, self.df_display)
        except DockerfileError as e:
            raise BuildError(e.message, e.path, e.line) from None
        self.progress.emit(f"#{n} transferring dockerfile: {len(text.encode())}B done")
        self.progress.emit(f"#{n} DONE 0.0s")
        with self.store.building():
            self.work = self.store.work_dir()
            try:
                return self._build(names)
            finally:
                shutil.rmtree(self.work, ignore_errors=True)

    def _build(self, names: list[str]) -> Image:
        assert self.df is not None
        groups: list[list[Instruction]] = []
        for ins in self.df.instructions:
            if ins.keyword == "FROM":
                groups.append([ins])
            elif not groups:
                self._global_arg(ins)
            else:
                groups[-1].append(ins)
        stage_names = [self._stage_name(g[0]) for g in groups]
        last = len(groups) - 1
        if self.opts.target:
            t = self.opts.target.lower()
            if t not in stage_names:
                raise BuildError(f"target stage {self.opts.target!r} could not be found")
            last = stage_names.index(t)
        named = last > 0
        for i, g in enumerate(groups[:last + 1]):
            total = sum(1 for ins in g if ins.keyword in FS_STEPS)
            stage = self._from(g[0], i, stage_names[i], total, named)
            self.stages.append(stage)
            for ins in g[1:]:
                self._instruction(stage, ins, named)
        final = self.stages[-1]
        unused = sorted(k for k in self.opts.build_args if k not in self.consumed and k not in runner.PROXY_VARS)
        if unused:
            self.warn(f"one or more build-args [{' '.join(unused)}] were not consumed")
        n = self.progress.step("exporting to image")
        clock = runner.Clock()
        chain = [k for s in self.stages for k in s.keys]
        try:
            img = self.store.add_image(_normal_config(final.config), final.tree, history=final.history, chain=chain,
                                       names=names)
        except ImageError as e:
            raise BuildError(str(e)) from None
        self.progress.emit(f"#{n} writing image {img.digest} done")
        for name in names:
            self.progress.emit(f"#{n} naming to {name} done")
        self.progress.emit(f"#{n} DONE {clock.elapsed():.1f}s")
        return img

    def _global_arg(self, ins: Instruction) -> None:
        words = Words({k: v for k, v in self.global_args.items() if v is not None}, self._escape())
        for name, default in ins.pairs:
            self.consumed.add(name)
            if name in self.opts.build_args:
                self.global_args[name] = self.opts.build_args[name]
            else:
                self.global_args[name] = self._word(ins, words, default) if default is not None else None

    def _escape(self) -> str:
        return self.df.escape if self.df else "\\"

    def _word(self, ins: Instruction, words: Words, text: str) -> str:
        try:
            return words.word(text)
        except SubstitutionError as e:
            raise self.fail(ins, str(e)) from None

    def _words(self, ins: Instruction, words: Words, text: str) -> list[str]:
        try:
            return words.words(text)
        except SubstitutionError as e:
            raise self.fail(ins, str(e)) from None

    @staticmethod
    def _stage_name(ins: Instruction) -> str:
        w = ins.args.split()
        return w[2].lower() if len(w) == 3 else ""

    # -- FROM ---------------------------------------------------------------------------------------------

    def _from(self, ins: Instruction, index: int, name: str, total: int, named: bool) -> Stage:
        env = {k: v for k, v in self.global_args.items() if v is not None}
        ref = self._word(ins, Words(env, self._escape()), ins.args.split()[0])
        if not ref:
            raise self.fail(ins, "base name (" + ins.args.split()[0] + ") should not be blank")
        stage = Stage(index, name or None, empty_config(), "", "", total)
        stage.done = 1
        prior = {s.name: s for s in self.stages if s.name}
        if ref.lower() in prior:
            base = prior[ref.lower()]
            n = self.progress.step(f"{stage.label(named)} FROM {ref}")
            stage.config, stage.tree, stage.key = copy.deepcopy(base.config), base.tree, base.key
            stage.shell = list(base.shell)
            self.progress.emit(f"#{n} CACHED")
            stage.history = list(base.history)
            return stage
        if ref == "scratch":
            n = self.progress.step(f"{stage.label(named)} FROM scratch")
            stage.tree = self.empty_tree()
            stage.key = _key("scratch")
            stage.history.append({"created_by": "FROM scratch", "empty_layer": True})
            self.progress.emit(f"#{n} CACHED")
            return stage
        try:
            parsed = imageref.parse(ref)
        except imageref.InvalidReference as e:
            raise self.fail(ins, f'failed to parse stage name "{ref}": {e}') from None
        n = self.progress.step(f"{stage.label(named)} FROM {parsed}")
        clock = runner.Clock()
        try:
            img = self.store.resolve(ref)
        except ImageError as e:
            raise self.fail(ins, str(e)) from None
        short = parsed.familiar_repository
        host_exe, host_ver = host_python()
        if short == "python" and parsed.domain == imageref.DEFAULT_DOMAIN:
            self._python_warning(ins, parsed.tag or "", host_ver)
            if img is not None and img.config.get("Labels", {}).get("io.tinykube.host-python") not in (None, host_exe):
                img = None  # made with another host interpreter: make it again
            if img is None:
                img = self._pull_python(n, parsed, host_exe, host_ver)
                self.progress.emit(f"#{n} DONE {clock.elapsed():.1f}s")
            else:
                self.progress.emit(f"#{n} CACHED")
        elif img is None and short in HOST_BASES and parsed.domain == imageref.DEFAULT_DOMAIN and not parsed.digest:
            img = self._pull_host_base(n, parsed)
            self.progress.emit(f"#{n} DONE {clock.elapsed():.1f}s")
        elif img is None:
            raise self.fail(ins, f"pull access denied for {short}: no such image in the local store, and tinykube "
                                 "makes only python:*, scratch, debian, ubuntu, busybox and alpine bases itself "
                                 "(build or load the image first)")
        else:
            self.progress.emit(f"#{n} CACHED")
        stage.config = _normal_config(copy.deepcopy(img.config))
        stage.tree = img.tree
        stage.key = _key("from", img.digest)
        stage.history = [*img.history, {"created_by": ins.text, "empty_layer": True}]
        return stage

    def _python_warning(self, ins: Instruction, tag: str, host_ver: str) -> None:
        m = re.match(r"(\d+(?:\.\d+)*)", tag)
        if not m:
            return
        want = m.group(1).split(".")
        have = host_ver.split(".")[:len(want)]
        if want != have:
            self.warn(f"{self.df_display}:{ins.line}: FROM python:{tag}: Python {m.group(1)} is not used; images get a "
                      f"virtualenv of the host's Python {host_ver}")

    def _pull_python(self, n: int, ref: imageref.Reference, host_exe: str, host_ver: str) -> Image:
        key = _key("python-venv/2", host_exe, sys.version, VENV, _bundled_pip())
        entry = None if self.opts.no_cache else self.store.cache_get(key)
        if entry is not None:
            tree = str(entry["tree"])
        else:
            self.progress.emit(f"#{n} creating a virtualenv of {host_exe} ({host_ver}) at {VENV}")
            d = self.work / "venv"
            (d / VENV.lstrip("/")).mkdir(parents=True, mode=0o755)
            clock = runner.Clock()
            wheel = _bundled_pip()
            if wheel:
                # ensurepip would byte-compile pip (most of its time); containers never run pip, so install the
                # bundled wheel uncompiled, with pip run from the wheel itself.
                script = ('"$0" -m venv --without-pip "$1" && "$1/bin/python" "$2/pip" install --no-index '
                          '--no-compile --disable-pip-version-check --no-cache-dir -q "$2"')
                argv = ["/bin/sh", "-c", script, host_exe, VENV, wheel]
            else:
                argv = [host_exe, "-m", "venv", VENV]
            rc = self._run(d, argv, runner.run_env([], {}, home="/root"), "/", None, n, clock)
            if rc != 0:
                raise BuildError(f"creating the python base's virtualenv failed (exit code {rc}); the host Python "
                                 f"{host_exe} needs the venv and ensurepip modules (Debian: apt-get install "
                                 "python3-venv)")
            tree, _ = self.store.commit_snapshot(d)
            self.store.cache_put(key, tree, f"python -m venv {VENV}")
        config = empty_config()
        config["Env"] = [f"PATH={VENV}/bin:{runner.DEFAULT_PATH}", f"VIRTUAL_ENV={VENV}", "LANG=C.UTF-8",
                         f"PYTHON_VERSION={host_ver}"]
        config["Cmd"] = ["python3"]
        config["Labels"] = {"io.tinykube.host-python": host_exe}
        history = [{"created_by": f"tinykube: virtualenv of the host's Python {host_ver} ({host_exe}) at {VENV}",
                    "empty_layer": False}]
        return self.store.add_image(config, tree, history=history, chain=[key], names=[str(ref)])

    def _pull_host_base(self, n: int, ref: imageref.Reference) -> Image:
        config = empty_config()
        config["Env"] = [f"PATH={runner.DEFAULT_PATH}"]
        config["Cmd"] = HOST_BASES[ref.familiar_repository]
        config["Labels"] = {"io.tinykube.base": "host-userland"}
        self.progress.emit(f"#{n} {ref.familiar_repository}: the host's userland (empty content)")
        history = [{"created_by": f"tinykube: {ref.familiar_repository} (the host's userland)", "empty_layer": True}]
        return self.store.add_image(config, self.empty_tree(), history=history, names=[str(ref)])

    # -- instructions -------------------------------------------------------------------------------------

    def _instruction(self, st: Stage, ins: Instruction, named: bool) -> None:
        kw = ins.keyword
        words = Words(st.env(), self._escape())
        cfg = st.config
        if kw in ("WORKDIR", "COPY", "ADD", "RUN"):
            st.done += 1
            handler = {"WORKDIR": self._workdir, "COPY": self._copy, "ADD": self._copy, "RUN": self._run_step}[kw]
            handler(st, ins, words, named)
            st.history.append({"created_by": ins.text, "empty_layer": False})
            return
        if kw == "ENV":
            for k, raw in ins.pairs:
                _set_env(cfg, self._word(ins, words, k), self._word(ins, words, raw or ""))
                words = Words(st.env(), self._escape())
        elif kw == "ARG":
            for name, default in ins.pairs:
                self.consumed.add(name)
                if name in self.opts.build_args:
                    st.args[name] = self.opts.build_args[name]
                elif default is not None:
                    st.args[name] = self._word(ins, words, default)
                else:
                    st.args[name] = self.global_args.get(name)
                words = Words(st.env(), self._escape())
        elif kw == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            for k, raw in ins.pairs:
                labels[self._word(ins, words, k)] = self._word(ins, words, raw or "")
            cfg["Labels"] = labels
        elif kw == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for w in self._words(ins, words, ins.args):
                for p in _ports(w):
                    if p is None:
                        raise self.fail(ins, f"invalid containerPort: {w}")
                    ports[p] = {}
            cfg["ExposedPorts"] = ports
        elif kw in ("CMD", "ENTRYPOINT"):
            value = list(ins.exec_form) if ins.exec_form is not None else [*st.shell, ins.args]
            if kw == "CMD":
                cfg["Cmd"] = value
                st.cmd_set = True
            else:
                cfg["Entrypoint"] = value
                if not st.cmd_set:
                    cfg["Cmd"] = None
        elif kw == "USER":
            cfg["User"] = self._word(ins, words, ins.args)
        elif kw == "SHELL":
            st.shell = list(ins.exec_form or [])
        elif kw == "STOPSIGNAL":
            cfg["StopSignal"] = self._word(ins, words, ins.args)
        st.history.append({"created_by": ins.text, "empty_layer": True})

    def _fs_step(self, st: Stage, ins: Instruction, named: bool, parts: list[Any]) -> tuple[int, str, bool]:
        """Start a filesystem step: (progress number, cache key, hit). On a hit the stage moves on already."""
        n = self.progress.step(f"{st.label(named)} {ins.text}")
        key = _key(st.key, st.config, *parts)
        entry = None if self.opts.no_cache else self.store.cache_get(key)
        if entry is not None:
            self.progress.emit(f"#{n} CACHED")
            st.tree, st.key = str(entry["tree"]), key
            st.keys.append(key)
            return n, key, True
        return n, key, False

    def _commit(self, st: Stage, ins: Instruction, n: int, key: str, work: Path, clock: runner.Clock) -> None:
        tree, _ = self.store.commit_snapshot(work)
        self.store.cache_put(key, tree, ins.text)
        st.tree, st.key = tree, key
        st.keys.append(key)
        self.progress.emit(f"#{n} DONE {clock.elapsed():.1f}s")

    def _workdir(self, st: Stage, ins: Instruction, words: Words, named: bool) -> None:
        path = self._word(ins, words, ins.args)
        path = os.path.normpath(os.path.join(st.config.get("WorkingDir") or "/", path))
        path = "/" if path == "//" else path
        st.config["WorkingDir"] = path
        content = self.store.snapshot_path(st.tree)
        needed = not (scoped(content, path).is_dir() or runner.in_host_view(path)
                      or path in ("/", "/tmp", "/proc", "/dev") or path.startswith(("/tmp/", "/proc/", "/dev/")))
        if not needed:
            n = self.progress.step(f"{st.label(named)} {ins.text}")
            self.progress.emit(f"#{n} CACHED")
            return
        n, key, hit = self._fs_step(st, ins, named, ["WORKDIR", path])
        if hit:
            return
        clock = runner.Clock()
        work = self.new_work(st.tree, link=True)
        try:
            scoped(work, path).mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as e:
            raise self.fail(ins, f"mkdir {path}: {e.strerror}") from None
        self._commit(st, ins, n, key, work, clock)

    def _copy(self, st: Stage, ins: Instruction, words: Words, named: bool) -> None:
        kw = ins.keyword
        if ins.exec_form is not None:
            try:
                args = [words.expand(a) for a in ins.exec_form]
            except SubstitutionError as e:
                raise self.fail(ins, str(e)) from None
        else:
            args = self._words(ins, words, ins.args)
        if len(args) < 2:
            raise self.fail(ins, f"{kw} requires at least two arguments")
        srcs, dest = args[:-1], args[-1]
        for src in srcs:
            if re.match(r"^[a-z][a-z0-9+.-]*://", src) or src.startswith("git@"):
                raise self.fail(ins, f"{kw} {src}: only local paths are supported (tinykube does not download)")
        ctx = self.context()
        from_flag = ins.flag("from")
        if from_flag is not None:
            ctx = self._from_context(st, ins, self._word(ins, words, from_flag))
        try:
            sources = [s for src in srcs for s in ctx.select(src)]
        except ContextError as e:
            raise self.fail(ins, f"{kw} failed: {e}") from None
        dest_abs = os.path.join(st.config.get("WorkingDir") or "/", dest)
        if len(sources) > 1 and not dest.endswith("/"):
            raise self.fail(ins, f"When using {kw} with more than one source file, the destination must be a "
                                 "directory and end with a /")
        own = self._ownership(st, ins, words)
        digest = ctx.sources_digest(sources)
        n, key, hit = self._fs_step(st, ins, named, [kw, dest_abs, dest.endswith("/"), own.uid, own.gid, own.mode,
                                                     from_flag, digest])
        if hit:
            return
        clock = runner.Clock()
        extract = kw == "ADD" and from_flag is None
        # Archives are extracted by tarfile, which may write into an existing file: no shared inodes then.
        work = self.new_work(st.tree, link=not (extract and any(is_archive(s.path) for s in sources)))
        target = scoped(work, dest_abs)
        into_dir = dest.endswith("/") or dest_abs.endswith("/.") or target.is_dir() or runner.in_host_view(
            os.path.normpath(dest_abs))
        try:
            for s in sources:
                copy_source(ctx, s, target, into_dir=into_dir, own=own, extract=extract)
        except (OSError, ContextError, ValueError) as e:
            raise self.fail(ins, f"{kw} failed: {e}") from None
        self._commit(st, ins, n, key, work, clock)

    def _from_context(self, st: Stage, ins: Instruction, ref: str) -> Context:
        for s in self.stages:
            if s is not st and (s.name == ref.lower() or str(s.index) == ref):
                return Context(self.store.snapshot_path(s.tree), Ignore([]))
        try:
            img = self.store.resolve(ref)
        except (ImageError, imageref.InvalidReference) as e:
            raise self.fail(ins, f"COPY --from={ref}: {e}") from None
        if img is None:
            raise self.fail(ins, f"COPY --from={ref}: no such stage or image")
        return Context(img.content, Ignore([]))

    def _ownership(self, st: Stage, ins: Instruction, words: Words) -> Ownership:
        chown, chmod = ins.flag("chown"), ins.flag("chmod")
        uid = gid = mode = None
        if chown:
            spec = self._word(ins, words, chown)
            try:
                u = runner.resolve_user(self.store.snapshot_path(st.tree), spec)
            except ValueError as e:
                raise self.fail(ins, str(e)) from None
            uid, gid = u.uid, u.gid
        if chmod:
            spec = self._word(ins, words, chmod)
            if not re.fullmatch(r"[0-7]{3,4}", spec):
                raise self.fail(ins, f"invalid chmod parameter {spec!r}: use an octal mode such as 755")
            mode = int(spec, 8)
        return Ownership(uid, gid, mode)

    def _run(self, content: Path, argv: list[str], env: dict[str, str], workdir: str, user: runner.User | None,
             n: int, clock: runner.Clock) -> int:
        if os.geteuid() != 0:
            raise BuildError("this step runs a command in the image's sandbox, which needs root (as Docker's daemon "
                             "does): run tinykube image build as root")
        scratch = self.work / f"s{len(os.listdir(self.work))}"
        scratch.mkdir()

        def line(text: str) -> None:
            self.progress.emit(f"#{n} {clock.elapsed():.3f} {text}")

        try:
            return runner.run(content, argv, env=env, workdir=workdir, user=user, pip_cache=self.store.pip_cache,
                              scratch=scratch, on_line=line)
        except FileNotFoundError as e:
            raise BuildError(str(e)) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run_step(self, st: Stage, ins: Instruction, words: Words, named: bool) -> None:
        argv = list(ins.exec_form) if ins.exec_form is not None else [*st.shell, ins.args]
        if not argv:
            raise self.fail(ins, "RUN requires at least one argument")
        args = {k: v for k, v in st.args.items() if v is not None}
        predefined = {k: v for k, v in self.opts.build_args.items() if k in runner.PROXY_VARS}
        key_args = {k: v for k, v in args.items() if k not in runner.PROXY_VARS}
        n, key, hit = self._fs_step(st, ins, named, ["RUN", argv, key_args, st.shell])
        if hit:
            return
        clock = runner.Clock()
        content = self.store.snapshot_path(st.tree)
        user = None
        spec = st.config.get("User") or ""
        if spec and spec not in ("root", "0", "0:0", "root:root"):
            try:
                user = runner.resolve_user(content, spec)
            except ValueError as e:
                raise self.fail(ins, str(e)) from None
        work = self.new_work(st.tree)
        env = runner.run_env(st.config.get("Env") or [], {**predefined, **args},
                             home=user.home if user else "/root")
        wd = st.config.get("WorkingDir") or "/"
        rc = self._run(work, argv, env, wd, user, n, clock)
        if rc != 0:
            shown = " ".join(argv) if ins.exec_form is None else json.dumps(argv)
            msg = f'process "{shown}" did not complete successfully: exit code: {rc}'
            self.progress.emit(f"#{n} ERROR: {msg}")
            raise self.fail(ins, msg)
        self._commit(st, ins, n, key, work, clock)


def _bundled_pip() -> str | None:
    """The pip wheel the host Python's ensurepip bundles, when it lies where containers see it."""
    try:
        import ensurepip
    except ImportError:
        return None
    wheels = sorted(Path(ensurepip.__file__).parent.joinpath("_bundled").glob("pip-*.whl"))
    if not wheels:
        return None
    path = os.path.realpath(wheels[-1])
    return path if runner.in_host_view(os.path.dirname(path)) else None


def _set_env(cfg: dict[str, Any], key: str, value: str) -> None:
    env = [e for e in cfg.get("Env") or [] if str(e).partition("=")[0] != key]
    env.append(f"{key}={value}")
    cfg["Env"] = env


def _ports(word: str) -> list[str | None]:
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        return [None]
    lo, dash, hi = port.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()):
        return [None]
    a, b = int(lo), int(hi) if dash else int(lo)
    if not (0 < a <= 65535 and 0 < b <= 65535 and a <= b):
        return [None]
    return [f"{p}/{proto}" for p in range(a, b + 1)]


def _normal_config(cfg: dict[str, Any]) -> dict[str, Any]:
    out = empty_config()
    out.update({k: v for k, v in cfg.items() if v is not None or k in ("Cmd", "Entrypoint")})
    out["ExposedPorts"] = dict(sorted((out.get("ExposedPorts") or {}).items()))
    out["Labels"] = dict(out.get("Labels") or {})
    return out


def build(store: ImageStore, opts: BuildOptions, out: TextIO | None = None, err: TextIO | None = None) -> Image:
    """Build an image; progress to ``out`` (None: silent), warnings to ``err``. Raises :class:`BuildError`."""
    return Builder(store, opts, out, err).build()
