"""Evaluate OCA expressions against FITS headers (flattened keyword dicts).

Semantics, chosen to match how ESO's rule files are written:
- a bare keyword reads the candidate file's header; ``inputFile.X`` reads the header of
  the input the rule is selecting for (association) - in classification both are the
  same header;
- comparisons are numeric when both sides are numbers (or numeric text against a
  number), otherwise exact comparisons of the text with trailing blanks removed;
- a comparison with a missing keyword is false, except ``?=`` ("equal where both are
  set"), which is true when either side is missing;
- ``like`` is SQL's: ``%`` any run, ``_`` one character, case-sensitive, whole value;
- ``regexp`` searches a Python regular expression in the value (no code is run);
- ``+`` and ``-`` work on numbers (numeric text included); with a missing or
  non-numeric side the result is missing, so a comparison with it is false;
- ``X between A and B`` is ``A <= X <= B``; ``tryBetween`` is a preference over all
  candidates together, which a condition on one file cannot decide: evaluating it
  raises ``OCAEvaluationError`` naming the file, line and column;
- ``X is undefined`` is true when X is missing; ``T`` and ``F`` are true and false.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from qclib.errors import ConfigError
from qclib.oca.rules import (
    And,
    Arithmetic,
    Between,
    Boolean,
    Compare,
    Expr,
    Keyword,
    Like,
    Negative,
    Not,
    Number,
    Or,
    Regexp,
    Text,
    Truth,
    TypeTest,
    keywords_in,
)

Header = Mapping[str, Any]


class OCAEvaluationError(ConfigError):
    """A rule uses a construct that parses but that qclib cannot evaluate."""


@functools.lru_cache(maxsize=4096)
def like_regex(pattern: str) -> re.Pattern[str]:
    """Compile an SQL ``like`` pattern.

    >>> bool(like_regex("%FLAT%").fullmatch("LAMP,FLAT"))
    True
    >>> bool(like_regex("FLAT_").fullmatch("FLATS"))
    True
    """
    parts = []
    for char in pattern:
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _search_regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def operand_value(operand: Expr, header: Header, input_header: Header) -> Any:
    """The value of an operand; None when a keyword is missing."""
    if isinstance(operand, Keyword):
        value = (input_header if operand.of_input else header).get(operand.name)
        return value.rstrip() if isinstance(value, str) else value
    if isinstance(operand, Text):
        return operand.value
    if isinstance(operand, Number | Boolean):
        return operand.value
    if isinstance(operand, Arithmetic):
        left = _as_number(operand_value(operand.left, header, input_header))
        right = _as_number(operand_value(operand.right, header, input_header))
        if left is None or right is None:
            return None
        return left + right if operand.op == "+" else left - right
    if isinstance(operand, Negative):
        value = _as_number(operand_value(operand.operand, header, input_header))
        return None if value is None else -value
    return evaluate(operand, header, input_header)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def compare_values(op: str, left: Any, right: Any) -> bool:
    """Apply an OCA comparison operator to two header values."""
    if left is None or right is None:
        return op == "?="
    a: Any
    b: Any
    if isinstance(left, str) and isinstance(right, str):  # the common case: no parsing
        a, b = left.strip(), right.strip()
    else:
        numbers = (_as_number(left), _as_number(right))
        if None not in numbers:
            a, b = numbers
        else:
            a, b = _as_text(left), _as_text(right)
    if op in ("==", "?="):
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == ">":
        return bool(a > b)
    if op == "<=":
        return bool(a <= b)
    if op == ">=":
        return bool(a >= b)
    raise ValueError(f"unknown comparison operator {op!r}")


def truthy(value: Any) -> bool:
    """OCA truth of a value: T/true/non-zero/non-empty."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = str(value).strip()
    return text.upper() not in ("", "F", "FALSE", "0")


def evaluate(expr: Expr, header: Header, input_header: Header | None = None) -> Any:
    """Evaluate an expression: conditions give bool, operands give their value."""
    other = header if input_header is None else input_header
    if isinstance(expr, And):
        return all(truthy(evaluate(item, header, other)) for item in expr.items)
    if isinstance(expr, Or):
        return any(truthy(evaluate(item, header, other)) for item in expr.items)
    if isinstance(expr, Not):
        return not truthy(evaluate(expr.item, header, other))
    if isinstance(expr, Compare):
        return compare_values(
            expr.op,
            operand_value(expr.left, header, other),
            operand_value(expr.right, header, other),
        )
    if isinstance(expr, Like):
        value = operand_value(expr.operand, header, other)
        return value is not None and like_regex(expr.pattern).fullmatch(_as_text(value)) is not None
    if isinstance(expr, Regexp):
        value = operand_value(expr.operand, header, other)
        regex = _search_regex(expr.pattern)
        return value is not None and regex is not None and regex.search(_as_text(value)) is not None
    if isinstance(expr, TypeTest):
        value = operand_value(expr.operand, header, other)
        if expr.type_name == "string":
            return isinstance(value, str)
        if expr.type_name == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if expr.type_name == "undefined":
            return value is None
        raise ValueError(f"unknown type {expr.type_name!r} in {expr.to_oca()}")
    if isinstance(expr, Between):
        if expr.soft:
            raise OCAEvaluationError(
                f"{expr.where}: 'tryBetween' ({expr.to_oca()}) prefers candidates inside "
                "the window only when there are some, a choice among all candidates that "
                "qclib's association does not make; use 'between' (a hard window) or "
                "leave the window to the validity windows of the instrument's TOML"
            )
        value = operand_value(expr.operand, header, other)
        low = operand_value(expr.low, header, other)
        high = operand_value(expr.high, header, other)
        return compare_values(">=", value, low) and compare_values("<=", value, high)
    if isinstance(expr, Truth):
        return truthy(operand_value(expr.operand, header, other))
    return operand_value(expr, header, other)


def failed_conditions(expr: Expr, header: Header, input_header: Header | None = None) -> list[str]:
    """The atoms of an ``and`` chain that are false, with the values they saw.

    >>> from qclib.oca import parse_oca
    >>> rule = parse_oca('if DPR.CATG == "CALIB" and DPR.TYPE == "BIAS" then { DO.CATG = "B"; }')
    >>> header = {"DPR.CATG": "CALIB", "DPR.TYPE": "DARK"}
    >>> failed_conditions(rule.classifications[0].condition, header)
    ['DPR.TYPE == "BIAS" (DPR.TYPE is \\'DARK\\')']
    """
    items = expr.items if isinstance(expr, And) else (expr,)
    failed = []
    for item in items:
        if truthy(evaluate(item, header, input_header)):
            continue
        seen = []
        for keyword in sorted(keywords_in(item), key=lambda k: k.name):
            source = input_header if keyword.of_input and input_header is not None else header
            value = source.get(keyword.name)
            shown = "missing" if value is None else f"is {value!r}"
            seen.append(f"{keyword.to_oca()} {shown}")
        failed.append(f"{item.to_oca()} ({', '.join(seen)})" if seen else item.to_oca())
    return failed
