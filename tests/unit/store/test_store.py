"""Store: revisions, compare-and-swap, watch replay and live, compaction (410), encryption at rest, reload."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tinykube.store.crypto import Encryptor
from tinykube.store.sqlite import SqliteBackend
from tinykube.store.store import Compacted, KeyExists, KeyNotFound, RevisionConflict, Store


def mk(tmp: Path) -> Store:
    return Store(SqliteBackend(tmp / "s.db"), Encryptor.from_file(tmp / "k"))


async def test_revisions_and_cas(tmp_path: Path) -> None:
    s = mk(tmp_path)
    a = await s.create("/registry/configmaps/ns/a", {"metadata": {"name": "a"}, "data": {"x": "1"}})
    b = await s.create("/registry/configmaps/ns/b", {"metadata": {"name": "b"}})
    assert b.rev == a.rev + 1
    assert a.obj["metadata"]["resourceVersion"] == str(a.rev)
    with pytest.raises(KeyExists):
        await s.create("/registry/configmaps/ns/a", {"metadata": {"name": "a"}})
    u = await s.update("/registry/configmaps/ns/a", {"metadata": {"name": "a"}, "data": {"x": "2"}}, a.rev)
    with pytest.raises(RevisionConflict):
        await s.update("/registry/configmaps/ns/a", {"metadata": {"name": "a"}}, a.rev)
    with pytest.raises(KeyNotFound):
        await s.update("/registry/configmaps/ns/zz", {"metadata": {}}, None)
    assert s.get("/registry/configmaps/ns/a").obj["data"]["x"] == "2"  # type: ignore[union-attr]
    assert [k for k, _ in s.list("/registry/configmaps/ns/")] == ["/registry/configmaps/ns/a", "/registry/configmaps/ns/b"]
    d = await s.delete("/registry/configmaps/ns/a", u.rev)
    assert d.rev == u.rev + 1 and s.get("/registry/configmaps/ns/a") is None
    s.close()


async def test_reload_keeps_everything(tmp_path: Path) -> None:
    s = mk(tmp_path)
    for i in range(50):
        await s.create(f"/registry/configmaps/ns/c{i:02d}", {"metadata": {"name": f"c{i}"}, "data": {"i": str(i)}})
    await s.delete("/registry/configmaps/ns/c07")
    rev = s.rev
    s.close()
    s2 = mk(tmp_path)
    assert s2.rev == rev
    assert s2.count("/registry/configmaps/ns/") == 49
    assert s2.get("/registry/configmaps/ns/c42").obj["data"]["i"] == "42"  # type: ignore[union-attr]
    e = await s2.create("/registry/configmaps/ns/new", {"metadata": {"name": "new"}})
    assert e.rev == rev + 1
    s2.close()


async def test_secrets_encrypted_at_rest(tmp_path: Path) -> None:
    s = mk(tmp_path)
    await s.create("/registry/secrets/ns/s", {"metadata": {"name": "s"}, "data": {"p": "c3VwZXJzZWNyZXQ="},
                                             "stringData": "plaintext-marker-123"})
    s.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    assert b"plaintext-marker-123" not in raw and b"c3VwZXJzZWNyZXQ=" not in raw
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    s2 = mk(tmp_path)
    assert s2.get("/registry/secrets/ns/s").obj["stringData"] == "plaintext-marker-123"  # type: ignore[union-attr]
    s2.close()


async def test_watch_replay_then_live_and_compaction(tmp_path: Path) -> None:
    s = mk(tmp_path)
    a = await s.create("/registry/pods/ns/a", {"metadata": {"name": "a"}})
    await s.update("/registry/pods/ns/a", {"metadata": {"name": "a"}, "spec": {"x": 1}})
    await s.create("/registry/configmaps/ns/other", {"metadata": {"name": "o"}})
    await s.delete("/registry/pods/ns/a")
    w = s.watch("/registry/pods/", a.rev - 1)
    got = []
    for _ in range(3):
        ev = await w.next(1)
        assert ev is not None
        got.append((ev.type, ev.rev))
    assert [t for t, _ in got] == ["ADDED", "MODIFIED", "DELETED"]
    b = await s.create("/registry/pods/ns/b", {"metadata": {"name": "b"}})
    ev = await w.next(1)
    assert ev is not None and ev.type == "ADDED" and ev.rev == b.rev
    w.close()
    assert s.watcher_count() == 0
    s.compact(b.rev)
    with pytest.raises(Compacted):
        s.watch("/registry/pods/", a.rev)
    # Live objects survive compaction.
    s.close()
    s2 = mk(tmp_path)
    assert s2.get("/registry/pods/ns/b") is not None and s2.compacted_revision == b.rev
    with pytest.raises(Compacted):
        s2.watch("/registry/pods/", a.rev)
    s2.close()


async def test_slow_watcher_is_closed(tmp_path: Path) -> None:
    s = Store(SqliteBackend(tmp_path / "s.db"), None, watch_queue=5)
    w = s.watch("/registry/configmaps/", s.rev)
    for i in range(10):
        await s.create(f"/registry/configmaps/ns/{i}", {"metadata": {"name": str(i)}})
    seen = 0
    while True:
        ev = await asyncio.wait_for(w.next(), 1)
        if ev is None:
            break
        seen += 1
    assert seen == 5 and w.closed
    s.close()


async def test_group_commit_batches_a_tick_and_acks_after_commit(tmp_path: Path) -> None:
    s = mk(tmp_path)
    batches: list[int] = []
    real = s.backend.commit

    def counting(rows: list[tuple[int, str, int, bytes, int]]) -> None:
        batches.append(len(rows))
        real(rows)

    s.backend.commit = counting  # type: ignore[method-assign]
    w = s.watch("/registry/configmaps/", s.rev)
    entries = await asyncio.gather(*(s.create(f"/registry/configmaps/ns/c{i}", {"metadata": {"name": f"c{i}"}})
                                     for i in range(20)))
    assert batches == [20]  # one transaction for the tick's twenty writes
    assert [e.rev for e in entries] == list(range(entries[0].rev, entries[0].rev + 20))
    seen = [await w.next(1) for _ in range(20)]
    assert [ev.rev for ev in seen if ev] == [e.rev for e in entries]  # watchers hear them in revision order
    s.close()
    s2 = mk(tmp_path)  # all on disk
    assert len(list(s2.list("/registry/configmaps/ns/"))) == 20
    s2.close()


async def test_failed_commit_rolls_back_the_batch_and_fails_its_writers(tmp_path: Path) -> None:
    s = mk(tmp_path)
    base = await s.create("/registry/configmaps/ns/a", {"metadata": {"name": "a"}, "data": {"v": "1"}})
    w = s.watch("/registry/configmaps/", s.rev)
    real = s.backend.commit

    def failing(rows: list[tuple[int, str, int, bytes, int]]) -> None:
        raise OSError("disk full")

    s.backend.commit = failing  # type: ignore[method-assign]
    results = await asyncio.gather(
        s.update("/registry/configmaps/ns/a", {"metadata": {"name": "a"}, "data": {"v": "2"}}, base.rev),
        s.create("/registry/configmaps/ns/b", {"metadata": {"name": "b"}}),
        s.delete("/registry/configmaps/ns/a"),
        return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results), results
    # Memory is back at the last committed state; nothing was announced.
    assert s.rev == base.rev
    cur = s.get("/registry/configmaps/ns/a")
    assert cur is not None and cur.rev == base.rev and cur.obj["data"] == {"v": "1"}
    assert s.get("/registry/configmaps/ns/b") is None
    with pytest.raises(TimeoutError):
        await w.next(0.05)
    s.backend.commit = real  # type: ignore[method-assign]
    again = await s.create("/registry/configmaps/ns/b", {"metadata": {"name": "b"}})
    assert again.rev == base.rev + 1
    ev = await w.next(1)
    assert ev is not None and ev.rev == again.rev and ev.key.endswith("/b")
    s.close()
