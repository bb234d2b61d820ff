"""QC1 harvest: every QC keyword of a product, with the type, unit and comment of ESO's
QC1 dictionary; a real AMBER product header, and ESO's GIRAFFE master bias made here."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from qclib.cli import main
from qclib.dictionary import parse_dictionary
from qclib.eso.harvest import harvest_file, harvest_header
from qclib.eso.job import run_job
from qclib.eso.pipelines import find_pipeline
from tests.eso.conftest import giraffe_biases

AMBER_PRODUCT = "oimodeler_vlti/DelSco_K_2010-04-15T07h12_MR.hdr"


def _entries(name: str) -> list:
    (dictionary,) = find_pipeline(name).qc_dictionaries
    return parse_dictionary(dictionary.read_text(encoding="latin-1"))


def test_a_real_amber_product_is_harvested_with_its_dictionary(
    esorex_giraffe, realdata: Path
) -> None:
    from qclib.cli import _header_of  # the reader of header dumps qc classify uses too

    flat = _header_of(realdata / AMBER_PRODUCT)
    found = harvest_header(flat, _entries("amber"))
    assert [(q.keyword, q.value) for q in found] == [
        ("QC.P1.OFFSETY", 3.1),
        ("QC.P2.OFFSETY", 3.0),
        ("QC.P3.OFFSETY", -1.5),
    ]
    assert all(q.type_ok and q.entry.comment == "Offset wavelength calibration" for q in found)
    # The same through the command line, from the header dump itself.
    shown = CliRunner().invoke(
        main, ["eso", "harvest", str(realdata / AMBER_PRODUCT), "--pipeline", "amber", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    assert [q["keyword"] for q in json.loads(shown.output)] == [q.keyword for q in found]


def test_every_qc_keyword_of_eso_s_giraffe_master_bias_is_in_its_dictionary(
    esorex_giraffe, tmp_path: Path
) -> None:
    done = run_job(
        "gimasterbias", [(p, "BIAS") for p in giraffe_biases(tmp_path)], tmp_path / "job"
    )
    (master,) = done.by_catg["MASTER_BIAS"]
    found = harvest_file(master, _entries("giraf"))
    names = {q.keyword for q in found}
    assert {"QC.OUT1.RON.RAW", "QC.OUT1.RON.MASTER", "QC.BIAS.MASTER.MEDIAN"} <= names
    assert all(q.entry is not None and q.type_ok for q in found), [
        q.keyword for q in found if q.entry is None or not q.type_ok
    ]
    units = {q.keyword: q.unit for q in found}
    assert units["QC.OUT1.RON.RAW"] == "ADU" and units["QC.OUT1.STRUCT.X"] == "ADU"
    assert {q.detector for q in found} == {""}  # the primary header


def test_keywords_a_dictionary_lacks_are_kept_and_marked(esorex_giraffe) -> None:
    found = harvest_header(
        {"QC.OUT1.RON.RAW": 4.2, "QC.MADE.UP": 1, "DET.DIT": 2.0}, _entries("giraf")
    )
    assert [(q.keyword, q.entry is None) for q in found] == [
        ("QC.OUT1.RON.RAW", False),
        ("QC.MADE.UP", True),
    ]
    assert found[1].unit is None and not found[1].type_ok
    wrong_type = harvest_header({"QC.OUT1.RON.RAW": "4.2"}, _entries("giraf"))[0]
    assert wrong_type.entry is not None and not wrong_type.type_ok
