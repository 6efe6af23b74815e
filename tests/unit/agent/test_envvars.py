"""Container environment, command line and working directory, as the kubelet and its runtime build them."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tinykube.agent.envvars import (
    ContainerConfigError,
    SkippedKeys,
    command_line,
    container_env,
    expand,
    field_ref_value,
    format_map,
    generated_env,
    pod_hostname,
    service_env,
    working_dir,
)


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class FakeLookup:
    def __init__(self, configmaps: dict[tuple[str, str], dict[str, Any]] | None = None,
                 secrets: dict[tuple[str, str], dict[str, Any]] | None = None,
                 services: list[dict[str, Any]] | None = None) -> None:
        self.configmaps = configmaps or {}
        self.secrets = secrets or {}
        self.svcs = services or []
        self.calls: list[tuple[str, str, str]] = []

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("configmap", namespace, name))
        return self.configmaps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("secret", namespace, name))
        return self.secrets.get((namespace, name))

    def services(self, namespace: str) -> list[dict[str, Any]]:
        return [s for s in self.svcs if s["metadata"]["namespace"] == namespace]


def svc(name: str, ns: str, ip: str | None, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports if ports is not None else [{"port": 80, "protocol": "TCP"}]}
    if ip is not None:
        spec["clusterIP"] = ip
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def make_pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    ctr = {"name": "app", "image": "img"} | (container or {})
    return {
        "metadata": {"name": "web-0", "namespace": "prod", "uid": "u-123",
                     "labels": {"app": "web", "tier": "front"}, "annotations": {"note": 'say "hi"\n'}},
        "spec": {"containers": [ctr], "nodeName": "node-a", "serviceAccountName": "builder"} | spec,
    }


def gen(pod: dict[str, Any], lookup: FakeLookup | None = None, **kw: Any) -> dict[str, str]:
    return dict(generated_env(pod, pod["spec"]["containers"][0], lookup or FakeLookup(), pod_ip="10.1.0.5",
                              host_ip="192.168.0.2", node_name="node-a", **kw))


# ------------------------------------------------------------------------------------------- expand


@pytest.mark.parametrize(("text", "want"), [
    ("$(A)", "a"),
    ("x-$(A)-$(B)-y", "x-a-bee-y"),
    ("$$(A)", "$(A)"),
    ("$$$(A)", "$a"),
    ("$$$$", "$$"),
    ("$(UNKNOWN)", "$(UNKNOWN)"),
    ("$A", "$A"),
    ("cost: 5$", "cost: 5$"),
    ("$(A", "$(A"),
    ("$()", "$()"),
    ("$($(A)", "$($(A)"),
    ("$(EMPTY)|", "|"),
    ("no refs", "no refs"),
])
def test_expand(text: str, want: str) -> None:
    assert expand(text, {"A": "a", "B": "bee", "EMPTY": ""}) == want


# ------------------------------------------------------------------------------------------- service links


def test_service_env_names_and_values() -> None:
    env = service_env([svc("redis-master", "prod", "10.0.0.11", [{"port": 6379}])])
    assert env == [
        ("REDIS_MASTER_SERVICE_HOST", "10.0.0.11"),
        ("REDIS_MASTER_SERVICE_PORT", "6379"),
        ("REDIS_MASTER_PORT", "tcp://10.0.0.11:6379"),
        ("REDIS_MASTER_PORT_6379_TCP", "tcp://10.0.0.11:6379"),
        ("REDIS_MASTER_PORT_6379_TCP_PROTO", "tcp"),
        ("REDIS_MASTER_PORT_6379_TCP_PORT", "6379"),
        ("REDIS_MASTER_PORT_6379_TCP_ADDR", "10.0.0.11"),
    ]


def test_service_env_named_ports_protocols_and_odd_names() -> None:
    env = dict(service_env([svc("9lives.db", "prod", "10.0.0.7", [
        {"name": "sql", "port": 5432, "protocol": "TCP"},
        {"name": "metrics-udp", "port": 9000, "protocol": "UDP"},
    ])]))
    assert env["_9LIVES_DB_SERVICE_PORT"] == "5432"  # the first port, named or not
    assert env["_9LIVES_DB_SERVICE_PORT_SQL"] == "5432"
    assert env["_9LIVES_DB_SERVICE_PORT_METRICS_UDP"] == "9000"
    assert env["_9LIVES_DB_PORT"] == "tcp://10.0.0.7:5432"
    assert env["_9LIVES_DB_PORT_9000_UDP"] == "udp://10.0.0.7:9000"
    assert env["_9LIVES_DB_PORT_9000_UDP_PROTO"] == "udp"


def test_service_env_ipv6_cluster_ip_is_bracketed() -> None:
    env = dict(service_env([svc("v6", "prod", "fd00::10", [{"port": 443}])]))
    assert env["V6_SERVICE_HOST"] == "fd00::10"
    assert env["V6_PORT"] == "tcp://[fd00::10]:443"
    assert env["V6_PORT_443_TCP_ADDR"] == "fd00::10"


def test_service_links_scope() -> None:
    lookup = FakeLookup(services=[
        svc("kubernetes", "default", "10.0.0.1", [{"name": "https", "port": 443}]),
        svc("other-default", "default", "10.0.0.2"),
        svc("db", "prod", "10.0.0.3"),
        svc("headless", "prod", "None"),
        svc("external", "prod", None),
        svc("elsewhere", "staging", "10.0.0.4"),
    ])
    env = gen(make_pod(), lookup)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["DB_SERVICE_HOST"] == "10.0.0.3"
    for absent in ("OTHER_DEFAULT_SERVICE_HOST", "HEADLESS_SERVICE_HOST", "EXTERNAL_SERVICE_HOST",
                   "ELSEWHERE_SERVICE_HOST"):
        assert absent not in env

    # enableServiceLinks: false keeps only the master service
    off = gen(make_pod(enableServiceLinks=False), lookup)
    assert off["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
    assert "DB_SERVICE_HOST" not in off
    # the keyword argument overrides the pod's field
    assert "DB_SERVICE_HOST" in gen(make_pod(enableServiceLinks=False), lookup, enable_service_links=True)
    assert "DB_SERVICE_HOST" not in gen(make_pod(), lookup, enable_service_links=False)


def test_pod_namespace_kubernetes_service_wins_over_default_one() -> None:
    lookup = FakeLookup(services=[svc("kubernetes", "default", "10.0.0.1"), svc("kubernetes", "prod", "10.9.9.9")])
    assert gen(make_pod(), lookup)["KUBERNETES_SERVICE_HOST"] == "10.9.9.9"
    assert gen(make_pod(enableServiceLinks=False), lookup)["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"


# ------------------------------------------------------------------------------------------- envFrom


def test_env_from_configmap_and_secret_with_prefix_and_precedence() -> None:
    lookup = FakeLookup(
        configmaps={("prod", "cfg"): {"data": {"MODE": "fast", "LEVEL": "3"}, "binaryData": {"BIN": b64("x")}}},
        secrets={("prod", "creds"): {"data": {"PASSWORD": b64("s3cr3t"), "MODE": b64("from-secret")}}},
        services=[svc("db", "prod", "10.0.0.3")],
    )
    pod = make_pod({
        "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "creds"}},
                    {"prefix": "CFG_", "configMapRef": {"name": "cfg"}}],
        "env": [{"name": "LEVEL", "value": "9"}, {"name": "DB_SERVICE_HOST", "value": "override"}],
    })
    env = gen(pod, lookup)
    assert env["PASSWORD"] == "s3cr3t"
    assert env["MODE"] == "from-secret"  # a later envFrom source overrides an earlier one
    assert env["CFG_MODE"] == "fast" and env["CFG_LEVEL"] == "3"
    assert env["LEVEL"] == "9"  # env overrides envFrom
    assert env["DB_SERVICE_HOST"] == "override"  # and service variables
    assert "BIN" not in env  # binaryData never becomes a variable
    # each object is fetched once per container start
    assert lookup.calls.count(("configmap", "prod", "cfg")) == 1


def test_env_from_missing_sources() -> None:
    pod = make_pod({"envFrom": [{"configMapRef": {"name": "cfg"}}]})
    with pytest.raises(ContainerConfigError) as err:
        gen(pod)
    assert str(err.value) == 'configmap "cfg" not found'
    assert err.value.reason == "CreateContainerConfigError"

    pod = make_pod({"envFrom": [{"secretRef": {"name": "s"}}]})
    with pytest.raises(ContainerConfigError, match=r'^secret "s" not found$'):
        gen(pod)

    pod = make_pod({"envFrom": [{"configMapRef": {"name": "cfg", "optional": True}},
                                {"secretRef": {"name": "s", "optional": True}}],
                    "env": [{"name": "A", "value": "1"}]})
    assert gen(pod) == {"A": "1"}


def test_env_from_invalid_keys_are_skipped_and_reported() -> None:
    lookup = FakeLookup(configmaps={("prod", "cfg"): {"data": {"1badkey": "x", "good": "y", "2alsobad": "z"}}},
                        secrets={("prod", "s"): {"data": {"ok.key": b64("v")}}})
    pod = make_pod({"envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "s"}}]})

    # relaxed names (the API's rule): nothing to skip
    skipped: list[SkippedKeys] = []
    env = gen(pod, lookup, skipped=skipped)
    assert env["1badkey"] == "x" and env["ok.key"] == "v"
    assert skipped == []

    # the historical strict rule drops names that start with a digit
    env = gen(pod, lookup, skipped=skipped, strict_names=True)
    assert "1badkey" not in env and "2alsobad" not in env
    assert env["good"] == "y" and env["ok.key"] == "v"
    assert skipped == [SkippedKeys("configMap", "prod", "cfg", ("1badkey", "2alsobad"))]
    assert skipped[0].reason == "InvalidEnvironmentVariableNames"
    assert skipped[0].message == ("Keys [1badkey, 2alsobad] from the EnvFrom configMap prod/cfg were skipped "
                                  "since they are considered invalid environment variable names.")

    # even relaxed, a name with '=' cannot be a variable
    pod = make_pod({"envFrom": [{"prefix": "P=", "secretRef": {"name": "s"}}]})
    skipped = []
    assert gen(pod, lookup, skipped=skipped) == {}
    assert skipped[0].kind == "secret" and skipped[0].keys == ("P=ok.key",)


# ------------------------------------------------------------------------------------------- env


def test_env_value_expansion_sees_only_what_is_defined_before() -> None:
    lookup = FakeLookup(configmaps={("prod", "cfg"): {"data": {"HOST": "db.local"}}},
                        services=[svc("api", "prod", "10.0.0.8", [{"port": 8080}])])
    pod = make_pod({
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [
            {"name": "URL", "value": "http://$(HOST):$(API_SERVICE_PORT)/$(LATER)"},
            {"name": "LATER", "value": "v1"},
            {"name": "ESCAPED", "value": "$$(HOST)"},
            {"name": "PATHY", "value": "$(PATH)"},  # image variables are not in the kubelet's mapping
            {"name": "SELF", "value": "a"},
            {"name": "SELF", "value": "$(SELF)b"},
            {"name": "EMPTY"},
        ],
    })
    env = gen(pod, lookup)
    assert env["URL"] == "http://db.local:8080/$(LATER)"
    assert env["ESCAPED"] == "$(HOST)"
    assert env["PATHY"] == "$(PATH)"
    assert env["SELF"] == "ab"
    assert env["EMPTY"] == ""


def test_field_refs() -> None:
    def ref(path: str) -> dict[str, Any]:
        return {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    fields = {
        "NAME": "metadata.name", "NS": "metadata.namespace", "UID": "metadata.uid",
        "APP": "metadata.labels['app']", "NOTE": "metadata.annotations['note']",
        "MISSING_LABEL": "metadata.labels['nope']",
        "NODE": "spec.nodeName", "SA": "spec.serviceAccountName",
        "POD_IP": "status.podIP", "POD_IPS": "status.podIPs", "HOST_IP": "status.hostIP", "HOST_IPS": "status.hostIPs",
        "LABELS": "metadata.labels",
    }
    pod = make_pod({"env": [{"name": k} | ref(v) for k, v in fields.items()]})
    env = dict(generated_env(pod, pod["spec"]["containers"][0], FakeLookup(), pod_ip="10.1.0.5",
                             host_ip="192.168.0.2", node_name="ignored", pod_ips=["10.1.0.5", "fd00::5"]))
    assert env["NAME"] == "web-0" and env["NS"] == "prod" and env["UID"] == "u-123"
    assert env["APP"] == "web"
    assert env["NOTE"] == 'say "hi"\n'
    assert env["MISSING_LABEL"] == ""
    assert env["NODE"] == "node-a"  # the pod's spec.nodeName
    assert env["SA"] == "builder"
    assert env["POD_IP"] == "10.1.0.5" and env["POD_IPS"] == "10.1.0.5,fd00::5"
    assert env["HOST_IP"] == "192.168.0.2" and env["HOST_IPS"] == "192.168.0.2"
    assert env["LABELS"] == 'app="web"\ntier="front"'


def test_node_name_falls_back_to_the_agent_node() -> None:
    pod = make_pod()
    del pod["spec"]["nodeName"]
    assert field_ref_value(pod, {"fieldPath": "spec.nodeName"}, node_name="node-b") == "node-b"


@pytest.mark.parametrize(("ref", "msg"), [
    ({"apiVersion": "v2", "fieldPath": "metadata.name"}, "unsupported pod version: v2"),
    ({"fieldPath": "spec.containers"}, "field label not supported: spec.containers"),
    ({"fieldPath": "spec.nodeName['x']"}, "field label does not support subscript: spec.nodeName['x']"),
    ({"fieldPath": "spec.restartPolicy"}, "unsupported fieldPath: spec.restartPolicy"),
    ({"fieldPath": "metadata.labels['bad key']"}, "invalid key subscript in metadata.labels['bad key']"),
])
def test_field_ref_errors(ref: dict[str, Any], msg: str) -> None:
    pod = make_pod({"env": [{"name": "X", "valueFrom": {"fieldRef": ref}}]})
    with pytest.raises(ContainerConfigError) as err:
        gen(pod)
    assert str(err.value).startswith(msg)
    assert err.value.reason == "CreateContainerConfigError"


def test_format_map_quotes_like_go() -> None:
    assert format_map({}) == ""
    assert format_map({"b": "2", "a": 'x"y\\z\tw\x01é'}) == 'a="x\\"y\\\\z\\tw\\x01é"\nb="2"'


def test_resource_field_refs() -> None:
    def rf(resource: str, divisor: str | None = None, container: str | None = None) -> dict[str, Any]:
        ref: dict[str, Any] = {"resource": resource}
        if divisor:
            ref["divisor"] = divisor
        if container:
            ref["containerName"] = container
        return {"valueFrom": {"resourceFieldRef": ref}}

    pod = make_pod({
        "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
        "env": [
            {"name": "CPU_LIMIT"} | rf("limits.cpu"),
            {"name": "CPU_LIMIT_M"} | rf("limits.cpu", "1m"),
            {"name": "MEM_LIMIT_MI"} | rf("limits.memory", "1Mi"),
            {"name": "MEM_LIMIT_GI"} | rf("limits.memory", "1Gi"),
            {"name": "MEM_LIMIT"} | rf("limits.memory"),
            {"name": "CPU_REQ_M"} | rf("requests.cpu", "1m"),
            {"name": "MEM_REQ"} | rf("requests.memory"),
            {"name": "EPH_LIMIT"} | rf("limits.ephemeral-storage", "1Gi"),
            {"name": "SIDE_CPU"} | rf("limits.cpu", "1m", "side"),
            {"name": "ZERO_DIV"} | rf("limits.cpu", "0"),
        ],
    })
    pod["spec"]["containers"].append({"name": "side", "resources": {"limits": {"cpu": "2"}}})
    env = gen(pod, node_allocatable={"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    assert env["CPU_LIMIT"] == "1"  # 0.25 rounded up
    assert env["CPU_LIMIT_M"] == "250"
    assert env["MEM_LIMIT_MI"] == "64"
    assert env["MEM_LIMIT_GI"] == "1"  # rounded up
    assert env["MEM_LIMIT"] == str(64 * 2**20)
    assert env["CPU_REQ_M"] == "100"
    assert env["MEM_REQ"] == "0"  # requests are never defaulted from the node
    assert env["EPH_LIMIT"] == "100"  # no limit: the node's allocatable
    assert env["SIDE_CPU"] == "2000"
    assert env["ZERO_DIV"] == "1"  # a zero divisor means 1

    # without node_allocatable an unset limit reads 0
    assert gen(pod)["EPH_LIMIT"] == "0"


def test_resource_field_ref_errors() -> None:
    pod = make_pod({"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]})
    with pytest.raises(ContainerConfigError, match=r"unsupported container resource : limits\.gpu"):
        gen(pod)
    pod = make_pod({"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                             "containerName": "ghost"}}}]})
    with pytest.raises(ContainerConfigError, match="container ghost not found"):
        gen(pod)


def test_key_refs() -> None:
    lookup = FakeLookup(configmaps={("prod", "cfg"): {"data": {"name": "alice"}, "binaryData": {"bin": b64("b")}}},
                        secrets={("prod", "s"): {"data": {"k": b64(b"\xffraw")}}})

    def one(env: list[dict[str, Any]]) -> dict[str, str]:
        return gen(make_pod({"env": env}), lookup)

    assert one([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "name"}}}]) == {"A": "alice"}
    assert one([{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])["S"].encode(
        "utf-8", "surrogateescape") == b"\xffraw"

    cases = [
        ({"configMapKeyRef": {"name": "cfg", "key": "nope"}}, "couldn't find key nope in ConfigMap prod/cfg"),
        ({"configMapKeyRef": {"name": "cfg", "key": "bin"}}, "couldn't find key bin in ConfigMap prod/cfg"),
        ({"configMapKeyRef": {"name": "gone", "key": "x"}}, 'configmap "gone" not found'),
        ({"secretKeyRef": {"name": "s", "key": "nope"}}, "couldn't find key nope in Secret prod/s"),
        ({"secretKeyRef": {"name": "gone", "key": "x"}}, 'secret "gone" not found'),
    ]
    for source, msg in cases:
        with pytest.raises(ContainerConfigError) as err:
            one([{"name": "X", "valueFrom": source}])
        assert str(err.value) == msg
        # optional: the variable is left out, so an earlier definition stays
        optional = {kind: ref | {"optional": True} for kind, ref in source.items()}
        assert one([{"name": "X", "value": "before"}, {"name": "X", "valueFrom": optional}]) == {"X": "before"}


# ------------------------------------------------------------------------------------------- container_env


def test_container_env_order_and_overrides() -> None:
    lookup = FakeLookup(services=[svc("kubernetes", "default", "10.0.0.1", [{"port": 443}])])
    pod = make_pod({"env": [{"name": "PATH", "value": "/custom"}, {"name": "A", "value": "1"}]})
    env = container_env(pod, pod["spec"]["containers"][0], ["PATH=/usr/bin", "LANG=C.UTF-8", "BROKEN"], lookup,
                        pod_ip="10.1.0.5", host_ip="192.168.0.2", node_name="node-a")
    names = [k for k, _ in env]
    assert names[:3] == ["HOSTNAME", "PATH", "LANG"]
    assert ("HOSTNAME", "web-0") in env
    assert ("PATH", "/custom") in env  # overridden, but at the image's position
    assert names.index("KUBERNETES_SERVICE_HOST") < names.index("A")  # services before the container's env
    assert names[-1] == "A"
    assert len(names) == len(set(names))
    assert "BROKEN" not in names


def test_hostname() -> None:
    pod = make_pod()
    env = dict(container_env(pod, pod["spec"]["containers"][0], ["HOSTNAME=image"], FakeLookup(),
                             pod_ip="", host_ip="", node_name="n"))
    assert env["HOSTNAME"] == "image"  # the image's ENV is laid over the runtime's value

    pod = make_pod({"env": [{"name": "HOSTNAME", "value": "mine"}]}, hostname="explicit")
    env = dict(container_env(pod, pod["spec"]["containers"][0], [], FakeLookup(), pod_ip="", host_ip="",
                             node_name="n"))
    assert env["HOSTNAME"] == "mine"

    assert pod_hostname(make_pod(hostname="explicit")) == "explicit"
    long_pod = make_pod()
    long_pod["metadata"]["name"] = "a" * 62 + "-b" + "c" * 10
    assert pod_hostname(long_pod) == "a" * 62  # cut to 63, trailing '-' dropped


# ------------------------------------------------------------------------------------------- command line


IMAGE = {"Entrypoint": ["/entry", "--flag"], "Cmd": ["serve", "--port=80"]}


@pytest.mark.parametrize(("container", "image", "want"), [
    ({}, IMAGE, ["/entry", "--flag", "serve", "--port=80"]),
    ({"command": ["/bin/sh"]}, IMAGE, ["/bin/sh"]),  # command drops Cmd
    ({"args": ["run"]}, IMAGE, ["/entry", "--flag", "run"]),  # args keep the entrypoint
    ({"command": ["/bin/sh"], "args": ["-c", "echo"]}, IMAGE, ["/bin/sh", "-c", "echo"]),
    ({}, {"Entrypoint": None, "Cmd": ["sh"]}, ["sh"]),
    ({}, {"Entrypoint": [""], "Cmd": ["sh"]}, ["sh"]),
    ({"args": ["x"]}, {"Entrypoint": None, "Cmd": ["sh"]}, ["x"]),
    ({"command": [], "args": []}, IMAGE, ["/entry", "--flag", "serve", "--port=80"]),
])
def test_command_line(container: dict[str, Any], image: dict[str, Any], want: list[str]) -> None:
    assert command_line(container, image, {}) == want


def test_command_line_expansion() -> None:
    env = {"NAME": "web", "PORT": "8080"}
    ctr = {"command": ["/bin/$(NAME)"], "args": ["--port=$(PORT)", "$$(PORT)", "$(NOPE)"]}
    assert command_line(ctr, {}, env) == ["/bin/web", "--port=8080", "$(PORT)", "$(NOPE)"]


def test_nothing_to_run() -> None:
    for image in ({}, {"Entrypoint": None, "Cmd": None}, {"Entrypoint": [""], "Cmd": []}):
        with pytest.raises(ContainerConfigError) as err:
            command_line({}, image, {})
        assert err.value.reason == "CreateContainerError"
        assert str(err.value) == "no command specified"


def test_working_dir() -> None:
    assert working_dir({"workingDir": "/app"}, {"WorkingDir": "/srv"}) == "/app"
    assert working_dir({}, {"WorkingDir": "/srv"}) == "/srv"
    assert working_dir({}, {"WorkingDir": ""}) == "/"
    assert working_dir({}, {}) == "/"
