"""Writing tinykube's kubeconfig, and merging it into (or out of) the user's.

A cluster is described by three named entries: a *cluster* (server URL and the CA
as ``certificate-authority-data``), a *user* (the bearer token) and a *context*
tying them together; all three share one name (``tinykube`` by default).
:func:`write_kubeconfig` writes a stand-alone file with just those entries.
:func:`merge_into` copies them into another kubeconfig (normally
:func:`default_kubeconfig_path`), replacing same-named entries in place and leaving
every other entry and top-level key untouched; :func:`remove_from` takes them out
again.

Every write goes to a temporary file created with mode 0600 in the destination's
directory and is then renamed over it, so the file (which holds a credential) is
never readable by others and kubectl never sees a half-written config.  When the
destination is a symlink, the file it points to is replaced.  A destination that
exists but is not a kubeconfig mapping is left alone and reported as an error
rather than overwritten.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..fileutil import write_private

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_SECTIONS = ("clusters", "users", "contexts")


def default_kubeconfig_path() -> Path:
    """The kubeconfig to update: the first entry of ``$KUBECONFIG``, else ``~/.kube/config``."""
    for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry.strip():
            return Path(entry).expanduser()
    return Path.home() / ".kube" / "config"


def _document(server_url: str, ca_pem: bytes, token: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                    "server": server_url,
                },
            }
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def _real_path(path: Path) -> Path:
    """Where to write: through a symlink to its target, so a linked kubeconfig stays linked."""
    path = Path(path).expanduser()
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _write_atomic(path: Path, doc: dict[str, Any]) -> None:
    path = _real_path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = yaml.dump(doc, Dumper=_Dumper, default_flow_style=False, sort_keys=False)
    write_private(path, text)


def _load(path: Path) -> dict[str, Any] | None:
    """The kubeconfig at ``path`` as a mapping, ``None`` when the file does not exist."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    doc = yaml.load(text, Loader=_Loader) if text.strip() else {}
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a kubeconfig (expected a YAML mapping)")
    return doc


def _entries(doc: dict[str, Any], section: str) -> list[Any]:
    items = doc.get(section)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError(f"kubeconfig field {section!r} is not a list")
    return items


def _named(name: str) -> Callable[[Any], bool]:
    return lambda item: isinstance(item, dict) and item.get("name") == name


def write_kubeconfig(path: Path, server_url: str, ca_pem: bytes, token: str, name: str = "tinykube") -> None:
    """Write a stand-alone kubeconfig for the cluster (mode 0600), replacing any file at ``path``."""
    _write_atomic(Path(path), _document(server_url, ca_pem, token, name))


def merge_into(target: Path, source: Path, name: str = "tinykube", set_current: bool = True) -> None:
    """Copy the cluster, user and context called ``name`` from ``source`` into ``target``.

    ``target`` (and its directory) is created when missing. Entries of the same name are
    replaced where they stand; everything else is kept as it was. ``current-context``
    becomes ``name`` when ``set_current`` is true.
    """
    src = _load(Path(source))
    if src is None:
        raise FileNotFoundError(f"{source}: no such kubeconfig")
    doc = _load(Path(target))
    if doc is None:
        doc = {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Config")
    is_ours = _named(name)
    for section in _SECTIONS:
        wanted = next((e for e in _entries(src, section) if is_ours(e)), None)
        if wanted is None:
            raise ValueError(f"{source}: no {section[:-1]} named {name!r}")
        items = _entries(doc, section)
        for i, item in enumerate(items):
            if is_ours(item):
                items[i] = wanted
                # drop later duplicates of the same name, which kubectl would also collapse
                items[i + 1 :] = [e for e in items[i + 1 :] if not is_ours(e)]
                break
        else:
            items.append(wanted)
        doc[section] = items
    if set_current:
        doc["current-context"] = name
    else:
        doc.setdefault("current-context", "")
    _write_atomic(Path(target), doc)


def remove_from(target: Path, name: str = "tinykube") -> None:
    """Remove the cluster, user and context called ``name`` from ``target`` (no-op when absent).

    When ``current-context`` pointed at the removed context it is cleared (``""``), as a
    kubeconfig naming a context that no longer exists would make kubectl fail.
    """
    doc = _load(Path(target))
    if doc is None:
        return
    is_ours = _named(name)
    changed = False
    for section in _SECTIONS:
        if section not in doc:
            continue
        items = _entries(doc, section)
        kept = [e for e in items if not is_ours(e)]
        if len(kept) != len(items):
            doc[section] = kept
            changed = True
    if doc.get("current-context") == name:
        doc["current-context"] = ""
        changed = True
    if changed:
        _write_atomic(Path(target), doc)
