"""Suite-wide settings, applied before any tinykube module is imported.

``TINYKUBE_CHECK_SHARED=1``: objects the in-process client shares with informers are
handed out frozen, so a component that changes one in place fails here (and servers
started by the e2e tests inherit the setting).
"""

import os
from collections.abc import Iterator

import pytest

os.environ["TINYKUBE_CHECK_SHARED"] = "1"


@pytest.fixture(autouse=True)
def _no_shared_object_mutation() -> Iterator[None]:
    """Handlers and sync loops swallow and retry errors: fail the test if any shared object was changed."""
    from tinykube.client.readonly import VIOLATIONS
    VIOLATIONS.clear()
    yield
    assert not VIOLATIONS, "a shared (informer) object was changed in place:\n" + VIOLATIONS[0]
