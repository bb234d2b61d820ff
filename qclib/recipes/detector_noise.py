"""Recipes qc_read_gain (CCD: two dome flats and two biases) and
qc_hawki_detector_noise (IR: two darks and two twilight flats): gain and read noise
by photon transfer, per detector. The product holds QC only (one header-only
extension per detector, as ESO's gain tables do).

IR frames read out in channels lose their reference levels per channel and column
parity first (``qclib.calib.readout.reference_levels``): offsets that differ between
the frames of a pair would otherwise add to the variance of their difference."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from qclib.calib.gain import measure_photon_transfer
from qclib.calib.readout import reference_levels
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError
from qclib.products import DetectorProduct
from qclib.recipes.base import (
    CalibrationReader,
    ProductResult,
    RecipeContext,
    StackReader,
    qc_cards,
    write,
)

RECIPE = "qc_read_gain"
RECIPE_IR = "qc_hawki_detector_noise"


def _run(ctx: RecipeContext, recipe: str, pro_catg: str, other_tag: str) -> list[ProductResult]:
    geometry = ctx.geometry()
    raws = ctx.raws_of()[:2]
    others = ctx.calibrations.get(other_tag, ())[:2]
    if len(raws) < 2 or len(others) < 2:
        raise UnprocessableDataError(
            f"photon transfer needs two frames of each kind; the block has {len(raws)} "
            f"raw(s) and {len(others)} {other_tag}"
        )
    infrared = ctx.instrument.infrared
    ctx.uniform(raws, ["DET.NDIT", "DET.NCORRS.NAME"] if infrared else ["EXPTIME"], "raw")
    ndit = int(raws[0].scan.primary.get("DET.NDIT", 1) or 1)  # type: ignore[arg-type]
    reader = StackReader(raws, geometry)
    readers = [CalibrationReader(c) for c in others]
    qc: dict[str, dict[str, float]] = {}

    def per_detector() -> Iterator[DetectorProduct]:
        for extname in ctx.detectors():
            stack = reader.read(extname)
            pair = (stack[0], stack[1])
            second = (readers[0].data(extname), readers[1].data(extname))
            if geometry.readout_channel_px is not None:
                pair = tuple(level_removed(f, geometry) for f in pair)  # type: ignore[assignment]
                second = tuple(level_removed(f, geometry) for f in second)  # type: ignore[assignment]
            flats, darks = (second, pair) if infrared else (pair, second)
            # CCD: the pair are biases, whose level above the overscan is no charge.
            transfer = measure_photon_transfer(
                flats, darks, geometry, ndit=ndit, dark_signal_adu=None if infrared else 0.0
            )
            qc[extname] = transfer.qc()
            cards = qc_cards(ctx.instrument, pro_catg, qc[extname])
            yield DetectorProduct(extname, None, None, None, cards)

    product = write(
        ctx, pro_catg, recipe, per_detector(), raws=raws, calibs=others, qc=qc, pro_type="QC"
    )
    return [product]


def level_removed(frame: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A new frame: the data section less its ``reference_levels``, the reference
    pixels (whose level that is) zero."""
    rows, cols = parse_section(geometry.data_section)
    out = np.zeros(frame.shape, np.float32)
    out[rows, cols] = frame[rows, cols] - reference_levels(frame, geometry)
    return out


def run(ctx: RecipeContext) -> list[ProductResult]:
    """CCD gain and read noise: the block's first two dome flats, two raw biases."""
    return _run(ctx, RECIPE, "READ_GAIN", "BIAS")


def run_ir(ctx: RecipeContext) -> list[ProductResult]:
    """IR gain and read noise: the block's first two darks, two twilight flats."""
    return _run(ctx, RECIPE_IR, "MASTER_READGAIN", "FLAT_TWILIGHT")
