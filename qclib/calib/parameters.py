"""Recipe parameters: what a QC scientist may tune per instrument (``[recipes.<name>]``
of its TOML), with the defaults the recipes were validated with.

Plain frozen dataclasses, imported without numpy so that an instrument's configuration
can be checked against them cheaply (``qclib.recipes.registry``). How many raw frames
a block needs is not a parameter: it is the plan's ``[association.min_frames]``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BiasConfig:
    """Parameters of the master bias recipe."""

    hot_sigma: float = 5.0


@dataclass(frozen=True)
class DarkConfig:
    """Parameters of the master dark recipes."""

    hot_sigma: float = 6.0
    particle_sigma: float = 7.0
    clip_sigma: float = 3.0


@dataclass(frozen=True)
class FlatConfig:
    """Parameters of the flat recipes."""

    cold_sigma: float = 6.0
    cold_max_response: float = 0.9
    smooth_box_px: int = 64
    """Block size of the large-scale structure (QC.FLAT.STRUCT, PRNU, cold pixels)."""
    illumination_box_px: int = 8
    """Block size of the twilight / dome illumination correction: fine enough to follow
    a dome screen's ripple down to periods of about 48 pixels (64-pixel blocks left
    0.05 % rms of it in the master flat), coarse enough that its noise (about 0.07 %
    per block for 6 dome and 5 twilight flats of 10,000 ADU) stays below the dome
    flat's own 0.3 % per pixel."""


@dataclass(frozen=True)
class PhotometryConfig:
    """Parameters of the zeropoint recipe."""

    aperture_fwhm: float = 4.0
    curve_of_growth_fwhm: float = 10.0  # the aperture correction's outer radius
    isolation_fwhm: float = 6.0
    min_snr: float = 20.0
    min_cog_snr: float = 200.0  # stars for the curve of growth
    max_cog_stars: int = 20
    min_peak_snr: float = 8.0  # peak over sky noise for a star's FWHM fit
    max_fit_stars: int = 25
    min_stars: int = 1
    clip_sigma: float = 3.0
    background_box_px: int = 64
    max_wcs_offset_arcsec: float = 10.0  # search radius for the stars around the WCS


@dataclass(frozen=True)
class NoParameters:
    """A recipe with nothing to tune."""


@dataclass(frozen=True)
class LinearityParameters:
    """Parameters of the linearity recipe (``qclib.calib.linearity``)."""

    order: int = 3
    """Polynomial order of the non-linearity (no constant term)."""
    reference_adu: float = 10_000.0
    """Measured level at which QC.LINEARITY is quoted (ESO's VIRCAM: 10,000 ADU)."""


@dataclass(frozen=True)
class ScienceConfig:
    """Parameters of the science imaging recipe (``qclib.calib.science``,
    ``qclib.calib.coadd``, ``qclib.calib.sources``)."""

    cosmic_sigclip: float = 4.5
    """L.A.Cosmic's detection limit (sigma of the Laplacian); astroscrappy's default."""
    cosmic_sigfrac: float = 0.3
    cosmic_objlim: float = 5.0
    """Contrast a hit must have over a star's core; astroscrappy's default."""
    cosmic_niter: int = 1
    """L.A.Cosmic iterations. On a full OmegaCAM CCD of a 360 s r-band exposure one
    iteration flagged 1,063 pixels in 5.0 s, two 1,067 in 7.9 s (one core); the
    default four take longer still."""
    sky_box_px: int = 64
    max_wcs_offset_arcsec: float = 10.0
    """Search radius for the stars around the raw's WCS (the pointing error)."""
    max_psf_stars: int = 60
    """Bright isolated stars fitted per detector and exposure (PSF and astrometry)."""
    psf_min_peak_snr: float = 15.0
    """Stars whose fitted peak is at least this many times the sky noise give the PSF
    (FWHM, ellipticity, angle); fainter fits still serve the astrometry. On a test
    field, fits of peaks 8-15 sigma made the median FWHM 4.7 % too small; from 15 sigma
    it was within 1 %."""
    isolation_fwhm: float = 3.0
    """A star is fitted when no source less than 5 mag fainter lies within twice this
    many FWHM (of the seeing guess, 1 arcsec): beyond the fitted stamp."""
    min_astrometric_stars: int = 6
    """Fewer fitted stars: the raw's WCS is only shifted onto them, not fitted."""
    photzp: float = 30.0
    """Magnitude of one unit of the coadd (PHOTZP): units of 10^(-0.4 (m - 30)) per s."""
    detect_sigma: float = 1.5
    """Coadd source detection: pixels of the image smoothed by the PSF this many times
    one unsmoothed pixel's noise above the sky (SExtractor's DETECT_THRESH)."""
    detect_npixels: int = 5
    """Connected pixels a detection needs."""
    sky_flat_min_frames: int = 3
    """A sky flat (and fringe frame) is made from a detector's dithered frames when the
    block has at least this many (``qclib.calib.dithered_sky``); fewer: none."""
    sky_flat_box_px: int = 256
    """Boxes of the sky flat's large-scale background, and of the background the
    sources are found above."""
    source_sigma: float = 4.0
    """Pixels this many sigma above the background are sources (grown by
    ``source_grow_px``), left out of the sky flat and fringe frame."""
    source_grow_px: int = 4
    fringe_filters: tuple[str, ...] = ()
    """Filters whose night sky makes fringes: a fringe frame is made and subtracted."""
    fringe_smooth_px: float = 1.5
    """Gaussian sigma smoothing the fringe frame: at 1.5 pixels a 35-pixel fringe keeps
    96 % of its amplitude, the noise falls fivefold."""
    limit_sigma: float = 5.0
    """The limiting magnitude is that of a point source this many sigma above the
    noise of empty apertures."""
