from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def sandbox_required() -> None:
    """RUN steps need root and bubblewrap: without them these tests fail loudly (CI has both), never skip."""
    if os.geteuid() != 0:
        pytest.fail("image builds run RUN steps in a sandbox, which needs root (CI runs as root)")
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap (bwrap) is required: run scripts/install-system-deps.sh")


needs_sandbox = pytest.mark.usefixtures("sandbox_required")
