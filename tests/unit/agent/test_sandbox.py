"""The container view and its namespaces, run for real with bubblewrap (root, and rootless as uid 65534)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tinykube.agent import sandbox


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests run containers as root and as another user: they need root (CI runs as root)")
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap (bwrap) is required: run scripts/install-system-deps.sh")


def _image(tmp: Path) -> Path:
    content = tmp / "content"
    (content / "usr" / "src" / "app").mkdir(parents=True)
    (content / "usr" / "src" / "app" / "main.txt").write_text("nested in /usr\n")
    (content / "app").mkdir()
    (content / "app" / "top.txt").write_text("top level\n")
    for d, _dirs, files in os.walk(tmp):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return content


SCRIPT = ("hostname; id -u; cat /usr/src/app/main.txt /app/top.txt /app/data/v; ls /usr/bin/env; "
          "echo w > /app/data/w; touch /etc/x 2>/dev/null || echo etc-ro; touch /usr/src/app/y 2>/dev/null || "
          "echo image-ro; echo t > /tmp/t && echo tmp-rw; ls /home 2>/dev/null || echo no-home; "
          "echo $(ls /proc | grep -c '^[0-9]')")


def _binds(tmp: Path, python: bool = True) -> list[sandbox.Bind]:
    content = _image(tmp)
    vol = tmp / "vol"
    vol.mkdir(exist_ok=True)
    (vol / "v").write_text("volume\n")
    os.chmod(vol, 0o777)
    os.chmod(vol / "v", 0o644)
    hb = sandbox.host_binds([p for p in [sandbox.python_prefix()] if p and python])
    return hb + sandbox.image_binds(content, hb) + [sandbox.Bind(vol, "/app/data", read_only=False)]


def _expect(out: str) -> None:
    lines = out.split()
    assert lines[0] == "box" and lines[1] == "0", out
    assert "nested" in out and "top" in out and "volume" in out
    for word in ("etc-ro", "image-ro", "tmp-rw", "no-home"):
        assert word in lines, (word, out)
    assert int(lines[-1]) <= 6, f"sees processes outside its PID namespace: {out}"


def test_root_mode_two_stages(tmp_path: Path) -> None:
    argv = sandbox.container_argv(["sh", "-c", SCRIPT], _binds(tmp_path), workdir="/usr/src/app",
                                  iso=sandbox.Isolation(hostname="box"))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    _expect(r.stdout)
    # uid 0 inside wrote the volume's file as the unprivileged uid outside.
    assert (tmp_path / "vol" / "w").stat().st_uid == 65534


def test_rootless_single_stage() -> None:
    """What a non-root agent runs: one bubblewrap, its user namespace maps the agent's own uid to 0.
    (Its files must be its own to reach: a base directory it can traverse, not pytest's 0700 one.)"""
    tmp_path = Path(tempfile.mkdtemp(prefix="tinykube-rootless-"))
    os.chmod(tmp_path, 0o755)
    try:
        _rootless(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _rootless(tmp_path: Path) -> None:
    argv = sandbox.container_argv(["sh", "-c", SCRIPT], _binds(tmp_path, python=False), workdir="/usr/src/app",
                                  iso=sandbox.Isolation(hostname="box", rootless=True))
    assert "setpriv" not in " ".join(argv)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    _expect(r.stdout)
    assert (tmp_path / "vol" / "w").stat().st_uid == 65534
