"""Generic QC measurements a QC scientist can add in the instrument TOML, no code. Pure.

A parameter of ``[qc.<PRO.CATG>]`` with ``measure = "recipe"`` (the default) is
computed by the recipe (its module says how). Any other ``measure`` is one of the
statistics below, taken over one plane of each detector of the product (``of`` =
``data``, ``error`` or ``dq``), optionally within a ``region`` (``[x1:x2,y1:y2]``,
1-based, FITS order):

    "QC.MASTER.BIAS.P99" = { unit = "ADU", description = "99th percentile",
                             measure = "percentile", q = 99.0 }
    "QC.NSATPIX" = { unit = "count", description = "saturated pixels",
                     measure = "count_flagged", of = "dq", bits = 8 }

``of`` may also be ``difference`` or ``ratio``: the product less, or over, its
reference (the previous product of the same setup), as VIRCAM's QC.DARKDIFF_MED and
QC.FLATRATIO_RMS are. ``mad_std`` is the Gaussian-equivalent median absolute deviation
(ESO's VIRCAM "RMS" values); ``stripe_rms`` the rms of the image's row pattern, slow
structure along the rows taken out (QC.STRIPERMS, ``qclib.calib.stripes.stripe_rms``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from qclib.calib.reset import median_and_spread
from qclib.calib.selection import nanmedian, percentile
from qclib.calib.stats import clipped_stats
from qclib.calib.stripes import stripe_rms
from qclib.config.instrument import QCParameter, parse_section

MEASURES: dict[str, Callable[[np.ndarray, QCParameter], float]] = {
    "median": lambda v, p: nanmedian(v),
    "mean": lambda v, p: float(np.nanmean(v)),
    "std": lambda v, p: float(np.nanstd(v)),
    "clipped_mean": lambda v, p: clipped_stats(v, sigma=p.sigma).mean,
    "clipped_std": lambda v, p: clipped_stats(v, sigma=p.sigma).std,
    "percentile": lambda v, p: percentile(v, p.q),
    "min": lambda v, p: float(np.nanmin(v)),
    "max": lambda v, p: float(np.nanmax(v)),
    "count_flagged": lambda v, p: float(np.count_nonzero(v.astype(np.int64) & p.bits)),
    "count_above": lambda v, p: float(np.count_nonzero(v > p.threshold)),
    "count_below": lambda v, p: float(np.count_nonzero(v < p.threshold)),
    "mad_std": lambda v, p: median_and_spread(v)[1],
    "stripe_rms": lambda v, p: stripe_rms(v),
}


def measure_catalogue(
    parameters: Mapping[str, QCParameter],
    planes: Mapping[str, np.ndarray | None],
) -> dict[str, float]:
    """Values of the catalogue's generic parameters on one detector's planes.

    >>> p = QCParameter(unit="ADU", description="median", measure="median")
    >>> measure_catalogue({"QC.X": p}, {"data": np.arange(5.0)})
    {'QC.X': 2.0}
    """
    out: dict[str, float] = {}
    for name, parameter in parameters.items():
        if parameter.measure == "recipe":
            continue
        plane = planes.get(parameter.of)
        if plane is None:
            continue
        if parameter.region is not None:
            rows, cols = parse_section(parameter.region)
            plane = plane[rows, cols]
        out[name] = MEASURES[parameter.measure](plane, parameter)
    return out
