"""Recipes qc_read_gain (two flats in the block, two raw biases) and
qc_ir_detector_noise (two darks in the block, two raw flats): gain and read noise
by photon transfer, per detector. The product holds QC only (one header-only
extension per detector, as ESO's gain tables do).

Frames read out in channels (``Geometry.readout_channel_px``) lose their reference
levels per channel and column parity first (``qclib.calib.readout.reference_levels``):
offsets that differ between the frames of a pair would otherwise add to the variance
of their difference."""

from __future__ import annotations

import numpy as np

from qclib.calib.gain import measure_photon_transfer
from qclib.calib.readout import reference_levels
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError
from qclib.products import DetectorProduct
from qclib.recipes.base import (
    ProductResult,
    RecipeContext,
    qc_cards,
    write,
)
from qclib.recipes.linearity import LINEARITY_TAG, undo_nonlinearity
from qclib.stored_pixels import Frame


def _run(
    ctx: RecipeContext, pro_catg: str, other: str, block_holds_flats: bool
) -> list[ProductResult]:
    geometry = ctx.geometry()
    raws = ctx.raws_of()[:2]
    others = ctx.calibrations_for(other)[:2]
    if len(raws) < 2 or len(others) < 2:
        raise UnprocessableDataError(
            f"photon transfer needs two frames of each kind; the block has {len(raws)} "
            f"raw(s) and {len(others)} {' or '.join(ctx.spec.input(other).tags)}"
        )
    ctx.require_setup(pro_catg, raws, "raw")
    ndit = ctx.ndit(raws[0])
    reader = ctx.stack_reader(raws)
    readers = [ctx.raw_reader(c) for c in others]
    flat_headers = [r.scan.primary for r in (raws if block_holds_flats else readers)]
    flat_dits = [ctx.instrument.exposure_time(h) for h in flat_headers]
    qc: dict[str, dict[str, float]] = {}

    # Frames used as read are mapped in place: photon transfer converts only the rows
    # its levels take, and counts int16 differences from the maps (qclib.calib.gain).
    as_stored = geometry.readout_channel_px is None and not ctx.spec.takes(LINEARITY_TAG)

    def frames(extname: str) -> tuple[tuple[Frame, Frame], tuple[Frame, Frame]]:
        """The detector's (flats, darks)."""
        if as_stored:
            block = reader.mapped(extname)
            pair: tuple[Frame, Frame] = (block[0], block[1])
            second: tuple[Frame, Frame] = (readers[0].mapped(extname), readers[1].mapped(extname))
            return (pair, second) if block_holds_flats else (second, pair)
        stack = reader.read(extname)
        arrays = [stack[0], stack[1], readers[0].data(extname), readers[1].data(extname)]
        if geometry.readout_channel_px is not None:
            arrays = [level_removed(f, geometry) for f in arrays]
        if not block_holds_flats:
            arrays = arrays[2:] + arrays[:2]
        flats, darks = arrays[:2], arrays[2:]
        if ctx.spec.takes(LINEARITY_TAG):
            rows, cols = parse_section(geometry.data_section)
            dark = (darks[0][rows, cols] + darks[1][rows, cols]) / 2
            linear = np.stack(flats)
            undo_nonlinearity(ctx, linear, dark, extname, flat_dits)
            flats = [linear[0], linear[1]]
        return (flats[0], flats[1]), (darks[0], darks[1])

    def make(extname: str) -> tuple[dict[str, float], DetectorProduct]:
        flats, darks = frames(extname)
        # A dark pair's level is charge, whose shot noise leaves the read noise, only
        # where pixels beside the data give the electronic level; biases have none.
        charge = not block_holds_flats and geometry.has_level_pixels
        transfer = measure_photon_transfer(
            flats, darks, geometry, ndit=ndit, dark_signal_adu=None if charge else 0.0
        )
        values = transfer.qc()
        cards = qc_cards(ctx.instrument, pro_catg, values)
        return values, DetectorProduct(extname, None, None, None, cards)

    product = write(
        ctx,
        pro_catg,
        ctx.made_per_detector(make, qc),
        raws=raws,
        calibs=others,
        qc=qc,
        pro_type="QC",
    )
    return [product]


def level_removed(frame: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A new frame: the data section less its ``reference_levels``, the reference
    pixels (whose level that is) zero."""
    rows, cols = parse_section(geometry.data_section)
    out = np.zeros(frame.shape, np.float32)
    out[rows, cols] = frame[rows, cols] - reference_levels(frame, geometry)
    return out


def run_flat_pair(ctx: RecipeContext) -> list[ProductResult]:
    """Gain and read noise: the block's first two flats, two raw biases."""
    return _run(ctx, ctx.spec.products[0], "BIAS", block_holds_flats=True)


def run_dark_pair(ctx: RecipeContext) -> list[ProductResult]:
    """Gain and read noise: the block's first two darks, two raw flats."""
    return _run(ctx, ctx.spec.products[0], "FLAT", block_holds_flats=False)
