"""The night's extinction from its standard-field visits (two airmasses in the test
night): recovered from the simulator's truth; the same visits leave it alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from qclib.db import products as product_store
from qclib.workflow.run import run_pass
from tests.conftest import load_truth


def test_extinction_of_the_night(workspace, omegacam_night: Path) -> None:
    shutil.copytree(omegacam_night, workspace.inbox / "night")
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)
    with db.transaction() as session:
        (product,) = [p for p in product_store.list_products(session) if p.pro_catg == "EXTINCTION"]
        values = product_store.qc_values(session, product.id)
    truth = load_truth(omegacam_night)["filters"]["r_SDSS"]["extinction_mag_per_airmass"]
    fitted = [v["QC.EXTINCTION"] for v in values.values()]
    assert len(fitted) >= 3 and all(v["QC.NVISITS"] == 2 for v in values.values())
    # Two visits, 0.85 airmass apart, 0.01-0.03 mag per zeropoint on a test-size CCD.
    assert all(k == pytest.approx(truth, abs=0.05) for k in fitted), fitted
    assert float(np.median(fitted)) == pytest.approx(truth, abs=0.02)
    with fits.open(workspace.root / product.path, checksum=True) as hdul:
        assert hdul[0].header["HIERARCH ESO PRO CATG"] == "EXTINCTION"
    # Recorded as every recipe's product is: one provenance schema, its inputs the
    # zeropoint products it was fitted from.
    with db.transaction() as session:
        made = product_store.list_products(session)
    zeropoints = {p.name: p.sha256 for p in made if p.pro_catg == "ZEROPOINT"}
    bias = next(p for p in made if p.pro_catg == "MASTER_BIAS")
    provenance = product.provenance
    assert list(provenance) == list(bias.provenance)
    assert dict(zip(provenance["inputs"], provenance["input_sha256"], strict=True)) == zeropoints
    assert provenance["recipe"] == "qc_night_extinction" and provenance["calibrations"] == {}
    assert provenance["config_hash"] == bias.provenance["config_hash"]
    run_pass(workspace, db, write_reports=False)  # the same visits: nothing rewritten
    with db.transaction() as session:
        again = [p for p in product_store.list_products(session) if p.pro_catg == "EXTINCTION"]
    assert [(p.id, p.sha256) for p in again] == [(product.id, product.sha256)]
    db.close()


def test_a_rejected_visit_taints_the_fit_which_is_left_for_review(
    workspace, omegacam_night: Path
) -> None:
    """Two visits: rejecting one leaves too few for a fit. The old fit is tainted and
    stays in the review queue with the reason; it is neither refitted nor dropped."""
    from qclib.archive.certification import decide
    from qclib.archive.review import review_queue

    shutil.copytree(omegacam_night, workspace.inbox / "night")
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)
    with db.transaction() as session:
        made = product_store.list_products(session)
    (fit,) = [p for p in made if p.pro_catg == "EXTINCTION"]
    visit = next(p for p in made if p.pro_catg == "ZEROPOINT")
    decide(workspace, db, [visit.id], decision="reject", comment="clouds", reviewer="anna")
    run_pass(workspace, db, write_reports=False)
    with db.transaction() as session:
        after = product_store.get_product(session, fit.id)
    assert after is not None and after.sha256 == fit.sha256  # not refitted from one visit
    assert after.taint_reason.startswith(f"made with {visit.name}, rejected by anna: clouds")
    (queued,) = [i for i in review_queue(workspace, db) if i.product_id == fit.id]
    assert queued.reasons[0].startswith("tainted:")
    db.close()
