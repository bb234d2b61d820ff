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
