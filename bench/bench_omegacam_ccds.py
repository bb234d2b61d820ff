"""All 32 OmegaCAM CCDs at test size: READ_GAIN, master-bias hot pixels and dome-flat
cold pixels (bad columns included) against the simulator's truth, with the old
readings beside them (read noise with the bias's offset taken for dark signal; hot
pixels above the master's median + 5 sigma, no local level).

    python bench/bench_omegacam_ccds.py [--seed 7]

The simulator's bias offsets (-3..+5 ADU), edge ramps (5-8 ADU on half the CCDs) and
bad columns are drawn per CCD; the test scale has 4 CCDs, so this widens it to all 32
(272 x 520 pixels each, biases and dome flats only: about a minute).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

import numpy as np

from qclib.calib.bias import make_master_bias
from qclib.calib.dq import DQ_COLD, DQ_HOT
from qclib.calib.flat import make_master_flat
from qclib.calib.gain import measure_photon_transfer
from qclib.calib.stats import clipped_stats
from qclib.fitsio import read_image, scan_fits
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night


def _stack(night: Path, truth: dict, kind: str, extname: str) -> tuple[np.ndarray, list[float]]:
    exposures = [e for e in truth["exposures"] if e["kind"] == kind]
    frames = []
    for e in exposures:
        scan = scan_fits(night / e["arcfile"])
        hdu = next(h for h in scan.extensions if h.extname == extname)
        frames.append(read_image(night / e["arcfile"], hdu))
    return np.stack(frames), [e["exptime_s"] for e in exposures]


def _pixels(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(x), int(y)) for y, x in zip(*np.nonzero(mask), strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    seed = parser.parse_args().seed
    instrument = load_instrument("OMEGACAM")
    geometry = instrument.geometry["test"]
    names = [d.extname for d in instrument.detectors]
    # load_instrument is cached: the simulator sees every CCD at test size.
    object.__setattr__(geometry, "detectors", names)
    night = Path(tempfile.mkdtemp(prefix="bench-ccds-"))
    simulate_night(
        "OMEGACAM",
        dt.date(2026, 11, 23),
        night,
        seed=seed,
        scale="test",
        workers=2,
        progress=False,
        only={"bias", "dome_flat"},
        detectors=names,
    )
    truth = json.loads((night / "truth.json").read_text())
    print("CCD          offset  ramp  RON%   (old)   gain%  hot    false (old)  cold      false")
    ron, old_ron, gain, false_hot, old_false_hot = [], [], [], 0, 0
    for extname in names:
        det = truth["detectors"][extname]
        biases, _ = _stack(night, truth, "bias", extname)
        flats, exptimes = _stack(night, truth, "dome_flat", extname)
        pair, dark_pair = (flats[0], flats[1]), (biases[0], biases[1])
        now = measure_photon_transfer(pair, dark_pair, geometry, dark_signal_adu=0.0)
        before = measure_photon_transfer(pair, dark_pair, geometry)
        master = make_master_bias(biases, geometry)
        hot = {(x, y) for x, y, _ in det["hot_pixels"]}
        found = _pixels(master.dq & DQ_HOT)
        median = float(np.nanmedian(master.data[::3, ::3]))
        old = _pixels(master.data > median + 5 * clipped_stats(master.data, sigma=5).std)
        flat = make_master_flat(flats, geometry, exptimes, background=master.data)
        cold = {(x, y) for x, y, _ in det["cold_pixels"]} | {
            (x, y) for x, start, stop, _ in det["bad_columns"] for y in range(start, stop)
        }
        cold_found = _pixels(flat.dq & DQ_COLD)
        ron.append(100 * (now.read_noise_e / det["read_noise_e"] - 1))
        old_ron.append(100 * (before.read_noise_e / det["read_noise_e"] - 1))
        gain.append(100 * (now.gain_e_per_adu / det["gain_e_per_adu"] - 1))
        false_hot += len(found - hot)
        old_false_hot += len(old - hot)
        print(
            f"{extname}  {det['bias_offset_adu']:+5.2f}  {det['bias_edge_ramp_adu']:4.2f}"
            f"  {ron[-1]:+5.2f}  ({old_ron[-1]:+6.2f})  {gain[-1]:+5.2f}"
            f"  {len(hot & found)}/{len(hot)}  {len(found - hot):5d} ({len(old - hot):4d})"
            f"  {len(cold & cold_found):4d}/{len(cold):4d}  {len(cold_found - cold)}"
        )
    print(
        f"read noise {min(ron):+.2f} .. {max(ron):+.2f} % (before: {min(old_ron):+.2f} .. "
        f"{max(old_ron):+.2f} %, {sum(r < -0.5 for r in old_ron)} CCDs > 0.5 % low); "
        f"gain {min(gain):+.2f} .. {max(gain):+.2f} %; false hot pixels {false_hot} "
        f"(before: {old_false_hot})"
    )


if __name__ == "__main__":
    main()
