"""Each simulated detector's true properties, and the static pixel maps they imply.

All numbers are drawn from the instrument's simulator profile with a random
stream keyed by (seed, detector index), so a detector's truth does not depend on
which other detectors are simulated or in what order. Coordinates of hot and cold
pixels are 0-based (x, y) in the trimmed data region.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qclib.config.instrument import Geometry, InstrumentConfig
from qclib.errors import ConfigError
from qclib.simulate.noise import standard_normal, stream_key

#: IR arrays are read out in channels of this many columns, each with its own offset.
IR_CHANNEL_COLUMNS = 64


@dataclass(frozen=True)
class DetectorTruth:
    """What the QC parameters of one detector should recover."""

    extname: str
    index: int
    gain_e_per_adu: float
    read_noise_e: float
    bias_level_adu: float
    bias_gradient_x_adu: float
    bias_gradient_y_adu: float
    bias_pattern_rms_adu: float
    dark_current_e_per_s: float
    nonlinearity_per_adu: float
    prnu_rms: float
    hot_pixels: list[tuple[int, int, float]]
    cold_pixels: list[tuple[int, int, float]]
    # CCD bias structure beyond the zero-mean pattern: the data region's level above
    # the overscan, and a rise towards the prescan, amplitude * exp(-x / e-folding).
    bias_offset_adu: float = 0.0
    bias_edge_ramp_adu: float = 0.0
    bias_edge_ramp_px: float = 0.0
    # Bad columns: (x, first row, row after the last, response of its pixels).
    bad_columns: list[tuple[int, int, int, float]] = field(default_factory=list)

    # IR readout, drawn anew for every frame (qclib.simulate.pixels): rms of the
    # readout channels' offsets, of the even-odd column offset within a channel, and
    # of the 1/f noise common to all channels (one read).
    channel_offset_rms_adu: float = 0.0
    even_odd_rms_adu: float = 0.0
    correlated_noise_rms_adu: float = 0.0

    # Non-linearity beyond the quadratic: raw = adu * (1 + c * adu + c3 * adu**2),
    # adu the linear level of one read; the reference level of the stated per cent.
    nonlinearity_cubic_per_adu2: float = 0.0
    nonlinearity_reference_adu: float = 10_000.0
    # Double-correlated non-linearity: the charge of the reset-to-first-read time is
    # on the pixel at both reads, so a raw is NL(x + p) - NL(p) (CASU's DCS model,
    # k = MINDIT / DIT: vircampype vircampype/tools/mathtools.py:347-384).
    nonlinearity_first_read_s: float = 0.0
    # Per readout channel (raw columns in channels of readout_channel_px), the factor
    # on c and c3 (empty: 1 everywhere).
    nonlinearity_channel_factors: list[float] = field(default_factory=list)

    # IR reset (qclib.simulate.pixels): the level of a reset-read frame, and the
    # anomaly: after a reset the level settles as -A exp(-t/tau), t the time since
    # the frame's reset, so pixels read first carry most of it.
    reset_level_adu: float = 0.0
    reset_pattern_rms_adu: float = 0.0  # fixed pixel-to-pixel structure of the reset level
    reset_noise_e: float = 0.0  # kTC noise of each reset (cancels in a correlated frame)
    reset_anomaly_adu: float = 0.0
    reset_anomaly_time_s: float = 0.0
    frame_readout_s: float = 0.0

    # A worse flat response: the top ``response_drop_rows_fraction`` of the rows
    # lose ``response_drop`` of their response, varying from frame to frame by
    # ``response_drop_rms`` (the realised value of each frame is in truth.json).
    response_drop: float = 0.0
    response_drop_rows_fraction: float = 0.0
    response_drop_rms: float = 0.0

    @property
    def read_noise_adu(self) -> float:
        return self.read_noise_e / self.gain_e_per_adu

    def nonlinearity_percent_at(self, adu: float) -> float:
        """Per cent by which a read at linear level ``adu`` comes out of the detector
        above (+) or below (-) that level: 100 (c adu + c3 adu**2)."""
        return 100.0 * (self.nonlinearity_per_adu * adu + self.nonlinearity_cubic_per_adu2 * adu**2)

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["read_noise_adu"] = self.read_noise_adu
        reference = self.nonlinearity_reference_adu
        out["nonlinearity_percent_at_adu"] = {
            f"{reference:g}": self.nonlinearity_percent_at(reference)
        }
        if self.nonlinearity_channel_factors:
            out["nonlinearity_percent_at_adu_by_channel"] = {
                f"{reference:g}": [
                    f * self.nonlinearity_percent_at(reference)
                    for f in self.nonlinearity_channel_factors
                ]
            }
        out["n_hot_pixels"] = len(self.hot_pixels)
        out["n_cold_pixels"] = len(self.cold_pixels)
        out["n_bad_column_pixels"] = sum(stop - start for _, start, stop, _ in self.bad_columns)
        return out


@dataclass(frozen=True)
class DetectorMaps:
    """Static per-pixel maps of one detector over its data region (float32)."""

    bias_structure_adu: np.ndarray  # 2D bias structure above the overscan level
    dark_e_per_s: np.ndarray  # dark current including hot pixels
    response: np.ndarray  # pixel response: PRNU and cold pixels, mean about 1


def _unique_pixels(rng: np.random.Generator, count: int, shape: tuple[int, int]) -> np.ndarray:
    flat = rng.choice(shape[0] * shape[1], size=count, replace=False)
    ys, xs = np.unravel_index(np.sort(flat), shape)
    return np.column_stack([xs, ys])


def draw_detector_truth(
    instrument: InstrumentConfig, geometry: Geometry, index: int, seed: int
) -> DetectorTruth:
    """Draw one detector's truth from the instrument's simulator profile."""
    sim = instrument.simulator
    rng = np.random.default_rng([seed, 1, index])
    shape = geometry.data_shape
    npix = shape[0] * shape[1]
    n_hot = max(1, round(sim.hot_pixel_fraction * npix))
    n_cold = max(1, round(sim.cold_pixel_fraction * npix))
    defects = _unique_pixels(rng, n_hot + n_cold, shape)
    rng.shuffle(defects)
    # Log-uniform hot-pixel rates: many mild ones, a few very hot.
    lo, hi = np.log(sim.hot_pixel_e_per_s[0]), np.log(sim.hot_pixel_e_per_s[1])
    hot_rates = np.exp(rng.uniform(lo, hi, n_hot))
    cold_response = rng.uniform(*sim.cold_pixel_response, n_cold)
    bias_structure = _draw_bias_structure(instrument, shape, index, seed)
    infrared_truth = _draw_ir_truth(instrument, geometry, index, seed)
    return DetectorTruth(
        extname=instrument.detectors[index].extname,
        index=index,
        gain_e_per_adu=float(rng.uniform(*sim.gain_e_per_adu)),
        read_noise_e=float(rng.uniform(*sim.read_noise_e)),
        bias_level_adu=float(rng.uniform(*sim.bias_level_adu)),
        bias_gradient_x_adu=float(rng.uniform(-0.5, 0.5) * sim.bias_gradient_adu),
        bias_gradient_y_adu=float(rng.uniform(-0.5, 0.5) * sim.bias_gradient_adu),
        bias_pattern_rms_adu=sim.bias_pattern_rms_adu,
        dark_current_e_per_s=float(rng.uniform(*sim.dark_current_e_per_hr) / 3600.0),
        prnu_rms=sim.prnu_rms,
        channel_offset_rms_adu=sim.channel_offset_rms_adu,
        even_odd_rms_adu=sim.even_odd_rms_adu,
        correlated_noise_rms_adu=sim.correlated_noise_rms_adu,
        hot_pixels=[
            (int(x), int(y), float(r)) for (x, y), r in zip(defects[:n_hot], hot_rates, strict=True)
        ],
        cold_pixels=[
            (int(x), int(y), float(r))
            for (x, y), r in zip(defects[n_hot:], cold_response, strict=True)
        ],
        **bias_structure,
        **infrared_truth,
    )


def _draw_ir_truth(
    instrument: InstrumentConfig, geometry: Geometry, index: int, seed: int
) -> dict[str, Any]:
    """Non-linearity and reset truth, from their own random stream (as the CCD-only
    truth) so that profiles without ranges keep every other drawn value."""
    sim = instrument.simulator
    rng = np.random.default_rng([seed, 10, index])

    def drawn(value: float | tuple[float, float]) -> float:
        return float(rng.uniform(*value)) if isinstance(value, tuple) else float(value)

    truth: dict[str, Any] = {
        "nonlinearity_per_adu": drawn(sim.nonlinearity_per_adu),
        "nonlinearity_cubic_per_adu2": drawn(sim.nonlinearity_cubic_per_adu2),
        "nonlinearity_reference_adu": sim.nonlinearity_reference_adu,
        "nonlinearity_first_read_s": instrument.reset_read_s,
        "reset_level_adu": drawn(sim.reset_level_adu),
        "reset_pattern_rms_adu": sim.reset_pattern_rms_adu,
        "reset_noise_e": sim.reset_noise_e,
        "reset_anomaly_adu": drawn(sim.reset_anomaly_adu),
        "reset_anomaly_time_s": sim.reset_anomaly_time_s if any(sim.reset_anomaly_adu) else 0.0,
        "frame_readout_s": sim.frame_readout_s or 0.0,
    }
    if sim.nonlinearity_channel_rms:
        channels = geometry.naxis1 // (geometry.readout_channel_px or geometry.naxis1)
        factors = 1.0 + rng.normal(0.0, sim.nonlinearity_channel_rms, channels)
        truth["nonlinearity_channel_factors"] = [float(f) for f in factors]
    return truth


def apply_overrides(
    instrument: InstrumentConfig, truths: list[DetectorTruth]
) -> list[DetectorTruth]:
    """The profile's ``detector_overrides`` applied to the simulated detectors.

    Raises
    ------
    ConfigError
        An override names a detector the instrument does not have.
    """
    known = {d.extname for d in instrument.detectors}
    overrides = {o.detector: o for o in instrument.simulator.detector_overrides}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"{instrument.name} [[simulator.detector_overrides]] names unknown detector(s) "
            f"{unknown}: detectors are {sorted(known)}"
        )
    replaced: list[DetectorTruth] = []
    for truth in truths:
        override = overrides.get(truth.extname)
        changes: dict[str, Any] = (
            {str(k): v for k, v in override.replace.items()} if override else {}
        )
        replaced.append(dataclasses.replace(truth, **changes))
    return replaced


def _draw_bias_structure(
    instrument: InstrumentConfig, shape: tuple[int, int], index: int, seed: int
) -> dict[str, Any]:
    """The CCD-only truth (bias offset, edge ramp, bad columns), from its own random
    stream so that the other truth values stay what they were without it."""
    sim = instrument.simulator
    rng = np.random.default_rng([seed, 7, index])
    ny, nx = shape
    has_ramp = rng.uniform() < sim.bias_edge_ramp_fraction
    ramp = float(rng.uniform(*sim.bias_edge_ramp_adu))
    n_columns = int(rng.integers(sim.bad_columns[0], sim.bad_columns[1] + 1))
    columns = np.sort(rng.choice(nx, size=n_columns, replace=False))
    # A bad column runs from a trap to the far end of the column (or all of it).
    starts = np.where(rng.uniform(size=n_columns) < 0.5, 0, rng.integers(0, ny // 2, n_columns))
    responses = rng.uniform(*sim.bad_column_response, n_columns)
    return {
        "bias_offset_adu": float(rng.uniform(*sim.bias_offset_adu)),
        "bias_edge_ramp_adu": ramp if has_ramp else 0.0,
        "bias_edge_ramp_px": sim.bias_edge_ramp_px if has_ramp else 0.0,
        "bad_columns": [
            (int(x), int(y0), ny, float(r))
            for x, y0, r in zip(columns, starts, responses, strict=True)
        ],
    }


def build_detector_maps(
    truth: DetectorTruth, shape: tuple[int, int], *, infrared: bool, seed: int
) -> DetectorMaps:
    """The static pixel maps implied by a detector's truth."""
    rng = np.random.default_rng([seed, 6, truth.index])
    ny, nx = shape
    y = np.linspace(-0.5, 0.5, ny, dtype=np.float32)[:, None]
    x = np.linspace(-0.5, 0.5, nx, dtype=np.float32)[None, :]
    if infrared:
        # One offset per readout channel (columns), as in Hawaii-2RG arrays.
        channels = -(-nx // IR_CHANNEL_COLUMNS)
        offsets = rng.normal(0, truth.bias_pattern_rms_adu, channels).astype(np.float32)
        pattern = np.repeat(offsets, IR_CHANNEL_COLUMNS)[:nx][None, :]
    else:
        pattern = rng.normal(0, truth.bias_pattern_rms_adu, nx).astype(np.float32)[None, :]
    structure = truth.bias_gradient_x_adu * x + truth.bias_gradient_y_adu * y + pattern
    structure = structure - structure.mean() + truth.bias_offset_adu
    if truth.bias_edge_ramp_adu:
        columns = np.arange(nx, dtype=np.float32)[None, :]
        ramp = np.exp(-columns / truth.bias_edge_ramp_px)
        structure = structure + truth.bias_edge_ramp_adu * ramp
    structure = structure.astype(np.float32)

    dark = np.full(shape, truth.dark_current_e_per_s, dtype=np.float32)
    if truth.hot_pixels:
        px, py, rate = (np.asarray(v) for v in zip(*truth.hot_pixels, strict=True))
        np.add.at(dark, (py, px), rate.astype(np.float32))  # in order, repeats add up

    # The pixel response's noise from the compiled counter-based generator (its own
    # stream of this tuple): numpy's generator took 0.14 s per 2048x4100 CCD, 4.4 s
    # of every simulated OmegaCAM night.
    prnu = standard_normal(stream_key(seed, 6, truth.index), shape)
    response = (np.float32(1.0) + np.float32(truth.prnu_rms) * prnu).astype(np.float32)
    for px, start, stop, value in truth.bad_columns:
        response[start:stop, px] = value
    for px, py, value in truth.cold_pixels:
        response[py, px] = value
    return DetectorMaps(bias_structure_adu=structure, dark_e_per_s=dark, response=response)
