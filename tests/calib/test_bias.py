"""Master bias: recovers the simulator's truth; bad inputs give UnprocessableDataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qclib.calib.bias import make_master_bias
from qclib.calib.dq import DQ_HOT
from qclib.errors import UnprocessableDataError
from qclib.fitsio import map_stored_int16, read_image, scan_fits
from qclib.instruments import load_instrument
from qclib.stored_pixels import StoredStack
from tests.conftest import load_truth

GEOMETRY = load_instrument("OMEGACAM").geometry["test"]


def _biases(night: Path, extname: str) -> tuple[list[np.ndarray], list[dict]]:
    truth = load_truth(night)
    exposures = [e for e in truth["exposures"] if e["kind"] == "bias"]
    images = []
    for e in exposures:
        scan = scan_fits(night / e["arcfile"])
        hdu = next(h for h in scan.extensions if h.extname == extname)
        images.append(read_image(night / e["arcfile"], hdu))
    return images, exposures


#: At 5 sigma, Gaussian noise alone flags 2.9e-7 of the pixels: 0.15 of the test night's
#: 4 x 131,072, so 3 or more false flags happen by chance with probability 5e-4. The rate
#: of false flags among many hot pixels is tests/calib/test_defect_recall.py's.
MAX_FALSE_HOT_PER_NIGHT = 2


def test_master_bias_recovers_the_truth(omegacam_night: Path) -> None:
    truth = load_truth(omegacam_night)
    missed, false = [], []
    for extname, det in truth["detectors"].items():
        raws, exposures = _biases(omegacam_night, extname)
        master = make_master_bias(raws, GEOMETRY)
        offsets = [e["detectors"][extname]["frame_offset_adu"] for e in exposures]
        qc = master.qc
        assert qc["QC.RON"] == pytest.approx(det["read_noise_adu"], rel=0.03), extname
        assert qc["QC.BIAS.LEVEL"] == pytest.approx(
            det["bias_level_adu"] + np.mean(offsets), abs=0.5
        )
        # Hot pixels: the test night's are 2-70 e-/s, 23-660 sigma in a master bias.
        hot = {(x, y) for x, y, _ in det["hot_pixels"]}
        found = {(int(x), int(y)) for y, x in zip(*np.nonzero(master.dq & DQ_HOT), strict=True)}
        missed += [(extname, p) for p in hot - found]
        false += [(extname, p) for p in found - hot]
        assert qc["QC.NHOTPIX"] == len(found)
        # The column pattern the simulator put in is what the FPN reads.
        assert qc["QC.BIAS.FPN"] == pytest.approx(det["bias_pattern_rms_adu"], rel=0.15)
        # The data region sits bias_offset_adu above the overscan (0.02 ADU of noise).
        assert qc["QC.MASTER.BIAS.MEDIAN"] == pytest.approx(det["bias_offset_adu"], abs=0.3)
    assert not missed, f"hot pixels not found: {missed}"
    assert len(false) <= MAX_FALSE_HOT_PER_NIGHT, f"false hot pixels: {false}"


def test_raws_combined_as_stored_give_the_same_master_bias(omegacam_night: Path) -> None:
    """The int16 raws read in place (what the recipe does) and the float32 stack of
    them give the same master bias, bit for bit, and the same QC values."""
    truth = load_truth(omegacam_night)
    arcfiles = [e["arcfile"] for e in truth["exposures"] if e["kind"] == "bias"]
    for extname in list(truth["detectors"])[:2]:
        raws, _ = _biases(omegacam_night, extname)
        images = []
        for arcfile in arcfiles:
            scan = scan_fits(omegacam_night / arcfile)
            hdu = next(h for h in scan.extensions if h.extname == extname)
            images.append(map_stored_int16(omegacam_night / arcfile, hdu))
        assert all(image is not None for image in images), "the simulator writes int16 raws"
        stored = make_master_bias(StoredStack(tuple(images)), GEOMETRY)
        floats = make_master_bias(raws, GEOMETRY)
        planes = ((stored.data, floats.data), (stored.error, floats.error), (stored.dq, floats.dq))
        for mine, theirs in planes:
            assert mine.tobytes() == theirs.tobytes()
        assert stored.qc == floats.qc


def test_edge_ramps_and_offsets_make_no_hot_pixels(omegacam_night: Path) -> None:
    """A bias rising 5-8 ADU towards the prescan over ~30 columns, and a data region
    a few ADU above the overscan, are bias structure: not one pixel of it is hot."""
    truth = load_truth(omegacam_night)
    ramps = {e: d for e, d in truth["detectors"].items() if d["bias_edge_ramp_adu"] > 0}
    assert ramps, "the test night must hold a CCD with an edge ramp"
    for extname, det in ramps.items():
        raws, _ = _biases(omegacam_night, extname)
        master = make_master_bias(raws, GEOMETRY)
        hot = {(x, y) for x, y, _ in det["hot_pixels"]}
        edge = master.dq[:, :40] & DQ_HOT
        found = {(int(x), int(y)) for y, x in zip(*np.nonzero(edge), strict=True)}
        assert found <= hot, sorted(found - hot)[:10]


def test_master_bias_does_not_mutate_inputs(omegacam_night: Path) -> None:
    raws, _ = _biases(omegacam_night, "ESO_CCD_#65")
    copies = [r.copy() for r in raws]
    make_master_bias(raws, GEOMETRY)
    for a, b in zip(raws, copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_inputs_are_unprocessable(omegacam_night: Path) -> None:
    raws, _ = _biases(omegacam_night, "ESO_CCD_#65")
    with pytest.raises(UnprocessableDataError, match="at least 3 are needed"):
        make_master_bias(raws[:2], GEOMETRY)
    with pytest.raises(UnprocessableDataError, match="different shapes"):
        make_master_bias([*raws[:3], raws[3][:-2]], GEOMETRY)
    with pytest.raises(UnprocessableDataError, match="all NaN"):
        make_master_bias([*raws[:3], np.full_like(raws[0], np.nan)], GEOMETRY)
