"""Pixel synthesis: one raw detector readout from truth, maps and exposure conditions.

The signal chain, per pixel of the data region, in electrons:
  light   = flux(x, y) * response(x, y) * t          (flux: lamp or sky, x illumination, + sources)
  dark    = dark_rate(x, y) * (t + readout time)      (hot pixels are high dark rates)
  charge  = light + dark + particle hits
  noisy   = Poisson(charge) + RON * N(0, 1)          (qclib.simulate.noise: exact Poisson
                                                      below 64 e-, its Gaussian above)
then ADU = noisy / gain, made mildly non-linear (adu * (1 + c * adu)), and put on the
bias: level + frame offset + 2D structure. Prescan and overscan see the level,
the frame offset and read noise only. CCD raws are rounded to integers and
clipped to the 16-bit range; IR raws are the float average of NDIT reads of DIT
seconds, so their noise is that of one read divided by sqrt(NDIT). The pixel chain
runs in one compiled pass per frame (``qclib.simulate.noise.readout_into``), each
pixel's noise drawn from a counter-based generator keyed by the frame's stream.

An IR readout also carries what its readout electronics add to every pixel, reference
pixels included, drawn anew for each frame: an offset per vertical readout channel
(not zero on average over the frame), an offset between the channel's even and odd
columns, and 1/f noise in time along the readout, common to all channels (they are
read in parallel, each row by row, column after column).

Generic infrared effects a profile may switch on (all off by default):

* **Reset anomaly.** After a reset the level settles as ``L - A exp(-t/tau)``, ``t`` the
  time since the reset. The channels are read in parallel, row after row from the
  first row, so a pixel is read ``s = frame_readout_s * n / N`` after the reset (``n``
  its place in its channel's readout, ``N`` the channel's pixels). A double-correlated
  frame (reset-read-read, every dark, flat and science frame: the first read is
  subtracted from the second, DIT later) keeps ``A exp(-s/tau) (1 - exp(-DIT/tau))``:
  strongest in the first rows read and decaying along the readout, a fixed excess per
  read once DIT >> tau, and so, as a share of the signal, largest at short DIT. A
  reset-read frame (kind ``reset``, uncorrelated) shows ``L - A exp(-s/tau)``.
  [ESO's HAWK-I trending report RESETANOM.txt: after a reset "the rate of dark
  current accumulation varies before settling"; ESO VIRCAM dark QC page
  qc_VC_dark.html: "Each NDIT adds about 12 ADU to the dark level"; CDS frames of IR
  arrays show a ramp at the edge read first (CASU WFCAM commissioning report,
  people.ast.cam.ac.uk/~wfcam/docs/reports/commissioning2/).]
* **Stripes.** A row offset, new in every read, shared by the detectors of one
  controller group (``stripe_shared_by``); a raw of NDIT reads carries their mean
  (or sum). [vircampype, smeingast/vircampype vircampype/data/cube.py:1063-1073,
  combines the stripe patterns of detectors 1-4, 5-8, 9-12, 13-16: one per mosaic row.]
* **NDIT sum.** VIRCAM raws hold the sum of NDIT reads, HAWK-I's their mean (ESO
  qc_VC_dark.html: "a raw frame acquired with DIT=10sec and NDIT=5 has 60 ADU more
  signal ... than a raw dark frame with DIT=50 sec and NDIT=1").
* **Non-linearity** ``NL(adu) = adu (1 + c adu + c3 adu**2)`` of each read; with
  ``nonlinearity_first_read_s`` (VIRCAM: MINDIT) a double-correlated raw is
  ``NL(x + p) - NL(p)``, ``p`` the signal collected between reset and first read
  (CASU's DCS linearity model, as vircampype reimplements it:
  vircampype/tools/mathtools.py:347-384, ``k = MINDIT / DIT``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from qclib.config.instrument import Geometry, parse_section
from qclib.simulate.noise import readout_into
from qclib.simulate.truth import DetectorMaps, DetectorTruth

#: Energy deposited by a particle hit, electrons (log-normal around this).
_HIT_MEDIAN_E = 1500.0


@dataclass(frozen=True)
class HitRecord:
    """True particle hits of one readout."""

    n_events: int
    n_pixels: int


def add_particle_hits(
    charge: np.ndarray,
    rng: np.random.Generator,
    *,
    rate_per_cm2_per_s: float,
    pixel_size_um: float,
    seconds: float,
    weight: float = 1.0,
) -> HitRecord:
    """Deposit particle hits (short tracks of 1-4 pixels) into ``charge`` in place."""
    ny, nx = charge.shape
    area_cm2 = ny * nx * (pixel_size_um * 1e-4) ** 2
    n_events = int(rng.poisson(rate_per_cm2_per_s * area_cm2 * max(seconds, 0.0)))
    if n_events == 0:
        return HitRecord(0, 0)
    hit = np.zeros(charge.shape, dtype=bool)
    xs = rng.integers(0, nx, n_events)
    ys = rng.integers(0, ny, n_events)
    lengths = rng.integers(1, 5, n_events)
    angles = rng.uniform(0, np.pi, n_events)
    energies = _HIT_MEDIAN_E * rng.lognormal(0.0, 0.5, n_events)
    for x, y, length, angle, energy in zip(xs, ys, lengths, angles, energies, strict=True):
        steps = np.arange(length)
        tx = np.clip(np.round(x + steps * np.cos(angle)).astype(int), 0, nx - 1)
        ty = np.clip(np.round(y + steps * np.sin(angle)).astype(int), 0, ny - 1)
        charge[ty, tx] += weight * energy / length
        hit[ty, tx] = True
    return HitRecord(n_events, int(hit.sum()))


def correlated_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of 1/f noise (power inversely proportional to frequency, no
    constant term) with unit standard deviation."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequency = np.fft.rfftfreq(n)
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(frequency[1:])
    series = np.fft.irfft(spectrum, n)
    return series / series.std()


def ir_readout_pattern(
    geometry: Geometry, truth: DetectorTruth, rng: np.random.Generator, *, ndit: int
) -> np.ndarray:
    """What the readout electronics add to one IR frame (NAXIS2, NAXIS1), in ADU:
    channel offsets, even/odd column offsets and 1/f noise (averaged over NDIT reads)."""
    width = geometry.readout_channel_px or geometry.naxis1
    channels = geometry.naxis1 // width
    offsets = rng.normal(0.0, truth.channel_offset_rms_adu, channels)
    even_odd = rng.normal(0.0, truth.even_odd_rms_adu, channels)
    parity = np.where(np.arange(width) % 2 == 0, 0.5, -0.5)
    columns = (offsets[:, None] + even_odd[:, None] * parity[None, :]).ravel()
    series = correlated_noise(geometry.naxis2 * width, rng).reshape(geometry.naxis2, width)
    series *= truth.correlated_noise_rms_adu / np.sqrt(ndit)
    # Summed in float64 and rounded once into the float32 frame, channel by channel
    # (np.tile made two float64 frames first: 31 ms per HAWK-I readout, now 5 ms).
    out = np.empty((geometry.naxis2, channels, width), np.float32)
    np.add(series[:, None, :], columns.reshape(channels, width)[None], out=out)
    return out.reshape(geometry.naxis2, geometry.naxis1)


def reset_anomaly_profile(geometry: Geometry, truth: DetectorTruth) -> np.ndarray:
    """``exp(-s / tau)`` of every pixel of the frame (NAXIS2, NAXIS1), float32: ``s`` the
    time from the reset to the pixel's read, channels read in parallel row after row.
    Read-only (cached: the same for every frame of a detector)."""
    width = geometry.readout_channel_px or geometry.naxis1
    return _anomaly_profile(
        geometry.naxis2, geometry.naxis1, width, truth.frame_readout_s, truth.reset_anomaly_time_s
    )


@functools.lru_cache(maxsize=4)
def _anomaly_profile(
    naxis2: int, naxis1: int, width: int, readout_s: float, tau_s: float
) -> np.ndarray:
    rows = np.arange(naxis2, dtype=np.float64)[:, None]
    cols = (np.arange(naxis1) % width).astype(np.float64)[None, :]
    seconds = readout_s * (rows * width + cols) / (naxis2 * width)
    profile = np.exp(-seconds / tau_s).astype(np.float32)
    profile.flags.writeable = False
    return profile


def reset_anomaly_in_frame(truth: DetectorTruth, dit_s: float) -> float:
    """The anomaly a double-correlated read of ``dit_s`` keeps at the first pixel read,
    ADU per read: ``A (1 - exp(-DIT / tau))``."""
    if not truth.reset_anomaly_adu:
        return 0.0
    return truth.reset_anomaly_adu * -np.expm1(-dit_s / truth.reset_anomaly_time_s)


def response_drop_map(shape: tuple[int, int], truth: DetectorTruth, drop: float) -> np.ndarray:
    """Factor on the pixel response: ``1 - drop`` over the top rows of the data region."""
    factor = np.ones(shape, dtype=np.float32)
    rows = round(truth.response_drop_rows_fraction * shape[0])
    if rows:
        factor[shape[0] - rows :, :] = np.float32(1.0 - drop)
    return factor


def channel_factor(geometry: Geometry, truth: DetectorTruth) -> np.ndarray | float:
    """The non-linearity factor of each data-region column (1 without channel factors)."""
    if not truth.nonlinearity_channel_factors:
        return 1.0
    cols = parse_section(geometry.data_section)[1]
    width = geometry.readout_channel_px or geometry.naxis1
    channel = np.arange(cols.start, cols.stop) // width
    return np.asarray(truth.nonlinearity_channel_factors, dtype=np.float32)[channel][None, :]


def synthesize_reset(
    out: np.ndarray,
    *,
    geometry: Geometry,
    truth: DetectorTruth,
    maps: DetectorMaps,
    frame_offset_adu: float,
    stripes_adu: np.ndarray | None,
    reset_pattern_adu: np.ndarray | None,
    rng: np.random.Generator,
    noise_key: np.ndarray,
) -> np.ndarray:
    """One reset-read (uncorrelated) frame of an IR detector, float32 ADU, into ``out``
    (NAXIS2 x NAXIS1, native byte order).

    It shows the reset level (truth ``reset_level_adu`` + frame offset + the detector's
    fixed bias structure + ``reset_pattern_adu``, the reset level's own fixed pixel
    pattern, NAXIS2 x NAXIS1), the reset anomaly still settling (``-A exp(-s/tau)``),
    one read's noise (``read_noise_e`` is that of a double-correlated frame, the
    difference of two reads: one read has 1/sqrt(2) of it) with the reset's kTC noise
    (``reset_noise_e``), the readout channels' pattern and the stripes. No signal
    accumulates: the read follows the reset. The pixel noise is the stream
    ``noise_key`` (qclib.simulate.noise); ``rng`` draws the readout pattern.
    """
    rows, cols = parse_section(geometry.data_section)
    noise_e = np.sqrt(truth.read_noise_e**2 / 2.0 + truth.reset_noise_e**2)
    additive = ir_readout_pattern(geometry, truth, rng, ndit=1)
    if reset_pattern_adu is not None:
        additive += reset_pattern_adu
    if truth.reset_anomaly_adu:
        profile = reset_anomaly_profile(geometry, truth)
        additive -= np.float32(truth.reset_anomaly_adu) * profile
    return readout_into(
        out,
        noise_key,
        charge_e=None,
        data_origin=(rows.start, cols.start),
        reads=1,
        read_noise_e=0.0,
        gain_e_per_adu=truth.gain_e_per_adu,
        nonlinearity=(0.0, 0.0),
        column_factor=_ones(cols.stop - cols.start),
        bias_structure_adu=maps.bias_structure_adu,
        level_adu=truth.reset_level_adu + frame_offset_adu,
        sigma_outside_adu=float(noise_e / truth.gain_e_per_adu),
        additive_adu=additive,
        row_offsets_adu=_row_offsets(stripes_adu),
    )


def _ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float32)


def _row_offsets(stripes_adu: np.ndarray | None) -> np.ndarray | None:
    return None if stripes_adu is None else np.ascontiguousarray(stripes_adu, dtype=np.float32)


def exposure_charge(
    maps: DetectorMaps,
    light_e_per_s: np.ndarray | None,
    *,
    seconds: float,
    dark_seconds: float,
    response_factor: np.ndarray | None = None,
) -> np.ndarray:
    """Electrons collected by the data region: ``dark (dark_seconds) + light x response
    x factor (seconds)``, float32."""
    charge = maps.dark_e_per_s * np.float32(dark_seconds)
    if light_e_per_s is not None:
        collected = light_e_per_s * maps.response
        if response_factor is not None:
            collected *= response_factor
        collected *= np.float32(seconds)
        charge += collected
    return charge


def synthesize_readout(
    out: np.ndarray,
    *,
    geometry: Geometry,
    truth: DetectorTruth,
    maps: DetectorMaps,
    light_e_per_s: np.ndarray | None,
    exptime_s: float,
    dit_s: float,
    ndit: int,
    infrared: bool,
    readout_time_s: float,
    frame_offset_adu: float,
    saturation_adu: float,
    particle_rate_per_cm2_per_s: float,
    pixel_size_um: float,
    rng: np.random.Generator,
    noise_key: np.ndarray,
    stripes_adu: np.ndarray | None = None,
    response_factor: np.ndarray | None = None,
    ndit_sum: bool = False,
) -> tuple[np.ndarray, HitRecord]:
    """One raw readout of one detector, into ``out`` (NAXIS2 x NAXIS1).

    ``light_e_per_s`` is the flux falling on the data region before the pixel
    response (None for dark exposures). IR only: ``stripes_adu`` (NAXIS2,) is the
    row offset of the NDIT reads' mean; ``response_factor`` multiplies the response
    in this frame; ``ndit_sum`` stores the sum of the NDIT reads, not their mean.
    ``out`` is uint16 for a CCD (the FITS bytes: int16 with BZERO, big-endian) and
    float32 ADU for IR (native order). The pixel noise is the stream ``noise_key``
    (qclib.simulate.noise); ``rng`` draws the particle hits and the readout pattern.
    Returns ``out`` and the true particle hits.
    """
    rows, cols = parse_section(geometry.data_section)
    t = dit_s if infrared else exptime_s
    charge = exposure_charge(
        maps,
        light_e_per_s,
        seconds=t,
        dark_seconds=t + readout_time_s,
        response_factor=response_factor,
    )
    # IR frames average NDIT reads: a hit lands in one of them.
    hits = add_particle_hits(
        charge,
        rng,
        rate_per_cm2_per_s=particle_rate_per_cm2_per_s,
        pixel_size_um=pixel_size_um,
        seconds=(dit_s * ndit if infrared else exptime_s + readout_time_s),
        weight=1.0 / ndit if infrared else 1.0,
    )
    reads = ndit if infrared else 1
    c2, c3 = truth.nonlinearity_per_adu, truth.nonlinearity_cubic_per_adu2
    if infrared and truth.nonlinearity_first_read_s:
        # Reset-read-read: NL(x + p) - NL(p), p = k x the ADU of the reset-to-first-read
        # time (k = t0 / DIT): x (1 + f (c (1 + 2k) x + c3 (1 + 3k + 3k^2) x^2)).
        k = truth.nonlinearity_first_read_s / t
        c2 = c2 * (1 + 2 * k)
        c3 = c3 * (1 + 3 * k + 3 * k * k)
    factor = channel_factor(geometry, truth)
    column_factor = (
        np.ascontiguousarray(factor[0], dtype=np.float32)
        if isinstance(factor, np.ndarray)
        else _ones(cols.stop - cols.start)
    )
    additive = None
    if infrared:
        additive = ir_readout_pattern(geometry, truth, rng, ndit=reads)
        anomaly = reset_anomaly_in_frame(truth, dit_s)
        if anomaly:
            additive += np.float32(anomaly) * reset_anomaly_profile(geometry, truth)
    readout_into(
        out,
        noise_key,
        charge_e=charge,
        data_origin=(rows.start, cols.start),
        reads=reads,
        read_noise_e=truth.read_noise_e,
        gain_e_per_adu=truth.gain_e_per_adu,
        nonlinearity=(c2, c3),
        column_factor=column_factor,
        bias_structure_adu=maps.bias_structure_adu,
        level_adu=truth.bias_level_adu + frame_offset_adu,
        sigma_outside_adu=truth.read_noise_adu / np.sqrt(reads),
        additive_adu=additive,
        row_offsets_adu=_row_offsets(stripes_adu) if infrared else None,
        saturation_adu=saturation_adu,
        scale=reads if infrared and ndit_sum and reads > 1 else 1.0,
    )
    return out, hits
