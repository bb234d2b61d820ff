"""Pixel synthesis: one raw detector readout from truth, maps and exposure conditions.

The signal chain, per pixel of the data region, in electrons:
  light   = flux(x, y) * response(x, y) * t          (flux: lamp or sky, x illumination, + sources)
  dark    = dark_rate(x, y) * (t + readout time)      (hot pixels are high dark rates)
  charge  = light + dark + particle hits
  noisy   = charge + sqrt(charge + RON^2) * N(0, 1)   (Poisson approximated by a Gaussian)
then ADU = noisy / gain, made mildly non-linear (adu * (1 + c * adu)), and put on the
bias: level + frame offset + 2D structure. Prescan and overscan see the level,
the frame offset and read noise only. CCD raws are rounded to integers and
clipped to the 16-bit range; IR raws are the float average of NDIT reads of DIT
seconds, so their noise is that of one read divided by sqrt(NDIT).

An IR readout also carries what its readout electronics add to every pixel, reference
pixels included, drawn anew for each frame: an offset per vertical readout channel
(not zero on average over the frame), an offset between the channel's even and odd
columns, and 1/f noise in time along the readout, common to all channels (they are
read in parallel, each row by row, column after column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qclib.config.instrument import Geometry, parse_section
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
    return (np.tile(series, channels) + columns[None, :]).astype(np.float32)


def synthesize_readout(
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
) -> tuple[np.ndarray, HitRecord]:
    """One raw readout of one detector.

    ``light_e_per_s`` is the flux falling on the data region before the pixel
    response (None for dark exposures). Returns the raw image (uint16 values as
    float32 for CCDs, float32 ADU per DIT for IR) and the true particle hits.
    """
    rows, cols = parse_section(geometry.data_section)
    t = dit_s if infrared else exptime_s
    charge = maps.dark_e_per_s * np.float32(t + readout_time_s)
    if light_e_per_s is not None:
        charge += light_e_per_s * maps.response * np.float32(t)
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
    noise = rng.standard_normal((geometry.naxis2, geometry.naxis1), dtype=np.float32)
    variance = charge + np.float32(truth.read_noise_e**2)
    np.maximum(variance, 0, out=variance)
    if reads > 1:
        variance /= np.float32(reads)
    data = noise[rows, cols] * np.sqrt(variance)
    data += charge
    data /= np.float32(truth.gain_e_per_adu)
    data *= 1.0 + np.float32(truth.nonlinearity_per_adu) * data
    data += maps.bias_structure_adu

    level = np.float32(truth.bias_level_adu + frame_offset_adu)
    raw = noise * np.float32(truth.read_noise_adu / np.sqrt(reads))
    raw += level
    raw[rows, cols] = data + level
    if infrared:
        raw += ir_readout_pattern(geometry, truth, rng, ndit=reads)
        np.minimum(raw, np.float32(saturation_adu), out=raw)
        return raw, hits
    np.rint(raw, out=raw)
    np.clip(raw, 0.0, min(saturation_adu, 65535.0), out=raw)
    return raw, hits
