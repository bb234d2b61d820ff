"""Recipe qc_linearity: an infrared array's non-linearity per readout channel, from a
dome-flat sequence at increasing DIT (the block) and raw darks of the same DITs
(``qclib.calib.linearity`` has the model and its sources).

The product MASTER_LINEARITY holds, per detector, the coefficients a_1..a_order of
each readout channel as a small image (one row per channel); the instrument's
``reset_read_s`` and its geometry's ``readout_channel_px`` complete what undoing the
non-linearity needs (``correction``), which the flat, gain and zeropoint recipes do
when their rules give them a MASTER_LINEARITY.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict

import numpy as np

from qclib.calib.linearity import (
    LinearityConfig,
    LinearityCorrection,
    linearise,
    measure_linearity,
)
from qclib.calib.parameters import LinearityParameters
from qclib.calib.readout import reference_levels, subtract_reference_levels
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError
from qclib.products import DetectorProduct
from qclib.recipes.base import (
    CalibInput,
    CalibrationReader,
    ProductResult,
    RawInput,
    RecipeContext,
    qc_cards,
    write,
)

#: Tag of a block's raw darks (one DIT and NDIT for each DIT of the flats).
DARK_TAG = "DARK"
#: Tag of the MASTER_LINEARITY other recipes undo the non-linearity with.
LINEARITY_TAG = "MASTER_LINEARITY"


def run(ctx: RecipeContext) -> list[ProductResult]:
    """Fit each detector's readout channels; QC.LINEARITY and QC.LINERROR per detector."""
    parameters: LinearityParameters = ctx.parameters
    geometry = ctx.geometry()
    flats = ctx.raws_of()
    darks = ctx.calibrations_for(DARK_TAG)
    dits = [ctx.exposure_time(raw) for raw in flats]
    matched = _darks_by_timing(ctx, flats, darks)
    config = LinearityConfig(
        saturation_adu=ctx.instrument.saturation_adu,
        order=parameters.order,
        reset_read_s=ctx.instrument.reset_read_s,
        reference_adu=parameters.reference_adu,
        channel_width_px=geometry.readout_channel_px,
    )
    reader = ctx.stack_reader(flats)
    qc: dict[str, dict[str, float]] = {}

    def per_detector() -> Iterator[DetectorProduct]:
        for extname in ctx.detectors():
            flat_data = subtract_reference_levels(reader.read(extname), geometry)
            dark_data = [_mean_dark(group, extname, geometry) for group in matched]
            fitted = measure_linearity(flat_data, dark_data, dits, config=config)
            qc[extname] = fitted.qc()
            coefficients = fitted.coefficients.astype(np.float32)
            yield DetectorProduct(
                extname,
                coefficients,
                np.zeros_like(coefficients),
                np.zeros(coefficients.shape, np.uint8),
                qc_cards(ctx.instrument, "MASTER_LINEARITY", qc[extname]),
                unit="",
            )

    product = write(
        ctx,
        "MASTER_LINEARITY",
        per_detector(),
        raws=flats,
        calibs=tuple(darks),
        parameters={**asdict(parameters), "reset_read_s": ctx.instrument.reset_read_s},
        qc=qc,
        pro_type="LINEARITY",
    )
    return [product]


def _darks_by_timing(
    ctx: RecipeContext, flats: Sequence[RawInput], darks: Sequence[CalibInput]
) -> list[list[CalibrationReader]]:
    """For each flat, the raw darks of its DIT and NDIT.

    Raises
    ------
    UnprocessableDataError
        A flat's DIT has no dark, naming it.
    """
    readers = [ctx.raw_reader(d) for d in darks]
    timing = {
        id(r): (ctx.instrument.exposure_time(r.scan.primary), ctx.instrument.ndit(r.scan.primary))
        for r in readers
    }
    out = []
    for flat in flats:
        wanted = (ctx.exposure_time(flat), ctx.ndit(flat))
        group = [r for r in readers if timing[id(r)] == wanted]
        if not group:
            raise UnprocessableDataError(
                f"linearity flat {flat.arcfile} (DIT {wanted[0]:g} s, NDIT {wanted[1]}) has "
                f"no dark of its DIT among the block's {len(readers)}: take one"
            )
        out.append(group)
    return out


def _mean_dark(group: list[CalibrationReader], extname: str, geometry: Geometry) -> np.ndarray:
    """The mean of a DIT's darks (reference levels removed), data section."""
    stack = np.stack([r.data(extname) for r in group])
    return subtract_reference_levels(stack, geometry).mean(axis=0)


def undo_nonlinearity(
    ctx: RecipeContext,
    frames: np.ndarray,
    background: np.ndarray | float,
    extname: str,
    dits_s: Sequence[float],
) -> None:
    """Linearise raw frames (frames, NAXIS2, NAXIS1) of one detector in place, when
    the recipe was given a MASTER_LINEARITY: each frame's data section less its
    reference levels and ``background`` (the dark of its DIT: the non-linearity acts on
    the charge) is linearised, then both are put back. Nothing happens without one."""
    chosen = ctx.calibrations_for(LINEARITY_TAG) if ctx.spec.takes(LINEARITY_TAG) else ()
    if not chosen:
        return
    geometry = ctx.geometry()
    correction = LinearityCorrection(
        coefficients=CalibrationReader(chosen[0]).data(extname).astype(np.float64),
        reset_read_s=ctx.instrument.reset_read_s,
        channel_width_px=geometry.readout_channel_px,
    )
    rows, cols = parse_section(geometry.data_section)
    for frame, dit in zip(frames, dits_s, strict=True):
        under = reference_levels(frame, geometry)[None, :] + background
        frame[rows, cols] = linearise(frame[rows, cols] - under, correction, dit) + under
