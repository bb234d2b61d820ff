"""The difference to the reference master (QC.REFDIFF.*): measured where the geometry
matches, left out (no crash) where it cannot be, e.g. a full-size master after a
test-size one of the same detector, as in the demo whose history is test-size."""

from __future__ import annotations

import types

import numpy as np

from qclib.fitsio import read_image, scan_fits
from qclib.products import DetectorProduct
from qclib.recipes.base import _measured


def test_refdiff_only_against_a_reference_of_the_same_geometry(omegacam_processed) -> None:
    workspace = omegacam_processed.workspace
    bias = next(p for p in omegacam_processed.products if p.pro_catg == "MASTER_BIAS")
    path = workspace.root / bias.path
    hdu = next(h for h in scan_fits(path).extensions if h.extname == "ESO_CCD_#65")
    same = read_image(path, hdu) + 0.5
    ctx = types.SimpleNamespace(
        instrument=omegacam_processed.workspace.instruments()["OMEGACAM"],
        references={"MASTER_BIAS": path},
    )
    qc: dict[str, dict[str, float]] = {}
    list(_measured(ctx, "MASTER_BIAS", [DetectorProduct("ESO_CCD_#65", same, None, None, {})], qc))
    assert qc["ESO_CCD_#65"]["QC.REFDIFF.MED"] == 0.5

    larger = np.zeros((same.shape[0] * 2, same.shape[1] * 2), dtype=np.float32)
    qc = {}
    list(
        _measured(ctx, "MASTER_BIAS", [DetectorProduct("ESO_CCD_#65", larger, None, None, {})], qc)
    )
    assert "QC.REFDIFF.MED" not in qc.get("ESO_CCD_#65", {})
