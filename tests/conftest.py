"""Suite-wide settings, applied before any tinykube module is imported.

``TINYKUBE_CHECK_SHARED=1`` turns on tinykube's self-checks (:mod:`tinykube.api.checks`):
objects the in-process client shares with informers are handed out frozen, so a
component that changes one in place fails here, and in-process writes are checked for
unknown fields (servers started by the e2e tests inherit the setting).
"""

import os
from collections.abc import Iterator

import pytest

os.environ["TINYKUBE_CHECK_SHARED"] = "1"


@pytest.fixture(autouse=True)
def _no_shared_object_mutation() -> Iterator[None]:
    """Handlers and sync loops swallow and retry errors: fail the test if a self-check failed (a shared object
    changed in place, unknown fields from an in-process writer)."""
    from tinykube.api.checks import VIOLATIONS
    VIOLATIONS.clear()
    yield
    assert not VIOLATIONS, "a self-check failed:\n" + VIOLATIONS[0]
