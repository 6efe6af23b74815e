#!/usr/bin/env python3
"""Goal 1: ``tinykube up`` to API ready in <= 1 s (kind 12-17 s, k3d 6-12 s, minikube 20-25 s, kwok ~5 s).

Times the CLI command end to end (process start to exit; ``up`` exits once the API serves) over N runs,
each on a fresh data dir, and a restart of that same data dir after ``tinykube down``. Also prints the
server-reported ``startup_seconds`` (from ``run_server`` entry to the socket serving), and, as baselines
measured in the same run, a bare interpreter start (``python3 -c pass``) and the server's import time
(``python3 -c "import tinykube.server.cluster"``). The first kubectl command after ``up`` (``kubectl get
ns`` with a cold discovery cache, as a new user would run it) is reported separately, with kubectl's own
start (``kubectl version --client``) and a warm-cache ``kubectl get ns`` for reference.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from _common import KUBECTL, Reporter, Workspace, base_parser, median, run_main, tinykube_cmd

GOAL_S = 1.0


def time_cmd(argv: list[str], runs: int) -> list[float]:
    out: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = base_parser(__doc__ or "")
    ap.add_argument("--runs", type=int, default=5, help="fresh-cluster runs (each also restarted once)")
    a = ap.parse_args()
    runs = 2 if a.quick else a.runs
    rep = Reporter("1", "tinykube up to API ready", a.quick)
    rep.header()
    py = sys.executable
    rep.info(f"interpreter {py}; CLI {' '.join(tinykube_cmd())}; kubectl {KUBECTL}")

    # Baselines first, in the same run.
    t_pass = time_cmd([py, "-c", "pass"], runs + 2)
    t_import = time_cmd([py, "-c", "import tinykube.server.cluster"], runs + 2)
    t_cli_import = time_cmd([py, "-c", "import tinykube.cli.main"], runs + 2)
    t_kversion = time_cmd([KUBECTL, "version", "--client"], runs + 2) if KUBECTL else []

    fresh: list[float] = []
    restart: list[float] = []
    srv_fresh: list[float] = []
    srv_restart: list[float] = []
    kfirst: list[float] = []
    kwarm: list[float] = []
    krestart: list[float] = []
    downs: list[float] = []
    parts: dict[str, dict[str, list[float]]] = {"fresh": {}, "restart": {}}

    def keep_parts(kind: str, d: dict[str, float]) -> None:
        for k, v in d.items():
            parts[kind].setdefault(k, []).append(v)
    with Workspace(a.keep) as ws:
        # The CLI alone, no server: `tinykube status` on a data dir where nothing runs (exit status 3).
        stopped = ws.path("stopped")
        t_status = []
        for _ in range(runs + 2):
            t = time.perf_counter()
            subprocess.run([*tinykube_cmd(), "status", "--data-dir", str(stopped)], capture_output=True)
            t_status.append(time.perf_counter() - t)
        for i in range(runs):
            c = ws.new_cluster(f"run{i}")
            fresh.append(c.up())
            keep_parts("fresh", c.last_up)
            srv_fresh.append(float(c.state["startup_seconds"]))
            if KUBECTL:
                dt, p = c.kubectl("get", "ns")
                if b"default" not in p.stdout:
                    raise RuntimeError(f"kubectl get ns did not list default: {p.stdout!r}")
                kfirst.append(dt)
                kwarm.append(c.kubectl("get", "ns")[0])
            downs.append(c.down())
            restart.append(c.up())
            keep_parts("restart", c.last_up)
            srv_restart.append(float(c.state["startup_seconds"]))
            if KUBECTL:
                krestart.append(c.kubectl("get", "ns")[0])
            c.down(purge=True)
            rep.info(f"run {i + 1}: up fresh {fresh[-1]:.3f} s (server {srv_fresh[-1]:.3f} s), "
                     f"restart {restart[-1]:.3f} s (server {srv_restart[-1]:.3f} s)"
                     + (f", first kubectl get ns {kfirst[-1]:.3f} s" if kfirst else ""))
        # When `tinykube` on PATH is something else (e.g. a pyenv shim), time it once too.
        path_cli = None
        found = shutil.which("tinykube")
        if found and found != tinykube_cmd()[0]:
            c = ws.new_cluster("via-path")
            path_cli = c.up([found])
            c.down(purge=True)

    rep.add("up, fresh data dir: median", median(fresh), "s", GOAL_S)
    rep.add("up, fresh data dir: max", max(fresh), "s", GOAL_S)
    rep.add("up, restart existing data dir: median", median(restart), "s", GOAL_S)
    rep.add("up, restart existing data dir: max", max(restart), "s", GOAL_S)
    rep.add("server-reported startup_seconds, fresh: median", median(srv_fresh), "s", kind="info")
    rep.add("server-reported startup_seconds, restart: median", median(srv_restart), "s", kind="info")
    rep.add("python3 -c pass: median", median(t_pass), "s", kind="baseline")
    rep.add("python3 -c 'import tinykube.server.cluster': median", median(t_import), "s", kind="baseline")
    rep.add("python3 -c 'import tinykube.cli.main': median", median(t_cli_import), "s", kind="baseline")
    rep.add("tinykube status on a stopped data dir (CLI alone): median", median(t_status), "s", kind="baseline")
    labels = {"cli_before_spawn": "CLI start -> server process spawned",
              "server_start_to_ready": "server process spawned -> ready",
              "ready_to_cli_exit": "server ready -> CLI exited"}
    for kind in ("fresh", "restart"):
        for k, label in labels.items():
            rep.add(f"up, {kind}: {label}: median", median(parts[kind].get(k, [])), "s", kind="info")
    rep.add("down: median", median(downs), "s", kind="info")
    if path_cli is not None:
        rep.add("up, fresh, via `tinykube` on PATH (one run)", path_cli, "s", kind="info",
                note=f"({shutil.which('tinykube')}: a wrapper such as a pyenv shim adds its own start)")
    if KUBECTL:
        rep.add("first kubectl get ns after up (cold cache): median", median(kfirst), "s", kind="info")
        rep.add("first kubectl get ns after up (cold cache): max", max(kfirst), "s", kind="info")
        rep.add("kubectl get ns, warm discovery cache: median", median(kwarm), "s", kind="info")
        rep.add("kubectl get ns right after a restart: median", median(krestart), "s", kind="info")
        rep.add("kubectl version --client (kubectl start): median", median(t_kversion), "s", kind="baseline")
    rep.footer()
    rep.write_json(a.json_out)
    return 0


if __name__ == "__main__":
    run_main(main)
