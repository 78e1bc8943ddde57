"""Job classes: the rule expression language and the five shipped rules on generated jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cc_backend.archive.cluster import load_cluster_config
from cc_backend.taggers.jobclasses import SHIPPED_RULES, JobClassifier, job_class_tags, load_rules
from cc_backend.taggers.rules import RuleError, compile_expr, evaluate

FRITZ = Path(__file__).parent / "fixtures/peer-data/archive/fritz/cluster.json"


@pytest.fixture(scope="module")
def subcluster():
    return load_cluster_config(json.loads(FRITZ.read_text())).sub_cluster("main")


@pytest.fixture(scope="module")
def classifier():
    return JobClassifier()


def healthy_job(**stats):
    base = {
        "cpu_load": {"min": 60.0, "max": 72.0, "avg": 70.0},
        "mem_used": {"min": 50.0, "max": 100.0, "avg": 80.0},
        "flops_any": {"min": 500.0, "max": 2000.0, "avg": 1000.0},
        "mem_bw": {"min": 50.0, "max": 150.0, "avg": 100.0},
    }
    base.update(stats)
    return {"jobId": 1, "shared": "none", "duration": 3600, "numNodes": 1, "numHwthreads": 72, "numAcc": 0,
            "jobState": "completed", "smt": 1, "statistics": base}


@pytest.mark.parametrize("text,expected", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 4 - 3", 3), ("8 / 4 / 2", 1.0), ("-2 * -3", 6),
    ("1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3 && 1 != 2 && 1 == 1", True), ("false || !false", True),
    ("true && false || true", True), ("not (1 > 2) and 2 > 1 or false", True), ('"none" == "none"', True),
    ("1.5e2", 150.0), (r'"é\"x" == "é" + "\"x"', True),
])
def test_expression_values_and_precedence(text, expected):
    assert evaluate(text, {}) == expected


def test_member_access_resolves_nested_names():
    env = {"mem_used": {"max": 240.0, "limits": {"peak": 256.0}}, "job": {"numNodes": 4}}
    assert evaluate("mem_used.max / mem_used.limits.peak * 100.0", env) == pytest.approx(93.75)
    assert evaluate("job.numNodes * 2", env) == 8


@pytest.mark.parametrize("text,position", [("1 +", "1:4"), ("1 + )", "1:5"), ("a\n  && $", "2:6"), ("(1", "1:3")])
def test_syntax_errors_name_their_position(text, position):
    with pytest.raises(RuleError, match=f"^{position}:"):
        compile_expr(text)


def test_unknown_names_are_errors_naming_name_and_position():
    with pytest.raises(RuleError, match=r"1:5: unknown name 'job.nope'"):
        evaluate("1 + job.nope", {"job": {}})
    with pytest.raises(RuleError, match="unknown name 'open'"):
        evaluate("open", {})


def test_python_internals_are_not_reachable():
    with pytest.raises(RuleError, match="not accessible"):
        compile_expr("job.__class__")
    with pytest.raises(RuleError):
        evaluate("job.keys", {"job": {"a": 1}})


def test_nesting_and_length_are_bounded():
    with pytest.raises(RuleError, match="nested deeper"):
        compile_expr("(" * 100 + "1" + ")" * 100)
    with pytest.raises(RuleError, match="nested deeper"):
        compile_expr("!" * 100 + "true")
    with pytest.raises(RuleError, match="longer than"):
        compile_expr("1+" * 3000 + "1")


def test_long_flat_chains_are_not_nesting():
    # One precedence level is one loop: 1,999 terms neither count as nesting nor recurse when evaluated.
    assert evaluate("+".join(["1"] * 1999), {}) == 1999
    assert evaluate(" || ".join(["x > 1"] * 400) + " || x == 1", {"x": 1}) is True
    assert evaluate(" && ".join(["x == 1"] * 400), {"x": 1}) is True


def test_type_errors_are_rule_errors():
    with pytest.raises(RuleError, match="needs numbers"):
        evaluate('"a" < 1', {})


def test_shipped_rules_load_cleanly():
    rules = load_rules(SHIPPED_RULES)
    assert rules.errors == []
    assert sorted(r.tag for r in rules.rules) == ["excessiveload", "highmemory", "lowload", "lowutilization",
                                                  "memorybound"]
    assert rules.parameters["job_min_duration_seconds"] == 600.0


def test_healthy_job_matches_nothing(classifier, subcluster):
    assert classifier.classify(healthy_job(), subcluster) == []


@pytest.mark.parametrize("stats,tag", [
    ({"cpu_load": {"min": 1.0, "max": 20.0, "avg": 10.0}}, "lowload"),
    ({"cpu_load": {"min": 80.0, "max": 150.0, "avg": 100.0}}, "excessiveload"),
    ({"mem_used": {"min": 100.0, "max": 250.0, "avg": 200.0}}, "highmemory"),
    ({"mem_bw": {"min": 200.0, "max": 340.0, "avg": 300.0}}, "memorybound"),
    ({"flops_any": {"min": 0.0, "max": 60.0, "avg": 20.0}, "mem_bw": {"min": 1.0, "max": 9.0, "avg": 5.0}},
     "lowutilization"),
])
def test_each_shipped_rule_fires_on_a_matching_job(classifier, subcluster, stats, tag):
    assert [t for t, _ in classifier.classify(healthy_job(**stats), subcluster)] == [tag]


def test_requirements_gate_rules(classifier, subcluster):
    low = {"cpu_load": {"min": 1.0, "max": 20.0, "avg": 10.0}}
    assert classifier.classify({**healthy_job(**low), "duration": 300}, subcluster) == []
    assert classifier.classify({**healthy_job(**low), "shared": "single_user"}, subcluster) == []


def test_job_lacking_a_metric_is_not_classified_by_that_rule(classifier, subcluster):
    job = healthy_job(cpu_load={"min": 1.0, "max": 20.0, "avg": 10.0})
    del job["statistics"]["mem_bw"]
    assert [t for t, _ in classifier.classify(job, subcluster)] == ["lowload"]


def test_hints_render_rounded_numbers(classifier, subcluster):
    job = healthy_job(mem_used={"min": 100.0, "max": 250.123, "avg": 200.0})
    [(tag, hint)] = classifier.classify(job, subcluster)
    assert "peak memory usage 250.12 GB (97.7% of 256 GB node capacity), exceeding the 0.9 utilization" in hint
    tags, message = job_class_tags([(tag, hint), ("lowload", "second")])
    assert tags == ["jobClass:highmemory", "jobClass:lowload"]
    assert message == hint + "\nsecond"


def test_broken_rule_file_is_reported_and_others_load(tmp_path):
    for f in SHIPPED_RULES.glob("*.json"):
        shutil.copy(f, tmp_path)
    broken = json.loads((tmp_path / "lowload.json").read_text())
    broken["rule"] = "cpu_load.avg < < load_threshold"
    (tmp_path / "lowload.json").write_text(json.dumps(broken))
    (tmp_path / "notjson.json").write_text("{")
    rules = load_rules(tmp_path)
    assert len(rules.rules) == 4
    assert any("lowload.json: rule: 1:16:" in e for e in rules.errors)
    assert any("notjson.json" in e for e in rules.errors)


def test_classifier_reloads_changed_files(tmp_path, subcluster):
    for f in SHIPPED_RULES.glob("*.json"):
        shutil.copy(f, tmp_path)
    clf = JobClassifier(tmp_path)
    assert not clf.reload_if_changed()
    (tmp_path / "highload.json").unlink()
    assert clf.reload_if_changed()
    assert len(clf.ruleset.rules) == 4


def test_upstreams_own_case_a_variable_rule_tags_and_writes_the_message(tmp_path, subcluster):
    """Upstream's tagger test: a rule ``avg_flops > 100`` over a variable, flops_any avg 150 => jobClass:high_flops
    and the hint in the job's message (no parameters.json needed)."""
    rule = {"name": "High FLOPS", "tag": "high_flops", "parameters": [], "metrics": ["flops_any"],
            "requirements": [], "variables": [{"name": "avg_flops", "expr": "flops_any.avg"}],
            "rule": "avg_flops > 100", "hint": "FLOP rate {{.avg_flops}} GF/s"}
    (tmp_path / "high_flops.json").write_text(json.dumps(rule))
    clf = JobClassifier(tmp_path)
    assert clf.ruleset.errors == []
    flops = {"min": 100.0, "max": 200.0, "avg": 150.0}
    matched = clf.classify(healthy_job(flops_any=flops), subcluster)
    assert matched == [("high_flops", "FLOP rate 150 GF/s")]
    assert job_class_tags(matched) == (["jobClass:high_flops"], "FLOP rate 150 GF/s")
    assert clf.classify(healthy_job(flops_any={**flops, "avg": 99.5}), subcluster) == []
