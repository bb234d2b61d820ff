"""Recipe qc_master_reset: master reset of an infrared array's reset-read frames (read
uncorrelated: the reset level a double-correlated frame cancels), per detector.

The master is the pixel-wise median of the raw resets; its QC parameters are the
instrument catalogue's generic measures (VIRCAM's QC.RESETMED, QC.RESETRMS, and
QC.RESETDIFF_* against the previous master reset), so the recipe computes none itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from qclib.calib.combine import median_combine
from qclib.calib.dq import DQ_NO_DATA
from qclib.calib.readout import check_frames
from qclib.config.instrument import parse_section
from qclib.products import DetectorProduct
from qclib.recipes.base import ProductResult, RecipeContext, write


def run(ctx: RecipeContext) -> list[ProductResult]:
    """Median of each detector's reset frames, written with its catalogue QC."""
    geometry = ctx.geometry()
    raws = ctx.raws_of()
    ctx.require_setup("MASTER_RESET", raws, "reset")
    reader = ctx.stack_reader(raws)
    rows, cols = parse_section(geometry.data_section)
    qc: dict[str, dict[str, float]] = {}

    def per_detector() -> Iterator[DetectorProduct]:
        for extname in ctx.detectors():
            data = reader.read(extname)[:, rows, cols]
            check_frames(
                data,
                names=[r.arcfile for r in raws],
                min_frames=ctx.min_frames,
                what="reset",
                saturation_adu=ctx.instrument.saturation_adu,
            )
            master, error, count = median_combine(data)
            dq = np.where(count == 0, DQ_NO_DATA, 0).astype(np.uint8)
            qc[extname] = {}
            yield DetectorProduct(extname, master, error, dq, {})

    return [write(ctx, "MASTER_RESET", per_detector(), raws=raws, qc=qc)]
