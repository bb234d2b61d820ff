"""Processing blocks: products and QC values in the database, atomic FITS products with
ESO keywords, waiting and failed blocks with reasons, idempotent re-runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from qclib.db import blocks as block_store
from qclib.db import ingest_log
from qclib.db import products as product_store
from qclib.errors import UnprocessableDataError
from qclib.recipes import master_dark
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from tests.conftest import load_truth


def test_master_bias_product_end_to_end(workspace, omegacam_night: Path) -> None:
    db = workspace.open_database()
    ingest_paths(workspace, db, [omegacam_night])
    associate_workspace(workspace, db)
    outcomes = {o.ab_id: o for o in process_blocks(workspace, db)}
    bias_id = next(i for i in outcomes if i.endswith("_MASTER_BIAS"))
    assert outcomes[bias_id].status == "done"
    waiting = [o for o in outcomes.values() if o.status == "waiting"]
    # Science: processed on request only (qc science), and recorded so.
    assert waiting and all("science is processed on request" in o.reason for o in waiting)

    with db.transaction() as session:
        (product,) = product_store.products_of_block(session, bias_id)
        values = product_store.qc_values(session, product.id)
        frames = {f.arcfile: f for f in ingest_log.list_frames(session)}
        states = product_store.block_states(session)
    assert states[bias_id] == ("done", None)
    path = workspace.root / product.path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == product.sha256
    truth = load_truth(omegacam_night)
    assert set(values) == set(truth["detectors"])
    for extname, det in truth["detectors"].items():
        assert values[extname]["QC.RON"] == pytest.approx(det["read_noise_adu"], rel=0.03)
    with fits.open(path, checksum=True) as hdul:  # checksums verified on open
        primary = hdul[0].header
        assert primary["HIERARCH ESO PRO CATG"] == "MASTER_BIAS"
        assert primary["HIERARCH ESO PRO REC1 ID"] == "qc_master_bias"
        assert primary["HIERARCH ESO PRO DATANCOM"] == 5
        raws = [primary[f"HIERARCH ESO PRO REC1 RAW{i} NAME"] for i in range(1, 6)]
        assert all(frames[r].do_catg == "BIAS" for r in raws)
        assert "CHECKSUM" in primary and "DATASUM" in hdul[1].header
        ccd = hdul["ESO_CCD_#65"].header
        assert ccd["HIERARCH ESO QC RON"] == pytest.approx(values["ESO_CCD_#65"]["QC.RON"])
        assert hdul["ESO_CCD_#65.ERR"].data.shape == hdul["ESO_CCD_#65.DQ"].data.shape
        provenance = hdul["PROVENANCE"].data
        assert {(n, s) for n, s in zip(provenance["NAME"], provenance["SHA256"], strict=True)} == {
            (r, frames[r].sha256) for r in raws
        }

    # A pass reads only the blocks not done: a done block's stored content is not
    # even parsed (here it could not be).
    from sqlalchemy import select

    from qclib.db.models import AssociationBlockRow

    with db.transaction() as session:
        done = list(
            session.scalars(select(AssociationBlockRow).where(AssociationBlockRow.state == "done"))
        )
        assert done
        for row in done:
            row.content = {"unreadable": True}
    again = process_blocks(workspace, db)
    assert bias_id not in {o.ab_id for o in again}  # done blocks are not redone
    assert again == []  # nor blocks recorded as waiting for a recipe that does not exist
    # Unless asked for: then it waits for its masters to be certified, naming them.
    (by_id,) = process_blocks(workspace, db, ids=[waiting[0].ab_id])
    assert by_id.status == "waiting" and "science uses certified masters only" in by_id.reason
    assert "MASTER_BIAS.fits (candidate)" in by_id.reason
    with db.transaction() as session:
        assert len(product_store.products_of_block(session, bias_id)) == 1
    db.close()


def _night_and_its_dark(workspace, night: Path):  # type: ignore[no-untyped-def]
    """The workspace's database with ``night`` ingested and associated, and its dark block."""
    db = workspace.open_database()
    ingest_paths(workspace, db, [night])
    associate_workspace(workspace, db)
    with db.transaction() as session:
        blocks = block_store.list_blocks(session)
    return db, next(b for b in blocks if b.action == "MASTER_DARK")


def test_unprocessable_block_is_failed_with_reason_and_others_go_on(
    workspace, omegacam_night: Path, monkeypatch
) -> None:
    def broken(ctx):
        raise UnprocessableDataError("all frames saturated")

    db, dark = _night_and_its_dark(workspace, omegacam_night)
    monkeypatch.setattr(master_dark, "run", broken)
    outcomes = {o.ab_id: o for o in process_blocks(workspace, db)}
    assert outcomes[dark.id].status == "failed"
    assert "all frames saturated" in outcomes[dark.id].reason
    assert any(o.status == "done" for o in outcomes.values())  # the bias still made it
    with db.transaction() as session:
        state, reason = product_store.block_states(session)[dark.id]
    assert state == "failed" and dark.id in reason
    db.close()


def test_a_recipe_bug_fails_its_block_not_the_pass(
    workspace, omegacam_night: Path, monkeypatch
) -> None:
    def buggy(ctx):
        return np.zeros(3)[np.array([5])]  # IndexError inside numpy

    db, dark = _night_and_its_dark(workspace, omegacam_night)
    monkeypatch.setattr(master_dark, "run", buggy)
    outcomes = {o.ab_id: o for o in process_blocks(workspace, db)}
    reason = outcomes[dark.id].reason
    assert outcomes[dark.id].status == "failed"
    assert "recipe qc_master_dark stopped on an error of its own, a bug: IndexError:" in reason
    assert "index 5 is out of bounds" in reason and "later passes retry the block" in reason
    assert any(o.status == "done" for o in outcomes.values())  # the others went on
    # In a pool's worker process the same: the error crosses back as RecipeBugError.
    import concurrent.futures
    import dataclasses
    import multiprocessing

    from qclib.errors import RecipeBugError
    from qclib.workflow.inputs import resolve_inputs
    from qclib.workflow.process import run_recipe

    ctx = resolve_inputs(workspace, db, dark)
    ctx = dataclasses.replace(
        ctx, spec=dataclasses.replace(ctx.spec, entry="tests.workflow.buggy_recipe:run")
    )
    spawn = multiprocessing.get_context("spawn")
    with (
        concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool,
        pytest.raises(RecipeBugError, match=r"a bug: IndexError: index 5 is out of bounds"),
    ):
        pool.submit(run_recipe, ctx).result()
    db.close()


def test_unknown_block_ids_are_a_clear_error(workspace) -> None:
    from qclib.errors import ConfigError

    db = workspace.open_database()
    with pytest.raises(ConfigError, match="no association block NOPE; 'qc abs' lists them"):
        process_blocks(workspace, db, ids=["NOPE"])
    db.close()


def _saturate(path: Path) -> None:
    """Set every pixel of every extension of a raw CCD file to 65535 ADU, in place."""
    import numpy as np

    from qclib.fitsio import scan_fits

    scan = scan_fits(path)
    with open(path, "r+b") as handle:
        for hdu in scan.extensions:
            n = int(hdu.header["NAXIS1"]) * int(hdu.header["NAXIS2"])
            handle.seek(hdu.data_offset)
            handle.write(np.full(n, 65535 - 32768, ">i2").tobytes())


def test_saturated_flat_fails_its_block_dependents_wait_others_go_on(
    workspace, omegacam_night: Path, tmp_path: Path
) -> None:
    import shutil

    night = tmp_path / "night"
    shutil.copytree(omegacam_night, night)
    truth = load_truth(night)
    dome = next(e["arcfile"] for e in truth["exposures"] if e["kind"] == "dome_flat")
    (night / dome).chmod(0o644)
    _saturate(night / dome)

    db = workspace.open_database()
    ingest_paths(workspace, db, [night])
    associate_workspace(workspace, db)
    outcomes = {o.ab_id: o for o in process_blocks(workspace, db)}
    by_action = {ab.split("_", 1)[1]: o for ab, o in outcomes.items()}
    failed = by_action["MASTER_DOME_FLAT"]
    assert failed.status == "failed"
    assert f"flat frame {dome} is saturated (100% of its pixels" in failed.reason
    sky = by_action["MASTER_SKY_FLAT"]
    assert sky.status == "waiting" and "MASTER_DOME_FLAT" in sky.reason
    assert by_action["MASTER_BIAS"].status == "done"
    assert by_action["MASTER_DARK"].status == "done"
    db.close()


def test_zeropoint_waits_for_its_catalogue(workspace, omegacam_night: Path) -> None:
    import shutil

    db = workspace.open_database()
    ingest_paths(workspace, db, [omegacam_night])
    shutil.rmtree(workspace.catalogues_dir)
    associate_workspace(workspace, db)
    outcomes = process_blocks(workspace, db)
    zeropoints = [o for o in outcomes if o.ab_id.endswith("_ZEROPOINT")]
    assert zeropoints and all(o.status == "waiting" for o in zeropoints)
    assert "no reference catalogue for 'SA95': put SA95.csv" in zeropoints[0].reason
    db.close()
