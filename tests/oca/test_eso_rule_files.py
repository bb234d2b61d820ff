"""Every ESO rule file Debian ships (cpl-plugin-*) parses, and every rule in it evaluates.

The packages are installed by scripts/system-deps.sh; a missing one is a loud skip
(a failure under CI=true).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from qclib.associate import RawFrame, organise
from qclib.classify import classify_header
from qclib.cli import main
from qclib.fitsio import parse_cards
from qclib.instruments import read_rules
from qclib.oca import parse_oca
from qclib.oca.evaluate import evaluate
from qclib.oca.rules import Between, RuleSet, keywords_in
from qclib.oca.witness import frame_header, unreachable_organisations
from tests.conftest import missing_dependency

PLUGINS = Path("/usr/share/cpl-plugins")

# (if, select, action) per file: the number of those words outside comments
# (`perl -0pe 's{/\*.*?\*/}{}gs; s{//[^\n]*}{}g' FILE | grep -ow select | wc -l`).
# They equal the counts in shared/realdata/SOURCES.md, except where SOURCES.md also
# counted commented-out rules (muse: 102 selects, 5 of them in // comments).
DEBIAN_FILES = {
    "amber": (35, 21, 4),
    "giraf": (37, 47, 7),
    "hawki": (77, 32, 8),
    "muse": (47, 97, 16),
    "naco": (50, 25, 13),
    "uves": (394, 318, 38),
    "vimos": (84, 109, 20),
    "visir": (75, 66, 14),
}


def _debian_rules(instrument: str) -> RuleSet:
    found = sorted(PLUGINS.glob(f"{instrument}-*/gasgano/config/{instrument}.oca"))
    if not found:
        missing_dependency(
            f"ESO's {instrument}.oca not found under {PLUGINS}: "
            f"apt-get install cpl-plugin-{instrument} (scripts/system-deps.sh does it)"
        )
    return read_rules(found[-1])


@pytest.mark.parametrize("instrument", sorted(DEBIAN_FILES))
def test_every_debian_eso_rule_file_parses_completely(instrument: str) -> None:
    rules = _debian_rules(instrument)
    counts = rules.counts()
    selects = counts["organisation"] + counts["association"]
    assert (counts["classification"], selects, counts["actions"]) == DEBIAN_FILES[instrument]
    # Printing and re-parsing gives the same rules.
    assert parse_oca(rules.to_oca(), source=rules.source) == rules


def _probe_headers(rules: RuleSet) -> list[dict[str, object]]:
    """Headers on which every rule of a file is evaluated: nothing set, every keyword
    the file reads set to a text, and every one set to a number."""
    names: set[str] = set()
    conditions = [r.condition for r in rules.classifications]
    conditions += [o.condition for o in rules.organisations]
    conditions += [a.condition for action in rules.actions for a in action.associations]
    for condition in conditions:
        names |= {k.name for k in keywords_in(condition)}
    return [{}, dict.fromkeys(names, "X"), dict.fromkeys(names, 1.0)]


@pytest.mark.parametrize("instrument", sorted(DEBIAN_FILES))
def test_every_rule_of_every_debian_file_evaluates(instrument: str) -> None:
    rules = _debian_rules(instrument)
    for header in _probe_headers(rules):
        classify_header(rules, header)
        for org in rules.organisations:
            assert evaluate(org.condition, header) in (True, False)
        for action in rules.actions:
            for assoc in action.associations:
                assert not isinstance(assoc.condition, Between)
                assert evaluate(assoc.condition, header, header) in (True, False)


def test_visir_rules_behind_a_block_comment_classify() -> None:
    """visir.oca's rules follow a /* #### */ banner (it failed at 14:1 before)."""
    rules = _debian_rules("visir")
    header = {"DPR.CATG": "CALIB", "DPR.TECH": "IMAGE", "DPR.TYPE": "TECHNICAL"}
    result = classify_header(rules, header)
    assert (result.do_catg, result.rule_line) == ("IM_CALIB_TECHNICAL", 20)


def _frame(i: int, header: dict[str, object]) -> RawFrame:
    return RawFrame(f"UVES.{i:03d}.fits", "UVES", "2026-11-23", 61000.0 + i / 100, header)


def test_uves_minret_before_select_execute_sizes_the_groups() -> None:
    """uves.oca line 1685: `minRet = 3;` before FLAMES_CAL_FIBORDPOS_R, whose recipe
    needs the odd, even and all-fibre flats: a group of two makes no block."""
    rules = _debian_rules("uves")
    sized = {o.line: o.min_files for o in rules.organisations if o.min_files != 1}
    assert sized == {1686: 3}  # only the select execute right after it
    base = {"RAW.TYPE": "FFLAT_MOS_RED", "INS.GRAT2.WLEN": 520.0}
    three = [_frame(i, {**base, "TPL.START": "A"}) for i in range(3)]
    two = [_frame(i, {**base, "TPL.START": "B"}) for i in range(3, 5)]
    blocks = [
        members
        for action, members in organise(rules, three + two)
        if action.name == "FLAMES_CAL_FIBORDPOS_R"
    ]
    assert [len(m) for m in blocks] == [3]


def test_uves_selects_from_raw_files_choose_raw_frames() -> None:
    rules = _debian_rules("uves")
    tags = [a for action in rules.actions for a in action.associations if a.source == "rawFiles"]
    assert {a.tag for a in tags} == {"ACQ_ECH_RASSOC"}
    assert all(a.selects_raw for a in tags)


def test_muse_maxret_zero_sets_no_upper_limit() -> None:
    """muse_geometry needs a LINE_CATALOG (minRet = 1) under maxRet = 0."""
    rules = _debian_rules("muse")
    action = rules.action("muse_geometry")
    assert action is not None
    catalog = next(a for a in action.associations if a.tag == "LINE_CATALOG")
    assert (catalog.min_ret, catalog.max_ret, catalog.limit) == (1, 0, None)


def test_crires_catch_all_rule_fires_for_every_file(realdata: Path) -> None:
    """`if (T) then { REFLEX.CATG = "UNDEFINED"; }`: T is true (a dummy class for all)."""
    rules = read_rules(realdata / "crires_plus_cr2rep/reflex_oca/cr2res_obs_2d_wkf.oca")
    assert classify_header(rules, {}).assigned == {"REFLEX.CATG": "UNDEFINED"}
    dark = {"DPR.CATG": "CALIB", "DPR.TYPE": "DARK", "DPR.TECH": "IMAGE", "INSTRUME": "CRIRES"}
    assert classify_header(rules, dark).assigned["REFLEX.CATG"] == "DARK"


#: Organisation rules no frame reaches, per file: they select a DO.CATG that no
#: classification rule of the file assigns (SCREEN_FLAT_DETCHAR_BLUE/RED,
#: FIB_FF_ANY_RED), ESO's own omission; `qc rules check` names them.
UNREACHABLE = {"uves": {1662, 1663, 1669}}


def _template(instrument: str, rules: RuleSet, header: dict, n: int) -> list[RawFrame]:
    """``n`` frames of one template, each ``header`` as the rules classify it."""
    frames = []
    for i in range(n):
        raw = {**header, "TPL.START": "2026-11-23T20:00:00", "ARCFILE": f"{instrument}.{i}.fits"}
        classified = {**raw, **classify_header(rules, raw).assigned}
        frames.append(
            RawFrame(
                f"{instrument}.{i}.fits", instrument, "2026-11-23", 61367.8 + i / 1e4, classified
            )
        )
    return frames


@pytest.mark.parametrize("instrument", sorted(DEBIAN_FILES))
def test_every_organisation_rule_builds_a_block_from_the_frames_it_selects(
    instrument: str,
) -> None:
    """For each `select execute(ACTION)` of the file, a raw header is found that the
    file's own classification rules turn into what the rule selects; a template of
    such frames (as many as its minRet) then makes a block of ACTION, holding them
    all. Every rule does, except those UNREACHABLE lists."""
    rules = _debian_rules(instrument)
    unreachable = set()
    for org in rules.organisations:
        header = frame_header(rules, org)
        if header is None:
            unreachable.add(org.line)
            continue
        frames = _template(instrument, rules, header, max(org.min_files, 1))
        blocks = [
            members for action, members in organise(rules, frames) if action.name == org.action
        ]
        assert blocks, f"{instrument}.oca line {org.line}: no {org.action} block from {header}"
        assert any(len(m) == len(frames) for m in blocks), (org.line, [len(m) for m in blocks])
    assert unreachable == UNREACHABLE.get(instrument, set())


def test_a_rule_needing_two_patterns_of_one_keyword_is_reached() -> None:
    """giraf.oca's FIBER_FLAT needs DPR.TYPE like "%FLAT%" and like "%LAMP%": the
    witness is ESO's comma-separated spelling."""
    rules = _debian_rules("giraf")
    org = next(o for o in rules.organisations if o.action == "gimasterflat")
    header = frame_header(rules, org)
    assert header is not None
    assert classify_header(rules, header).do_catg == "FIBER_FLAT"
    assert "FLAT" in header["DPR.TYPE"] and "LAMP" in header["DPR.TYPE"]


def test_rules_check_names_the_rules_no_frame_reaches() -> None:
    found = sorted(unreachable_organisations(_debian_rules("uves")))
    assert [line for line, _ in found] == sorted(UNREACHABLE["uves"])
    assert "FIB_FF_ANY_RED" in found[-1][1]
    uves = _debian_rules("uves").source
    shown = CliRunner().invoke(main, ["rules", "check", uves])
    assert shown.exit_code == 0
    assert "line 1669: select execute(FLAMES_CAL_FIBORDPOS_R): no frame reaches it" in shown.output


def test_the_amber_header_dump_classifies_as_amber_oca_says(realdata: Path) -> None:
    """The one real header of the eight instruments in shared/realdata: an AMBER
    interferometric science frame (DPR SCIENCE / OBJECT / INTERFEROMETRY, reduced to
    PRO.CATG SCIENCE_CALIBRATED, which no rule of amber.oca names): AMBER_SCIENCE,
    amber.oca line 38."""
    dump = realdata / "oimodeler_vlti/DelSco_K_2010-04-15T07h12_MR.hdr"
    header = parse_cards(line.ljust(80) for line in dump.read_text().splitlines())
    assert header["DPR.CATG"] == "SCIENCE" and header["PRO.CATG"] == "SCIENCE_CALIBRATED"
    result = classify_header(_debian_rules("amber"), header)
    assert (result.do_catg, result.rule_line) == ("AMBER_SCIENCE", 38)
