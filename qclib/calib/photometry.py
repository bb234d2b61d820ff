"""Standard-field photometry: zeropoint, image quality (FWHM, ellipticity). Pure.

Catalogue stars are placed with the frame's WCS shifted onto the image
(``qclib.calib.astrometry``), re-centred (photutils centroids), and measured in
apertures of 4 FWHM radius above the sky (``qclib.calib.sky_background``: photutils'
``Background2D``, sigma-clipped medians in 64-pixel boxes with every catalogue
source masked out to a radius growing with its brightness: unmasked, the wings of
bright stars bias a map high, 0.05-0.3 mag too faint here).

The light beyond the aperture is not taken from a model: a real PSF has a halo no
single Moffat describes (on the simulated sky a 4 % halo at 3.5 x the core's width
puts 1 % of the light outside 4 FWHM, where a fitted Moffat puts 0.3 %). It is
measured on the field's bright stars, as a curve of growth out to 10 FWHM: the
light in rings between 4 and 10 FWHM is each ring's sigma-clipped mean times its
area, every other catalogue source masked out, and the aperture correction is the
summed total over the summed inner light of up to 20 stars with S/N >= 200. Beyond
10 FWHM the simulated halo holds 0.1 % of the light (0.001 mag, left uncorrected).
Without such a star the fitted profile gives it (``QC.APCOR`` shows which: about
-0.004 mag from the profile, -0.013 measured on the simulated sky).

Only isolated, unsaturated stars with enough signal count; each has an error
(photon and sky noise, and the catalogue's own error), and the zeropoint is their
weighted mean, clipped at 3 sigma, its error scaled up by the reduced chi-square
when the stars scatter more than their errors say. Reference magnitudes are the
catalogue's plus the instrument's colour term (``PhotometrySettings.colour_terms``):
the recipe passes them in.

The FWHM and ellipticity come from an elliptical Moffat (``EllipticalMoffat2D``)
fitted to the brightest stars: the FWHM is the geometric mean of the major and
minor axes', the ellipticity 1 - b/a; the median over stars of each.

QC parameters:
  QC.ZPOINT         magnitude of a source giving 1 ADU/s at the observed airmass    mag
  QC.ZPOINT.X0      the same above the atmosphere (nominal extinction)              mag
  QC.ZPOINT.ERR     standard error of the zeropoint                                 mag
  QC.NSTARS         stars used for the zeropoint                                    count
  QC.APCOR          aperture correction, 4 FWHM to total                            mag
  QC.WCS.SHIFT      distance of the stars from where the raw's WCS puts them        arcsec
  QC.FWHM           median FWHM of bright isolated stars                            arcsec
  QC.ELLIPTICITY    median 1 - b/a of the same stars                                -
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.modeling import Fittable2DModel, Parameter, fitting
from astropy.stats import SigmaClip
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
from photutils.centroids import centroid_com
from scipy import optimize

from qclib.calib.parameters import PhotometryConfig
from qclib.calib.sky_background import SkyBackground, sky_background
from qclib.errors import UnprocessableDataError

#: 2.5 / ln(10): magnitudes per relative flux error.
_MAG_PER_RELATIVE = 2.5 / math.log(10)


@dataclass(frozen=True)
class StarField:
    """Catalogue sources on (and near) one detector: positions in data-section pixels,
    reference magnitudes (colour term applied) and their errors, and which are point
    sources (only those are measured; all count as neighbours)."""

    x: np.ndarray
    y: np.ndarray
    mag: np.ndarray
    is_star: np.ndarray
    mag_err: np.ndarray | None = None

    def shifted(self, dx: float, dy: float) -> StarField:
        return StarField(self.x + dx, self.y + dy, self.mag, self.is_star, self.mag_err)


@dataclass(frozen=True)
class FieldPhotometry:
    zeropoint: float  # at the observed airmass, ADU/s
    zeropoint_err: float
    n_stars: int
    fwhm_px: float
    ellipticity: float
    aperture_correction_mag: float = 0.0  # total minus 4-FWHM magnitude (negative)
    position_rms_px: float = math.nan
    """rms distance of the measured stars' centroids from their catalogue positions
    (the WCS shifted onto the image): what a shift leaves of the WCS's error."""
    stars: tuple[int, ...] = ()
    """The stars measured (S/N >= ``min_snr``), by index into the ``StarField``."""
    star_zeropoints: tuple[float, ...] = ()
    """Each one's zeropoint (reference magnitude + 2.5 log10 of its total flux per
    second), before clipping."""
    star_snr: tuple[float, ...] = ()
    """Each one's S/N in the aperture."""


class EllipticalMoffat2D(Fittable2DModel):
    """Moffat profile with elliptical isophotes of any orientation.

    ``I = amplitude (1 + r^2 / gamma^2)^-alpha`` with ``r^2 = d^T M d``, ``M =
    exp([[s1, s2], [s2, -s1]])`` (determinant 1): ``gamma`` is the geometric mean of
    the axes' widths, and the axis ratio b/a is ``exp(-sqrt(s1^2 + s2^2))``, smooth
    through round (no angle to lose there).
    """

    amplitude = Parameter(default=1.0)
    x_0 = Parameter(default=0.0)
    y_0 = Parameter(default=0.0)
    gamma = Parameter(default=1.0)
    alpha = Parameter(default=3.0)
    s1 = Parameter(default=0.0)
    s2 = Parameter(default=0.0)

    @staticmethod
    def evaluate(x, y, amplitude, x_0, y_0, gamma, alpha, s1, s2):  # type: ignore[no-untyped-def]
        lam = np.sqrt(s1 * s1 + s2 * s2)
        cosh = np.cosh(lam)
        ratio = np.where(lam > 1e-8, np.sinh(lam) / np.where(lam > 1e-8, lam, 1.0), 1.0)
        dx, dy = x - x_0, y - y_0
        r2 = (
            (cosh + ratio * s1) * dx * dx + 2 * ratio * s2 * dx * dy + (cosh - ratio * s1) * dy * dy
        )
        return amplitude * (1.0 + r2 / (gamma * gamma)) ** (-alpha)

    @property
    def fwhm(self) -> float:
        """Geometric mean of the major and minor axes' FWHM."""
        return float(2 * abs(self.gamma.value) * np.sqrt(2 ** (1 / self.alpha.value) - 1))

    @property
    def ellipticity(self) -> float:
        """1 - b/a."""
        return float(1 - np.exp(-np.hypot(self.s1.value, self.s2.value)))

    @property
    def major_axis_deg(self) -> float:
        """Angle of the major axis from +x towards +y, 0-180 degrees. ``M``'s
        exponent is ``lam [[cos 2p, sin 2p], [sin 2p, -cos 2p]]`` with ``2p =
        atan2(s2, s1)``: the quadratic form is smallest, the profile widest, along
        its eigenvector of eigenvalue ``-lam``, at ``p + 90`` degrees."""
        return float((np.degrees(0.5 * np.arctan2(self.s2.value, self.s1.value)) + 90.0) % 180.0)


@dataclass(frozen=True)
class MoffatFit:
    """An elliptical Moffat fitted to one star."""

    fwhm_px: float  # geometric mean of the axes'
    ellipticity: float  # 1 - b/a
    gamma_px: float  # core width
    alpha: float  # power index
    major_axis_deg: float  # from +x towards +y
    x_px: float  # the fitted centre (in the stamp from _fit_moffat, else in the image)
    y_px: float
    peak: float  # the fitted amplitude (image units)


def _cutout(image: np.ndarray, x: float, y: float, half: int) -> tuple[np.ndarray, int, int] | None:
    ix, iy = round(x), round(y)
    if ix - half < 0 or iy - half < 0 or ix + half >= image.shape[1] or iy + half >= image.shape[0]:
        return None
    return image[iy - half : iy + half + 1, ix - half : ix + half + 1], ix - half, iy - half


def _fit_moffat(stamp: np.ndarray, noise: float, bad: np.ndarray | None = None) -> MoffatFit | None:
    """An elliptical Moffat fitted to a background-free stamp, ``bad`` pixels left out;
    pixels far above a first fit (particle hits) are left out of a second, started
    afresh. None when a fit diverges or gives no sensible width."""
    half = stamp.shape[0] // 2
    yy, xx = np.mgrid[: stamp.shape[0], : stamp.shape[1]].astype(float)
    good = np.ones(stamp.shape, bool) if bad is None else ~bad
    stamp = np.where(good, stamp, 0.0)
    start = (float(stamp.max()), half, half, 3.0, 3.0, 0.0, 0.0)
    weights = good.astype(float)
    fitted = np.array(start, dtype=float)
    for _ in range(2):
        with warnings.catch_warnings():
            # A diverging fit (alpha running off on a faint or blended star) overflows
            # on its way out: that star is not measured, the others are.
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fitted = _levenberg_marquardt(xx, yy, stamp, weights, start)
            except fitting.NonFiniteValueError:
                return None
            model = EllipticalMoffat2D.evaluate(xx, yy, *fitted)
        outliers = stamp - model > 5 * noise + 0.2 * abs(fitted[0])
        if not outliers.any() or weights[outliers].sum() == 0:
            break
        weights = np.where(outliers | ~good, 0.0, 1.0)
        # Start afresh without the outliers: a first fit that chased a hit is a start
        # from which the second diverges (as it did on tests' hit stamp).
        peak = float(np.where(outliers, -np.inf, stamp).max())
        start = (peak, half, half, 3.0, 3.0, 0.0, 0.0)
    if not 0.5 < float(fitted[4]) < 50:  # a power running off: no profile
        return None
    profile = EllipticalMoffat2D(*fitted)
    fit = MoffatFit(
        profile.fwhm,
        profile.ellipticity,
        abs(float(fitted[3])),
        float(fitted[4]),
        profile.major_axis_deg,
        float(fitted[1]),
        float(fitted[2]),
        float(fitted[0]),
    )
    values = dataclasses.astuple(fit)
    if not (all(math.isfinite(v) for v in values) and 0.5 < fit.fwhm_px < stamp.shape[0]):
        return None
    return fit


def _levenberg_marquardt(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, weights: np.ndarray, start: Sequence[float]
) -> np.ndarray:
    """The ``EllipticalMoffat2D`` parameters fitted to ``z`` at ``(x, y)`` as astropy's
    ``LevMarLSQFitter()(model, x, y, z, weights=weights, maxiter=300)`` fits them:
    MINPACK's ``lmdif`` through ``scipy.optimize.leastsq``, forward-difference
    Jacobian, astropy's defaults (``xtol`` 1e-7, ``epsfcn`` the float64 epsilon) and its
    residuals, the same floats in the same order. Without astropy.modeling's
    bookkeeping around each of the 100-odd evaluations: 5.8 ms per star of a standard
    field there, 5.4 ms here, where the model's own evaluation is most of the rest
    (tests/calib/test_photometry_fit.py compares the two).

    Raises
    ------
    astropy.modeling.fitting.NonFiniteValueError
        The residuals were not finite at some step (a diverging fit).
    """

    def residuals(params: np.ndarray) -> np.ndarray:
        value = np.ravel(weights * (EllipticalMoffat2D.evaluate(x, y, *params) - z))
        if not np.all(np.isfinite(value)):
            raise fitting.NonFiniteValueError("the Moffat fit's residuals are not finite")
        return value

    fitted, _ = optimize.leastsq(
        residuals,
        np.array(start, dtype=float),
        col_deriv=True,
        maxfev=300,
        epsfcn=np.finfo(float).eps,  # astropy's DEFAULT_EPS squared
        xtol=1e-7,
    )
    return np.asarray(fitted, dtype=float)


def measure_field(
    image: np.ndarray,
    stars: StarField,
    *,
    exptime_s: float,
    saturated: np.ndarray,
    fwhm_guess_px: float,
    noise_adu: float,
    config: PhotometryConfig | None = None,
    electrons_per_unit: float = 1.0,
) -> FieldPhotometry:
    """Zeropoint and image quality of one reduced detector image (ADU, bias removed,
    flat-fielded; sky still in). ``saturated``: True where the raw was saturated;
    ``stars`` at their positions on this image (see ``find_catalogue_offset``).
    ``electrons_per_unit``: a star's photon noise is that of its flux times this (1:
    counted as if each ADU were one electron; a coadd in other units gives its own).

    Raises
    ------
    UnprocessableDataError
        Fewer than ``min_stars`` usable stars.
    """
    config = config or PhotometryConfig()
    fitted, positions = fit_bright_stars(image, stars, saturated, fwhm_guess_px, noise_adu, config)
    fits_done = list(fitted.values())
    fwhm = float(np.median([f.fwhm_px for f in fits_done]))
    ellipticity = float(np.median([f.ellipticity for f in fits_done]))
    gamma = float(np.median([f.gamma_px for f in fits_done]))
    power = float(np.median([f.alpha for f in fits_done]))
    radius = config.aperture_fwhm * fwhm
    isolated = _isolated(stars, config.isolation_fwhm * fwhm)
    kept = [i for i in positions if isolated[i] and _inside(positions[i], radius + 1, image.shape)]
    if not kept:
        raise UnprocessableDataError("no isolated star lies wholly on the detector")
    centres = [positions[i] for i in kept]
    # The sky is removed only where apertures and rings reach (NaN elsewhere).
    reach = max(radius, config.curve_of_growth_fwhm * fwhm) + 2
    data = sky_near_stars(image, stars, fwhm, config).subtracted_near(image, centres, reach)
    apertures = CircularAperture(centres, r=radius)
    inside = np.atleast_1d(np.asarray(ApertureStats(data, apertures, sum_method="exact").sum))
    snr = inside / np.sqrt(
        np.maximum(inside, 0) / electrons_per_unit + apertures.area * noise_adu**2
    )
    order = np.argsort(-snr)
    chosen = [j for j in order if snr[j] >= config.min_cog_snr][: config.max_cog_stars]
    bright = [kept[j] for j in chosen]
    cores = [float(inside[j]) for j in chosen]
    correction = curve_of_growth(data, stars, bright, cores, positions, fwhm, config)
    if correction is None:
        correction = 1.0 / (1.0 - (1.0 + (radius / gamma) ** 2) ** (1.0 - power))
    flux = inside * correction
    good = (flux > 0) & (snr >= config.min_snr)
    index = np.array(kept)[good]
    mags = stars.mag[index]
    zps = mags + 2.5 * np.log10(flux[good] / exptime_s)
    catalogue_err = stars.mag_err[index] if stars.mag_err is not None else np.zeros(zps.size)
    errors = np.hypot(_MAG_PER_RELATIVE / snr[good], catalogue_err)
    if zps.size < config.min_stars:
        raise UnprocessableDataError(
            f"{zps.size} star(s) with S/N >= {config.min_snr:g}; the zeropoint needs "
            f"{config.min_stars}"
        )
    zp, err, n = weighted_clipped_mean(zps, errors, config.clip_sigma)
    offsets = [np.hypot(positions[i][0] - stars.x[i], positions[i][1] - stars.y[i]) for i in index]
    position_rms = float(np.sqrt(np.mean(np.square(offsets))))
    return FieldPhotometry(
        zp,
        err,
        n,
        fwhm,
        ellipticity,
        -2.5 * math.log10(correction),
        position_rms,
        tuple(int(i) for i in index),
        tuple(float(z) for z in zps),
        tuple(float(x) for x in snr[good]),
    )


def fit_bright_stars(
    image: np.ndarray,
    stars: StarField,
    saturated: np.ndarray,
    fwhm_guess_px: float,
    noise_adu: float,
    config: PhotometryConfig,
    bad: np.ndarray | None = None,
) -> tuple[dict[int, MoffatFit], dict[int, tuple[float, float]]]:
    """Elliptical Moffat fits of the brightest isolated unsaturated stars (up to
    ``config.max_fit_stars``), and every unsaturated star's re-centred position, by
    index into ``stars``. ``bad``: pixels the fits leave out (a star with more than a
    tenth of its stamp's central 3 x 3 FWHM bad is not fitted).

    Raises
    ------
    UnprocessableDataError
        No star could be fitted.
    """
    half = max(8, int(3 * fwhm_guess_px))
    fits_done: dict[int, MoffatFit] = {}
    positions: dict[int, tuple[float, float]] = {}
    # The guess may be far off (seeing varies): stars for the fit are isolated
    # generously, and only where that leaves none (a crowded field, a small detector)
    # by the nominal distance.
    for factor in (2, 1):
        if fits_done:
            break
        isolated = _isolated(stars, factor * config.isolation_fwhm * fwhm_guess_px)
        for i in np.argsort(stars.mag):
            if not stars.is_star[i]:
                continue
            cut = _cutout(image, stars.x[i], stars.y[i], half)
            if cut is None:
                continue
            stamp, x0, y0 = cut
            if saturated[y0 : y0 + stamp.shape[0], x0 : x0 + stamp.shape[1]].any():
                continue
            stamp = stamp - np.median(
                np.concatenate([stamp[0], stamp[-1], stamp[:, 0], stamp[:, -1]])
            )
            cx, cy = centroid_com(np.clip(stamp, 0, None))
            positions[int(i)] = (x0 + cx, y0 + cy)
            bright = stamp.max() > config.min_peak_snr * noise_adu
            stamp_bad = (
                None if bad is None else bad[y0 : y0 + stamp.shape[0], x0 : x0 + stamp.shape[1]]
            )
            if stamp_bad is not None and _core_too_bad(stamp_bad, fwhm_guess_px):
                continue
            if isolated[i] and bright and len(fits_done) < config.max_fit_stars:
                fit = _fit_moffat(stamp, noise_adu, stamp_bad)
                if fit is not None:
                    fits_done[int(i)] = dataclasses.replace(
                        fit, x_px=x0 + fit.x_px, y_px=y0 + fit.y_px
                    )
    if not fits_done:
        raise UnprocessableDataError(
            f"no bright isolated unsaturated star to measure the FWHM on ({len(stars.x)} "
            "catalogue stars on the detector)"
        )
    return fits_done, positions


def _core_too_bad(stamp_bad: np.ndarray, fwhm_px: float) -> bool:
    """More than a tenth of the central 3 x 3 FWHM of a stamp is bad."""
    half, reach = stamp_bad.shape[0] // 2, max(1, round(1.5 * fwhm_px))
    core = stamp_bad[half - reach : half + reach + 1, half - reach : half + reach + 1]
    return bool(core.mean() > 0.1)


def sky_near_stars(
    image: np.ndarray, stars: StarField, fwhm_px: float, config: PhotometryConfig
) -> SkyBackground:
    """Sky under the stars: sigma-clipped medians in boxes, every catalogue source
    masked out to 3 FWHM, 1.5 FWHM more per magnitude it is brighter than the
    faintest (at most 12 FWHM), where its light is far below the sky noise."""
    mask = source_mask(image.shape, stars, fwhm_px, np.ones(stars.x.size, dtype=bool))
    return sky_background(image, mask, config.background_box_px)


def source_mask(
    shape: tuple[int, int], stars: StarField, fwhm_px: float, which: np.ndarray
) -> np.ndarray:
    """True within reach of the selected catalogue sources' light: 3 FWHM, 1.5 FWHM
    more per magnitude a source is brighter than the faintest, at most 12 FWHM."""
    ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    faintest = float(np.max(stars.mag)) if stars.mag.size else 0.0
    radii = fwhm_px * np.clip(3.0 + 1.5 * (faintest - stars.mag), 3.0, 12.0)
    for i in np.flatnonzero(which):
        x, y, r = stars.x[i], stars.y[i], radii[i]
        x1, x2 = max(int(x - r), 0), min(int(x + r) + 2, nx)
        y1, y2 = max(int(y - r), 0), min(int(y + r) + 2, ny)
        if x1 >= x2 or y1 >= y2:
            continue
        yy, xx = np.ogrid[y1:y2, x1:x2]
        mask[y1:y2, x1:x2] |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r
    return mask


def curve_of_growth(
    data: np.ndarray,
    stars: StarField,
    bright: list[int],
    cores: Sequence[float],
    positions: dict[int, tuple[float, float]],
    fwhm_px: float,
    config: PhotometryConfig,
) -> float | None:
    """Light within ``curve_of_growth_fwhm`` over that within ``aperture_fwhm``, summed
    over bright stars (indices into ``stars``; the brightest weigh most), on
    background-free ``data``: rings of 1 FWHM, each its sigma-clipped mean times its
    area, with every other catalogue source masked out (``source_mask``). ``cores``:
    each bright star's light within ``aperture_fwhm`` (exact overlap, as measured for
    its zeropoint). A star with a ring more than three quarters masked or off the
    image is not used; None if none is left."""
    outer = config.curve_of_growth_fwhm * fwhm_px
    edges = np.arange(config.aperture_fwhm, config.curve_of_growth_fwhm + 0.5, 1.0) * fwhm_px
    clip = SigmaClip(sigma=3.0, maxiters=5)
    used, totals = [], []
    for i, core in zip(bright, cores, strict=True):
        centre = positions[i]
        near = np.hypot(stars.x - centre[0], stars.y - centre[1]) < outer + 12 * fwhm_px
        near[i] = False
        mask = source_mask(data.shape, stars, fwhm_px, near)
        light = core
        for r_in, r_out in itertools.pairwise(edges):
            ring = CircularAnnulus(centre, r_in=r_in, r_out=r_out)
            mean, area = ring_statistics(data, mask, ring, clip)
            if not area >= 0.25 * ring.area:
                break
            light += mean * ring.area
        else:
            used.append(core)
            totals.append(light)
    return float(np.sum(totals) / np.sum(used)) if used else None


def ring_statistics(
    data: np.ndarray, mask: np.ndarray, ring: CircularAnnulus, clip: SigmaClip
) -> tuple[float, float]:
    """``ApertureStats(data, ring, mask=mask, sigma_clip=clip)``'s ``mean`` and
    ``sum_aper_area``, the same floats: the mean of the sigma-clipped pixels whose
    centres lie in the ring; the exact area of the ring's unmasked pixels, clipped
    on their own (NaN, NaN where the ring has no pixel left or lies off the image).

    Made as photutils makes them: its aperture masks, astropy's clipping of the
    unmasked values in row order, then every pixel within the last bounds kept, as
    astropy keeps them in a masked array. Without ApertureStats' per-call
    bookkeeping: 1.03 ms per ring of a standard field there, 0.30 ms here
    (tests/calib/test_ring_statistics.py compares the two)."""
    center = ring.to_mask(method="center")
    large, small = center.get_overlap_slices(data.shape)
    if large is None:
        return math.nan, math.nan
    cut = data[large].astype(float)
    bad = ~np.isfinite(cut) | mask[large]
    weights = center.data[small]
    kept = _unclipped(cut, (weights == 0) | bad, clip)
    if not kept.any():
        return math.nan, math.nan
    mean = float(np.mean((cut * weights)[kept]))
    exact = ring.to_mask(method="exact").data[small]
    kept = _unclipped(cut, (exact == 0) | bad, clip)
    return mean, float(np.sum(np.where(kept, exact, 0.0)))


def _unclipped(values: np.ndarray, masked: np.ndarray, clip: SigmaClip) -> np.ndarray:
    """True where ``clip`` keeps a value of ``values`` that ``masked`` does not hide:
    the bounds of its rounds over the unmasked values, the last applied to all."""
    unmasked = values[~masked]
    if unmasked.size == 0:
        return ~masked
    _, low, high = clip(unmasked, masked=False, return_bounds=True)
    with np.errstate(invalid="ignore"):
        return ~masked & (values >= low) & (values <= high)


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


def weighted_clipped_mean(
    values: np.ndarray, errors: np.ndarray, sigma: float
) -> tuple[float, float, int]:
    """Inverse-variance mean of values with errors, leaving out those further than
    ``sigma`` times their own error (or the robust scatter, if larger) from the
    median; its error, scaled up by the square root of the reduced chi-square when
    that exceeds 1; how many were kept.

    >>> values = np.array([1.0, 1.2, 0.8, 1.0, 9.0])
    >>> mean, err, n = weighted_clipped_mean(values, np.full(5, 0.2), 3)
    >>> round(mean, 3), round(err, 3), n
    (1.0, 0.1, 4)
    """
    errors = np.maximum(errors, 1e-4)
    kept = np.ones(values.size, dtype=bool)
    for _ in range(5):
        centre = float(np.median(values[kept]))
        spread = 1.4826 * np.median(np.abs(values[kept] - centre)) if kept.sum() > 2 else 0.0
        scale = np.maximum(errors, spread)
        new = np.abs(values - centre) <= sigma * scale
        if not new.any() or (new == kept).all():
            break
        kept = new
    weights = 1.0 / errors[kept] ** 2
    mean = float(np.sum(weights * values[kept]) / np.sum(weights))
    err = float(1.0 / np.sqrt(np.sum(weights)))
    if kept.sum() > 1:
        chi2 = float(np.sum(weights * (values[kept] - mean) ** 2)) / (kept.sum() - 1)
        err *= math.sqrt(max(chi2, 1.0))
    return mean, err, int(kept.sum())


@dataclass(frozen=True)
class NightExtinction:
    """One extinction coefficient for the night, each detector its own zeropoint above
    the atmosphere."""

    k: float  # mag/airmass
    k_err: float
    zeropoints_x0: dict[str, float]


def fit_extinction(
    detectors: list[str], airmasses: np.ndarray, zeropoints: np.ndarray, errors: np.ndarray
) -> NightExtinction:
    """The night's extinction from zeropoints observed at several airmasses: ZP(X) =
    ZP0(detector) - k X, k common to all detectors (one atmosphere over the field),
    weighted by the zeropoints' errors; k's error scaled up by the square root of the
    reduced chi-square when that exceeds 1.

    >>> fit = fit_extinction(["a", "a", "b", "b"], np.array([1.0, 2.0, 1.0, 2.0]),
    ...                      np.array([24.5, 24.4, 24.0, 23.9]), np.full(4, 0.01))
    >>> round(fit.k, 6), {d: round(z, 6) for d, z in fit.zeropoints_x0.items()}
    (0.1, {'a': 24.6, 'b': 24.1})
    """
    names = sorted(set(detectors))
    if np.ptp(airmasses) < 0.1:
        raise UnprocessableDataError(
            "standard fields span less than 0.1 airmass: the extinction is not measurable"
        )
    column = {name: j for j, name in enumerate(names)}
    design = np.zeros((len(detectors), len(names) + 1))
    for row, name in enumerate(detectors):
        design[row, column[name]] = 1.0
    design[:, -1] = -airmasses
    weights = 1.0 / np.maximum(errors, 1e-4)
    solution, *_ = np.linalg.lstsq(design * weights[:, None], zeropoints * weights, rcond=None)
    covariance = np.linalg.inv((design * weights[:, None]).T @ (design * weights[:, None]))
    free = len(detectors) - len(names) - 1
    residuals = (zeropoints - design @ solution) * weights
    chi2 = float(residuals @ residuals) / free if free > 0 else 1.0
    k_err = float(np.sqrt(covariance[-1, -1] * max(chi2, 1.0)))
    return NightExtinction(
        float(solution[-1]), k_err, {name: float(solution[column[name]]) for name in names}
    )
