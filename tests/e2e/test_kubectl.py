"""The real kubectl against a cluster started by ``tinykube up``: the control-plane acceptance commands."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

from .conftest import Cluster

MANIFESTS = Path(__file__).parent / "manifests"


def test_namespaces_exist(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "ns").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "AGE"]
    names = {ln.split()[0]: ln.split()[1] for ln in lines[1:]}
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert names.get(ns) == "Active", out
    sa = cluster.kjson("get", "serviceaccount", "default", "-n", "default")
    assert sa["metadata"]["name"] == "default"


def test_configmap_from_literal_and_file(cluster: Cluster, tmp_path: Path) -> None:
    f = tmp_path / "app.properties"
    f.write_text("color=blue\nsize=10\n")
    cluster.kubectl("create", "configmap", "cfg", "--from-literal=greeting=hello", f"--from-file={f}")
    cm = cluster.kjson("get", "configmap", "cfg")
    assert cm["data"]["greeting"] == "hello"
    assert cm["data"]["app.properties"] == "color=blue\nsize=10\n"
    out = cluster.kubectl("get", "cm", "cfg").stdout.splitlines()
    assert out[0].split() == ["NAME", "DATA", "AGE"] and out[1].split()[:2] == ["cfg", "2"]


def test_secret_base64_and_encrypted_at_rest(cluster: Cluster) -> None:
    marker = "tinykube-plaintext-8d7f1c"
    cluster.kubectl("create", "secret", "generic", "creds", f"--from-literal=password={marker}")
    y = cluster.kubectl("get", "secret", "creds", "-o", "yaml").stdout
    b64 = base64.b64encode(marker.encode()).decode()
    assert f"password: {b64}" in y
    raw = b"".join(p.read_bytes() for p in cluster.data_dir.glob("state.db*"))
    assert marker.encode() not in raw and b64.encode() not in raw
    key = cluster.data_dir / "secrets.key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_apply_seed_deployments_then_edited_reapply(cluster: Cluster, tmp_path: Path) -> None:
    cluster.kubectl("create", "namespace", "opseng")
    out = cluster.kubectl("apply", "-f", str(MANIFESTS / "storefront.yaml")).stdout
    assert "deployment.apps/storefront created" in out
    out = cluster.kubectl("apply", "-f", str(MANIFESTS / "dummy-flask-app.yaml")).stdout
    assert "deployment.apps/dummy-flask-app created" in out
    d = cluster.kjson("get", "deploy", "dummy-flask-app", "-n", "opseng")
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['quantil.com/externalIP']"
    assert c["resources"]["limits"]["cpu"] == "200m"
    assert d["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "myregistrykey"}]
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert d["spec"]["revisionHistoryLimit"] == 10 and d["spec"]["progressDeadlineSeconds"] == 600
    assert d["metadata"]["generation"] == 1
    # Seed 000's update: the image tag goes from 1.0.0 to 1.5.0, re-applied (client-side three-way merge).
    edited = (MANIFESTS / "dummy-flask-app.yaml").read_text().replace("1.0.0", "1.5.0").replace(
        "replicas: 3", "replicas: 5")
    f = tmp_path / "dummy-flask-app.yml"
    f.write_text(edited)
    out = cluster.kubectl("apply", "-f", str(f)).stdout
    assert "deployment.apps/dummy-flask-app configured" in out
    d = cluster.kjson("get", "deploy", "dummy-flask-app", "-n", "opseng")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.5.0")
    assert d["spec"]["replicas"] == 5 and d["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"]
    # Unchanged re-apply is a no-op.
    out = cluster.kubectl("apply", "-f", str(f)).stdout
    assert "unchanged" in out
    # Strategy from seed 003 kept as written.
    s = cluster.kjson("get", "deploy", "storefront")
    assert s["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}


def test_server_side_apply(cluster: Cluster, tmp_path: Path) -> None:
    m = (MANIFESTS / "storefront.yaml").read_text().replace("name: storefront\nspec", "name: storefront-ssa\nspec")
    f = tmp_path / "ssa.yaml"
    f.write_text(m)
    out = cluster.kubectl("apply", "--server-side", "-f", str(f)).stdout
    assert "serverside-applied" in out
    f.write_text(m.replace("replicas: 4", "replicas: 2"))
    cluster.kubectl("apply", "--server-side", "-f", str(f))
    d = cluster.kjson("get", "deploy", "storefront-ssa", "--show-managed-fields")
    assert d["spec"]["replicas"] == 2
    managers = {e["manager"]: e["operation"] for e in d["metadata"]["managedFields"]}
    assert managers.get("kubectl") == "Apply"
    # Another manager owning replicas makes a non-forced apply conflict.
    cluster.kubectl("scale", "deploy/storefront-ssa", "--replicas=3")
    f.write_text(m.replace("replicas: 4", "replicas: 6"))
    p = cluster.kubectl("apply", "--server-side", "-f", str(f), check=False)
    assert p.returncode != 0 and "conflict" in p.stderr.lower()
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
    assert cluster.kjson("get", "deploy", "storefront-ssa")["spec"]["replicas"] == 6


def test_get_output_formats(cluster: Cluster) -> None:
    cluster.kubectl("create", "deployment", "fmt", "--image=nginx:1.25", "--replicas=2")
    lines = cluster.kubectl("get", "deployments").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    row = next(ln for ln in lines if ln.startswith("fmt "))
    assert row.split()[1:4] == ["0/2", "2", "0"]  # no node runs pods: 2 up to date, none available
    wide = cluster.kubectl("get", "deploy", "fmt", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[5:] == ["nginx", "nginx:1.25", "app=fmt"]
    assert cluster.kubectl("get", "deploy", "fmt", "-o", "name").stdout.strip() == "deployment.apps/fmt"
    assert cluster.kubectl("get", "deploy", "fmt", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    tpl = cluster.kubectl("get", "deploy", "-o", "go-template",
                          "--template", '{{range .items}}{{.metadata.name}}{{"\\n"}}{{end}}').stdout.split()
    assert "fmt" in tpl
    y = cluster.kubectl("get", "deploy", "fmt", "-o", "yaml").stdout
    assert "kind: Deployment" in y and "apiVersion: apps/v1" in y
    j = cluster.kjson("get", "deploy", "fmt")
    assert j["metadata"]["uid"] and j["metadata"]["resourceVersion"]
    allout = cluster.kubectl("get", "all").stdout
    assert "deployment.apps/fmt" in allout and "service/kubernetes" in allout


def test_describe_label_annotate_selectors(cluster: Cluster) -> None:
    cluster.kubectl("create", "deployment", "lbl", "--image=nginx:1.25")
    out = cluster.kubectl("describe", "deployment", "lbl").stdout
    assert "Name:" in out and "lbl" in out and "StrategyType:" in out and "RollingUpdate" in out
    cluster.kubectl("label", "deployment", "lbl", "tier=frontend")
    cluster.kubectl("annotate", "deployment", "lbl", "owner=team-a")
    d = cluster.kjson("get", "deploy", "lbl")
    assert d["metadata"]["labels"]["tier"] == "frontend" and d["metadata"]["annotations"]["owner"] == "team-a"
    names = cluster.kubectl("get", "deploy", "-l", "tier=frontend", "-o", "name").stdout.split()
    assert names == ["deployment.apps/lbl"]
    names = cluster.kubectl("get", "deploy", "-l", "tier in (frontend,backend)", "-o", "name").stdout.split()
    assert names == ["deployment.apps/lbl"]
    assert cluster.kubectl("get", "deploy", "-l", "tier!=frontend", "-o", "name").stdout.count("lbl") == 0
    fs = cluster.kubectl("get", "deploy", "--field-selector", "metadata.name=lbl", "-o", "name").stdout.split()
    assert fs == ["deployment.apps/lbl"]


def test_set_image_scale_and_edit(cluster: Cluster, tmp_path: Path) -> None:
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.25")
    out = cluster.kubectl("set", "image", "deployment/web", "nginx=nginx:1.26").stdout
    assert "image updated" in out
    d = cluster.kjson("get", "deploy", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert d["metadata"]["generation"] == 2
    out = cluster.kubectl("scale", "deployment/web", "--replicas=4").stdout
    assert "scaled" in out
    assert cluster.kjson("get", "deploy", "web")["spec"]["replicas"] == 4
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\np=sys.argv[1]\ns=open(p).read().replace('replicas: 4','replicas: 7')\n"
                      "open(p,'w').write(s)\n")
    cluster.kubectl("edit", "deployment/web", env={"KUBE_EDITOR": f"{sys.executable} {editor}"})
    assert cluster.kjson("get", "deploy", "web")["spec"]["replicas"] == 7
    p = cluster.kubectl("scale", "deployment/web", "--replicas=-1", check=False)
    assert p.returncode != 0


def test_delete_by_label(cluster: Cluster) -> None:
    for n in ("d1", "d2"):
        cluster.kubectl("create", "configmap", n, "--from-literal=a=b")
        cluster.kubectl("label", "configmap", n, "batch=x")
    out = cluster.kubectl("delete", "configmap", "-l", "batch=x").stdout
    assert 'configmap "d1" deleted' in out and 'configmap "d2" deleted' in out
    assert cluster.kubectl("get", "cm", "-l", "batch=x", "-o", "name").stdout.strip() == ""


def test_get_watch_sees_a_change(cluster: Cluster) -> None:
    cluster.kubectl("create", "configmap", "watched", "--from-literal=a=1")
    p = subprocess.Popen(["kubectl", "get", "configmap", "watched", "-w", "-o", "name", "--request-timeout=20s"],
                         env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        cluster.kubectl("label", "configmap", "watched", "changed=yes")
        time.sleep(1.0)
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=10)
    assert out.count("configmap/watched") >= 2, out


def test_namespace_context_switch_and_deletion(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "team")
    cluster.kubectl("create", "configmap", "inside", "-n", "team", "--from-literal=a=b")
    kc = cluster.data_dir / "kubeconfig"
    copy = cluster.home / "kc-copy"
    copy.write_text(kc.read_text())
    env = {"KUBECONFIG": str(copy)}
    cluster.kubectl("config", "set-context", "--current", "--namespace=team", env=env)
    p = cluster.kubectl("get", "pods", env=env, check=False)
    assert p.returncode == 0 and "No resources found in team namespace." in (p.stdout + p.stderr)
    assert "inside" in cluster.kubectl("get", "cm", env=env).stdout
    cluster.kubectl("delete", "namespace", "team", "--timeout=30s")
    p = cluster.kubectl("get", "ns", "team", check=False)
    assert p.returncode != 0 and "NotFound" in p.stderr
    cluster.kubectl("create", "namespace", "team")
    assert "inside" not in cluster.kubectl("get", "cm", "-n", "team").stdout


def test_explain(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "deployment.spec.strategy").stdout
    assert "KIND:" in out and "Deployment" in out and "rollingUpdate" in out and "FIELD: strategy" in out


def test_strict_validation_and_invalid(cluster: Cluster, tmp_path: Path) -> None:
    bad = (MANIFESTS / "storefront.yaml").read_text().replace("name: storefront\nspec", "name: sf-bad\nspec").replace(
        "image: fra", "imagee: x\n        image: fra")
    f = tmp_path / "bad.yaml"
    f.write_text(bad)
    p = cluster.kubectl("apply", "-f", str(f), check=False)
    assert p.returncode != 0 and 'unknown field "spec.template.spec.containers[0].imagee"' in p.stderr
    neg = (MANIFESTS / "storefront.yaml").read_text().replace("name: storefront\nspec", "name: sf-neg\nspec").replace(
        "replicas: 4", "replicas: -1")
    f.write_text(neg)
    p = cluster.kubectl("apply", "-f", str(f), check=False)
    assert p.returncode != 0
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in p.stderr


def test_unauthorized_without_token(cluster: Cluster) -> None:
    url = cluster.state["url"]
    p = subprocess.run(["kubectl", "--server", url, "--insecure-skip-tls-verify", "--token", "not-the-token", "get", "ns",
                        "--kubeconfig", "/dev/null"], capture_output=True, text=True, env=cluster.env, timeout=30)
    assert p.returncode != 0 and ("Unauthorized" in p.stderr or "provide credentials" in p.stderr)


def test_status_lists_counts(cluster: Cluster) -> None:
    out = cluster.tinykube("status", "--data-dir", str(cluster.data_dir)).stdout
    assert "running" in out and cluster.state["url"] in out and "namespaces" in out
    assert json.loads((cluster.data_dir / "server.json").read_text())["pid"] == cluster.pid()
