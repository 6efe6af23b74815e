"""``tinykube image ...``: build and manage the local images that pods run.

Sub-verbs mirror Docker's: ``build``, ``ls`` (``list``), ``tag``, ``rm``,
``inspect``, ``history``, ``save``, ``load``, ``prune``. They work on
``<data-dir>/images`` directly, whether or not a cluster is running (the store
uses file locks for concurrent builds and name updates), and print what Docker
prints: BuildKit-style progress for builds, ``docker images`` columns for
``ls``, ``Untagged:``/``Deleted:`` lines for ``rm``. Errors are one line,
``error: <file>:<line>: <message>`` for Dockerfile problems, with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _store(a: argparse.Namespace) -> Any:
    from ..agent.images import ImageStore
    from .main import default_data_dir

    d = getattr(a, "data_dir", None)
    data_dir = Path(d).expanduser().resolve() if d else default_data_dir().expanduser().resolve()
    return ImageStore.for_data_dir(data_dir)


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 1


def _guard(fn: Any) -> Any:
    """Run a sub-verb, turning the store's and builder's errors into one ``error:`` line and exit code 1."""

    def wrapped(a: argparse.Namespace) -> int:
        from ..agent.images import BuildError, ImageError
        from ..api.imageref import InvalidReference

        try:
            return int(fn(a))
        except (BuildError, ImageError, InvalidReference) as e:
            return _error(str(e))
        except OSError as e:
            return _error(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapped


# -- formatting -------------------------------------------------------------------------------------------------

def human_size(n: float) -> str:
    """Docker's sizes: decimal units, three significant digits (``26.5MB``, ``260B``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """Docker's relative times (``About a minute``, ``3 hours``, ``2 weeks``)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = round(seconds / 60)
    if m == 1:
        return "About a minute"
    if s < 3600:
        return f"{m} minutes"
    h = round(seconds / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def _age(created: str) -> str:
    try:
        t = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return "N/A"
    return human_duration((datetime.now(UTC) - t).total_seconds()) + " ago"


# -- sub-verbs --------------------------------------------------------------------------------------------------

def cmd_build(a: argparse.Namespace) -> int:
    from ..agent.images import BuildOptions, build

    args: dict[str, str] = {}
    for kv in a.build_arg or []:
        k, eq, v = kv.partition("=")
        if not k:
            return _error(f"invalid build arg {kv!r}: use --build-arg NAME=VALUE")
        if eq:
            args[k] = v
        elif k in os.environ:
            args[k] = os.environ[k]
    text = None
    dockerfile = None
    if a.file == "-":
        text = sys.stdin.read()
    elif a.file:
        dockerfile = Path(a.file)
    opts = BuildOptions(Path(a.context), dockerfile=dockerfile, dockerfile_text=text, tags=a.tag or [],
                        build_args=args, no_cache=a.no_cache, target=a.target, quiet=a.quiet)
    img = build(_store(a), opts, sys.stdout, sys.stderr)
    if a.quiet:
        print(img.digest)
    return 0


def cmd_ls(a: argparse.Namespace) -> int:
    from ..api import imageref

    store = _store(a)
    rows: list[tuple[str, str, str, str, str]] = []
    want_repo = want_tag = None
    if a.repository:
        r, _, t = a.repository.rpartition(":") if ":" in a.repository.rsplit("/", 1)[-1] else (a.repository, "", "")
        want_repo, want_tag = imageref.repository(r), (t or None)
    for img in store.list():
        ident = img.digest if a.no_trunc else img.short_id
        names = img.names or ("<none>:<none>",)
        if not img.names and a.repository:
            continue
        for n in names:
            if n == "<none>:<none>":
                repo, tag = "<none>", "<none>"
            else:
                ref = imageref.parse(n)
                if want_repo and (ref.repository != want_repo or (want_tag and ref.tag != want_tag)):
                    continue
                repo, tag = ref.familiar_repository, ref.tag or "<none>"
            rows.append((repo, tag, ident, _age(img.created), human_size(img.size)))
    if a.quiet:
        out: list[str] = []
        for r in rows:
            if r[2] not in out:
                out.append(r[2])
        for ident in out:
            print(ident)
        return 0
    header = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(5)]
    for r in [header, *rows]:
        print("   ".join(r[i].ljust(widths[i]) for i in range(4)) + "   " + r[4])
    return 0


def cmd_tag(a: argparse.Namespace) -> int:
    _store(a).tag(a.source, a.target)
    return 0


def cmd_rm(a: argparse.Namespace) -> int:
    store = _store(a)
    rc = 0
    for ref in a.images:
        try:
            for line in store.remove(ref, force=a.force):
                print(line)
        except Exception as e:
            from ..agent.images import ImageError

            if not isinstance(e, ImageError):
                raise
            print(f"error: {e}", file=sys.stderr)
            rc = 1
    return rc


def cmd_inspect(a: argparse.Namespace) -> int:
    store = _store(a)
    out = [store.inspect(ref) for ref in a.images]
    if a.format:
        for o in out:
            print(_format(a.format, o))
    else:
        print(json.dumps(out, indent=4))
    return 0


def _format(fmt: str, obj: dict[str, Any]) -> str:
    """A small subset of Go templates: ``{{.Id}}``, ``{{.Config.Cmd}}``, ``{{json .Config}}``."""
    import re

    def value(path: str, as_json: bool) -> str:
        v: Any = obj
        for part in [p for p in path.split(".") if p]:
            v = v.get(part) if isinstance(v, dict) else None
        if as_json:
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + " ".join(str(x) for x in v) + "]"
        if isinstance(v, dict):
            return "map[" + " ".join(f"{k}:{x}" for k, x in v.items()) + "]"
        return "<no value>" if v is None else str(v)

    return re.sub(r"\{\{\s*(json\s+)?(\.[\w.]*)\s*\}\}", lambda m: value(m.group(2), bool(m.group(1))), fmt)


def cmd_history(a: argparse.Namespace) -> int:
    img = _store(a).require(a.image)
    print(f"{'IMAGE':<14}{'CREATED BY':<60}  LAYER")
    for i, h in enumerate(reversed(img.history)):
        ident = img.short_id if i == 0 else "<missing>"
        by = str(h.get("created_by", ""))
        if not a.no_trunc and len(by) > 57:
            by = by[:56] + "…"
        print(f"{ident:<14}{by:<60}  {'no' if h.get('empty_layer') else 'yes'}")
    return 0


def cmd_save(a: argparse.Namespace) -> int:
    store = _store(a)
    if a.output:
        tmp = Path(a.output + ".tmp")
        try:
            with open(tmp, "wb") as f:
                store.save(a.images, f)
            os.replace(tmp, a.output)
        finally:
            tmp.unlink(missing_ok=True)
        return 0
    if sys.stdout.isatty():
        return _error("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    store.save(a.images, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


def cmd_load(a: argparse.Namespace) -> int:
    store = _store(a)
    if a.input:
        with open(a.input, "rb") as f:
            lines = store.load(f)
    else:
        if sys.stdin.isatty():
            return _error("requested load from stdin, but stdin is empty (use -i FILE or redirect)")
        lines = store.load(sys.stdin.buffer)
    if not a.quiet:
        for line in lines:
            print(line)
    return 0


def cmd_prune(a: argparse.Namespace) -> int:
    store = _store(a)
    if not a.force and sys.stdin.isatty():
        answer = input("WARNING! This will remove all dangling images and unused build cache.\n"
                       "Are you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    deleted, freed = store.prune()
    if deleted:
        print("Deleted Images:")
        for d in deleted:
            print(f"deleted: {d}")
        print()
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


# -- parser ---------------------------------------------------------------------------------------------------

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``image`` and its sub-verbs on the ``tinykube`` sub-command parsers."""
    data_help = "cluster data directory (default $TINYKUBE_HOME or ~/.tinykube); images live in DIR/images"
    img = subparsers.add_parser("image", help="build and manage local images (Dockerfile builds, tags, save/load)")
    img.add_argument("--data-dir", default=None, help=data_help)
    sub = img.add_subparsers(dest="image_verb", required=True, metavar="COMMAND")

    def add(name: str, help_: str, fn: Any, aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_, aliases=list(aliases))
        p.add_argument("--data-dir", default=argparse.SUPPRESS, help=data_help)
        p.set_defaults(fn=_guard(fn))
        return p

    b = add("build", "build an image from a Dockerfile", cmd_build)
    b.add_argument("-t", "--tag", action="append", metavar="NAME[:TAG]", help="name (repeatable)")
    b.add_argument("-f", "--file", default=None, help="Dockerfile (default DIR/Dockerfile; - reads stdin)")
    b.add_argument("--build-arg", action="append", metavar="NAME[=VALUE]", help="set a build-time ARG")
    b.add_argument("--no-cache", action="store_true", help="do not use the step cache")
    b.add_argument("--target", default=None, help="build this stage (multi-stage Dockerfiles)")
    b.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    b.add_argument("context", metavar="DIR", help="build context directory")

    ls = add("ls", "list images", cmd_ls, ("list",))
    ls.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    ls.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    ls.add_argument("-a", "--all", action="store_true", help="all images (accepted for Docker compatibility)")
    ls.add_argument("--no-trunc", action="store_true", help="full image IDs")

    t = add("tag", "give an image another name", cmd_tag)
    t.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    t.add_argument("target", metavar="TARGET_IMAGE[:TAG]")

    rm = add("rm", "remove images (untag; delete when no name is left)", cmd_rm, ("rmi", "remove"))
    rm.add_argument("-f", "--force", action="store_true", help="remove all names of an image given by ID; untag in-use")
    rm.add_argument("images", nargs="+", metavar="IMAGE")

    ins = add("inspect", "show images' details as JSON", cmd_inspect)
    ins.add_argument("-f", "--format", default=None, help="Go-template-like format ({{.Id}}, {{json .Config}})")
    ins.add_argument("images", nargs="+", metavar="IMAGE")

    h = add("history", "show the instructions an image was built from", cmd_history)
    h.add_argument("--no-trunc", action="store_true")
    h.add_argument("image", metavar="IMAGE")

    s = add("save", "write images to a tar archive", cmd_save)
    s.add_argument("-o", "--output", default=None, help="file (default: stdout)")
    s.add_argument("images", nargs="+", metavar="IMAGE")

    ld = add("load", "add images from a tar archive made by save", cmd_load)
    ld.add_argument("-i", "--input", default=None, help="file (default: stdin)")
    ld.add_argument("-q", "--quiet", action="store_true")

    p = add("prune", "remove dangling images and unused build cache", cmd_prune)
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    return img
