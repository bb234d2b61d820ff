"""NACO (NAOS+CONICA) calibration morning: darks, then lamp flats alternating lamp on
and off, as ESO's ``naco`` pipeline takes them (``naco_img_dark``,
``naco_img_lampflat``).

The Aladdin array is one 1024 x 1024 float32 image in the primary HDU, the average of
NDIT double-correlated reads (``common.ir_read_out``). The recipes read EXPTIME, DET
DIT/NDIT/NCORRS/NCORRS NAME/MODE NAME and INS OPTI3/4/7 NAME and OPTI4 ID; the lamp
flat needs ``INS LAMP2 SET`` as an integer card, non-zero (lamp on) on the first frame
and alternating with zero. ``naco.oca`` groups each template by SIG.TEMPLATE (TPL
START) and associates no calibration to either recipe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from qclib.simulate.eso import common
from qclib.simulate.night import SimulationResult

INSTRUMENT = common.Instrument("NAOS+CONICA", "NACO", "ESO-VLT-U1", "naco", code=103)
SHAPE = (1024, 1024)
OUTPUT = common.Output(
    name="CHIP1",
    bias_adu=0.0,  # double-correlated reads: no offset
    read_noise_adu=4.6,  # per read
    gain_e_per_adu=10.5,
    dark_adu_per_s=0.08,
    hot_pixel_adu_per_s=15.0,
)
HOT_PIXELS = 60
DARK_DIT_S, DARK_NDIT = 30.0, 2
FLAT_DIT_S, FLAT_NDIT = 2.0, 1
LAMP_ADU_PER_S = 2500.0
THERMAL_ADU_PER_S = 12.0  # what the off frames see besides the dark current
LAMP_SET = 7  # INS LAMP2 SET when on
#: Pixel response non-uniformity (rms) of the light the array sees: the flat's pattern.
PRNU_RMS = 0.015
#: The recipes' default rejected border (--r=200 200 200 200).
RECIPE_BORDER = 200


def _templates(scale: str) -> list[common.Template]:
    n_dark, n_pairs = (3, 3) if scale == "full" else (3, 2)
    lamp = tuple(
        {"INS LAMP2 SET": (LAMP_SET if i % 2 == 0 else 0, "Value sent to amplifier.")}
        for i in range(2 * n_pairs)
    )
    light = tuple(
        THERMAL_ADU_PER_S + (LAMP_ADU_PER_S if i % 2 == 0 else 0.0) for i in range(2 * n_pairs)
    )
    return [
        common.Template(
            "dark", "NACO_img_cal_Darks", "Darks", ("CALIB", "DARK", "IMAGE"), "CAL_DARK",
            (DARK_DIT_S * DARK_NDIT,) * n_dark, 8.0,
        ),
        common.Template(
            "lamp_flat", "NACO_img_cal_LampFlats", "LampFlats", ("CALIB", "FLAT,LAMP", "IMAGE"),
            "CAL_FLAT_LAMP", (FLAT_DIT_S * FLAT_NDIT,) * (2 * n_pairs), 15.0, lamp, light,
        ),
    ]  # fmt: skip


def _dit_ndit(exposure: common.Exposure) -> tuple[float, int]:
    if exposure.template.kind == "lamp_flat":
        return FLAT_DIT_S, FLAT_NDIT
    return DARK_DIT_S, DARK_NDIT


def _cards(exposure: common.Exposure) -> common.Cards:
    dit, ndit = _dit_ndit(exposure)
    return {
        "DET CHIP NAME": ("Aladdin3", "Detector chip name"),
        "DET CHIP NX": (SHAPE[1], "# of pixels along X"),
        "DET CHIP NY": (SHAPE[0], "# of pixels along Y"),
        "DET WIN NX": (SHAPE[1], "# of pixels along X"),
        "DET WIN NY": (SHAPE[0], "# of pixels along Y"),
        "DET WIN STARTX": (1, "Lower left pixel in X"),
        "DET WIN STARTY": (1, "Lower left pixel in Y"),
        "DET DIT": (dit, "Integration Time"),
        "DET NDIT": (ndit, "# of Sub-Integrations"),
        "DET NCORRS": (4, "Read-Out Mode"),
        "DET NCORRS NAME": ("Double_RdRstRd", "Read-Out Mode Name"),
        "DET MODE NAME": ("HighDynamic", "DCS Detector Mode"),
        "INS PIXSCALE": (0.027, "Pixel scale"),
        "INS OPTI3 NAME": ("Full", "OPTIi name."),
        "INS OPTI4 ID": ("empty", "OPTIi unique ID."),
        "INS OPTI4 NAME": ("empty", "OPTIi name."),
        "INS OPTI5 ID": ("empty", "OPTIi unique ID."),
        "INS OPTI5 NAME": ("empty", "OPTIi name."),
        "INS OPTI6 ID": ("Ks", "OPTIi unique ID."),
        "INS OPTI6 NAME": ("Ks", "OPTIi name."),
        "INS OPTI7 ID": ("S27", "OPTIi unique ID."),
        "INS OPTI7 NAME": ("S27", "OPTIi name."),
        "INS LAMP2 NAME": ("Halogen", "Calibration lamp name"),
        "INS LAMP2 SET": (0, "Value sent to amplifier."),
        **exposure.cards,
    }


def simulate(night: dt.date, out_dir: Path, *, seed: int, scale: str) -> SimulationResult:
    """A NACO calibration morning: darks (one template), lamp flats (another)."""
    hot = common.hot_pixel_positions(
        common.stream(seed, INSTRUMENT, 0), HOT_PIXELS, (8, SHAPE[1] - 8), (8, SHAPE[0] - 8)
    )
    output = dataclasses.replace(OUTPUT, hot_pixels=hot)
    response = 1.0 + PRNU_RMS * common.stream(seed, INSTRUMENT, 0, 1).standard_normal(SHAPE)
    exposures = common.plan_morning(night, _templates(scale), first_utc=dt.time(9, 30))

    def render(exposure: common.Exposure, rng: np.random.Generator) -> common.Hdus:
        header = common.structure(-32, SHAPE, primary=True)
        header.update(common.primary_cards(INSTRUMENT, exposure))
        common.eso_cards(header, _cards(exposure))
        dit, ndit = _dit_ndit(exposure)
        light = exposure.light_adu_per_s * response if exposure.light_adu_per_s else 0.0
        data = common.ir_read_out(
            rng,
            SHAPE,
            output,
            dit_s=dit,
            ndit=ndit,
            light_adu_per_s=light,
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
            "geometry": {"naxis1": SHAPE[1], "naxis2": SHAPE[0]},
            "raw_model": "average of NDIT double-correlated reads of DIT; read noise is per read",
            "dark": {"dit_s": DARK_DIT_S, "ndit": DARK_NDIT},
            "lamp_flat": {
                "dit_s": FLAT_DIT_S,
                "ndit": FLAT_NDIT,
                "lamp_adu_per_s": LAMP_ADU_PER_S,
                "thermal_adu_per_s": THERMAL_ADU_PER_S,
                "lamp2_set_on": LAMP_SET,
                "prnu_rms": PRNU_RMS,
                "light_model": "lamp and thermal light times the pixel response (mean 1, "
                "Gaussian rms prnu_rms); the dark current sees no response",
            },
            "recipe_border_px": RECIPE_BORDER,
        },
    )
