"""ESO's Phase 3 keywords of a science image: what the ESO archive and a PI's tools read
to know a product without opening its pixels (ESO Science Data Products Standard,
ESO-044286, section on images). Pure.

A coadd is ``PRODCATG = 'SCIENCE.IMAGE'``; its weight map is a separate file,
``PRODCATG = 'ANCILLARY.WEIGHTMAP'``, named by the image's ``ASSON1`` (``ASSOC1`` its
category). ``PROVi`` name the raw frames by their ARCFILE, one card each, not
zero-padded. Keywords the project cannot know are left out rather than invented:
``WAVELMIN``/``WAVELMAX`` (the filters' pass bands are not in the instrument
configuration) and ``REFERENC`` (no publication yet). ``ABMAGLIM`` and ``ABMAGSAT`` are
written only where the photometry is on the AB system.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IMAGE_CATG = "SCIENCE.IMAGE"
WEIGHT_CATG = "ANCILLARY.WEIGHTMAP"
#: The standard's signal-to-noise of a limiting magnitude (ABMAGLIM: 5 sigma).
LIMIT_SIGMA = 5.0


@dataclass(frozen=True)
class ImageFacts:
    """What a coadd's Phase 3 keywords say, measured by the recipe."""

    arcfiles: Sequence[str]  # the raw frames, in order
    weight_file: str  # the weight map's file name
    exptimes_s: Sequence[float]
    mjd_obs: Sequence[float]  # each exposure's start
    exptime_per_pixel_s: float  # median over the covered pixels
    prog_id: str | None
    ob_ids: Sequence[int]
    obstech: str
    filter: str
    centre_deg: tuple[float, float]  # (RA, Dec) of the image centre
    photzp: float  # mag = -2.5 log10(pixel value) + PHOTZP
    photzp_err: float
    system: str  # "AB" or "Vega"
    limiting_mag: float  # a point source at limit_sigma
    limit_sigma: float
    saturation_mag: float  # NaN: unknown
    fwhm_arcsec: float
    ellipticity: float
    random_error_deg: tuple[float, float]  # astrometric, per axis
    systematic_error_deg: tuple[float, float]
    software: str


def image_cards(facts: ImageFacts) -> dict[str, tuple[Any, str]]:
    """The coadd's primary-header cards (name -> (value, comment)); non-finite
    measurements are left out."""
    ab = facts.system == "AB"
    end = max(m + t / 86400.0 for m, t in zip(facts.mjd_obs, facts.exptimes_s, strict=True))
    cards: dict[str, tuple[Any, str]] = {
        "PRODCATG": (IMAGE_CATG, "Data product category"),
        "ASSON1": (facts.weight_file, "Associated file: the weight map"),
        "ASSOC1": (WEIGHT_CATG, "Category of the associated file"),
        "ORIGIN": ("ESO", "European Southern Observatory"),
        "FILTER": (facts.filter, "Filter name"),
        "RA": (facts.centre_deg[0], "[deg] Image centre (ICRS)"),
        "DEC": (facts.centre_deg[1], "[deg] Image centre (ICRS)"),
        "EQUINOX": (2000.0, "Standard FK5 (years)"),
        "RADESYS": ("ICRS", "Coordinate reference frame"),
        "TIMESYS": ("UTC", "Time system"),
        "EXPTIME": (facts.exptime_per_pixel_s, "[s] Total integration time per pixel"),
        "TEXPTIME": (float(sum(facts.exptimes_s)), "[s] Total integration time of exposures"),
        "MJD-OBS": (min(facts.mjd_obs), "Start of observations (days)"),
        "MJD-END": (end, "End of observations (days)"),
        "NCOMBINE": (len(facts.arcfiles), "Number of raw science frames combined"),
        "SINGLEXP": (len(facts.arcfiles) == 1, "TRUE if resulting from a single exposure"),
        "M_EPOCH": (False, "TRUE if resulting from multiple epochs"),
        "OBSTECH": (facts.obstech, "Technique of observation"),
        "PROCSOFT": (facts.software, "Reduction software and version"),
        "FLUXCAL": ("ABSOLUTE", "Type of flux calibration"),
        "PHOTZP": (facts.photzp, "Photometric zeropoint: mag = -2.5 log10(data) + PHOTZP"),
        "PHOTZPER": (facts.photzp_err, "Uncertainty of PHOTZP (mag)"),
        "PHOTSYS": ("AB" if ab else "VEGA", "Photometric system"),
        "PSF_FWHM": (facts.fwhm_arcsec, "[arcsec] Effective spatial resolution"),
        "ELLIPTIC": (facts.ellipticity, "Average ellipticity of point sources"),
        "CRDER1": (facts.random_error_deg[0], "[deg] Random error of the astrometry, axis 1"),
        "CRDER2": (facts.random_error_deg[1], "[deg] Random error of the astrometry, axis 2"),
        "CSYER1": (facts.systematic_error_deg[0], "[deg] Systematic error, axis 1"),
        "CSYER2": (facts.systematic_error_deg[1], "[deg] Systematic error, axis 2"),
    }
    if facts.prog_id:
        cards["PROG_ID"] = (facts.prog_id, "ESO programme identification")
    for i, ob in enumerate(sorted(set(facts.ob_ids)), 1):
        cards[f"OBID{i}"] = (int(ob), "Observation block ID")
    if ab:
        limit = facts.limiting_mag + 2.5 * math.log10(facts.limit_sigma / LIMIT_SIGMA)
        cards["ABMAGLIM"] = (limit, "5-sigma limiting AB magnitude for point sources")
        cards["ABMAGSAT"] = (facts.saturation_mag, "Saturation limit for point sources (AB)")
    for i, name in enumerate(facts.arcfiles, 1):
        cards[f"PROV{i}"] = (name, "Originating raw science file")
    return {
        k: v for k, v in cards.items() if not (isinstance(v[0], float) and not math.isfinite(v[0]))
    }


def weight_cards() -> dict[str, tuple[Any, str]]:
    """The weight map's primary-header cards."""
    return {"PRODCATG": (WEIGHT_CATG, "Data product category")}


def saturation_mag(
    zeropoint_mag: float,
    exptime_s: float,
    headroom_adu: float,
    gamma_px: float,
    alpha: float,
) -> float:
    """The magnitude of a point source whose peak pixel reaches saturation in one
    exposure: ``headroom_adu`` (saturation less the sky) over the Moffat profile's peak
    fraction ``(alpha - 1) / (pi gamma^2)``, per second, on the exposure's zeropoint
    (``mag = zeropoint - 2.5 log10(ADU/s)``).

    >>> round(saturation_mag(25.0, 100.0, 60000.0, 3.0, 3.0), 2)
    15.18
    """
    peak_fraction = (alpha - 1.0) / (math.pi * gamma_px**2)
    if headroom_adu <= 0 or peak_fraction <= 0 or exptime_s <= 0:
        return math.nan
    return zeropoint_mag - 2.5 * math.log10(headroom_adu / peak_fraction / exptime_s)


def error_estimate(offsets: np.ndarray) -> tuple[float, float]:
    """(random, systematic) error of measured offsets: their scatter about the median
    (1.4826 MAD) and the median's own distance from zero, with its standard error in
    quadrature (NaN without offsets).

    >>> [round(v, 3) for v in error_estimate(np.array([0.1, 0.2, 0.3, 0.2]))]
    [0.074, 0.203]
    """
    offsets = offsets[np.isfinite(offsets)]
    if offsets.size == 0:
        return math.nan, math.nan
    median = float(np.median(offsets))
    scatter = float(1.4826 * np.median(np.abs(offsets - median)))
    return scatter, math.hypot(median, scatter / math.sqrt(offsets.size))
