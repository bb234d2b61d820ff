"""The OCA parser reads ESO's real rule files, reports errors by file:line:column, and
round-trips random valid rules (hypothesis)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qclib.instruments import read_rules
from qclib.oca import OCASyntaxError, parse_oca
from qclib.oca.rules import (
    Action,
    And,
    Assignment,
    Association,
    Classification,
    Compare,
    Keyword,
    Like,
    Not,
    Number,
    Or,
    Organisation,
    Product,
    RuleSet,
    Text,
    Truth,
)

# (classification, organisation, association) rules per real file; the select counts
# add up to the "select" totals given in shared/realdata/SOURCES.md.
REAL_FILES = {
    "debian_cpl_plugins/hawki-2.4.11/gasgano/config/hawki.oca": (77, 11, 21),
    "debian_cpl_plugins/uves-6.1.8/gasgano/config/uves.oca": (394, 49, 269),
    "debian_cpl_plugins/muse-2.8.7/gasgano/config/muse.oca": (47, 12, 85),
    "debian_cpl_plugins/vimos-4.1.7/gasgano/config/vimos.oca": (84, 21, 88),
    "hawki_reflex_oca_parsesoca/hawki_wkf_reflex.oca": (17, 5, 35),
    "crires_plus_cr2rep/reflex_oca/cr2res_obs_2d_wkf.oca": (8, 4, 15),
    "crires_plus_cr2rep/reflex_oca/cr2res_obs_nodding_wkf.oca": (12, 4, 17),
    "crires_plus_cr2rep/reflex_oca/cr2res_obs_pol_wkf.oca": (7, 4, 16),
    "crires_plus_cr2rep/reflex_oca/cr2res_obs_staring_wkf.oca": (9, 4, 17),
}


@pytest.mark.parametrize("relative", sorted(REAL_FILES))
def test_every_real_eso_rule_file_parses(realdata: Path, relative: str) -> None:
    rules = read_rules(realdata / relative)
    counts = rules.counts()
    assert (counts["classification"], counts["organisation"], counts["association"]) == (
        REAL_FILES[relative]
    )
    # Printing and re-parsing gives the same rules.
    assert parse_oca(rules.to_oca(), source=rules.source) == rules


def test_all_real_rule_files_are_covered(realdata: Path) -> None:
    found = {str(p.relative_to(realdata)) for p in realdata.rglob("*.oca")}
    assert found == set(REAL_FILES)


def test_real_rules_read_as_intended(realdata: Path) -> None:
    rules = read_rules(realdata / "hawki_reflex_oca_parsesoca/hawki_wkf_reflex.oca")
    darks = rules.action("DARKS")
    assert darks is not None and darks.recipe == "hawki_dark_combine"
    org = next(o for o in rules.organisations if o.action == "DARKS")
    assert org.group_by[:3] == ("DET.NCORRS.NAME", "DET.DIT", "DET.NDIT")
    assert org.alias == ("TPL_A", "tpl")
    noise = rules.action("DETECTOR_NOISE_COMPUTATION")
    assert noise is not None
    tags = {a.tag: (a.min_ret, a.max_ret, a.source) for a in noise.associations}
    assert tags["DARK_NOISE"] == (2, 2, "inputFiles")
    assert tags["MASTER_BPM"] == (0, 1, "calibFiles")


@pytest.mark.parametrize(
    ("text", "line", "column", "phrase"),
    [
        ('if DPR.CATG == "BIAS" { DO.CATG = "B"; }', 1, 23, "expected"),
        ('if DPR.CATG == "BIAS" then\n{\n  DO.CATG = "B"\n}', 4, 1, "unexpected"),
        ('if DPR.CATG == "BIAS" then { DO.CATG = "B"; ', 1, 45, "end of file"),
        ('\n\nselect execute(X) from inputFiles where DPR.CATG = "A";', 3, 50, "unexpected"),
        ('if DPR.CATG == "BIAS then { }', 1, 16, "unexpected character"),
    ],
)
def test_syntax_errors_name_file_line_and_column(text, line, column, phrase) -> None:
    with pytest.raises(OCASyntaxError, match=phrase) as info:
        parse_oca(text, source="my.oca")
    assert (info.value.line, info.value.column) == (line, column)
    assert str(info.value).startswith(f"my.oca:{line}:{column}:")


# ----------------------------------------------------------------- property tests
_names = st.from_regex(r"[A-Z][A-Z0-9]{0,5}(\.[A-Z][A-Z0-9]{0,4}){0,3}", fullmatch=True)
_texts = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"'),
    max_size=12,
)
_numbers = st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False)).map(
    lambda v: Number(float(v))
)
_operands = st.one_of(st.builds(Keyword, _names, st.booleans()), st.builds(Text, _texts), _numbers)
_atoms = st.one_of(
    st.builds(
        Compare, st.sampled_from(["==", "!=", "?=", "<", ">", "<=", ">="]), _operands, _operands
    ),
    st.builds(Like, _operands, _texts),
    st.builds(Truth, st.builds(Keyword, _names, st.booleans())),
)
_exprs = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        inner.map(Not),
    ),
    max_leaves=6,
)
_assignments = st.lists(st.builds(Assignment, _names, st.builds(Text, _texts)), max_size=3)
_classifications = st.builds(Classification, _exprs, _assignments.map(tuple), st.just(0))
_identifiers = st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True)
_organisations = st.builds(
    Organisation,
    _identifiers,
    st.just("inputFiles"),
    _exprs,
    st.lists(_names, max_size=3).map(tuple),
    st.none(),
    st.just(0),
)
_associations = st.builds(
    Association,
    _identifiers,
    st.sampled_from(["calibFiles", "inputFiles"]),
    _exprs,
    st.integers(0, 3),
    st.integers(0, 3),
    st.just(0),
)
_actions = st.builds(
    Action,
    _identifiers,
    st.lists(_associations, max_size=3).map(tuple),
    st.one_of(st.none(), _identifiers),
    st.just(()),
    st.lists(st.builds(Product, _identifiers, _assignments.map(tuple)), max_size=2).map(tuple),
    st.one_of(st.none(), st.integers(0, 99)),
    st.just(0),
)
_rulesets = st.builds(
    RuleSet,
    st.just("<rules>"),
    st.lists(_classifications, max_size=3).map(tuple),
    st.lists(_organisations, max_size=2).map(tuple),
    st.lists(_actions, max_size=2).map(tuple),
)


def _flatten(expr):
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


@settings(max_examples=150, deadline=None)
@given(_rulesets)
def test_random_valid_rules_round_trip(rules: RuleSet) -> None:
    parsed = parse_oca(rules.to_oca())
    assert [_flatten(c.condition) for c in parsed.classifications] == [
        _flatten(c.condition) for c in rules.classifications
    ]
    assert [c.assignments for c in parsed.classifications] == [
        c.assignments for c in rules.classifications
    ]
    assert parse_oca(parsed.to_oca()) == parsed
    assert [(o.action, o.group_by) for o in parsed.organisations] == [
        (o.action, o.group_by) for o in rules.organisations
    ]
    assert [
        (a.name, a.recipe, a.priority, len(a.associations), a.products) for a in parsed.actions
    ] == [(a.name, a.recipe, a.priority, len(a.associations), a.products) for a in rules.actions]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_garbage_gives_a_clean_syntax_error_never_a_crash(text: str) -> None:
    try:
        parse_oca(text, source="garbage.oca")
    except OCASyntaxError as err:
        assert err.line >= 1 and err.column >= 1
        assert str(err).startswith("garbage.oca:")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='ifthenselectwhere{}();="<>!?% ANDOR.DPRCATG12\n', max_size=120))
def test_rule_shaped_garbage_never_crashes(text: str) -> None:
    with contextlib.suppress(OCASyntaxError):  # a clean error is fine; a crash is not
        parse_oca(text)
