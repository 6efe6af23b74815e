#!/usr/bin/env python3
"""Run every benchmark in bench/ one after the other and print a summary table of the goals.

Each script runs as its own process (its output streams through as it runs) and hands its figures back as
JSON; the summary lists every figure with a goal (PASS/MISS) and the baselines measured in the same run.
Exit status: 0 when every script ran to the end (a MISS is a result, not a failure), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("1", "bench_startup.py"),
    ("2", "bench_latency.py"),
    ("3", "bench_list.py"),
    ("4", "bench_watch.py"),
    ("5", "bench_restart_100k.py"),
    ("issue 3", "bench_workloads.py"),
    ("issue 4", "bench_agent.py"),
    ("issue 5", "bench_services.py"),
]


def run(script: str, quick: bool, out: Path) -> tuple[int, float]:
    cmd = [sys.executable, str(HERE / script), "--json-out", str(out), *(["--quick"] if quick else [])]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd)
    try:
        rc = proc.wait()
    except BaseException:
        # Let the benchmark stop its own clusters (it handles SIGTERM), then make sure it is gone.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    return rc, time.perf_counter() - t


def fmt(v: float) -> str:
    if v != v:
        return "n/a"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (smoke run)")
    ap.add_argument("--only", default="", help="comma-separated goal numbers to run, e.g. 1,3")
    a = ap.parse_args()
    only = {x.strip() for x in a.only.split(",") if x.strip()}

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through run(), which stops the benchmark

    signal.signal(signal.SIGTERM, on_term)
    results: list[tuple[str, str, int, float, dict[str, Any] | None]] = []
    with tempfile.TemporaryDirectory(prefix="tinykube-bench-all-") as tmp:
        for goal, script in SCRIPTS:
            if only and goal not in only:
                continue
            out = Path(tmp) / f"goal{goal}.json"
            rc, dt = run(script, a.quick, out)
            doc = json.loads(out.read_text()) if out.exists() else None
            results.append((goal, script, rc, dt, doc))
            print(flush=True)

    print("=" * 104)
    print(f"SUMMARY{' (--quick smoke run)' if a.quick else ''}")
    print(f"{'goal':<5} {'figure':<62} {'value':>10} {'unit':<6} {'goal':<12} {'status':<6}")
    print("-" * 104)
    n_pass = n_miss = 0
    failed: list[str] = []
    for goal, script, rc, dt, doc in results:
        if rc != 0 or doc is None:
            failed.append(f"{script} (exit {rc})")
        if doc is None:
            print(f"{goal:<5} {script + ': no figures (the script failed)':<62}")
            continue
        for f in doc["figures"]:
            if f["limit"] is None and f["kind"] != "baseline":
                continue
            status = f["status"]
            n_pass += status == "PASS"
            n_miss += status == "MISS"
            sign = ">=" if f["kind"] == "min" else "<="
            limit = f"{sign} {fmt(f['limit'])}" if f["limit"] is not None else "(baseline)"
            print(f"{goal:<5} {f['name'][:62]:<62} {fmt(f['value']):>10} {f['unit']:<6} {limit:<12} {status:<6}")
        print(f"{'':<5} {'(' + script + f' ran in {dt:.0f} s)':<62}")
    print("-" * 104)
    print(f"{n_pass} PASS, {n_miss} MISS" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
