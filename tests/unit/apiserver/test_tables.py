"""Tests for tinykube.apiserver.tables: the Table cells kubectl prints, per kind, against upstream's rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tinykube.api.resources import Resource, by_kind
from tinykube.apiserver.tables import columns_for, format_age, human_duration, parse_timestamp, to_table

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def ago(seconds: float) -> str:
    """An RFC 3339 timestamp ``seconds`` before NOW."""
    return datetime.fromtimestamp(NOW - seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def res(group: str, kind: str) -> Resource:
    r = by_kind(group, "v1", kind)
    assert r is not None
    return r


def cells(group: str, kind: str, obj: dict[str, Any]) -> list[Any]:
    table = to_table(res(group, kind), [obj], now=NOW)
    return list(table["rows"][0]["cells"])


def header(group: str, kind: str) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in columns_for(res(group, kind))]


def meta(name: str = "x", age: float = 60, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(age), "resourceVersion": "7", **extra}


# ---------------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (-1, "0s"),
        (0, "0s"),
        (0.9, "0s"),
        (1, "1s"),
        (59, "59s"),
        (60, "60s"),
        (119, "119s"),
        (120, "2m"),
        (130, "2m10s"),
        (5 * 60 + 10, "5m10s"),
        (9 * 60 + 59, "9m59s"),
        (10 * 60, "10m"),
        (10 * 60 + 30, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (8 * 3600, "8h"),
        (8 * 3600 + 30 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (7 * 86400 + 23 * 3600, "7d23h"),
        (8 * 86400, "8d"),
        (8 * 86400 + 5 * 3600, "8d"),
        (400 * 86400, "400d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (3 * 365 * 86400 + 100 * 86400, "3y100d"),
        (8 * 365 * 86400, "8y"),
        (10 * 365 * 86400 + 200 * 86400, "10y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (ago(0), "0s"),
        (ago(59), "59s"),
        (ago(2 * 60), "2m"),
        (ago(5 * 60 + 10), "5m10s"),
        (ago(3 * 3600), "3h"),
        (ago(2 * 86400), "2d"),
        (ago(400 * 86400), "400d"),
        ("2025-01-01T11:59:00.500000Z", "59s"),  # MicroTime
        ("2025-01-01T13:59:00+02:00", "60s"),  # offsets are honoured
        (None, "<unknown>"),
        ("", "<unknown>"),
        ("0001-01-01T00:00:00Z", "<unknown>"),  # Go's zero time
        ("not a time", "<unknown>"),
    ],
)
def test_format_age(ts: Any, expected: str) -> None:
    assert format_age(ts, NOW) == expected


def test_parse_timestamp() -> None:
    assert parse_timestamp("2025-01-01T12:00:00Z") == NOW
    assert parse_timestamp("2025-01-01T12:00:00") is None  # no zone: not RFC 3339
    assert parse_timestamp(12) is None


# ---------------------------------------------------------------------------------------------------- table shape


def test_table_envelope_and_include_object() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta("p"), "spec": {"containers": [{"name": "c"}]}}
    table = to_table(res("", "Pod"), [pod], now=NOW)
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "7"}  # single GET: the object's resourceVersion
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": pod["metadata"],
    }
    assert "conditions" not in table["rows"][0]
    assert to_table(res("", "Pod"), [pod], include_object="Object", now=NOW)["rows"][0]["object"] is pod
    assert to_table(res("", "Pod"), [pod], include_object="None", now=NOW)["rows"][0]["object"] is None
    assert to_table(res("", "Pod"), [pod], include_object="", now=NOW)["rows"][0]["object"]["kind"] == (
        "PartialObjectMetadata"
    )
    with pytest.raises(ValueError, match="unrecognized includeObject"):
        to_table(res("", "Pod"), [pod], include_object="Everything")


def test_list_metadata_and_no_headers() -> None:
    t = to_table(
        res("", "ConfigMap"),
        [],
        list_metadata={"resourceVersion": "42", "continue": "abc", "remainingItemCount": 0},
        now=NOW,
    )
    assert t["metadata"] == {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 0}
    assert t["rows"] == []
    t = to_table(res("", "ConfigMap"), [], list_metadata={"resourceVersion": "42", "continue": ""}, now=NOW)
    assert t["metadata"] == {"resourceVersion": "42"}
    assert to_table(res("", "ConfigMap"), [], no_headers=True)["columnDefinitions"] is None


def test_column_definitions_have_all_fields() -> None:
    for col in columns_for(res("", "Pod")):
        assert set(col) == {"name", "type", "format", "description", "priority"}
        assert col["description"]
    cols = columns_for(res("", "Pod"))
    assert cols[0] == {**cols[0], "name": "Name", "type": "string", "format": "name", "priority": 0}
    cols[0]["name"] = "mutated"
    assert columns_for(res("", "Pod"))[0]["name"] == "Name"  # callers get copies


@pytest.mark.parametrize(
    ("group", "kind", "expected"),
    [
        (
            "",
            "Pod",
            [
                ("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0),
                ("IP", 1), ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1),
            ],
        ),
        (
            "apps",
            "Deployment",
            [
                ("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0),
                ("Containers", 1), ("Images", 1), ("Selector", 1),
            ],
        ),
        (
            "apps",
            "ReplicaSet",
            [
                ("Name", 0), ("Desired", 0), ("Current", 0), ("Ready", 0), ("Age", 0),
                ("Containers", 1), ("Images", 1), ("Selector", 1),
            ],
        ),
        (
            "",
            "Service",
            [
                ("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0), ("Age", 0),
                ("Selector", 1),
            ],
        ),
        (
            "",
            "Node",
            [
                ("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0), ("Internal-IP", 1),
                ("External-IP", 1), ("OS-Image", 1), ("Kernel-Version", 1), ("Container-Runtime", 1),
            ],
        ),
        (
            "",
            "Event",
            [
                ("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1), ("Source", 1),
                ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1),
            ],
        ),
        ("", "Namespace", [("Name", 0), ("Status", 0), ("Age", 0)]),
        ("", "ConfigMap", [("Name", 0), ("Data", 0), ("Age", 0)]),
        ("", "Secret", [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]),
        ("", "ServiceAccount", [("Name", 0), ("Secrets", 0), ("Age", 0)]),
        ("", "Endpoints", [("Name", 0), ("Endpoints", 0), ("Age", 0)]),
        ("discovery.k8s.io", "EndpointSlice", [("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0),
                                               ("Age", 0)]),
        ("coordination.k8s.io", "Lease", [("Name", 0), ("Holder", 0), ("Age", 0)]),
    ],
)  # fmt: skip
def test_columns(group: str, kind: str, expected: list[tuple[str, int]]) -> None:
    assert header(group, kind) == expected
    table = to_table(res(group, kind), [{"metadata": meta()}], now=NOW)
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])  # wide cells always rendered


def test_name_column_formats() -> None:
    events = columns_for(res("", "Event"))
    assert [c["format"] for c in events if c["name"] == "Name"] == ["name"]
    assert header("events.k8s.io", "Event") == header("", "Event")


def test_column_types() -> None:
    types = {c["name"]: c["type"] for c in columns_for(res("apps", "ReplicaSet"))}
    assert types["Desired"] == types["Current"] == types["Ready"] == "integer"
    assert {c["name"]: c["type"] for c in columns_for(res("", "Pod"))}["Restarts"] == "string"


def test_unknown_kind_uses_default_table() -> None:
    custom = Resource("example.com", "v1", "Widget", "widgets", "widget", True)
    table = to_table(custom, [{"metadata": meta("w", age=3 * 3600)}], now=NOW)
    assert [(c["name"], c["type"], c["format"]) for c in table["columnDefinitions"]] == [
        ("Name", "string", "name"),
        ("Age", "date", ""),
    ]
    assert table["rows"][0]["cells"] == ["w", "3h"]


# ---------------------------------------------------------------------------------------------------- pods


def pod(
    *,
    phase: str = "Pending",
    containers: int = 1,
    statuses: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    node: str = "",
    reason: str = "",
    deleting: bool = False,
    **status_extra: Any,
) -> dict[str, Any]:
    m = meta("web", age=300)
    if deleting:
        m["deletionTimestamp"] = ago(1)
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)]}
    if init is not None:
        spec["initContainers"] = init
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase, **status_extra}
    if reason:
        status["reason"] = reason
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        status["conditions"] = conditions
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec, "status": status}


def running(name: str = "c0", restarts: int = 0, ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(60)}},
        **extra,
    }


def waiting(reason: str, name: str = "c0", restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}, **extra}


def terminated(name: str = "c0", reason: str = "", exit_code: int = 0, signal: int = 0) -> dict[str, Any]:
    t: dict[str, Any] = {"exitCode": exit_code, "finishedAt": ago(30)}
    if reason:
        t["reason"] = reason
    if signal:
        t["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": t}}


READY = {"type": "Ready", "status": "True"}
INITIALIZED = {"type": "Initialized", "status": "True"}


@pytest.mark.parametrize(
    ("p", "ready", "status"),
    [
        (pod(), "0/1", "Pending"),
        (pod(reason="Evicted", phase="Failed"), "0/1", "Evicted"),
        (pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
         "0/1", "SchedulingGated"),
        (pod(node="n1", statuses=[waiting("ContainerCreating")]), "0/1", "ContainerCreating"),
        (pod(node="n1", statuses=[waiting("ImagePullBackOff")]), "0/1", "ImagePullBackOff"),
        (pod(node="n1", statuses=[waiting("ErrImagePull")]), "0/1", "ErrImagePull"),
        (pod(phase="Running", node="n1", statuses=[waiting("CrashLoopBackOff", restarts=3)]),
         "0/1", "CrashLoopBackOff"),
        (pod(phase="Running", node="n1", statuses=[running()]), "1/1", "Running"),
        (pod(phase="Running", node="n1", statuses=[running(ready=False)]), "0/1", "Running"),
        (pod(phase="Running", containers=2, statuses=[running("c0"), running("c1", ready=False)]), "1/2", "Running"),
        (pod(phase="Succeeded", statuses=[terminated(reason="Completed")]), "0/1", "Completed"),
        (pod(phase="Failed", statuses=[terminated(reason="Error", exit_code=1)]), "0/1", "Error"),
        (pod(phase="Failed", statuses=[terminated(exit_code=137)]), "0/1", "ExitCode:137"),
        (pod(phase="Failed", statuses=[terminated(exit_code=0, signal=9)]), "0/1", "Signal:9"),
        (pod(phase="Running", statuses=[running()], deleting=True), "1/1", "Terminating"),
        (pod(phase="Succeeded", statuses=[terminated(reason="Completed")], deleting=True), "0/1", "Completed"),
        (pod(phase="Running", reason="NodeLost", statuses=[running()], deleting=True), "1/1", "Unknown"),
        # One container completed, another still running: Running if the pod is Ready, else NotReady.
        (pod(phase="Running", containers=2, statuses=[running("c0"), terminated("c1", reason="Completed")],
             conditions=[READY]), "1/2", "Running"),
        (pod(phase="Running", containers=2, statuses=[running("c0"), terminated("c1", reason="Completed")]),
         "1/2", "NotReady"),
        # Containers are walked last to first, so the first container's state wins.
        (pod(phase="Pending", containers=2, statuses=[waiting("ErrImagePull", "c0"), waiting("ContainerCreating", "c1")]),
         "0/2", "ErrImagePull"),
    ],
)  # fmt: skip
def test_pod_ready_and_status(p: dict[str, Any], ready: str, status: str) -> None:
    c = cells("", "Pod", p)
    assert (c[1], c[2]) == (ready, status)


INIT = [{"name": "i0", "image": "busybox"}, {"name": "i1", "image": "busybox"}]


@pytest.mark.parametrize(
    ("init_statuses", "status"),
    [
        ([waiting("PodInitializing", "i0"), waiting("PodInitializing", "i1")], "Init:0/2"),
        ([terminated("i0", reason="Completed"), running("i1", ready=False)], "Init:1/2"),
        ([waiting("CrashLoopBackOff", "i0")], "Init:CrashLoopBackOff"),
        ([terminated("i0", reason="Error", exit_code=1)], "Init:Error"),
        ([terminated("i0", exit_code=2)], "Init:ExitCode:2"),
        ([terminated("i0", exit_code=1, signal=15)], "Init:Signal:15"),
        ([terminated("i0", reason="Completed"), terminated("i1", reason="Completed")], "PodInitializing"),
    ],
)
def test_pod_init_containers(init_statuses: list[dict[str, Any]], status: str) -> None:
    p = pod(init=INIT, init_statuses=init_statuses, statuses=[waiting("PodInitializing")])
    c = cells("", "Pod", p)
    assert c[1] == "0/1"
    assert c[2] == status


def test_pod_sidecar_init_container() -> None:
    init = [{"name": "side", "image": "envoy", "restartPolicy": "Always"}, {"name": "setup", "image": "busybox"}]
    side_running = running("side", restarts=2, started=True)
    side_running["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(120)}}
    # Sidecar started, regular init container still running: Init:1/2 and the sidecar counts as ready.
    p = pod(
        init=init, init_statuses=[side_running, running("setup", ready=False)], statuses=[waiting("PodInitializing")]
    )
    c = cells("", "Pod", p)
    assert c[1:4] == ["1/2", "Init:1/2", "2 (2m ago)"]
    # Initialized: sidecar restarts are kept, other init restarts are dropped, app containers add theirs.
    done = terminated("setup", reason="Completed")
    done["restartCount"] = 5
    p = pod(
        phase="Running",
        init=init,
        init_statuses=[side_running, done],
        statuses=[running(restarts=1)],
        conditions=[INITIALIZED, READY],
    )
    c = cells("", "Pod", p)
    assert c[1:4] == ["2/2", "Running", "3 (2m ago)"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([running()], "0"),
        ([running(restarts=4)], "4"),  # restarted, but no lastState: no "ago"
        ([running(restarts=4, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(5 * 60 + 10)}})],
         "4 (5m10s ago)"),
        ([running(restarts=1, lastState={"terminated": {"exitCode": 1}})], "1"),  # no finishedAt
        ([running("c0", restarts=1, lastState={"terminated": {"finishedAt": ago(3 * 3600)}}),
          running("c1", restarts=2, lastState={"terminated": {"finishedAt": ago(90)}})], "3 (90s ago)"),
    ],
)  # fmt: skip
def test_pod_restarts(statuses: list[dict[str, Any]], expected: str) -> None:
    p = pod(phase="Running", containers=len(statuses), statuses=statuses)
    assert cells("", "Pod", p)[3] == expected


def test_pod_wide_cells() -> None:
    p = pod(phase="Running", node="n1", statuses=[running()], podIPs=[{"ip": "10.0.0.5"}, {"ip": "fd00::5"}])
    assert cells("", "Pod", p)[4:] == ["5m", "10.0.0.5", "n1", "<none>", "<none>"]
    p = pod(
        phase="Running",
        podIP="10.0.0.6",
        nominatedNodeName="n2",
        conditions=[{"type": "example.com/gate", "status": "True"}, {"type": "other", "status": "False"}],
    )
    p["spec"]["readinessGates"] = [
        {"conditionType": "example.com/gate"},
        {"conditionType": "other"},
        {"conditionType": "missing"},
    ]
    assert cells("", "Pod", p)[5:] == ["10.0.0.6", "<none>", "n2", "1/3"]  # fmt: skip


def test_pod_row_conditions() -> None:
    succeeded = to_table(res("", "Pod"), [pod(phase="Succeeded")], now=NOW)["rows"][0]
    failed = to_table(res("", "Pod"), [pod(phase="Failed")], now=NOW)["rows"][0]
    assert [(c["type"], c["status"], c["reason"]) for c in succeeded["conditions"]] == [
        ("Completed", "True", "Succeeded")
    ]
    assert failed["conditions"][0]["reason"] == "Failed"


def test_pod_with_nothing_set() -> None:
    assert cells("", "Pod", {"metadata": {"name": "bare"}}) == [
        "bare", "0/0", "", "0", "<unknown>", "<none>", "<none>", "<none>", "<none>",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------- workloads


def deployment(replicas: int | None, **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
        "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                             {"name": "log", "image": "fluentd"}]}},
    }  # fmt: skip
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": meta("web", age=7200), "spec": spec, "status": status}


def test_deployment() -> None:
    d = deployment(3, readyReplicas=2, updatedReplicas=3, availableReplicas=2)
    assert cells("apps", "Deployment", d) == ["web", "2/3", 3, 2, "120m", "web,log", "nginx:1.27,fluentd",
                                               "app=web,tier=fe"]  # fmt: skip
    assert cells("apps", "Deployment", deployment(None))[1:4] == ["0/1", 0, 0]
    assert cells("apps", "Deployment", deployment(0))[1] == "0/0"


@pytest.mark.parametrize(
    ("selector", "deployment_cell", "replicaset_cell"),
    [
        (None, "", "<none>"),
        ({}, "", "<none>"),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", "a=1,b=2"),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "zone", "operator": "NotIn", "values": ["b"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "tier", "operator": "Exists"},
                ],
            },
            "app=web,!canary,env in (dev,prod),tier,zone notin (b)",
            "app=web,!canary,env in (dev,prod),tier,zone notin (b)",
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, "<invalid>", "<error>"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "<invalid>", "<error>"),
    ],
)
def test_selectors(selector: Any, deployment_cell: str, replicaset_cell: str) -> None:
    d = deployment(1)
    d["spec"]["selector"] = selector
    assert cells("apps", "Deployment", d)[7] == deployment_cell
    assert cells("apps", "ReplicaSet", d)[7] == replicaset_cell


def test_replicaset() -> None:
    rs = deployment(3)
    rs["status"] = {"replicas": 3, "readyReplicas": 1}
    assert cells("apps", "ReplicaSet", rs) == ["web", 3, 3, 1, "120m", "web,log", "nginx:1.27,fluentd",
                                               "app=web,tier=fe"]  # fmt: skip
    assert cells("apps", "ReplicaSet", deployment(None))[1:4] == [1, 0, 0]


# ---------------------------------------------------------------------------------------------------- services


def service(svc_type: str | None, ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], **spec}
    if svc_type is not None:
        s["type"] = svc_type
    if ports is not None:
        s["ports"] = ports
    return {"metadata": meta("svc", age=59), "spec": s}


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ([{"port": 80, "protocol": "TCP"}], "80/TCP"),
        ([{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}], "80:30080/TCP,443/TCP"),
        ([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}], "53/UDP,53/TCP"),
        ([{"port": 8080}], "8080/TCP"),
        ([], "<none>"),
        (None, "<none>"),
    ],
)  # fmt: skip
def test_service_ports(ports: list[dict[str, Any]] | None, expected: str) -> None:
    assert cells("", "Service", service("ClusterIP", ports))[4] == expected


@pytest.mark.parametrize(
    ("svc", "external"),
    [
        (service("ClusterIP"), "<none>"),
        (service("ClusterIP", externalIPs=["1.2.3.4", "5.6.7.8"]), "1.2.3.4,5.6.7.8"),
        (service("NodePort"), "<none>"),
        (service("LoadBalancer"), "<pending>"),
        (service("ExternalName", externalName="db.example.com"), "db.example.com"),
        (service(None), "<unknown>"),
    ],
)
def test_service_external_ip(svc: dict[str, Any], external: str) -> None:
    assert cells("", "Service", svc)[3] == external


def test_service_load_balancer_ingress() -> None:
    svc = service("LoadBalancer", externalIPs=["9.9.9.9"])
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "5.5.5.5"}, {"hostname": "lb.example.com"},
                                                  {"ip": "1.1.1.1"}, {"ip": "5.5.5.5"}]}}  # fmt: skip
    assert cells("", "Service", svc)[3] == "1.1.1.1,5.5.5.5,lb.example.com,9.9.9.9"
    del svc["spec"]["externalIPs"]
    assert cells("", "Service", svc)[3] == "1.1.1.1,5.5.5.5,lb.example.com"  # wide: never clipped


def test_service_row() -> None:
    svc = service("NodePort", [{"port": 80, "nodePort": 30080, "protocol": "TCP"}], selector={"app": "web"})
    assert cells("", "Service", svc) == ["svc", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP", "59s", "app=web"]
    headless = service("ClusterIP", [], clusterIP="None", clusterIPs=["None"])
    assert cells("", "Service", headless)[2:] == ["None", "<none>", "<none>", "59s", "<none>"]
    bare = {"metadata": meta("old"), "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1"}}
    assert cells("", "Service", bare)[2] == "10.0.0.1"  # clusterIPs unset: falls back to clusterIP


# ---------------------------------------------------------------------------------------------------- endpoints


def subset(ips: list[str], ports: list[int]) -> dict[str, Any]:
    return {"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": p, "protocol": "TCP"} for p in ports]}


@pytest.mark.parametrize(
    ("subsets", "expected"),
    [
        (None, "<none>"),
        ([], "<none>"),
        ([subset(["10.0.0.1"], [80])], "10.0.0.1:80"),
        ([subset(["10.0.0.1", "10.0.0.2"], [80])], "10.0.0.1:80,10.0.0.2:80"),
        ([subset(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], [80])],
         "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."),
        ([subset(["10.0.0.1", "10.0.0.2"], [80, 443])], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."),
        ([subset(["10.0.0.1", "10.0.0.2"], [80]), subset(["10.0.1.1", "10.0.1.2"], [81])],
         "10.0.0.1:80,10.0.0.2:80,10.0.1.1:81 + 1 more..."),
        ([subset(["10.0.0.1", "10.0.0.2"], [])], "10.0.0.1,10.0.0.2"),
        ([subset(["fd00::1"], [80])], "[fd00::1]:80"),
        ([{"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}], ""),
    ],
)  # fmt: skip
def test_endpoints(subsets: Any, expected: str) -> None:
    assert cells("", "Endpoints", {"metadata": meta("svc"), "subsets": subsets}) == ["svc", expected, "60s"]


@pytest.mark.parametrize(
    ("ports", "endpoints", "ports_cell", "endpoints_cell"),
    [
        ([], [], "<unset>", "<unset>"),
        ([{"port": 80, "name": "http"}], [{"addresses": ["10.0.0.1"]}], "80", "10.0.0.1"),
        ([{"name": "http"}, {}], [{"addresses": ["10.0.0.1", "10.0.0.2"]}], "http,*", "10.0.0.1,10.0.0.2"),
        ([{"port": p} for p in (1, 2, 3, 4, 5)],
         [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)],
         "1,2,3 + 2 more...", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..."),
    ],
)  # fmt: skip
def test_endpointslice(ports: list[Any], endpoints: list[Any], ports_cell: str, endpoints_cell: str) -> None:
    obj = {"metadata": meta("svc-abc"), "addressType": "IPv4", "ports": ports, "endpoints": endpoints}
    assert cells("discovery.k8s.io", "EndpointSlice", obj) == ["svc-abc", "IPv4", ports_cell, endpoints_cell, "60s"]


# ---------------------------------------------------------------------------------------------------- nodes


def node(conditions: list[dict[str, Any]] | None, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {**meta("n1", age=2 * 86400 + 3 * 3600), "labels": labels or {}},
        "spec": spec,
        "status": {
            "conditions": conditions or [],
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "172.18.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                         "containerRuntimeVersion": "containerd://1.7.0"},
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("n", "status"),
    [
        (node([{"type": "Ready", "status": "True"}]), "Ready"),
        (node([{"type": "Ready", "status": "False"}]), "NotReady"),
        (node([{"type": "Ready", "status": "Unknown"}]), "NotReady"),
        (node([{"type": "MemoryPressure", "status": "False"}]), "Unknown"),
        (node(None), "Unknown"),
        (node([{"type": "Ready", "status": "True"}], unschedulable=True), "Ready,SchedulingDisabled"),
        (node(None, unschedulable=True), "Unknown,SchedulingDisabled"),
    ],
)
def test_node_status(n: dict[str, Any], status: str) -> None:
    assert cells("", "Node", n)[1] == status


def test_node_roles_and_wide() -> None:
    ready = [{"type": "Ready", "status": "True"}]
    labels = {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x",
              "kubernetes.io/role": "master", "node-role.kubernetes.io/worker": "true"}  # fmt: skip
    assert cells("", "Node", node(ready, labels)) == [
        "n1", "Ready", "control-plane,master,worker", "2d3h", "v1.32.0",
        "172.18.0.2", "<none>", "Debian GNU/Linux 12", "6.1.0", "containerd://1.7.0",
    ]  # fmt: skip
    assert cells("", "Node", node(ready, {"kubernetes.io/role": ""}))[2] == "<none>"
    bare = cells("", "Node", {"metadata": meta("n2")})
    assert bare == ["n2", "Unknown", "<none>", "60s", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]


# ---------------------------------------------------------------------------------------------------- simple kinds


def test_simple_kinds() -> None:
    assert cells("", "Namespace", {"metadata": meta("dev"), "status": {"phase": "Active"}}) == ["dev", "Active", "60s"]
    assert cells("", "Namespace", {"metadata": meta("new")}) == ["new", "", "60s"]
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert cells("", "ConfigMap", cm) == ["cfg", 3, "60s"]
    assert cells("", "ConfigMap", {"metadata": meta("empty")}) == ["empty", 0, "60s"]
    secret = {"metadata": meta("tok"), "type": "kubernetes.io/service-account-token", "data": {"token": "eA==",
              "ca.crt": "eA=="}}  # fmt: skip
    assert cells("", "Secret", secret) == ["tok", "kubernetes.io/service-account-token", 2, "60s"]
    assert cells("", "Secret", {"metadata": meta("s"), "type": "Opaque"}) == ["s", "Opaque", 0, "60s"]
    sa = {"metadata": meta("default"), "secrets": [{"name": "a"}]}
    assert cells("", "ServiceAccount", sa) == ["default", 1, "60s"]
    assert cells("", "ServiceAccount", {"metadata": meta("b")}) == ["b", 0, "60s"]
    lease = {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "host_1234"}}
    assert cells("coordination.k8s.io", "Lease", lease) == ["kube-scheduler", "host_1234", "60s"]
    assert cells("coordination.k8s.io", "Lease", {"metadata": meta("l"), "spec": {}}) == ["l", "", "60s"]


# ---------------------------------------------------------------------------------------------------- events


def core_event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": meta("web.17f1"),
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default",
                           "fieldPath": "spec.containers{web}"},
        "reason": "Pulled",
        "message": "  Successfully pulled image \"nginx\"\n",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": ago(3 * 3600),
        "lastTimestamp": ago(5 * 60 + 10),
        "count": 4,
    }  # fmt: skip
    base.update(fields)
    return base


def test_core_event() -> None:
    assert cells("", "Event", core_event()) == [
        "5m10s", "Normal", "Pulled", "pod/web", "spec.containers{web}", "kubelet, n1",
        'Successfully pulled image "nginx"', "3h", 4, "web.17f1",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "last_seen", "first_seen", "count"),
    [
        ({"lastTimestamp": None}, "3h", "3h", 4),
        ({"firstTimestamp": None, "lastTimestamp": None, "eventTime": "2025-01-01T11:59:30.123456Z"}, "29s", "29s", 4),
        ({"firstTimestamp": None, "lastTimestamp": None}, "<unknown>", "<unknown>", 4),
        ({"count": 0}, "5m10s", "3h", 1),
        ({"count": None}, "5m10s", "3h", 1),
        ({"series": {"count": 9, "lastObservedTime": "2025-01-01T11:59:00.000000Z"}}, "60s", "3h", 9),
    ],
)  # fmt: skip
def test_event_times_and_count(fields: dict[str, Any], last_seen: str, first_seen: str, count: int) -> None:
    c = cells("", "Event", core_event(**fields))
    assert (c[0], c[7], c[8]) == (last_seen, first_seen, count)


@pytest.mark.parametrize(
    ("fields", "target", "source"),
    [
        ({"involvedObject": {"kind": "Node"}}, "node", "kubelet, n1"),
        ({"involvedObject": {"kind": "ReplicaSet", "name": "web-5d"}}, "replicaset/web-5d", "kubelet, n1"),
        ({"source": {"component": "kubelet"}}, "pod/web", "kubelet"),
        ({"source": {}, "reportingController": "default-scheduler", "reportingInstance": "sched-1"},
         "pod/web", "default-scheduler, sched-1"),
        ({"source": {}}, "pod/web", ""),
    ],
)  # fmt: skip
def test_event_target_and_source(fields: dict[str, Any], target: str, source: str) -> None:
    c = cells("", "Event", core_event(**fields))
    assert (c[3], c[5]) == (target, source)


def test_events_k8s_io_event_maps_fields() -> None:
    ev = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": meta("web.17f2"),
        "eventTime": "2025-01-01T11:50:00.000000Z",
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-cp",
        "action": "Binding",
        "reason": "Scheduled",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "note": "Successfully assigned default/web to n1",
        "type": "Normal",
    }
    assert cells("events.k8s.io", "Event", ev) == [
        "10m", "Normal", "Scheduled", "pod/web", "", "default-scheduler, default-scheduler-cp",
        "Successfully assigned default/web to n1", "10m", 1, "web.17f2",
    ]  # fmt: skip
    legacy = {**ev, "deprecatedSource": {"component": "kubelet", "host": "n1"}, "deprecatedCount": 3,
              "deprecatedFirstTimestamp": ago(3 * 3600), "deprecatedLastTimestamp": ago(120)}  # fmt: skip
    c = cells("events.k8s.io", "Event", legacy)
    assert (c[0], c[5], c[7], c[8]) == ("2m", "kubelet, n1", "3h", 3)
    # The core printer reads the same object the same way (both resources share storage).
    assert cells("", "Event", legacy) == c


# ---------------------------------------------------------------------------------------------------- many rows


def test_many_rows_keep_order_and_default_now() -> None:
    pods = [pod(phase="Running", statuses=[running()]) for _ in range(3)]
    for i, p in enumerate(pods):
        p["metadata"]["name"] = f"p{i}"
    table = to_table(res("", "Pod"), pods, list_metadata={"resourceVersion": "100"})
    assert [r["cells"][0] for r in table["rows"]] == ["p0", "p1", "p2"]
    assert table["metadata"] == {"resourceVersion": "100"}
    # Without ``now`` the age is measured against the real clock (long after NOW), not NOW.
    assert table["rows"][0]["cells"][4] not in ("5m", "<unknown>")
