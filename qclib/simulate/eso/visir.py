"""VISIR (UT3) calibration morning: darks, then flats, as ESO's ``visir`` pipeline
takes them (``visir_img_dark``, ``visir_img_ff``).

The mid-infrared array is one 1024 x 1024 float32 image in the primary HDU, the
average of NDIT reads of a short DIT (``common.ir_read_out``). ``visir_img_dark``
reads EXPTIME and DET NDIT (its QC read noise is per read: the raw's noise times
sqrt(NDIT)); ``visir_img_ff`` reads DET DIT. ``visir.oca`` calls a CALIB/DARK/IMAGE
frame IM_CAL_DARK and a CALIB/FLAT frame of technique IMAGE,DIRECT IM_CAL_FLAT, and
associates no calibration to either recipe. The flats alternate bright and faint
illumination, starting bright: ``visir_img_ff`` fits each pixel's response across the
frames, and its QC.LAMPFLUX is the median of the first frame minus the second over the
DIT. Dead pixels (response 0.05) are what it counts as bad (below 0.2). Its QC.FPNOISE
is 0 on these frames whatever their order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from qclib.simulate.eso import common
from qclib.simulate.night import SimulationResult

INSTRUMENT = common.Instrument("VISIR", "VISIR", "ESO-VLT-U3", "visir", code=104)
SHAPE = (1024, 1024)
OUTPUT = common.Output(
    name="CHIP1",
    bias_adu=0.0,
    read_noise_adu=40.0,  # per read
    gain_e_per_adu=20.0,
    dark_adu_per_s=400.0,
    hot_pixel_adu_per_s=40000.0,
)
HOT_PIXELS = 40
DIT_S, DARK_NDIT, FLAT_NDIT = 0.02, 400, 100
#: Illumination of the bright and faint flats (ADU/s before the pixel response).
FLAT_BRIGHT_ADU_PER_S, FLAT_FAINT_ADU_PER_S = 150000.0, 50000.0
PRNU_RMS = 0.02
#: Dead pixels: their response, below the 0.2 that ``visir_img_ff`` calls bad.
DEAD_PIXELS, DEAD_RESPONSE = 25, 0.05


def _templates(scale: str) -> list[common.Template]:
    n_dark, n_pairs = (3, 3) if scale == "full" else (3, 2)
    light = (FLAT_BRIGHT_ADU_PER_S, FLAT_FAINT_ADU_PER_S) * n_pairs
    return [
        common.Template(
            "dark", "VISIR_img_cal_Dark", "Dark", ("CALIB", "DARK", "IMAGE"), "IM_CAL_DARK",
            (DIT_S * DARK_NDIT,) * n_dark, 20.0,
        ),
        common.Template(
            "flat", "VISIR_img_cal_Flat", "Flat", ("CALIB", "FLAT", "IMAGE,DIRECT"),
            "IM_CAL_FLAT", (DIT_S * FLAT_NDIT,) * len(light), 20.0, (), light,
        ),
    ]  # fmt: skip


def _ndit(exposure: common.Exposure) -> int:
    return FLAT_NDIT if exposure.template.kind == "flat" else DARK_NDIT


def _cards(exposure: common.Exposure) -> common.Cards:
    return {
        "DET CHIP NAME": ("AQUARIUS", "Detector chip name"),
        "DET CHIP NX": (SHAPE[1], "# of pixels along X"),
        "DET CHIP NY": (SHAPE[0], "# of pixels along Y"),
        "DET DIT": (DIT_S, "Integration Time"),
        "DET NDIT": (_ndit(exposure), "# of Sub-Integrations"),
        "INS MODE": ("IMG", "Instrument mode used."),
        "INS FILT1 NAME": ("PAH1", "Filter name."),
    }


def simulate(night: dt.date, out_dir: Path, *, seed: int, scale: str) -> SimulationResult:
    """A VISIR calibration morning: darks (one template), flats (another)."""
    hot = common.hot_pixel_positions(
        common.stream(seed, INSTRUMENT, 0), HOT_PIXELS, (8, SHAPE[1] - 8), (8, SHAPE[0] - 8)
    )
    output = dataclasses.replace(OUTPUT, hot_pixels=hot)
    response = 1.0 + PRNU_RMS * common.stream(seed, INSTRUMENT, 0, 1).standard_normal(SHAPE)
    dead = common.hot_pixel_positions(
        common.stream(seed, INSTRUMENT, 0, 2), DEAD_PIXELS, (8, SHAPE[1] - 8), (8, SHAPE[0] - 8)
    )
    dead = tuple(p for p in dead if p not in hot)
    for x, y in dead:
        response[y, x] = DEAD_RESPONSE
    exposures = common.plan_morning(night, _templates(scale), first_utc=dt.time(10, 0))

    def render(exposure: common.Exposure, rng: np.random.Generator) -> common.Hdus:
        header = common.structure(-32, SHAPE, primary=True)
        header.update(common.primary_cards(INSTRUMENT, exposure))
        common.eso_cards(header, _cards(exposure))
        light = exposure.light_adu_per_s * response if exposure.light_adu_per_s else 0.0
        data = common.ir_read_out(
            rng,
            SHAPE,
            output,
            dit_s=DIT_S,
            ndit=_ndit(exposure),
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
            "raw_model": "average of NDIT reads of DIT; read noise is per read",
            "dark": {"dit_s": DIT_S, "ndit": DARK_NDIT},
            "flat": {
                "dit_s": DIT_S,
                "ndit": FLAT_NDIT,
                "bright_adu_per_s": FLAT_BRIGHT_ADU_PER_S,
                "faint_adu_per_s": FLAT_FAINT_ADU_PER_S,
                "prnu_rms": PRNU_RMS,
                "dead_pixels": [list(p) for p in dead],
                "dead_pixels_count": len(dead),
                "dead_response": DEAD_RESPONSE,
                "light_model": "illumination times the pixel response (mean 1, Gaussian rms "
                "prnu_rms); the dark current sees no response",
            },
        },
    )
