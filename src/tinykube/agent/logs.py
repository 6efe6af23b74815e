"""Container log files in the CRI format the kubelet reads, and the reader behind ``kubectl logs``.

**Format.** One record per file line: ``<timestamp> <stream> <tag> <content>\\n`` where
the timestamp is RFC 3339 with up to nine fractional digits (trailing zeros dropped, as
Go's ``RFC3339Nano`` prints it; always UTC here), the stream is ``stdout`` or
``stderr`` and the tag is ``F`` for content that ends a line or ``P`` for a piece of a
line (the newline itself is not stored; an ``F`` record stands for it). A logical line
is any number of ``P`` records followed by one ``F`` record.

**Writing.** :class:`LogWriter` is fed the chunks a container's stdout and stderr
pipes return. Each complete line of a chunk becomes an ``F`` record; what follows the
last newline becomes a ``P`` record at once (as CRI-O's conmon does), so a prompt
without a newline is visible to ``kubectl logs -f`` immediately instead of sitting in
a buffer; lines longer than :data:`MAX_RECORD` are cut into ``P`` pieces. Every record
of one chunk shares the chunk's timestamp. Each batch of records is one ``write(2)``
on an ``O_APPEND`` descriptor, nothing is buffered in the process, so readers see the
records as soon as the write returns. When the next batch would take the file past
``max_size`` (the kubelet's ``containerLogMaxSize``, 10 MiB), the file is rotated:
``0.log`` becomes ``0.log.1``, ``0.log.1`` becomes ``0.log.2`` and so on, and at most
``max_files`` files (``containerLogMaxFiles``, 5, the live one included) are kept. The
writer rotates its own file, so no second process has to ask it to reopen.

This module uses the standard library only: the small per-container supervisor that
owns the pipes imports it and must start fast.

**Reading.** :func:`read_logs` takes the live file's path and the request's
:class:`LogOptions` (the API's ``PodLogOptions``: ``follow``, ``sinceSeconds`` /
``sinceTime``, ``timestamps``, ``tailLines``, ``limitBytes``; ``previous`` is the
caller's business: it picks the previous instance's file) and yields what the kubelet
sends: the content of each line, prefixed with its timestamp and one space when
``timestamps`` is set (the prefix is the first piece's timestamp and is written once
per logical line). All files of the set (rotated ones oldest first, then the live one)
are opened before anything is read, so a rotation during the read cannot lose or
repeat records. ``tailLines`` is found by scanning backwards from the end, block by
block, counting logical lines (a trailing unfinished line counts as one); ``since``
drops lines whose first piece is older. With ``follow``, the reader keeps polling the
live file (every ``poll`` seconds: one ``fstat`` and one ``stat``, no inotify) and
follows it across rotations (the path's inode changes: the old file is read to its
end, then the new one opened), until the caller's ``ended()`` says the container is
gone; a last read after that picks up whatever was written before it ended.
:func:`follow_records` is the same machinery yielding records, for ``attach``.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

STDOUT = "stdout"
STDERR = "stderr"
DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 5
MAX_RECORD = 16 * 1024
_BLOCK = 64 * 1024
_STREAMS = {STDOUT: b"stdout", STDERR: b"stderr"}


# -- timestamps -------------------------------------------------------------------------------------------------


def format_timestamp(ns: int) -> str:
    """``ns`` (since the epoch) as Go's ``time.RFC3339Nano`` prints a UTC time: trailing zeros dropped."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


_SECONDS_CACHE: dict[bytes, int] = {}


def parse_timestamp(raw: bytes | str) -> int:
    """An RFC 3339 timestamp (any fraction length, ``Z`` or ``±hh:mm``) as nanoseconds since the epoch.

    Raises ``ValueError`` for anything else."""
    b = raw.encode() if isinstance(raw, str) else raw
    if len(b) < 20 or b[4:5] != b"-" or b[7:8] != b"-" or b[10:11] not in (b"T", b"t") or b[13:14] != b":" \
            or b[16:17] != b":":
        raise ValueError(f"not an RFC 3339 timestamp: {b!r}")
    head = b[:19]
    secs = _SECONDS_CACHE.get(head)
    if secs is None:
        try:
            secs = calendar.timegm((int(b[0:4]), int(b[5:7]), int(b[8:10]), int(b[11:13]), int(b[14:16]),
                                    int(b[17:19]), 0, 0, 0))
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {b!r}") from None
        if len(_SECONDS_CACHE) > 4096:
            _SECONDS_CACHE.clear()
        _SECONDS_CACHE[head] = secs
    i = 19
    frac = 0
    if b[i:i + 1] == b".":
        j = i + 1
        while j < len(b) and 48 <= b[j] <= 57:
            j += 1
        digits = b[i + 1:j]
        if not digits or len(digits) > 9:
            raise ValueError(f"not an RFC 3339 timestamp: {b!r}")
        frac = int(digits.ljust(9, b"0"))
        i = j
    zone = b[i:]
    if zone in (b"Z", b"z"):
        offset = 0
    elif len(zone) == 6 and zone[0:1] in (b"+", b"-") and zone[3:4] == b":" and zone[1:3].isdigit() \
            and zone[4:6].isdigit():
        offset = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (1 if zone[0:1] == b"+" else -1)
    else:
        raise ValueError(f"not an RFC 3339 timestamp: {b!r}")
    return (secs - offset) * 1_000_000_000 + frac


# -- records ----------------------------------------------------------------------------------------------------


class Record(NamedTuple):
    timestamp: bytes  # as written in the file
    stream: bytes  # b"stdout" or b"stderr"
    partial: bool  # tag P: the content does not end its line
    content: bytes  # without the newline


def parse_record(line: bytes) -> Record | None:
    """One file line (without its newline) as a :class:`Record`, or ``None`` when it is not one."""
    a = line.find(b" ")
    b = line.find(b" ", a + 1) if a > 0 else -1
    if b < 0:
        return None
    c = line.find(b" ", b + 1)
    if c < 0:
        tag, content = line[b + 1:], b""
    else:
        tag, content = line[b + 1:c], line[c + 1:]
    return Record(line[:a], line[a + 1:b], tag == b"P", content)


def encode_records(stream: str, data: bytes, timestamp: str, max_record: int = MAX_RECORD) -> list[bytes]:
    """The file lines (newline included) for one chunk read from ``stream``."""
    head = f"{timestamp} {stream} ".encode()
    out: list[bytes] = []
    parts = data.split(b"\n")
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if i == last and not part:
            break  # the chunk ended with a newline
        full = i < last
        while len(part) > max_record:
            out.append(head + b"P " + part[:max_record] + b"\n")
            part = part[max_record:]
        out.append(head + (b"F " if full else b"P ") + part + b"\n")
    return out


# -- writing ----------------------------------------------------------------------------------------------------


def rotated_path(path: str, n: int) -> str:
    return f"{path}.{n}"


def log_files(path: str) -> list[str]:
    """The files of one container instance's log, oldest first: rotated ones, then the live one (when present)."""
    out: list[str] = []
    n = 1
    while os.path.exists(rotated_path(path, n)):
        out.append(rotated_path(path, n))
        n += 1
    out.reverse()
    if os.path.exists(path):
        out.append(path)
    return out


class LogWriter:
    """Appends a container's output to ``path`` as CRI records, rotating by size (see the module docstring)."""

    def __init__(self, path: str, max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES,
                 clock: Callable[[], int] = time.time_ns) -> None:
        if max_files < 1:
            raise ValueError("max_files must be at least 1")
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self.clock = clock
        self._fd = -1
        self._size = 0
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Record one chunk of ``stream``'s output (``"stdout"`` or ``"stderr"``)."""
        if stream not in _STREAMS:
            raise ValueError(f"unknown stream {stream!r}")
        if not data:
            return
        if self._fd < 0:
            raise ValueError("write to a closed LogWriter")
        records = encode_records(stream, data, format_timestamp(self.clock()))
        batch: list[bytes] = []
        size = 0
        for rec in records:
            if self._size + size + len(rec) > self.max_size and self._size + size > 0:
                self._flush(batch)
                batch, size = [], 0
                if self._size > 0:
                    self.rotate()
            batch.append(rec)
            size += len(rec)
        self._flush(batch)

    def _flush(self, batch: list[bytes]) -> None:
        if not batch:
            return
        buf = memoryview(b"".join(batch))
        while buf:
            n = os.write(self._fd, buf)
            buf = buf[n:]
            self._size += n

    def rotate(self) -> None:
        """Start a new live file now, shifting the old ones (the oldest beyond ``max_files`` is dropped)."""
        os.close(self._fd)
        self._fd = -1
        if self.max_files == 1:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        else:
            for n in range(self.max_files - 1, 1, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(rotated_path(self.path, n - 1), rotated_path(self.path, n))
            os.replace(self.path, rotated_path(self.path, 1))
        self._open()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- reading ----------------------------------------------------------------------------------------------------


@dataclass
class LogOptions:
    """What one log request asks for (the API's ``PodLogOptions`` minus ``container`` and ``previous``)."""

    follow: bool = False
    since_ns: int | None = None  # drop lines older than this (from sinceSeconds or sinceTime)
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None

    @classmethod
    def from_query(cls, q: Mapping[str, str], now_ns: int | None = None) -> LogOptions:
        """Parse ``PodLogOptions`` query parameters; ``ValueError`` (with a message for the client) when invalid."""

        def flag(name: str) -> bool:
            v = q.get(name, "")
            if v.lower() in ("", "false", "0"):
                return False
            if v.lower() in ("true", "1"):
                return True
            raise ValueError(f"invalid value for {name}: {v!r}: must be a boolean")

        def integer(name: str) -> int | None:
            v = q.get(name, "")
            if v == "":
                return None
            digits = v[1:] if v[:1] == "-" else v
            if not (digits.isascii() and digits.isdigit()) or len(v) > 20:
                raise ValueError(f"invalid value for {name}: {v!r}: must be an integer")
            return int(v)

        tail, limit, since_s = integer("tailLines"), integer("limitBytes"), integer("sinceSeconds")
        since_t = q.get("sinceTime", "")
        if tail is not None and tail < 0:
            raise ValueError(f"tailLines: Invalid value: {tail}: must be greater than or equal to 0")
        if limit is not None and limit < 1:
            raise ValueError(f"limitBytes: Invalid value: {limit}: must be greater than 0")
        if since_s is not None and since_t:
            raise ValueError("at most one of `sinceTime` or `sinceSeconds` may be specified")
        if since_s is not None and since_s < 1:
            raise ValueError(f"sinceSeconds: Invalid value: {since_s}: must be greater than 0")
        now = time.time_ns() if now_ns is None else now_ns
        since: int | None = None
        if since_s is not None:
            since = now - since_s * 1_000_000_000
        elif since_t:
            try:
                since = parse_timestamp(since_t)
            except ValueError:
                raise ValueError(f"invalid value for sinceTime: {since_t!r}: must be an RFC 3339 time") from None
        return cls(follow=flag("follow"), since_ns=since, timestamps=flag("timestamps"), tail_lines=tail,
                   limit_bytes=limit)


def _never_ended() -> bool:
    return False


def _always_ended() -> bool:
    return True


class _Source:
    """The open files of one log, read forward from a position; the last one is live and may be rotated."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fds: list[int] = []
        for p in log_files(path):
            with contextlib.suppress(FileNotFoundError):
                self.fds.append(os.open(p, os.O_RDONLY | os.O_CLOEXEC))
        self.live_ino = os.fstat(self.fds[-1]).st_ino if self.fds and os.path.exists(path) else None
        self.index = 0
        self.pos = 0
        self.pending = b""

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []

    def seek_tail(self, lines: int) -> None:
        """Position at the start of the last ``lines`` logical lines."""
        first = True
        found = 0
        for idx in range(len(self.fds) - 1, -1, -1):
            fd = self.fds[idx]
            end = os.fstat(fd).st_size
            for start, line in _reverse_lines(fd, end):
                rec = parse_record(line)
                if rec is None:
                    continue
                if first or not rec.partial:
                    if found == lines:
                        self.index, self.pos = idx, start + len(line) + 1
                        return
                    found += 1
                first = False
        self.index, self.pos = 0, 0

    def seek_end(self) -> None:
        if self.fds:
            self.index = len(self.fds) - 1
            size = os.fstat(self.fds[-1]).st_size
            # Start after the last complete record: an unfinished write is read when it completes.
            for start, line in _reverse_lines(self.fds[-1], size):
                self.pos = start + len(line) + 1
                return
            self.pos = 0

    def read_lines(self) -> list[bytes]:
        """Complete lines available from the current position on (across the opened files)."""
        out: list[bytes] = []
        while self.index < len(self.fds):
            fd = self.fds[self.index]
            data = os.pread(fd, _BLOCK, self.pos)
            if data:
                self.pos += len(data)
                buf = self.pending + data
                cut = buf.rfind(b"\n")
                if cut < 0:
                    self.pending = buf
                else:
                    out.extend(buf[:cut].split(b"\n"))
                    self.pending = buf[cut + 1:]
                if len(out) >= 512:
                    return out
                continue
            if self.index == len(self.fds) - 1:
                return out
            self.index += 1  # a finished (rotated) file: on to the next one
            self.pos = 0
            self.pending = b""
        return out

    def check_rotation(self) -> bool:
        """After the live file was read to its end: switch to a new live file if the path now names another one."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if self.live_ino == st.st_ino:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self.live_ino = os.fstat(fd).st_ino
        self.fds.append(fd)
        return True


def _reverse_lines(fd: int, end: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for each complete line of ``fd[:end]``, last first (an unterminated tail is skipped)."""
    pos = end
    carry = b""  # the right-hand piece of a line that began in an earlier (further left) block
    terminated = False  # whether ``carry`` is followed by a newline (False until the first one is seen)
    while pos > 0:
        n = min(_BLOCK, pos)
        pos -= n
        buf = os.pread(fd, n, pos) + carry
        parts = buf.split(b"\n")
        starts = []
        off = pos
        for part in parts:
            starts.append(off)
            off += len(part) + 1
        top = len(parts) - 1 if terminated else len(parts) - 2
        for i in range(top, 0, -1):
            yield starts[i], parts[i]
        if len(parts) > 1:
            terminated = True
        carry = parts[0]
    if terminated and carry:
        yield 0, carry


async def follow_records(path: str, *, tail_lines: int | None = None, follow: bool = False,
                         ended: Callable[[], bool] = _always_ended, poll: float = 0.2,
                         from_end: bool = False) -> AsyncIterator[list[Record]]:
    """Batches of records of the log at ``path`` (see the module docstring): all of it, its last ``tail_lines``
    logical lines, or (``from_end``) only what is written from now on; with ``follow``, until ``ended()``."""
    import asyncio  # here, not at the top: the container supervisor imports this module and must start fast

    src = _Source(path)
    try:
        if from_end:
            src.seek_end()
        elif tail_lines is not None:
            src.seek_tail(tail_lines)
        finishing = False
        while True:
            lines = src.read_lines()
            if lines:
                recs = [r for r in map(parse_record, lines) if r is not None]
                if recs:
                    yield recs
                continue
            if not follow:
                return
            if src.check_rotation():
                continue
            if finishing:
                return
            if ended():
                finishing = True  # one more read: what was written before the end
                continue
            await asyncio.sleep(poll)
    finally:
        src.close()


async def read_logs(path: str, opts: LogOptions, ended: Callable[[], bool] | None = None,
                    poll: float = 0.2) -> AsyncIterator[bytes]:
    """The bytes ``kubectl logs`` prints for the log at ``path`` (see the module docstring)."""
    if opts.limit_bytes is not None and opts.limit_bytes <= 0:
        return
    remaining = opts.limit_bytes
    at_line_start = True
    skipping = False
    since = opts.since_ns
    stop = ended if ended is not None else (_never_ended if opts.follow else _always_ended)
    async for batch in follow_records(path, tail_lines=opts.tail_lines, follow=opts.follow, ended=stop, poll=poll):
        out: list[bytes] = []
        for rec in batch:
            if at_line_start:
                skipping = False
                if since is not None:
                    try:
                        skipping = parse_timestamp(rec.timestamp) < since
                    except ValueError:
                        skipping = False
                if not skipping and opts.timestamps:
                    out.append(rec.timestamp + b" ")
            at_line_start = not rec.partial
            if skipping:
                continue
            out.append(rec.content if rec.partial else rec.content + b"\n")
        if not out:
            continue
        chunk = b"".join(out)
        if remaining is not None:
            if len(chunk) >= remaining:
                yield chunk[:remaining]
                return
            remaining -= len(chunk)
        yield chunk
