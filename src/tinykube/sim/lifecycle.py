"""The life of a pod on a simulated node, as pure functions of time.

A simulated kubelet does not run anything: every pod it is given follows a
*plan* (:func:`make_plan`) fixed when the node first sees the pod, built from
the pod's spec and its ``sim.tinykube.io/*`` annotations:

``start-seconds``
    time from binding until the containers run (image pull plus start);
``ready-seconds``
    time from running until the containers are ready;
``never-ready: "true"``
    containers run but never become ready;
``missing-images: "<glob>,<glob>"``
    containers whose image matches fail to pull: ``ErrImagePull``, then
    ``ImagePullBackOff``, retried with a growing back-off, the pod stays Pending;
``crash: "true"``
    containers start and exit with code 1, then ``CrashLoopBackOff`` with a
    growing restart count (``restartPolicy: Never``: the pod fails instead);
``terminate-seconds``
    how long a deleted pod stays Terminating (capped by its grace period).

Given a plan, the state of every container is a function of the time ``t``
since the node took the pod: :func:`snapshot` answers "what does the pod look
like at ``t`` and when does it next change", :func:`events_between` answers
"which kubelet events happened in ``(t0, t1]``". Each container's life is a
stream of *steps* ``(time, new state, events)`` generated lazily in time order
(crash loops and pull retries are endless; a back-off capped at five minutes
keeps the stream short for any realistic age). Because everything derives from
``(plan, t)``, the node may look at a pod late, twice, or after a restart of
the control plane and still get the same answer: states whose window has
passed are skipped, never written out of order.

The timings follow the kubelet: a failed image pull is retried after 10 s,
20 s, 40 s ... capped at 300 s; a crashed container is restarted at once the
first time and then after 10 s, 20 s, 40 s ... capped at 300 s, measured from
its exit, while its status says ``back-off 10s restarting failed container=...``.
:class:`Timing` scales all of it (tests use sub-second back-offs).

:func:`render_status` turns a snapshot into the pod's ``status`` the way the
kubelet's status manager shapes it: phase (upstream's ``getPhase`` rules),
conditions (``PodReadyToStartContainers``, ``Initialized``, ``Ready``,
``ContainersReady``, ``PodScheduled``; a condition keeps its
``lastTransitionTime`` while its status does not change), host and pod IPs,
``startTime`` and container statuses with ``containerID``/``imageID``. Container
IDs are derived from the pod UID, the container and its restart number, so the
same snapshot always renders to the same status: an unchanged pod is never
rewritten.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..api import gofmt, imageref
from ..api.meta import now_rfc3339

PREFIX = "sim.tinykube.io/"
ANN_START = PREFIX + "start-seconds"
ANN_READY = PREFIX + "ready-seconds"
ANN_NEVER_READY = PREFIX + "never-ready"
ANN_MISSING = PREFIX + "missing-images"
ANN_CRASH = PREFIX + "crash"
ANN_TERMINATE = PREFIX + "terminate-seconds"

# Event reasons, as pkg/kubelet/events names them.
PULLING = "Pulling"
PULLED = "Pulled"
CREATED = "Created"
STARTED = "Started"
FAILED = "Failed"
BACKOFF = "BackOff"
KILLING = "Killing"
NEVER_PULL = "ErrImageNeverPull"
NORMAL = "Normal"
WARNING = "Warning"

# Container waiting reasons.
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
CRASH_LOOP_BACKOFF = "CrashLoopBackOff"

MAIN, INIT, SIDECAR = "main", "init", "sidecar"
CONDITION_ORDER = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass(frozen=True)
class Timing:
    """Back-off timings. ``transient`` is how long short-lived states stay visible.

    Short-lived states are ``ErrImagePull`` before ``ImagePullBackOff``, a crashing
    container's run and its ``terminated`` state before the back-off; each is
    also capped at half the back-off it precedes.
    """

    backoff_base: float = 10.0
    backoff_max: float = 300.0
    transient: float = 1.0

    def __post_init__(self) -> None:
        if not self.backoff_base > 0 or self.backoff_max < self.backoff_base or self.transient < 0:
            raise ValueError(f"invalid timing {self}")

    def backoff(self, n: int) -> float:
        """The ``n``-th back-off (0-based): base, 2*base, 4*base ... capped."""
        if n >= 64:
            return self.backoff_max
        return min(self.backoff_base * (2 ** n), self.backoff_max)

    def hold(self, before: float) -> float:
        return min(self.transient, before / 2)


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    image: str
    role: str  # MAIN, INIT (runs to completion first) or SIDECAR (an init container with restartPolicy Always)
    missing: bool = False  # the image cannot be pulled
    pull_policy: str = "IfNotPresent"
    pull_first: bool = True  # the first start pulls the image (False: already present on the node)
    mounts: tuple[tuple[str, str, bool], ...] = ()  # (volume name, mountPath, readOnly)
    image_id: str = ""  # a real node's image (``repo@sha256:...``); "" derives one from the name


@dataclass(frozen=True)
class Plan:
    uid: str
    name: str
    namespace: str
    containers: tuple[ContainerPlan, ...]
    init_containers: tuple[ContainerPlan, ...] = ()
    start: float = 0.0
    ready: float = 0.0
    never_ready: bool = False
    crash: bool = False
    terminate: float = 0.0
    restart_policy: str = "Always"
    readiness_gates: tuple[str, ...] = ()
    timing: Timing = field(default_factory=Timing)
    id_scheme: str = "sim://"  # container IDs' runtime prefix

    @property
    def pod_ref(self) -> str:
        """``name_namespace(uid)``, as the kubelet names a pod in messages."""
        return f"{self.name}_{self.namespace}({self.uid})"

    def all_containers(self) -> tuple[ContainerPlan, ...]:
        return self.init_containers + self.containers


@dataclass(frozen=True)
class CState:
    """One container's state. Times are seconds since the node took the pod."""

    kind: str  # "waiting", "running" or "terminated"
    reason: str = ""
    message: str = ""
    instance: int = -1  # which run of the container this is (its restart number); -1: never created
    restarts: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    ready: bool = False
    started: bool = False
    last: CState | None = None  # the previous run, terminated


@dataclass(frozen=True)
class Event:
    at: float
    type: str
    reason: str
    message: str
    container: str = ""


@dataclass(frozen=True)
class Snapshot:
    init: tuple[CState, ...]
    main: tuple[CState, ...]
    next_at: float | None  # when anything (state or event) next changes; None: never

    def running(self) -> list[int]:
        """Indices (into init + main) of containers that run now."""
        return [i for i, c in enumerate(self.init + self.main) if c.kind == "running"]


# -- annotations and plans -----------------------------------------------------------------------------------
def parse_seconds(value: Any) -> float:
    """Seconds from an annotation ("0.3", "2", "2s"); anything unusable is 0."""
    if not isinstance(value, str):
        return 0.0
    text = value.strip().lower()
    if text.endswith("s"):
        text = text[:-1]
    try:
        v = float(text)
    except ValueError:
        return 0.0
    return v if math.isfinite(v) and v > 0 else 0.0


def truthy(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "y", "on")


@functools.lru_cache(maxsize=4096)
def normalize_image(image: str) -> str:
    """A fully qualified reference, as a CRI runtime reports it (``nginx`` -> ``docker.io/library/nginx:latest``)."""
    return imageref.normalize(image)


def image_repo(image: str) -> str:
    return imageref.repository(image)


@functools.lru_cache(maxsize=4096)
def image_id(image: str) -> str:
    """A stable ``repo@sha256:...`` for an image (the digest of its name: there is no content)."""
    digest = normalize_image(image).partition("@")[2]
    if not digest:
        digest = "sha256:" + hashlib.sha256(normalize_image(image).encode()).hexdigest()
    return f"{image_repo(image)}@{digest}"


@functools.lru_cache(maxsize=4096)
def image_size(image: str) -> int:
    h = int.from_bytes(hashlib.sha256(image.encode()).digest()[:4], "big")
    return 5_000_000 + h % 95_000_000


def container_id(uid: str, name: str, instance: int, scheme: str = "sim://") -> str:
    return scheme + hashlib.sha256(f"{uid}/{name}/{instance}".encode()).hexdigest()


def image_matches(image: str, globs: tuple[str, ...]) -> bool:
    if not globs:
        return False
    full = normalize_image(image)
    return any(fnmatch.fnmatchcase(image, g) or fnmatch.fnmatchcase(full, g) for g in globs)


def _container_plan(c: dict[str, Any], role: str, globs: tuple[str, ...], present: frozenset[str] | set[str]) -> ContainerPlan:
    image = str(c.get("image") or "")
    policy = str(c.get("imagePullPolicy") or ("Always" if normalize_image(image).endswith(":latest") else "IfNotPresent"))
    mounts = tuple((str(m.get("name", "")), str(m.get("mountPath", "")), bool(m.get("readOnly")))
                   for m in c.get("volumeMounts") or [] if isinstance(m, dict))
    pull_first = policy == "Always" or (policy == "IfNotPresent" and normalize_image(image) not in present)
    return ContainerPlan(str(c.get("name") or ""), image, role, image_matches(image, globs), policy, pull_first, mounts)


def make_plan(pod: dict[str, Any], timing: Timing | None = None,
              present_images: frozenset[str] | set[str] = frozenset()) -> Plan:
    """The plan for a pod: its containers and the behaviour its annotations ask for.

    ``present_images`` are the (normalized) images the node already has: containers
    with ``imagePullPolicy: IfNotPresent`` do not pull those.
    """
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ann = md.get("annotations") or {}
    globs = tuple(g.strip() for g in str(ann.get(ANN_MISSING) or "").split(",") if g.strip())
    init: list[ContainerPlan] = []
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            init.append(_container_plan(c, SIDECAR if c.get("restartPolicy") == "Always" else INIT, globs, present_images))
    main = tuple(_container_plan(c, MAIN, globs, present_images) for c in spec.get("containers") or [] if isinstance(c, dict))
    gates = tuple(str(g.get("conditionType")) for g in spec.get("readinessGates") or []
                  if isinstance(g, dict) and g.get("conditionType"))
    return Plan(
        uid=str(md.get("uid") or ""), name=str(md.get("name") or ""), namespace=str(md.get("namespace") or ""),
        containers=main, init_containers=tuple(init),
        start=parse_seconds(ann.get(ANN_START)), ready=parse_seconds(ann.get(ANN_READY)),
        never_ready=truthy(ann.get(ANN_NEVER_READY)), crash=truthy(ann.get(ANN_CRASH)),
        terminate=parse_seconds(ann.get(ANN_TERMINATE)),
        restart_policy=str(spec.get("restartPolicy") or "Always"), readiness_gates=gates,
        timing=timing or Timing(),
    )


# -- messages ------------------------------------------------------------------------------------------------
def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` prints it, to the millisecond (``300ms``, ``1m20s``, ``5m0s``)."""
    return gofmt.duration(round(max(seconds, 0.0), 3))


def pull_error(image: str) -> str:
    """The runtime's error for an image that does not exist (containerd's wording)."""
    full = normalize_image(image)
    return (f'rpc error: code = NotFound desc = failed to pull and unpack image "{full}": '
            f'failed to resolve reference "{full}": {full}: not found')


def pulled_message(image: str, seconds: float) -> str:
    d = go_duration(seconds)
    return f'Successfully pulled image "{image}" in {d} ({d} including waiting). Image size: {image_size(image)} bytes.'


def crash_backoff_message(plan: Plan, container: str, delay: float) -> str:
    return f"back-off {go_duration(delay)} restarting failed container={container} pod={plan.pod_ref}"


# -- per-container timelines ---------------------------------------------------------------------------------
Step = tuple[float, CState | None, tuple[Event, ...]]


def _ev(at: float, type_: str, reason: str, message: str, c: ContainerPlan) -> Event:
    return Event(at, type_, reason, message, c.name)


def _start_events(at: float, c: ContainerPlan, pull: bool, pull_time: float) -> tuple[Event, ...]:
    if pull:
        pulled = _ev(at, NORMAL, PULLED, pulled_message(c.image, pull_time), c)
    else:
        pulled = _ev(at, NORMAL, PULLED, f'Container image "{c.image}" already present on machine', c)
    return (pulled, _ev(at, NORMAL, CREATED, f"Created container: {c.name}", c),
            _ev(at, NORMAL, STARTED, f"Started container {c.name}", c))


def _steps(plan: Plan, c: ContainerPlan, first_stage: bool, gated: bool) -> Iterator[Step]:
    """The steps of one container, in time order (possibly endless)."""
    timing = plan.timing
    s = plan.start
    waiting_reason = CONTAINER_CREATING if first_stage and c.role == MAIN else POD_INITIALIZING
    yield 0.0, CState("waiting", waiting_reason), ()
    if gated:
        return
    # The pull starts when the container's turn comes: at once for the first stage, after the init containers
    # (at ``s``) otherwise; the first stage's pull takes the whole start time.
    pull_at = 0.0 if first_stage else s
    pull_time = s if first_stage else 0.0

    if c.missing:
        if c.pull_policy == "Never":
            msg = f'Container image "{c.image}" is not present with pull policy of Never'
            yield pull_at, CState("waiting", NEVER_PULL, msg), (
                _ev(pull_at, WARNING, NEVER_PULL, msg, c), _ev(pull_at, WARNING, FAILED, "Error: ErrImageNeverPull", c))
            return
        attempt = 0
        p = pull_at
        err = pull_error(c.image)
        backoff_msg = f'Back-off pulling image "{c.image}"'
        while True:
            yield p, None, (_ev(p, NORMAL, PULLING, f'Pulling image "{c.image}"', c),)
            f = p + pull_time
            yield f, CState("waiting", ERR_IMAGE_PULL, err), (
                _ev(f, WARNING, FAILED, f'Failed to pull image "{c.image}": {err}', c),
                _ev(f, WARNING, FAILED, "Error: ErrImagePull", c))
            delay = timing.backoff(attempt)
            b = f + timing.hold(delay)
            yield b, CState("waiting", IMAGE_PULL_BACKOFF, backoff_msg), (
                _ev(b, NORMAL, BACKOFF, backoff_msg, c), _ev(b, WARNING, FAILED, "Error: ImagePullBackOff", c))
            p = f + delay
            attempt += 1

    pulling = (_ev(pull_at, NORMAL, PULLING, f'Pulling image "{c.image}"', c),) if c.pull_first else ()
    if c.role == INIT:
        yield pull_at, None, pulling
        done = CState("terminated", "Completed", instance=0, started_at=s, finished_at=s, exit_code=0, ready=True)
        yield s, done, _start_events(s, c, c.pull_first, pull_time)
        return

    if not (plan.crash and c.role == MAIN):
        yield pull_at, None, pulling
        ready_now = not plan.never_ready and plan.ready == 0
        yield s, CState("running", instance=0, started_at=s, ready=ready_now, started=True), \
            _start_events(s, c, c.pull_first, pull_time)
        if not plan.never_ready and plan.ready > 0:
            yield s + plan.ready, CState("running", instance=0, started_at=s, ready=True, started=True), ()
        return

    # A crashing container: runs briefly, exits 1, is restarted at once the first time, then after a growing back-off.
    yield pull_at, None, pulling
    run = timing.hold(timing.backoff_base)
    r = s
    last: CState | None = None
    i = 0
    while True:
        if i == 0:
            evs = _start_events(r, c, c.pull_first, pull_time)
        elif c.pull_policy == "Always":
            evs = (_ev(r, NORMAL, PULLING, f'Pulling image "{c.image}"', c), *_start_events(r, c, True, 0.0))
        else:
            evs = _start_events(r, c, False, 0.0)
        yield r, CState("running", instance=i, restarts=i, started_at=r, started=True, last=last), evs
        x = r + run
        term = CState("terminated", "Error", instance=i, restarts=i, started_at=r, finished_at=x, exit_code=1)
        yield x, CState("terminated", "Error", instance=i, restarts=i, started_at=r, finished_at=x, exit_code=1,
                        last=last), ()
        if plan.restart_policy == "Never":
            return
        last = term
        if i == 0:
            r = x + timing.hold(timing.backoff_base)
        else:
            delay = timing.backoff(i - 1)
            w = x + timing.hold(delay)
            msg = crash_backoff_message(plan, c.name, delay)
            yield w, CState("waiting", CRASH_LOOP_BACKOFF, msg, restarts=i, last=last), (
                _ev(w, WARNING, BACKOFF,
                    f"Back-off restarting failed container {c.name} in pod {plan.pod_ref}", c),)
            r = x + delay
        i += 1


def _streams(plan: Plan) -> list[Iterator[Step]]:
    """One step stream per container, init containers first (in spec order)."""
    gated = False
    out: list[Iterator[Step]] = []
    first_stage_init = bool(plan.init_containers)
    for c in plan.init_containers:
        out.append(_steps(plan, c, True, gated))
        if c.missing:
            gated = True  # later init containers and the main containers wait for this one forever
    for c in plan.containers:
        out.append(_steps(plan, c, not first_stage_init, gated))
    return out


def snapshot(plan: Plan, t: float) -> Snapshot:
    """Every container's state at ``t`` and when the pod next changes (a state or an event)."""
    states: list[CState] = []
    next_at: float | None = None
    for stream in _streams(plan):
        cur = CState("waiting", CONTAINER_CREATING)
        for when, st, _evs in stream:
            if when > t:
                next_at = when if next_at is None else min(next_at, when)
                break
            if st is not None:
                cur = st
        states.append(cur)
    n = len(plan.init_containers)
    return Snapshot(tuple(states[:n]), tuple(states[n:]), next_at)


def events_between(plan: Plan, t0: float, t1: float) -> list[Event]:
    """The kubelet events of times in ``(t0, t1]``, in order (time, then container order)."""
    found: list[tuple[float, int, int, Event]] = []
    for ci, stream in enumerate(_streams(plan)):
        seq = 0
        for when, _st, evs in stream:
            if when > t1:
                break
            for e in evs:
                if e.at > t0:
                    found.append((e.at, ci, seq, e))
                seq += 1
    found.sort(key=lambda x: (x[0], x[1], x[2]))
    return [e for *_k, e in found]


def killing_events(plan: Plan, snap: Snapshot, t: float) -> list[Event]:
    """What the kubelet says when it stops a pod's running containers."""
    allc = plan.all_containers()
    return [Event(t, NORMAL, KILLING, f"Stopping container {allc[i].name}", allc[i].name) for i in snap.running()]


# -- pod status ----------------------------------------------------------------------------------------------
def initialized(plan: Plan, snap: Snapshot) -> tuple[bool, list[str]]:
    pending = []
    for c, st in zip(plan.init_containers, snap.init, strict=True):
        if c.role == SIDECAR:
            if not st.started:
                pending.append(c.name)
        elif not (st.kind == "terminated" and st.exit_code == 0):
            pending.append(c.name)
    return not pending, pending


def phase(plan: Plan, snap: Snapshot) -> str:
    """The pod phase from its containers, as the kubelet's ``getPhase`` decides it."""
    if plan.init_containers and not initialized(plan, snap)[0]:
        return "Pending"
    waiting = running = stopped = succeeded = 0
    for st in snap.main:
        if st.kind == "running":
            running += 1
        elif st.kind == "terminated":
            stopped += 1
            if st.exit_code == 0:
                succeeded += 1
        elif st.last is not None:
            stopped += 1  # waiting to restart: it has run before
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if plan.restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if plan.restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _ts(origin: float, t: float) -> str:
    return now_rfc3339(origin + t)


def _state_dict(plan: Plan, c: ContainerPlan, st: CState, origin: float) -> dict[str, Any]:
    if st.kind == "running":
        return {"running": {"startedAt": _ts(origin, st.started_at)}}
    if st.kind == "terminated":
        return {"terminated": {"exitCode": st.exit_code, "reason": st.reason,
                               "startedAt": _ts(origin, st.started_at), "finishedAt": _ts(origin, st.finished_at),
                               "containerID": container_id(plan.uid, c.name, st.instance, plan.id_scheme)}}
    w: dict[str, Any] = {"reason": st.reason}
    if st.message:
        w["message"] = st.message
    return {"waiting": w}


def _keep_times(new: dict[str, Any], old: Any) -> None:
    """Keep the timestamps of a state that did not change (same kind, same container)."""
    if not isinstance(old, dict):
        return
    for kind, body in new.items():
        ob = old.get(kind)
        if not isinstance(ob, dict) or kind == "waiting":
            continue
        if kind == "terminated" and ob.get("containerID") != body.get("containerID"):
            continue
        for k in ("startedAt", "finishedAt"):
            if k in body and ob.get(k):
                body[k] = ob[k]


def _container_status(plan: Plan, c: ContainerPlan, st: CState, origin: float, old: dict[str, Any] | None) -> dict[str, Any]:
    current = st.instance if st.instance >= 0 else (st.last.instance if st.last is not None else -1)
    out: dict[str, Any] = {"name": c.name, "state": _state_dict(plan, c, st, origin),
                           "lastState": _state_dict(plan, c, st.last, origin) if st.last is not None else {},
                           "ready": st.ready, "restartCount": st.restarts, "started": st.started}
    if current >= 0:
        out["containerID"] = container_id(plan.uid, c.name, current, plan.id_scheme)
        out["image"] = normalize_image(c.image)
        out["imageID"] = c.image_id or image_id(c.image)
        if c.mounts:
            out["volumeMounts"] = [
                {"name": n, "mountPath": p, **({"readOnly": True, "recursiveReadOnly": "Disabled"} if ro else {})}
                for n, p, ro in c.mounts]
    else:
        out["image"] = c.image
        out["imageID"] = ""
    if old is not None and old.get("containerID") == out.get("containerID"):
        _keep_times(out["state"], old.get("state"))
    if old is not None and out["lastState"]:
        _keep_times(out["lastState"], old.get("lastState"))
    return out


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def conditions(plan: Plan, snap: Snapshot, pod_phase: str, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The kubelet's pod conditions (without transition times), then any others the pod has, kept."""
    terminal = pod_phase in ("Succeeded", "Failed")
    init_ok, pending_init = initialized(plan, snap)
    unready = [c.name for c, st in zip(plan.init_containers, snap.init, strict=True) if c.role == SIDECAR and not st.ready]
    unready += [c.name for c, st in zip(plan.containers, snap.main, strict=True) if not st.ready]
    out = [_condition("PodReadyToStartContainers", not terminal)]
    if init_ok:
        out.append(_condition("Initialized", True))
    else:
        out.append(_condition("Initialized", False, "ContainersNotInitialized",
                              f"containers with incomplete status: {_names(pending_init)}"))
    if terminal:
        ready = _condition("Ready", False, "PodCompleted")
        cready = _condition("ContainersReady", False, "PodCompleted")
    elif unready:
        msg = f"containers with unready status: {_names(unready)}"
        ready = _condition("Ready", False, "ContainersNotReady", msg)
        cready = _condition("ContainersReady", False, "ContainersNotReady", msg)
    else:
        cready = _condition("ContainersReady", True)
        ready = _condition("Ready", True)
        by_type = {c.get("type"): c for c in existing if isinstance(c, dict)}
        for gate in plan.readiness_gates:
            gc = by_type.get(gate)
            if gc is None:
                ready = _condition("Ready", False, "ReadinessGatesNotReady",
                                   f'corresponding condition of pod readiness gate "{gate}" does not exist.')
                break
            if gc.get("status") != "True":
                ready = _condition("Ready", False, "ReadinessGatesNotReady",
                                   f'the status of pod readiness gate "{gate}" is not "True", but {gc.get("status")}')
                break
    out += [ready, cready]
    scheduled = next((c for c in existing if isinstance(c, dict) and c.get("type") == "PodScheduled"), None)
    out.append(scheduled if scheduled is not None else _condition("PodScheduled", True))
    out += [c for c in existing if isinstance(c, dict) and c.get("type") not in CONDITION_ORDER]
    return out


def render_status(pod: dict[str, Any], plan: Plan, snap: Snapshot, origin: float, host_ip: str, pod_ip: str,
                  now: float) -> dict[str, Any]:
    """The pod's new ``status``: the old one with the kubelet's fields replaced.

    ``origin`` is the wall-clock time (epoch seconds) the node took the pod; ``now``
    stamps conditions whose status changes.
    """
    old: dict[str, Any] = pod.get("status") or {}
    status = dict(old)
    pod_phase = phase(plan, snap)
    old_conds = [c for c in old.get("conditions") or [] if isinstance(c, dict)]
    old_by_type = {c.get("type"): c for c in old_conds}
    stamp = now_rfc3339(now)
    conds = []
    for c in conditions(plan, snap, pod_phase, old_conds):
        prev = old_by_type.get(c["type"])
        if c["type"] not in CONDITION_ORDER or (c["type"] == "PodScheduled" and prev is c):
            conds.append(dict(c))  # someone else's condition: kept as it is (a copy: the old one is a cache's)
            continue
        if prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]
        else:
            c["lastTransitionTime"] = stamp
        conds.append(c)
    status["phase"] = pod_phase
    status["conditions"] = conds
    status["hostIP"] = host_ip
    status["hostIPs"] = [{"ip": host_ip}]
    status["podIP"] = pod_ip
    status["podIPs"] = [{"ip": pod_ip}]
    status["startTime"] = old.get("startTime") or now_rfc3339(origin)
    old_main = {c.get("name"): c for c in old.get("containerStatuses") or [] if isinstance(c, dict)}
    status["containerStatuses"] = [_container_status(plan, c, st, origin, old_main.get(c.name))
                                   for c, st in zip(plan.containers, snap.main, strict=True)]
    if plan.init_containers:
        old_init = {c.get("name"): c for c in old.get("initContainerStatuses") or [] if isinstance(c, dict)}
        status["initContainerStatuses"] = [_container_status(plan, c, st, origin, old_init.get(c.name))
                                           for c, st in zip(plan.init_containers, snap.init, strict=True)]
    return status
