"""Writing, merging and removing tinykube's kubeconfig entries (checked with the real kubectl)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tinykube.cli.kubeconfig import default_kubeconfig_path, merge_into, remove_from, write_kubeconfig

CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
TOKEN = "s3cr3t-token_value"
SERVER = "https://127.0.0.1:6443"

OTHER: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:443", "insecure-skip-tls-verify": True}}],
    "users": [{"name": "prod-admin", "user": {"token": "prod-token"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod-admin", "namespace": "apps"}}],
    "current-context": "prod",
    "preferences": {"colors": True},
    "extensions": [{"name": "keep-me", "extension": {"a": 1}}],
}

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH")


def _read(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _names(doc: dict[str, Any], section: str) -> list[str]:
    return [e["name"] for e in doc.get(section) or []]


def _kubectl_view(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["kubectl", "config", "view", "--kubeconfig", str(path), "-o", "json", "--raw"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "KUBECONFIG": ""},
    )
    doc = json.loads(out.stdout)
    assert isinstance(doc, dict)
    return doc


def _source(tmp_path: Path, token: str = TOKEN, server: str = SERVER) -> Path:
    src = tmp_path / "src" / "tinykube.kubeconfig"
    write_kubeconfig(src, server, CA_PEM, token)
    return src


def test_write_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "kubeconfig"
    write_kubeconfig(path, SERVER, CA_PEM, TOKEN)
    assert _mode(path) == 0o600
    doc = _read(path)
    assert doc["current-context"] == "tinykube"
    assert doc["clusters"] == [
        {
            "name": "tinykube",
            "cluster": {"certificate-authority-data": base64.b64encode(CA_PEM).decode(), "server": SERVER},
        }
    ]
    assert doc["users"] == [{"name": "tinykube", "user": {"token": TOKEN}}]
    assert doc["contexts"] == [{"name": "tinykube", "context": {"cluster": "tinykube", "user": "tinykube"}}]
    assert "namespace" not in doc["contexts"][0]["context"]
    assert [p.name for p in path.parent.iterdir()] == ["kubeconfig"]  # no temp file left behind


def test_write_kubeconfig_custom_name_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("old: content\n")
    path.chmod(0o644)
    write_kubeconfig(path, "https://[::1]:7443", CA_PEM, TOKEN, name="dev")
    doc = _read(path)
    assert _mode(path) == 0o600
    assert "old" not in doc
    assert doc["current-context"] == "dev"
    assert doc["contexts"][0] == {"name": "dev", "context": {"cluster": "dev", "user": "dev"}}


@needs_kubectl
def test_kubectl_reads_written_file(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    write_kubeconfig(path, SERVER, CA_PEM, TOKEN)
    view = _kubectl_view(path)
    assert view["current-context"] == "tinykube"
    cluster = view["clusters"][0]
    assert cluster["name"] == "tinykube"
    assert cluster["cluster"]["server"] == SERVER
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == CA_PEM
    assert view["users"][0] == {"name": "tinykube", "user": {"token": TOKEN}}
    assert view["contexts"][0] == {"name": "tinykube", "context": {"cluster": "tinykube", "user": "tinykube"}}


def test_default_kubeconfig_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_kubeconfig_path() == tmp_path / ".kube" / "config"
    monkeypatch.setenv("KUBECONFIG", "")
    assert default_kubeconfig_path() == tmp_path / ".kube" / "config"
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(["", str(first), str(second)]))
    assert default_kubeconfig_path() == first
    monkeypatch.setenv("KUBECONFIG", str(second))
    assert default_kubeconfig_path() == second


def test_merge_into_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "home" / ".kube" / "config"
    merge_into(target, _source(tmp_path))
    assert _mode(target) == 0o600
    doc = _read(target)
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    assert doc["current-context"] == "tinykube"
    for section in ("clusters", "users", "contexts"):
        assert _names(doc, section) == ["tinykube"]


@needs_kubectl
def test_merge_keeps_other_entries(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER, sort_keys=False))
    target.chmod(0o644)
    merge_into(target, _source(tmp_path))
    doc = _read(target)
    assert _mode(target) == 0o600
    assert _names(doc, "clusters") == ["prod", "tinykube"]
    assert _names(doc, "users") == ["prod-admin", "tinykube"]
    assert _names(doc, "contexts") == ["prod", "tinykube"]
    assert doc["clusters"][0] == OTHER["clusters"][0]
    assert doc["contexts"][0] == OTHER["contexts"][0]
    assert doc["preferences"] == {"colors": True}
    assert doc["extensions"] == OTHER["extensions"]
    assert doc["current-context"] == "tinykube"

    view = _kubectl_view(target)
    assert view["current-context"] == "tinykube"
    assert {c["name"] for c in view["contexts"]} == {"prod", "tinykube"}
    ours = next(c for c in view["clusters"] if c["name"] == "tinykube")
    assert ours["cluster"]["server"] == SERVER
    assert next(u for u in view["users"] if u["name"] == "tinykube")["user"]["token"] == TOKEN


def test_merge_without_setting_current(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER, sort_keys=False))
    merge_into(target, _source(tmp_path), set_current=False)
    doc = _read(target)
    assert doc["current-context"] == "prod"
    assert "tinykube" in _names(doc, "contexts")


@needs_kubectl
def test_remerge_replaces_in_place(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER, sort_keys=False))
    merge_into(target, _source(tmp_path))
    # another entry added after ours must stay after it
    doc = _read(target)
    doc["contexts"].append({"name": "later", "context": {"cluster": "prod", "user": "prod-admin"}})
    target.write_text(yaml.safe_dump(doc, sort_keys=False))

    merge_into(target, _source(tmp_path, token="new-token", server="https://127.0.0.1:7443"))
    doc = _read(target)
    assert _names(doc, "clusters") == ["prod", "tinykube"]
    assert _names(doc, "users") == ["prod-admin", "tinykube"]
    assert _names(doc, "contexts") == ["prod", "tinykube", "later"]
    assert doc["users"][1]["user"]["token"] == "new-token"
    assert doc["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:7443"
    view = _kubectl_view(target)
    assert next(u for u in view["users"] if u["name"] == "tinykube")["user"]["token"] == "new-token"


def test_merge_custom_name(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_kubeconfig(src, SERVER, CA_PEM, TOKEN, name="tk2")
    target = tmp_path / "config"
    merge_into(target, src, name="tk2")
    doc = _read(target)
    assert doc["current-context"] == "tk2"
    assert _names(doc, "users") == ["tk2"]
    with pytest.raises(ValueError, match="no cluster named 'tinykube'"):
        merge_into(target, src)


def test_merge_refuses_to_clobber_non_kubeconfig(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text("- just\n- a list\n")
    with pytest.raises(ValueError):
        merge_into(target, _source(tmp_path))
    assert target.read_text() == "- just\n- a list\n"


def test_merge_into_empty_file_and_null_sections(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text("")
    merge_into(target, _source(tmp_path))
    assert _names(_read(target), "contexts") == ["tinykube"]
    target.write_text("apiVersion: v1\nkind: Config\nclusters: null\nusers:\ncontexts: []\n")
    merge_into(target, _source(tmp_path))
    assert _names(_read(target), "clusters") == ["tinykube"]


def test_merge_through_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real-config"
    real.write_text(yaml.safe_dump(OTHER, sort_keys=False))
    link = tmp_path / "link-config"
    link.symlink_to(real)
    merge_into(link, _source(tmp_path))
    assert link.is_symlink()
    assert "tinykube" in _names(_read(real), "contexts")


@needs_kubectl
def test_remove_from(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER, sort_keys=False))
    merge_into(target, _source(tmp_path))
    remove_from(target)
    doc = _read(target)
    assert _mode(target) == 0o600
    assert _names(doc, "clusters") == ["prod"]
    assert _names(doc, "users") == ["prod-admin"]
    assert _names(doc, "contexts") == ["prod"]
    assert doc["current-context"] == ""
    assert doc["extensions"] == OTHER["extensions"]
    view = _kubectl_view(target)
    assert [c["name"] for c in view["contexts"]] == ["prod"]


def test_remove_keeps_other_current_context(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER, sort_keys=False))
    merge_into(target, _source(tmp_path), set_current=False)
    remove_from(target)
    doc = _read(target)
    assert doc["current-context"] == "prod"
    assert _names(doc, "contexts") == ["prod"]


def test_remove_from_missing_or_unrelated_file_is_a_noop(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    remove_from(missing)
    assert not missing.exists()
    target = tmp_path / "config"
    original = yaml.safe_dump(OTHER, sort_keys=False)
    target.write_text(original)
    remove_from(target)
    assert target.read_text() == original
