"""The simulated kubelet's pod state machine, as pure functions of (plan, time)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from tinykube.api.meta import now_rfc3339
from tinykube.sim import lifecycle as L
from tinykube.sim.lifecycle import Timing

UID = "0f7e-uid"
T0 = 1_700_000_000.0


def pod(annotations: dict[str, str] | None = None, containers: list[dict[str, Any]] | None = None,
        **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"nodeName": "sim-node-0",
                         "containers": containers or [{"name": "app", "image": "nginx:1.27",
                                                       "imagePullPolicy": "IfNotPresent"}]}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "prod", "uid": UID, "annotations": annotations or {}},
            "spec": s,
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                       "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                       "lastTransitionTime": "2023-11-14T22:13:19Z"}]}}


def plan_of(p: dict[str, Any], timing: Timing | None = None, present: set[str] | None = None) -> L.Plan:
    return L.make_plan(p, timing or Timing(), present or set())


def main_state(plan: L.Plan, t: float, i: int = 0) -> L.CState:
    return L.snapshot(plan, t).main[i]


def reasons(evs: list[L.Event]) -> list[str]:
    return [e.reason for e in evs]


# -- small helpers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [("0.3", 0.3), ("2", 2.0), ("2s", 2.0), (" 1.5 ", 1.5), ("", 0.0),
                                       ("abc", 0.0), ("-3", 0.0), ("nan", 0.0), ("inf", 0.0)])
def test_parse_seconds(text: str, want: float) -> None:
    assert L.parse_seconds(text) == want


def test_parse_seconds_ignores_non_strings() -> None:
    assert L.parse_seconds(None) == 0.0 and L.parse_seconds(5) == 0.0


@pytest.mark.parametrize("seconds,want", [(0, "0s"), (0.2, "200ms"), (1, "1s"), (1.5, "1.5s"), (10, "10s"),
                                          (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (3661.25, "1h1m1.25s")])
def test_go_duration(seconds: float, want: str) -> None:
    assert L.go_duration(seconds) == want


@pytest.mark.parametrize("image,full", [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("team/app:v2", "docker.io/team/app:v2"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("nginx@sha256:abcd", "docker.io/library/nginx@sha256:abcd"),
])
def test_normalize_image(image: str, full: str) -> None:
    assert L.normalize_image(image) == full


def test_image_ids_are_stable_digests_of_the_repository() -> None:
    a = L.image_id("nginx:1.27")
    assert a.startswith("docker.io/library/nginx@sha256:") and len(a.split("sha256:")[1]) == 64
    assert L.image_id("nginx:1.27") == a and L.image_id("nginx:1.26") != a
    assert L.image_id("nginx@sha256:abcd") == "docker.io/library/nginx@sha256:abcd"


def test_timing_backoff_doubles_to_the_cap() -> None:
    t = Timing()
    assert [t.backoff(n) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert t.backoff(500) == 300
    with pytest.raises(ValueError):
        Timing(backoff_base=0)
    with pytest.raises(ValueError):
        Timing(backoff_base=10, backoff_max=5)


def test_plan_reads_annotations() -> None:
    p = pod({L.ANN_START: "1.5", L.ANN_READY: "2", L.ANN_NEVER_READY: "true", L.ANN_CRASH: "True",
             L.ANN_TERMINATE: "7", L.ANN_MISSING: "nginx:*, busybox"},
            containers=[{"name": "a", "image": "nginx:1.27"}, {"name": "b", "image": "redis:7"},
                        {"name": "c", "image": "docker.io/library/busybox"}], restartPolicy="OnFailure")
    plan = plan_of(p)
    assert (plan.start, plan.ready, plan.never_ready, plan.crash, plan.terminate) == (1.5, 2.0, True, True, 7.0)
    assert [c.missing for c in plan.containers] == [True, False, False]  # globs match the image as written
    assert plan.restart_policy == "OnFailure" and plan.pod_ref == f"web_prod({UID})"
    plain = plan_of(pod())
    assert (plain.start, plain.ready, plain.never_ready, plain.crash, plain.terminate) == (0, 0, False, False, 0)


# -- the happy path ------------------------------------------------------------------------------------------
def test_default_pod_runs_and_is_ready_at_once() -> None:
    plan = plan_of(pod())
    snap = L.snapshot(plan, 0.0)
    st = snap.main[0]
    assert st.kind == "running" and st.ready and st.started and st.restarts == 0
    assert snap.next_at is None and L.phase(plan, snap) == "Running"
    evs = L.events_between(plan, -1, 0.0)
    assert [(e.reason, e.message) for e in evs] == [
        ("Pulling", 'Pulling image "nginx:1.27"'),
        ("Pulled", f'Successfully pulled image "nginx:1.27" in 0s (0s including waiting). Image size: '
                   f'{L.image_size("nginx:1.27")} bytes.'),
        ("Created", "Created container: app"),
        ("Started", "Started container app"),
    ]
    assert all(e.type == "Normal" for e in evs)
    assert L.events_between(plan, 0.0, 1000.0) == []


def test_image_already_on_the_node_is_not_pulled() -> None:
    plan = plan_of(pod(), present={"docker.io/library/nginx:1.27"})
    evs = L.events_between(plan, -1, 0)
    assert reasons(evs) == ["Pulled", "Created", "Started"]
    assert evs[0].message == 'Container image "nginx:1.27" already present on machine'
    always = pod(containers=[{"name": "app", "image": "nginx:1.27", "imagePullPolicy": "Always"}])
    assert reasons(L.events_between(plan_of(always, present={"docker.io/library/nginx:1.27"}), -1, 0))[0] == "Pulling"


def test_start_and_ready_seconds() -> None:
    plan = plan_of(pod({L.ANN_START: "2", L.ANN_READY: "3"}))
    before = L.snapshot(plan, 1.0)
    assert before.main[0].kind == "waiting" and before.main[0].reason == "ContainerCreating"
    assert L.phase(plan, before) == "Pending" and before.next_at == 2.0
    running = L.snapshot(plan, 2.0)
    assert running.main[0].kind == "running" and not running.main[0].ready and running.main[0].started
    assert L.phase(plan, running) == "Running" and running.next_at == 5.0
    ready = L.snapshot(plan, 5.0)
    assert ready.main[0].ready and ready.next_at is None
    assert reasons(L.events_between(plan, -1, 0)) == ["Pulling"]
    late = L.events_between(plan, 0, 2)
    assert reasons(late) == ["Pulled", "Created", "Started"]
    assert late[0].message.startswith('Successfully pulled image "nginx:1.27" in 2s (2s including waiting).')


def test_events_are_told_once_however_time_is_sliced() -> None:
    plan = plan_of(pod({L.ANN_START: "1", L.ANN_CRASH: "true", L.ANN_MISSING: "redis*"},
                       containers=[{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "redis:7"}]))
    whole = L.events_between(plan, -1, 200)
    cuts = [-1, 0, 0.5, 1, 1.7, 3, 11.2, 40, 41, 199.99, 200]
    sliced = [e for a, b in itertools.pairwise(cuts) for e in L.events_between(plan, a, b)]
    assert sliced == whole and len(whole) > 20
    assert [e.at for e in whole] == sorted(e.at for e in whole)


def test_never_ready() -> None:
    plan = plan_of(pod({L.ANN_NEVER_READY: "true", L.ANN_READY: "1"}))
    for t in (0, 1, 5, 10_000):
        st = main_state(plan, t)
        assert st.kind == "running" and not st.ready and st.started
    assert L.snapshot(plan, 0).next_at is None
    status = L.render_status(pod(), plan, L.snapshot(plan, 10), T0, "172.30.0.1", "10.244.0.2", T0 + 10)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [app]"
    assert status["phase"] == "Running"


# -- image pull failures -------------------------------------------------------------------------------------
def test_missing_image_backoff_grows_to_the_cap() -> None:
    plan = plan_of(pod({L.ANN_MISSING: "nginx:*"}))
    evs = L.events_between(plan, -1, 2000)
    pulls = [e.at for e in evs if e.reason == "Pulling"]
    assert pulls[:8] == [0, 10, 30, 70, 150, 310, 610, 910]
    st = main_state(plan, 0)
    assert st.kind == "waiting" and st.reason == "ErrImagePull" and st.message == L.pull_error("nginx:1.27")
    assert "not found" in st.message
    st = main_state(plan, 1.0)
    assert st.reason == "ImagePullBackOff" and st.message == 'Back-off pulling image "nginx:1.27"'
    assert main_state(plan, 10).reason == "ErrImagePull" and main_state(plan, 11).reason == "ImagePullBackOff"
    assert main_state(plan, 29.9).reason == "ImagePullBackOff" and main_state(plan, 30).reason == "ErrImagePull"
    assert L.phase(plan, L.snapshot(plan, 5000)) == "Pending"
    assert L.snapshot(plan, 5).next_at == 10


def test_missing_image_events_are_upstreams() -> None:
    plan = plan_of(pod({L.ANN_MISSING: "nginx:1.27"}))
    evs = L.events_between(plan, -1, 5)
    assert [(e.type, e.reason, e.message) for e in evs] == [
        ("Normal", "Pulling", 'Pulling image "nginx:1.27"'),
        ("Warning", "Failed", f'Failed to pull image "nginx:1.27": {L.pull_error("nginx:1.27")}'),
        ("Warning", "Failed", "Error: ErrImagePull"),
        ("Normal", "BackOff", 'Back-off pulling image "nginx:1.27"'),
        ("Warning", "Failed", "Error: ImagePullBackOff"),
    ]


def test_missing_image_with_start_seconds_fails_after_the_pull() -> None:
    plan = plan_of(pod({L.ANN_MISSING: "nginx*", L.ANN_START: "3"}))
    assert main_state(plan, 2.9).reason == "ContainerCreating"
    assert main_state(plan, 3).reason == "ErrImagePull"
    assert main_state(plan, 4.5).reason == "ImagePullBackOff"
    pulls = [e.at for e in L.events_between(plan, -1, 100) if e.reason == "Pulling"]
    assert pulls[:3] == [0, 13, 36]  # the next pull starts a back-off after the failure, and takes 3 s again


def test_missing_image_beside_a_good_container_keeps_the_pod_pending() -> None:
    plan = plan_of(pod({L.ANN_MISSING: "redis:*"}, containers=[{"name": "web", "image": "nginx:1"},
                                                                {"name": "cache", "image": "redis:7"}]))
    snap = L.snapshot(plan, 50)
    assert snap.main[0].kind == "running" and snap.main[0].ready
    assert snap.main[1].reason in ("ErrImagePull", "ImagePullBackOff")
    assert L.phase(plan, snap) == "Pending"
    st = L.render_status(pod(), plan, snap, T0, "172.30.0.1", "10.244.0.2", T0 + 50)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "containers with unready status: [cache]"


def test_missing_image_with_pull_policy_never() -> None:
    plan = plan_of(pod({L.ANN_MISSING: "nginx*"}, containers=[{"name": "app", "image": "nginx:1",
                                                                "imagePullPolicy": "Never"}]))
    st = main_state(plan, 100)
    assert st.reason == "ErrImageNeverPull"
    assert st.message == 'Container image "nginx:1" is not present with pull policy of Never'
    assert reasons(L.events_between(plan, -1, 100)) == ["ErrImageNeverPull", "Failed"]
    assert L.snapshot(plan, 0).next_at is None


# -- crash loops ---------------------------------------------------------------------------------------------
def test_crash_loop_restarts_with_growing_backoff() -> None:
    plan = plan_of(pod({L.ANN_CRASH: "true"}))
    # Run 0 at 0, exits at 1; restarted at once (after 1 s of "Error"); then back-offs of 10, 20, 40 ... 300 s.
    st = main_state(plan, 0.5)
    assert st.kind == "running" and st.restarts == 0 and not st.ready and st.started
    st = main_state(plan, 1.5)
    assert st.kind == "terminated" and st.reason == "Error" and st.exit_code == 1 and st.restarts == 0
    st = main_state(plan, 2.5)
    assert st.kind == "running" and st.restarts == 1 and st.last is not None and st.last.exit_code == 1
    st = main_state(plan, 4.5)
    assert st.kind == "waiting" and st.reason == "CrashLoopBackOff" and st.restarts == 1
    assert st.message == f"back-off 10s restarting failed container=app pod=web_prod({UID})"
    assert st.last is not None and st.last.reason == "Error" and st.last.instance == 1
    starts = [e.at for e in L.events_between(plan, -1, 3000) if e.reason == "Started"]
    gaps = [round(b - a - 1, 3) for a, b in itertools.pairwise(starts)]  # minus the 1 s run
    assert gaps[:8] == [1, 10, 20, 40, 80, 160, 300, 300]
    messages = [main_state(plan, t).message for t in (4.5, 20, 50, 100, 200, 400)]
    assert [m.split()[1] for m in messages] == ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s"]
    counts = [main_state(plan, t).restarts for t in (0, 3, 14, 40, 100, 1000)]
    assert counts == sorted(counts) and counts[-1] >= 6
    snap = L.snapshot(plan, 4.5)
    assert L.phase(plan, snap) == "Running"


def test_crash_loop_events() -> None:
    plan = plan_of(pod({L.ANN_CRASH: "true"}))
    evs = L.events_between(plan, 1, 14)
    assert [(e.type, e.reason) for e in evs] == [
        ("Normal", "Pulled"), ("Normal", "Created"), ("Normal", "Started"),  # the immediate first restart
        ("Warning", "BackOff"),
        ("Normal", "Pulled"), ("Normal", "Created"), ("Normal", "Started"),
    ]
    assert evs[0].message == 'Container image "nginx:1.27" already present on machine'
    assert evs[3].message == f"Back-off restarting failed container app in pod web_prod({UID})"


def test_crash_with_restart_policy_never_fails_the_pod() -> None:
    plan = plan_of(pod({L.ANN_CRASH: "true"}, restartPolicy="Never"))
    snap = L.snapshot(plan, 100)
    st = snap.main[0]
    assert st.kind == "terminated" and st.exit_code == 1 and st.restarts == 0 and snap.next_at is None
    assert L.phase(plan, snap) == "Failed"
    status = L.render_status(pod(), plan, snap, T0, "172.30.0.1", "10.244.0.2", T0 + 100)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["reason"] == "PodCompleted" and conds["ContainersReady"]["reason"] == "PodCompleted"
    assert conds["PodReadyToStartContainers"]["status"] == "False"
    assert status["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"


def test_crash_with_restart_policy_on_failure_restarts() -> None:
    plan = plan_of(pod({L.ANN_CRASH: "true"}, restartPolicy="OnFailure"))
    snap = L.snapshot(plan, 100)
    assert snap.main[0].restarts >= 3 and L.phase(plan, snap) == "Running"


# -- init containers -----------------------------------------------------------------------------------------
def test_init_containers_complete_before_the_main_containers() -> None:
    p = pod({L.ANN_START: "2"}, initContainers=[{"name": "setup", "image": "busybox:1"}])
    plan = plan_of(p)
    snap = L.snapshot(plan, 1)
    assert snap.init[0].reason == "PodInitializing" and snap.main[0].reason == "PodInitializing"
    assert L.phase(plan, snap) == "Pending"
    status = L.render_status(p, plan, snap, T0, "172.30.0.1", "10.244.0.2", T0 + 1)
    init = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert init["status"] == "False" and init["message"] == "containers with incomplete status: [setup]"
    snap = L.snapshot(plan, 2)
    assert snap.init[0].kind == "terminated" and snap.init[0].reason == "Completed" and snap.init[0].ready
    assert snap.main[0].kind == "running"
    status = L.render_status(p, plan, snap, T0, "172.30.0.1", "10.244.0.2", T0 + 2)
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert next(c for c in status["conditions"] if c["type"] == "Initialized")["status"] == "True"
    names = [(e.container, e.reason) for e in L.events_between(plan, 1, 2)]
    assert names[:3] == [("setup", "Pulled"), ("setup", "Created"), ("setup", "Started")]
    assert ("app", "Started") in names


def test_missing_init_image_blocks_the_pod() -> None:
    p = pod({L.ANN_MISSING: "busybox*"}, initContainers=[{"name": "setup", "image": "busybox:1"}])
    plan = plan_of(p)
    snap = L.snapshot(plan, 100)
    assert snap.init[0].reason in ("ErrImagePull", "ImagePullBackOff")
    assert snap.main[0].reason == "PodInitializing" and L.phase(plan, snap) == "Pending"
    assert {e.container for e in L.events_between(plan, -1, 100)} == {"setup"}


def test_sidecars_run_beside_the_main_containers() -> None:
    p = pod(initContainers=[{"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}])
    plan = plan_of(p)
    snap = L.snapshot(plan, 0)
    assert snap.init[0].kind == "running" and snap.init[0].ready and snap.main[0].kind == "running"
    status = L.render_status(p, plan, snap, T0, "172.30.0.1", "10.244.0.2", T0)
    assert all(c["status"] == "True" for c in status["conditions"])


# -- the status ----------------------------------------------------------------------------------------------
def test_render_status_shape() -> None:
    p = pod(containers=[{"name": "app", "image": "nginx:1.27", "volumeMounts": [
        {"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}]}])
    plan = plan_of(p)
    status = L.render_status(p, plan, L.snapshot(plan, 0), T0, "172.30.0.1", "10.244.0.7", T0)
    assert status["phase"] == "Running" and status["qosClass"] == "BestEffort"
    assert [c["type"] for c in status["conditions"]] == list(L.CONDITION_ORDER)
    scheduled = status["conditions"][-1]
    assert scheduled["lastTransitionTime"] == "2023-11-14T22:13:19Z"  # the scheduler's, kept
    assert all(c["lastTransitionTime"] == now_rfc3339(T0) for c in status["conditions"][:-1])
    assert status["hostIP"] == "172.30.0.1" and status["hostIPs"] == [{"ip": "172.30.0.1"}]
    assert status["podIP"] == "10.244.0.7" and status["podIPs"] == [{"ip": "10.244.0.7"}]
    assert status["startTime"] == now_rfc3339(T0)
    cs = status["containerStatuses"][0]
    assert cs["containerID"] == L.container_id(UID, "app", 0) and cs["containerID"].startswith("sim://")
    assert cs["image"] == "docker.io/library/nginx:1.27" and cs["imageID"] == L.image_id("nginx:1.27")
    assert cs["state"] == {"running": {"startedAt": now_rfc3339(T0)}} and cs["lastState"] == {}
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
    assert cs["volumeMounts"] == [{"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                                   "readOnly": True, "recursiveReadOnly": "Disabled"}]


def test_waiting_container_has_no_container_id() -> None:
    plan = plan_of(pod({L.ANN_START: "5"}))
    status = L.render_status(pod(), plan, L.snapshot(plan, 0), T0, "172.30.0.1", "10.244.0.7", T0)
    cs = status["containerStatuses"][0]
    assert "containerID" not in cs and cs["imageID"] == "" and cs["image"] == "nginx:1.27"
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}} and cs["started"] is False


def test_rendering_is_idempotent_and_keeps_transition_times() -> None:
    p = pod({L.ANN_START: "1", L.ANN_READY: "1"})
    plan = plan_of(p)
    s1 = L.render_status(p, plan, L.snapshot(plan, 1), T0, "172.30.0.1", "10.244.0.2", T0 + 1)
    p1 = copy.deepcopy(p)
    p1["status"] = s1
    # Later, same state: nothing changes (so nothing is written).
    assert L.render_status(p1, plan, L.snapshot(plan, 1.5), T0, "172.30.0.1", "10.244.0.2", T0 + 1.5) == s1
    s2 = L.render_status(p1, plan, L.snapshot(plan, 2), T0, "172.30.0.1", "10.244.0.2", T0 + 2)
    conds1 = {c["type"]: c for c in s1["conditions"]}
    conds2 = {c["type"]: c for c in s2["conditions"]}
    assert conds2["Ready"]["status"] == "True" and conds2["Ready"]["lastTransitionTime"] == now_rfc3339(T0 + 2)
    assert conds2["Initialized"]["lastTransitionTime"] == conds1["Initialized"]["lastTransitionTime"]


def test_adoption_with_a_coarser_origin_rewrites_nothing() -> None:
    # The first run took the pod at T0 + 0.7; after a restart the origin is read back from startTime (whole seconds).
    p = pod({L.ANN_START: "0.5"})
    plan = plan_of(p)
    first = L.render_status(p, plan, L.snapshot(plan, 10), T0 + 0.7, "172.30.0.1", "10.244.0.2", T0 + 10.7)
    p["status"] = first
    again = L.render_status(p, plan, L.snapshot(plan, 11), T0, "172.30.0.1", "10.244.0.2", T0 + 11.7)
    assert again == first


def test_readiness_gates() -> None:
    p = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    plan = plan_of(p)
    st = L.render_status(p, plan, L.snapshot(plan, 0), T0, "172.30.0.1", "10.244.0.2", T0)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    assert ready["message"] == 'corresponding condition of pod readiness gate "example.com/lb" does not exist.'
    p["status"]["conditions"].append({"type": "example.com/lb", "status": "True"})
    st = L.render_status(p, plan, L.snapshot(plan, 0), T0, "172.30.0.1", "10.244.0.2", T0)
    assert next(c for c in st["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert any(c["type"] == "example.com/lb" for c in st["conditions"])  # someone else's condition is kept


def test_killing_events_name_running_containers() -> None:
    plan = plan_of(pod(containers=[{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]))
    evs = L.killing_events(plan, L.snapshot(plan, 1), 1)
    assert [(e.reason, e.message) for e in evs] == [("Killing", "Stopping container a"),
                                                   ("Killing", "Stopping container b")]
    pending = plan_of(pod({L.ANN_START: "10"}))
    assert L.killing_events(pending, L.snapshot(pending, 1), 1) == []
