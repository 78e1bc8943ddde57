"""The text options of job filters (command line, TUI filter bar, URL presets): JobFilter.from_text_options."""

from __future__ import annotations

import pytest

from cc_backend.errors import InvalidInput
from cc_backend.jobs.filter import TEXT_OPTIONS, JobFilter, parse_filters


def test_every_option_maps_onto_its_filter_field():
    flt = JobFilter.from_text_options({
        "cluster": "fritz", "subcluster": "spr*", "partition": "*work", "user": "*ab*", "project": "p1",
        "job-name": "gromacs*", "job-id": "123", "node": "f01*", "array-job-id": "77",
        "state": ["running", "completed"], "start-time": "1000..2000", "duration": "1h..12h", "nodes": "2..16",
        "hwthreads": "..64", "accelerators": "4", "energy": "0.5..", "tag": ["3", "9"], "shared": "none",
        "schedule": "batch", "metric": ["flops_any=0..10", "mem_used_max=100.."],
    })
    assert flt == parse_filters({
        "cluster": {"eq": "fritz"}, "subCluster": {"startsWith": "spr"}, "partition": {"endsWith": "work"},
        "user": {"contains": "ab"}, "project": {"eq": "p1"}, "jobName": {"startsWith": "gromacs"},
        "jobId": {"eq": "123"}, "node": {"startsWith": "f01"}, "arrayJobId": 77, "state": ["running", "completed"],
        "startTime": {"from": 1000, "to": 2000}, "duration": {"from": 3600, "to": 43200},
        "numNodes": {"from": 2, "to": 16}, "numHWThreads": {"from": 0, "to": 64},
        "numAccelerators": {"from": 4, "to": 4}, "energy": {"from": 0.5, "to": 1e300}, "tags": [3, 9],
        "shared": "none", "schedule": "batch",
        "metricStats": [{"metricName": "flops_any", "range": {"from": 0.0, "to": 10.0}},
                        {"metricName": "mem_used_max", "range": {"from": 100.0, "to": 1e300}}],
    })[0]
    assert set(TEXT_OPTIONS) == {"cluster", "subcluster", "partition", "user", "project", "job-name", "job-id",
                                 "node", "array-job-id", "state", "start-time", "duration", "nodes", "hwthreads",
                                 "accelerators", "energy", "tag", "shared", "schedule", "metric"}


def test_unset_options_are_no_condition_and_single_texts_stand_for_lists():
    assert JobFilter.from_text_options({"cluster": None, "state": (), "metric": [], "user": ""}) == JobFilter()
    assert JobFilter.from_text_options({"state": "running", "metric": "ipc=1..2"}) == JobFilter.from_text_options(
        {"state": ["running"], "metric": ["ipc=1..2"]})
    assert JobFilter.from_text_options({"start-time": "last24h"}).startTime.range == "last24h"


def test_tags_by_name_need_the_callers_lookup():
    looked_up: list[list[str]] = []

    def tag_ids(specs: list[str]) -> list[int]:
        looked_up.append(specs)
        return [5, 6]

    assert JobFilter.from_text_options({"tag": ["app:vasp", "7"]}, tag_ids=tag_ids).tags == [5, 6]
    assert looked_up == [["app:vasp", "7"]]
    with pytest.raises(InvalidInput) as err:
        JobFilter.from_text_options({"tag": ["app:vasp"]})
    assert err.value.field == "tags" and "type:name" in err.value.message


@pytest.mark.parametrize(("options", "field", "text"), [
    ({"metric": ["flops_any"]}, "metricStats", "NAME=A..B"),
    ({"metric": ["=1..2"]}, "metricStats", "NAME=A..B"),
    ({"metric": ["flops_any=ten.."]}, "metric flops_any", "not a number"),
    ({"nodes": "many"}, "numNodes", "not a number"),
    ({"nodes": "inf.."}, "numNodes", "not a finite number"),
    ({"energy": "nan"}, "energy", "not a finite number"),
    ({"nodes": "1e30"}, "numNodes", "64-bit"),
    ({"duration": "2h..1h"}, "duration", "lower bound"),
    ({"start-time": "yesterday"}, "startTime", "FROM..TO"),
    ({"array-job-id": "x"}, "arrayJobId", "not an integer"),
    ({"array-job-id": str(2**63)}, "arrayJobId", "64-bit"),
    ({"state": ["exploded"]}, "state", "exploded"),
    ({"shared": "sometimes"}, "shared", "must be one of"),
    ({"cluster": ["a", "b"]}, "cluster", "one value"),
    ({"colour": "red"}, "colour", "unknown filter option"),
])
def test_bad_options_name_the_field(options, field, text):
    with pytest.raises(InvalidInput) as err:
        JobFilter.from_text_options(options)
    assert err.value.field == field and text in err.value.message


# ------------------------------------------------------------------ one line of filter text (filter bars)


def test_filter_text_takes_the_compact_and_the_command_line_form_alike():
    from cc_backend.jobs.filter import filter_text, parse_filter_text

    compact = parse_filter_text("user:k1* state:running state:completed duration:1h.. 'job-name:my job'")
    flags = parse_filter_text("--user 'k1*' --state running --state=completed --duration 1h.. --job-name 'my job'")
    assert compact == flags == {"user": "k1*", "state": ["running", "completed"], "duration": "1h..",
                                "job-name": "my job"}
    flt = JobFilter.from_text_options(compact)
    assert flt.user.startsWith == "k1" and flt.state == ["running", "completed"]
    assert flt.duration.from_ == 3600 and flt.duration.to > 10**18  # open upper end
    assert parse_filter_text(filter_text(compact)) == compact
    assert parse_filter_text("") == {}


@pytest.mark.parametrize(("text", "field", "words"), [
    ("k1234", "filter", "not name:value"),
    ("colour:red", "colour", "unknown filter option"),
    ("user:a user:b", "user", "given twice"),
    ("--user", "user", "give a value"),
    ("user:'k1", "filter", "close the quote"),
])
def test_bad_filter_text_names_the_word(text, field, words):
    from cc_backend.jobs.filter import parse_filter_text

    with pytest.raises(InvalidInput) as err:
        parse_filter_text(text)
    assert err.value.field == field and words in err.value.message
