"""Nodelist expressions of subclusters (``emmy[01-99],fritz[005-500]``): parsing, membership and expansion."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

from cc_backend.errors import InvalidInput

__all__ = ["WILDCARD", "NodeList", "parse_nodelist"]

#: The expression that matches any host (only honoured as first-subcluster fallback by the registry).
WILDCARD = "*"

# Upstream accepts letters, digits and '-' in names; '_' and '.' are added because real hostnames carry them.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True, slots=True)
class _Range:
    start: int
    end: int
    digits: int

    def matches(self, text: str) -> bool:
        # isascii() guards against unicode digits that int() would accept
        return len(text) == self.digits and text.isascii() and text.isdigit() and self.start <= int(text) <= self.end

    def values(self) -> Iterator[str]:
        for i in range(self.start, self.end + 1):
            yield f"{i:0{self.digits}d}"


# One part of a term: a literal string or the alternatives of one ``[...]`` group.
_Part = str | tuple[_Range, ...]


class NodeList:
    """A parsed nodelist; terms are OR-ed, each term is a sequence of literals and ``[...]`` range groups."""

    __slots__ = ("_terms", "_wildcard", "expression")

    def __init__(self, expression: str, terms: tuple[tuple[_Part, ...], ...], wildcard: bool = False) -> None:
        self.expression = expression
        self._terms = terms
        self._wildcard = wildcard

    @classmethod
    def parse(cls, expression: str) -> NodeList:
        return parse_nodelist(expression)

    @property
    def is_wildcard(self) -> bool:
        return self._wildcard

    def contains(self, hostname: str) -> bool:
        if self._wildcard:
            return True
        return any(_match(term, 0, hostname, 0) for term in self._terms)

    __contains__ = contains

    def expand(self) -> list[str]:
        """Every hostname in expression order; ``*`` cannot be enumerated and expands to ``[]``."""
        out: list[str] = []
        for term in self._terms:
            choices: list[list[str]] = []
            for part in term:
                if isinstance(part, str):
                    choices.append([part])
                else:
                    choices.append([v for rng in part for v in rng.values()])
            out.extend("".join(combo) for combo in product(*choices))
        return out

    def count(self) -> int:
        """Number of hostnames ``expand()`` would return, without building them."""
        total = 0
        for term in self._terms:
            n = 1
            for part in term:
                if not isinstance(part, str):
                    n *= sum(r.end - r.start + 1 for r in part)
            total += n
        return total

    def __len__(self) -> int:
        return self.count()

    def __str__(self) -> str:
        return self.expression

    def __repr__(self) -> str:
        return f"NodeList({self.expression!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeList) and other.expression == self.expression

    def __hash__(self) -> int:
        return hash(self.expression)


def _match(term: tuple[_Part, ...], i: int, name: str, pos: int) -> bool:
    if i == len(term):
        return pos == len(name)
    part = term[i]
    if isinstance(part, str):
        return name.startswith(part, pos) and _match(term, i + 1, name, pos + len(part))
    # Alternatives may differ in width, so try each instead of committing to the first that fits.
    return any(rng.matches(name[pos : pos + rng.digits]) and _match(term, i + 1, name, pos + rng.digits) for rng in part)


def _fail(expression: str, reason: str) -> InvalidInput:
    return InvalidInput(f"invalid nodelist {expression!r}: {reason}", field="nodes")


def _split_terms(expression: str) -> list[str]:
    terms: list[str] = []
    start = 0
    depth = 0
    for i, ch in enumerate(expression):
        if ch == "[":
            if depth:
                raise _fail(expression, f"nested '[' at position {i}")
            depth = 1
        elif ch == "]":
            if not depth:
                raise _fail(expression, f"']' without '[' at position {i}")
            depth = 0
        elif ch == "," and not depth:
            terms.append(expression[start:i])
            start = i + 1
    if depth:
        raise _fail(expression, "unclosed '['")
    terms.append(expression[start:])
    return terms


def _parse_group(expression: str, body: str) -> tuple[_Range, ...]:
    if not body:
        raise _fail(expression, "empty '[]'")
    ranges: list[_Range] = []
    for item in body.split(","):
        lo, sep, hi = item.partition("-")
        if not sep:
            # A single zero-padded number; upstream insists on 'a-b' but Slurm writes 'a[01,03]'.
            hi = lo
        if not lo or not (lo.isascii() and lo.isdigit() and hi.isascii() and hi.isdigit()):
            raise _fail(expression, f"range {item!r} must be 'start-end' made of digits")
        if len(lo) != len(hi):
            raise _fail(expression, f"{lo} and {hi} are not of equal width (ranges are zero-padded)")
        start, end = int(lo), int(hi)
        if start > end:
            raise _fail(expression, f"range {item!r} starts after it ends")
        ranges.append(_Range(start, end, len(lo)))
    return tuple(ranges)


def parse_nodelist(expression: str) -> NodeList:
    """Parse a nodelist expression; raises InvalidInput naming the expression on bad syntax."""
    if not isinstance(expression, str):
        raise InvalidInput(f"invalid nodelist {expression!r}: not a string", field="nodes")
    if expression == WILDCARD:
        return NodeList(expression, (), wildcard=True)
    if expression == "":
        return NodeList(expression, ())
    terms: list[tuple[_Part, ...]] = []
    for raw in _split_terms(expression):
        if not raw:
            raise _fail(expression, "empty term (stray ',')")
        if raw == WILDCARD:
            raise _fail(expression, "'*' must be the whole expression")
        parts: list[_Part] = []
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch == "[":
                end = raw.index("]", i)  # _split_terms guarantees a closing bracket
                parts.append(_parse_group(expression, raw[i + 1 : end]))
                i = end + 1
            elif ch in _NAME_CHARS:
                j = i
                while j < len(raw) and raw[j] in _NAME_CHARS:
                    j += 1
                parts.append(raw[i:j])
                i = j
            else:
                raise _fail(expression, f"invalid character {ch!r}")
        terms.append(tuple(parts))
    return NodeList(expression, tuple(terms))
