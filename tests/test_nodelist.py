"""Nodelist parsing, membership and expansion (upstream pkg/archive/nodelist_test.go cases and more)."""

from __future__ import annotations

import orjson
import pytest
from peerdata import ARCHIVE, IMPORTER

from cc_backend.archive.nodelist import NodeList, parse_nodelist
from cc_backend.errors import InvalidInput


def test_mixed_terms_upstream_case():
    nl = parse_nodelist("hallo,wel123t,emmy[01-99],fritz[005-500],woody[100-200]")
    for host in ["hallo", "wel123t", "emmy01", "emmy42", "emmy99", "woody100", "woody199", "fritz005", "fritz500"]:
        assert nl.contains(host), host
    for host in ["hello", "woody", "fritz1", "fritz9", "fritz004", "woody201", "emmy00", "emmy100", "hallo1", ""]:
        assert not nl.contains(host), host


def test_multiple_ranges_in_one_group_upstream_case():
    nl = parse_nodelist("a[1000-2000,2010-2090,3000-5000]")
    for host in ["a1001", "a2000", "a2042", "a4321", "a3000"]:
        assert host in nl, host
    for host in ["a0", "a0000", "a5001", "a2005", "a20100"]:
        assert host not in nl, host


def test_dash_in_prefix_upstream_case():
    nl = parse_nodelist("cn-0010,cn0011,cn-00[13-18,22-24]")
    for host in ["cn-0010", "cn0011", "cn-0013", "cn-0015", "cn-0018", "cn-0022", "cn-0024"]:
        assert nl.contains(host), host
    for host in ["cn-0012", "cn-0019", "cn-0025", "cn-0011", "cn0010"]:
        assert not nl.contains(host), host


def test_expand_keeps_zero_padding_and_order():
    assert parse_nodelist("emmy[01-03],login").expand() == ["emmy01", "emmy02", "emmy03", "login"]
    assert parse_nodelist("cn-00[13-14,22-23]").expand() == ["cn-0013", "cn-0014", "cn-0022", "cn-0023"]
    assert parse_nodelist("f[0998-1001]").expand() == ["f0998", "f0999", "f1000", "f1001"]


def test_expand_multiple_groups_in_one_term():
    nl = parse_nodelist("r[1-2]n[01-02]")
    assert nl.expand() == ["r1n01", "r1n02", "r2n01", "r2n02"]
    assert nl.count() == 4
    assert all(nl.contains(h) for h in nl.expand())
    assert not nl.contains("r3n01")


def test_count_matches_expansion():
    nl = parse_nodelist("hallo,emmy[01-99],fritz[005-500],a[1000-2000,2010-2090]")
    assert nl.count() == len(nl.expand()) == 1 + 99 + 496 + 1001 + 81
    assert len(nl) == nl.count()


def test_single_numbers_inside_brackets():
    nl = parse_nodelist("a[01,03-04]")
    assert nl.expand() == ["a01", "a03", "a04"]
    assert "a02" not in nl


def test_alternatives_of_different_width_backtrack():
    nl = parse_nodelist("n[1-9,10-20]x")
    assert nl.contains("n5x")
    assert nl.contains("n15x")
    assert not nl.contains("n21x")


def test_wildcard():
    nl = parse_nodelist("*")
    assert nl.is_wildcard
    assert nl.contains("anything") and nl.contains("")
    assert nl.expand() == [] and nl.count() == 0


def test_empty_expression_contains_nothing():
    nl = parse_nodelist("")
    assert not nl.contains("a") and nl.expand() == []


def test_non_digit_and_signed_numbers_do_not_match_ranges():
    nl = parse_nodelist("emmy[01-99]")
    assert not nl.contains("emmy+1")
    assert not nl.contains("emmy1x")
    assert not nl.contains("emmy٠١")  # Arabic-Indic digits are digits to str.isdigit() but not hostnames


def test_parse_via_classmethod_equality_and_str():
    nl = NodeList.parse("a[01-02]")
    assert nl == parse_nodelist("a[01-02]")
    assert str(nl) == "a[01-02]"
    assert hash(nl) == hash(parse_nodelist("a[01-02]"))


@pytest.mark.parametrize(
    "expression",
    [
        "a[01-10",  # unclosed
        "a01-10]",  # ']' without '['
        "a[[01-10]]",  # nested
        "a[1-10]",  # unequal width
        "a[01-x2]",  # not digits
        "a[-10]",
        "a[10-]",
        "a[]",
        "a[10-01]",  # start after end
        "a,,b",  # empty term
        "a,",
        "a b",  # whitespace
        "a/b",
        "a,*",  # wildcard must stand alone
    ],
)
def test_bad_syntax_names_the_expression(expression):
    with pytest.raises(InvalidInput) as info:
        parse_nodelist(expression)
    assert repr(expression) in info.value.message
    assert info.value.field == "nodes"


def test_non_string_is_rejected():
    with pytest.raises(InvalidInput):
        parse_nodelist(None)  # type: ignore[arg-type]


def test_every_real_nodelist_parses():
    files = [*ARCHIVE.glob("*/cluster.json"), IMPORTER / "cluster-fritz.json"]
    assert len(files) == 4
    for f in files:
        for sc in orjson.loads(f.read_bytes())["subClusters"]:
            nl = parse_nodelist(sc["nodes"])
            hosts = nl.expand()
            assert hosts and all(nl.contains(h) for h in hosts[:: max(1, len(hosts) // 50)])


def test_real_fritz_main_nodelist():
    fritz = orjson.loads((ARCHIVE / "fritz" / "cluster.json").read_bytes())
    nl = parse_nodelist(fritz["subClusters"][0]["nodes"])
    assert nl.count() == 10 * 88 + 2 * 56
    assert nl.contains("f0101") and nl.contains("f1256")
    assert not nl.contains("f0189") and not nl.contains("f1257") and not nl.contains("f2157")
