"""Recipe qc_master_bias: master bias + hot pixels + bias QC, per detector."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from qclib.calib.bias import BiasConfig, make_master_bias
from qclib.products import DetectorProduct
from qclib.recipes.base import ProductResult, RecipeContext, StackReader, qc_cards, write

RECIPE = "qc_master_bias"


def run(ctx: RecipeContext, config: BiasConfig | None = None) -> list[ProductResult]:
    """Load each detector of every raw bias, combine, measure, write one product."""
    config = config or BiasConfig()
    geometry = ctx.geometry()
    raws = ctx.raws_of()
    ctx.uniform(raws, ["DET.READ.CLOCK", "DET.BINX", "DET.BINY"], "bias")
    reader = StackReader(raws, geometry)
    qc: dict[str, dict[str, float]] = {}

    def per_detector() -> Iterator[DetectorProduct]:
        for extname in ctx.detectors():
            master = make_master_bias(reader.read(extname), geometry, config)
            qc[extname] = master.qc
            cards = qc_cards(ctx.instrument, "MASTER_BIAS", master.qc)
            yield DetectorProduct(extname, master.data, master.error, master.dq, cards)

    product = write(
        ctx, "MASTER_BIAS", RECIPE, per_detector(), raws=raws, parameters=asdict(config), qc=qc
    )
    return [product]
