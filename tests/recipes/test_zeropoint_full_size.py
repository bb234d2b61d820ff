"""The OmegaCAM standard-star zeropoint within 0.03 mag on every detector of every
visit, where a CCD holds enough stars: full size. A test-size CCD (256 x 512 pixels)
holds 3-19 measured stars of SA95, and the test-scale test
(test_omegacam_recipes.py::test_zeropoint_and_image_quality) asks 0.03 mag only of
the detector visits with five or more; a full CCD (2048 x 4100 pixels, 7.3 x 14.6
arcmin) holds over a hundred. Two full CCDs of a full-size night, only what the
ZEROPOINT blocks need (biases, dome flats, twilight flats, standards; the dome flats
make a READ_GAIN block too; the science exposures wait, on request), through the
public path: ingest, associate, process (fixture ``omegacam_full_ccds``).

Measured (seed 3, three visits): ZPOINT - truth -0.0048 ... -0.0008 mag, 127-161
stars per CCD and visit, FWHM within 0.4 % of the seeing; about 50 s on 2 cores.
"""

from __future__ import annotations

import pytest

from tests.recipes.conftest import FULL_SIZE_CCDS as DETECTORS
from tests.recipes.conftest import ProcessedNight, expected_zeropoint

pytestmark = pytest.mark.slow


def test_zeropoint_within_three_hundredths_on_every_full_size_ccd(
    omegacam_full_ccds: ProcessedNight,
) -> None:
    processed = omegacam_full_ccds
    truth = processed.truth
    assert sorted(truth["detectors"]) == DETECTORS
    zeropoint_blocks = {ab: o for ab, o in processed.outcomes.items() if "ZEROPOINT" in ab}
    assert {o.status for o in zeropoint_blocks.values()} == {"done"}, zeropoint_blocks
    standards = {e["arcfile"]: e for e in truth["exposures"] if e["kind"] == "standard"}
    products = processed.of("ZEROPOINT")
    assert len(products) == len(standards) >= 2
    rows = []
    for product in products:
        exposure = standards[product.ab_id.removesuffix("_ZEROPOINT") + ".fits"]
        qcs = processed.qc[product.id]
        assert sorted(qcs) == DETECTORS, product.ab_id  # no detector without values
        for extname, qc in qcs.items():
            expected = expected_zeropoint(truth, extname, "r_SDSS", exposure["airmass"])
            delta = qc["QC.ZPOINT"] - expected
            seeing = exposure["seeing_arcsec"]
            rows.append((product.ab_id, extname, delta, qc, seeing))
            print(
                f"{product.ab_id} {extname}: ZPOINT - truth = {delta:+.4f} mag "
                f"(err {qc['QC.ZPOINT.ERR']:.4f}), NSTARS {qc['QC.NSTARS']:.0f}, "
                f"FWHM {qc['QC.FWHM']:.3f} vs seeing {seeing:.3f} "
                f"({qc['QC.FWHM'] / seeing - 1:+.1%})"
            )
    # Every value printed before any is judged.
    assert len(rows) == len(standards) * len(DETECTORS)  # every detector of every visit
    for ab_id, extname, delta, qc, seeing in rows:
        assert qc["QC.NSTARS"] >= 10, (ab_id, extname, qc["QC.NSTARS"])
        assert abs(delta) <= 0.03, (ab_id, extname, delta)
        assert qc["QC.FWHM"] == pytest.approx(seeing, rel=0.03), (ab_id, extname)
