"""Generic infrared-detector effects of the simulator carry their recorded truth: reset
frames and the reset anomaly, stripes, a linearity sequence, per-detector overrides,
dome flats and NDIT sums (qclib.simulate.pixels explains each model).

Each night here is HAWK-I's test geometry (4 arrays of 256 x 256, 64-column readout
channels, a 2 x 2 layout) with a profile switched to the effect under test, and the
unrelated per-frame electronics (channel offsets, even/odd, 1/f noise) off, so that a
measurement sees one effect and read noise. Known static structure (bias pattern,
illumination, pixel response) is rebuilt from the truth, not fitted.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from pydantic import ValidationError

from qclib.config.instrument import InstrumentConfig, parse_section
from qclib.errors import ConfigError
from qclib.instruments import load_instrument
from qclib.simulate.history import plan_history
from qclib.simulate.night import simulate_night, stripe_group
from qclib.simulate.pixels import reset_anomaly_profile
from qclib.simulate.sky import illumination
from qclib.simulate.truth import DetectorTruth, build_detector_maps, draw_detector_truth
from tests.conftest import NIGHT, load_truth

SEED = 11
#: Columns of the test geometry's data region (each row median's sample).
DATA_COLUMNS = 248
#: VIRCAM's minimum DIT, the time to read a frame (ESO VIRCAM QC page qc_VC_reset.html).
MINDIT_S = 1.0011


def _template(kind: str, count: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "kind": kind,
        "when": "afternoon",
        "count": count,
        "ndit": 1,
        "filter": "J",
        "dpr_catg": "CALIB",
        "dpr_type": kind.upper(),
        "dpr_tech": "IMAGE",
        "tpl_id": f"TEST_{kind}",
        "tpl_name": kind,
        "obs_name": kind,
        "prog_id": "60.A-9810(A)",
    }
    return {**base, **fields}


def _instrument(plan: list[dict[str, object]], **profile: object) -> InstrumentConfig:
    """HAWK-I with a changed simulator profile, validated as a TOML would be."""
    data = load_instrument("HAWKI").model_dump()
    # How raws hold NDIT reads and the reset-to-first-read time are the instrument's.
    for key in ("ndit_combination", "reset_read_s"):
        if key in profile:
            data[key] = profile.pop(key)
    quiet = {"channel_offset_rms_adu": 0.0, "even_odd_rms_adu": 0.0}
    data["simulator"] = {
        **data["simulator"],
        **quiet,
        "correlated_noise_rms_adu": 0.0,
        "history": {},
        "plan": plan,
        **profile,
    }
    return InstrumentConfig.model_validate(data)


def _simulate(instrument: InstrumentConfig, out: Path) -> dict:
    simulate_night(instrument, NIGHT, out, seed=SEED, scale="test", workers=1, progress=False)
    return load_truth(out)


def _truth_object(instrument: InstrumentConfig, extname: str) -> DetectorTruth:
    index = [d.extname for d in instrument.detectors].index(extname)
    return draw_detector_truth(instrument, instrument.geometry["test"], index, SEED)


def _maps(instrument: InstrumentConfig, truth: DetectorTruth):
    return build_detector_maps(
        truth, instrument.geometry["test"].data_shape, infrared=True, seed=SEED
    )


def _frames(folder: Path, truth: dict, kind: str, **match: object) -> list[tuple[dict, Path]]:
    return [
        (e, folder / e["arcfile"])
        for e in truth["exposures"]
        if e["kind"] == kind and all(e[k] == v for k, v in match.items())
    ]


def _raw(path: Path, extname: str) -> np.ndarray:
    return fits.getdata(path, extname=extname).astype(np.float64)


# --------------------------------------------------------------- reset + anomaly
RESET_PROFILE = {
    "ndit_combination": "sum",
    "reset_level_adu": (9000.0, 11000.0),
    "reset_anomaly_adu": (20.0, 60.0),
    "reset_anomaly_time_s": 0.5,
    "frame_readout_s": MINDIT_S,
    "particle_rate_per_cm2_per_s": 0.0,
}
RESET_PLAN = [
    _template("reset", 5, exptime_s=MINDIT_S, dit_s=MINDIT_S, filter="Ks"),
    _template("dark", 4, exptime_s=MINDIT_S, dit_s=MINDIT_S, filter="Ks"),
    _template("dark", 4, exptime_s=30.0, dit_s=10.0, ndit=3, filter="Ks"),
]


@pytest.fixture(scope="module")
def reset_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[InstrumentConfig, Path]:
    instrument = _instrument(RESET_PLAN, **RESET_PROFILE)
    out = tmp_path_factory.mktemp("ir-reset")
    _simulate(instrument, out)
    return instrument, out


def _fit_anomaly(
    instrument: InstrumentConfig, stack: np.ndarray, truth: DetectorTruth
) -> tuple[float, float]:
    """Least-squares (level, amplitude) of ``level + amplitude * profile`` over the data
    region's row medians, the bias structure removed (both known from the truth)."""
    geometry = instrument.geometry["test"]
    rows, cols = parse_section(geometry.data_section)
    data = stack[rows, cols] - _maps(instrument, truth).bias_structure_adu
    profile = reset_anomaly_profile(geometry, truth)[rows, cols]
    design = np.column_stack([np.ones(data.shape[0]), profile.mean(axis=1)])
    (level, amplitude), *_ = np.linalg.lstsq(design, np.median(data, axis=1), rcond=None)
    return float(level), float(amplitude)


def test_reset_frames_show_the_reset_level_and_the_anomaly(reset_night) -> None:
    """A master reset (mean of 5) is the reset level plus the frame offsets, less the
    anomaly A exp(-s/tau): both recovered from the row medians of 248 x 248 pixels.
    Noise of a row median: 1.25 x 4.7 ADU / sqrt(248 x 5) = 0.17 ADU; over 248 rows
    the level is known to 0.02 ADU and A (20-60 ADU) to 0.2 %."""
    instrument, folder = reset_night
    truth = load_truth(folder)
    resets = _frames(folder, truth, "reset")
    assert len(resets) == 5
    for _exposure, path in resets:
        header = fits.getheader(path)
        assert header["HIERARCH ESO DET NCORRS NAME"] == "Uncorr"
    for extname, det in truth["detectors"].items():
        assert 20.0 <= det["reset_anomaly_adu"] <= 60.0
        stack = np.mean([_raw(p, extname) for _, p in resets], axis=0)
        level, amplitude = _fit_anomaly(instrument, stack, _truth_object(instrument, extname))
        offsets = np.mean([e["detectors"][extname]["frame_offset_adu"] for e, _ in resets])
        assert level == pytest.approx(det["reset_level_adu"] + offsets, abs=0.1), extname
        assert amplitude == pytest.approx(-det["reset_anomaly_adu"], rel=0.01), extname
        for exposure, _ in resets:
            recorded = exposure["detectors"][extname]["reset_anomaly_adu"]
            assert recorded == -det["reset_anomaly_adu"]


def test_darks_keep_the_anomaly_per_read_larger_at_short_dit(reset_night) -> None:
    """A double-correlated dark keeps A (1 - exp(-DIT/tau)) per read at the first pixel
    read, summed over NDIT reads; as a rate (per second of DIT) it is largest at the
    shortest DIT. Measured amplitude against the per-exposure truth within 1 %."""
    instrument, folder = reset_night
    truth = load_truth(folder)
    geometry = instrument.geometry["test"]
    for extname, det in truth["detectors"].items():
        truth_object = _truth_object(instrument, extname)
        per_second = {}
        for dit, ndit in ((MINDIT_S, 1), (10.0, 3)):
            darks = _frames(folder, truth, "dark", dit_s=dit)
            assert {e["ndit"] for e, _ in darks} == {ndit}
            stack = np.mean([_raw(p, extname) for _, p in darks], axis=0) / ndit
            # The bias structure is added once per read: a sum of NDIT reads carries it NDIT
            # times, as the mean over reads (stack) carries it once.
            _, amplitude = _fit_anomaly(instrument, stack, truth_object)
            expected = det["reset_anomaly_adu"] * -np.expm1(-dit / det["reset_anomaly_time_s"])
            assert amplitude == pytest.approx(expected, rel=0.01), (extname, dit)
            recorded = darks[0][0]["detectors"][extname]["reset_anomaly_adu"]
            assert recorded == pytest.approx(ndit * expected, rel=1e-9)
            per_second[dit] = amplitude / dit
        assert per_second[MINDIT_S] > 5 * per_second[10.0]
    # Strongest in the first row read, falling along the readout to exp(-readout/tau).
    profile = reset_anomaly_profile(geometry, truth_object)
    assert profile[0, 0] == 1.0 and np.all(np.diff(profile[:, 0]) < 0)
    assert profile[-1, -1] == pytest.approx(np.exp(-MINDIT_S / 0.5), rel=0.01)


RESET_NOISE_PROFILE = {
    "reset_level_adu": (9000.0, 11000.0),
    "reset_pattern_rms_adu": 15.0,
    "reset_noise_e": 40.0,
}


def test_reset_frames_carry_the_reset_pattern_and_ktc_noise(tmp_path: Path) -> None:
    """The reset level's fixed pattern stays in a master reset (mean of 5), its kTC and
    read noise average down: rms = sqrt(pattern**2 + noise**2 / 5); the difference of
    two resets holds the noise only, sqrt(RON**2 / 2 + kTC**2) / gain per frame. Each
    rms from 61 504 pixels (0.3 % standard error), checked to 2 %."""
    instrument = _instrument(RESET_PLAN[:1], **RESET_NOISE_PROFILE)
    truth = _simulate(instrument, tmp_path)
    rows, cols = parse_section(instrument.geometry["test"].data_section)
    resets = _frames(tmp_path, truth, "reset")
    for extname, det in truth["detectors"].items():
        structure = _maps(instrument, _truth_object(instrument, extname)).bias_structure_adu
        frames = [
            _raw(p, extname)[rows, cols] - e["detectors"][extname]["frame_offset_adu"] - structure
            for e, p in resets
        ]
        noise = np.sqrt(det["read_noise_e"] ** 2 / 2 + 40.0**2) / det["gain_e_per_adu"]
        assert np.std(frames[0] - frames[1]) / np.sqrt(2) == pytest.approx(noise, rel=0.02)
        master = np.mean(frames, axis=0)
        # The mean of 61 504 pattern pixels (15 ADU) and noise: 0.07 ADU standard error.
        assert np.mean(master) == pytest.approx(det["reset_level_adu"], abs=0.35)
        expected = np.sqrt(15.0**2 + noise**2 / len(frames))
        assert np.std(master) == pytest.approx(expected, rel=0.02), extname


def test_ndit_sum_scales_signal_and_noise(reset_night) -> None:
    """A raw of NDIT=3 summed reads: the level and anomaly 3 times a read's, the noise
    sqrt(3) times one read's (difference of two such darks, 248 x 248 pixels: 3 %)."""
    instrument, folder = reset_night
    truth = load_truth(folder)
    rows, cols = parse_section(instrument.geometry["test"].data_section)
    (_, a), (_, b) = _frames(folder, truth, "dark", dit_s=10.0)[:2]
    for extname, det in truth["detectors"].items():
        diff = (_raw(a, extname) - _raw(b, extname))[rows, cols]
        dark_e = det["dark_current_e_per_s"] * 10.0
        one_read = np.sqrt(det["read_noise_e"] ** 2 + dark_e) / det["gain_e_per_adu"]
        measured = float(np.std(diff - np.median(diff))) / np.sqrt(2)
        assert measured == pytest.approx(np.sqrt(3) * one_read, rel=0.03), extname


# --------------------------------------------------------------------- stripes
STRIPE_PLAN = [_template("dark", 3, exptime_s=10.0, dit_s=10.0, filter="Ks")]


@pytest.fixture(scope="module")
def stripe_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[InstrumentConfig, Path]:
    instrument = _instrument(
        STRIPE_PLAN,
        stripe_rms_adu=2.0,
        stripe_shared_by="layout_row",
        particle_rate_per_cm2_per_s=0.0,
    )
    out = tmp_path_factory.mktemp("ir-stripes")
    _simulate(instrument, out)
    return instrument, out


def _row_pattern(instrument: InstrumentConfig, path: Path, extname: str) -> np.ndarray:
    rows, cols = parse_section(instrument.geometry["test"].data_section)
    truth = _truth_object(instrument, extname)
    data = _raw(path, extname)[rows, cols] - _maps(instrument, truth).bias_structure_adu
    pattern = np.median(data, axis=1)
    return pattern - pattern.mean()


def test_stripes_have_the_recorded_rms_and_are_shared_by_layout_rows(stripe_night) -> None:
    """Row medians of a dark (bias structure removed) are the stripes plus the median's
    noise (1.2533 x RON / sqrt(248)); pooled over 3 frames x 4 detectors (6 independent
    patterns of 248 rows) their variance, less that noise, is the truth's within 6 %
    (its standard error is 2 %). The two detectors of a mosaic row share the pattern
    (correlation > 0.9); the two rows' patterns do not (|r| < 0.3, 4 sigma of 248 rows)."""
    instrument, folder = stripe_night
    truth = load_truth(folder)
    assert truth["infrared_effects"]["stripes"]["shared_by"] == "layout_row"
    measured, expected = [], []
    for exposure, path in _frames(folder, truth, "dark"):
        patterns = {}
        for extname, det in truth["detectors"].items():
            pattern = _row_pattern(instrument, path, extname)
            noise = 1.2533 * det["read_noise_adu"] / np.sqrt(DATA_COLUMNS)
            measured.append(np.var(pattern) - noise**2)
            expected.append(exposure["detectors"][extname]["stripe_rms_adu"] ** 2)
            patterns[extname] = pattern
        (a, b), (c, d) = instrument.layout
        assert np.corrcoef(patterns[a], patterns[b])[0, 1] > 0.9
        assert np.corrcoef(patterns[c], patterns[d])[0, 1] > 0.9
        assert abs(np.corrcoef(patterns[a], patterns[c])[0, 1]) < 0.3
        assert (
            exposure["detectors"][a]["stripe_rms_adu"] == exposure["detectors"][b]["stripe_rms_adu"]
        )
    assert np.mean(measured) == pytest.approx(np.mean(expected), rel=0.06)
    assert np.mean(expected) == pytest.approx(2.0**2, rel=0.15)


def test_stripe_groups() -> None:
    """Who shares a pattern: each detector alone, a layout row, or everyone."""
    plan = STRIPE_PLAN
    names = ["CHIP1.INT1", "CHIP2.INT1", "CHIP3.INT1", "CHIP4.INT1"]
    alone = _instrument(plan, stripe_rms_adu=1.0, stripe_shared_by="detector")
    rows = _instrument(plan, stripe_rms_adu=1.0, stripe_shared_by="layout_row")
    everyone = _instrument(plan, stripe_rms_adu=1.0, stripe_shared_by="all")
    assert len({stripe_group(alone, n) for n in names}) == 4
    assert stripe_group(rows, "CHIP1.INT1") == stripe_group(rows, "CHIP2.INT1")
    assert stripe_group(rows, "CHIP3.INT1") == stripe_group(rows, "CHIP4.INT1")
    assert stripe_group(rows, "CHIP1.INT1") != stripe_group(rows, "CHIP4.INT1")
    assert {stripe_group(everyone, n) for n in names} == {0}


# ------------------------------------------------ linearity, overrides, dome flats
LINEARITY_DITS = [1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
LAMP_E_PER_S = 4000.0
BAD = "CHIP2.INT1"
OVERRIDE = {
    "read_noise_e": 30.0,
    "dark_current_e_per_s": 5.0,
    "response_drop": 0.10,
    "response_drop_rows_fraction": 0.5,
    "response_drop_rms": 0.02,
}
LINEARITY_PLAN = [
    _template("linearity_dark", 1, sequence_dit_s=LINEARITY_DITS),
    _template("linearity_flat", 1, sequence_dit_s=LINEARITY_DITS, lamp_e_per_s=LAMP_E_PER_S),
    _template("dome_flat", 3, exptime_s=5.0, dit_s=5.0),
    _template("dark", 2, exptime_s=5.0, dit_s=5.0),
]
LINEARITY_PROFILE = {
    "nonlinearity_per_adu": (-6e-7, -2e-7),
    "nonlinearity_cubic_per_adu2": -1e-11,
    "reset_read_s": MINDIT_S,
    "nonlinearity_channel_rms": 0.2,
    "particle_rate_per_cm2_per_s": 0.0,
    "detector_overrides": [{"detector": BAD, "replace": OVERRIDE, "text": "a noisy array"}],
}


@pytest.fixture(scope="module")
def linearity_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[InstrumentConfig, Path]:
    instrument = _instrument(LINEARITY_PLAN, **LINEARITY_PROFILE)
    out = tmp_path_factory.mktemp("ir-linearity")
    _simulate(instrument, out)
    return instrument, out


def _linear_adu(instrument: InstrumentConfig, det: dict, dit_s: float, drop: float = 0.0):
    """Each data pixel's linear level, ADU per read: lamp x illumination x response."""
    geometry = instrument.geometry["test"]
    truth = _truth_object(instrument, det["extname"])
    truth = dataclasses.replace(truth, **{k: det[k] for k in OVERRIDE})
    light = illumination(instrument, geometry, det["extname"], kind="dome_flat")
    response = _maps(instrument, truth).response.astype(np.float64)
    if drop:
        response[response.shape[0] // 2 :, :] *= 1 - drop
    return LAMP_E_PER_S * light * response * dit_s / det["gain_e_per_adu"]


def _data_channels() -> np.ndarray:
    """Readout channel (64 raw columns each) of every data-region column."""
    geometry = load_instrument("HAWKI").geometry["test"]
    cols = parse_section(geometry.data_section)[1]
    return np.arange(cols.start, cols.stop) // geometry.readout_channel_px


def _raw_level(linear: np.ndarray, det: dict, dit_s: float) -> np.ndarray:
    """The truth polynomial of a double-correlated read: NL(x + p) - NL(p), ``p`` the
    signal between reset and first read, NL(a) = a (1 + c a + c3 a**2)."""
    c, c3 = det["nonlinearity_per_adu"], det["nonlinearity_cubic_per_adu2"]
    before = linear * det["nonlinearity_first_read_s"] / dit_s
    factor = np.ones(linear.shape[1])
    if det["nonlinearity_channel_factors"]:
        factor = np.array(det["nonlinearity_channel_factors"])[_data_channels()]

    def nl(a: np.ndarray) -> np.ndarray:
        return a * (1 + factor * (c * a + c3 * a**2))

    return nl(linear + before) - nl(before)


def test_linearity_sequence_follows_the_truth_polynomial(linearity_night) -> None:
    """Flat minus dark of each DIT of the sequence (frame offsets removed), averaged
    over the data region, is the truth polynomial of each pixel's linear level within
    0.1 % (photon and read noise of the mean: under 0.01 %); a linear detector would
    miss the top levels (27 000-29 000 ADU) by more than 1 % (measured 1.7-2.2 %)."""
    instrument, folder = linearity_night
    truth = load_truth(folder)
    rows, cols = parse_section(instrument.geometry["test"].data_section)
    flats = _frames(folder, truth, "linearity_flat")
    darks = _frames(folder, truth, "linearity_dark")
    assert [e["dit_s"] for e, _ in flats] == LINEARITY_DITS
    assert [e["exptime_s"] for e, _ in flats] == LINEARITY_DITS  # DIT x NDIT (1)
    assert [e["dit_s"] for e, _ in darks] == LINEARITY_DITS
    assert {e["flux_e_per_s"] for e, _ in flats} == {LAMP_E_PER_S}
    drawn = set()
    for extname, det in truth["detectors"].items():
        if extname == BAD:
            continue
        c, c3 = det["nonlinearity_per_adu"], det["nonlinearity_cubic_per_adu2"]
        assert -6e-7 <= c <= -2e-7 and c3 == -1e-11
        assert det["nonlinearity_percent_at_adu"]["10000"] == pytest.approx(
            100 * (c * 1e4 + c3 * 1e8), rel=1e-12
        )
        drawn.add(c)
        for (flat, fpath), (dark, dpath) in zip(flats, darks, strict=True):
            # Each frame's level jitter (1 ADU rms, recorded) would be 0.06 % at 2000 ADU.
            offsets = (
                flat["detectors"][extname]["frame_offset_adu"]
                - dark["detectors"][extname]["frame_offset_adu"]
            )
            difference = (_raw(fpath, extname) - _raw(dpath, extname))[rows, cols] - offsets
            measured = float(np.mean(difference))
            linear = _linear_adu(instrument, det, flat["dit_s"])
            expected = float(np.mean(_raw_level(linear, det, flat["dit_s"])))
            assert measured == pytest.approx(expected, rel=1e-3), (extname, flat["dit_s"])
            if flat["dit_s"] == LINEARITY_DITS[-1]:
                assert abs(measured / float(np.mean(linear)) - 1) > 0.01
                # Each readout channel on its own truth polynomial (62-64 columns).
                channels = _data_channels()
                expected_level = _raw_level(linear, det, flat["dit_s"])
                deviations = []
                for channel in np.unique(channels):
                    mine = channels == channel
                    got = float(np.mean(difference[:, mine]))
                    assert got == pytest.approx(
                        float(np.mean(expected_level[:, mine])), rel=1e-3
                    ), (extname, channel)
                    deviations.append(got / float(np.mean(linear[:, mine])) - 1)
                # The channels' non-linearity differs (20 % rms of about 2 %).
                assert np.ptp(deviations) > 0.001
    assert len(drawn) == 3  # drawn per detector


def test_override_changes_only_the_named_detector(linearity_night) -> None:
    """The override replaces the named detector's truth, and its pixels follow: read
    noise from a pair of darks (3 %), the dark current (3 %), the top half of its
    dome flats losing the realised drop of each frame (0.2 %). The others keep their
    drawn truth and noise."""
    instrument, folder = linearity_night
    truth = load_truth(folder)
    assert truth["detector_overrides"][0]["detector"] == BAD
    rows, cols = parse_section(instrument.geometry["test"].data_section)
    (_, a), (_, b) = _frames(folder, truth, "dark", dit_s=5.0)
    for extname, det in truth["detectors"].items():
        drawn = _truth_object(instrument, extname)
        for field, value in OVERRIDE.items():
            if extname == BAD:
                assert det[field] == value
            else:
                assert det[field] == getattr(drawn, field)
        diff = (_raw(a, extname) - _raw(b, extname))[rows, cols]
        hot = np.zeros(diff.shape, bool)
        for x, y, _rate in det["hot_pixels"]:
            hot[y, x] = True
        dark_e = det["dark_current_e_per_s"] * 5.0
        expected = np.sqrt(det["read_noise_e"] ** 2 + dark_e) / det["gain_e_per_adu"]
        measured = float(np.std(diff[~hot])) / np.sqrt(2)
        assert measured == pytest.approx(expected, rel=0.03), extname
    darks = _frames(folder, truth, "dark", dit_s=5.0)
    dark_level = {
        ext: np.mean(
            [
                np.median(_raw(p, ext)[rows, cols]) - e["detectors"][ext]["frame_offset_adu"]
                for e, p in darks
            ]
        )
        for ext in truth["detectors"]
    }
    bad, good = truth["detectors"][BAD], truth["detectors"]["CHIP1.INT1"]
    excess = (dark_level[BAD] - bad["bias_level_adu"]) * bad["gain_e_per_adu"] / 5.0
    assert excess == pytest.approx(5.0, rel=0.03)
    for exposure, path in _frames(folder, truth, "dome_flat"):
        for extname, det in ((BAD, bad), ("CHIP1.INT1", good)):
            drop = exposure["detectors"][extname].get("response_drop", 0.0)
            assert (drop != 0.0) == (extname == BAD)
            offset = exposure["detectors"][extname]["frame_offset_adu"]
            flat = (_raw(path, extname) - offset - dark_level[extname])[rows, cols]
            level = _raw_level(_linear_adu(instrument, det, 5.0), det, 5.0)
            half = flat.shape[0] // 2
            ratio = (flat[half:].mean() / flat[:half].mean()) / (
                level[half:].mean() / level[:half].mean()
            )
            assert ratio == pytest.approx(1 - drop, abs=0.002), (extname, drop)


def test_dome_flats_on_an_ir_instrument(linearity_night) -> None:
    """Dome flats of an IR profile: DIT/NDIT headers, double-correlated reads, level of
    the filter's lamp (3 frames x 4 detectors written)."""
    instrument, folder = linearity_night
    truth = load_truth(folder)
    flats = _frames(folder, truth, "dome_flat")
    assert len(flats) == 3
    for exposure, path in flats:
        header = fits.getheader(path)
        assert header["HIERARCH ESO DET DIT"] == 5.0
        assert header["HIERARCH ESO DET NCORRS NAME"] == "Double"
        assert header["OBJECT"] == "FLAT,DOME"
        assert exposure["flux_e_per_s"] == instrument.simulator.filters["J"].dome_flat_e_per_s
        with fits.open(path) as hdul:
            assert [h.name for h in hdul[1:]] == list(truth["detectors"])


def test_override_of_an_unknown_detector_is_refused(tmp_path: Path) -> None:
    instrument = _instrument(
        STRIPE_PLAN,
        detector_overrides=[
            {"detector": "CHIP9.INT1", "replace": {"read_noise_e": 30.0}, "text": "x"}
        ],
    )
    with pytest.raises(ConfigError, match=r"CHIP9\.INT1"):
        _simulate(instrument, tmp_path)
    with pytest.raises(ValidationError, match="replace"):
        _instrument(
            STRIPE_PLAN,
            detector_overrides=[{"detector": BAD, "replace": {"hot_pixels": 3.0}, "text": "x"}],
        )


def test_profile_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="frame_readout_s"):
        _instrument(STRIPE_PLAN, reset_anomaly_adu=(1.0, 2.0))
    with pytest.raises(ValidationError, match="sequence"):
        _instrument([_template("linearity_flat", 1, sequence_dit_s=[1.0, 2.0], dit_s=1.0)])
    with pytest.raises(ValidationError, match="exptime_s is required"):
        _instrument([_template("dark", 1)])
    with pytest.raises(ValidationError, match="check exposures need a DIT sequence"):
        _instrument([_template("dome_flat", 1, exptime_s=5.0, check_every=2)])
    with pytest.raises(ValidationError, match="lamp_drift_per_hour are for dome flats"):
        _instrument([_template("dark", 1, exptime_s=5.0, lamp_drift_per_hour=0.1)])


def test_override_fields_are_detector_truth_fields() -> None:
    from typing import get_args

    from qclib.config.simulator import OverrideField

    fields = set(DetectorTruth.__dataclass_fields__)
    assert set(get_args(OverrideField)) <= fields


def test_check_exposures_follow_a_drifting_lamp(tmp_path: Path) -> None:
    """A DIT sequence with check exposures (a 5 s flat first, after every 2nd and last)
    under a lamp drifting by 50 % an hour: the checks carry their own DPR.TYPE, each
    frame's lamp level is the drifted one, and the checks' measured levels (frame
    offsets and the dark level removed) change as that level, within 0.1 %."""
    plan = [
        _template(
            "linearity_flat",
            1,
            sequence_dit_s=[2.0, 4.0, 8.0],
            lamp_e_per_s=LAMP_E_PER_S,
            lamp_drift_per_hour=0.5,
            check_every=2,
            check_dit_s=5.0,
            check_dpr_type="FLAT,LAMP,CHECK",
        )
    ]
    instrument = _instrument(plan, particle_rate_per_cm2_per_s=0.0)
    truth = _simulate(instrument, tmp_path)
    rows, cols = parse_section(instrument.geometry["test"].data_section)
    flats = _frames(tmp_path, truth, "linearity_flat")
    assert [(e["dit_s"], e.get("check", False)) for e, _ in flats] == [
        (5.0, True),
        (2.0, False),
        (4.0, False),
        (5.0, True),
        (8.0, False),
        (5.0, True),
    ]
    start = flats[0][0]["mjd_obs"]
    for exposure, path in flats:
        hours = (exposure["mjd_obs"] - start) * 24
        assert exposure["flux_e_per_s"] == pytest.approx(LAMP_E_PER_S * (1 + 0.5 * hours))
        dpr_type = fits.getheader(path)["HIERARCH ESO DPR TYPE"]
        assert dpr_type == ("FLAT,LAMP,CHECK" if exposure.get("check") else "LINEARITY_FLAT")
    checks = [(e, p) for e, p in flats if e.get("check")]
    assert checks[-1][0]["flux_e_per_s"] / checks[0][0]["flux_e_per_s"] > 1.01
    for extname, det in truth["detectors"].items():
        base = det["bias_level_adu"] + det["dark_current_e_per_s"] * 5.0 / det["gain_e_per_adu"]
        levels = [
            float(np.mean(_raw(p, extname)[rows, cols]))
            - e["detectors"][extname]["frame_offset_adu"]
            - base
            for e, p in checks
        ]
        fluxes = [e["flux_e_per_s"] for e, _ in checks]
        # Non-linearity: a 1.5 % brighter lamp changes the level by 1.5 % (1 + 2 c L),
        # c L about 0.3 % here, so compare ratios of the truth polynomial.
        linear = [np.mean(_linear_adu(instrument, det, 5.0)) * f / LAMP_E_PER_S for f in fluxes]
        c = det["nonlinearity_per_adu"]
        expected = [x * (1 + c * x) for x in linear]
        assert levels[-1] / levels[0] == pytest.approx(expected[-1] / expected[0], rel=1e-3)


def test_a_folder_of_another_profile_is_refused(tmp_path: Path) -> None:
    """The same instrument with another profile is another simulation."""
    _simulate(_instrument(STRIPE_PLAN, stripe_rms_adu=1.0), tmp_path)
    _simulate(_instrument(STRIPE_PLAN, stripe_rms_adu=1.0), tmp_path)  # the same: accepted
    with pytest.raises(ConfigError, match="different simulation"):
        _simulate(_instrument(STRIPE_PLAN, stripe_rms_adu=2.0), tmp_path)


def test_a_history_drifts_an_overridden_detector_from_its_override() -> None:
    """A creep of an overridden property starts at the override, not the drawn value."""
    profile = {
        "detector_overrides": [
            {"detector": BAD, "replace": {"reset_anomaly_adu": 80.0}, "text": "strong anomaly"}
        ],
        "reset_anomaly_adu": (20.0, 40.0),
        "frame_readout_s": MINDIT_S,
        "history": {
            "creep": [
                {"detector": BAD, "field": "reset_anomaly_adu", "end": 120.0, "text": "worse"}
            ]
        },
    }
    instrument = _instrument(STRIPE_PLAN, **profile)
    plan = plan_history(instrument, NIGHT, 3, seed=SEED, scale="test")
    values = [night.values[BAD]["reset_anomaly_adu"] for night in plan.nights]
    assert values[0] == 80.0 and values[-1] == 120.0
    assert plan.creep[0]["start"] == 80.0


def test_a_mosaic_of_sixteen_arrays(tmp_path: Path) -> None:
    """The effects on a VIRCAM-like 4 x 4 mosaic of 16 arrays (EXTNAMEs DET1.CHIP1-16,
    128-column channels, no reference pixels), configured only: stripes shared by the
    four arrays of each mosaic row (correlation of their row patterns > 0.9, across
    rows |r| < 0.3), the override on DET1.CHIP16 alone, every file with 16 extensions."""
    data = load_instrument("HAWKI").model_dump()
    names = [f"DET1.CHIP{i}" for i in range(1, 17)]
    data["detectors"] = [{"extname": n, "chip_id": f"VIRGO-{i}"} for i, n in enumerate(names, 1)]
    data["layout"] = [names[12:16], names[8:12], names[4:8], names[0:4]]
    section = {"bitpix": -32, "readout_channel_px": 128}
    data["geometry"] = {
        "full": {
            **section,
            "naxis1": 2048,
            "naxis2": 2048,
            "data_section": "[1:2048,1:2048]",
            "gap_x_px": 1843,
            "gap_y_px": 870,
        },
        "test": {
            **section,
            "naxis1": 256,
            "naxis2": 256,
            "data_section": "[1:256,1:256]",
            "gap_x_px": 230,
            "gap_y_px": 109,
        },
    }
    override = {"response_drop": 0.1, "response_drop_rows_fraction": 0.5}
    data["simulator"] = {
        **data["simulator"],
        "correlated_noise_rms_adu": 0.0,
        "channel_offset_rms_adu": 0.0,
        "history": {},
        "plan": [
            _template("reset", 2, exptime_s=MINDIT_S, dit_s=MINDIT_S, filter="Ks"),
            _template("dark", 2, exptime_s=10.0, dit_s=10.0, filter="Ks"),
        ],
        "stripe_rms_adu": 3.0,
        "stripe_shared_by": "layout_row",
        "detector_overrides": [
            {"detector": "DET1.CHIP16", "replace": override, "text": "upper half"}
        ],
    }
    instrument = InstrumentConfig.model_validate(data)
    truth = _simulate(instrument, tmp_path)
    assert list(truth["detectors"]) == names
    for extname, det in truth["detectors"].items():
        assert det["response_drop"] == (0.1 if extname == "DET1.CHIP16" else 0.0)
    groups = truth["infrared_effects"]["stripes"]["groups"]
    for row in instrument.layout:
        assert len({groups[n] for n in row}) == 1
    for _exposure, path in _frames(tmp_path, truth, "dark"):
        with fits.open(path) as hdul:
            assert len(hdul) == 17
            patterns = {}
            for name in names:
                image = hdul[name].data.astype(np.float64)
                structure = _maps(instrument, _truth_object(instrument, name)).bias_structure_adu
                pattern = np.median(image - structure, axis=1)
                patterns[name] = pattern - pattern.mean()
        for row, other in itertools.pairwise(instrument.layout):
            for a, b in itertools.pairwise(row):
                assert np.corrcoef(patterns[a], patterns[b])[0, 1] > 0.9
            assert abs(np.corrcoef(patterns[row[0]], patterns[other[0]])[0, 1]) < 0.3


def test_ir_kinds_are_refused_for_a_ccd(tmp_path: Path) -> None:
    data = load_instrument("OMEGACAM").model_dump()
    data["simulator"] = {
        **data["simulator"],
        "history": {},
        "plan": [_template("reset", 1, exptime_s=1.0, filter=None)],
    }
    with pytest.raises(ConfigError, match="only infrared arrays"):
        simulate_night(
            InstrumentConfig.model_validate(data), NIGHT, tmp_path, scale="test", progress=False
        )
