"""Recipe qc_master_bias: master bias + hot pixels + bias QC, per detector."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import numpy as np

from qclib.calib.bias import BiasConfig, make_master_bias
from qclib.fitsio import read_image
from qclib.products import DetectorProduct, Input, ProductSpec, setup_header, write_product
from qclib.recipes.base import ProductResult, RecipeContext

RECIPE = "qc_master_bias"


def run(ctx: RecipeContext, config: BiasConfig | None = None) -> list[ProductResult]:
    """Load each detector of every raw bias, combine, measure, write one product."""
    config = config or BiasConfig()
    geometry = ctx.geometry()
    detectors = ctx.detectors()
    units = ctx.instrument.qc.get("MASTER_BIAS", {})
    qc_by_detector: dict[str, dict[str, float]] = {}

    # One stack, reused for every detector (fresh memory is slow to touch).
    stack = np.empty((len(ctx.raws), geometry.naxis2, geometry.naxis1), np.float32)
    scratch = np.empty(geometry.naxis1 * geometry.naxis2 * 8, np.uint8)

    def per_detector() -> Iterator[DetectorProduct]:
        for extname in detectors:
            for i, raw in enumerate(ctx.raws):
                hdu = next(h for h in raw.scan.extensions if h.extname == extname)
                read_image(raw.path, hdu, out=stack[i], scratch=scratch)
            master = make_master_bias(stack, geometry, config)
            qc_by_detector[extname] = master.qc
            yield DetectorProduct(
                extname,
                master.data,
                master.error,
                master.dq,
                {
                    name: (
                        value,
                        f"[{units[name].unit}] {units[name].description}" if name in units else "",
                    )
                    for name, value in master.qc.items()
                },
            )

    first = ctx.raws[0]
    spec = ProductSpec(
        pro_catg="MASTER_BIAS",
        recipe=RECIPE,
        instrument=ctx.instrument.name,
        raw_header=first.scan.primary,
        inputs=tuple(Input(r.arcfile, r.category, r.sha256, "raw") for r in ctx.raws),
        parameters=asdict(config),
        config_hash=ctx.config_hash,
    )
    path = ctx.product_path("MASTER_BIAS")
    sha = write_product(path, spec, per_detector())
    return [
        ProductResult(
            "MASTER_BIAS",
            path,
            sha,
            qc_by_detector,
            setup_header(first.scan.primary),
            asdict(config),
        )
    ]
