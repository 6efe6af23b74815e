"""Shared helpers for the benchmark scripts in bench/ (not a benchmark itself).

* :class:`Reporter` prints one result line per figure (with the goal and PASS/MISS where there is a goal)
  and can write the figures as JSON for ``run_all.py``.
* :class:`Cluster` starts a real cluster with ``tinykube up --port 0 --no-kubeconfig-merge`` in a temporary
  data dir, with its own HOME (so kubectl's caches and the user's kubeconfig are never touched), and stops
  it by the PID the server recorded. :class:`Workspace` owns the temporary directory and stops every cluster
  started under it on exit, Ctrl-C or SIGTERM.
* :func:`raw_request` / :class:`RawStream`: a minimal HTTP/1.1 client over asyncio TLS, used where client
  overhead would distort a measurement (watch streams are timestamped at ``data_received``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinykube.server.state import pid_alive

BIN_DIR = Path(sys.executable).parent


def tinykube_cmd() -> list[str]:
    """The ``tinykube`` console script pip installed next to this interpreter (else PATH, else ``-m``)."""
    direct = BIN_DIR / "tinykube"
    if direct.exists():
        return [str(direct)]
    found = shutil.which("tinykube")
    if found:
        return [found]
    return [sys.executable, "-m", "tinykube.cli"]


KUBECTL = shutil.which("kubectl")


# -- statistics ------------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of values; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- reporting -------------------------------------------------------------------------------------------------
@dataclass
class Figure:
    goal: str  # e.g. "1"
    name: str
    value: float
    unit: str  # "s", "ms", "req/s", "MiB", ...
    limit: float | None = None  # the goal: value must be <= limit (same unit); >= limit for kind "min"
    kind: str = "figure"  # figure | min | baseline | info
    note: str = ""

    @property
    def status(self) -> str:
        if self.limit is None:
            return ""
        ok = self.value >= self.limit if self.kind == "min" else self.value <= self.limit
        return "PASS" if self.value == self.value and ok else "MISS"


class Reporter:
    def __init__(self, goal: str, title: str, quick: bool = False) -> None:
        self.goal = goal
        self.title = title
        self.quick = quick
        self.figures: list[Figure] = []

    def header(self) -> None:
        mode = " (--quick smoke run: figures are not the real measurement)" if self.quick else ""
        print(f"== goal {self.goal}: {self.title}{mode}", flush=True)
        self.info(f"machine: {os.cpu_count()} CPUs, load average {load_text()} at start")

    def footer(self) -> None:
        self.info(f"load average {load_text()} at end (other processes on this machine skew the figures)")

    def add(self, name: str, value: float, unit: str, limit: float | None = None, kind: str = "figure",
            note: str = "") -> Figure:
        f = Figure(self.goal, name, value, unit, limit, kind, note)
        self.figures.append(f)
        if limit is not None:
            goal = f"goal {'>=' if kind == 'min' else '<='} {_num(limit)} {unit}"
            tail = f"{goal:<22} {f.status}"
        else:
            tail = f"{'(' + kind + ')':<22}"
        extra = f"  {note}" if note else ""
        print(f"  {name:<58} {_num(value):>10} {unit:<6} {tail}{extra}", flush=True)
        return f

    def info(self, text: str) -> None:
        print(f"  . {text}", flush=True)

    def write_json(self, path: str | None) -> None:
        if not path:
            return
        Path(path).write_text(json.dumps({"goal": self.goal, "title": self.title, "quick": self.quick,
                                          "figures": [asdict(f) | {"status": f.status} for f in self.figures]}))


def _num(v: float) -> str:
    if v != v:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def load_text() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def base_parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="short smoke run (small sizes; figures not meaningful)")
    ap.add_argument("--json-out", default=None, help="also write the figures as JSON to this file (run_all.py)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (clusters are still stopped)")
    return ap


# -- processes -------------------------------------------------------------------------------------------------
def server_pids_for(data_dir: Path) -> list[int]:
    """PIDs of tinykube server processes whose command line names this (unique, temporary) data dir."""
    out: list[int] = []
    needle = str(data_dir)
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            args = [a.decode(errors="replace") for a in (p / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if "tinykube.server" in args and needle in args:
            out.append(int(p.name))
    return out


def kill_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM one process, then SIGKILL it if it has not exited within timeout."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.02)


def process_start_time(pid: int) -> float:
    """Wall-clock time a process started (boot time + /proc/PID/stat starttime; clock-tick resolution)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
    except (OSError, StopIteration):
        return float("nan")
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def dir_size(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file())


# -- clusters --------------------------------------------------------------------------------------------------
class Workspace:
    """A temporary directory for one benchmark run; stops every cluster started in it and removes it on exit."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tinykube-bench-"))
        self.keep = keep
        self.clusters: list[Cluster] = []
        self._n = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Workspace:
        # SIGTERM (e.g. from run_all.py or a CI timeout) unwinds like Ctrl-C so the cleanup below runs.
        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        self._old[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for c in self.clusters:
                with contextlib.suppress(Exception):
                    c.stop()
        finally:
            for sig, h in self._old.items():
                signal.signal(sig, h)
            if self.keep:
                print(f"  . kept {self.root}", flush=True)
            else:
                shutil.rmtree(self.root, ignore_errors=True)

    def new_cluster(self, name: str | None = None) -> Cluster:
        self._n += 1
        c = Cluster(self.root / (name or f"c{self._n}"))
        self.clusters.append(c)
        return c

    def path(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p


class Cluster:
    def build_image(self, ctx: Path, tag: str, timeout: float = 300) -> None:
        """``tinykube image build -t TAG CTX`` into this cluster's image store."""
        p = subprocess.run([*tinykube_cmd(), "image", "build", "-t", tag, str(ctx)],
                           env=dict(self.env, TINYKUBE_HOME=str(self.data_dir)), capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(p.stdout + p.stderr)

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.home = base / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.pop("TINYKUBE_HOME", None)
        self.env.update({"HOME": str(self.home), "KUBECONFIG": str(self.data_dir / "kubeconfig")})
        self.pids: set[int] = set()  # every server PID this cluster has had
        self.last_up: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def up(self, cmd: list[str] | None = None, extra: Sequence[str] = ()) -> float:
        """``tinykube up`` end to end (``extra``: more flags); returns its wall time in seconds."""
        argv = [*(cmd or tinykube_cmd()), "up", "--data-dir", str(self.data_dir), "--port", "0", "--no-kubeconfig-merge",
                *extra]
        wall0 = time.time()
        t = time.perf_counter()
        p = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        dt = time.perf_counter() - t
        st = self.state_or_none()
        if st:
            self.pids.add(int(st["pid"]))
            # Where the time went: CLI until the server process started (from /proc, 10 ms resolution),
            # server process start to ready (its server.json "started" stamp), ready to CLI exit.
            spawned = process_start_time(int(st["pid"]))
            ready = float(st.get("started", float("nan")))
            self.last_up = {"cli_before_spawn": spawned - wall0, "server_start_to_ready": ready - spawned,
                            "ready_to_cli_exit": wall0 + dt - ready}
        if p.returncode != 0 or not st:
            self.pids.update(server_pids_for(self.data_dir))
            raise RuntimeError(f"tinykube up failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        if "already running" in p.stdout:
            raise RuntimeError(f"tinykube up found a running cluster in {self.data_dir}")
        return dt

    def down(self, purge: bool = False) -> float:
        argv = [*tinykube_cmd(), "down", "--data-dir", str(self.data_dir), *(["--purge"] if purge else [])]
        t = time.perf_counter()
        subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)
        dt = time.perf_counter() - t
        self._reap()
        return dt

    def stop(self) -> None:
        """Make sure no server started for this cluster is left (by PID), whatever state it is in."""
        if self.data_dir.exists() and self.state_or_none():
            with contextlib.suppress(Exception):
                self.down()
        self._reap()

    def _reap(self) -> None:
        for pid in list(self.pids) + server_pids_for(self.data_dir):
            if pid_alive(pid) and _is_server_for(pid, self.data_dir):
                kill_pid(pid)
            self.pids.discard(pid)

    # -- state -------------------------------------------------------------------------------------------------
    def state_or_none(self) -> dict[str, Any] | None:
        try:
            st: dict[str, Any] = json.loads((self.data_dir / "server.json").read_text())
            return st
        except (OSError, ValueError):
            return None

    @property
    def state(self) -> dict[str, Any]:
        st = self.state_or_none()
        if st is None:
            raise RuntimeError("cluster is not running")
        return st

    @property
    def url(self) -> str:
        return str(self.state["url"])

    @property
    def pid(self) -> int:
        return int(self.state["pid"])

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data_dir / "ca.crt"))

    def httpx_client(self, connections: int = 4, timeout: float = 60.0) -> Any:
        import httpx

        return httpx.AsyncClient(
            base_url=self.url, verify=self.ssl_context(), headers={"Authorization": f"Bearer {self.token}"},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=httpx.Timeout(timeout, pool=None))

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> tuple[float, subprocess.CompletedProcess[bytes]]:
        if KUBECTL is None:
            raise RuntimeError("kubectl is not on PATH")
        t = time.perf_counter()
        p = subprocess.run([KUBECTL, *args], env=self.env, capture_output=True, timeout=timeout)
        dt = time.perf_counter() - t
        if check and p.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {p.stderr.decode(errors='replace')}")
        return dt, p

    def store_bytes(self) -> int:
        return dir_size(self.data_dir, "state.db*")


def _is_server_for(pid: int, data_dir: Path) -> bool:
    try:
        args = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        return False
    return "tinykube.server" in args and str(data_dir) in args


# -- a minimal HTTP/1.1 client over asyncio TLS ----------------------------------------------------------------
@dataclass
class Target:
    host: str
    port: int
    token: str
    ssl: ssl.SSLContext

    @classmethod
    def of(cls, c: Cluster) -> Target:
        st = c.state
        return cls("127.0.0.1", int(st["port"]), c.token, c.ssl_context())

    def request_bytes(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json",
                      accept: str = "application/json") -> bytes:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {self.token}\r\n"
                f"Accept: {accept}\r\nUser-Agent: tinykube-bench\r\n")
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body


class ChunkedDecoder:
    """Incremental decoder of an HTTP/1.1 response whose body is chunked; yields complete body lines."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.head: bytes | None = None
        self.status = 0
        self.chunk_left = 0  # bytes of the current chunk still to read; 0 means a size line is next
        self.need_crlf = False
        self.body_line = bytearray()
        self.done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.buf += data
        if self.head is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.head = bytes(self.buf[:i])
            self.status = int(self.head.split(b" ", 2)[1])
            del self.buf[:i + 4]
        while self.buf and not self.done:
            if self.need_crlf:
                if len(self.buf) < 2:
                    return
                del self.buf[:2]
                self.need_crlf = False
                continue
            if self.chunk_left == 0:
                j = self.buf.find(b"\r\n")
                if j < 0:
                    return
                size = int(bytes(self.buf[:j]).split(b";", 1)[0], 16)
                del self.buf[:j + 2]
                if size == 0:
                    self.done = True
                    return
                self.chunk_left = size
                continue
            take = bytes(self.buf[:self.chunk_left])
            del self.buf[:len(take)]
            self.chunk_left -= len(take)
            if self.chunk_left == 0:
                self.need_crlf = True
            start = 0
            while True:
                k = take.find(b"\n", start)
                if k < 0:
                    self.body_line += take[start:]
                    break
                self.body_line += take[start:k]
                yield bytes(self.body_line)
                self.body_line.clear()
                start = k + 1


class RawStream(asyncio.Protocol):
    """One streaming response (a watch): every received piece of data is timestamped on arrival, decoded later.

    ``data_received`` only records ``(time.monotonic(), data)`` so that, with many streams in one process,
    the timestamp of one stream is not delayed by decoding work for the others.
    """

    def __init__(self) -> None:
        self.pieces: list[tuple[float, bytes]] = []
        self.headers_seen = asyncio.Event()
        self.closed = asyncio.Event()
        self.transport: Any = None  # uvloop's SSL transport is not an asyncio.Transport subclass
        self._seen = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.pieces.append((time.monotonic(), data))
        if not self.headers_seen.is_set():
            self._seen += data
            if b"\r\n\r\n" in self._seen:
                self.headers_seen.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def lines(self) -> list[tuple[float, bytes]]:
        """Every complete body line with the arrival time of the data that completed it."""
        dec = ChunkedDecoder()
        out: list[tuple[float, bytes]] = []
        for t, data in self.pieces:
            for line in dec.feed(data):
                out.append((t, line))
        return out

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_stream(target: Target, path: str) -> RawStream:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(RawStream, target.host, target.port, ssl=target.ssl,
                                            server_hostname="localhost")
    assert proto.transport is not None
    proto.transport.write(target.request_bytes("GET", path))
    await asyncio.wait_for(proto.headers_seen.wait(), 30)
    return proto


class RawConn:
    """One keep-alive HTTPS connection speaking plain HTTP/1.1 (no pipelining): request, then read the response.

    About ten times cheaper per request than httpx on this kind of machine (httpx spends ~1.5 ms of CPU
    per request), so a load generator built on it measures the server, not itself.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> RawConn:
        t = self.target
        self.reader, self.writer = await asyncio.open_connection(t.host, t.port, ssl=t.ssl, server_hostname="localhost",
                                                                 limit=1 << 20)
        return self

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json",
                      accept: str = "application/json") -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.target.request_bytes(method, path, body, content_type, accept))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        chunked = False
        close = False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
            elif k == b"connection" and b"close" in v.lower():
                close = True
        if chunked:
            parts: list[bytes] = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            data = b"".join(parts)
        elif length >= 0:
            data = await self.reader.readexactly(length)
        else:
            data = await self.reader.read()
            close = True
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class RawPool:
    """A fixed set of keep-alive connections; a request waits (FIFO) for a free one."""

    def __init__(self, target: Target, size: int) -> None:
        self.target = target
        self.size = size
        self.free: asyncio.Queue[RawConn] = asyncio.Queue()
        self.conns: list[RawConn] = []

    async def open(self) -> RawPool:
        for _ in range(self.size):
            c = await RawConn(self.target).open()
            self.conns.append(c)
            self.free.put_nowait(c)
        return self

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json",
                      accept: str = "application/json") -> tuple[int, bytes]:
        c = await self.free.get()
        try:
            return await c.request(method, path, body, content_type, accept)
        except BaseException:
            c.close()
            raise
        finally:
            self.free.put_nowait(c)

    def close(self) -> None:
        for c in self.conns:
            c.close()


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, from the scheduled send time
    samples: list[tuple[float, float]] = field(default_factory=list)  # (scheduled time, latency) per success
    lags: list[float] = field(default_factory=list)  # how late the client dispatched each request
    errors: int = 0
    first_sched: float = 0.0
    last_done: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def achieved_rate(self) -> float:
        span = self.last_done - self.first_sched
        return (len(self.latencies) + self.errors) / span if span > 0 else float("nan")


def run_main(main: Callable[[], int]) -> None:
    """Entry point of a benchmark script: exit with main()'s status; Ctrl-C/SIGTERM end it without a traceback
    (the Workspace has already stopped its clusters and removed its directory by then)."""
    try:
        rc = main()
    except KeyboardInterrupt:
        print("  . interrupted", file=sys.stderr, flush=True)
        rc = 130
    sys.exit(rc)


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on uvloop when available (a faster client disturbs the measurement less)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
