"""Recipes qc_master_dark (CCD: overscan and master bias removed) and qc_hawki_dark
(IR: reference pixels removed per readout channel; one master per DIT): master dark,
hot pixels, dark current, read noise and particle rate, per detector.

The read noise loses the dark signal's shot noise with the detector's nominal
conversion factor from the raw header (``DET.OUT1.CONAD``), where it has one. IR
blocks get the night's darks of other DITs (tag ``DARK_OTHER_DIT``): the dark current
is the slope of the dark signal against DIT over them all."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict

import numpy as np

from qclib.calib.dark import DarkConfig, Exposure, make_master_dark
from qclib.fitsio import FitsScan
from qclib.products import DetectorProduct
from qclib.recipes.base import (
    CalibInput,
    CalibrationReader,
    ProductResult,
    RecipeContext,
    StackReader,
    qc_cards,
    write,
)

RECIPE = "qc_master_dark"
RECIPE_IR = "qc_hawki_dark"
#: Tag of the darks of other DITs (IR) that the dark current's slope also uses.
OTHER_DITS_TAG = "DARK_OTHER_DIT"


def _run(ctx: RecipeContext, recipe: str, config: DarkConfig) -> list[ProductResult]:
    geometry = ctx.geometry()
    raws = ctx.raws_of()
    infrared = ctx.instrument.infrared
    setup = (
        ["DET.DIT", "DET.NDIT", "DET.NCORRS.NAME"] if infrared else ["EXPTIME", "DET.READ.CLOCK"]
    )
    ctx.uniform(raws, setup, "dark")
    header = raws[0].scan.primary
    if infrared:
        dit, ndit = float(header["DET.DIT"]), int(header["DET.NDIT"])  # type: ignore[arg-type]
        exposure = Exposure(integration_s=dit, particle_s=dit * ndit, ndit=ndit)
        calibs = tuple(ctx.calibrations.get(OTHER_DITS_TAG, ()))
        bias = None
    else:
        exptime = float(header["EXPTIME"])  # type: ignore[arg-type]
        exposure = Exposure(exptime, exptime + ctx.instrument.readout_time_s)
        calibs = (ctx.calibration("MASTER_BIAS"),)
        bias = CalibrationReader(calibs[0])
    reader = StackReader(raws, geometry)
    others = _by_timing(calibs) if infrared else []
    qc: dict[str, dict[str, float]] = {}

    def per_detector() -> Iterator[DetectorProduct]:
        for extname in ctx.detectors():
            master = make_master_dark(
                reader.read(extname),
                geometry,
                exposure,
                pixel_size_um=ctx.instrument.pixel_size_um,
                master_bias=None if bias is None else bias.data(extname),
                names=[r.arcfile for r in raws],
                config=config,
                gain_e_per_adu=nominal_gain(raws[0].scan, extname),
                other_dits=[
                    (np.stack([r.data(extname) for r in group]), timing) for timing, group in others
                ],
            )
            qc[extname] = master.qc
            cards = qc_cards(ctx.instrument, "MASTER_DARK", master.qc)
            yield DetectorProduct(extname, master.data, master.error, master.dq, cards)

    parameters = {**asdict(config), **asdict(exposure)}
    product = write(
        ctx,
        "MASTER_DARK",
        recipe,
        per_detector(),
        raws=raws,
        calibs=calibs,
        parameters=parameters,
        qc=qc,
    )
    return [product]


def _by_timing(darks: Sequence[CalibInput]) -> list[tuple[Exposure, list[CalibrationReader]]]:
    """Raw darks of other DITs, grouped by (DIT, NDIT)."""
    groups: dict[tuple[float, int], list[CalibrationReader]] = {}
    for dark in darks:
        reader = CalibrationReader(dark)
        dit = float(reader.header_value("DET.DIT"))
        ndit = int(reader.header_value("DET.NDIT"))
        groups.setdefault((dit, ndit), []).append(reader)
    return [
        (Exposure(integration_s=dit, particle_s=dit * ndit, ndit=ndit), readers)
        for (dit, ndit), readers in sorted(groups.items())
    ]


def nominal_gain(scan: FitsScan, extname: str) -> float | None:
    """The conversion factor (e-/ADU) a raw file's detector extension states, if any."""
    hdu = next((h for h in scan.extensions if h.extname == extname), None)
    value = None if hdu is None else hdu.header.get("DET.OUT1.CONAD")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def run(ctx: RecipeContext, config: DarkConfig | None = None) -> list[ProductResult]:
    """CCD master dark: overscan level and master bias removed."""
    return _run(ctx, RECIPE, config or DarkConfig())


def run_ir(ctx: RecipeContext, config: DarkConfig | None = None) -> list[ProductResult]:
    """IR master dark at one DIT: reference-pixel level removed."""
    return _run(ctx, RECIPE_IR, config or DarkConfig(min_frames=3))
