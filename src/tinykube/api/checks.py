"""Self-checks the test suite turns on (``TINYKUBE_CHECK_SHARED=1``), read once at import.

With checking on, objects shared between in-process components and the store are handed out frozen
(:mod:`tinykube.client.readonly`), and in-process writes, which normally skip the unknown-field walk
(their objects come from typed sources), are walked anyway and fail if anything unknown turns up.
"""

from __future__ import annotations

import logging
import os
import traceback

CHECK = os.environ.get("TINYKUBE_CHECK_SHARED", "") not in ("", "0")

log = logging.getLogger("tinykube.checks")
MARKER = "SelfCheckFailed"
# Every failed check: handlers and sync loops catch and retry errors, so the suite looks here (and in server
# logs, for MARKER) rather than relying on the error reaching a test.
VIOLATIONS: list[str] = []


def report(what: str) -> None:
    stack = "".join(traceback.format_stack(limit=12)[:-1])
    VIOLATIONS.append(f"{what}\n{stack}")
    log.error("%s: %s at\n%s", MARKER, what, stack)
