"""Standard-field photometry: zeropoint, image quality (FWHM, ellipticity). Pure.

Stars of the reference catalogue are placed with the frame's WCS, re-centred
(photutils centroids), and measured in apertures of 4 FWHM radius less the
sigma-clipped median of an annulus 5-7 FWHM out (a smoothed background map is
biased high by the wings of bright stars: 0.05-0.3 mag too faint here). The light
beyond the aperture (0.3 % for a Moffat of beta 3 at 4 FWHM) is restored with the
Moffat profile fitted to the same stars.
Only isolated, unsaturated stars with enough signal count. The FWHM comes from a
Moffat fit (astropy.modeling) to the brightest of them, the ellipticity from their
second moments (photutils ``data_properties``).

QC parameters:
  QC.ZPOINT         magnitude of a source giving 1 ADU/s at the observed airmass    mag
  QC.ZPOINT.X0      the same above the atmosphere (nominal extinction)              mag
  QC.ZPOINT.ERR     standard error of the zeropoint                                 mag
  QC.NSTARS         stars used for the zeropoint                                    count
  QC.FWHM           median FWHM of bright isolated stars                            arcsec
  QC.ELLIPTICITY    median 1 - b/a of the same stars                                -
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.modeling import fitting, models
from astropy.stats import SigmaClip
from astropy.utils.exceptions import AstropyUserWarning
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
from photutils.centroids import centroid_com
from photutils.morphology import data_properties

from qclib.errors import UnprocessableDataError


@dataclass(frozen=True)
class PhotometryConfig:
    """Parameters of the zeropoint recipe."""

    aperture_fwhm: float = 4.0
    annulus_fwhm: tuple[float, float] = (5.0, 7.0)
    isolation_fwhm: float = 6.0
    min_snr: float = 20.0
    min_peak_snr: float = 8.0  # peak over sky noise for a star's FWHM fit
    max_fit_stars: int = 25
    min_stars: int = 1
    clip_sigma: float = 3.0


@dataclass(frozen=True)
class StarField:
    """Catalogue sources on (and near) one detector: positions in data-section pixels,
    magnitudes, and which are point sources (only those are measured; all count
    as neighbours)."""

    x: np.ndarray
    y: np.ndarray
    mag: np.ndarray
    is_star: np.ndarray


@dataclass(frozen=True)
class FieldPhotometry:
    zeropoint: float  # at the observed airmass, ADU/s
    zeropoint_err: float
    n_stars: int
    fwhm_px: float
    ellipticity: float


def _cutout(image: np.ndarray, x: float, y: float, half: int) -> tuple[np.ndarray, int, int] | None:
    ix, iy = round(x), round(y)
    if ix - half < 0 or iy - half < 0 or ix + half >= image.shape[1] or iy + half >= image.shape[0]:
        return None
    return image[iy - half : iy + half + 1, ix - half : ix + half + 1], ix - half, iy - half


def _fit_moffat(stamp: np.ndarray, noise: float) -> tuple[float, float, float, float] | None:
    """FWHM (px), core width and power index of a Moffat fitted to a background-free
    stamp, and 1 - b/a from its moments within 2 FWHM, pixels far above the fitted
    profile (particle hits: 0.45 instead of 0.03 on one simulated star) left out.
    None when the fit diverges or gives no sensible width."""
    half = stamp.shape[0] // 2
    yy, xx = np.mgrid[: stamp.shape[0], : stamp.shape[1]]
    start = models.Moffat2D(amplitude=float(stamp.max()), x_0=half, y_0=half, gamma=3.0, alpha=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        # A diverging fit (alpha running off on a faint or blended star) overflows on
        # its way out: that star is not measured, the others are.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fitted = fitting.LevMarLSQFitter()(start, xx, yy, stamp, maxiter=200)
        except fitting.NonFiniteValueError:
            return None
    fwhm = float(fitted.fwhm)
    if not (math.isfinite(fwhm) and 0.5 < fwhm < stamp.shape[0]):
        return None
    radius = np.hypot(xx - fitted.x_0.value, yy - fitted.y_0.value)
    outliers = stamp - fitted(xx, yy) > 5 * noise + 0.2 * fitted.amplitude.value
    mask = outliers | (radius > 2 * fwhm)
    properties = data_properties(np.where(mask, 0.0, stamp), mask=mask)
    gamma, power = abs(float(fitted.gamma.value)), float(fitted.alpha.value)
    return fwhm, float(properties.ellipticity.value), gamma, power


def measure_field(
    image: np.ndarray,
    stars: StarField,
    *,
    exptime_s: float,
    saturated: np.ndarray,
    fwhm_guess_px: float,
    noise_adu: float,
    config: PhotometryConfig | None = None,
) -> FieldPhotometry:
    """Zeropoint and image quality of one reduced detector image (ADU, bias removed,
    flat-fielded; sky still in). ``saturated``: True where the raw was saturated.

    Raises
    ------
    UnprocessableDataError
        Fewer than ``min_stars`` usable stars.
    """
    config = config or PhotometryConfig()
    # FWHM first (it sets the aperture), from the brightest stars' stamps.
    half = max(8, int(3 * fwhm_guess_px))
    order = np.argsort(stars.mag)
    # The guess may be far off (seeing varies): stars for the fit are isolated generously.
    isolated = _isolated(stars, 2 * config.isolation_fwhm * fwhm_guess_px)
    fits_done: list[tuple[float, float, float, float]] = []
    positions: dict[int, tuple[float, float]] = {}
    for i in order:
        if not stars.is_star[i]:
            continue
        cut = _cutout(image, stars.x[i], stars.y[i], half)
        if cut is None:
            continue
        stamp, x0, y0 = cut
        if saturated[y0 : y0 + stamp.shape[0], x0 : x0 + stamp.shape[1]].any():
            continue
        stamp = stamp - np.median(np.concatenate([stamp[0], stamp[-1], stamp[:, 0], stamp[:, -1]]))
        cx, cy = centroid_com(np.clip(stamp, 0, None))
        positions[int(i)] = (x0 + cx, y0 + cy)
        bright = stamp.max() > config.min_peak_snr * noise_adu
        if isolated[i] and bright and len(fits_done) < config.max_fit_stars:
            fit = _fit_moffat(stamp, noise_adu)
            if fit is not None:
                fits_done.append(fit)
    if not fits_done:
        raise UnprocessableDataError(
            f"no bright isolated unsaturated star to measure the FWHM on ({len(stars.x)} "
            "catalogue stars on the detector)"
        )
    fwhm = float(np.median([f[0] for f in fits_done]))
    ellipticity = float(np.median([f[1] for f in fits_done]))
    gamma = float(np.median([f[2] for f in fits_done]))
    power = float(np.median([f[3] for f in fits_done]))
    radius = config.aperture_fwhm * fwhm
    inner, outer = (a * fwhm for a in config.annulus_fwhm)
    isolated = _isolated(stars, config.isolation_fwhm * fwhm)
    enclosed = 1.0 - (1.0 + (radius / gamma) ** 2) ** (1.0 - power) if power > 1 else 1.0
    kept = [i for i in positions if isolated[i] and _inside(positions[i], outer, image.shape)]
    if not kept:
        raise UnprocessableDataError("no isolated star lies wholly on the detector")
    centres = [positions[i] for i in kept]
    apertures = CircularAperture(centres, r=radius)
    annuli = CircularAnnulus(centres, r_in=inner, r_out=outer)
    sky = ApertureStats(image, annuli, sigma_clip=SigmaClip(sigma=3.0, maxiters=5)).median
    total = ApertureStats(image, apertures, sum_method="exact").sum
    inside = np.atleast_1d(np.asarray(total, float) - np.asarray(sky, float) * apertures.area)
    flux = inside / enclosed
    snr = inside / np.sqrt(np.maximum(inside, 0) + apertures.area * noise_adu**2)
    good = (flux > 0) & (snr >= config.min_snr)
    mags = stars.mag[np.array(kept)][good]
    zps = mags + 2.5 * np.log10(flux[good] / exptime_s)
    if zps.size < config.min_stars:
        raise UnprocessableDataError(
            f"{zps.size} star(s) with S/N >= {config.min_snr:g}; the zeropoint needs "
            f"{config.min_stars}"
        )
    zp, err, n = _clipped_mean(zps, config.clip_sigma)
    return FieldPhotometry(zp, err, n, fwhm, ellipticity)


def _isolated(stars: StarField, distance_px: float) -> np.ndarray:
    """True for sources with no other source within distance brighter than 5 mag fainter
    (which would add more than 1 % to the flux)."""
    dx = stars.x[:, None] - stars.x[None, :]
    dy = stars.y[:, None] - stars.y[None, :]
    near = (dx**2 + dy**2 < distance_px**2) & (stars.mag[None, :] < stars.mag[:, None] + 5)
    np.fill_diagonal(near, False)
    return ~near.any(axis=1)


def _inside(position: tuple[float, float], radius: float, shape: tuple[int, int]) -> bool:
    x, y = position
    return radius <= x < shape[1] - radius and radius <= y < shape[0] - radius


def _clipped_mean(values: np.ndarray, sigma: float) -> tuple[float, float, int]:
    kept = values
    for _ in range(5):
        centre = np.median(kept)
        spread = 1.4826 * np.median(np.abs(kept - centre)) if kept.size > 2 else 0.0
        new = kept if spread == 0 else values[np.abs(values - centre) <= sigma * spread]
        if new.size == kept.size:
            break
        kept = new
    err = float(np.std(kept, ddof=1) / np.sqrt(kept.size)) if kept.size > 1 else math.nan
    return float(np.mean(kept)), err, int(kept.size)


def fit_extinction(airmasses: np.ndarray, zeropoints: np.ndarray) -> tuple[float, float]:
    """Extinction coefficient (mag/airmass) and zeropoint above the atmosphere from
    zeropoints observed at different airmasses: ZP(X) = ZP0 - k X.

    >>> fit_extinction(np.array([1.0, 2.0]), np.array([24.5, 24.4]))
    (0.1, 24.6)
    """
    if np.ptp(airmasses) < 0.1:
        raise UnprocessableDataError(
            "standard fields span less than 0.1 airmass: the extinction is not measurable"
        )
    slope, intercept = np.polyfit(airmasses, zeropoints, 1)
    return round(float(-slope), 12), round(float(intercept), 12)
