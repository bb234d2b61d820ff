"""The compiled star renderer against the numpy stamp it replaces (``StellarPsf.stamp``
through ``_add_stamp``), and the dome ripple's separable form against its plane waves."""

from __future__ import annotations

import numpy as np

from qclib.instruments import load_instrument
from qclib.simulate import sky
from qclib.simulate.sky import StellarPsf


def _psf(halo_fraction: float) -> StellarPsf:
    return StellarPsf(fwhm_px=4.2, beta=3.0, halo_fraction=halo_fraction, ellipticity=(0.02, 0.12))


def test_compiled_stars_equal_the_numpy_stamps_to_float32_rounding() -> None:
    rng = np.random.default_rng(5)
    shape = (300, 260)
    n = 40
    # Some stars well inside, some across each edge, two entirely off the image.
    x = np.r_[rng.uniform(-20, shape[1] + 20, n - 2), -200.0, shape[1] + 150.0]
    y = np.r_[rng.uniform(-20, shape[0] + 20, n - 2), 40.0, 60.0]
    fluxes = 10 ** rng.uniform(2, 6, n)
    ellipticity = rng.uniform(0.0, 0.15, n)
    angle = rng.uniform(0, np.pi, n)
    for halo_fraction in (0.0, 0.04):
        psf = _psf(halo_fraction)
        reference = np.zeros(shape, np.float32)
        for i in range(n):

            def star(dx, dy, i=i, psf=psf):  # type: ignore[no-untyped-def]
                stamp = psf.stamp(dx, dy, float(ellipticity[i]), float(angle[i]))
                return (fluxes[i] * stamp).astype(np.float32)

            sky._add_stamp(reference, x[i], y[i], psf.radius_px, star)
        compiled = np.zeros(shape, np.float32)
        sky._add_stars(compiled, x, y, fluxes, ellipticity, angle, psf)
        assert reference.sum() > 0.5 * fluxes[(x > 30) & (x < 230) & (y > 30) & (y < 270)].sum()
        # Summed in another order: float32 rounding of each star's values, no more.
        tolerance = 4 * np.finfo(np.float32).eps * np.maximum(np.abs(reference), 1.0)
        assert np.all(np.abs(compiled - reference) <= tolerance)


def test_dome_ripple_matches_its_plane_waves() -> None:
    instrument = load_instrument("OMEGACAM")
    geometry = instrument.geometry["test"]
    extname = next(iter(instrument.detectors_at("test")))
    extname = getattr(extname, "extname", extname)
    light = sky.illumination(instrument, geometry, extname, kind="dome_flat")
    a = instrument.simulator.illumination_amplitude
    y, x = sky.focal_plane_radius(instrument, geometry, extname)
    r2 = (x**2 + y**2) / 2
    smooth = 1.0 - 1.33 * a * (r2 + 0.5 * r2**2) + 0.5 * a * x
    x0, y0, _, _ = sky._mosaic_offsets(instrument, geometry, extname)
    ny, nx = geometry.data_shape
    px = x0 + np.arange(nx, dtype=np.float64)[None, :]
    py = y0 + np.arange(ny, dtype=np.float64)[:, None]
    ripple = np.zeros((ny, nx))
    for period_px, angle_deg, amplitude, phase in sky.RIPPLE_WAVES:
        theta, k = np.radians(angle_deg), 2 * np.pi / period_px
        ripple += amplitude * np.sin(k * (px * np.cos(theta) + py * np.sin(theta)) + phase)
    expected = (smooth * (1.0 + ripple)).astype(np.float32)
    assert np.abs(ripple).max() > 0.002  # the ripple is there to be matched
    np.testing.assert_allclose(light, expected, rtol=2 * np.finfo(np.float32).eps, atol=0)
