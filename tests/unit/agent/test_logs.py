"""The CRI container log format: writing (records, partial lines, rotation) and reading (kubectl's options)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tinykube.agent import logs
from tinykube.agent.logs import LogOptions, LogWriter, format_timestamp, parse_timestamp, read_logs

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z


def clock(step_ns: int = 1_000_000_000) -> Callable[[], int]:
    """A clock that moves ``step_ns`` per reading, from T0."""
    now = [T0 - step_ns]

    def tick() -> int:
        now[0] += step_ns
        return now[0]

    return tick


async def read(path: Path, **kw: object) -> bytes:
    ended = kw.pop("ended", None)
    out = b""
    async for chunk in read_logs(str(path), LogOptions(**kw), ended=ended, poll=0.02):  # type: ignore[arg-type]
        out += chunk
    return out


def test_timestamps_print_and_parse_as_rfc3339nano() -> None:
    assert format_timestamp(T0) == "2023-11-14T22:13:20Z"
    assert format_timestamp(T0 + 120_000_000) == "2023-11-14T22:13:20.12Z"
    assert format_timestamp(T0 + 1) == "2023-11-14T22:13:20.000000001Z"
    for ns in (T0, T0 + 120_000_000, T0 + 987_654_321):
        assert parse_timestamp(format_timestamp(ns)) == ns
    assert parse_timestamp("2023-11-14T23:13:20.5+01:00") == T0 + 500_000_000
    assert parse_timestamp(b"2023-11-14T22:13:20z") == T0
    for bad in ("2023-11-14 22:13:20Z", "2023-11-14T22:13:20", "2023-11-14T22:13:20.Z", "yesterday"):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


def test_writer_records_lines_partials_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    with LogWriter(str(path), clock=clock()) as w:
        w.write("stdout", b"one\ntwo\n")
        w.write("stderr", b"prompt> ")
        w.write("stdout", b"\n")
        w.write("stdout", b"")
    assert path.read_bytes() == (b"2023-11-14T22:13:20Z stdout F one\n"
                                 b"2023-11-14T22:13:20Z stdout F two\n"
                                 b"2023-11-14T22:13:21Z stderr P prompt> \n"
                                 b"2023-11-14T22:13:22Z stdout F \n")
    with pytest.raises(ValueError):
        LogWriter(str(path)).write("stdin", b"x")


def test_long_lines_are_cut_into_partial_records() -> None:
    recs = logs.encode_records("stdout", b"a" * 10 + b"\n" + b"b" * 7, "T", max_record=4)
    assert recs == [b"T stdout P aaaa\n", b"T stdout P aaaa\n", b"T stdout F aa\n",
                    b"T stdout P bbbb\n", b"T stdout P bbb\n"]
    parsed = [logs.parse_record(r[:-1]) for r in recs]
    assert parsed[2] == logs.Record(b"T", b"stdout", False, b"aa")
    assert logs.parse_record(b"garbage") is None


def test_rotation_keeps_max_files_and_reading_spans_them(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = LogWriter(str(path), max_size=100, max_files=3, clock=clock())
    for i in range(20):
        w.write("stdout", f"line {i:02d}\n".encode())  # 35-byte records: two per file
    w.close()
    files = logs.log_files(str(path))
    assert [os.path.basename(f) for f in files] == ["0.log.2", "0.log.1", "0.log"]
    assert all(os.path.getsize(f) <= 100 for f in files)
    assert not (tmp_path / "0.log.3").exists()
    text = asyncio.run(read(path))
    assert text == b"".join(f"line {i:02d}\n".encode() for i in range(14, 20))
    # A single file: rotation drops the old content.
    one = tmp_path / "one.log"
    w = LogWriter(str(one), max_size=40, max_files=1, clock=clock())
    w.write("stdout", b"first\n")
    w.write("stdout", b"second\n")
    w.close()
    assert logs.log_files(str(one)) == [str(one)] and asyncio.run(read(one)) == b"second\n"


async def test_reading_options_tail_since_timestamps_limit(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = LogWriter(str(path), max_size=120, max_files=5, clock=clock())
    w.write("stdout", b"a1\na2\n")  # T0
    w.write("stderr", b"b1 part ")  # T0+1s, a partial line...
    w.write("stderr", b"and rest\n")  # T0+2s ...finished here
    w.write("stdout", b"c1\nc2\n")  # T0+3s
    w.write("stdout", b"unfinished")  # T0+4s
    w.close()
    assert await read(path) == b"a1\na2\nb1 part and rest\nc1\nc2\nunfinished"
    assert await read(path, tail_lines=0) == b""
    assert await read(path, tail_lines=1) == b"unfinished"
    assert await read(path, tail_lines=3) == b"c1\nc2\nunfinished"
    assert await read(path, tail_lines=4) == b"b1 part and rest\nc1\nc2\nunfinished"
    assert await read(path, tail_lines=100) == await read(path)
    # A line is stamped once, with its first piece's time, and kept or dropped whole by since.
    assert await read(path, tail_lines=4, timestamps=True) == (b"2023-11-14T22:13:21Z b1 part and rest\n"
                                                              b"2023-11-14T22:13:23Z c1\n2023-11-14T22:13:23Z c2\n"
                                                              b"2023-11-14T22:13:24Z unfinished")
    assert await read(path, since_ns=T0 + 1_000_000_000) == b"b1 part and rest\nc1\nc2\nunfinished"
    assert await read(path, since_ns=T0 + 1_500_000_000) == b"c1\nc2\nunfinished"
    assert await read(path, since_ns=T0 + 1_500_000_000, tail_lines=2) == b"c2\nunfinished"
    assert await read(path, since_ns=T0 + 3_500_000_000, timestamps=True) == b"2023-11-14T22:13:24Z unfinished"
    assert await read(path, limit_bytes=4) == b"a1\na"
    assert await read(path, timestamps=True, limit_bytes=25) == b"2023-11-14T22:13:20Z a1\n2"
    assert await read(tmp_path / "missing.log") == b""


def test_options_from_query() -> None:
    o = LogOptions.from_query({"follow": "true", "tailLines": "10", "timestamps": "1", "limitBytes": "5",
                               "sinceSeconds": "60"}, now_ns=T0)
    assert o == LogOptions(follow=True, since_ns=T0 - 60_000_000_000, timestamps=True, tail_lines=10, limit_bytes=5)
    assert LogOptions.from_query({"sinceTime": "2023-11-14T22:13:20Z"}).since_ns == T0
    assert LogOptions.from_query({}) == LogOptions()
    for bad in ({"tailLines": "-1"}, {"limitBytes": "0"}, {"sinceSeconds": "0"}, {"follow": "maybe"},
                {"sinceSeconds": "1", "sinceTime": "2023-11-14T22:13:20Z"}, {"tailLines": "ten"},
                {"sinceTime": "noon"}):
        with pytest.raises(ValueError):
            LogOptions.from_query(bad)


async def test_follow_ends_with_the_container_and_survives_rotation(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = LogWriter(str(path), max_size=60, max_files=2, clock=clock())
    w.write("stdout", b"before\n")
    running = True
    got: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_logs(str(path), LogOptions(follow=True), ended=lambda: not running, poll=0.02):
            got.append(chunk)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    assert b"".join(got) == b"before\n"
    for i in range(6):  # 32-byte records, 60-byte files: rotates every other write
        w.write("stdout", f"after {i}\n".encode())
        await asyncio.sleep(0.05)
    assert not task.done()
    w.write("stdout", b"last words\n")
    running = False  # what was written before the end is still read
    await asyncio.wait_for(task, 5)
    assert b"".join(got) == b"before\n" + b"".join(f"after {i}\n".encode() for i in range(6)) + b"last words\n"


async def test_follow_waits_for_a_log_that_does_not_exist_yet(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    running = True
    got: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_logs(str(path), LogOptions(follow=True, timestamps=True), ended=lambda: not running,
                                     poll=0.02):
            got.append(chunk)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    with LogWriter(str(path), clock=clock()) as w:
        w.write("stdout", b"hello\n")
    await asyncio.sleep(0.1)
    running = False
    await asyncio.wait_for(task, 5)
    assert got == [b"2023-11-14T22:13:20Z hello\n"]


async def test_follow_records_from_the_end_is_what_attach_sees(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = LogWriter(str(path), clock=clock())
    w.write("stdout", b"old\n")
    running = True
    seen: list[logs.Record] = []

    async def attach() -> None:
        async for batch in logs.follow_records(str(path), follow=True, from_end=True, ended=lambda: not running,
                                               poll=0.02):
            seen.extend(batch)

    task = asyncio.create_task(attach())
    await asyncio.sleep(0.1)
    w.write("stderr", b"new\n")
    await asyncio.sleep(0.1)
    running = False
    await asyncio.wait_for(task, 5)
    assert [(r.stream, r.content) for r in seen] == [(b"stderr", b"new")]


async def test_follow_reads_once_more_after_the_end(tmp_path: Path) -> None:
    """Output written just before the container is reported ended is not lost."""
    path = tmp_path / "0.log"
    w = LogWriter(str(path), clock=clock())
    w.write("stdout", b"first\n")
    calls = 0

    def ended() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            w.write("stdout", b"final words\n")  # the container's last output, then it is gone
        return True

    got = b""
    async for chunk in read_logs(str(path), LogOptions(follow=True), ended=ended, poll=0.02):
        got += chunk
    assert got == b"first\nfinal words\n"
