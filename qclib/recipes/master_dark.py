"""Recipes qc_master_dark (CCD: overscan and master bias removed) and qc_ir_dark
(IR: reference pixels removed per readout channel; one master per DIT): master dark,
hot pixels, dark current, read noise and particle rate, per detector.

The read noise loses the dark signal's shot noise with the detector's nominal
conversion factor from the raw header (``DET.OUT1.CONAD``), where it has one. IR
blocks get the night's darks of other DITs (tag ``DARK_OTHER_DIT``): the dark current
is the slope of the dark signal against DIT over them all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from qclib.calib.dark import Exposure, make_master_dark
from qclib.fitsio import scan_fits
from qclib.products import DetectorProduct
from qclib.recipes.base import (
    CalibInput,
    CalibrationReader,
    ProductResult,
    RawInput,
    RecipeContext,
    StackReader,
    nominal_gain,
    qc_cards,
    write,
)

#: Tag of the darks of other DITs (IR) that the dark current's slope also uses.
OTHER_DITS_TAG = "DARK_OTHER_DIT"


def run(ctx: RecipeContext) -> list[ProductResult]:
    """Master dark of the block's darks, less the master bias where the recipe takes one
    (CCDs; an infrared array's reference pixels give its level), with the dark current
    fitted over the night's other DITs where it takes those."""
    geometry = ctx.geometry()
    raws = ctx.raws_of()
    ctx.require_setup("MASTER_DARK", raws, "dark")
    exposure = _exposure(ctx, raws[0])
    calibs = (ctx.calibration("MASTER_BIAS"),) if ctx.spec.takes("MASTER_BIAS") else ()
    bias = CalibrationReader(calibs[0]) if calibs else None
    others_input = ctx.calibrations_for(OTHER_DITS_TAG) if ctx.spec.takes(OTHER_DITS_TAG) else ()
    others = _by_timing(ctx, others_input)
    calibs = (*calibs, *others_input)
    reader = ctx.stack_reader(raws)
    qc: dict[str, dict[str, float]] = {}

    def make(extname: str) -> tuple[dict[str, float], DetectorProduct]:
        master = make_master_dark(
            reader.read(extname),
            geometry,
            exposure,
            pixel_size_um=ctx.instrument.pixel_size_um,
            master_bias=None if bias is None else bias.data(extname),
            names=[r.arcfile for r in raws],
            config=ctx.parameters,
            min_frames=ctx.min_frames,
            gain_e_per_adu=nominal_gain(raws[0].scan, extname),
            other_dits=[(group.mapped(extname), timing) for timing, group in others],
        )
        cards = qc_cards(ctx.instrument, "MASTER_DARK", master.qc)
        return master.qc, DetectorProduct(extname, master.data, master.error, master.dq, cards)

    parameters = {**asdict(ctx.parameters), **asdict(exposure)}
    product = write(
        ctx,
        "MASTER_DARK",
        ctx.made_per_detector(make, qc),
        raws=raws,
        calibs=calibs,
        parameters=parameters,
        qc=qc,
    )
    return [product]


def _exposure(ctx: RecipeContext, raw: RawInput) -> Exposure:
    """A dark's timing: integration per read; particles hit during all NDIT reads and,
    on a CCD, while it is read out."""
    integration, ndit = ctx.exposure_time(raw), ctx.ndit(raw)
    return Exposure(
        integration_s=integration,
        particle_s=integration * ndit + ctx.instrument.readout_time_s,
        ndit=ndit,
    )


def _by_timing(
    ctx: RecipeContext, darks: Sequence[CalibInput]
) -> list[tuple[Exposure, StackReader]]:
    """Raw darks of other DITs, grouped by their timing, each group's frames mapped
    where they are stored (``StackReader.mapped``): the dark current samples a
    sixteenth of their pixels. A HAWK-I block's other DITs are nine 16 MB frames per
    chip; converting them whole took about a third of its detector threads' time."""
    groups: dict[tuple[float, int, float], list[RawInput]] = {}
    for dark in darks:
        raw = RawInput(dark.path.name, dark.path, dark.category, dark.sha256, scan_fits(dark.path))
        timing = _exposure(ctx, raw)
        groups.setdefault((timing.integration_s, timing.ndit, timing.particle_s), []).append(raw)
    return [
        (Exposure(integration_s=t, particle_s=p, ndit=n), ctx.stack_reader(raws))
        for (t, n, p), raws in sorted(groups.items())
    ]
