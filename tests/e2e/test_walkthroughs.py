"""The seed walkthroughs (docs/walkthrough-seed001.md, docs/walkthrough-seed003.md), run as written.

Each test extracts the commands of its doc's fenced ``sh`` blocks, in order, and types them into one bash
process (so ``cd``, ``export`` and background jobs carry over from one command to the next, as in the reader's
terminal), then checks what they printed. Nothing in the commands is substituted: the docs compute their own
values (``$NODE_PORT``, ``$POD_NAME``, ``$ENDPOINT``), work under ``~`` (a temporary HOME here) and run
``tinykube up``/``down`` themselves on the data dir of ``$TINYKUBE_HOME`` (the module's fresh cluster dir).

A reader takes a few seconds between commands; the shell does not. Where a command shows a state the cluster
reaches asynchronously (a pod's log, a node port closing, an image pull failing), the test waits for that state
just before running it (``Walkthrough.before``, keyed by the command's text and occurrence). Every key there and
every command a check reads must still be in the doc, so editing a doc cannot silently drop a check. The
rolling-update test also runs tests/loadgen.py against the node port and samples the ReplicaSets from before
the update to after the second rollback (no failed request; never more than 4 + 1 pods wanted or fewer than
4 - 1 available).

The tests need root (real pods), curl, kubectl v1.32, and PyPI for seed 001's ``pip install Flask``.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from .conftest import Cluster, new_cluster, stop, wait_for
from .test_agent import _pods, _ready_pods, _require_root

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LOADGEN = ROOT / "tests" / "loadgen.py"

_SH_BLOCK = re.compile(r"^```sh\n(.*?)^```[ \t]*$", re.M | re.S)
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")


def doc_commands(path: Path) -> list[str]:
    """The commands of the doc's ```sh blocks, in order: one per line, except that a line ending with a
    backslash continues on the next and a here-document runs to its terminator. Blank and comment lines go."""
    commands: list[str] = []
    for block in _SH_BLOCK.findall(path.read_text()):
        lines = block.splitlines()
        i, current = 0, cast(list[str], [])
        while i < len(lines):
            line = lines[i]
            i += 1
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            current.append(line)
            heredoc = _HEREDOC.search(line)
            if heredoc:
                while i < len(lines) and lines[i] != heredoc.group(2):
                    current.append(lines[i])
                    i += 1
                assert i < len(lines), f"{path.name}: here-document {heredoc.group(2)} is not closed"
                current.append(lines[i])
                i += 1
            elif line.endswith("\\"):
                continue
            commands.append("\n".join(current))
            current = []
        assert not current, f"{path.name}: a sh block ends inside a continued command"
    return commands


class Shell:
    """One non-interactive bash fed command after command, as a reader types them into a terminal: each
    command's output (stdout and stderr, interleaved) and exit code are read back before the next is sent."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     start_new_session=True)
        self.buf = b""

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        marker = f"__walkthrough_{uuid.uuid4().hex}__"
        # The command's stdin is /dev/null: it must not read the commands that follow it.
        self.proc.stdin.write(f"{{\n{command}\n}} < /dev/null\nprintf '\\n{marker} %s\\n' \"$?\"\n".encode())
        self.proc.stdin.flush()
        end = re.compile(rb"\n" + marker.encode() + rb" (\d+)\n")
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not (m := end.search(self.buf)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no end of command after {timeout}s: {command}\n{self.buf.decode(errors='replace')}")
            if select.select([fd], [], [], min(left, 1.0))[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"the shell exited during: {command}\n{self.buf.decode(errors='replace')}")
                self.buf += chunk
        out, self.buf = self.buf[:m.start()], self.buf[m.end():]
        return int(m.group(1)), out.decode(errors="replace")

    def close(self) -> None:
        """End the shell and whatever it left running in the background (its process group only; the cluster
        that ``tinykube up`` started runs in its own session and is stopped by the fixture)."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except (OSError, AssertionError):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Step:
    command: str
    code: int
    output: str


@dataclass
class Walkthrough:
    """A doc's commands run in order in one shell. ``before`` maps a command (its exact text, or ``text@N`` for
    its N-th occurrence) to what runs just before it: the wait a reader's pace would give, or test-side
    instruments. Commands exit 0 unless listed in ``may_fail``."""

    doc: Path
    shell: Shell
    before: dict[str, Callable[[], object]] = field(default_factory=dict)
    may_fail: set[str] = field(default_factory=set)
    steps: list[Step] = field(default_factory=list)

    def run(self) -> list[Step]:
        seen: Counter[str] = Counter()
        used: set[str] = set()
        for command in doc_commands(self.doc):
            seen[command] += 1
            keys = [k for k in (command, f"{command}@{seen[command]}") if k in self.before or k in self.may_fail]
            used.update(keys)
            for key in keys:
                if key in self.before:
                    self.before[key]()
            t0 = time.monotonic()
            code, output = self.shell.run(command, timeout=300)
            print(f"$ {command}   # exit {code}, {time.monotonic() - t0:.1f}s\n{output}", flush=True)
            self.steps.append(Step(command, code, output))
            assert code == 0 or any(k in self.may_fail for k in keys), \
                f"{self.doc.name}: `{command}` exited {code}:\n{output}"
        unused = (set(self.before) | self.may_fail) - used
        assert not unused, f"{self.doc.name} no longer has these commands: {sorted(unused)}"
        return self.steps

    def step(self, command: str, nth: int = 1) -> Step:
        """The ``nth`` run of ``command`` (its exact text)."""
        found = [s for s in self.steps if s.command == command]
        assert len(found) >= nth, f"{self.doc.name} has fewer than {nth} `{command}`"
        return found[nth - 1]

    def output(self, command: str, nth: int = 1) -> str:
        return self.step(command, nth).output

    def outputs(self, command: str) -> list[str]:
        found = [s.output for s in self.steps if s.command == command]
        assert found, f"{self.doc.name} has no command `{command}`"
        return found


@pytest.fixture(scope="module")
def walk_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A fresh data dir and HOME for the module. The docs start the cluster themselves (``tinykube up``) and
    stop it at their end (``tinykube down``); ``stop`` then checks nothing of it is left on the host."""
    _require_root()
    for tool in ("curl", "kubectl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required on PATH for the walkthroughs")
    c = new_cluster(tmp_path_factory.mktemp("walkthroughs"))
    try:
        yield c
    finally:
        stop(c)


def _shell_for(c: Cluster, tmp: Path) -> Shell:
    """A shell with the reader's environment: HOME and $TINYKUBE_HOME of the test cluster, no KUBECONFIG (so
    kubectl reads ~/.kube/config, where ``tinykube up`` merges its context), and ``tinykube`` on PATH as this
    interpreter's CLI."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "tinykube"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m tinykube.cli \"$@\"\n")
    wrapper.chmod(0o755)
    env = dict(c.env)
    env.pop("KUBECONFIG", None)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return Shell(env, c.home)


def _node_port(c: Cluster, service: str) -> int:
    return int(c.kjson("get", "service", service)["spec"]["ports"][0]["nodePort"])


def _answers(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=2, headers={"Connection": "close"}).text
    except httpx.HTTPError:
        return None


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _endpoint_ips(c: Cluster, service: str) -> set[str]:
    ep = c.kjson("get", "endpoints", service)
    return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


def _endpoints_are_ready_pods(c: Cluster, service: str, selector: str, n: int) -> bool:
    pods = _ready_pods(c, selector, n)
    return bool(pods) and _endpoint_ips(c, service) == {p["status"]["podIP"] for p in pods or []}


def _waiting_reason(c: Cluster, selector: str, reasons: set[str]) -> str | None:
    for p in _pods(c, selector):
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in reasons:
                return str(p["metadata"]["name"])
    return None


def _deployment_is(c: Cluster, name: str, n: int) -> bool:
    st = c.kjson("get", "deployment", name).get("status") or {}
    return all(st.get(k) == n for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"))


HELLO = re.compile(r"<h3>Hello World! - application version (\d)</h3><b>Hostname:</b> (\S+)<br/>")


def test_seed001_walkthrough(walk_cluster: Cluster, tmp_path: Path) -> None:
    c = walk_cluster
    sel = "app=hello-part3"
    curl_nodeport = "curl $ENDPOINT:$NODE_PORT"
    lb_loop = "for i in $(seq 10); do curl -s $ENDPOINT:$NODE_PORT; echo; done"
    v2_loop = "for i in $(seq 6); do curl -s $ENDPOINT:$NODE_PORT; echo; done"
    last_loop = "for i in $(seq 4); do curl -s $ENDPOINT:$NODE_PORT; echo; done"
    noted: dict[str, Any] = {}

    def remember_port() -> None:
        noted["port"] = _node_port(c, "hello-part3")

    def remember_node_ip() -> None:
        node = c.kjson("get", "nodes")["items"][0]
        noted["ip"] = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")

    def serving(n: int) -> None:
        wait_for(lambda: _endpoints_are_ready_pods(c, "hello-part3", sel, n), timeout=60,
                 what=f"the Service's endpoints to be the {n} ready pods")
        port = _node_port(c, "hello-part3")
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), timeout=20, what="the node port answering")

    shell = _shell_for(c, tmp_path)
    w = Walkthrough(DOCS / "walkthrough-seed001.md", shell)
    w.before = {
        "curl http://localhost:8001/version": lambda: wait_for(lambda: _listening(8001), timeout=15,
                                                                what="kubectl proxy listening"),
        "kubectl logs $POD_NAME": lambda: wait_for(
            lambda: "Running on" in c.kubectl("logs", "-l", sel).stdout, timeout=20, what="Flask's banner"),
        f"{curl_nodeport}@1": lambda: serving(1),
        f"{curl_nodeport}@2": lambda: wait_for(lambda: _refused(noted["port"]), timeout=20,
                                               what="the deleted Service's node port to close"),
        f"{curl_nodeport}@3": lambda: serving(1),
        "kubectl describe services/hello-part3@2": lambda: serving(4),
        "kubectl get deployments@5": lambda: wait_for(lambda: _deployment_is(c, "hello-part3", 2), timeout=30,
                                                      what="the Deployment's status at 2 replicas"),
        "kubectl get pods -o wide@5": lambda: wait_for(lambda: _ready_pods(c, sel, 2), timeout=60,
                                                       what="the scaled-down pods gone"),
        "kubectl describe services/hello-part3@3": lambda: serving(2),
        # After the update to the missing tag: the new pod fails to get its image.
        "kubectl get pods -o wide@8": lambda: wait_for(
            lambda: _waiting_reason(c, sel, {"ErrImagePull", "ImagePullBackOff"}), timeout=60,
            what="ErrImagePull for part3v10"),
        "kubectl get pods -o wide@9": lambda: wait_for(lambda: _ready_pods(c, sel, 2), timeout=60,
                                                       what="the failed pod gone after the undo"),
        last_loop: lambda: serving(2),
        "echo $ENDPOINT:$NODE_PORT": remember_node_ip,
        "kubectl delete service -l app=hello-part3": remember_port,
    }
    w.may_fail = {f"{curl_nodeport}@2"}  # the Service was just deleted: the seed shows the refused connection
    try:
        w.run()
    finally:
        shell.close()

    # Images built from the seed's Dockerfiles, stored locally under the seed's names.
    assert "naming to docker.io/tsouche/learn-kubernetes:part3v1 done" in w.output(
        "tinykube image build -t tsouche/learn-kubernetes:part3v1 app-part3/v1")
    build2 = w.output("tinykube image build -t tsouche/learn-kubernetes:part3v2 app-part3/v2")
    assert "naming to docker.io/tsouche/learn-kubernetes:part3v2 done" in build2
    images = w.output("tinykube image ls")
    assert re.search(r"tsouche/learn-kubernetes\s+part3v1\s", images) and re.search(
        r"tsouche/learn-kubernetes\s+part3v2\s", images), images
    assert "tinykube is up at https://" in w.output("tinykube up")
    assert re.search(r"^\S+\s+Ready\s+<none>\s.*tinykube://", w.output("kubectl get nodes -o wide"), re.M)

    # The Deployment and its first pod.
    assert w.output("kubectl create deployment hello-part3 --image=tsouche/learn-kubernetes:part3v1").startswith(
        "deployment.apps/hello-part3 created")
    assert 'deployment "hello-part3" successfully rolled out' in w.output(
        "kubectl rollout status deployment/hello-part3")
    assert re.search(r"^hello-part3\s+1/1\s+1\s+1\s", w.output("kubectl get deployments"), re.M)
    pod = w.output('echo $POD_NAME').strip()
    assert re.fullmatch(r"hello-part3-[a-z0-9]+-[a-z0-9]{5}", pod), pod
    wide = w.output("kubectl get pods -o wide")
    assert re.search(rf"^{pod}\s+1/1\s+Running\s+0\s+\S+\s+10\.\d+\.\d+\.\d+\s", wide, re.M), wide

    # kubectl proxy, describe, the API by URL, logs and exec.
    assert json.loads(w.output("curl http://localhost:8001/version").strip().splitlines()[-1])[
        "gitVersion"].startswith("v1.32")
    described = w.output("kubectl describe pods")
    assert f"Name:         {pod}" in described and "Image:          tsouche/learn-kubernetes:part3v1" in described
    assert 'Container image "tsouche/learn-kubernetes:part3v1" already present on machine' in described
    assert re.search(r"^default\s+Active", w.output("kubectl get namespace"), re.M)
    api = w.output("curl -s http://localhost:8001/api/v1/namespaces/default/pods/$POD_NAME/ | python3 -m json.tool "
                   "| head -n 12")
    assert '"kind": "Pod"' in api and '"name": "hello-part3-' in api, api
    assert "Serving Flask app 'app-part3-v1'" in w.output("kubectl logs $POD_NAME")
    env = w.output("kubectl exec $POD_NAME -- env").splitlines()
    assert f"HOSTNAME={pod}" in env and "NAME=World" in env, env
    assert "app-part3-v1.py" in w.output("kubectl exec $POD_NAME -- ls").split()
    inside = w.outputs("kubectl exec $POD_NAME -- curl -s localhost:80")
    assert all(HELLO.findall(o) == [("1", pod)] for o in inside), inside

    # The NodePort Service, from the host, on the node's address and on 127.0.0.1.
    assert "service/hello-part3 exposed" in w.output('kubectl expose deployment/hello-part3 --type="NodePort" --port 80')
    services = w.output("kubectl get services", 2)
    assert re.search(r"^hello-part3\s+NodePort\s+10\.\S+\s+<none>\s+80:3\d{4}/TCP", services, re.M), services
    assert w.output("echo $ENDPOINT:$NODE_PORT").strip().startswith(f"{noted['ip']}:3")  # the node's InternalIP
    assert HELLO.findall(w.output(curl_nodeport, 1)) == [("1", pod)]
    assert HELLO.findall(w.output("curl 127.0.0.1:$NODE_PORT")) == [("1", pod)]
    # Labels.
    assert f"pod/{pod} labeled" in w.output("kubectl label pod $POD_NAME version=v1")
    assert "version=v1" in w.output("kubectl describe pods $POD_NAME")
    assert pod in w.output("kubectl get pods -l version=v1")
    # Deleting the Service closes the node port; the pod still answers; a new Service gets a new port.
    assert 'service "hello-part3" deleted' in w.output("kubectl delete service -l app=hello-part3")
    refused = w.step(curl_nodeport, 2)
    assert refused.code == 7 and "Failed to connect" in refused.output, refused
    assert HELLO.findall(w.output(curl_nodeport, 3)) == [("1", pod)]

    # Scaling to 4, and the load balancing across them through the node port (§3.6.3).
    assert "deployment.apps/hello-part3 scaled" in w.output("kubectl scale deployments/hello-part3 --replicas=4")
    assert re.search(r"^hello-part3\s+4/4\s+4\s+4\s", w.output("kubectl get deployments", 4), re.M)
    scaled = w.output("kubectl describe deployments/hello-part3")
    assert re.search(r"Scaled up replica set hello-part3-\S+ from 1 to 4", scaled), scaled
    assert "4 desired | 4 updated | 4 total | 4 available | 0 unavailable" in scaled
    four = re.findall(r"^(hello-part3-\S+)\s+1/1\s+Running", w.output("kubectl get pods -o wide", 3), re.M)
    assert len(four) == 4 and pod in four, four
    assert re.search(r"Endpoints:\s+(10\.[\d.]+:80,){2}10\.[\d.]+:80 \+ 1 more\.\.\.",
                     w.output("kubectl describe services/hello-part3", 2))
    answers = HELLO.findall(w.output(lb_loop))
    hosts = Counter(h for _, h in answers)
    assert len(answers) == 10 and {v for v, _ in answers} == {"1"}, answers
    assert len(hosts) >= 2 and set(hosts) <= set(four), hosts

    # Scaling down to 2.
    assert re.search(r"^hello-part3\s+2/2\s+2\s+2\s", w.output("kubectl get deployments", 5), re.M)
    two = re.findall(r"^(hello-part3-\S+)\s+1/1\s+Running", w.output("kubectl get pods -o wide", 5), re.M)
    assert len(two) == 2 and set(two) <= set(four), two

    # The update to version 2.
    assert w.output("kubectl describe pods | grep -E '^Name:|Image:'", 1).count(
        "tsouche/learn-kubernetes:part3v1") == 2
    assert "deployment.apps/hello-part3 image updated" in w.output(
        "kubectl set image deployment/hello-part3 learn-kubernetes=tsouche/learn-kubernetes:part3v2")
    v2_pods = re.findall(r"^(hello-part3-\S+)\s+1/1\s+Running", w.output("kubectl get pods -o wide", 7), re.M)
    assert len(v2_pods) == 2 and not set(v2_pods) & set(four), v2_pods
    answers = HELLO.findall(w.output(v2_loop))
    assert len(answers) == 6 and all(v == "2" and h in v2_pods for v, h in answers), answers
    described = w.output("kubectl describe deployment/hello-part3")
    assert "deployment.kubernetes.io/revision: 2" in described
    assert "Image:         tsouche/learn-kubernetes:part3v2" in described

    # The update to a tag that does not exist, and the rollback.
    bad = w.output("kubectl get pods -o wide", 8)
    assert re.search(r"^hello-part3-\S+\s+0/1\s+(ErrImagePull|ImagePullBackOff)\s", bad, re.M), bad
    assert len(re.findall(r"^hello-part3-\S+\s+1/1\s+Running", bad, re.M)) == 2, "v2 kept serving"
    assert 'Failed to pull image "tsouche/learn-kubernetes:part3v10"' in w.output("kubectl describe pods", 2)
    assert "deployment.apps/hello-part3 rolled back" in w.output("kubectl rollout undo deployments/hello-part3")
    after = re.findall(r"^(hello-part3-\S+)\s+1/1\s+Running", w.output("kubectl get pods -o wide", 9), re.M)
    assert sorted(after) == sorted(v2_pods), "the same v2 pods serve after the undo"
    assert w.output("kubectl describe pods | grep -E '^Name:|Image:'", 2).count(
        "tsouche/learn-kubernetes:part3v2") == 2
    revisions = re.findall(r"^(\d+)\s+<none>", w.output("kubectl rollout history deployments/hello-part3"), re.M)
    assert revisions == ["1", "3", "4"], revisions
    answers = HELLO.findall(w.output(last_loop))
    assert len(answers) == 4 and all(v == "2" for v, _ in answers), answers

    # Clean up: the doc stopped the cluster.
    assert "tinykube stopped" in w.output("tinykube down")


def _rs_sampler(c: Cluster, samples: list[tuple[int, int, int]], stop_event: threading.Event) -> None:
    """Sample the storefront ReplicaSets: (sum of desired replicas, sum of available replicas, ReplicaSet count)."""
    while not stop_event.is_set():
        try:
            items = c.kjson("get", "replicasets", "-l", "app=storefront")["items"]
        except (AssertionError, ValueError, subprocess.TimeoutExpired):
            items = None
        if items is not None:
            samples.append((sum(int(rs["spec"].get("replicas", 0)) for rs in items),
                            sum(int((rs.get("status") or {}).get("availableReplicas") or 0) for rs in items),
                            len(items)))
        stop_event.wait(0.3)


def test_seed003_walkthrough(walk_cluster: Cluster, tmp_path: Path) -> None:
    c = walk_cluster
    sel = "app=storefront"
    status = "curl -s http://127.0.0.1:$NODE_PORT/sf/status"
    set_image = "kubectl set image deployment storefront storefront=storefront:0.0.2 --record"
    image_of = "kubectl get deployment storefront -o jsonpath='{.spec.template.spec.containers[0].image}{\"\\n\"}'"
    history = "kubectl rollout history deployment storefront"
    load: dict[str, Any] = {}
    samples: list[tuple[int, int, int]] = []
    sampling = threading.Event()
    sampler = threading.Thread(target=_rs_sampler, args=(c, samples, sampling), daemon=True)

    def serving() -> None:
        wait_for(lambda: _endpoints_are_ready_pods(c, "storefront", sel, len(_pods(c, sel))), timeout=60,
                 what="the Service's endpoints to be the ready pods")
        port = _node_port(c, "storefront")
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/sf/status"), timeout=20, what="the node port answering")

    def start_load() -> None:
        url = f"http://127.0.0.1:{_node_port(c, 'storefront')}/sf/status"
        # 2 keep-alive and 2 new-connection clients, 100 requests/s in all, from before the update to after the
        # second rollback; the doc's own curl loop runs beside it.
        load["proc"] = subprocess.Popen([sys.executable, str(LOADGEN), url, "--rate", "100", "--keepalive", "2",
                                         "--new-conn", "2", "--duration", "600", "--until-stdin-closes"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        sampler.start()
        time.sleep(1.0)  # traffic flows before the update starts

    def stop_load() -> None:
        sampling.set()
        sampler.join(10)
        out, _ = load["proc"].communicate("", timeout=60)
        load["stats"] = json.loads(out)

    shell = _shell_for(c, tmp_path)
    w = Walkthrough(DOCS / "walkthrough-seed003.md", shell)
    w.before = {
        f"{status}@1": serving,
        # Right after `set image`: the controller has made the new ReplicaSet (a reader sees it too).
        "kubectl get all@2": lambda: wait_for(lambda: len(c.kjson("get", "rs", "-l", sel)["items"]) == 2,
                                              timeout=10, what="the new ReplicaSet"),
        f"{status}@2": serving,
        f"{status}@3": serving,
        f"{status}@4": serving,
        set_image: start_load,
        "kill %1": stop_load,
    }
    try:
        w.run()
    finally:
        sampling.set()
        if "proc" in load and load["proc"].poll() is None:
            load["proc"].kill()
            load["proc"].wait()
        shell.close()

    assert "tinykube is up at https://" in w.output("tinykube up")
    for v in ("0.0.1", "0.0.2"):
        built = w.output(f"tinykube image build -t storefront:{v} --build-arg VERSION={v} storefront")
        assert f"naming to docker.io/library/storefront:{v} done" in built, built
    assert re.search(r"^storefront\s+0\.0\.2\s", w.output("tinykube image ls storefront"), re.M)

    # The starting point: one pod, answering 0.0.1 through the node port.
    assert "deployment.apps/storefront created" in w.output("kubectl apply -f storefront-deployment.yaml --record")
    first = json.loads(w.output(status, 1))
    assert first["version"] == "0.0.1" and first["alive"] is True, first

    # The rolling-update rules: applied with --record; no new revision, the first pod kept, three added.
    applied = w.output("kubectl apply -f storefront-deployment-v0.0.1.yaml --record")
    assert "deployment.apps/storefront configured" in applied and "--record has been deprecated" in applied
    assert re.findall(r"^(\d+)\s+(.*\S)", w.output(history, 1), re.M) == [
        ("1", "kubectl apply --filename=storefront-deployment-v0.0.1.yaml --record=true")]
    everything = w.output("kubectl get all", 1)
    assert len(re.findall(r"^replicaset\.apps/storefront-", everything, re.M)) == 1, everything
    assert first["hostname"] in everything
    assert len(re.findall(r"^pod/storefront-\S+\s+1/1\s+Running", everything, re.M)) == 4, everything

    # The update: mid-rollout pictures within maxSurge 1 / maxUnavailable 1.
    assert "deployment.apps/storefront image updated" in w.output(set_image)
    for snapshot in w.outputs("kubectl get all")[1:3]:
        rs = [(int(d), int(r)) for d, r in re.findall(
            r"^replicaset\.apps/storefront-\S+\s+(\d+)\s+\d+\s+(\d+)\s", snapshot, re.M)]
        found = re.search(r"^deployment\.apps/storefront\s+\S+\s+\d+\s+(\d+)\s", snapshot, re.M)
        assert found, snapshot
        available = int(found[1])
        assert len(rs) == 2 and sum(d for d, _ in rs) <= 5 and available >= 3, snapshot
    rollout = w.output("kubectl rollout status deployment storefront", 3)
    assert 'Waiting for deployment "storefront" rollout to finish' in rollout
    assert rollout.rstrip().endswith('deployment "storefront" successfully rolled out'), rollout
    done = w.output("kubectl get all", 4)
    assert re.search(r"^deployment\.apps/storefront\s+4/4\s+4\s+4\s", done, re.M), done
    assert sorted(int(d) for d in re.findall(r"^replicaset\.apps/storefront-\S+\s+(\d+)\s", done, re.M)) == [0, 4]
    assert re.findall(r"^(\d+)\s+(.*\S)", w.output(history, 2), re.M) == [
        ("1", "kubectl apply --filename=storefront-deployment-v0.0.1.yaml --record=true"),
        ("2", "kubectl set image deployment storefront storefront=storefront:0.0.2 --record=true")]
    described = w.output("kubectl describe deployment storefront")
    assert "RollingUpdateStrategy:  1 max unavailable, 1 max surge" in described
    assert "Image:         storefront:0.0.2" in described
    assert re.search(r"Scaled up replica set storefront-\S+ from 0 to 1", described)
    assert json.loads(w.output(status, 2))["version"] == "0.0.2"

    # The rollback: the old ReplicaSet's template, revision 1 renumbered 3; then --to-revision=2.
    rs_described = w.output("kubectl describe replicasets -l app=storefront")
    assert "deployment.kubernetes.io/revision: 1" in rs_described and "Image:         storefront:0.0.1" in rs_described
    assert "Image:\tstorefront:0.0.1" in w.output("kubectl rollout history deployment storefront --revision=1")
    assert "deployment.apps/storefront rolled back" in w.output("kubectl rollout undo deployment storefront")
    assert [r for r, _ in re.findall(r"^(\d+)\s+(.*\S)", w.output(history, 3), re.M)] == ["2", "3"]
    assert w.output(image_of, 1).strip() == "storefront:0.0.1"
    assert json.loads(w.output(status, 3))["version"] == "0.0.1"
    assert "rolled back" in w.output("kubectl rollout undo deployment storefront --to-revision=2")
    assert [r for r, _ in re.findall(r"^(\d+)\s+(.*\S)", w.output(history, 4), re.M)] == ["3", "4"]
    assert w.output(image_of, 2).strip() == "storefront:0.0.2"
    assert json.loads(w.output(status, 4))["version"] == "0.0.2"

    # The service answered throughout: the doc's own curl loop...
    replies = (c.home / "helidon-kubernetes" / "replies.log").read_text().splitlines()
    failures = [r for r in replies if not r.startswith("{")]
    assert not failures, failures[:10]
    seen = Counter(json.loads(r)["version"] for r in replies)
    assert seen["0.0.1"] > 0 and seen["0.0.2"] > 0, seen
    assert w.output("grep 'curl:' replies.log | wc -l").split() == ["0"]
    assert int(w.output("grep -c '\"alive\":true' replies.log").split()[0]) > 0
    timeline = re.findall(r'^\s*\d+ "version":"([\d.]+)"', w.output("grep -o '\"version\":\"[0-9.]*\"' replies.log "
                                                                   "| uniq -c"), re.M)
    assert timeline[0] == "0.0.1" and timeline[-1] == "0.0.2" and "0.0.1" in timeline[1:], timeline
    # ...and the load generator, with several clients, from before the update to after the second rollback.
    stats = load["stats"]
    print(json.dumps({k: v for k, v in stats.items() if k != "bodies"}))
    assert stats["sent"] > 500 and stats["failed"] == 0 and stats["ok"] == stats["sent"], stats
    versions: Counter[str] = Counter()
    for body, n in stats["bodies"].items():  # first line of each answer, cut at 80 characters
        versions[re.search(r'"version":"([\d.]+)"', body)[1]] += n  # type: ignore[index]
    assert versions["0.0.1"] > 0 and versions["0.0.2"] > 0, versions
    # ...while the ReplicaSets stayed within the strategy: at most 4 + 1 pods wanted, at least 4 - 1 available.
    assert len(samples) > 10, samples
    assert all(desired <= 5 for desired, _, _ in samples), samples
    assert all(available >= 3 for _, available, _ in samples), samples
    assert any(count == 2 and desired == 5 for desired, _, count in samples), "no sample caught the surge"
    assert "tinykube stopped" in w.output("tinykube down")
