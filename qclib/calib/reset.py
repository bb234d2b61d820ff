"""QC of a VIRCAM master reset: its level and spread, and its change against a
reference reset. Pure.

A raw reset frame is read uncorrelated (DET.NCORRS = Uncorr, NDIT 1, DIT = the
1.0011-s MINDIT): one read after the reset, so it shows the reset level that a
double-correlated frame cancels (ESO's VIRCAM reset QC page,
http://www.eso.org/observing/dfo/quality/VIRCAM/qc/qc_VC_reset.html). Its QC
parameters, as that page and CASU's VIRCAM QC dictionary
(research.ast.cam.ac.uk/vdfs/internal/vista/etcfiles/etctables/qc.tab) define them:

  QC.RESETMED        median of the master reset                              ADU
  QC.RESETRMS        its spread over all pixels, the Gaussian-equivalent MAD
                     (1.4826 x median absolute deviation from the median)    ADU
  QC.RESETDIFF_MED   median of master - reference reset                      ADU
  QC.RESETDIFF_RMS   Gaussian-equivalent MAD of that difference              ADU

(CASU's dictionary words QC.RESETRMS's MAD "from unity after normalising by median
level", text copied from its flat-field entry, yet gives the unit as ADU, as ESO's
page does: "the RMS over all pixel of the master"; ADU it is here.) The reference
is the reset ESO keeps and renews after detector interventions (same ESO page).
"""

from __future__ import annotations

from dataclasses import dataclass

import bottleneck as bn
import numpy as np

from qclib.calib.stripes import MAD_TO_SIGMA
from qclib.errors import UnprocessableDataError


@dataclass(frozen=True)
class ResetStatistics:
    """The QC of a master reset; the difference terms are None without a reference."""

    median_adu: float
    rms_adu: float
    difference_median_adu: float | None = None
    difference_rms_adu: float | None = None

    def qc(self) -> dict[str, float]:
        values = {"QC.RESETMED": self.median_adu, "QC.RESETRMS": self.rms_adu}
        if self.difference_median_adu is not None and self.difference_rms_adu is not None:
            values["QC.RESETDIFF_MED"] = self.difference_median_adu
            values["QC.RESETDIFF_RMS"] = self.difference_rms_adu
        return values


def median_and_spread(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Median and 1.4826 x MAD (ADU) of the finite pixels not masked (True = bad).

    >>> median_and_spread(np.array([[0.0, 1.0, 2.0], [3.0, 4.0, np.nan]]))
    (2.0, 1.482602218505602)
    """
    values = np.asarray(image, dtype=np.float32)
    if mask is not None:
        values = values[~mask]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    centre = float(bn.median(values))
    return centre, MAD_TO_SIGMA * float(bn.median(np.abs(values - np.float32(centre))))


def measure_reset(
    master: np.ndarray,
    *,
    reference: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> ResetStatistics:
    """QC.RESETMED, QC.RESETRMS and, given a reference reset of the same detector,
    QC.RESETDIFF_MED and QC.RESETDIFF_RMS (ADU), masked pixels (True) left out.

    Raises
    ------
    UnprocessableDataError
        The master has no finite pixel outside the mask; the reference's shape
        differs.
    """
    median, spread = median_and_spread(master, mask)
    if not np.isfinite(median):
        raise UnprocessableDataError("the master reset has no usable pixel (all NaN or masked)")
    if reference is None:
        return ResetStatistics(median, spread)
    if reference.shape != master.shape:
        raise UnprocessableDataError(
            f"reference reset is {reference.shape[1]}x{reference.shape[0]} px, the master "
            f"{master.shape[1]}x{master.shape[0]}: choose a reference of the same detector"
        )
    difference = np.subtract(master, reference, dtype=np.float32)
    diff_median, diff_spread = median_and_spread(difference, mask)
    return ResetStatistics(median, spread, diff_median, diff_spread)
