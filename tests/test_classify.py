"""Classification: ESO's semantics (later rules win), real headers, our rules vs ESO's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from qclib.classify import UNCLASSIFIED, check_rules, classify_header
from qclib.fitsio import parse_cards, scan_fits
from qclib.instruments import load_rules, read_rules, rules_path
from qclib.oca import parse_oca
from tests.conftest import load_truth

# Rules written for the real headers of shared/realdata (products of VLTI, X-shooter and
# others): products by PRO.CATG, raw frames by their DPR keys.
REALDATA_RULES = """
if PRO.CATG is string then { DO.CATG = PRO.CATG; }
if DPR.CATG == "SCIENCE" and DPR.TYPE like "%OBJECT%" and not PRO.CATG is string then
{ DO.CATG = "SCIENCE_RAW"; }
"""


def _read_hdr(path: Path) -> dict:
    return parse_cards(line.ljust(80) for line in path.read_text().splitlines())


def test_real_headers_classify_as_the_manifest_says(realdata: Path) -> None:
    rules = parse_oca(REALDATA_RULES)
    with (realdata / "MANIFEST_headers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 20  # the HARPS/ESPRESSO rows of SOURCES.md are not in this copy
    for row in rows:
        header = _read_hdr(realdata / row["file"])
        for key, column in (
            ("DPR.CATG", "dpr_catg"),
            ("DPR.TYPE", "dpr_type"),
            ("DPR.TECH", "dpr_tech"),
            ("PRO.CATG", "pro_catg"),
        ):
            assert str(header.get(key) or "") == row[column], (row["file"], key)
        expected = row["pro_catg"] or (
            "SCIENCE_RAW" if row["dpr_catg"] == "SCIENCE" else UNCLASSIFIED
        )
        assert classify_header(rules, header).do_catg == expected, row["file"]


def test_later_rules_overwrite_earlier_ones() -> None:
    rules = parse_oca("""
        if DPR.TYPE like "%FLAT%" then { DO.CATG = "FLAT"; RAW.TYPE = "F"; }
        if DPR.TYPE like "%FLAT%" and DPR.TYPE like "%LAMP%" then { DO.CATG = "LAMP_FLAT"; }
        if RAW.TYPE == "F" then { SEEN = "yes"; }
    """)
    result = classify_header(rules, {"DPR.TYPE": "FLAT,LAMP"})
    assert result.do_catg == "LAMP_FLAT" and result.rule_line == 3
    assert result.assigned["SEEN"] == "yes"  # assignments feed later conditions
    assert classify_header(rules, {"DPR.TYPE": "FLAT,SKY"}).do_catg == "FLAT"


def test_operators_and_missing_keywords() -> None:
    rules = parse_oca("""
        if A == 5 and B != "x" and C < 2.5 and D >= 10 and E ?= F and G like "ab_d%" then
        { DO.CATG = "ALL"; }
        if not (A == 5) or H regexp "^[0-9]+$" then { DO.CATG = "OTHER"; }
    """)
    header = {"A": 5, "B": "y", "C": 2.0, "D": 10, "G": "abcdef"}
    assert classify_header(rules, header).do_catg == "ALL"  # E and F missing: ?= holds
    assert classify_header(rules, {**header, "E": 1, "F": 2}).do_catg == UNCLASSIFIED
    assert classify_header(rules, {**header, "A": "5.0"}).do_catg == "ALL"  # numeric
    assert classify_header(rules, {"A": 4}).do_catg == "OTHER"
    assert classify_header(rules, {"A": 5, "H": "123"}).do_catg == "OTHER"
    # A missing keyword makes == and != false (it is not "different", it is unknown).
    assert classify_header(parse_oca('if B != "x" then { DO.CATG = "N"; }'), {}).do_catg == (
        UNCLASSIFIED
    )


def test_unclassified_frames_say_which_values_failed() -> None:
    rules = load_rules("OMEGACAM")
    header = {"INSTRUME": "OMEGACAM", "DPR.CATG": "CALIB", "DPR.TYPE": "BAIS", "DPR.TECH": "IMAGE"}
    result = classify_header(rules, header)
    assert result.do_catg == UNCLASSIFIED
    assert "DPR.TYPE is 'BAIS'" in result.near_misses[0]
    assert 'DO.CATG = "BIAS"' in result.near_misses[0]


@pytest.mark.parametrize("night", ["omegacam_night", "hawki_night"])
def test_every_simulated_frame_is_classified(night: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(night)
    truth = load_truth(folder)
    rules = load_rules(truth["instrument"])
    expected = {
        "bias": "BIAS",
        "dark": "DARK",
        "dome_flat": "FLAT_DOME",
        "twilight_flat": "FLAT_SKY" if truth["instrument"] == "OMEGACAM" else "FLAT_TWILIGHT",
        "standard": "STD",
        "science": "SCIENCE" if truth["instrument"] == "OMEGACAM" else "OBJECT",
    }
    for exposure in truth["exposures"]:
        header = scan_fits(folder / exposure["arcfile"]).primary
        assert classify_header(rules, header).do_catg == expected[exposure["kind"]]


def test_esos_own_hawki_rules_agree_with_ours(hawki_night: Path, realdata: Path) -> None:
    """ESO's hawki.oca (Gasgano) classifies our simulated HAWK-I frames the same way."""
    eso = read_rules(realdata / "debian_cpl_plugins/hawki-2.4.11/gasgano/config/hawki.oca")
    ours = load_rules("HAWKI")
    for path in sorted(hawki_night.glob("*.fits")):
        header = scan_fits(path).primary
        assert classify_header(eso, header).do_catg == classify_header(ours, header).do_catg


def test_a_typo_in_a_category_is_reported_with_its_line() -> None:
    text = rules_path("OMEGACAM").read_text()
    broken = text.replace('where DO.CATG == "FLAT_SKY"', 'where DO.CATG == "FLAT_SKI"')
    assert broken != text
    problems = check_rules(parse_oca(broken))
    assert len(problems) == 1
    assert "FLAT_SKI" in str(problems[0]) and "did you mean FLAT_SKY" in str(problems[0])
    line = next(i for i, t in enumerate(broken.splitlines(), 1) if "FLAT_SKI" in t)
    assert problems[0].line == line
    undeclared = text.replace('DO.CATG = "DARK";', 'DO.CATG = "DRAK";')
    problems = check_rules(
        parse_oca(undeclared),
        {"DO.CATG": {"BIAS", "DARK", "FLAT_DOME", "FLAT_SKY", "STD", "SCIENCE"}},
    )
    assert any("'DRAK' is not a category" in str(p) for p in problems)


def test_our_own_rules_load_clean() -> None:
    for name in ("OMEGACAM", "HAWKI"):
        assert check_rules(load_rules(name)) == []
