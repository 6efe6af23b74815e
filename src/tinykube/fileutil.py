"""Private files: written atomically, mode 0600 from the moment they exist.

Credentials (CA and serving keys, the bearer token, kubeconfigs), the secret
encryption key and the server's state file all go through :func:`write_private`,
so no reader ever sees a half-written file and no other user can read one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes | str) -> None:
    """Atomically replace ``path`` with ``data`` (a temp file in the same dir, renamed over it)."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
