"""The Moffat fit of one star never stops a zeropoint: a fit that diverges leaves that
star unmeasured."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.modeling import fitting, models

from qclib.calib import photometry
from qclib.calib.photometry import EllipticalMoffat2D, _fit_moffat, _levenberg_marquardt

#: A 29x29 background-free stamp from a simulated OmegaCAM standard field (demo history,
#: 2026-11-20): a faint star (peak ~110 ADU) beside a 3018 ADU particle hit, on which
#: astropy's LevMarLSQFitter, started at the stamp's maximum, diverges.
STAMP = Path(__file__).parent / "data" / "diverging_moffat_stamp.npy"


def test_a_diverging_fit_leaves_the_star_unmeasured(monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = np.load(STAMP)

    def overflowing(x, y, *params):  # type: ignore[no-untyped-def]
        return np.full(np.shape(x), np.inf)

    monkeypatch.setattr(photometry.EllipticalMoffat2D, "evaluate", staticmethod(overflowing))
    assert _fit_moffat(stamp, noise=4.215) is None


def _moffat_stamps() -> list[tuple[np.ndarray, np.ndarray]]:
    """Noisy elliptical Moffats of 25x25 pixels, bright to faint, some with pixels
    left out (weight 0), and the test's diverging stamp."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:25, :25].astype(float)
    stamps = []
    for k in range(24):
        amplitude = 10 ** rng.uniform(1.5, 4.5)
        centre = 12 + rng.uniform(-1, 1, 2)
        shape = (rng.uniform(1.5, 4), rng.uniform(1.5, 6), *rng.uniform(-0.3, 0.3, 2))
        stamp = EllipticalMoffat2D.evaluate(xx, yy, amplitude, *centre, *shape)
        stamp = stamp + rng.normal(0, 5, stamp.shape)
        weights = (rng.random(stamp.shape) > 0.05 * (k % 3)).astype(float)
        stamps.append((np.where(weights > 0, stamp, 0.0), weights))
    diverging = np.load(STAMP)
    stamps.append((diverging, np.ones(diverging.shape)))
    return stamps


def test_the_fit_is_astropys_levmar_fit_to_the_last_bit() -> None:
    """_levenberg_marquardt gives the parameters astropy's LevMarLSQFitter gives, as
    floats, on every stamp; where astropy's residuals stop being finite, so do its."""
    compared = 0
    for stamp, weights in _moffat_stamps():
        half = stamp.shape[0] // 2
        yy, xx = np.mgrid[: stamp.shape[0], : stamp.shape[1]]
        start = (float(stamp.max()), half, half, 3.0, 3.0, 0.0, 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = fitting.LevMarLSQFitter()(
                    EllipticalMoffat2D(*start), xx, yy, stamp, weights=weights, maxiter=300
                )
            except fitting.NonFiniteValueError:
                with pytest.raises(fitting.NonFiniteValueError):
                    _levenberg_marquardt(xx.astype(float), yy.astype(float), stamp, weights, start)
                continue
            ours = _levenberg_marquardt(xx.astype(float), yy.astype(float), stamp, weights, start)
        assert ours.tolist() == model.parameters.tolist()
        compared += 1
    assert compared >= 20


def test_a_star_beside_a_particle_hit_is_fitted_without_the_hit() -> None:
    """A first fit chases the particle hit beside this faint star (a plain Moffat2D
    started at the stamp's maximum diverges outright); the second fit, the hit's pixels
    left out and started afresh, finds the star: a round profile of a few pixels, as the
    night's seeing (0.6-1.2 arcsec at 0.214 arcsec/px: 2.8-5.6 px) with its halo gives.
    Restarting from the first fit diverged on some CPUs (AVX-512 BLAS paths)."""
    stamp = np.load(STAMP)
    half = stamp.shape[0] // 2
    yy, xx = np.mgrid[: stamp.shape[0], : stamp.shape[1]]
    start = models.Moffat2D(float(stamp.max()), half, half, 3.0, 3.0)
    with warnings.catch_warnings(), pytest.raises(fitting.NonFiniteValueError):
        warnings.simplefilter("ignore")
        fitting.LevMarLSQFitter()(start, xx, yy, stamp, maxiter=200)  # the plain fit fails
    fitted = _fit_moffat(stamp, noise=4.215)
    assert fitted is not None
    fwhm, ellipticity = fitted.fwhm_px, fitted.ellipticity
    assert 2.8 < fwhm < 6.5
    assert ellipticity < 0.2


def test_a_crowded_field_is_fitted_with_the_nominal_isolation() -> None:
    """Stars 40 px apart with a 4 px FWHM guess: none is isolated by the generous 48 px
    (twice 6 FWHM) the fit first asks for, all by the nominal 24 px; their FWHM is
    measured (a small detector at the test scale, or a crowded field, is like this)."""
    from qclib.calib.parameters import PhotometryConfig
    from qclib.calib.photometry import StarField, fit_bright_stars

    fwhm, beta = 4.0, 3.0
    gamma = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    centres = [
        (30.0 + 40 * i + 0.3 * j, 30.0 + 40 * j + 0.2 * i) for i in range(4) for j in range(4)
    ]
    yy, xx = np.mgrid[:180, :180]
    image = np.random.default_rng(5).normal(0.0, 5.0, (180, 180))
    for x, y in centres:
        image += models.Moffat2D(2000.0, x, y, gamma, beta)(xx, yy)
    stars = StarField(
        x=np.array([c[0] for c in centres]),
        y=np.array([c[1] for c in centres]),
        mag=np.full(len(centres), 15.0),
        is_star=np.ones(len(centres), bool),
    )
    fits, positions = fit_bright_stars(
        image.astype(np.float32), stars, np.zeros(image.shape, bool), fwhm, 5.0, PhotometryConfig()
    )
    assert len(fits) >= 10 and len(positions) == len(centres)
    measured = np.median([f.fwhm_px for f in fits.values()])
    assert abs(measured / fwhm - 1) < 0.03, measured
