"""The OCA language beyond the common rules: lexical forms, arithmetic, between,
T/F, `is undefined`, file sets, retention (the errors: test_parser.py)."""

from __future__ import annotations

import pytest

from qclib.associate import Calibration, RawFrame, build_association_blocks
from qclib.classify import classify_header
from qclib.config.instrument import AssociationConfig, Validity
from qclib.oca import OCAEvaluationError, OCASyntaxError, parse_oca
from qclib.oca.evaluate import evaluate


def _condition(text: str):  # type: ignore[no-untyped-def]
    return parse_oca(f"if {text} then {{ A = 1; }}").classifications[0].condition


# ------------------------------------------------------------------ lexical structure
def test_comments_whitespace_and_line_endings() -> None:
    text = (
        "/* banner\r\n####### CATG TECHNICAL #######\r\n*/\r\n"
        'if\tDPR.CATG == "CALIB" // trailing\r\n'
        '  and /* inline */ DPR.TYPE == "A//B /* c */ #"\f then\r\n'
        '{ DO.CATG = "X"; } /**/ // end'
    )
    rules = parse_oca(text)
    header = {"DPR.CATG": "CALIB", "DPR.TYPE": "A//B /* c */ #"}
    assert classify_header(rules, header).do_catg == "X"
    assert rules.classifications[0].line == 4


def test_words_are_keywords_only_as_whole_words() -> None:
    """`andromeda`, `iffy`, `TPL.ID` (starts with T) and `FILE.X` are names."""
    condition = _condition('andromeda == 1 and iffy == 2 and TPL.ID == "T" and FILE.X')
    header = {"andromeda": 1, "iffy": 2, "TPL.ID": "T", "FILE.X": "T"}
    assert evaluate(condition, header) is True
    assert evaluate(condition, {**header, "FILE.X": "F"}) is False


def test_t_and_f_are_the_logical_constants() -> None:
    assert evaluate(_condition("(T)"), {}) is True
    assert evaluate(_condition("F"), {"F": "T"}) is False
    assert evaluate(_condition("not F and T"), {}) is True


def test_numbers_in_every_decimal_form() -> None:
    header = {"X": -0.2}
    for text in ("X == -.2", "X == -0.2", "X == -2e-1", "X == -2.E-1", "X < 3.", "X > -1"):
        assert evaluate(_condition(text), header) is True, text


# ------------------------------------------------------------------ expressions
def test_arithmetic_on_header_values() -> None:
    """`inputFile.MJD-OBS - MJD-OBS < 0.5` (xshooter/vimos Reflex rules)."""
    condition = _condition("inputFile.MJD-OBS - MJD-OBS < 0.5 and (MJD-OBS + 1 - 0.25) > 100")
    assert evaluate(condition, {"MJD-OBS": 100.0}, {"MJD-OBS": 100.4}) is True
    assert evaluate(condition, {"MJD-OBS": 100.0}, {"MJD-OBS": 100.6}) is False
    assert evaluate(condition, {"MJD-OBS": 100.0}, {}) is False  # missing: no value
    assert evaluate(_condition("-X == 3"), {"X": "-3"}) is True  # numeric text


def test_between_is_inclusive() -> None:
    condition = _condition("MJD-OBS between inputFile.MJD-OBS - 14.0 and inputFile.MJD-OBS + 14.0")
    for mjd, inside in ((86.0, True), (114.0, True), (85.9, False), (114.1, False)):
        assert evaluate(condition, {"MJD-OBS": mjd}, {"MJD-OBS": 100.0}) is inside
    assert evaluate(condition, {}, {"MJD-OBS": 100.0}) is False


def test_is_undefined_string_number() -> None:
    assert evaluate(_condition("X is undefined"), {}) is True
    assert evaluate(_condition("X is undefined"), {"X": 1}) is False
    assert evaluate(_condition("X is string"), {"X": "a"}) is True
    assert evaluate(_condition("X is number"), {"X": 1.5}) is True
    with pytest.raises(OCASyntaxError, match="string, number or undefined"):
        parse_oca("if X is boolean then { A = 1; }")


def test_trybetween_parses_but_evaluating_it_names_file_line_column() -> None:
    rules = parse_oca(
        'action A {\n  select file as B from calibFiles where PRO.CATG == "B"\n'
        "    and MJD-OBS tryBetween inputFile.MJD-OBS - 7 and inputFile.MJD-OBS + 7;\n}",
        source="kmos.oca",
    )
    condition = rules.actions[0].associations[0].condition
    with pytest.raises(OCAEvaluationError, match=r"^kmos\.oca:3:17: 'tryBetween'"):
        evaluate(condition, {"PRO.CATG": "B", "MJD-OBS": 1.0}, {"MJD-OBS": 1.0})


# ------------------------------------------------------------------ statements
def _config() -> AssociationConfig:
    return AssociationConfig(
        validity={"LINES": Validity(windows_days=[10.0])},
        min_frames={},
        raw_categories=["ARC", "ACQ"],
        product_categories=["LINES"],
        science_actions=["GEOMETRY"],
    )


def _frame(name: str, mjd: float, catg: str, **extra: object) -> RawFrame:
    return RawFrame(f"{name}.fits", "MUSE", "2026-11-23", mjd, {"DO.CATG": catg, **extra})


def test_maxret_zero_chooses_every_match() -> None:
    """`minRet = 1; maxRet = 0;` (muse.oca): at least one, no upper limit."""
    rules = parse_oca(
        'select execute(GEOMETRY) from inputFiles where DO.CATG == "ARC";\n'
        "action GEOMETRY { minRet = 1; maxRet = 0;\n"
        '  select file as LINES from calibFiles where PRO.CATG == "LINES"; }'
    )
    catalogues = [
        Calibration(f"lines{i}", "LINES", 100.0 + i, {"PRO.CATG": "LINES"}) for i in (1, 2, 3)
    ]
    (block,) = build_association_blocks(rules, _config(), [_frame("arc", 100.0, "ARC")], catalogues)
    assert sorted(c.ref for c in block.tags[0].chosen) == ["lines1", "lines2", "lines3"]
    assert block.completeness == "complete"


def test_select_from_raw_files_chooses_raw_frames() -> None:
    """uves.oca: `select file as ACQ_ECH_RASSOC from rawFiles where RAW.TYPE=="ACQ_ECH" ...`."""
    rules = parse_oca(
        'select execute(GEOMETRY) from inputFiles where DO.CATG == "ARC";\n'
        "action GEOMETRY { minRet = 1; maxRet = 1;\n"
        '  select file as ACQ from rawFiles where DO.CATG == "ACQ"; }'
    )
    frames = [_frame("arc", 100.0, "ARC"), _frame("acq", 100.01, "ACQ")]
    (block,) = build_association_blocks(rules, _config(), frames)
    assert [c.ref for c in block.tags[0].chosen] == ["acq.fits"]


def test_retention_state_carries_to_later_selects_of_the_action() -> None:
    rules = parse_oca(
        "action A { minRet = 0; maxRet = 2\n"  # no ';' (as in MOONS' rules)
        '  select file as B from calibFiles where PRO.CATG == "B";\n'
        "  minRet = 2;\n"
        '  select file as C from calibFiles where PRO.CATG == "C";\n'
        '  recipe r { "--a=1"; "--b=x y" }\n  priority = -2; }'
    )
    action = rules.actions[0]
    assert [(a.tag, a.min_ret, a.max_ret) for a in action.associations] == [
        ("B", 0, 2),
        ("C", 2, 2),
    ]
    assert (action.recipe, action.recipe_parameters, action.priority) == (
        "r",
        ("--a=1", "--b=x y"),
        -2,
    )
