"""The streaming coadd: weighted mean of reprojected frames, its background error, what a
bad pixel does, flux kept through the reprojection, and the interpolated coordinates
against the exact transform and reproject."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS, Sip
from astropy.wcs.utils import pixel_to_pixel
from reproject import reproject_interp

from qclib.calib import coadd as coadd_module
from qclib.calib.coadd import CoaddSum, coadd_grid, input_coordinates

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


def _rotated_wcs(crval: tuple[float, float], angle_deg: float, crpix: tuple[float, float]) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(crval)
    wcs.wcs.crpix = list(crpix)
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    scale = 0.214 / 3600
    wcs.wcs.cd = [[-scale * c, scale * s], [scale * s, scale * c]]
    return wcs


def test_interpolated_coordinates_follow_the_exact_transform() -> None:
    # A full OmegaCAM CCD (4100 x 2048 px, 0.214"/px) in a corner of a 1-degree field:
    # its own tangent point 0.45 deg from the grid's, rotated 0.3 deg against it.
    frame = _rotated_wcs((150.45, -29.6), 0.3, (1024.0, 2050.0))
    grid = _rotated_wcs((150.0, -30.0), 0.0, (-6000.0, -4000.0))
    shape = (4200, 2150)
    coords = input_coordinates(grid, frame, shape)
    rng = np.random.default_rng(5)
    y = rng.integers(0, shape[0], 20_000)
    x = rng.integers(0, shape[1], 20_000)
    fx, fy = pixel_to_pixel(grid, frame, x.astype(float), y.astype(float))
    assert np.max(np.abs(coords[0][y, x] - fy)) < 1e-4
    assert np.max(np.abs(coords[1][y, x] - fx)) < 1e-4


def test_a_distortion_too_strong_for_the_nodes_is_refused(monkeypatch) -> None:
    # Nodes 1000 px apart (3 along 2000 px: a quadratic) against an x^3 distortion of
    # 10 px at 1000 px; at the real spacing a bicubic spline follows it to 1e-9 px.
    monkeypatch.setattr(coadd_module, "_NODE_STEP_PX", 1000)
    frame = _rotated_wcs((150.0, -30.0), 0.0, (1.0, 1.0))
    frame.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    a = np.zeros((4, 4))
    a[3, 0] = 1e-8
    frame.sip = Sip(a, np.zeros((4, 4)), None, None, frame.wcs.crpix)
    grid = _rotated_wcs((150.0, -30.0), 0.0, (1.0, 1.0))
    with pytest.raises(ValueError, match="bends by"):
        input_coordinates(grid, frame, (40, 2000))
    monkeypatch.setattr(coadd_module, "_NODE_STEP_PX", 32)
    input_coordinates(grid, frame, (40, 2000))


def test_the_coadd_agrees_with_reproject_interp() -> None:
    # Within the frame, away from its border, the resampled frame is reproject's.
    a_wcs = _rotated_wcs((150.0, -30.0), 0.4, (90.0, 80.0))
    rng = np.random.default_rng(2)
    data = (_frame(10.0, (70.3, 60.7), 800.0) + rng.normal(0, 1, SHAPE)).astype(np.float32)
    grid = coadd_grid([(SHAPE, a_wcs)], margin_px=3)
    total = CoaddSum(grid)
    total.add(data, np.full(SHAPE, 1.0, np.float32), a_wcs)
    coadd = total.finish()
    expected, _ = reproject_interp((data, a_wcs), grid.wcs, shape_out=grid.shape)
    core = (coadd.coverage == 1) & np.isfinite(expected)
    core[:4], core[-4:], core[:, :4], core[:, -4:] = False, False, False, False
    assert core.sum() > 0.8 * SHAPE[0] * SHAPE[1]
    assert np.max(np.abs(coadd.image[core] - expected[core])) < 1e-3
