"""The one build against PyPI: a ``python:*`` base, ``pip install`` into the image's virtualenv, and the step cache
across an app edit. Needs root, bubblewrap and network access to PyPI."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

from tinykube.agent import sandbox
from tinykube.agent.images import BuildOptions, ImageStore, build
from tinykube.agent.images.build import VENV

from .conftest import needs_sandbox

DOCKERFILE = """\
FROM python:3.6
WORKDIR /app
COPY requirements.txt .
RUN pip install --trusted-host pypi.python.org -r requirements.txt
COPY . .
ENV NAME World
CMD ["python", "app.py"]
"""


@needs_sandbox
def test_python_base_pip_install_and_cached_rebuild(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "requirements.txt").write_text("six==1.16.0\n")
    (ctx / "app.py").write_text("import os, sys, six\nprint(six.__version__, sys.prefix, os.environ['NAME'])\n")
    store = ImageStore(tmp_path / "images")
    out, err = io.StringIO(), io.StringIO()
    img = build(store, BuildOptions(ctx, tags=["hello:v1"]), out, err)
    assert "FROM python:3.6: Python 3.6 is not used" in err.getvalue()
    site = next((img.content / VENV.lstrip("/") / "lib").glob("python3.*/site-packages"))
    assert (site / "six.py").is_file() and not Path(VENV).exists()
    pip = (img.content / VENV.lstrip("/") / "bin/pip").read_text().splitlines()[0]
    assert pip.startswith(f"#!{VENV}/bin/python")  # made inside the sandbox: container paths
    assert f"PATH={VENV}/bin:" in img.config["Env"][0] and store.resolve("python:3.6") is not None

    host = sandbox.host_binds([p for p in [sandbox.python_prefix()] if p])
    argv = sandbox.container_argv(img.argv(), host + sandbox.image_binds(img.content, host), workdir="/app",
                                  iso=sandbox.Isolation(user_namespace=False))
    run = subprocess.run(argv, env=img.env(), capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == f"1.16.0 {VENV} World", run.stderr

    (ctx / "app.py").write_text("print('v2')\n")
    t0 = time.monotonic()
    out = io.StringIO()
    img2 = build(store, BuildOptions(ctx, tags=["hello:v1"]), out, io.StringIO())
    elapsed = time.monotonic() - t0
    text = out.getvalue()
    run_n = next(line.split()[0] for line in text.splitlines() if "] RUN pip install" in line)
    assert f"{run_n} CACHED" in text and img2.digest != img.digest
    assert (img2.content / "app/app.py").read_text() == "print('v2')\n"
    assert elapsed < 5, elapsed
