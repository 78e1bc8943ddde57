"""Safe evaluator for the expr-lang subset used by job-class rules (parse once, evaluate against a dict)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from cc_backend.errors import InvalidInput

MAX_LENGTH = 4000
MAX_DEPTH = 64

Compiled = Callable[[Mapping[str, Any]], Any]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!().]))"
)
_KEYWORDS = {"and": "&&", "or": "||", "not": "!"}


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def _unescape(body: str) -> str:
    # Only the simple escapes; unicode_escape would mangle non-ASCII text in the literal.
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


class RuleError(InvalidInput):
    """An expression that does not parse or evaluate; the message carries ``line:column``."""


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, Any, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                start = pos + len(text[pos:]) - len(text[pos:].lstrip())
                raise self.error(start, f"unexpected character {text[start]!r}")
            start = m.start(m.lastgroup or "op")
            kind = m.lastgroup or "op"
            value: Any = m.group(kind)
            if kind == "num":
                value = float(value) if any(c in value for c in ".eE") else int(value)
            elif kind == "str":
                value = _unescape(value[1:-1])
            elif kind == "name" and value in _KEYWORDS:
                kind, value = "op", _KEYWORDS[value]
            self.tokens.append((kind, value, start))
            pos = m.end()
        self.tokens.append(("end", None, len(text)))
        self.index = 0
        self.depth = 0

    def error(self, offset: int, message: str) -> RuleError:
        return RuleError(f"{_position(self.text, offset)}: {message}")

    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, Any, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, *ops: str) -> str | None:
        kind, value, _ = self.peek()
        if kind == "op" and value in ops:
            self.index += 1
            return str(value)
        return None

    def parse(self) -> Compiled:
        node = self.expr()
        kind, value, offset = self.peek()
        if kind != "end":
            raise self.error(offset, f"unexpected {value!r}")
        return node

    def enter(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(offset, f"expression nested deeper than {MAX_DEPTH}")

    def expr(self) -> Compiled:
        self.enter(self.peek()[2])
        try:
            return self.or_()
        finally:
            self.depth -= 1

    def or_(self) -> Compiled:
        left = self.and_()
        while self.accept("||"):
            right = self.and_()
            left = (lambda a, b: lambda env: bool(a(env)) or bool(b(env)))(left, right)
        return left

    def and_(self) -> Compiled:
        left = self.cmp()
        while self.accept("&&"):
            right = self.cmp()
            left = (lambda a, b: lambda env: bool(a(env)) and bool(b(env)))(left, right)
        return left

    def cmp(self) -> Compiled:
        left = self.add()
        offset = self.peek()[2]
        op = self.accept("==", "!=", "<", "<=", ">", ">=")
        if op is None:
            return left
        right = self.add()
        return _binary(op, left, right, self.text, offset)

    def add(self) -> Compiled:
        left = self.mul()
        while True:
            offset = self.peek()[2]
            op = self.accept("+", "-")
            if op is None:
                return left
            left = _binary(op, left, self.mul(), self.text, offset)

    def mul(self) -> Compiled:
        left = self.unary()
        while True:
            offset = self.peek()[2]
            op = self.accept("*", "/", "%")
            if op is None:
                return left
            left = _binary(op, left, self.unary(), self.text, offset)

    def unary(self) -> Compiled:
        offset = self.peek()[2]
        op = self.accept("!", "-", "+")
        if op is None:
            return self.primary()
        self.enter(offset)
        try:
            operand = self.unary()
        finally:
            self.depth -= 1
        if op == "!":
            return lambda env: not operand(env)
        if op == "-":
            return _binary("-", lambda env: 0, operand, self.text, offset)
        return operand

    def primary(self) -> Compiled:
        kind, value, offset = self.take()
        if kind in ("num", "str"):
            return lambda env: value
        if kind == "name":
            if value in ("true", "false"):
                constant = value == "true"
                return lambda env: constant
            path = [value]
            while self.accept("."):
                kind, member, moffset = self.take()
                if kind != "name":
                    raise self.error(moffset, "expected a member name after '.'")
                if member.startswith("_"):
                    raise self.error(moffset, f"member {member!r} is not accessible")
                path.append(member)
            return _lookup(path, self.text, offset)
        if kind == "op" and value == "(":
            node = self.expr()
            if not self.accept(")"):
                raise self.error(self.peek()[2], "expected ')'")
            return node
        raise self.error(offset, "unexpected end of expression" if kind == "end" else f"unexpected {value!r}")


def _lookup(path: list[str], text: str, offset: int) -> Compiled:
    where = _position(text, offset)
    dotted = ".".join(path)

    def run(env: Mapping[str, Any]) -> Any:
        value: Any = env
        for part in path:
            if not isinstance(value, Mapping) or part not in value:
                raise RuleError(f"{where}: unknown name {dotted!r}")
            value = value[part]
        return value

    return run


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "%": lambda a, b: a % b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _binary(op: str, left: Compiled, right: Compiled, text: str, offset: int) -> Compiled:
    fn = _OPS[op]
    where = _position(text, offset)

    def run(env: Mapping[str, Any]) -> Any:
        a, b = left(env), right(env)
        if op not in ("==", "!=") and (isinstance(a, bool) or isinstance(b, bool)
                                        or not isinstance(a, (int, float)) or not isinstance(b, (int, float))):
            if not (op == "+" and isinstance(a, str) and isinstance(b, str)):
                raise RuleError(f"{where}: operator {op!r} needs numbers, got {type(a).__name__} and {type(b).__name__}")
        try:
            return fn(a, b)
        except ZeroDivisionError:
            # expr-lang follows Go float semantics: x/0 is ±Inf (or NaN for 0/0) rather than an error.
            if a == 0:
                return float("nan")
            return float("inf") if a > 0 else float("-inf")

    return run


def compile_expr(text: str) -> Compiled:
    """Parse ``text`` once into a callable evaluating it against an environment mapping."""
    if len(text) > MAX_LENGTH:
        raise RuleError(f"1:1: expression longer than {MAX_LENGTH} characters")
    return _Parser(text).parse()


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    """Parse and evaluate ``text`` in one go (for one-off use; rules compile once)."""
    return compile_expr(text)(env)
