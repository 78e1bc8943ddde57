"""Node states from the batch system: parsing, state priority, node creation, current state."""

from __future__ import annotations

import pytest

from cc_backend.archive.fs import FileArchive
from cc_backend.errors import InvalidInput
from cc_backend.nodes import current_node_states, scheduler_state, update_node_states


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
])
def test_bad_requests_name_the_field(engine, peer_archive, payload, field):
    registry = FileArchive(peer_archive).registry()
    with pytest.raises(InvalidInput) as err:
        update_node_states(engine, registry, payload)
    assert err.value.field == field
