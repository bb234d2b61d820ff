"""CalSelector: a raw science frame's calibrations as an association tree with the
structure of ESO's own CalSelector files (compared with a real one from ESO's archive),
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from qclib.archive.calselector import calselector_tree, to_xml
from qclib.archive.certification import decide
from qclib.cli import main
from qclib.db import blocks as block_store
from qclib.db import ingest_log
from qclib.db import products as product_store
from qclib.db.archive import files as archived_files
from qclib.workflow.run import run_pass

REAL = "astroquery_eso/FORS2.2021-01-02T00_59_12.533_raw2raw.xml"


def _shape(root: ET.Element) -> dict[str, set[str]]:
    """Element name -> attribute names, over the whole tree."""
    out: dict[str, set[str]] = {}
    for element in root.iter():
        out.setdefault(element.tag, set()).update(element.attrib)
    return out


def test_science_frame_tree_reads_like_esos(workspace, omegacam_night: Path, realdata) -> None:
    shutil.copytree(omegacam_night, workspace.inbox / "night")
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)
    with db.transaction() as session:
        frames = ingest_log.list_frames(session)
        products = product_store.list_products(session)
    science = sorted(f.arcfile for f in frames if f.dpr_catg == "SCIENCE")[0]
    products_by_catg = {p.pro_catg: p for p in products}

    before = calselector_tree(workspace, db, science)
    assert before.category == "SCIENCE_REDUCED" and before.complete and not before.certified
    assert [c.category for c in before.children] == ["MASTER_BIAS", "MASTER_FLAT", "ZEROPOINT"]
    flat = before.children[1]
    (sky,) = flat.children  # the raw twilight flats the master flat was made from
    with db.transaction() as session:
        sky_block = block_store.get_block(session, products_by_catg["MASTER_FLAT"].ab_id)
    assert sky.category == "FLAT_SKY"
    assert [n for _, n in sky.files] == [a.removesuffix(".fits") for a in sky_block.inputs]
    assert {c.category for c in sky.children} == {"MASTER_BIAS", "MASTER_DOME_FLAT"}
    assert all(c.match == "calib_plan" for c in before.children)

    decide(
        workspace, db, [p.id for p in products], decision="certify", comment="ok", reviewer="anna"
    )
    after = calselector_tree(workspace, db, science)
    assert after.certified and all(c.certified for c in after.children)
    with db.transaction() as session:
        archive_names = {f.name.removesuffix(".fits") for f in archived_files(session)}
    masters = {n for c in after.children for _, n in c.files}
    assert masters <= archive_names  # masters named by their archive names

    xml = to_xml(after)
    ours = ET.fromstring(xml.split("\n", 1)[1])
    real = ET.parse(realdata / REAL).getroot()
    real_shape, our_shape = _shape(real), _shape(ours)
    assert set(real_shape) <= set(our_shape) | {"messages"}
    for tag, attributes in real_shape.items():
        assert attributes <= our_shape.get(tag, set()), tag
    assert ours.attrib["mode"] == real.attrib["mode"] == "Raw2Raw"
    # What a client such as astroquery downloads: every file element's name.
    names = {e.attrib["name"] for e in ours.iter("file")}
    assert names == after.file_names()
    raw_stems = {f.arcfile.removesuffix(".fits") for f in frames}
    assert names - archive_names <= raw_stems and masters <= names

    runner = CliRunner()
    as_json = runner.invoke(
        main, ["--workspace", str(workspace.root), "calselector", science, "--format", "json"]
    )
    assert as_json.exit_code == 0 and json.loads(as_json.output) == after.as_dict()
    by_path = runner.invoke(
        main,
        [
            "--workspace",
            str(workspace.root),
            "calselector",
            str(workspace.raw_dir / "2026-11-23" / science),
        ],
    )
    assert by_path.exit_code == 0 and by_path.output == xml
    unknown = runner.invoke(main, ["--workspace", str(workspace.root), "calselector", "X.1"])
    assert unknown.exit_code == 2 and "X.1.fits is not in the frame index" in unknown.output
    db.close()
