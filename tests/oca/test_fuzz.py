"""Fuzzing the OCA parser (hypothesis).

1. Valid programs are generated from the grammar (every statement, expression and
   value form), printed with random layout (blanks, tabs, CR LF, // and /* */
   comments between tokens), parsed, and must give back what was generated.
2. Those programs, mutated (cut, duplicated, spliced, sprinkled with OCA's own
   tokens), and arbitrary text, either parse or raise OCASyntaxError at a real
   line and column of the text: never another exception, never a hang.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qclib.oca import OCAEvaluationError, OCASyntaxError, parse_oca
from qclib.oca.evaluate import evaluate
from qclib.oca.parser import _WORDS
from qclib.oca.rules import (
    Action,
    And,
    Arithmetic,
    Assignment,
    Association,
    Between,
    Boolean,
    Classification,
    Compare,
    Keyword,
    Like,
    Negative,
    Not,
    Number,
    Or,
    Organisation,
    Product,
    Regexp,
    RuleSet,
    Text,
    Truth,
    TypeTest,
)

parse_oca("")  # build the parser once, outside the timed examples
FAST = settings(max_examples=80, deadline=timedelta(seconds=2))
RESERVED = _WORDS | {"minRet", "maxRet", "tryBetween", "string", "number", "undefined"}

# ------------------------------------------------------------------ values
_header_names = st.from_regex(
    r"[A-Z][A-Z0-9]{0,4}(-[A-Z0-9]{1,3})?(\.[A-Z][A-Z0-9_]{0,4}){0,3}", fullmatch=True
).filter(lambda n: n not in ("T", "F"))
_keywords = st.builds(Keyword, _header_names, st.booleans())
# Printable ASCII and some Latin-1, no double quote (OCA strings have no escapes);
# comment markers inside strings are string text.
_texts = st.one_of(
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters='"'),
        max_size=12,
    ),
    st.sampled_from(["// not a comment", "/* nor this */", "#", "slit#5.0", "OMEGACAM/1.60"]),
)
_numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(float),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
).map(Number)
_operands = st.one_of(
    _keywords, st.builds(Text, _texts), _numbers, st.builds(Boolean, st.booleans())
)
_values = st.recursive(
    _operands,
    lambda inner: st.one_of(
        st.builds(Arithmetic, st.sampled_from("+-"), inner, inner),
        st.builds(
            Negative, st.one_of(_keywords, st.builds(Arithmetic, st.just("-"), inner, inner))
        ),
    ),
    max_leaves=3,
)
_patterns = st.one_of(
    st.sampled_from(["MUSE_[wn]fm_cal_specflat", "^FLAT", r"\d+", "A|B", "(x)?y$"]),
    _texts.map(re.escape).filter(lambda p: '"' not in p),
)

# ------------------------------------------------------------------ conditions
_atoms = st.one_of(
    st.builds(Compare, st.sampled_from(["==", "!=", "?=", "<", ">", "<=", ">="]), _values, _values),
    st.builds(Like, _values, _texts),
    st.builds(Regexp, _values, _patterns),
    st.builds(TypeTest, _values, st.sampled_from(["string", "number", "undefined"])),
    st.builds(Between, _values, _values, _values, st.booleans()),
    st.builds(Truth, _values),
)
_conditions = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        inner.map(Not),
    ),
    max_leaves=6,
)

# ------------------------------------------------------------------ statements
_identifiers = st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in ("T", "F")
)
_recipes = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: n not in RESERVED
)
_assignments = st.lists(
    st.builds(Assignment, _header_names, st.one_of(_operands, _values)), max_size=3
).map(tuple)
_classifications = st.builds(Classification, _conditions, _assignments)


@st.composite
def _organisations(draw: st.DrawFn) -> Organisation:
    group_by = tuple(draw(st.lists(_header_names, max_size=3)))
    alias = draw(st.one_of(st.none(), st.tuples(_identifiers, _recipes))) if group_by else None
    return Organisation(
        draw(_identifiers),
        draw(st.sampled_from(["inputFiles", "rawFiles"])),
        draw(_conditions),
        group_by,
        alias,
        min_files=draw(st.integers(0, 4)),
    )


@st.composite
def _associations(draw: st.DrawFn) -> Association:
    max_ret = draw(st.integers(0, 3))
    min_ret = draw(st.integers(0, max_ret if max_ret else 3))
    return Association(
        draw(_identifiers),
        draw(st.sampled_from(["calibFiles", "inputFiles", "rawFiles"])),
        draw(_conditions),
        min_ret,
        max_ret,
    )


@st.composite
def _actions(draw: st.DrawFn) -> Action:
    recipe = draw(st.one_of(st.none(), _recipes))
    params = draw(st.lists(_texts, max_size=2)) if recipe else []
    return Action(
        draw(_identifiers),
        tuple(draw(st.lists(_associations(), max_size=3))),
        recipe,
        tuple(params),
        tuple(draw(st.lists(st.builds(Product, _identifiers, _assignments), max_size=2))),
        draw(st.one_of(st.none(), st.integers(-5, 99))),
    )


def _rulesets(most: int) -> st.SearchStrategy[RuleSet]:
    return st.builds(
        RuleSet,
        st.just("<rules>"),
        st.lists(_classifications, max_size=most).map(tuple),
        st.lists(_organisations(), max_size=most).map(tuple),
        st.lists(_actions(), max_size=most).map(tuple),
    )


# ------------------------------------------------------------------ layout
_separators = st.sampled_from(
    [" ", "  ", "\t", "\n", "\r\n", " /* c */ ", "/*\n# banner\n*/", " // note\n", "\n\n", "\f"]
)


def _relayout(text: str, draw: st.DrawFn) -> str:
    """Replace each blank outside strings by random whitespace or comments."""
    parts = text.split('"')
    for i in range(0, len(parts), 2):  # even parts are outside strings
        parts[i] = re.sub(" ", lambda _m: draw(_separators), parts[i])
    return '"'.join(parts)


def _flatten(expr):  # type: ignore[no-untyped-def]
    """Parsing normalises nested and/or chains: compare modulo that."""
    if isinstance(expr, And | Or):
        items = []
        for item in expr.items:
            item = _flatten(item)
            items.extend(item.items if type(item) is type(expr) else (item,))
        return type(expr)(tuple(items))
    if isinstance(expr, Not):
        return Not(_flatten(expr.item))
    return expr


def _normalised(rules: RuleSet) -> RuleSet:
    return RuleSet(
        rules.source,
        tuple(Classification(_flatten(c.condition), c.assignments) for c in rules.classifications),
        tuple(
            Organisation(
                o.action,
                o.source,
                _flatten(o.condition),
                o.group_by,
                o.alias,
                min_files=o.min_files,
            )
            for o in rules.organisations
        ),
        tuple(
            Action(
                a.name,
                tuple(
                    Association(s.tag, s.source, _flatten(s.condition), s.min_ret, s.max_ret)
                    for s in a.associations
                ),
                a.recipe,
                a.recipe_parameters,
                a.products,
                a.priority,
            )
            for a in rules.actions
        ),
    )


@FAST
@given(_rulesets(most=2), st.data())
def test_generated_programs_parse_back_to_what_was_generated(rules: RuleSet, data) -> None:
    text = _relayout(rules.to_oca(), data.draw)
    assert parse_oca(text) == _normalised(rules)


@FAST
@given(_conditions, st.dictionaries(_header_names, st.one_of(_texts, st.floats(-5, 5)), max_size=4))
def test_every_generated_condition_evaluates_or_names_its_trybetween(condition, header) -> None:
    parsed = parse_oca(f"if {condition.to_oca()} then {{ A = 1; }}", source="gen.oca")
    condition = parsed.classifications[0].condition
    try:
        assert evaluate(condition, header, header) in (True, False)
    except OCAEvaluationError as err:
        assert "tryBetween" in condition.to_oca()
        assert str(err).startswith("gen.oca:1:")


# ------------------------------------------------------------------ invalid input
def _assert_clean_error(text: str, source: str = "fuzz.oca") -> None:
    """Parses, or fails with OCASyntaxError at a line and column that exist."""
    try:
        parse_oca(text, source=source)
    except OCASyntaxError as err:
        lines = text.split("\n")
        assert 1 <= err.line <= len(lines), (err, len(lines))
        assert 1 <= err.column <= len(lines[err.line - 1]) + 1, err
        assert str(err).startswith(f"{source}:{err.line}:{err.column}: ")


_tokens = st.sampled_from(
    ["if", "then", "{", "}", "(", ")", ";", "=", "==", "-", "+", '"', "/*", "*/", "//", "#",
     "and", "or", "not", "between", "tryBetween", "select", "action", "minRet = 0;",
     "maxRet = 1;", "recipe r;", "T", "F", "'", "\n", "1e999", "IF", "AND", "is", "string"]
)  # fmt: skip


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = _relayout(draw(_rulesets(most=1)).to_oca(), draw)
    for _ in range(draw(st.integers(1, 4))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 40)))
        kind = draw(st.sampled_from(["cut", "insert", "duplicate", "swap", "truncate"]))
        if kind == "cut":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(_tokens) + text[i:]
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "swap":
            text = text[j:] + text[i:j] + text[:i]
        else:
            text = text[:i]
    return text


@settings(max_examples=150, deadline=timedelta(seconds=2))
@given(_mutated())
def test_mutated_programs_parse_or_fail_cleanly(text: str) -> None:
    _assert_clean_error(text)


@settings(max_examples=300, deadline=timedelta(seconds=2))
@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    _assert_clean_error(text)


@settings(max_examples=200, deadline=timedelta(seconds=2))
@given(st.lists(_tokens | st.sampled_from(["X.Y", "1", '"a"', " "]), max_size=40).map(" ".join))
def test_token_soup_parses_or_fails_cleanly(text: str) -> None:
    _assert_clean_error(text)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text",
    [
        "if " + "(" * 5000 + "A" + ")" * 5000 + " then { B = 1; }",
        "if " + "not " * 5000 + "A then { B = 1; }",
        "if A == " + "-" * 5000 + "1 then { B = 1; }",
        "/*" + "x" * 200_000,
        'if A == "' + "x" * 200_000,
    ],
)
def test_pathological_input_fails_cleanly_and_quickly(text: str) -> None:
    with pytest.raises(OCASyntaxError) as info:
        parse_oca(text, source="deep.oca")
    assert info.value.line == 1
