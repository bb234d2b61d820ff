"""The streaming coadd: weighted mean of reprojected frames, its background error, what a
bad pixel does, and flux kept through the reprojection."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from qclib.calib.coadd import CoaddSum, coadd_grid

SCALE_DEG = 0.2 / 3600
SHAPE = (160, 180)


def _wcs(dx: float = 0.0, dy: float = 0.0) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, -30.0]
    wcs.wcs.crpix = [90.0 + dx, 80.0 + dy]
    wcs.wcs.cd = [[-SCALE_DEG, 0.0], [0.0, SCALE_DEG]]
    return wcs


def _frame(level: float, star_xy: tuple[float, float], flux: float) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    sigma = 2.0
    star = np.exp(-((xx - star_xy[0]) ** 2 + (yy - star_xy[1]) ** 2) / (2 * sigma**2))
    return (level + flux * star / (2 * np.pi * sigma**2)).astype(np.float32)


def test_weighted_mean_error_and_flux() -> None:
    # Frame B sees the sky shifted by (3.5, -2.25) pixels: the same star lands there.
    a_wcs, b_wcs = _wcs(), _wcs(3.5, -2.25)
    a = _frame(10.0, (90.3, 80.7), 1000.0)
    b = _frame(20.0, (93.8, 78.45), 1000.0)
    grid = coadd_grid([(SHAPE, a_wcs), (SHAPE, b_wcs)], margin_px=4)
    total = CoaddSum(grid)
    total.add(a, np.full(SHAPE, 1.0, np.float32), a_wcs)
    total.add(b, np.full(SHAPE, 4.0, np.float32), b_wcs)
    coadd = total.finish()
    gx, gy = (float(v) for v in grid.wcs.world_to_pixel(a_wcs.pixel_to_world(90.3, 80.7)))
    both = coadd.coverage == 2
    # Away from the star: (1 x 10 + 0.25 x 20) / 1.25 = 12; error 1 / sqrt(1.25).
    far = both.copy()
    far[int(gy) - 15 : int(gy) + 16, int(gx) - 15 : int(gx) + 16] = False
    assert np.median(coadd.image[far]) == pytest.approx(12.0, abs=1e-4)
    assert np.median(coadd.error[far]) == pytest.approx(1 / np.sqrt(1.25), rel=1e-5)
    assert set(np.unique(coadd.coverage)) <= {0, 1, 2}
    assert np.isnan(coadd.image[coadd.weight == 0]).all()
    # The star's flux above the level, within 8 sigma: within 0.5 %.
    yy, xx = np.mgrid[: grid.shape[0], : grid.shape[1]]
    inside = (xx - gx) ** 2 + (yy - gy) ** 2 <= 16**2
    assert np.nansum(coadd.image[inside] - 12.0) == pytest.approx(1000.0, rel=0.005)


def test_a_bad_pixel_takes_no_weight_and_leaves_no_hole() -> None:
    a_wcs = _wcs()
    a = _frame(10.0, (90.0, 80.0), 0.0)
    b = a.copy()
    a[50, 60] = np.nan  # bad in one frame: its neighbours keep their values
    variance = np.full(SHAPE, 1.0, np.float32)
    bad_variance = variance.copy()
    bad_variance[50, 60] = np.inf
    grid = coadd_grid([(SHAPE, a_wcs)], margin_px=0)
    total = CoaddSum(grid)
    total.add(a, bad_variance, a_wcs)
    total.add(b, variance, a_wcs)
    coadd = total.finish()
    gx, gy = (round(float(v)) for v in grid.wcs.world_to_pixel(a_wcs.pixel_to_world(60, 50)))
    assert coadd.image[gy, gx] == pytest.approx(10.0, abs=1e-4)
    assert coadd.weight[gy, gx] == pytest.approx(1.0, abs=1e-4)  # only frame b's
    window = coadd.image[gy - 2 : gy + 3, gx - 2 : gx + 3]
    assert np.isfinite(window).all() and np.allclose(window, 10.0, atol=1e-4)


def test_frames_are_added_in_order_reproducibly() -> None:
    wcs = _wcs()
    frames = [_frame(10.0 + i, (90.0 + i, 80.0), 500.0) for i in range(3)]
    grid = coadd_grid([(SHAPE, wcs)], margin_px=2)
    results = []
    for _ in range(2):
        total = CoaddSum(grid)
        for frame in frames:
            total.add(frame, np.full(SHAPE, 1.0, np.float32), wcs)
        results.append(total.finish().image)
    assert np.array_equal(results[0], results[1], equal_nan=True)
