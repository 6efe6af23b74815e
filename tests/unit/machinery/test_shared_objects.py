"""Informers share the store's objects over the in-process client; the suite's check mode freezes them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from tests.harness import control_plane, eventually

from tinykube.api.resources import must
from tinykube.client import readonly
from tinykube.client.readonly import SharedObjectMutation, freeze

CONFIGMAPS = must("", "v1", "configmaps")


def test_frozen_values_refuse_changes_and_deep_copy_to_plain() -> None:
    f = freeze({"a": {"b": [1, {"c": 2}]}})
    with pytest.raises(SharedObjectMutation):
        f["a"]["b"].append(3)
    with pytest.raises(SharedObjectMutation):
        f["a"]["b"][1]["c"] = 3
    with pytest.raises(SharedObjectMutation):
        f.setdefault("x", {})
    assert f == {"a": {"b": [1, {"c": 2}]}}
    c = copy.deepcopy(f)
    c["a"]["b"].append(3)
    c["a"]["b"][1]["c"] = 5
    assert type(c) is dict and type(c["a"]["b"]) is list
    assert f["a"]["b"] == [1, {"c": 2}]
    assert len(readonly.VIOLATIONS) == 3
    readonly.VIOLATIONS.clear()


async def test_informer_objects_are_the_stores_unless_checking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with control_plane(tmp_path) as cp:
        inf = cp.informers.informer(CONFIGMAPS)
        cp.informers.start()
        await cp.client.create(CONFIGMAPS, "default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
        frozen = await eventually(lambda: inf.get("default", "a"), what="a in the cache")
        assert readonly.CHECK  # the suite runs in check mode (tests/conftest.py)
        with pytest.raises(SharedObjectMutation):
            frozen["data"]["k"] = "changed"
        readonly.VIOLATIONS.clear()
        monkeypatch.setattr(readonly, "CHECK", False)
        await cp.client.create(CONFIGMAPS, "default", {"metadata": {"name": "b"}, "data": {"k": "v"}})
        shared = await eventually(lambda: inf.get("default", "b"), what="b in the cache")
        entry = cp.registry.store.get(CONFIGMAPS.key("default", "b"))
        assert entry is not None and shared is entry.obj  # no decode, no second copy
        # An ordinary client read is a private copy.
        mine = await cp.client.get(CONFIGMAPS, "default", "b")
        mine["data"]["k"] = "mine"
        assert entry.obj["data"]["k"] == "v"


async def test_in_process_writers_are_checked_for_unknown_fields(tmp_path: Path) -> None:
    from tinykube.api import checks
    async with control_plane(tmp_path) as cp:
        assert checks.CHECK
        await cp.client.create(CONFIGMAPS, "default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
        assert checks.VIOLATIONS == []
        got = await cp.client.create(CONFIGMAPS, "default", {"metadata": {"name": "b"}, "bogus": 1})
        assert "bogus" not in got  # still pruned, as for any client
        assert len(checks.VIOLATIONS) == 1 and "unknown fields in a ConfigMap: ['bogus']" in checks.VIOLATIONS[0]
        checks.VIOLATIONS.clear()


def test_writes_that_change_nothing_are_allowed() -> None:
    f = freeze({"a": {"b": "1"}, "l": [1]})
    f["a"]["b"] = "1"  # equal value: nothing shared changes
    assert f.setdefault("a", {}) == {"b": "1"}
    assert f.pop("zz", None) is None
    assert readonly.VIOLATIONS == []
    with pytest.raises(SharedObjectMutation):
        f["a"]["b"] = "2"
    with pytest.raises(SharedObjectMutation):
        f.pop("a", None)
    assert f == {"a": {"b": "1"}, "l": [1]}
    readonly.VIOLATIONS.clear()


async def test_update_from_a_shallow_working_copy_leaves_the_shared_template_alone(tmp_path: Path) -> None:
    """The registry defaults what it is given in place; a controller's working copy shares the pod template with
    the informer. Defaulting an already-defaulted template writes only equal values (found by the fuzz test)."""
    from tinykube.controllers.deployment.util import working_copy
    rs_res = must("apps", "v1", "replicasets")
    async with control_plane(tmp_path) as cp:
        inf = cp.informers.informer(rs_res)
        cp.informers.start()
        await cp.client.create(rs_res, "default", {
            "metadata": {"name": "r"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i",
                                                           "resources": {"limits": {"cpu": "1000m"}}}]}}}})
        shared = await eventually(lambda: inf.get("default", "r"), what="r in the cache")
        body = working_copy(shared)
        body["metadata"]["annotations"] = {"x": "y"}
        out = await cp.client.update(rs_res, "default", body)
        assert out["metadata"]["annotations"] == {"x": "y"}
        assert out["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1"}
        assert readonly.VIOLATIONS == []
