from __future__ import annotations

import os
import shutil

import pytest

needs_sandbox = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bwrap") is None,
                                   reason="RUN steps need root and bubblewrap")
