"""The Moffat fit of one star never stops a zeropoint: a fit that diverges leaves that
star unmeasured."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.modeling import fitting, models

from qclib.calib.photometry import _fit_moffat

#: A 29x29 background-free stamp from a simulated OmegaCAM standard field (demo history,
#: 2026-11-20): a faint star (peak ~110 ADU) beside a 3018 ADU particle hit, on which
#: astropy's LevMarLSQFitter, started at the stamp's maximum, diverges.
STAMP = Path(__file__).parent / "data" / "diverging_moffat_stamp.npy"


def test_a_diverging_fit_leaves_the_star_unmeasured() -> None:
    stamp = np.load(STAMP)
    half = stamp.shape[0] // 2
    yy, xx = np.mgrid[: stamp.shape[0], : stamp.shape[1]]
    start = models.Moffat2D(float(stamp.max()), half, half, 3.0, 3.0)
    with warnings.catch_warnings(), pytest.raises(fitting.NonFiniteValueError):
        warnings.simplefilter("ignore")
        fitting.LevMarLSQFitter()(start, xx, yy, stamp, maxiter=200)  # the library's failure
    assert _fit_moffat(stamp, noise=4.215) is None
