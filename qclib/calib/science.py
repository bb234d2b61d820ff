"""One detector of one science exposure, reduced for coadding. Pure.

The steps, in order:

1. the instrument's signature: the frame's level (overscan, or an infrared array's
   reference pixels per readout channel), the master bias or dark, the master flat;
   pixels the flat flags (hot, cold, no data) and saturated pixels are bad; where the
   block has dithered frames enough, the sky flat and fringes they show
   (``qclib.calib.dithered_sky``, done by the recipe over all of them);
2. the field's reference catalogue placed with the raw's WCS, shifted onto the stars
   the image shows (``qclib.calib.astrometry``: the telescope's pointing error);
3. cosmic rays: astroscrappy's L.A.Cosmic (van Dokkum 2001), with the detector's gain
   and read noise and the catalogue's stars as objects it must not touch;
4. the sky: photutils' ``Background2D`` (sigma-clipped box medians, bicubic spline;
   ``qclib.calib.sky_background``) with every catalogue source and every pixel more
   than 3 sigma above a first estimate masked, subtracted;
5. the astrometric solution: elliptical Moffat centres of the bright isolated stars
   (``qclib.calib.photometry.fit_bright_stars``) against their catalogue positions,
   a TAN WCS fitted to them (astropy's ``fit_wcs_from_points``, 0-based pixels: see
   docs/references/science_products.md 5.1), with its residuals;
6. the same fits of the brighter stars (``psf_min_peak_snr``) give the PSF: FWHM,
   1 - b/a and major-axis angle of each;
7. the photometric scale: the image divided by the exposure time and scaled so that
   ``photzp`` is the magnitude of one unit (``zeropoint_mag``: the magnitude of 1
   ADU/s on this detector at this airmass).

The weight a coadd gives each pixel is the inverse of its background variance (sky
photon noise and read noise, through the flat), zero where the pixel is bad: a source's
own photon noise is left out, so that a star does not weigh less where it is brighter
(SWarp's convention).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import fit_wcs_from_points

from qclib.calib.astrometry import find_catalogue_offset
from qclib.calib.parameters import PhotometryConfig, ScienceConfig
from qclib.calib.photometry import MoffatFit, StarField, fit_bright_stars, source_mask
from qclib.calib.readout import reference_levels
from qclib.calib.sky_background import sky_background
from qclib.calib.stats import clipped_stats
from qclib.config.instrument import Geometry, parse_section


@dataclass(frozen=True)
class DetectorCalibration:
    """What removes a detector's signature: the master bias (or dark) and flat of its
    data section, the flat's DQ, and its noise (conversion factor, read noise)."""

    bias: np.ndarray
    flat: np.ndarray
    flat_dq: np.ndarray
    gain_e_per_adu: float
    read_noise_adu: float
    saturation_adu: float


@dataclass(frozen=True)
class ReferenceStars:
    """The field's reference catalogue (world positions, reference magnitudes with the
    instrument's colour term, which sources are point-like)."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    mag: np.ndarray
    is_star: np.ndarray
    mag_err: np.ndarray


@dataclass(frozen=True)
class Astrometry:
    """A detector's fitted WCS (0-based pixels of its data section) and how well it fits."""

    wcs: WCS
    residuals_arcsec: np.ndarray  # one per star used
    shift_arcsec: float  # how far the stars were from where the raw's WCS put them
    fitted: bool  # False: too few stars, the raw's WCS only shifted onto them


@dataclass(frozen=True)
class FrameQuality:
    """What was measured on one detector of one exposure (kept once its pixels are
    coadded)."""

    astrometry: Astrometry
    stars: tuple[MoffatFit, ...]  # the PSF: the bright fitted stars (data pixels)
    sky_adu: float  # mean sky level before subtraction, ADU in the exposure
    sky_noise_adu: float
    cosmic_pixels: int
    scale: float  # data = image_adu * scale


@dataclass(frozen=True)
class ReducedScience:
    """One detector of one exposure, ready to coadd: sky-subtracted flux in the units
    ``photzp`` calibrates (per second), its background variance (inf where bad)."""

    data: np.ndarray  # float32
    variance: np.ndarray  # float32
    quality: FrameQuality


def remove_signature(
    frame: np.ndarray, geometry: Geometry, calib: DetectorCalibration
) -> tuple[np.ndarray, np.ndarray]:
    """The data section less its level and the master bias, divided by the flat
    (float32 ADU, sky in); and its bad pixels (flagged in the flat's DQ, saturated in
    the raw, or without a usable flat)."""
    rows, cols = parse_section(geometry.data_section)
    section = frame[rows, cols]
    levels = reference_levels(frame, geometry)[None, :]
    usable = np.isfinite(calib.flat) & (calib.flat > 0.05)
    with np.errstate(divide="ignore", invalid="ignore"):
        image = ((section - levels - calib.bias) / np.where(usable, calib.flat, 1.0)).astype(
            np.float32
        )
    bad = (calib.flat_dq != 0) | ~usable | (section >= calib.saturation_adu)
    return image, bad


def stars_on_detector(
    reference: ReferenceStars, wcs: WCS, shape: tuple[int, int], margin_px: float
) -> tuple[StarField, np.ndarray]:
    """The catalogue sources a WCS of a detector's data pixels puts on it (within
    ``margin_px`` of its edges), and their indices into the catalogue."""
    x, y = wcs.all_world2pix(reference.ra_deg, reference.dec_deg, 0)
    near = (x > -margin_px) & (x < shape[1] + margin_px) & (y > -margin_px)
    near &= y < shape[0] + margin_px
    index = np.flatnonzero(near)
    field = StarField(
        x[index], y[index], reference.mag[index], reference.is_star[index], reference.mag_err[index]
    )
    return field, index


def find_cosmic_rays(
    image: np.ndarray,
    bad: np.ndarray,
    calib: DetectorCalibration,
    config: ScienceConfig,
) -> np.ndarray:
    """Pixels hit by cosmic rays (True), by astroscrappy's L.A.Cosmic on the image
    with its sky (which its noise model needs), bad pixels left out."""
    import astroscrappy  # imported here: a recipe that coadds nothing never loads it

    mask, _ = astroscrappy.detect_cosmics(
        np.where(bad, np.float32(0), image),
        inmask=bad,
        sigclip=config.cosmic_sigclip,
        sigfrac=config.cosmic_sigfrac,
        objlim=config.cosmic_objlim,
        gain=calib.gain_e_per_adu,
        readnoise=calib.read_noise_adu * calib.gain_e_per_adu,
        satlevel=calib.saturation_adu * calib.gain_e_per_adu,
        niter=config.cosmic_niter,
        sepmed=True,
        cleantype="meanmask",
        fsmode="median",
    )
    return np.asarray(mask, dtype=bool) & ~bad


def subtract_sky(
    image: np.ndarray,
    bad: np.ndarray,
    stars: StarField,
    fwhm_px: float,
    config: ScienceConfig,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The image less its sky, the sky map, and the sky's noise (ADU). The sky is
    measured twice: with the catalogue's sources and bad pixels masked, then also
    without every pixel more than 3 sigma above that first map (sources the catalogue
    lacks: faint galaxies, satellites' trails)."""
    masked = bad | source_mask(image.shape, stars, fwhm_px, np.ones(stars.x.size, bool))
    ny, nx = image.shape
    whole = (slice(0, ny), slice(0, nx))
    first = sky_background(image, masked, config.sky_box_px).at(*whole)
    residual = image - first
    noise = clipped_stats(np.where(masked, np.float32(np.nan), residual), sigma=3.0).std
    masked = masked | _grow(residual > 3.0 * noise, 2)
    sky = sky_background(image, masked, config.sky_box_px).at(*whole).astype(np.float32)
    subtracted = image - sky
    noise = clipped_stats(np.where(masked, np.float32(np.nan), subtracted), sigma=3.0).std
    return subtracted, sky, float(noise)


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` grown by ``pixels`` in each direction (a square)."""
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=pixels)


def solve_astrometry(
    fits_: dict[int, MoffatFit],
    stars: StarField,
    world: SkyCoord,
    shifted: WCS,
    *,
    shift_arcsec: float,
    min_stars: int,
) -> Astrometry:
    """A TAN WCS fitted to the fitted stars' centres and their catalogue positions
    (``world``, by index into ``stars``), starting from the raw's WCS shifted onto
    them (``shifted``); where fewer than ``min_stars`` stars were fitted, that
    shifted WCS, with its residuals."""
    index = np.array(sorted(fits_), dtype=int)
    x = np.array([fits_[i].x_px for i in index])
    y = np.array([fits_[i].y_px for i in index])
    coords = world[index]
    fitted = index.size >= min_stars
    wcs = shifted
    if fitted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = fit_wcs_from_points((x, y), coords, proj_point="center", projection=shifted)
    px, py = wcs.world_to_pixel(coords)
    scale = _pixel_scale_arcsec(wcs)
    residuals = np.hypot(px - x, py - y) * scale
    return Astrometry(wcs, residuals, shift_arcsec, fitted)


def _pixel_scale_arcsec(wcs: WCS) -> float:
    """The geometric-mean pixel scale of a celestial WCS (arcsec)."""
    return float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600)


def shifted_wcs(wcs: WCS, dx_px: float, dy_px: float) -> WCS:
    """A WCS whose pixel (x + dx, y + dy) is ``wcs``'s pixel (x, y)."""
    out = wcs.deepcopy()
    out.wcs.crpix = [out.wcs.crpix[0] + dx_px, out.wcs.crpix[1] + dy_px]
    return out


def reduce_science(
    frame: np.ndarray,
    geometry: Geometry,
    calib: DetectorCalibration,
    raw_wcs: WCS,
    reference: ReferenceStars,
    *,
    exptime_s: float,
    zeropoint_mag: float,
    photzp: float,
    pixel_scale_arcsec: float,
    config: ScienceConfig,
    signature: tuple[np.ndarray, np.ndarray] | None = None,
) -> ReducedScience:
    """One detector of one science exposure, reduced (see the module).

    ``raw_wcs``: the raw's WCS of the data section's 0-based pixels. ``zeropoint_mag``:
    the magnitude of 1 ADU/s on this detector at the exposure's airmass (NaN: not
    calibrated, the data stay in ADU/s). ``signature``: the frame's image and bad
    pixels from ``remove_signature``, corrected further (a sky flat, fringes:
    ``qclib.calib.dithered_sky``); made here when None.

    Raises
    ------
    UnprocessableDataError
        No catalogue star could be found on the image (no shift agrees), or none fitted.
    """
    image, bad = signature if signature is not None else remove_signature(frame, geometry, calib)
    max_offset_px = config.max_wcs_offset_arcsec / pixel_scale_arcsec
    stars, index = stars_on_detector(reference, raw_wcs, image.shape, 50 + max_offset_px)
    seeing_guess_px = 1.0 / pixel_scale_arcsec
    sky_first = clipped_stats(np.where(bad, np.float32(np.nan), image), sigma=3.0, maxiters=5)
    offset = find_catalogue_offset(
        np.where(bad, np.float32(np.nan), image),
        stars.x,
        stars.y,
        stars.mag,
        fwhm_px=seeing_guess_px,
        max_offset_px=max_offset_px,
        sky=sky_first,
    )
    stars = stars.shifted(offset.dx_px, offset.dy_px)
    cosmic = find_cosmic_rays(image, bad, calib, config)
    bad = bad | cosmic
    subtracted, sky, noise = subtract_sky(image, bad, stars, seeing_guess_px, config)
    clean = np.where(bad, np.float32(0), subtracted)
    photometry = PhotometryConfig(
        max_fit_stars=config.max_psf_stars, isolation_fwhm=config.isolation_fwhm
    )
    rows, cols = parse_section(geometry.data_section)
    saturated = frame[rows, cols] >= calib.saturation_adu
    fits_, _ = fit_bright_stars(
        clean, stars, saturated, seeing_guess_px, noise, photometry, bad=bad
    )
    world = SkyCoord(reference.ra_deg[index], reference.dec_deg[index], unit="deg")
    astrometry = solve_astrometry(
        fits_,
        stars,
        world,
        shifted_wcs(raw_wcs, offset.dx_px, offset.dy_px),
        shift_arcsec=float(np.hypot(offset.dx_px, offset.dy_px)) * pixel_scale_arcsec,
        min_stars=config.min_astrometric_stars,
    )
    scale = 1.0 / exptime_s
    if math.isfinite(zeropoint_mag):
        scale *= 10 ** (0.4 * (photzp - zeropoint_mag))
    # Background variance of the flat-fielded image: sky electrons and read noise of
    # the raw pixel, through the flat.
    flat = np.where(np.isfinite(calib.flat) & (calib.flat > 0.05), calib.flat, 1.0)
    raw_variance = np.maximum(sky, 0) * flat / calib.gain_e_per_adu + calib.read_noise_adu**2
    variance = (raw_variance / flat**2) * scale**2
    data = (subtracted * np.float32(scale)).astype(np.float32)
    data[bad] = np.nan
    variance = np.where(bad, np.inf, variance).astype(np.float32)
    psf = tuple(fits_[i] for i in sorted(fits_) if fits_[i].peak >= config.psf_min_peak_snr * noise)
    return ReducedScience(
        data,
        variance,
        FrameQuality(astrometry, psf, float(np.mean(sky)), noise, int(cosmic.sum()), scale),
    )
