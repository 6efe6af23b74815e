"""core/v1 <-> events.k8s.io/v1 Event conversion."""

from __future__ import annotations

from typing import Any

from tinykube.api.events import core_to_events_v1, events_v1_to_core, normalize_core, to_api_version


def _old_style_core() -> dict[str, Any]:
    """An event as a kubelet-era recorder writes it (core fields only)."""
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "web-1.17a", "namespace": "default", "uid": "e-1", "resourceVersion": "42"},
        "involvedObject": {
            "kind": "Pod",
            "namespace": "default",
            "name": "web-1",
            "uid": "p-1",
            "apiVersion": "v1",
            "resourceVersion": "40",
            "fieldPath": "spec.containers{web}",
        },
        "reason": "Pulled",
        "message": "Container image already present",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": "2024-01-01T00:00:00Z",
        "lastTimestamp": "2024-01-01T00:05:00Z",
        "count": 3,
        "type": "Normal",
        "eventTime": None,
        "reportingComponent": "kubelet",
        "reportingInstance": "node-a",
    }


def _new_style_v1() -> dict[str, Any]:
    """An event as an events.k8s.io recorder writes it."""
    return {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": {"name": "web-1.17b", "namespace": "default"},
        "eventTime": "2024-01-01T00:00:00.123456Z",
        "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-node-a",
        "action": "Binding",
        "reason": "Scheduled",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "p-1", "apiVersion": "v1"},
        "related": {"kind": "Node", "name": "node-a", "apiVersion": "v1"},
        "note": "Successfully assigned default/web-1 to node-a",
        "type": "Normal",
        "deprecatedSource": {},
        "deprecatedFirstTimestamp": None,
        "deprecatedLastTimestamp": None,
    }


def test_core_to_events_v1_maps_every_field() -> None:
    out = core_to_events_v1(_old_style_core())
    assert out == {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": {"name": "web-1.17a", "namespace": "default", "uid": "e-1", "resourceVersion": "42"},
        "eventTime": None,
        "reportingController": "kubelet",
        "reportingInstance": "node-a",
        "reason": "Pulled",
        "regarding": _old_style_core()["involvedObject"],
        "note": "Container image already present",
        "type": "Normal",
        "deprecatedSource": {"component": "kubelet", "host": "node-a"},
        "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z",
        "deprecatedLastTimestamp": "2024-01-01T00:05:00Z",
        "deprecatedCount": 3,
    }
    # Go struct order, as kube-apiserver serializes it
    assert list(out)[:4] == ["kind", "apiVersion", "metadata", "eventTime"]
    assert list(out)[-4:] == [
        "deprecatedSource",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
    ]


def test_events_v1_to_core_maps_every_field() -> None:
    out = events_v1_to_core(_new_style_v1())
    assert out == {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "web-1.17b", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "p-1", "apiVersion": "v1"},
        "reason": "Scheduled",
        "message": "Successfully assigned default/web-1 to node-a",
        "source": {},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "type": "Normal",
        "eventTime": "2024-01-01T00:00:00.123456Z",
        "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
        "action": "Binding",
        "related": {"kind": "Node", "name": "node-a", "apiVersion": "v1"},
        "reportingComponent": "default-scheduler",
        "reportingInstance": "default-scheduler-node-a",
    }
    assert list(out)[:4] == ["kind", "apiVersion", "metadata", "involvedObject"]
    assert list(out)[-2:] == ["reportingComponent", "reportingInstance"]


def test_round_trip_core() -> None:
    core = _old_style_core()
    assert events_v1_to_core(core_to_events_v1(core)) == core


def test_round_trip_events_v1() -> None:
    ev = _new_style_v1()
    assert core_to_events_v1(events_v1_to_core(ev)) == ev


def test_round_trip_is_stable_for_sparse_objects() -> None:
    sparse_core = {"metadata": {"name": "x", "namespace": "d"}, "message": "hi"}
    once = events_v1_to_core(core_to_events_v1(sparse_core))
    assert events_v1_to_core(core_to_events_v1(once)) == once
    assert once == {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "x", "namespace": "d"},
        "involvedObject": {},
        "message": "hi",
        "source": {},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "eventTime": None,
        "reportingComponent": "",
        "reportingInstance": "",
    }
    sparse_v1 = {"metadata": {"name": "y"}, "note": "hey", "reason": "R"}
    v1 = core_to_events_v1(events_v1_to_core(sparse_v1))
    assert v1 == {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": {"name": "y"},
        "eventTime": None,
        "reason": "R",
        "regarding": {},
        "note": "hey",
        "deprecatedSource": {},
        "deprecatedFirstTimestamp": None,
        "deprecatedLastTimestamp": None,
    }


def test_empty_fields_follow_go_omitempty() -> None:
    core = dict(_old_style_core(), count=0, reason="", involvedObject={"kind": "Pod", "name": "p", "uid": ""})
    v1 = core_to_events_v1(core)
    assert "deprecatedCount" not in v1 and "reason" not in v1
    assert v1["regarding"] == {"kind": "Pod", "name": "p"}
    # core/v1 series omits a zero count; events.k8s.io/v1 always writes it
    assert core_to_events_v1({"series": {"lastObservedTime": "t"}})["series"] == {"count": 0, "lastObservedTime": "t"}
    assert events_v1_to_core({"series": {"count": 0, "lastObservedTime": "t"}})["series"] == {"lastObservedTime": "t"}


def test_unknown_fields_are_dropped_and_input_untouched() -> None:
    core = dict(_old_style_core(), bogus=1)
    snapshot = repr(core)
    v1 = core_to_events_v1(core)
    assert "bogus" not in v1
    v1["metadata"]["name"] = "changed"
    assert repr(core) == snapshot


def test_helpers() -> None:
    core = _old_style_core()
    assert normalize_core(core) == core
    assert to_api_version(core, "events.k8s.io/v1")["note"] == core["message"]
    assert to_api_version(core, "v1") == core
