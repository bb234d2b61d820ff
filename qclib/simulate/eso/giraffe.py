"""GIRAFFE (FLAMES, UT2) calibration morning: biases, then long darks, as ESO's
``giraf`` pipeline takes them (``gimasterbias``, then ``gimasterdark`` with the master
bias tagged MASTER_BIAS).

The CCD is one 2148 x 4096 image in the primary HDU: 50 prescan columns, 2048 exposed
ones, 50 overscan columns (``DET OUT1 PRSCX/OVSCX``), 16-bit unsigned. The bias level
lies in 100-300 ADU, where ``gimasterbias`` looks for it (its QC windows). Dark current
and hot pixels are in the exposed columns only: ``gimasterdark`` takes the bias level
of a dark from prescan columns 5-40. ``giraf.oca`` matches a dark to its master bias
on INSTRUME, DET CHIP1 ID, DET WIN1 BINX/BINY and DET READ CLOCK/MODE/SPEED, which
every raw carries (``common.ccd_cards``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from qclib.simulate.eso import common
from qclib.simulate.night import SimulationResult

INSTRUMENT = common.Instrument("GIRAFFE", "GIRAF", "ESO-VLT-U2", "giraf", code=101)
CCD = common.CcdLayout(
    shape=(4096, 2148),
    prescan_x=50,
    overscan_x=50,
    chip_id="CCD-44 GIRAFFE",
    chip_name="e2v CC44-82",
    read_clock="225k/1pt/lg",
    read_speed="1pt/225k/lg",
)
READOUT_S = 58.0
OUTPUT = common.Output(
    name="OUT1",
    bias_adu=182.0,  # gimasterbias' QC windows take 100-300 ADU
    read_noise_adu=4.1,
    gain_e_per_adu=0.9,
    dark_adu_per_s=2.4 / 3600.0,
    hot_pixel_adu_per_s=0.12,
)
HOT_PIXELS = 150
DARK_EXPTIME_S = 3600.0


def _templates(scale: str) -> list[common.Template]:
    n_bias, n_dark = (5, 3) if scale == "full" else (3, 3)  # gimasterdark stacks 3 or more
    return [
        common.Template(
            "bias", "GIRAF_gen_cal_Bias", "Bias", ("CALIB", "BIAS", "IMAGE"), "BIAS",
            (0.0,) * n_bias, READOUT_S,
        ),
        common.Template(
            "dark", "GIRAF_gen_cal_Dark", "Dark", ("CALIB", "DARK", "IMAGE"), "DARK",
            (DARK_EXPTIME_S,) * n_dark, READOUT_S,
        ),
    ]  # fmt: skip


def simulate(night: dt.date, out_dir: Path, *, seed: int, scale: str) -> SimulationResult:
    """A GIRAFFE calibration morning: biases (one template), darks (another)."""
    ny, nx = CCD.shape
    hot = common.hot_pixel_positions(
        common.stream(seed, INSTRUMENT, 0),
        HOT_PIXELS,
        (CCD.prescan_x, nx - CCD.overscan_x),
        (0, ny),
    )
    output = dataclasses.replace(OUTPUT, hot_pixels=hot)
    exposures = common.plan_morning(night, _templates(scale), first_utc=dt.time(9, 0))

    def render(exposure: common.Exposure, rng: np.random.Generator) -> common.Hdus:
        header = common.structure(16, CCD.shape, primary=True)
        header.update(common.primary_cards(INSTRUMENT, exposure))
        common.eso_cards(header, common.ccd_cards(CCD, output, exposure.exptime_s))
        header["HIERARCH ESO INS MODE"] = ("MEDUSA", "Instrument mode used.")
        data = common.read_out(
            rng, CCD.shape, output, exposed=CCD.exposed, seconds=exposure.exptime_s
        )
        return [(header, data)]

    return common.write_night(
        INSTRUMENT,
        night,
        out_dir,
        seed=seed,
        scale=scale,
        exposures=exposures,
        render=render,
        outputs=[output],
        extra_truth={
            "geometry": common.ccd_geometry_truth(CCD),
            "dark_model": "dark current and hot pixels over EXPTIME, exposed columns only",
        },
    )
