"""client-go's event correlation: aggregation of similar events and the per-object spam filter."""

from __future__ import annotations

from pathlib import Path

from tests.harness import control_plane

from tinykube.api.resources import EVENTS, REPLICASETS
from tinykube.machinery.events import AGGREGATE_PREFIX, Correlator, EventRecorder

REF = {"kind": "ReplicaSet", "namespace": "default", "name": "web-abc", "uid": "u1", "apiVersion": "apps/v1"}
SRC = ("replicaset-controller", "")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_similar_events_aggregate_after_ten() -> None:
    c = Correlator(Clock())
    out = [c.correlate(SRC, REF, "Normal", "SuccessfulCreate", f"Created pod: web-abc-{i}") for i in range(12)]
    assert all(o is not None for o in out)
    msgs = [o[0] for o in out if o]
    assert msgs[:9] == [f"Created pod: web-abc-{i}" for i in range(9)]
    assert msgs[9] == AGGREGATE_PREFIX + "Created pod: web-abc-9"
    keys = [o[1] for o in out if o]
    assert len(set(keys[:9])) == 9 and keys[9] == keys[10] == keys[11]  # one aggregate event, counted up


def test_spam_filter_bursts_25_then_one_per_five_minutes() -> None:
    clock = Clock()
    c = Correlator(clock)
    passed = [c.correlate(SRC, REF, "Normal", "SuccessfulDelete", "Deleted pod: x") for _ in range(40)]
    assert sum(p is not None for p in passed) == 25
    clock.t += 299
    assert c.correlate(SRC, REF, "Normal", "SuccessfulDelete", "Deleted pod: x") is None
    clock.t += 2
    assert c.correlate(SRC, REF, "Normal", "SuccessfulDelete", "Deleted pod: x") is not None
    other = dict(REF, name="web-def", uid="u2")  # another object has its own bucket
    assert c.correlate(SRC, other, "Normal", "SuccessfulDelete", "Deleted pod: y") is not None


async def test_recorder_writes_counts_and_aggregates(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        rs = await cp.client.create(REPLICASETS, "default", {
            "metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                                                 "template": {"metadata": {"labels": {"a": "b"}},
                                                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
        rec = EventRecorder(cp.client, "replicaset-controller")
        for _ in range(3):
            rec.event(rs, "Warning", "FailedCreate", "quota exceeded")
        for i in range(15):
            rec.event(rs, "Normal", "SuccessfulCreate", f"Created pod: web-{i}")
        await rec.flush()
        await rec.stop()
        evs, _ = await cp.client.list(EVENTS, "default")
        failed = [e for e in evs if e["reason"] == "FailedCreate"]
        assert len(failed) == 1 and failed[0]["count"] == 3 and failed[0]["type"] == "Warning"
        created = [e for e in evs if e["reason"] == "SuccessfulCreate"]
        assert len(created) == 10
        agg = [e for e in created if e["message"].startswith(AGGREGATE_PREFIX)]
        assert len(agg) == 1 and agg[0]["count"] == 6 and agg[0]["message"].endswith("web-14")
        assert agg[0]["source"] == {"component": "replicaset-controller"}
        assert agg[0]["involvedObject"]["uid"] == rs["metadata"]["uid"]
