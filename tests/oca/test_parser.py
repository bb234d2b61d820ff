"""The OCA parser reads the real rule files in shared/realdata and reports errors by
file:line:column (random programs and mutations: test_fuzz.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qclib.instruments import read_rules
from qclib.oca import OCASyntaxError, parse_oca

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
        ('if DPR.CATG == "BIAS then { }', 1, 16, "unterminated string"),
        ("if DPR.CATG == 1 then { }\n/* not closed", 2, 1, "unterminated /\\* comment"),
        # text that is OCA in shape but cannot mean anything, and hints for near-OCA
        ("/* never closed\nif A then { B = 1; }", 1, 1, "unterminated /\\* comment"),
        ('#include "macros.h"\nif A then { B = 1; }', 1, 1, "cpp -P"),
        ("if A == 'x' then { B = 1; }", 1, 9, "double quotes"),
        ("if A == 1 AND B == 2 then { C = 1; }", 1, 11, "write 'and'"),
        ('IF A == 1 then { C = "x"; }', 1, 1, "write 'if'"),
        ('if A regexp "MUSE_[wn" then { C = 1; }', 1, 13, "not a regular expression"),
        ("if (A == 1) + 2 then { C = 1; }", 1, 4, "used as a value"),
        ("if A == 1e999 then { C = 1; }", 1, 9, "out of range"),
        ("select execute(X) from calibFiles where A;", 1, 24, "inputFiles or rawFiles"),
        ("action X { select file as Y from calibFile where A; }", 1, 34, "calibFiles"),
        ("action X { recipe a; recipe b; }", 1, 22, "second recipe"),
        ("action X { priority = 1; priority = 2; }", 1, 26, "priority twice"),
        ("action X {\n minRet = 2; maxRet = 1;\n select file as Y from calibFiles where A;\n}",
         3, 1, "never be complete"),
        ("maxRet = 2;\nselect execute(X) from inputFiles where A;", 1, 1, "maxRet outside"),
        ("minRet = 2;\naction X { }", 1, 1, "right before the 'select execute'"),
        ("minRet = 2;", 1, 1, "end of the file"),
    ],
)  # fmt: skip
def test_syntax_errors_name_file_line_and_column(text, line, column, phrase) -> None:
    with pytest.raises(OCASyntaxError, match=phrase) as info:
        parse_oca(text, source="my.oca")
    assert (info.value.line, info.value.column) == (line, column)
    assert str(info.value).startswith(f"my.oca:{line}:{column}:")
