"""Recipe qc_master_bias: master bias + hot pixels + bias QC, per detector."""

from __future__ import annotations

from dataclasses import asdict

from qclib.calib.bias import make_master_bias
from qclib.products import DetectorProduct
from qclib.recipes.base import ProductResult, RecipeContext, qc_cards, write


def run(ctx: RecipeContext) -> list[ProductResult]:
    """Load each detector of every raw bias, combine, measure, write one product."""
    geometry = ctx.geometry()
    raws = ctx.raws_of()
    ctx.require_setup("MASTER_BIAS", raws, "bias")
    reader = ctx.stack_reader(raws)
    qc: dict[str, dict[str, float]] = {}

    def make(extname: str) -> tuple[dict[str, float], DetectorProduct]:
        stack = reader.read_stored(extname)  # int16 raws combined in place
        master = make_master_bias(
            reader.read(extname) if stack is None else stack,
            geometry,
            ctx.parameters,
            min_frames=ctx.min_frames,
        )
        cards = qc_cards(ctx.instrument, "MASTER_BIAS", master.qc)
        return master.qc, DetectorProduct(extname, master.data, master.error, master.dq, cards)

    product = write(
        ctx,
        "MASTER_BIAS",
        ctx.made_per_detector(make, qc),
        raws=raws,
        parameters=asdict(ctx.parameters),
        qc=qc,
    )
    return [product]
