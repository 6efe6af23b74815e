"""Tests for tinykube.apiserver.patch: the patch bodies kubectl sends, every directive, and server-side apply.

Expected results follow kube-apiserver's behaviour (k8s.io/apimachinery strategicpatch and
sigs.k8s.io/structured-merge-diff), including its list ordering rules.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from tinykube.api.errors import ApiError
from tinykube.apiserver import patch as P
from tinykube.apiserver.patch import (
    fields_v1,
    json_patch,
    merge_patch,
    server_side_apply,
    strategic_merge_patch,
    update_managed_fields,
)

DEPLOY = ("apps", "v1", "Deployment")
POD = ("", "v1", "Pod")
T0 = "2025-01-01T00:00:00Z"
T1 = "2025-01-01T00:01:00Z"
T2 = "2025-01-01T00:02:00Z"
T3 = "2025-01-01T00:03:00Z"
LAST = "kubectl.kubernetes.io/last-applied-configuration"


def deployment(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "img:1",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        },
                        {"name": "side", "image": "side:1"},
                    ],
                    "volumes": [{"name": "v", "emptyDir": {}}],
                },
            },
        },
    }
    d.update(over)
    return d


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return items


def names(items: list[dict[str, Any]]) -> list[Any]:
    return [i["name"] for i in items]


def smp(obj: dict[str, Any], patch: Any, gvk: tuple[str, str, str] = DEPLOY) -> dict[str, Any]:
    before = copy.deepcopy(obj)
    pbefore = copy.deepcopy(patch)
    out = strategic_merge_patch(obj, patch, *gvk)
    assert obj == before and patch == pbefore, "inputs must not be mutated"
    return out


# ---------------------------------------------------------------------------------------------------------------
# JSON patch


@pytest.mark.parametrize(
    ("ops", "check"),
    [
        ([{"op": "replace", "path": "/spec/replicas", "value": 3}], lambda o: o["spec"]["replicas"] == 3),
        ([{"op": "add", "path": "/metadata/labels/new", "value": "x"}], lambda o: o["metadata"]["labels"]["new"] == "x"),
        ([{"op": "remove", "path": "/metadata/labels/tier"}], lambda o: "tier" not in o["metadata"]["labels"]),
        ([{"op": "test", "path": "/spec/replicas", "value": 1}, {"op": "replace", "path": "/spec/replicas", "value": 2}],
         lambda o: o["spec"]["replicas"] == 2),
        ([{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "n", "image": "n"}}],
         lambda o: names(containers(o)) == ["c", "side", "n"]),
        ([{"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/layer"}],
         lambda o: o["metadata"]["labels"] == {"app": "web", "layer": "fe"}),
        ([{"op": "copy", "from": "/metadata/labels", "path": "/spec/template/metadata/labels"}],
         lambda o: o["spec"]["template"]["metadata"]["labels"] == {"app": "web", "tier": "fe"}),
        ([], lambda o: o == deployment()),
        (None, lambda o: o == deployment()),
    ],
)
def test_json_patch_applies(ops: Any, check: Any) -> None:
    obj = deployment()
    out = json_patch(obj, ops)
    assert check(out)
    assert obj == deployment()


def test_json_patch_values_are_copied() -> None:
    value = {"name": "n", "image": "n"}
    out = json_patch(deployment(), [{"op": "add", "path": "/spec/template/spec/containers/0", "value": value}])
    containers(out)[0]["image"] = "changed"
    assert value["image"] == "n"


@pytest.mark.parametrize(
    ("ops", "code", "fragment"),
    [
        ({"op": "add"}, 400, "cannot unmarshal object into Go value of type jsonpatch.Patch"),
        ("nope", 400, "cannot unmarshal string"),
        (["x"], 400, "jsonpatch.Operation"),
        ([{"op": "test", "path": "/spec/replicas", "value": 5}], 422, "testing value /spec/replicas failed"),
        ([{"op": "remove", "path": "/metadata/labels/missing"}], 422, "remove operation does not apply"),
        ([{"op": "replace", "path": "/spec/missing/x", "value": 1}], 422, "replace operation does not apply"),
        ([{"op": "add", "path": "/nope/deeper", "value": 1}], 422, "add operation does not apply"),
        ([{"op": "frobnicate", "path": "/spec"}], 422, "Unexpected kind: frobnicate"),
        ([{"path": "/spec"}], 422, "Unexpected kind"),
        ([{"op": "replace", "path": "", "value": [1]}], 422, "not a JSON object"),
    ],
)
def test_json_patch_errors(ops: Any, code: int, fragment: str) -> None:
    with pytest.raises(ApiError) as ei:
        json_patch(deployment(), ops)
    e = ei.value
    assert e.code == code
    if code == 422:
        assert e.reason == "Invalid"
        assert e.message == "the server rejected our request due to an error in our request"
        assert e.details is not None
        assert fragment in e.details["causes"][0]["message"]
        assert e.details["causes"][0]["reason"] == "UnexpectedServerResponse"
    else:
        assert e.reason == "BadRequest"
        assert fragment in e.message


def test_json_patch_too_many_operations() -> None:
    ops = [{"op": "test", "path": "/kind", "value": "Deployment"}] * (P.MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(ApiError) as ei:
        json_patch(deployment(), ops)
    assert ei.value.code == 413
    assert "The allowed maximum operations in a JSON patch is 10000, got 10001" in ei.value.message


# ---------------------------------------------------------------------------------------------------------------
# JSON merge patch


@pytest.mark.parametrize(
    ("patch", "path", "expected"),
    [
        # kubectl label deployment/web env=prod
        ({"metadata": {"labels": {"env": "prod"}}}, ("metadata", "labels"), {"app": "web", "tier": "fe", "env": "prod"}),
        # kubectl label deployment/web tier-
        ({"metadata": {"labels": {"tier": None}}}, ("metadata", "labels"), {"app": "web"}),
        # kubectl annotate deployment/web note=hi
        ({"metadata": {"annotations": {"note": "hi"}}}, ("metadata", "annotations"), {"note": "hi"}),
        # kubectl scale (the /scale subresource body is a merge patch)
        ({"spec": {"replicas": 5}}, ("spec", "replicas"), 5),
        # lists are replaced wholesale
        ({"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "x"}]}}}},
         ("spec", "template", "spec", "containers"), [{"name": "x", "image": "x"}]),
        # nulls nested in new maps are dropped
        ({"spec": {"paused": True, "newmap": {"a": 1, "b": None}}}, ("spec", "newmap"), {"a": 1}),
        # a non-map value replaces a map
        ({"spec": {"strategy": "Recreate"}}, ("spec", "strategy"), "Recreate"),
    ],
)
def test_merge_patch(patch: dict[str, Any], path: tuple[str, ...], expected: Any) -> None:
    obj = deployment()
    out = merge_patch(obj, patch)
    cur: Any = out
    for p in path:
        cur = cur[p]
    assert cur == expected
    assert obj == deployment()


@pytest.mark.parametrize("patch", [None, [1], "x", 3])
def test_merge_patch_rejects_non_objects(patch: Any) -> None:
    with pytest.raises(ApiError) as ei:
        merge_patch(deployment(), patch)
    assert ei.value.code == 400


# ---------------------------------------------------------------------------------------------------------------
# Strategic merge patch: what kubectl sends


# (command, strategic merge patch body kubectl sends, path to inspect, expected value there)
KUBECTL_SMP_CASES: list[tuple[str, dict[str, Any], tuple[Any, ...], Any]] = [
    ("set image", {"spec": {"template": {"spec": {"containers": [{"image": "img:2", "name": "c"}]}}}},
     ("spec", "template", "spec", "containers", 0, "image"), "img:2"),
    ("set image keeps the other container", {"spec": {"template": {"spec": {"containers": [{"image": "img:2", "name": "c"}]}}}},
     ("spec", "template", "spec", "containers", 1), {"name": "side", "image": "side:1"}),
    ("set env", {"spec": {"template": {"spec": {"containers": [{"env": [{"name": "A", "value": "9"}], "name": "c"}]}}}},
     ("spec", "template", "spec", "containers", 0, "env"), [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]),
    ("set env A-", {"spec": {"template": {"spec": {"containers": [{"env": [{"$patch": "delete", "name": "A"}],
                                                                   "name": "c"}]}}}},
     ("spec", "template", "spec", "containers", 0, "env"), [{"name": "B", "value": "2"}]),
    ("set resources", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "resources": {"limits": {"cpu": "200m"}}}]}}}},
     ("spec", "template", "spec", "containers", 0, "resources"), {"limits": {"cpu": "200m"}}),
    ("rollout restart", {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": T1}}}}},
     ("spec", "template", "metadata", "annotations"), {"kubectl.kubernetes.io/restartedAt": T1}),
    ("rollout pause", {"spec": {"paused": True}}, ("spec", "paused"), True),
    ("label", {"metadata": {"labels": {"env": "prod"}}}, ("metadata", "labels", "env"), "prod"),
    ("label tier-", {"metadata": {"labels": {"tier": None}}}, ("metadata", "labels"), {"app": "web"}),
    ("annotate", {"metadata": {"annotations": {"note": "x"}}}, ("metadata", "annotations"), {"note": "x"}),
    ("patch replicas", {"spec": {"replicas": 3}}, ("spec", "replicas"), 3),
    ("patch strategy (retainKeys)", {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None,
                                                          "type": "Recreate"}}},
     ("spec", "strategy"), {"type": "Recreate"}),
]


@pytest.mark.parametrize(("cmd", "patch", "path", "expected"), KUBECTL_SMP_CASES, ids=[c[0] for c in KUBECTL_SMP_CASES])
def test_kubectl_strategic_patches(cmd: str, patch: dict[str, Any], path: tuple[Any, ...], expected: Any) -> None:
    cur: Any = smp(deployment(), patch)
    for p in path:
        cur = cur[p]
    assert cur == expected


def test_kubectl_set_image() -> None:
    out = smp(deployment(), {"spec": {"template": {"spec": {"containers": [{"image": "img:2", "name": "c"}]}}}})
    cs = containers(out)
    assert names(cs) == ["c", "side"]
    assert cs[0]["image"] == "img:2"
    assert cs[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert cs[1] == {"name": "side", "image": "side:1"}


def test_kubectl_set_env_merges_by_name() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"env": [{"name": "B", "value": "9"}, {"name": "C", "value": "3"}],
                                                             "name": "c"}]}}}}
    out = smp(deployment(), patch)
    # Server items keep their place relative to the patched ones; the new item follows the patch order.
    assert containers(out)[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "9"}, {"name": "C", "value": "3"}]


def test_new_list_items_are_placed_first() -> None:
    out = smp(deployment(), {"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "n"}]}}}})
    assert names(containers(out)) == ["new", "c", "side"]


def test_kubectl_rollout_restart() -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": T1}}}}}
    out = smp(deployment(), patch)
    assert out["spec"]["template"]["metadata"] == {"labels": {"app": "web"},
                                                   "annotations": {"kubectl.kubernetes.io/restartedAt": T1}}
    again = smp(out, {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": T2}}}}})
    assert again["spec"]["template"]["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": T2}


def test_kubectl_rollout_pause_and_resume() -> None:
    paused = smp(deployment(), {"spec": {"paused": True}})
    assert paused["spec"]["paused"] is True
    resumed = smp(paused, {"spec": {"paused": None}})
    assert "paused" not in resumed["spec"]


@pytest.mark.parametrize(
    ("patch", "labels"),
    [
        ({"metadata": {"labels": {"env": "prod"}}}, {"app": "web", "tier": "fe", "env": "prod"}),
        ({"metadata": {"labels": {"tier": None}}}, {"app": "web"}),
        ({"metadata": {"labels": {"app": "other"}}}, {"app": "other", "tier": "fe"}),
    ],
)
def test_label_patches(patch: dict[str, Any], labels: dict[str, str]) -> None:
    assert smp(deployment(), patch)["metadata"]["labels"] == labels


def test_scale_patch() -> None:
    assert smp(deployment(), {"spec": {"replicas": 4}})["spec"]["replicas"] == 4


def test_kubectl_client_side_apply_patch() -> None:
    """A three-way patch: image change, env B removed, env C added, a label removed, annotation refreshed."""
    live = deployment()
    live["metadata"]["annotations"] = {LAST: '{"old":true}\n', "other": "keep"}
    patch = {
        "metadata": {"annotations": {LAST: '{"new":true}\n'}, "labels": {"tier": None}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "side"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                "image": "img:2",
                "name": "c",
            }],
        }}},
    }
    out = smp(live, patch)
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["metadata"]["annotations"] == {LAST: '{"new":true}\n', "other": "keep"}
    c = containers(out)
    assert names(c) == ["c", "side"]
    assert c[0]["image"] == "img:2"
    assert c[0]["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    assert c[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    # No directive leaks into the stored object.
    assert "$setElementOrder" not in json.dumps(out) and "$patch" not in json.dumps(out)


def test_kubectl_apply_adds_container_in_config_order() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "d"}, {"name": "side"}],
        "containers": [{"image": "d:1", "name": "d"}],
    }}}}
    assert names(containers(smp(deployment(), patch))) == ["c", "d", "side"]


def test_kubectl_apply_removes_container() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}],
        "containers": [{"$patch": "delete", "name": "side"}],
    }}}}
    assert names(containers(smp(deployment(), patch))) == ["c"]


def test_kubectl_apply_server_only_items_keep_their_place() -> None:
    live = deployment()
    containers(live).insert(1, {"name": "injected", "image": "i"})
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "side"}, {"name": "d"}],
        "containers": [{"image": "d:1", "name": "d"}],
    }}}}
    assert names(containers(smp(live, patch))) == ["c", "injected", "side", "d"]


def test_kubectl_edit_reorders_env() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "side"}],
        "containers": [{"$setElementOrder/env": [{"name": "B"}, {"name": "A"}], "name": "c"}],
    }}}}
    assert names(containers(smp(deployment(), patch))[0]["env"]) == ["B", "A"]


def test_new_subtree_from_apply_drops_nulls_and_directives() -> None:
    live = deployment()
    del live["spec"]["template"]["spec"]["volumes"]
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "cfg"}],
        "volumes": [{"name": "cfg", "configMap": {"name": "cm", "optional": None}}],
    }}}}
    out = smp(live, patch)
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "cfg", "configMap": {"name": "cm"}}]


def test_strategy_switch_with_retain_keys() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}}
    assert smp(deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_clears_unlisted_fields() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert smp(deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_volume_source_switch_with_retain_keys() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "v"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}, "emptyDir": None, "name": "v"}],
    }}}}
    assert smp(deployment(), patch)["spec"]["template"]["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "cm"}}]


def test_retain_keys_must_cover_patch() -> None:
    with pytest.raises(ApiError) as ei:
        smp(deployment(), {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}})
    assert ei.value.code == 400
    assert ei.value.message == "invalid patch format of retainKeys"
    with pytest.raises(ApiError):
        smp(deployment(), {"spec": {"strategy": {"$retainKeys": "type"}}})


def test_ports_merge_by_container_port() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}}}}
    assert containers(smp(deployment(), patch))[0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]


def test_finalizers_are_a_merged_set() -> None:
    obj = deployment()
    obj["metadata"]["finalizers"] = ["a", "b"]
    assert smp(obj, {"metadata": {"finalizers": ["c", "a"]}})["metadata"]["finalizers"] == ["c", "a", "b"]
    assert smp(obj, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})["metadata"]["finalizers"] == ["b"]
    # deleting from a list that is not there does not create it
    assert "finalizers" not in smp(deployment(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})["metadata"]
    both = {"metadata": {"$setElementOrder/finalizers": ["b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"],
                         "finalizers": ["c"]}}
    assert smp(obj, both)["metadata"]["finalizers"] == ["b", "c"]


def test_owner_references_merge_by_uid() -> None:
    obj = deployment()
    obj["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "X", "name": "a", "uid": "1"}]
    patch = {"metadata": {"ownerReferences": [{"uid": "1", "controller": True}, {"apiVersion": "v1", "kind": "Y",
                                                                                "name": "b", "uid": "2"}]}}
    refs = smp(obj, patch)["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == ["1", "2"]
    assert refs[0] == {"apiVersion": "v1", "kind": "X", "name": "a", "uid": "1", "controller": True}


def test_status_conditions_merge_by_type() -> None:
    obj = deployment(status={"conditions": [{"type": "Available", "status": "False"},
                                            {"type": "Progressing", "status": "True"}]})
    out = smp(obj, {"status": {"conditions": [{"type": "Available", "status": "True"}]}})
    assert out["status"]["conditions"] == [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]


def test_non_merge_lists_are_replaced() -> None:
    obj = deployment()
    containers(obj)[0]["args"] = ["a", "b"]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["z"]}]}}}}
    assert containers(smp(obj, patch))[0]["args"] == ["z"]


def test_pod_patch_uses_pod_schema() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}}
    out = smp(pod, {"spec": {"containers": [{"name": "b", "image": "b2"}]}}, POD)
    assert out["spec"]["containers"] == [{"name": "a", "image": "a"}, {"name": "b", "image": "b2"}]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        # $patch: replace on a map replaces it
        ({"metadata": {"labels": {"$patch": "replace", "only": "x"}}}, {"only": "x"}),
        # $patch: delete on a map empties it
        ({"metadata": {"labels": {"$patch": "delete"}}}, {}),
        # $patch: merge is a plain merge
        ({"metadata": {"labels": {"$patch": "merge", "more": "y"}}}, {"app": "web", "tier": "fe", "more": "y"}),
    ],
)
def test_map_directives(patch: dict[str, Any], expected: dict[str, str]) -> None:
    assert smp(deployment(), patch)["metadata"]["labels"] == expected


def test_list_replace_directive() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}}}}
    assert containers(smp(deployment(), patch)) == [{"name": "only", "image": "o"}]
    empty = {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}]}}}}
    assert containers(smp(deployment(), empty)) == []


def test_list_delete_directive() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "c"}]}}}}
    assert names(containers(smp(deployment(), patch))) == ["side"]


def test_whole_object_replace() -> None:
    out = smp(deployment(), {"$patch": "replace", "apiVersion": "apps/v1", "kind": "Deployment",
                             "metadata": {"name": "web"}})
    assert out == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}


def test_unknown_kind_behaves_like_merge_patch() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"items": [{"name": "a"}, {"name": "b"}], "size": 1, "nested": {"x": 1, "y": 2}}}
    patch = {"spec": {"items": [{"name": "c"}], "nested": {"y": None, "z": 3}}}
    out = smp(obj, patch, ("example.com", "v1", "Widget"))
    assert out == merge_patch(obj, patch)


def test_unknown_field_behaves_like_merge_patch() -> None:
    obj = deployment()
    obj["spec"]["extra"] = {"list": [1, 2], "m": {"a": 1}}
    out = smp(obj, {"spec": {"extra": {"list": [3], "m": {"b": 2}}}})
    assert out["spec"]["extra"] == {"list": [3], "m": {"a": 1, "b": 2}}


@pytest.mark.parametrize(
    ("patch", "code", "fragment"),
    [
        ([1, 2], 400, "cannot unmarshal array"),
        ("str", 400, "cannot unmarshal string"),
        ({"metadata": {"labels": {"$patch": "frob"}}}, 400, "unknown patch type: frob in map"),
        ({"spec": {"template": {"spec": {"containers": [{"$patch": "frob", "name": "c"}]}}}}, 400, "unknown patch type"),
        ({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}, 400,
         "merging lists cannot yet be specified in the patch"),
        ({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, 400,
         "does not contain declared merge key: name"),
        ({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}, 400, "declared merge key"),
        ({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}],
                                         "containers": [{"name": "c", "image": "x"}]}}}}, 400, "doesn't match"),
        ({"spec": {"template": {"spec": {"$setElementOrder/containers": "c"}}}}, 400, "expected a []interface {}"),
        ({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}, 400, "invalid patch format of primitive list"),
    ],
)
def test_smp_errors(patch: Any, code: int, fragment: str) -> None:
    with pytest.raises(ApiError) as ei:
        smp(deployment(), patch)
    assert ei.value.code == code
    assert fragment in ei.value.message


def test_smp_is_fast() -> None:
    obj = deployment()
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "img:2", "name": "c"}]}}}}
    strategic_merge_patch(obj, patch, *DEPLOY)
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        strategic_merge_patch(obj, patch, *DEPLOY)
    assert (time.perf_counter() - start) / n < 0.001


# ---------------------------------------------------------------------------------------------------------------
# Strategic merge patch: upstream's semantics on a synthetic type (the shape of upstream's own MergeItem tests)

MERGE_ITEM: dict[str, Any] = {"type": "object", "properties": {
    "name": {"type": "string"},
    "value": {"type": "string"},
    "other": {"type": "string"},
    "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
    "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
    "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
}}
MERGE_ITEM["properties"]["mergingList"] = {"type": "array", "items": MERGE_ITEM, "x-kubernetes-patch-strategy": "merge",
                                           "x-kubernetes-patch-merge-key": "name"}
MERGE_ITEM["properties"]["nonMergingList"] = {"type": "array", "items": MERGE_ITEM}
MERGE_ITEM["properties"]["retainKeysMap"] = {"type": "object", "properties": MERGE_ITEM["properties"],
                                             "x-kubernetes-patch-strategy": "retainKeys"}


def n(*items: Any) -> list[dict[str, Any]]:
    """Shorthand for merging-list items: n(1, (2, "b")) -> [{"name": 1}, {"name": 2, "value": "b"}]."""
    out: list[dict[str, Any]] = []
    for i in items:
        if isinstance(i, tuple):
            d: dict[str, Any] = {"name": i[0], "value": i[1]}
            if len(i) > 2:
                d["other"] = i[2]
            out.append(d)
        else:
            out.append({"name": i})
    return out


def delete(name: Any) -> dict[str, Any]:
    return {"name": name, "$patch": "delete"}


UPSTREAM_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("unique scalars", {"mergingIntList": [1, 2]}, {"mergingIntList": [2, 3]}, {"mergingIntList": [1, 2, 3]}),
    ("patch order wins for named items", {"mergingList": n(1, (2, "b"), 3)},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "other": "x"}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "value": "b", "other": "x"}]}),
    ("server-only items keep their place", {"mergingList": n(1, (2, "b"), 3)},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]},
     {"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
    ("int list order", {"mergingIntList": [1, 2, 3]}, {"mergingIntList": [3, 1]}, {"mergingIntList": [2, 3, 1]}),
    ("delete all duplicates", {"mergingList": n(1, 1, (2, "a"), 3, 3)}, {"mergingList": [delete(1), delete(3)]},
     {"mergingList": n((2, "a"))}),
    ("delete map keys", {"simpleMap": {"key1": "1", "key2": "1"}}, {"simpleMap": {"$patch": "delete"}},
     {"simpleMap": {}}),
    ("replace whole map", {"name": 1, "value": 1}, {"other": "a", "$patch": "replace"}, {"other": "a"}),
    ("retainKeys map without directive merges", {"retainKeysMap": {"name": "foo", "value": "a"}},
     {"retainKeysMap": {"value": "b"}}, {"retainKeysMap": {"name": "foo", "value": "b"}}),
    ("setElementOrder item absent from both lists", {"mergingList": n(1, 3)},
     {"$setElementOrder/mergingList": n(3, 2, 1), "mergingList": n((3, 3), (1, 1))},
     {"mergingList": n((3, 3), (1, 1))}),
    ("setElementOrder on int list", {"mergingIntList": [1, 3]}, {"$setElementOrder/mergingIntList": [3, 2, 1]},
     {"mergingIntList": [3, 1]}),
    ("deleteFromPrimitiveList on missing item", {"mergingIntList": [1, 2]},
     {"$deleteFromPrimitiveList/mergingIntList": [3]}, {"mergingIntList": [1, 2]}),
    ("deleteFromPrimitiveList on missing list", {"foo": ["bar"]},
     {"$deleteFromPrimitiveList/mergingIntList": [3]}, {"foo": ["bar"]}),
    ("deleteFromPrimitiveList on non-merging list", {"nonMergingIntList": [1, 2, 3]},
     {"$deleteFromPrimitiveList/nonMergingIntList": [2]}, {"nonMergingIntList": [1, 3]}),
    ("three-way delete from scalars", {"mergingIntList": [1, 2, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}),
    ("three-way delete duplicates from scalars", {"mergingIntList": [1, 2, 3, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}),
    ("nested patch with delete of a missing item", {"name": "hi", "mergingList": n("hello2")},
     {"$setElementOrder/mergingList": n("hello", "doesntexist"), "mergingList": [{"name": "hello"}, delete("doesntexist")]},
     {"name": "hi", "mergingList": n("hello", "hello2")}),
    ("merge lists of maps in order", {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": n(4, 1, 2, 3), "mergingList": n((4, 4), (3, 3))},
     {"mergingList": [{"name": 4, "value": 4}, {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"},
                      {"name": 3, "value": 3}]}),
    ("item added by the patch lands after surviving live items",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": n(1, 2), "mergingList": n((1, 1), (2, 2))},
     {"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2},
                      {"name": 3, "value": 2, "other": "b"}]}),
    ("add and delete in one apply", {"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]},
     {"$setElementOrder/mergingList": n(2, 3), "mergingList": [{"name": 3}, delete(1)]},
     {"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}),
    ("add and delete in one apply, live drifted", {"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "other": "c"}]},
     {"$setElementOrder/mergingList": n(2, 3), "mergingList": [{"name": 2}, {"name": 3}, delete(1)]},
     {"mergingList": [{"name": 4, "other": "c"}, {"name": 2}, {"name": 3}]}),
    ("delete missing map, live drifted", {"mergingList": [{"name": 3, "other": "a"}]},
     {"$setElementOrder/mergingList": n(2), "mergingList": [{"name": 2}, delete(1)]},
     {"mergingList": [{"name": 2}, {"name": 3, "other": "a"}]}),
    ("delete field from map in merging list", {"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2}]},
     {"$setElementOrder/mergingList": n(1, 2), "mergingList": [{"name": 1, "value": None}]},
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2}]}),
    ("non-merging list nested in merging list is replaced",
     {"mergingList": [{"name": 1, "other": "a", "nonMergingList": n(1, (2, 2))}, {"name": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": n(1, 2), "mergingList": [{"name": 1, "nonMergingList": n((1, 1))}]},
     {"mergingList": [{"name": 1, "other": "a", "nonMergingList": n((1, 1))}, {"name": 2, "other": "b"}]}),
]


@pytest.mark.parametrize(("desc", "original", "patch", "expected"), UPSTREAM_CASES, ids=[c[0] for c in UPSTREAM_CASES])
def test_upstream_semantics(desc: str, original: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert P._smp_map(copy.deepcopy(original), patch, MERGE_ITEM) == expected


def test_upstream_set_order_mismatch_errors() -> None:
    with pytest.raises(ApiError, match="doesn't match"):
        P._smp_map({"mergingIntList": [1, 3, 2]}, {"$setElementOrder/mergingIntList": [1, 2, 3],
                                                    "mergingIntList": [3, 1]}, MERGE_ITEM)


# ---------------------------------------------------------------------------------------------------------------
# Field sets


def test_fields_v1_encoding() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "x", "namespace": "d", "uid": "u", "resourceVersion": "1", "generation": 1,
                        "creationTimestamp": T0, "labels": {"app": "a"}, "managedFields": [{"manager": "m"}]},
           "spec": {"selector": {"matchLabels": {"app": "a"}},
                    "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
           "status": {"replicas": 1}}
    assert fields_v1(obj, *DEPLOY) == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:selector": {},  # LabelSelector is an atomic map
            "f:template": {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}, "f:name": {}}}}},
        },
    }


def test_fields_v1_keys_and_sets() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "finalizers": ["x/y"]},
           "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "a"}}}
    assert fields_v1(svc, "", "v1", "Service") == {
        "f:metadata": {"f:finalizers": {'v:"x/y"': {}}},
        "f:spec": {
            "f:ports": {
                'k:{"port":53,"protocol":"UDP"}': {".": {}, "f:port": {}, "f:protocol": {}},
                'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}},  # protocol defaults to TCP in the key
            },
            "f:selector": {},  # an atomic map
        },
    }


def test_fields_v1_keeps_status_of_kinds_without_status_subresource() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    assert fields_v1(cm, "", "v1", "ConfigMap") == {"f:data": {"f:k": {}}}


def test_pe_strings() -> None:
    assert P._pe_str('k:{"containerPort":80,"protocol":"TCP"}') == '[containerPort=80,protocol="TCP"]'
    assert P._pe_str('v:"a"') == '[="a"]'
    assert P._pe_str("f:spec") == ".spec"


# ---------------------------------------------------------------------------------------------------------------
# Managed fields on create / update


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["manager"], m["operation"]): m for m in obj["metadata"].get("managedFields", [])}


def test_create_records_update_entry() -> None:
    obj = deployment()
    out = update_managed_fields(None, obj, "kubectl-create", "Update", *DEPLOY, T0)
    assert obj == deployment()
    [entry] = out["metadata"]["managedFields"]
    assert {k: entry[k] for k in ("manager", "operation", "apiVersion", "time", "fieldsType")} == {
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1"}
    f = entry["fieldsV1"]
    # Nodes that are new get "." ; structs that exist in a fresh Go object do not.
    assert f["f:metadata"] == {"f:labels": {".": {}, "f:app": {}, "f:tier": {}}}
    assert "." not in f["f:spec"] and "." not in f["f:spec"]["f:strategy"]
    assert f["f:spec"]["f:strategy"]["f:rollingUpdate"] == {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}
    cs = f["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert "." not in cs
    assert cs['k:{"name":"c"}']["."] == {}
    assert cs['k:{"name":"c"}']["f:env"]["."] == {}
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in cs['k:{"name":"c"}']["f:ports"]
    assert f["f:spec"]["f:template"]["f:spec"]["f:volumes"]['k:{"name":"v"}'] == {".": {}, "f:emptyDir": {},
                                                                                  "f:name": {}}


def test_update_moves_ownership() -> None:
    created = update_managed_fields(None, deployment(), "kubectl-create", "Update", *DEPLOY, T0)
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 3
    out = update_managed_fields(created, scaled, "kubectl", "Update", *DEPLOY, T1)
    ms = managers(out)
    assert ms[("kubectl", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert ms[("kubectl", "Update")]["time"] == T1
    assert "f:replicas" not in ms[("kubectl-create", "Update")]["fieldsV1"]["f:spec"]
    assert ms[("kubectl-create", "Update")]["time"] == T0
    # Entries are sorted by operation, then time.
    assert [m["manager"] for m in out["metadata"]["managedFields"]] == ["kubectl-create", "kubectl"]


def test_update_removal_drops_ownership_everywhere() -> None:
    created = update_managed_fields(None, deployment(), "kubectl-create", "Update", *DEPLOY, T0)
    changed = copy.deepcopy(created)
    del changed["metadata"]["labels"]["tier"]
    out = update_managed_fields(created, changed, "editor", "Update", *DEPLOY, T1)
    ms = managers(out)
    assert ms[("kubectl-create", "Update")]["fieldsV1"]["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert ("editor", "Update") not in ms  # removing a field owns nothing


def test_noop_update_keeps_entries() -> None:
    created = update_managed_fields(None, deployment(), "kubectl-create", "Update", *DEPLOY, T0)
    out = update_managed_fields(created, copy.deepcopy(created), "kubectl", "Update", *DEPLOY, T1)
    assert out["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_update_keeps_stored_entries_when_client_omits_them() -> None:
    created = update_managed_fields(None, deployment(), "kubectl-create", "Update", *DEPLOY, T0)
    new = copy.deepcopy(created)
    del new["metadata"]["managedFields"]
    new["metadata"]["labels"]["x"] = "y"
    out = update_managed_fields(created, new, "kubectl-label", "Update", *DEPLOY, T1)
    assert set(managers(out)) == {("kubectl-create", "Update"), ("kubectl-label", "Update")}


def test_clearing_managed_fields() -> None:
    created = update_managed_fields(None, deployment(), "kubectl-create", "Update", *DEPLOY, T0)
    new = copy.deepcopy(created)
    new["metadata"]["managedFields"] = [{}]
    cleared = update_managed_fields(created, new, "kubectl-patch", "Update", *DEPLOY, T1)
    assert "managedFields" not in cleared["metadata"]
    # ... and an object without managed fields stays untracked on update.
    later = copy.deepcopy(cleared)
    later["spec"]["replicas"] = 7
    assert "managedFields" not in update_managed_fields(cleared, later, "x", "Update", *DEPLOY, T2)["metadata"]


def test_status_is_not_tracked_on_main_resource_but_is_on_status_subresource() -> None:
    created = update_managed_fields(None, deployment(status={}), "kubectl-create", "Update", *DEPLOY, T0)
    with_status = copy.deepcopy(created)
    with_status["status"] = {"replicas": 1}
    out = update_managed_fields(created, with_status, "kube-controller-manager", "Update", *DEPLOY, T1)
    assert ("kube-controller-manager", "Update") not in managers(out)
    out = update_managed_fields(created, with_status, "kube-controller-manager", "Update", *DEPLOY, T1,
                                subresource="status")
    entry = managers(out)[("kube-controller-manager", "Update")]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_update_managers_are_capped() -> None:
    obj = update_managed_fields(None, deployment(), "creator", "Update", *DEPLOY, T0)
    for i in range(12):
        new = copy.deepcopy(obj)
        new["metadata"]["labels"][f"l{i}"] = "v"
        obj = update_managed_fields(obj, new, f"m{i:02d}", "Update", *DEPLOY, f"2025-01-01T01:{i:02d}:00Z")
    ms = obj["metadata"]["managedFields"]
    assert len(ms) == 10
    names_ = [m["manager"] for m in ms]
    assert "ancient-changes" in names_ and "creator" not in names_ and "m00" not in names_
    ancient = next(m for m in ms if m["manager"] == "ancient-changes")
    labels = ancient["fieldsV1"]["f:metadata"]["f:labels"]
    assert {"f:app", "f:l0", "f:l1", "f:l2"} <= set(labels)


# ---------------------------------------------------------------------------------------------------------------
# Server-side apply


def config(replicas: int = 2, image: str = "img:1", env: list[dict[str, str]] | None = None,
           labels: dict[str, str] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": image}
    if env is not None:
        c["env"] = env
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels if labels is not None else {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [c]}}},
    }


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server would store after a create: server fields added."""
    out = copy.deepcopy(obj)
    out["metadata"].update({"uid": "u-1", "resourceVersion": "1", "creationTimestamp": T0, "generation": 1})
    out["status"] = {"replicas": 0}
    return out


def test_apply_create() -> None:
    cfg = config()
    cfg["status"] = {"replicas": 99}
    out = server_side_apply(None, cfg, "kubectl", False, *DEPLOY, T0)
    assert "status" not in out
    [entry] = out["metadata"]["managedFields"]
    assert entry == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0, "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}, "f:name": {}}}}}},
        },
    }


def test_apply_update_and_prune() -> None:
    live = stored(server_side_apply(None, config(env=[{"name": "A", "value": "1"}], labels={"app": "web", "x": "1"}),
                                    "mgr", False, *DEPLOY, T0))
    out = server_side_apply(live, config(replicas=3), "mgr", False, *DEPLOY, T1)
    assert out["spec"]["replicas"] == 3
    assert out["metadata"]["labels"] == {"app": "web"}  # x pruned: mgr owned it and stopped applying it
    assert containers(out) == [{"name": "c", "image": "img:1"}]  # env pruned
    assert out["status"] == {"replicas": 0}  # live status kept
    assert out["metadata"]["uid"] == "u-1"
    [entry] = out["metadata"]["managedFields"]
    assert entry["time"] == T1


def test_apply_does_not_prune_fields_owned_by_others() -> None:
    live = stored(server_side_apply(None, config(labels={"app": "web", "x": "1"}), "mgr", False, *DEPLOY, T0))
    # another manager also sets x (same value: shared ownership, no conflict)
    live = server_side_apply(live, {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "metadata": {"name": "web", "labels": {"x": "1"}}}, "other", False, *DEPLOY, T1)
    assert set(managers(live)) == {("mgr", "Apply"), ("other", "Apply")}
    out = server_side_apply(live, config(), "mgr", False, *DEPLOY, T2)
    assert out["metadata"]["labels"] == {"app": "web", "x": "1"}


def test_apply_conflict_with_update_manager() -> None:
    live = stored(update_managed_fields(None, config(replicas=1), "kubectl-client-side-apply", "Update", *DEPLOY, T0))
    with pytest.raises(ApiError) as ei:
        server_side_apply(live, config(replicas=3), "mgr", False, *DEPLOY, T1)
    e = ei.value
    assert e.code == 409 and e.reason == "Conflict"
    assert e.message == 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    assert e.details == {"causes": [{"reason": "FieldManagerConflict",
                                     "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                                     "field": ".spec.replicas"}]}


def test_apply_multiple_conflicts_message() -> None:
    live = stored(update_managed_fields(None, config(replicas=1), "editor", "Update", *DEPLOY, T0))
    with pytest.raises(ApiError) as ei:
        server_side_apply(live, config(replicas=3, image="img:2"), "mgr", False, *DEPLOY, T1)
    assert ei.value.message == (
        'Apply failed with 2 conflicts: conflicts with "editor" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="c"].image')
    assert [c["field"] for c in ei.value.details["causes"]] == [  # type: ignore[index]
        ".spec.replicas", '.spec.template.spec.containers[name="c"].image']


def test_apply_conflict_with_other_applier() -> None:
    live = stored(server_side_apply(None, config(replicas=1), "a", False, *DEPLOY, T0))
    with pytest.raises(ApiError) as ei:
        server_side_apply(live, config(replicas=5), "b", False, *DEPLOY, T1)
    assert ei.value.message == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'


def test_apply_same_value_is_shared_not_conflicting() -> None:
    live = stored(update_managed_fields(None, config(replicas=1), "editor", "Update", *DEPLOY, T0))
    out = server_side_apply(live, config(replicas=1), "mgr", False, *DEPLOY, T1)
    ms = managers(out)
    assert "f:replicas" in ms[("editor", "Update")]["fieldsV1"]["f:spec"]
    assert "f:replicas" in ms[("mgr", "Apply")]["fieldsV1"]["f:spec"]


def test_apply_force_moves_ownership() -> None:
    live = stored(update_managed_fields(None, config(replicas=1), "kubectl-client-side-apply", "Update", *DEPLOY, T0))
    out = server_side_apply(live, config(replicas=3), "mgr", True, *DEPLOY, T1)
    assert out["spec"]["replicas"] == 3
    ms = managers(out)
    assert "f:replicas" not in ms[("kubectl-client-side-apply", "Update")]["fieldsV1"]["f:spec"]
    assert "f:replicas" in ms[("mgr", "Apply")]["fieldsV1"]["f:spec"]
    assert [m["operation"] for m in out["metadata"]["managedFields"]] == ["Apply", "Update"]


def test_kubectl_takes_over_client_side_apply_fields() -> None:
    """kubectl apply --server-side on an object made by client-side kubectl apply: no conflict."""
    cfg = config(replicas=1)
    last = json.dumps(cfg, sort_keys=True) + "\n"
    obj = copy.deepcopy(cfg)
    obj["metadata"]["annotations"] = {LAST: last}
    live = stored(update_managed_fields(None, obj, "kubectl-client-side-apply", "Update", *DEPLOY, T0))
    new = config(replicas=4)
    out = server_side_apply(live, new, "kubectl", False, *DEPLOY, T1)
    assert out["spec"]["replicas"] == 4
    assert json.loads(out["metadata"]["annotations"][LAST]) == new  # kept in sync
    # another manager name gets the conflict
    with pytest.raises(ApiError):
        server_side_apply(live, new, "someone-else", False, *DEPLOY, T1)


def test_apply_to_untracked_object_records_before_first_apply() -> None:
    live = stored(config(replicas=1))
    with pytest.raises(ApiError) as ei:
        server_side_apply(live, config(replicas=2), "mgr", False, *DEPLOY, T1)
    assert 'conflict with "before-first-apply" using apps/v1: .spec.replicas' in ei.value.message
    out = server_side_apply(live, config(replicas=1), "mgr", False, *DEPLOY, T1)
    assert set(managers(out)) == {("before-first-apply", "Update"), ("mgr", "Apply")}


def test_apply_ignores_status_and_keeps_live_status() -> None:
    live = stored(server_side_apply(None, config(), "mgr", False, *DEPLOY, T0))
    cfg = config()
    cfg["status"] = {"replicas": 42}
    out = server_side_apply(live, cfg, "mgr", False, *DEPLOY, T1)
    assert out["status"] == {"replicas": 0}


def test_noop_apply_keeps_time() -> None:
    live = stored(server_side_apply(None, config(), "mgr", False, *DEPLOY, T0))
    out = server_side_apply(live, config(), "mgr", False, *DEPLOY, T1)
    assert out == live


def test_apply_merges_keyed_lists_and_sets() -> None:
    live = stored(update_managed_fields(None, config(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
                                        "editor", "Update", *DEPLOY, T0))
    live["metadata"]["finalizers"] = ["x/a"]
    cfg = config(env=[{"name": "C", "value": "3"}, {"name": "A", "value": "1"}])
    cfg["metadata"]["finalizers"] = ["x/b"]
    out = server_side_apply(live, cfg, "mgr", False, *DEPLOY, T1)
    assert names(containers(out)[0]["env"]) == ["C", "A", "B"]
    assert out["metadata"]["finalizers"] == ["x/a", "x/b"]
    f = managers(out)[("mgr", "Apply")]["fieldsV1"]
    assert f["f:metadata"]["f:finalizers"] == {'v:"x/b"': {}}


def test_apply_list_merge_order() -> None:
    lhs = [{"name": n_} for n_ in ("a", "b", "c")]
    rhs = [{"name": n_} for n_ in ("c", "a")]
    schema_ = {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}},
               "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
    out = P._merge_list(lhs, rhs, "map", ("name",), schema_)
    assert names(out) == ["b", "c", "a"]
    assert names(P._merge_list([{"name": "a"}, {"name": "b"}], [{"name": "b"}, {"name": "a"}], "map", ("name",),
                               schema_)) == ["b", "a"]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda c: c["metadata"].__setitem__("managedFields", []), "metadata.managedFields must be nil"),
        (lambda c: containers(c).append({"name": "c", "image": "dup"}), 'duplicate entries for key [name="c"]'),
        (lambda c: containers(c).append({"image": "nameless"}), 'omits key field "name"'),
    ],
)
def test_apply_rejects_bad_configuration(mutate: Any, fragment: str) -> None:
    cfg = config()
    mutate(cfg)
    with pytest.raises(ApiError) as ei:
        server_side_apply(None, cfg, "mgr", False, *DEPLOY, T0)
    assert ei.value.code == 400
    assert fragment in ei.value.message


def test_apply_error_names_the_path() -> None:
    cfg = config()
    containers(cfg).append({"name": "c", "image": "dup"})
    with pytest.raises(ApiError) as ei:
        server_side_apply(None, cfg, "mgr", False, *DEPLOY, T0)
    assert ei.value.message == ('failed to create typed patch object (apps/v1, Kind=Deployment): '
                                '.spec.template.spec.containers: duplicate entries for key [name="c"]')


def test_apply_does_not_mutate_inputs() -> None:
    live = stored(update_managed_fields(None, config(replicas=1), "editor", "Update", *DEPLOY, T0))
    live_before = copy.deepcopy(live)
    cfg = config(replicas=3)
    cfg_before = copy.deepcopy(cfg)
    server_side_apply(live, cfg, "mgr", True, *DEPLOY, T1)
    assert live == live_before and cfg == cfg_before


def test_apply_then_update_then_apply_roundtrip() -> None:
    """kubectl apply --server-side, kubectl scale (an Update), then re-apply without replicas."""
    live = stored(server_side_apply(None, config(replicas=2), "kubectl", False, *DEPLOY, T0))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    live = update_managed_fields(live, scaled, "kubectl", "Update", *DEPLOY, T1)
    ms = managers(live)
    assert "f:replicas" not in ms[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    assert ms[("kubectl", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    cfg = config()
    del cfg["spec"]["replicas"]
    out = server_side_apply(live, cfg, "kubectl", False, *DEPLOY, T2)
    assert out["spec"]["replicas"] == 5  # owned by the Update manager, not pruned
