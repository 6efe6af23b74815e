"""``tinykube image ...`` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinykube.cli.image import human_duration, human_size
from tinykube.cli.main import main

from .conftest import needs_sandbox


def tk(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


@pytest.fixture
def app(tmp_path: Path) -> Path:
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nWORKDIR /app\nCOPY . .\nRUN echo ok > built.txt\n"
                                    "EXPOSE 80\nCMD [\"cat\", \"built.txt\"]\n")
    (ctx / "app.py").write_text("print('hi')\n")
    return ctx


@needs_sandbox
def test_build_ls_tag_inspect_rm(capsys: pytest.CaptureFixture[str], tmp_path: Path, app: Path) -> None:
    dd = str(tmp_path / "data")
    rc, out, err = tk(capsys, "image", "build", "--data-dir", dd, "-t", "registry-qcc.quantil.com/oe-tools/app:1.5.0",
                      str(app))
    assert rc == 0, err
    assert "[2/4] WORKDIR /app" in out and "naming to registry-qcc.quantil.com/oe-tools/app:1.5.0 done" in out
    rc, out, _ = tk(capsys, "image", "build", "--data-dir", dd, "-q", "-t", "app", str(app))
    digest = out.strip()
    assert rc == 0 and digest.startswith("sha256:") and len(digest) == 71
    rc, out, _ = tk(capsys, "image", "ls", "--data-dir", dd)
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    assert ("registry-qcc.quantil.com/oe-tools/app", "1.5.0", digest[7:19]) in rows
    assert ("app", "latest", digest[7:19]) in rows and ("busybox", "latest") in {r[:2] for r in rows}
    assert tk(capsys, "image", "tag", "--data-dir", dd, "app", "app:v2")[0] == 0
    rc, out, _ = tk(capsys, "image", "inspect", "--data-dir", dd, "app:v2")
    info = json.loads(out)[0]
    assert info["Id"] == digest and info["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert sorted(info["RepoTags"]) == ["app:latest", "app:v2", "registry-qcc.quantil.com/oe-tools/app:1.5.0"]
    rc, out, _ = tk(capsys, "image", "inspect", "--data-dir", dd, "-f", "{{.Id}} {{json .Config.Cmd}}", digest[7:12])
    assert out.strip() == f'{digest} ["cat", "built.txt"]'
    rc, out, _ = tk(capsys, "image", "history", "--data-dir", dd, "app")
    assert out.splitlines()[1].startswith(digest[7:19]) and "CMD" in out
    rc, out, _ = tk(capsys, "image", "ls", "--data-dir", dd, "-q", "app")
    assert out.split() == [digest[7:19]]
    assert tk(capsys, "image", "rm", "--data-dir", dd, "app:v2")[1] == "Untagged: app:v2\n"
    rc, _, err = tk(capsys, "image", "rm", "--data-dir", dd, digest[7:19])
    assert rc == 1 and "must be forced" in err
    rc, out, _ = tk(capsys, "image", "rm", "--data-dir", dd, "-f", digest[7:19])
    assert rc == 0 and f"Deleted: {digest}" in out
    rc, _, err = tk(capsys, "image", "inspect", "--data-dir", dd, "app")
    assert rc == 1 and err == "error: No such image: app\n"


@needs_sandbox
def test_save_load_and_prune(capsys: pytest.CaptureFixture[str], tmp_path: Path, app: Path) -> None:
    dd, other = str(tmp_path / "data"), str(tmp_path / "other")
    assert tk(capsys, "image", "build", "--data-dir", dd, "-t", "app:1", str(app))[0] == 0
    archive = str(tmp_path / "app.tar")
    assert tk(capsys, "image", "save", "--data-dir", dd, "-o", archive, "app:1") == (0, "", "")
    rc, out, _ = tk(capsys, "image", "load", "--data-dir", other, "-i", archive)
    assert (rc, out) == (0, "Loaded image: app:1\n")
    rc, out, _ = tk(capsys, "image", "inspect", "--data-dir", other, "-f", "{{.Id}}", "app:1")
    rc2, out2, _ = tk(capsys, "image", "inspect", "--data-dir", dd, "-f", "{{.Id}}", "app:1")
    assert rc == rc2 == 0 and out == out2
    (app / "app.py").write_text("print('v2')\n")
    assert tk(capsys, "image", "build", "--data-dir", dd, "-t", "app:1", str(app))[0] == 0
    rc, out, _ = tk(capsys, "image", "ls", "--data-dir", dd)
    assert "<none>" in out
    rc, out, _ = tk(capsys, "image", "prune", "--data-dir", dd, "-f")
    assert rc == 0 and out.startswith("Deleted Images:\ndeleted: sha256:") and "Total reclaimed space:" in out
    assert "<none>" not in tk(capsys, "image", "ls", "--data-dir", dd)[1]


def test_errors_are_one_line_with_file_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nFORM x\n")
    rc, _, err = tk(capsys, "image", "build", "--data-dir", str(tmp_path / "d"), str(ctx))
    assert rc == 1 and err == f"error: {ctx / 'Dockerfile'}:2: unknown instruction: FORM (did you mean FROM?)\n"
    (ctx / "Dockerfile").write_text("FROM Ubuntu\n")
    rc, _, err = tk(capsys, "image", "build", "--data-dir", str(tmp_path / "d"), str(ctx))
    assert rc == 1 and err.startswith(f"error: {ctx / 'Dockerfile'}:1: failed to parse stage name \"Ubuntu\": "
                                      "invalid reference format: repository name (library/Ubuntu) must be lowercase")
    rc, _, err = tk(capsys, "image", "build", "--data-dir", str(tmp_path / "d"), str(tmp_path / "nope"))
    assert rc == 1 and "not found" in err and "Traceback" not in err
    rc, _, err = tk(capsys, "image", "tag", "--data-dir", str(tmp_path / "d"), "nope", "x")
    assert (rc, err) == (1, "error: No such image: nope\n")


@needs_sandbox
def test_module_entry_point_and_data_dir_from_the_environment(tmp_path: Path, app: Path) -> None:
    env = {**os.environ, "TINYKUBE_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "tinykube.cli", "image", "build", "-t", "x:1", "-f",
                        str(app / "Dockerfile"), "--build-arg", "UNUSED=1", str(app)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "build-args [UNUSED] were not consumed" in r.stderr
    assert (tmp_path / "home" / "images" / "refs.json").is_file()
    r = subprocess.run([sys.executable, "-m", "tinykube.cli", "image", "ls"], capture_output=True, text=True, env=env)
    assert "x " in r.stdout and r.returncode == 0


def test_docker_style_formatting() -> None:
    assert [human_size(n) for n in (0, 260, 1234, 26_500_000, 1_500_000_000)] == ["0B", "260B", "1.23kB", "26.5MB",
                                                                                   "1.5GB"]
    assert [human_duration(s) for s in (0.2, 1, 30, 70, 600, 3700, 7200 * 3, 86400 * 3, 86400 * 20, 86400 * 90,
                                        86400 * 800)] == [
        "Less than a second", "1 second", "30 seconds", "About a minute", "10 minutes", "About an hour", "6 hours",
        "3 days", "2 weeks", "3 months", "2 years"]
