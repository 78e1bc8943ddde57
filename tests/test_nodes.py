"""Node states from the batch system: parsing, state priority, node creation, current state."""

from __future__ import annotations

import pytest

from cc_backend.archive.fs import FileArchive
from cc_backend.errors import InvalidInput
from cc_backend.nodes import (
    MAX_NODES,
    MAX_STATES,
    current_node_states,
    parse_health_request,
    scheduler_state,
    update_node_states,
)


@pytest.mark.parametrize("flags,state", [
    (["ALLOCATED", "DRAIN"], "allocated"), (["reserved", "idle"], "reserved"), (["idle", "down"], "down"),
    (["IDLE"], "idle"), (["down", "drain"], "down"), (["mixed"], "mixed"), ([], "unknown"), (["drain"], "unknown"),
])
def test_scheduler_state_priority(flags, state):
    assert scheduler_state(flags) == state


def test_update_and_current_state(engine, peer_archive):
    registry = FileArchive(peer_archive).registry()
    payload = {"cluster": "fritz", "nodes": [
        {"hostname": "f0101", "states": ["allocated"], "cpusAllocated": 72, "memoryAllocated": 250000,
         "gpusAllocated": 0, "jobsRunning": 1},
        {"hostname": "f0102", "states": ["idle"]},
        {"hostname": "x9999", "states": ["down"]},
    ]}
    assert update_node_states(engine, registry, payload, now=1000) == 3
    payload["nodes"][0]["states"] = ["idle"]
    update_node_states(engine, registry, {"cluster": "fritz", "nodes": [payload["nodes"][0]]}, now=2000)
    current = {n["hostname"]: n for n in current_node_states(engine, "fritz")}
    assert set(current) == {"f0101", "f0102", "x9999"}
    assert current["f0101"]["node_state"] == "idle" and current["f0101"]["time_stamp"] == 2000
    assert current["f0101"]["subcluster"] == "main" and current["x9999"]["subcluster"] == ""
    assert current["f0102"]["cpus_allocated"] == 0
    assert current["x9999"]["health_state"] == "full" and current["f0102"]["health_state"] == "failed"
    assert current_node_states(engine, "alex") == []


@pytest.mark.parametrize("payload,field", [
    ({"cluster": "fritz", "nodes": [{"hostname": "f0101", "colour": 1}]}, "nodes[0].colour"),
    ({"cluster": "nosuch", "nodes": []}, "cluster"),
    ({"nodes": []}, "cluster"),
    ({"cluster": "fritz", "nodes": [{"hostname": ""}]}, "nodes[0].hostname"),
    ({"cluster": "fritz", "nodes": [{"hostname": "f1", "cpusAllocated": -1}]}, "nodes[0].cpusAllocated"),
    ({"cluster": "fritz", "nodes": "f0101"}, "nodes"),
    ({"cluster": "fritz", "nodes": [], "extra": 1}, "extra"),
    ({"cluster": "fritz", "nodes": [{"hostname": "f1"}] * (MAX_NODES + 1)}, "nodes"),
    ({"cluster": "fritz", "nodes": [{"hostname": "f1", "states": ["idle"] * (MAX_STATES + 1)}]}, "nodes[0].states"),
    ({"cluster": "fritz", "nodes": [{"hostname": "f1", "states": ["idle", "x" * 257]}]}, "nodes[0].states[1]"),
    ({"cluster": "fritz", "nodes": [{"hostname": "f1", "states": "idle"}]}, "nodes[0].states"),
    ([], "body"),
])
def test_bad_requests_name_the_field(engine, peer_archive, payload, field):
    registry = FileArchive(peer_archive).registry()
    with pytest.raises(InvalidInput) as err:
        update_node_states(engine, registry, payload)
    assert err.value.field == field


@pytest.mark.parametrize("payload,field", [
    ([], "body"),
    ({"cluster": "fritz", "hosts": []}, "hosts"),
    ({"cluster": "", "nodes": []}, "cluster"),
    ({"cluster": "fritz", "nodes": "f0101"}, "nodes"),
    ({"cluster": "fritz", "nodes": ["f0101"] * (MAX_NODES + 1)}, "nodes"),
    ({"cluster": "fritz", "nodes": ["f0101", "x" * 257]}, "nodes[1]"),
    ({"cluster": "fritz", "metric-names": [1]}, "metric-names"),
])
def test_health_request_is_checked_in_the_core(payload, field):
    with pytest.raises(InvalidInput) as err:
        parse_health_request(payload)
    assert err.value.field == field and field in err.value.message


def test_health_request_defaults():
    assert parse_health_request({"cluster": "fritz"}) == ("fritz", [], [])
    assert parse_health_request({"cluster": "fritz", "nodes": ["a"], "metric-names": ["m"]}) == ("fritz", ["a"], ["m"])


def test_each_host_is_placed_in_its_subcluster_once(engine, peer_archive, monkeypatch):
    """The health check and the new node rows share one subcluster lookup per host (not one each)."""
    registry = FileArchive(peer_archive).registry()
    calls: list[str] = []
    lookup = registry.assign_subcluster
    monkeypatch.setattr(registry, "assign_subcluster", lambda cluster, host: calls.append(host) or lookup(cluster, host))
    asked: list[tuple[str, list[str], int]] = []

    def health(cluster, hosts, metrics):
        asked.append((cluster, list(hosts), len(metrics)))
        return {h: {"state": "full", "metrics": {"missing": [], "degraded": []}} for h in hosts}

    payload = {"cluster": "fritz", "nodes": [{"hostname": h, "states": ["idle"]} for h in ("f0101", "f0102", "x9999")]}
    assert update_node_states(engine, registry, payload, health=health, now=1000) == 3
    assert sorted(calls) == ["f0101", "f0102", "x9999"]
    assert [(c, hosts) for c, hosts, _ in asked] == [("fritz", ["f0101", "f0102"])] and asked[0][2] > 0
    current = {n["hostname"]: n for n in current_node_states(engine, "fritz")}
    assert current["f0101"]["subcluster"] == "main" and current["x9999"]["subcluster"] == ""
    assert current["f0101"]["health_state"] == "full" and current["x9999"]["health_state"] == "failed"
