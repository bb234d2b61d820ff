"""What a science coadd shows: its sources, PSF, astrometric and photometric residuals
against the reference catalogue, and its limiting magnitude. Pure.

- **Sources**: photutils' ``SourceFinder`` (segmentation with deblending) on the coadd
  smoothed by a Gaussian of the PSF's FWHM, pixels ``detect_sigma`` times the smoothed
  image's own noise above the sky, at least ``detect_npixels`` connected; photutils'
  ``SourceCatalog`` gives centroids, sky positions, second-moment FWHM, ellipticity
  and orientation, and the Kron flux (2.5 Kron radii), put on the total light's scale
  by the field's bright stars (``MAG``; 1-FWHM apertures scattered by 0.15 mag: a
  coadd's PSF changes where different exposures cover it).
- **PSF**: elliptical Moffats fitted to the bright isolated reference stars
  (``qclib.calib.photometry.fit_bright_stars``): FWHM, 1 - b/a and major axis of each
  whose peak is ``psf_min_peak_snr`` times the noise (all fitted, if none is).
- **Astrometry**: the distance of each fitted star's centre from where the coadd's WCS
  puts its catalogue position.
- **Photometry**: ``qclib.calib.photometry.measure_field`` on the coadd (4-FWHM
  apertures, the curve of growth's aperture correction, exposure 1 s: the coadd is per
  second): each star's magnitude ``photzp - 2.5 log10(total flux)`` against its
  reference magnitude (colour term applied), for the stars no neighbour's light
  reaches (``_uncontaminated``: a 16.9 mag star's halo 27 pixels away made a 21.4 mag
  star 0.3 mag too bright).
- **Limiting magnitude**: ``limit_sigma`` times the spread (1.4826 MAD) of the sums of
  1-FWHM-radius apertures dropped at random (seeded) on fully covered sky away from
  every detected source, corrected to total light like ``MAG``: the empty apertures see
  the noise the interpolation correlates, which the error map does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord

from qclib.calib.coadd import Coadd
from qclib.calib.parameters import PhotometryConfig, ScienceConfig
from qclib.calib.photometry import (
    FieldPhotometry,
    MoffatFit,
    StarField,
    fit_bright_stars,
    measure_field,
)
from qclib.calib.science import ReferenceStars, stars_on_detector
from qclib.calib.stats import clipped_stats
from qclib.errors import UnprocessableDataError

#: Empty apertures for the limiting magnitude.
_EMPTY_APERTURES = 2000


@dataclass(frozen=True)
class SourceTable:
    """The coadd's detected sources, one array per column (``COLUMNS``)."""

    columns: dict[str, np.ndarray]

    COLUMNS = (
        ("X", "pixel"),
        ("Y", "pixel"),
        ("RA", "deg"),
        ("DEC", "deg"),
        ("FLUX", "1/s"),
        ("FLUX_ERR", "1/s"),
        ("MAG", "mag"),
        ("MAG_ERR", "mag"),
        ("FWHM", "arcsec"),
        ("ELLIPTICITY", ""),
        ("THETA", "deg"),
        ("AREA", "pixel"),
        ("REF_MAG", "mag"),
        ("FLAGS", ""),
    )

    def __len__(self) -> int:
        return len(self.columns["X"])


@dataclass(frozen=True)
class CoaddQuality:
    """What was measured on a coadd."""

    sources: SourceTable
    psf: tuple[MoffatFit, ...]  # centres in the coadd's pixels
    astrometric_xy: np.ndarray  # (n, 2): the fitted stars' centres (coadd pixels)
    astrometric_offsets_arcsec: np.ndarray  # (n, 2): centre minus catalogue, along x, y
    photometry: FieldPhotometry
    photometric_xy: np.ndarray  # (m, 2): the uncontaminated measured stars' positions
    star_mags: np.ndarray  # their measured total magnitudes
    reference_mags: np.ndarray  # their reference magnitudes
    limiting_mag: float
    pixel_scale_arcsec: float

    @property
    def astrometric_residuals_arcsec(self) -> np.ndarray:
        return (
            np.hypot(*self.astrometric_offsets_arcsec.T)
            if self.astrometric_offsets_arcsec.size
            else np.empty(0)
        )

    @property
    def photometric_residuals_mag(self) -> np.ndarray:
        return self.star_mags - self.reference_mags


def measure_coadd(
    coadd: Coadd,
    reference: ReferenceStars,
    *,
    photzp: float,
    fwhm_guess_px: float,
    config: ScienceConfig,
    seed: int,
    electrons_per_unit: float,
) -> CoaddQuality:
    """Measure a coadd (see the module). ``seed``: of the empty apertures' positions;
    ``electrons_per_unit``: photo-electrons behind one unit of the coadd, the stars'
    photon noise.

    Raises
    ------
    UnprocessableDataError
        No reference star could be fitted or measured on the coadd.
    """
    image, wcs = coadd.image, coadd.grid.wcs
    scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600)
    bad = ~np.isfinite(image) | (coadd.coverage == 0)
    clean = np.where(bad, np.float32(0), image)
    noise = float(np.nanmedian(coadd.error[~bad])) if (~bad).any() else math.nan
    stars, index = stars_on_detector(reference, wcs, image.shape, 0.0)
    settings = PhotometryConfig(
        max_fit_stars=config.max_psf_stars, isolation_fwhm=config.isolation_fwhm
    )
    fits_, _ = fit_bright_stars(clean, stars, bad, fwhm_guess_px, noise, settings)
    fitted = np.array(sorted(fits_), dtype=int)
    world = SkyCoord(reference.ra_deg[index], reference.dec_deg[index], unit="deg")
    px, py = wcs.world_to_pixel(world[fitted])
    centres = np.array([(fits_[i].x_px, fits_[i].y_px) for i in fitted]).reshape(-1, 2)
    offsets = (centres - np.c_[px, py]) * scale
    psf = tuple(
        fits_[i] for i in fitted if fits_[i].peak >= config.psf_min_peak_snr * noise
    ) or tuple(fits_[i] for i in fitted)
    fwhm_px = float(np.median([f.fwhm_px for f in psf]))
    photometry = measure_field(
        clean,
        stars,
        exptime_s=1.0,
        saturated=bad,
        fwhm_guess_px=fwhm_px,
        noise_adu=noise,
        config=PhotometryConfig(),
        electrons_per_unit=electrons_per_unit,
    )
    measured = np.array(photometry.stars, dtype=int)
    clear = _uncontaminated(stars, measured, fwhm_px)
    photometric_xy = np.c_[stars.x[measured][clear], stars.y[measured][clear]]
    reference_mags = stars.mag[measured][clear]
    star_mags = reference_mags - np.array(photometry.star_zeropoints)[clear] + photzp
    segments, smoothed = _segment(clean, coadd.error, bad, fwhm_px, config)
    to_total = _to_total(clean, psf, fwhm_px, photometry.aperture_correction_mag)
    sources = _source_table(clean, coadd.error, bad, segments, wcs, scale, smoothed, fwhm_px)
    sources = _on_total_scale(sources, stars, photometry, fwhm_px, photzp)
    sources = _with_reference(sources, reference, scale, fwhm_px)
    empty = _empty_aperture_noise(clean, coadd.coverage, segments, fwhm_px, seed)
    limit = photzp - 2.5 * math.log10(config.limit_sigma * empty * to_total)
    return CoaddQuality(
        sources,
        psf,
        centres,
        offsets,
        photometry,
        photometric_xy,
        star_mags,
        reference_mags,
        limit,
        scale,
    )


def _uncontaminated(stars: StarField, index: np.ndarray, fwhm_px: float) -> np.ndarray:
    """Which of the stars ``index`` no other source's light reaches in its aperture: a
    neighbour counts within 6 FWHM, 1.5 FWHM more per magnitude it is brighter (at
    most 12 FWHM: a bright star's halo), unless it is more than 5 mag fainter."""
    keep = np.ones(index.size, bool)
    for k, i in enumerate(index):
        distance = np.hypot(stars.x - stars.x[i], stars.y - stars.y[i])
        brighter = stars.mag[i] - stars.mag
        reach = fwhm_px * np.clip(6.0 + 1.5 * brighter, 6.0, 12.0)
        near = (distance < reach) & (brighter > -5.0)
        near[i] = False
        keep[k] = not near.any()
    return keep


def _segment(  # type: ignore[no-untyped-def]
    clean: np.ndarray, error: np.ndarray, bad: np.ndarray, fwhm_px: float, config: ScienceConfig
):
    """The segmentation image of the sources (None when there is none), and the
    smoothed image it was found on. As SExtractor
    does, the image smoothed by the PSF is compared with ``detect_sigma`` times the
    noise of one unsmoothed pixel (the sky's clipped rms, following the error map
    where coverage varies)."""
    from photutils.segmentation import SourceFinder
    from scipy import ndimage

    smoothed = ndimage.gaussian_filter(clean, fwhm_px / 2.3548)
    noise = clipped_stats(np.where(bad, np.float32(np.nan), clean), sigma=3.0).std
    relative = error / np.nanmedian(error[~bad])
    finder = SourceFinder(n_pixels=config.detect_npixels, progress_bar=False)
    threshold = np.where(bad, np.inf, config.detect_sigma * noise * relative)
    return finder(smoothed, threshold), smoothed


def _to_total(
    clean: np.ndarray, psf: tuple[MoffatFit, ...], fwhm_px: float, apcor_mag: float
) -> float:
    """Total light over the light within 1 FWHM of a point source: the median ratio of
    4-FWHM to 1-FWHM apertures on the fitted stars, times the 4-FWHM aperture
    correction."""
    from photutils.aperture import CircularAperture, aperture_photometry

    centres = [(f.x_px, f.y_px) for f in psf]
    inner = aperture_photometry(clean, CircularAperture(centres, r=fwhm_px))["aperture_sum"]
    outer = aperture_photometry(clean, CircularAperture(centres, r=4 * fwhm_px))["aperture_sum"]
    ratio = np.asarray(outer, float) / np.asarray(inner, float)
    ratio = ratio[np.isfinite(ratio) & (ratio > 1)]
    if ratio.size == 0:
        raise UnprocessableDataError("no fitted star gives the coadd's aperture correction")
    return float(np.median(ratio)) * 10 ** (-0.4 * apcor_mag)


def _source_table(  # type: ignore[no-untyped-def]
    clean, error, bad, segments, wcs, scale: float, smoothed, fwhm_px: float
) -> SourceTable:
    """Detected sources: photutils' catalogue, Kron fluxes (not yet on the total
    light's scale: ``_on_total_scale``)."""
    from photutils.segmentation import SourceCatalog

    names = [name for name, _ in SourceTable.COLUMNS]
    if segments is None:
        return SourceTable({name: np.empty(0) for name in names})
    catalogue = SourceCatalog(
        clean,
        segments,
        convolved_data=smoothed,
        error=np.where(bad, 0, error),
        mask=bad,
        wcs=wcs,
    )
    x = np.asarray(catalogue.x_centroid, float)
    y = np.asarray(catalogue.y_centroid, float)
    finite = np.isfinite(x) & np.isfinite(y)
    ra, dec = wcs.pixel_to_world_values(np.where(finite, x, 0), np.where(finite, y, 0))
    columns = {
        "X": x,
        "Y": y,
        "RA": np.where(finite, ra, np.nan),
        "DEC": np.where(finite, dec, np.nan),
        "FLUX": np.asarray(catalogue.kron_flux, float),
        "FLUX_ERR": np.asarray(catalogue.kron_flux_err, float),
        "MAG": np.full(x.size, np.nan),
        "MAG_ERR": np.full(x.size, np.nan),
        "FWHM": np.asarray(catalogue.fwhm.value, float) * scale,
        "ELLIPTICITY": np.asarray(catalogue.ellipticity.value, float),
        "THETA": np.asarray(catalogue.orientation.value, float) % 180.0,
        "AREA": np.asarray(catalogue.area.value, float),
        "REF_MAG": np.full(x.size, np.nan),
    }
    columns["FLAGS"] = _flags(x, y, finite, bad, fwhm_px)
    return SourceTable({k: np.asarray(v)[finite] for k, v in columns.items()})


#: FLAGS bit: a pixel within 2 FWHM of the source is bad or not covered (its flux and
#: centroid may be off: on a full-size test coadd the only star more than 0.05 mag
#: off the truth among 116 with S/N >= 50 was such a one, 0.42 mag).
FLAG_NEAR_BAD = 1


def _flags(
    x: np.ndarray, y: np.ndarray, finite: np.ndarray, bad: np.ndarray, fwhm_px: float
) -> np.ndarray:
    """Each source's FLAGS (``FLAG_NEAR_BAD``)."""
    from scipy import ndimage

    reach = max(1, math.ceil(2 * fwhm_px))
    near_bad = ndimage.maximum_filter(bad.astype(np.uint8), size=2 * reach + 1) > 0
    ny, nx = bad.shape
    flags = np.zeros(x.size)
    ix = np.clip(np.where(finite, x, 0).round().astype(int), 0, nx - 1)
    iy = np.clip(np.where(finite, y, 0).round().astype(int), 0, ny - 1)
    flags[near_bad[iy, ix]] = FLAG_NEAR_BAD
    return flags


def _on_total_scale(
    sources: SourceTable,
    stars: StarField,
    photometry: FieldPhotometry,
    fwhm_px: float,
    photzp: float,
) -> SourceTable:
    """Kron fluxes scaled to a point source's total light: by the median ratio, over
    the stars measured in 4-FWHM apertures with the curve of growth
    (``measure_field``), of their total flux to the Kron flux of the source detected
    within 1 FWHM of them (a Kron aperture of 2.5 Kron radii misses a few per cent of a
    star's light); magnitudes on ``photzp``."""
    columns = dict(sources.columns)
    ratios: list[float] = []
    for i, zp in zip(photometry.stars, photometry.star_zeropoints, strict=True):
        distance = np.hypot(columns["X"] - stars.x[i], columns["Y"] - stars.y[i])
        if distance.size and distance.min() <= fwhm_px:
            kron = columns["FLUX"][int(np.argmin(distance))]
            if kron > 0:
                ratios.append(10 ** (0.4 * (zp - stars.mag[i])) / kron)
    factor = float(np.median(ratios)) if ratios else 1.0
    flux, flux_err = columns["FLUX"] * factor, columns["FLUX_ERR"] * factor
    with np.errstate(divide="ignore", invalid="ignore"):
        columns["MAG"] = np.where(flux > 0, photzp - 2.5 * np.log10(flux), np.nan)
        columns["MAG_ERR"] = np.where(flux > 0, 1.0857 * flux_err / flux, np.nan)
    columns["FLUX"], columns["FLUX_ERR"] = flux, flux_err
    return SourceTable(columns)


def _with_reference(
    sources: SourceTable, reference: ReferenceStars, scale: float, fwhm_px: float
) -> SourceTable:
    """The reference magnitude of each source within 1 FWHM of a catalogue source."""
    columns = dict(sources.columns)
    if len(sources) and reference.ra_deg.size:
        found = SkyCoord(columns["RA"], columns["DEC"], unit="deg")
        listed = SkyCoord(reference.ra_deg, reference.dec_deg, unit="deg")
        nearest, separation, _ = found.match_to_catalog_sky(listed)
        close = separation.arcsec <= fwhm_px * scale
        columns["REF_MAG"] = np.where(close, reference.mag[nearest], np.nan)
    return SourceTable(columns)


def _empty_aperture_noise(
    clean: np.ndarray,
    coverage: np.ndarray,
    segments,
    fwhm_px: float,
    seed: int,  # type: ignore[no-untyped-def]
) -> float:
    """1.4826 MAD of 1-FWHM-radius aperture sums on fully covered sky away from
    sources (the segments grown by the aperture radius)."""
    from photutils.aperture import CircularAperture, aperture_photometry
    from scipy import ndimage

    radius = fwhm_px
    full = coverage >= max(1, int(np.percentile(coverage[coverage > 0], 50)))
    occupied = np.zeros(clean.shape, bool) if segments is None else segments.data > 0
    reach = math.ceil(radius) + 1
    free = full & ~ndimage.binary_dilation(occupied, iterations=reach)
    free = ndimage.binary_erosion(free, iterations=reach)
    ys, xs = np.nonzero(free)
    if xs.size == 0:
        raise UnprocessableDataError("no empty sky on the coadd for the limiting magnitude")
    rng = np.random.default_rng(seed)
    pick = rng.choice(xs.size, size=min(_EMPTY_APERTURES, xs.size), replace=False)
    apertures = CircularAperture(np.c_[xs[pick], ys[pick]].astype(float), r=radius)
    sums = np.asarray(aperture_photometry(clean, apertures)["aperture_sum"], float)
    return float(1.4826 * np.median(np.abs(sums - np.median(sums))))
