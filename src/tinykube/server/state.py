"""The running server's state file (``DIR/server.json``) and process checks.

Kept apart from the server assembly so the CLI (``up``, ``down``, ``status``) can
read them without importing the API server, which is most of a cold start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE_FILE = "server.json"


def read_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((data_dir / STATE_FILE).read_text())
        return data
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True
