"""UVES (UT2) blue-arm calibration morning: biases, then darks, as ESO's ``uves``
pipeline takes them (``uves_cal_mbias``, which the OCA's ``uves_cal_mkmaster``
dispatches to; ``uves_cal_mdark`` with the master bias tagged MASTER_BIAS_BLUE).

The blue CCD is one 2148 x 3000 image in the primary HDU: 50 prescan columns, 2048
exposed ones, 50 overscan columns, 16-bit unsigned with floating-point BSCALE/BZERO
cards (UVES refuses integer ones). ``DET CHIPS = 1`` is what makes ``uves.oca`` call a
frame blue (BIAS_BLUE, DARK_BLUE); a dark is matched to its master bias on DET WIN1
BINX/BINY/NX/NY/STRX/STRY, DET OUTPUTS and DET CHIPS. The recipes also read the linear
world coordinate cards (CTYPE/CRVAL/CRPIX/CDELT) and ``DET CHIP1 ID``. The red arm
(two 2148 x 4096 CCDs in extensions) is not simulated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from qclib.simulate.eso import common
from qclib.simulate.night import SimulationResult

INSTRUMENT = common.Instrument("UVES", "UVES", "ESO-VLT-U2", "uves", code=102)
CCD = common.CcdLayout(
    shape=(3000, 2148),
    prescan_x=50,
    overscan_x=50,
    chip_id="CCD-44b",
    chip_name="EEV 44-82",
    read_clock="225k/1pt/lg",
    read_speed="1pt/225k/lg",
)
READOUT_S = 42.0
OUTPUT = common.Output(
    name="OUT1",
    bias_adu=171.0,
    read_noise_adu=2.3,
    gain_e_per_adu=1.6,
    dark_adu_per_s=1.8 / 3600.0,
    hot_pixel_adu_per_s=0.08,
)
HOT_PIXELS = 120
DARK_EXPTIME_S = 3600.0


def _templates(scale: str) -> list[common.Template]:
    n_bias, n_dark = (5, 3) if scale == "full" else (3, 2)
    return [
        common.Template(
            "bias", "UVES_blue_cal_bias", "Bias", ("CALIB", "BIAS", "IMAGE"), "BIAS_BLUE",
            (0.0,) * n_bias, READOUT_S,
        ),
        common.Template(
            "dark", "UVES_blue_cal_dark", "Dark", ("CALIB", "DARK", "IMAGE"), "DARK_BLUE",
            (DARK_EXPTIME_S,) * n_dark, READOUT_S,
        ),
    ]  # fmt: skip


def _world_cards() -> common.Cards:
    """Pixel coordinates as UVES raws carry them (the recipes read these cards)."""
    cards: dict[str, tuple[common.CardValue, str]] = {}
    for axis in (1, 2):
        cards[f"CTYPE{axis}"] = ("PIXEL", "Pixel coordinate system")
        cards[f"CRVAL{axis}"] = (1.0, "Coordinate at reference pixel")
        cards[f"CRPIX{axis}"] = (1.0, "Reference pixel")
        cards[f"CDELT{axis}"] = (1.0, "Coordinate increment per pixel")
    return cards


def simulate(night: dt.date, out_dir: Path, *, seed: int, scale: str) -> SimulationResult:
    """A UVES blue calibration morning: biases (one template), darks (another)."""
    ny, nx = CCD.shape
    hot = common.hot_pixel_positions(
        common.stream(seed, INSTRUMENT, 0),
        HOT_PIXELS,
        (CCD.prescan_x, nx - CCD.overscan_x),
        (0, ny),
    )
    output = dataclasses.replace(OUTPUT, hot_pixels=hot)
    exposures = common.plan_morning(night, _templates(scale), first_utc=dt.time(8, 45))

    def render(exposure: common.Exposure, rng: np.random.Generator) -> common.Hdus:
        header = common.structure(16, CCD.shape, primary=True)
        header.update(_world_cards())
        header.update(common.primary_cards(INSTRUMENT, exposure))
        common.eso_cards(header, common.ccd_cards(CCD, output, exposure.exptime_s))
        common.eso_cards(
            header,
            {
                "INS MODE": ("BLUE", "Instrument mode used."),
                "INS PATH": ("BLUE", "Optical path used."),
            },
        )
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
            "arm": "blue",
            "geometry": common.ccd_geometry_truth(CCD),
            "dark_model": "dark current and hot pixels over EXPTIME, exposed columns only",
        },
    )
