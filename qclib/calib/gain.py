"""Gain and read noise by photon transfer, from two flats and two dark/bias frames. Pure.

For two flats of (nearly) equal level, the variance of their difference is twice the
photon noise plus twice the read noise; two bias (or short dark) frames give the
read noise alone:

    gain = (S1 + r^2 S2) / (var(F1 - r F2) - (1 + r^2) var(B1 - B2) / 2)     e-/ADU

with S the flats' mean signals above bias and r = S1 / S2 (the second flat scaled to
the first, so a small level difference leaves no flat-field structure behind). The
read noise is what the dark pair's difference holds beyond the shot noise of its
own signal (dark current over a long DIT: +0.4 % on HAWK-I's 60-s darks otherwise).
A pair of CCD biases has no such signal: their data region's level above the overscan
is an electronic offset (a few ADU on real CCDs), and taking it for dark signal read
the read noise up to 20 % low. Only the data section is used: ESO's
hawki_detector_noise includes the reference-pixel border and reads the gain 2.5 % high
unless given a confidence map (shared/peers/hawki_esorex.md).

The variances take every pixel: the gain's own noise is sqrt(2 / n) of it, 0.05 % for
a 2048x4100 CCD. The levels S and the bias come from evenly spaced rows holding
500,000 pixels (``qc_rows``). On a simulated OmegaCAM night (flat-field structure
and gradients in the flats) that moved the 32 CCDs' gains by at most 4e-5 of
themselves, a twelfth of their noise; every pixel cost four more sweeps of each CCD.

Frames may be arrays or raws mapped as stored (``StoredImage``, ``MappedImage``):
then only the rows the levels take are converted, and the difference of two int16
raws of one BZERO is counted from the maps (``clipped_difference_stats``, exact
clipping of whole ADU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qclib.calib.readout import QUANTISATION_VARIANCE_ADU2, frame_level, is_integer_valued
from qclib.calib.stats import ClippedStats, clipped_stats, qc_rows
from qclib.calib.stored_difference import clipped_difference_stats
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError
from qclib.stored_pixels import Frame, StoredImage


@dataclass(frozen=True)
class PhotonTransfer:
    gain_e_per_adu: float
    read_noise_adu: float
    signal_adu: float

    @property
    def read_noise_e(self) -> float:
        return self.gain_e_per_adu * self.read_noise_adu

    def qc(self) -> dict[str, float]:
        return {
            "QC.GAIN": self.gain_e_per_adu,
            "QC.RON": self.read_noise_adu,
            "QC.RON.ELECTRONS": self.read_noise_e,
            "QC.GAIN.SIGNAL": self.signal_adu,
        }


def level(frame: Frame) -> float:
    """A frame's clipped mean, over evenly spaced rows holding ``QC_PIXELS``."""
    return clipped_stats(qc_rows(frame)).mean


def _section(frame: Frame, rows: slice, cols: slice) -> Frame:
    """``frame[rows, cols]``, a view (of a mapped raw: nothing converted)."""
    return frame[rows, cols] if isinstance(frame, np.ndarray) else frame.part(rows, cols)


def _array(frame: Frame) -> np.ndarray:
    return frame if isinstance(frame, np.ndarray) else frame[...]


def _difference_stats(a: Frame, b: Frame) -> ClippedStats:
    """5-sigma clipped statistics of ``a - b``."""
    if isinstance(a, StoredImage) and isinstance(b, StoredImage):
        return clipped_difference_stats(a, b, sigma=5)
    return clipped_stats(_array(a), minus=_array(b), sigma=5)


def measure_photon_transfer(
    flats: tuple[Frame, Frame],
    darks: tuple[Frame, Frame],
    geometry: Geometry,
    *,
    ndit: int = 1,
    dark_signal_adu: float | None = None,
) -> PhotonTransfer:
    """Gain (e-/ADU) and read noise (ADU, one read) of one detector from raw frames.

    ``dark_signal_adu``: the dark/bias pair's own signal, whose shot noise the read
    noise must not include: 0 for biases (CCD: the data region's level above the
    overscan is an offset, not charge); None takes the pair's level above its
    reference pixels, which see the same zero level (IR darks).

    Raises
    ------
    UnprocessableDataError
        The flats have no signal above the darks, or photon noise does not exceed
        read noise (the flats are too faint to measure a gain).
    """
    rows, cols = parse_section(geometry.data_section)
    f1, f2 = (_section(f, rows, cols) for f in flats)
    b1, b2 = (_section(b, rows, cols) for b in darks)
    lf1, lf2 = (frame_level(f, geometry) for f in flats)
    lb1, lb2 = (frame_level(b, geometry) for b in darks)
    # The levels from evenly spaced rows (qc_rows, 500,000 pixels), the variances
    # from every pixel: see the module.
    bias_mean = (level(b1) - lb1 + level(b2) - lb2) / 2
    s1 = level(f1) - lf1 - bias_mean
    s2 = level(f2) - lf2 - bias_mean
    if not (s1 > 0 and s2 > 0):
        raise UnprocessableDataError(
            f"flats have no signal above the dark/bias frames ({s1:.1f}, {s2:.1f} ADU)"
        )
    r = s1 / s2
    # (f1 - lf1 - bias) - r (f2 - lf2 - bias): only the variance matters, so constants go.
    if abs(r - 1.0) < 1e-3:
        var_f = _difference_stats(f1, f2).std ** 2
    else:
        var_f = clipped_stats(_array(f1) - np.float32(r) * _array(f2), sigma=5).std ** 2
    var_b = _difference_stats(b1, b2).std ** 2
    photon = var_f - (1 + r * r) * var_b / 2
    if not photon > 0:
        raise UnprocessableDataError(
            "flat pair shows no photon noise above read noise: too faint to measure a gain"
        )
    # Frames averaging NDIT reads carry 1/NDIT of one read's variance.
    gain = (s1 + r * r * s2) / photon / ndit
    quantisation = QUANTISATION_VARIANCE_ADU2 if is_integer_valued(b1) else 0.0
    # Dark frames carry the shot noise of their own signal (dark current): S/g ADU^2.
    dark_signal = bias_mean if dark_signal_adu is None else dark_signal_adu
    dark_shot = max(dark_signal, 0.0) / (gain * ndit)
    read_noise = float(np.sqrt(max(var_b / 2 - quantisation - dark_shot, 0.0) * ndit))
    return PhotonTransfer(float(gain), read_noise, float((s1 + s2) / 2))
