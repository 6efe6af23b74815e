"""An HTTP/1.1 load generator that counts every request: the zero-drop rollout tests and the Service benchmark use it.

Two kinds of clients run side by side on one asyncio loop:

* **keep-alive** clients hold one connection and send their requests on it one after the
  other. As every HTTP client does (RFC 9110 §9.2.2, RFC 9112 §9.3.1), a request that
  fails on a *reused* connection before any byte of the response arrived — the server
  closed the idle connection at that moment — is sent again once on a new connection;
  that is counted as ``retried``, and only a failure of that second attempt, or any other
  failure, is ``failed``. A response with ``Connection: close`` ends the connection.
* **new-connection** clients open a connection per request (``Connection: close``) and
  read the response to its end. They see every refused or reset connection.

Requests are paced per client (``rate`` requests/s over all clients; 0 = as fast as
possible). Every request counts as ``sent``; ``ok`` are complete 200 responses whose body
was read; the first line of each body is tallied (the test apps answer their hostname).

Run as a script it loads ``URL`` until ``--duration`` passes, its standard input closes (a
test starts it, runs a rollout, closes stdin) or ``--stop-after`` requests were sent, and
prints the figures as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import errno
import json
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Stats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    retried: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    bodies: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 3) if lat else 0.0

        d = asdict(self)
        d.pop("latencies")
        d.update(errors=dict(self.errors), bodies=dict(self.bodies), p50_ms=pct(0.5), p99_ms=pct(0.99),
                 rps=round(self.sent / self.seconds, 1) if self.seconds else 0.0)
        return d


class Failed(Exception):
    def __init__(self, kind: str, before_response: bool) -> None:
        super().__init__(kind)
        self.kind = kind
        self.before_response = before_response


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server asked to close. Raises Failed (before_response: no byte came yet)."""
    try:
        line = await reader.readline()
    except (ConnectionError, OSError) as ex:
        raise Failed(type(ex).__name__, True) from None
    if not line:
        raise Failed("EOF before response", True)
    try:
        status = int(line.split()[1])
        length, close = -1, False
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise Failed("EOF in headers", False)
            name, _, value = h.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        body = await reader.readexactly(length) if length >= 0 else await reader.read()
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as ex:
        raise Failed(type(ex).__name__, False) from None
    return status, body, close


def _kind(ex: BaseException) -> str:
    """What failed, for the tally: the error class, with the errno name when there is one."""
    if isinstance(ex, Failed):
        return ex.kind
    code = getattr(ex, "errno", None)
    return f"{type(ex).__name__}({errno.errorcode.get(code, code)})" if code else type(ex).__name__


class Load:
    def __init__(self, url: str, rate: float = 0.0, keepalive: int = 2, new_conn: int = 2,
                 timeout: float = 5.0) -> None:
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.rate, self.keepalive, self.new_conn, self.timeout = rate, keepalive, new_conn, timeout
        self.stats = Stats()
        self.log_errors = False
        self._stop = asyncio.Event()

    def _request(self, close: bool) -> bytes:
        return (f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n").encode()

    def _record(self, status: int, body: bytes, t0: float) -> None:
        self.stats.latencies.append(time.perf_counter() - t0)
        if status == 200:
            self.stats.ok += 1
            self.stats.bodies[body.decode(errors="replace").split("\n", 1)[0].strip()[:80]] += 1
        else:
            self.stats.failed += 1
            self.stats.errors[f"HTTP {status}"] += 1

    def _fail(self, kind: str) -> None:
        self.stats.failed += 1
        self.stats.errors[kind] += 1
        if self.log_errors:
            print(f"{time.time():.3f} failed: {kind}", file=sys.stderr, flush=True)

    async def _pace(self, clients: int, nxt: float) -> float:
        if self.rate <= 0:
            return nxt
        nxt += clients / self.rate
        delay = nxt - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return max(nxt, time.perf_counter() - 1.0)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(self.host, self.port, limit=1 << 20), self.timeout)

    async def _keepalive_client(self, clients: int) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        nxt = time.perf_counter()
        while not self._stop.is_set():
            self.stats.sent += 1
            t0 = time.perf_counter()
            for attempt in (0, 1):
                reused = conn is not None
                try:
                    if conn is None:
                        conn = await self._connect()
                    conn[1].write(self._request(False))
                    status, body, close = await asyncio.wait_for(_read_response(conn[0]), self.timeout)
                    self._record(status, body, t0)
                    if close:
                        conn[1].close()
                        conn = None
                    break
                except (Failed, ConnectionError, OSError, TimeoutError) as ex:
                    if conn is not None:
                        conn[1].close()
                        conn = None
                    before = ex.before_response if isinstance(ex, Failed) else not isinstance(ex, TimeoutError)
                    if attempt == 0 and reused and before:
                        self.stats.retried += 1
                        continue
                    self._fail(_kind(ex))
                    break
            nxt = await self._pace(clients, nxt)
        if conn is not None:
            conn[1].close()

    async def _new_conn_client(self, clients: int) -> None:
        nxt = time.perf_counter()
        while not self._stop.is_set():
            self.stats.sent += 1
            t0 = time.perf_counter()
            writer = None
            try:
                reader, writer = await self._connect()
                writer.write(self._request(True))
                status, body, _ = await asyncio.wait_for(_read_response(reader), self.timeout)
                self._record(status, body, t0)
            except (Failed, ConnectionError, OSError, TimeoutError) as ex:
                self._fail(_kind(ex))
            finally:
                if writer is not None:
                    writer.close()
            nxt = await self._pace(clients, nxt)

    async def _stop_after(self, n: int, stop: asyncio.Event) -> None:
        while self.stats.sent < n:
            await asyncio.sleep(0.05)
        stop.set()

    async def run(self, duration: float, stop: asyncio.Event | None = None, stop_after: int = 0) -> Stats:
        n = self.keepalive + self.new_conn
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(self._keepalive_client(n)) for _ in range(self.keepalive)]
        tasks += [asyncio.create_task(self._new_conn_client(n)) for _ in range(self.new_conn)]
        waits: list[asyncio.Task[Any]] = [asyncio.create_task(asyncio.sleep(duration))]
        if stop_after:
            stop = stop or asyncio.Event()
            waits.append(asyncio.create_task(self._stop_after(stop_after, stop)))
        if stop is not None:
            waits.append(asyncio.create_task(stop.wait()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        self._stop.set()
        await asyncio.gather(*tasks)
        self.stats.seconds = time.perf_counter() - t0
        return self.stats


async def _main(a: argparse.Namespace) -> dict[str, Any]:
    stop = asyncio.Event()
    if a.until_stdin_closes:
        # A daemon thread, not the loop's executor: asyncio.run would wait for a read that may never end.
        loop = asyncio.get_running_loop()

        def watch() -> None:
            sys.stdin.read()
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch, daemon=True).start()
    load = Load(a.url, a.rate, a.keepalive, a.new_conn, a.timeout)
    load.log_errors = a.log_errors
    stats = await load.run(a.duration, stop, a.stop_after)
    return stats.to_json()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("url")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=0.0, help="requests/s over all clients (0: unpaced)")
    ap.add_argument("--keepalive", type=int, default=2)
    ap.add_argument("--new-conn", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--until-stdin-closes", action="store_true")
    ap.add_argument("--log-errors", action="store_true", help="each failure, with its time, on stderr")
    ap.add_argument("--stop-after", type=int, default=0, help="end once this many requests were sent")
    a = ap.parse_args(argv)
    print(json.dumps(asyncio.run(_main(a))), flush=True)


if __name__ == "__main__":
    main()
