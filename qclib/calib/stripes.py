"""Horizontal stripes of IR detectors: measure and remove the row pattern. Pure.

VIRCAM's detectors carry a pattern of horizontal stripes, a level that changes from
row to row and from frame to frame. ESO's VIRCAM pipeline estimates it as each row's
median, removes it (``vircam_destripe``, added to the VISTA Data Reduction Library
Design VIS-SPE-IOA-20000-0010 in issue 1.6 together with QC STRIPERMS) and reports
QC.STRIPERMS, "the RMS of the stripe pattern removed from an image" [ADU] (CASU's
VIRCAM QC dictionary, research.ast.cam.ac.uk/vdfs/internal/vista/etcfiles/etctables/
qc.tab; written by vircam_dark_combine on the master dark). The same per-row
estimate is what smeingast/vircampype's ``destripe_helper`` (tools/imagetools.py)
subtracts.

Here the profile is each row's median over the pixels not masked, less the median
of all rows (so destriping keeps the image's level), and its rms is the
Gaussian-equivalent MAD, 1.4826 x the median absolute deviation: the estimator
CASU's dictionary gives for the VIRCAM RMS parameters (QC.DARKRMS, QC.RESETRMS, same
qc.tab), and one that a few rows crossed by a bad column or a bright source cannot
inflate. A row with no usable pixel has no estimate (NaN) and is left as it is.

Even a stripe-free image has a profile: the noise of a median of n pixels,
1.2533 sigma / sqrt(n) (its floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import bottleneck as bn
import numpy as np

#: 1 / Phi^-1(3/4): the MAD of a Gaussian times this is its standard deviation.
MAD_TO_SIGMA = 1.482602218505602


@dataclass(frozen=True)
class StripePattern:
    """A detector's row pattern.

    profile_adu: each row's offset from the image's level (NaN: row without data).
    rms_adu: QC.STRIPERMS, 1.4826 x MAD of the profile.
    """

    profile_adu: np.ndarray
    rms_adu: float

    def qc(self) -> dict[str, float]:
        return {"QC.STRIPERMS": self.rms_adu}


def measure_stripes(image: np.ndarray, *, mask: np.ndarray | None = None) -> StripePattern:
    """The row pattern of one image (ADU): row medians over pixels not masked (True =
    bad) and not NaN, less their median.

    >>> image = np.zeros((4, 5), np.float32) + np.array([[1], [2], [3], [4]], np.float32)
    >>> pattern = measure_stripes(image)
    >>> pattern.profile_adu.tolist(), round(pattern.rms_adu, 4)
    ([-1.5, -0.5, 0.5, 1.5], 1.4826)
    """
    # Native float32 (a big-endian FITS array is converted: bottleneck would fall back
    # to slow numpy on it, shared STACK_NOTES.md).
    data = np.asarray(image, dtype=np.float32)
    if mask is not None:
        data = np.where(mask, np.float32(np.nan), data)
    with np.errstate(all="ignore"):
        rows = bn.nanmedian(data, axis=1).astype(np.float64)
    good = np.isfinite(rows)
    if not good.any():
        return StripePattern(rows, float("nan"))
    profile = rows - float(np.median(rows[good]))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(profile[good] - np.median(profile[good]))))
    return StripePattern(profile, spread)


def stripe_rms(image: np.ndarray, *, mask: np.ndarray | None = None, trend_rows: int = 9) -> float:
    """QC.STRIPERMS of an image that also has slow structure along its rows (a reset
    anomaly fading along the readout, a gradient): 1.4826 x MAD of the row pattern
    less its running median over ``trend_rows`` rows. Stripes change from one row to
    the next; such structure does not, and on a master dark it would otherwise be
    most of the pattern (the simulated VIRCAM anomaly read as 4.4 ADU of "stripes"
    where the stripes were 1.5 ADU per read).

    >>> rows = np.arange(64, dtype=np.float32)[:, None] * np.ones((1, 8), np.float32)
    >>> stripe_rms(rows) < 1e-6  # a ramp is no stripe
    True
    """
    # Imported here: scipy.ndimage costs about 0.2 s at import, paid by every recipe
    # process that imports this module, while only a few products ask for stripes.
    from scipy.ndimage import median_filter

    profile = measure_stripes(image, mask=mask).profile_adu
    good = np.isfinite(profile)
    if not good.any():
        return float("nan")
    trend = median_filter(np.where(good, profile, 0.0), size=trend_rows, mode="nearest")
    residual = (profile - trend)[good]
    return MAD_TO_SIGMA * float(np.median(np.abs(residual - np.median(residual))))


def destripe(image: np.ndarray, pattern: StripePattern) -> np.ndarray:
    """A new float32 image with ``pattern`` removed from every row (rows without an
    estimate unchanged)."""
    offsets = np.nan_to_num(pattern.profile_adu, nan=0.0).astype(np.float32)
    if offsets.size != image.shape[0]:
        raise ValueError(f"a profile of {offsets.size} rows for an image of {image.shape[0]}")
    return np.subtract(image, offsets[:, None], dtype=np.float32)
