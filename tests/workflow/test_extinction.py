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
    run_pass(workspace, db, write_reports=False)  # the same visits: nothing rewritten
    with db.transaction() as session:
        again = [p for p in product_store.list_products(session) if p.pro_catg == "EXTINCTION"]
    assert [(p.id, p.sha256) for p in again] == [(product.id, product.sha256)]
    db.close()
