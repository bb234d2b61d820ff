"""Headers that make a rule fire: a witness for each organisation rule of a rule file.

``satisfying(expr, start)`` yields headers, each ``start`` with keywords added, on
which a condition is true (or false): ``and`` chains its items, ``or`` tries each,
``not`` asks the opposite, and at each comparison every keyword not yet set is tried
with values taken from the comparison's own literals (the value itself, a different
one, one above and one below; a ``like`` pattern with its wildcards filled). Every
header yielded has been checked with ``evaluate``: nothing is assumed about what a
comparison means.

``frame_header(rules, org)`` goes on to the frames an organisation rule groups: a
header the file's classification rules turn into what the rule selects (its DO.CATG,
or whatever keyword the classification assigns), with ESO's signals (SIG.TEMPLATE,
SIG.FRAME) set and ``LF.<key>`` read as the frame's own key, as for a template of
identical frames. ``qc rules check`` reports the organisation rules no header reaches.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

try:  # the regular-expression parser (sre_parse before Python 3.11)
    from re import _parser as re_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse as re_parser  # type: ignore[no-redef]

from qclib.oca.evaluate import OCAEvaluationError, evaluate, truthy
from qclib.oca.rules import And as AndExpr
from qclib.oca.rules import (
    Between,
    Expr,
    Keyword,
    Like,
    Not,
    Number,
    Organisation,
    Regexp,
    RuleSet,
    Text,
    TypeTest,
    keywords_in,
)
from qclib.oca.rules import Boolean as BooleanExpr
from qclib.oca.rules import Or as OrExpr

#: ESO's organisation signals (qclib.associate) and the prefix of a template's last frame.
SIGNALS = ("SIG.TEMPLATE", "SIG.FRAME")
LAST_FRAME = "LF."
#: How many headers a search looks at before it gives up on a condition.
SEARCH_LIMIT = 2000

Header = dict[str, Any]


def _literals(expr: Expr) -> list[Any]:
    """Values worth trying for the keywords of a comparison."""
    out: list[Any] = []
    if isinstance(expr, Text):
        out += [expr.value, f"{expr.value}_OTHER"]
    elif isinstance(expr, Number):
        out += [expr.value, expr.value + 1, expr.value - 1]
    elif isinstance(expr, Like):
        out += [expr.pattern.replace("%", "").replace("_", "X"), "NO_MATCH"]
    elif isinstance(expr, Regexp):
        example = regex_example(expr.pattern)
        out += ["NO_MATCH"] if example is None else [example, "NO_MATCH"]
    elif isinstance(expr, TypeTest):
        out += ["X", 1.0]
    for child in _children(expr):
        out += _literals(child)
    return out


def regex_example(pattern: str) -> str | None:
    """A short text the regular expression matches (None: a construct not handled).

    >>> regex_example("MUSE_[wn]fm_cal_specflat")
    'MUSE_wfm_cal_specflat'
    """
    try:
        parsed = re_parser.parse(pattern)
    except re.error:
        return None
    return _example(list(parsed))


def _example(items: list[tuple[Any, Any]]) -> str | None:
    out = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "ANY":
            out.append("X")
        elif name == "IN":
            first = next((a for a in arg if str(a[0]) in ("LITERAL", "RANGE")), None)
            if first is None:
                return None
            out.append(chr(first[1] if str(first[0]) == "LITERAL" else first[1][0]))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            part = _example(list(sub))
            if part is None:
                return None
            out.append(part * low)
        elif name == "SUBPATTERN":
            part = _example(list(arg[-1]))
            if part is None:
                return None
            out.append(part)
        elif name == "BRANCH":
            part = _example(list(arg[1][0]))
            if part is None:
                return None
            out.append(part)
        elif name == "AT":
            continue
        else:
            return None
    return "".join(out)


def _is_node(value: object) -> TypeGuard[Expr]:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _children(expr: Expr) -> list[Expr]:
    found: list[Expr] = []
    for field in dataclasses.fields(expr):
        value = getattr(expr, field.name)
        for item in value if isinstance(value, tuple) else (value,):
            if _is_node(item):
                found.append(item)
    return found


def _holds(expr: Expr, header: Mapping[str, Any], want: bool) -> bool:
    try:
        return truthy(evaluate(expr, header)) == want
    except OCAEvaluationError:  # tryBetween: a preference, not a condition on one file
        return False


def _leaf(expr: Expr, header: Header, want: bool) -> Iterator[Header]:
    unset = sorted({k.name for k in keywords_in(expr) if k.name not in header})
    values = list(dict.fromkeys(_literals(expr) or ["X"], None)) or ["X"]
    if _holds(expr, header, want):
        yield header
    for name in unset:  # one keyword at a time, then all of them alike
        for value in values:
            candidate = {**header, name: value}
            if _holds(expr, candidate, want):
                yield candidate
    if len(unset) > 1:
        for value in values:
            candidate = {**header, **dict.fromkeys(unset, value)}
            if _holds(expr, candidate, want):
                yield candidate
    if isinstance(expr, Like) and isinstance(expr.operand, Keyword) and want:
        # Several patterns on one keyword (DPR.TYPE like "%FLAT%" and like "%LAMP%"):
        # ESO's values are comma-separated words ("FLAT,LAMP").
        name, filled = expr.operand.name, expr.pattern.replace("%", "").replace("_", "X")
        if isinstance(header.get(name), str):
            candidate = {**header, name: f"{header[name]},{filled}"}
            if _holds(expr, candidate, want):
                yield candidate


def satisfying(expr: Expr, start: Mapping[str, Any], want: bool = True) -> Iterator[Header]:
    """Headers extending ``start`` on which ``expr`` evaluates to ``want``."""
    header = dict(start)
    if isinstance(expr, Not):
        yield from satisfying(expr.item, header, not want)
    elif isinstance(expr, AndExpr | OrExpr) and (isinstance(expr, AndExpr) == want):
        yield from _all_of(expr.items, header, want)  # and: all true; or: all false
    elif isinstance(expr, AndExpr | OrExpr):
        for item in expr.items:  # or: one true; and: one false
            for candidate in satisfying(item, header, want):
                if _holds(expr, candidate, want):
                    yield candidate
    elif isinstance(expr, BooleanExpr):
        if expr.value == want:
            yield header
    elif isinstance(expr, Between) and expr.soft:
        return
    else:
        yield from _leaf(expr, header, want)


def _all_of(items: tuple[Expr, ...], header: Header, want: bool) -> Iterator[Header]:
    if not items:
        yield header
        return
    for candidate in satisfying(items[0], header, want):
        yield from _all_of(items[1:], candidate, want)


def _read_last_frame_as_own(expr: Expr) -> Expr:
    """``LF.<key>`` read as ``<key>``: in a template of identical frames they agree."""
    if isinstance(expr, Keyword) and expr.name.startswith(LAST_FRAME):
        return dataclasses.replace(expr, name=expr.name[len(LAST_FRAME) :])
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(expr):
        value = getattr(expr, field.name)
        if isinstance(value, tuple):
            changes[field.name] = tuple(
                _read_last_frame_as_own(v) if _is_node(v) else v for v in value
            )
        elif _is_node(value):
            changes[field.name] = _read_last_frame_as_own(value)
    return dataclasses.replace(expr, **changes) if changes else expr


def _classified(rules: RuleSet, header: Mapping[str, Any]) -> Header:
    """``header`` with what the classification rules assign to it."""
    from qclib.classify import classify_header

    return {**header, **classify_header(rules, header).assigned}


def frame_header(rules: RuleSet, org: Organisation) -> Header | None:
    """A raw header (signals and classification assignments left out) that, once
    classified, ``org``'s condition selects; None when the search finds none."""
    condition = _read_last_frame_as_own(org.condition)
    signals = dict.fromkeys(SIGNALS, 1)
    assigned_keys = {a.keyword for r in rules.classifications for a in r.assignments}
    read = {k.name for k in keywords_in(condition)}
    producers = [r for r in rules.classifications if {a.keyword for a in r.assignments} & read]
    for wanted in itertools.islice(satisfying(condition, signals), SEARCH_LIMIT):
        raw = {k: v for k, v in wanted.items() if k not in assigned_keys and k not in SIGNALS}
        if _holds(condition, {**_classified(rules, raw), **signals}, True):
            return raw
        for rule in producers:
            for candidate in itertools.islice(satisfying(rule.condition, raw), 50):
                if _holds(condition, {**_classified(rules, candidate), **signals}, True):
                    return candidate
    return None


def unreachable_organisations(rules: RuleSet) -> list[tuple[int, str]]:
    """``(line, message)`` for each organisation rule of a defined action that no
    header, once classified, satisfies (so no frame ever makes its block)."""
    out = []
    for org in rules.organisations:
        if rules.action(org.action) is not None and frame_header(rules, org) is None:
            out.append(
                (
                    org.line,
                    f"select execute({org.action}): no frame reaches it (no header the "
                    f"classification rules turn into what it selects: {org.condition.to_oca()})",
                )
            )
    return out
