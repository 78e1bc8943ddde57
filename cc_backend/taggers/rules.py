"""Safe evaluator for the expr-lang subset used by job-class rules: a lark grammar, compiled once into closures."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from cc_backend.errors import InvalidInput

MAX_LENGTH = 4000
MAX_DEPTH = 64

Compiled = Callable[[Mapping[str, Any]], Any]

# Operators of one precedence level are a flat list (`a + b - c` is one `sum` node), so a long chain
# neither nests the tree nor the closures; parentheses keep a `group` node so that their nesting counts.
GRAMMAR = r"""
?start: disjunction
?disjunction: conjunction ((_OR | "or") conjunction)*
?conjunction: comparison ((_AND | "and") comparison)*
?comparison: sum (COMPARE sum)?
?sum: product (ADD product)*
?product: unary (MUL unary)*
?unary: ("!" | "not") unary -> negation
      | NEGATIVE unary -> minus
      | "+" unary
      | atom
?atom: NUMBER -> number
     | STRING -> string
     | NAME ("." NAME)* -> path
     | "(" disjunction ")" -> group

NEGATIVE: "-"
_OR: "||"
_AND: "&&"
COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD: "+" | "-"
MUL: "*" | "/" | "%"
NUMBER: /\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?/
STRING: /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%import common.WS
%ignore WS
"""

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


class RuleError(InvalidInput):
    """An expression that does not parse or evaluate; the message carries ``line:column``."""


@functools.cache
def _parser() -> Lark:
    # Built once, on first use: the LALR tables take ~40 ms, which only a process that loads rules pays.
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _unescape(body: str) -> str:
    # Only the simple escapes; unicode_escape would mangle non-ASCII text in the literal.
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"


def _where(item: Tree | Token) -> str:
    if isinstance(item, Token):
        return f"{item.line}:{item.column}"
    return f"{item.meta.line}:{item.meta.column}"


def _syntax_error(text: str, exc: UnexpectedInput) -> RuleError:
    if isinstance(exc, UnexpectedCharacters):
        return RuleError(f"{exc.line}:{exc.column}: unexpected character {text[exc.pos_in_stream]!r}")
    # lark 0.12's type stubs do not declare UnexpectedToken's attributes; they are there at run time.
    token: Token | None = getattr(exc, "token", None) if isinstance(exc, UnexpectedToken) else None
    if token is None:
        return RuleError(f"{exc.line}:{exc.column}: {exc}")
    if token.type == "$END":
        return RuleError(f"{_position(text, len(text))}: unexpected end of expression")
    if getattr(exc, "expected", None) == {"NAME"}:
        return RuleError(f"{token.line}:{token.column}: expected a member name after '.'")
    return RuleError(f"{token.line}:{token.column}: unexpected {token.value!r}")


def _check_depth(tree: Tree) -> None:
    # Iterative, so that a hostile expression cannot exhaust Python's stack before it is refused.
    pending: list[tuple[Tree, int]] = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise RuleError(f"{_where(node)}: expression nested deeper than {MAX_DEPTH}")
        pending.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "%": lambda a, b: a % b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _apply(op: str, a: Any, b: Any, where: str) -> Any:
    if op not in ("==", "!=") and (isinstance(a, bool) or isinstance(b, bool)
                                    or not isinstance(a, (int, float)) or not isinstance(b, (int, float))):
        if not (op == "+" and isinstance(a, str) and isinstance(b, str)):
            raise RuleError(f"{where}: operator {op!r} needs numbers, got {type(a).__name__} and {type(b).__name__}")
    try:
        return _OPS[op](a, b)
    except ZeroDivisionError:
        # expr-lang follows Go float semantics: x/0 is ±Inf (or NaN for 0/0) rather than an error.
        if a == 0:
            return float("nan")
        return float("inf") if a > 0 else float("-inf")


def _chain(children: list[Any]) -> Compiled:
    """``operand (OP operand)*`` evaluated left to right in one loop."""
    first: Compiled = children[0]
    steps = [(str(op), _where(op), operand) for op, operand in zip(children[1::2], children[2::2], strict=True)]

    def run(env: Mapping[str, Any]) -> Any:
        value = first(env)
        for op, where, operand in steps:
            value = _apply(op, value, operand(env), where)
        return value

    return run


class _Compiler(Transformer):
    """Turns the parse tree into nested closures over the environment mapping."""

    def disjunction(self, operands: list[Compiled]) -> Compiled:
        if len(operands) == 2:  # the common case, without a loop's overhead
            left, right = operands
            return lambda env: bool(left(env)) or bool(right(env))
        return lambda env: any(bool(operand(env)) for operand in operands)

    def conjunction(self, operands: list[Compiled]) -> Compiled:
        if len(operands) == 2:
            left, right = operands
            return lambda env: bool(left(env)) and bool(right(env))
        return lambda env: all(bool(operand(env)) for operand in operands)

    def comparison(self, children: list[Any]) -> Compiled:
        return _chain(children)

    def sum(self, children: list[Any]) -> Compiled:  # noqa: A003 - the grammar's rule name
        return _chain(children)

    def product(self, children: list[Any]) -> Compiled:
        return _chain(children)

    def negation(self, children: list[Compiled]) -> Compiled:
        operand = children[0]
        return lambda env: not operand(env)

    def minus(self, children: list[Any]) -> Compiled:
        sign, operand = children
        where = _where(sign)
        return lambda env: _apply("-", 0, operand(env), where)

    def group(self, children: list[Compiled]) -> Compiled:
        return children[0]

    def number(self, children: list[Token]) -> Compiled:
        text = str(children[0])
        value = float(text) if any(c in text for c in ".eE") else int(text)
        return lambda env: value

    def string(self, children: list[Token]) -> Compiled:
        value = _unescape(str(children[0])[1:-1])
        return lambda env: value

    def path(self, names: list[Token]) -> Compiled:
        if len(names) == 1 and names[0] in ("true", "false"):
            constant = names[0] == "true"
            return lambda env: constant
        for member in names[1:]:
            if member.startswith("_"):
                raise RuleError(f"{_where(member)}: member {str(member)!r} is not accessible")
        parts = [str(name) for name in names]
        where, dotted = _where(names[0]), ".".join(parts)

        def run(env: Mapping[str, Any]) -> Any:
            value: Any = env
            for part in parts:
                if not isinstance(value, Mapping) or part not in value:
                    raise RuleError(f"{where}: unknown name {dotted!r}")
                value = value[part]
            return value

        return run


def compile_expr(text: str) -> Compiled:
    """Parse ``text`` once into a callable evaluating it against an environment mapping."""
    if len(text) > MAX_LENGTH:
        raise RuleError(f"1:1: expression longer than {MAX_LENGTH} characters")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    _check_depth(tree)
    try:
        return _Compiler().transform(tree)
    except VisitError as exc:  # lark wraps what a Transformer method raises (a refused member name)
        if isinstance(exc.orig_exc, RuleError):
            raise exc.orig_exc from None
        raise


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    """Parse and evaluate ``text`` in one go (for one-off use; rules compile once)."""
    return compile_expr(text)(env)
