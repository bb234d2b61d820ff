"""Recipes qc_master_dark (CCD: overscan and master bias removed) and qc_hawki_dark
(IR: reference pixels removed; one master per DIT): master dark, hot pixels,
dark current, read noise and particle rate, per detector."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from qclib.calib.dark import DarkConfig, Exposure, make_master_dark
from qclib.products import DetectorProduct
from qclib.recipes.base import (
    CalibrationReader,
    ProductResult,
    RecipeContext,
    StackReader,
    qc_cards,
    write,
)

RECIPE = "qc_master_dark"
RECIPE_IR = "qc_hawki_dark"


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
        calibs = ()
        bias = None
    else:
        exptime = float(header["EXPTIME"])  # type: ignore[arg-type]
        exposure = Exposure(exptime, exptime + ctx.instrument.readout_time_s)
        calibs = (ctx.calibration("MASTER_BIAS"),)
        bias = CalibrationReader(calibs[0])
    reader = StackReader(raws, geometry)
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


def run(ctx: RecipeContext, config: DarkConfig | None = None) -> list[ProductResult]:
    """CCD master dark: overscan level and master bias removed."""
    return _run(ctx, RECIPE, config or DarkConfig())


def run_ir(ctx: RecipeContext, config: DarkConfig | None = None) -> list[ProductResult]:
    """IR master dark at one DIT: reference-pixel level removed."""
    return _run(ctx, RECIPE_IR, config or DarkConfig(min_frames=3))
