"""``.dockerignore`` rules and COPY source selection/identity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tinykube.agent.images.context import Context, ContextError, Ignore, load_ignore


def test_dockerignore_patterns() -> None:
    ig = Ignore(["# comment", "", " *.pyc ", "/build", "docs/**/*.md", "!docs/keep/README.md", "**/node_modules",
                 "temp?", "[ab].txt", "./secret/../secret.key"])
    assert ig.ignored("x.pyc") and not ig.ignored("src/x.pyc")  # * does not cross /
    assert ig.ignored("build") and ig.ignored("build/out/a.o")  # a directory takes its contents
    assert ig.ignored("docs/a.md") and ig.ignored("docs/x/y/z.md") and not ig.ignored("docs/keep/README.md")
    assert ig.ignored("node_modules/x") and ig.ignored("a/b/node_modules/c")
    assert ig.ignored("temp1") and not ig.ignored("temp12")
    assert ig.ignored("a.txt") and not ig.ignored("c.txt")
    assert ig.ignored("secret.key")


def test_last_match_wins() -> None:
    ig = Ignore(["*.md", "!README.md", "README.md"])
    assert ig.ignored("README.md")
    assert not Ignore([]).ignored("anything")


def make_ctx(tmp_path: Path, ignore: list[str] | None = None) -> Context:
    for rel, data in {"app.py": "print(1)\n", "requirements.txt": "Flask\n", "pkg/a.py": "a\n", "pkg/b.txt": "b\n",
                      "cache/x.pyc": "x"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(data)
    if ignore is not None:
        (tmp_path / ".dockerignore").write_text("\n".join(ignore) + "\n")
    return Context(tmp_path, load_ignore(tmp_path, tmp_path / "Dockerfile"))


def test_select_sources(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, ["cache"])
    assert [s.rel for s in ctx.select(".")] == [""]
    assert [s.rel for s in ctx.select("*.py")] == ["app.py"]
    assert [s.rel for s in ctx.select("pkg/*")] == ["pkg/a.py", "pkg/b.txt"]
    assert [s.rel for s in ctx.select("/pkg/")] == ["pkg"]
    with pytest.raises(ContextError, match=r"excluded by \.dockerignore"):
        ctx.select("cache/x.pyc")
    with pytest.raises(ContextError, match="file not found"):
        ctx.select("missing.txt")
    with pytest.raises(ContextError, match="no source files"):
        ctx.select("*.nothing")
    with pytest.raises(ContextError, match="outside the build context"):
        ctx.select("../etc/passwd")
    assert sorted(r for r, _ in ctx.entries(ctx.select(".")[0])) == [
        ".dockerignore", "app.py", "pkg", "pkg/a.py", "pkg/b.txt", "requirements.txt"]


def test_sources_digest_follows_content_and_mode_not_time(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    d0 = Context(tmp_path, Ignore([])).sources_digest(ctx.select("."))
    os.utime(tmp_path / "app.py", (1, 1))
    assert Context(tmp_path, Ignore([])).sources_digest(ctx.select(".")) == d0
    (tmp_path / "app.py").write_text("print(2)\n")
    d1 = Context(tmp_path, Ignore([])).sources_digest(ctx.select("."))
    assert d1 != d0
    os.chmod(tmp_path / "app.py", 0o755)
    assert Context(tmp_path, Ignore([])).sources_digest(ctx.select(".")) != d1
    only_req = Context(tmp_path, Ignore([])).sources_digest(ctx.select("requirements.txt"))
    (tmp_path / "app.py").write_text("print(3)\n")
    assert Context(tmp_path, Ignore([])).sources_digest(ctx.select("requirements.txt")) == only_req


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("a\n")
    (tmp_path / "web.Dockerfile.dockerignore").write_text("b\n")
    ig = load_ignore(tmp_path, tmp_path / "web.Dockerfile")
    assert ig.ignored("b") and not ig.ignored("a")
