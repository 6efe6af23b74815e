"""Label and field selector parsing, matching and error messages (upstream kube-apiserver behaviour)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tinykube.api import errors
from tinykube.api.resources import Resource, lookup
from tinykube.api.selectors import (
    FieldSelector,
    LabelSelector,
    from_label_selector_object,
    parse_field_selector,
    parse_label_selector,
    selector_to_string,
    supported_fields,
)


def _res(group: str, plural: str) -> Resource:
    r = lookup(group, "v1", plural)
    assert r is not None
    return r


PODS = _res("", "pods")
CONFIGMAPS = _res("", "configmaps")
NODES = _res("", "nodes")
NAMESPACES = _res("", "namespaces")
SECRETS = _res("", "secrets")
SERVICES = _res("", "services")
EVENTS = _res("", "events")
EVENTS_V1 = _res("events.k8s.io", "events")
REPLICASETS = _res("apps", "replicasets")


def _label_error(s: str) -> str:
    with pytest.raises(errors.ApiError) as ei:
        parse_label_selector(s)
    assert ei.value.code == 400
    assert ei.value.reason == "BadRequest"
    return ei.value.message


def _field_error(s: str, r: Resource) -> str:
    with pytest.raises(errors.ApiError) as ei:
        parse_field_selector(s, r)
    assert ei.value.code == 400
    assert ei.value.reason == "BadRequest"
    return ei.value.message


# --------------------------------------------------------------------------------------------------------------------
# label selector syntax
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("", ""),
        ("   ", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("a = b", "a=b"),
        ("a in (x,y)", "a in (x,y)"),
        ("a in (y, x)", "a in (x,y)"),
        ("a notin (z)", "a notin (z)"),
        ("a", "a"),
        ("!a", "!a"),
        ("a=", "a="),
        ("a in ()", "a in ()"),
        ("a in (x,,y)", "a in (,x,y)"),
        ("x in (in,notin)", "x in (in,notin)"),
        ("in=x", "in=x"),
        ("a>1", "a>1"),
        ("a<3", "a<3"),
        ("example.com/app=x", "example.com/app=x"),
        # requirements come out sorted by key
        ("z=1,a=b,c!=d,e in (x,y),f notin (z),g,!h", "a=b,c!=d,e in (x,y),f notin (z),g,!h,z=1"),
    ],
)
def test_parse_and_render(text: str, rendered: str) -> None:
    assert str(parse_label_selector(text)) == rendered


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a in b", "unable to parse requirement: found 'b' expected: '('"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a,", "found '', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a==b==c", "found '==', expected: ',' or 'end of string'"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a=(", "unable to parse requirement: found '(', expected: identifier"),
        (
            "a<-3",
            'unable to parse requirement: values[0][a]: Invalid value: "-3": a valid label must be an empty '
            "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        (
            "a<x",
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    assert _label_error(text) == message


def test_invalid_key_and_value_messages() -> None:
    assert _label_error("a@b=c") == (
        'unable to parse requirement: <nil>: Invalid value: "a@b": name part must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', "
        " or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )
    assert _label_error("a=b@") == (
        'unable to parse requirement: values[0][a]: Invalid value: "b@": a valid label must be an empty string '
        "or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    )
    assert "a qualified name must consist of" in _label_error("a/b/c")
    assert "prefix part must be non-empty" in _label_error("/b")
    assert "prefix part a lowercase RFC 1123 subdomain" in _label_error("Foo.com/b")
    assert "must be no more than 63 characters" in _label_error("a=" + "x" * 64)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", None, True),
        ("", {"a": "b"}, True),
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", None, False),
        ("a==b", {"a": "b"}, True),
        ("a!=b", {"a": "b"}, False),
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {}, True),
        ("a!=b", None, True),
        ("a in (x,y)", {"a": "y"}, True),
        ("a in (x,y)", {"a": "z"}, False),
        ("a in (x,y)", {}, False),
        ("a notin (x,y)", {"a": "z"}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("a notin (x,y)", {}, True),
        ("a", {"a": ""}, True),
        ("a", {"b": ""}, False),
        ("!a", {"b": ""}, True),
        ("!a", {"a": "x"}, False),
        ("!a", None, True),
        ("a=", {"a": ""}, True),
        ("a>5", {"a": "6"}, True),
        ("a>5", {"a": "5"}, False),
        ("a>5", {"a": "x"}, False),
        ("a<5", {"a": "-1"}, True),
        ("a<5", {}, False),
        ("a=b,c=d", {"a": "b", "c": "d"}, True),
        ("a=b,c=d", {"a": "b", "c": "x"}, False),
        ("a=b,c=d,e,!f,g notin (1)", {"a": "b", "c": "d", "e": "", "g": "2"}, True),
        ("a=b,c=d,e,!f,g notin (1)", {"a": "b", "c": "d", "e": "", "g": "2", "f": "1"}, False),
    ],
)
def test_matches(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_empty_and_nothing() -> None:
    assert parse_label_selector("").empty
    assert not parse_label_selector("a").empty
    nothing = LabelSelector.nothing()
    assert not nothing.empty and nothing.matches_nothing
    assert not nothing.matches({}) and not nothing.matches(None)
    assert LabelSelector.everything().matches({"x": "y"})


def test_requires_exact_match() -> None:
    assert parse_label_selector("a=b,c in (d)").requires_exact_match("a") == "b"
    assert parse_label_selector("a=b,c in (d)").requires_exact_match("c") == "d"
    assert parse_label_selector("c in (d,e)").requires_exact_match("c") is None
    assert parse_label_selector("a!=b").requires_exact_match("a") is None
    assert parse_label_selector("a=b").requires_exact_match("z") is None


def test_parse_is_cached_and_equal() -> None:
    assert parse_label_selector("a=b,c") is parse_label_selector("a=b,c")
    assert parse_label_selector("c,a=b") == parse_label_selector("a=b,c")
    assert hash(parse_label_selector("c,a=b")) == hash(parse_label_selector("a=b,c"))


# --------------------------------------------------------------------------------------------------------------------
# metav1.LabelSelector objects
# --------------------------------------------------------------------------------------------------------------------


def test_from_object() -> None:
    sel = from_label_selector_object(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "track", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert sel.matches({"app": "web", "tier": "a", "track": "x"})
    assert not sel.matches({"app": "web", "tier": "c", "track": "x"})
    assert not sel.matches({"app": "web", "tier": "a", "track": "x", "env": "prod"})
    assert not sel.matches({"app": "web", "tier": "a", "track": "x", "legacy": "1"})
    assert not sel.matches({"app": "web", "tier": "a"})
    assert from_label_selector_object({}).matches({"any": "thing"})
    assert from_label_selector_object({"matchLabels": {}, "matchExpressions": []}).empty
    assert not from_label_selector_object(None).matches({})


def test_from_object_errors() -> None:
    with pytest.raises(errors.ApiError) as ei:
        from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "Foo"}]})
    assert ei.value.code == 400
    assert ei.value.message == '"Foo" is not a valid label selector operator'
    with pytest.raises(errors.ApiError) as ei:
        from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    assert (
        ei.value.message == "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    )
    with pytest.raises(errors.ApiError) as ei:
        from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert "values set must be empty for exists and does not exist" in ei.value.message
    with pytest.raises(errors.ApiError) as ei:
        from_label_selector_object({"matchLabels": {"a b": "x@"}})
    assert ei.value.message.startswith('[key: Invalid value: "a b": name part')
    assert 'values[0][a b]: Invalid value: "x@"' in ei.value.message


@pytest.mark.parametrize(
    ("sel", "text"),
    [
        ({"matchLabels": {"app": "x"}}, "app=x"),
        (
            {
                "matchLabels": {"app": "x"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
            },
            "app=x,tier in (a,b)",
        ),
        (
            {
                "matchExpressions": [
                    {"key": "z", "operator": "Exists"},
                    {"key": "b", "operator": "DoesNotExist"},
                    {"key": "a", "operator": "NotIn", "values": ["q"]},
                ]
            },
            "a notin (q),!b,z",
        ),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        ({}, "<none>"),
        ({"matchLabels": {}}, "<none>"),
        (None, "<none>"),
        ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, "<error>"),
    ],
)
def test_selector_to_string(sel: dict[str, Any] | None, text: str) -> None:
    assert selector_to_string(sel) == text


def test_selector_to_string_for_scale() -> None:
    assert selector_to_string({}, empty="") == ""
    assert selector_to_string({"matchLabels": {"app": "x"}}, empty="") == "app=x"


def test_string_form_round_trips_through_parser() -> None:
    obj = {
        "matchLabels": {"app": "x"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "env", "operator": "NotIn", "values": ["prod", "dev"]},
            {"key": "k", "operator": "Exists"},
            {"key": "gone", "operator": "DoesNotExist"},
        ],
    }
    assert parse_label_selector(selector_to_string(obj)) == from_label_selector_object(obj)


# --------------------------------------------------------------------------------------------------------------------
# field selectors
# --------------------------------------------------------------------------------------------------------------------


def _pod(**kw: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {"nodeName": "node-a", "restartPolicy": "Always", "schedulerName": "default-scheduler"},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]},
    }
    pod.update(kw)
    return pod


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        (",,", True),
        ("metadata.name=web-1", True),
        ("metadata.name==web-1", True),
        ("metadata.name!=web-1", False),
        ("metadata.namespace=default", True),
        ("metadata.namespace!=kube-system", True),
        ("spec.nodeName=node-a,status.phase=Running", True),
        ("spec.nodeName=node-a,status.phase!=Running", False),
        ("spec.nodeName=", False),
        ("spec.host=node-a", True),
        ("spec.restartPolicy=Always", True),
        ("spec.schedulerName=default-scheduler", True),
        ("spec.serviceAccountName=", True),
        ("spec.hostNetwork=false", True),
        ("spec.hostNetwork=true", False),
        ("status.podIP=10.0.0.5", True),
        ("status.nominatedNodeName=", True),
    ],
)
def test_pod_field_selectors(text: str, expected: bool) -> None:
    assert parse_field_selector(text, PODS).matches(_pod()) is expected


def test_pod_field_values_read_like_upstream() -> None:
    host_net = _pod(spec={"hostNetwork": True, "serviceAccountName": "builder"})
    assert parse_field_selector("spec.hostNetwork=true", PODS).matches(host_net)
    assert parse_field_selector("spec.serviceAccountName=builder", PODS).matches(host_net)
    # status.podIP is read from podIPs[0], as upstream's selectable fields do
    assert parse_field_selector("status.podIP=10.1.1.1", PODS).matches(_pod(status={"podIPs": [{"ip": "10.1.1.1"}]}))
    unscheduled = _pod(spec={}, status={})
    assert parse_field_selector("spec.nodeName=", PODS).matches(unscheduled)
    assert parse_field_selector("status.podIP=", PODS).matches(unscheduled)


def test_kind_specific_fields() -> None:
    node = {"metadata": {"name": "n1"}, "spec": {"unschedulable": True}}
    assert parse_field_selector("spec.unschedulable=true", NODES).matches(node)
    assert parse_field_selector("spec.unschedulable=false", NODES).matches({"metadata": {"name": "n2"}})
    ns = {"metadata": {"name": "dev"}, "status": {"phase": "Terminating"}}
    assert parse_field_selector("status.phase=Terminating", NAMESPACES).matches(ns)
    secret = {"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls"}
    assert parse_field_selector("type=kubernetes.io/tls", SECRETS).matches(secret)
    svc = {"metadata": {"name": "s", "namespace": "d"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10"}}
    assert parse_field_selector("spec.type=NodePort,spec.clusterIP=10.96.0.10", SERVICES).matches(svc)


def _core_event() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web-1.17", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "u-1", "apiVersion": "v1"},
        "reason": "Scheduled",
        "type": "Normal",
        "source": {"component": "default-scheduler"},
        "reportingComponent": "default-scheduler",
    }


def test_core_event_fields() -> None:
    ev = _core_event()
    sel = parse_field_selector(
        "involvedObject.kind=Pod,involvedObject.name=web-1,involvedObject.namespace=default,"
        "involvedObject.uid=u-1,reason=Scheduled,type=Normal,source=default-scheduler,"
        "reportingComponent=default-scheduler,involvedObject.fieldPath=",
        EVENTS,
    )
    assert sel.matches(ev)
    # "source" falls back to the reporting controller when source.component is empty
    ev2 = dict(ev, source={}, reportingComponent="kubelet")
    assert parse_field_selector("source=kubelet", EVENTS).matches(ev2)


def test_events_k8s_io_fields_map_to_stored_core_fields() -> None:
    sel = parse_field_selector(
        "regarding.kind=Pod,regarding.name=web-1,reportingController=default-scheduler", EVENTS_V1
    )
    assert [r.field for r in sel.requirements] == ["involvedObject.kind", "involvedObject.name", "reportingComponent"]
    assert sel.matches(_core_event())
    # the events.k8s.io shape of the same event matches too
    v1_shape = {
        "metadata": {"name": "web-1.17", "namespace": "default"},
        "regarding": {"kind": "Pod", "name": "web-1"},
        "reportingController": "default-scheduler",
    }
    assert sel.matches(v1_shape)
    assert _field_error("involvedObject.kind=Pod", EVENTS_V1) == "field label not supported: involvedObject.kind"
    assert _field_error("regarding.kind=Pod", EVENTS) == "field label not supported: regarding.kind"


def test_unsupported_field_messages() -> None:
    assert _field_error("foo=bar", PODS) == "field label not supported: foo"
    assert _field_error("spec.nodeName=a,status.podIPs=b", PODS) == "field label not supported: status.podIPs"
    assert _field_error("metadata.namespace=x", NODES) == "field label not supported: metadata.namespace"
    assert _field_error("spec.type=x", SECRETS) == "field label not supported: spec.type"
    default_msg = '"foo" is not a known field selector: only "metadata.name", "metadata.namespace"'
    assert _field_error("foo=bar", CONFIGMAPS) == default_msg
    # upstream's apps/v1 ReplicaSet registers no field-label conversion, so status.replicas is refused
    assert _field_error("status.replicas=0", REPLICASETS) == (
        '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    assert parse_field_selector("metadata.name=x", REPLICASETS).exact_name() == "x"


def test_field_syntax_errors_and_escapes() -> None:
    assert _field_error("metadata.name", CONFIGMAPS) == (
        "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
    )
    assert _field_error("metadata.name=a=b", CONFIGMAPS) == "invalid field selector: unescaped character in value: 61"
    assert _field_error("metadata.name=a\\q", CONFIGMAPS) == "invalid field selector: invalid escape sequence: \\q"
    assert _field_error("metadata.name=a\\", CONFIGMAPS) == "invalid field selector: invalid escape sequence: \\"
    sel = parse_field_selector("metadata.name=a\\,b\\=c\\\\d", CONFIGMAPS)
    assert sel.requirements[0].value == "a,b=c\\d"
    assert sel.matches({"metadata": {"name": "a,b=c\\d"}})
    assert str(sel) == "metadata.name=a\\,b\\=c\\\\d"


def test_exact_name() -> None:
    sel = parse_field_selector("metadata.name=web-1", PODS)
    assert sel.exact_name() == "web-1" and sel.only_exact_name
    sel = parse_field_selector("metadata.name=web-1,status.phase=Running", PODS)
    assert sel.exact_name() == "web-1" and not sel.only_exact_name
    assert parse_field_selector("metadata.name!=web-1", PODS).exact_name() is None
    assert parse_field_selector("", PODS).exact_name() is None
    assert parse_field_selector("", PODS).empty
    assert parse_field_selector("metadata.namespace=x", PODS).requires_exact("metadata.namespace") == "x"


def test_field_selector_defaults_and_supported_fields() -> None:
    assert FieldSelector.everything().matches({})
    assert "spec.nodeName" in supported_fields(PODS)
    assert supported_fields(CONFIGMAPS) == ["metadata.name", "metadata.namespace"]
    assert "regarding.kind" in supported_fields(EVENTS_V1)


# --------------------------------------------------------------------------------------------------------------------
# speed: selectors run over every object of a large list
# --------------------------------------------------------------------------------------------------------------------


def test_matching_10k_objects_is_fast() -> None:
    objs: list[dict[str, Any]] = [
        {
            "metadata": {"name": f"p{i}", "namespace": "default", "labels": {"app": f"a{i % 10}", "tier": "web"}},
            "spec": {"nodeName": f"n{i % 3}"},
            "status": {"phase": "Running"},
        }
        for i in range(10_000)
    ]
    ls = parse_label_selector("app in (a1,a2),tier=web,!canary")
    fs = parse_field_selector("spec.nodeName=n1,status.phase!=Failed", PODS)
    start = time.perf_counter()
    hits = [o for o in objs if ls.matches(o["metadata"].get("labels")) and fs.matches(o)]
    elapsed = time.perf_counter() - start
    assert len(hits) == sum(1 for i in range(10_000) if i % 10 in (1, 2) and i % 3 == 1)
    assert elapsed < 0.25  # typically ~10 ms; generous for slow CI machines
