"""Flat-field recipes, per detector:

- qc_master_dome_flat: master dome flat and cold pixels (CCD; bias removed);
- qc_master_sky_flat: master twilight flat, and the MASTER_FLAT science uses (the
  dome flat's pixel response times the twilight's illumination), whose DQ extension
  is the bad-pixel map (hot from the master bias, cold from the dome flat);
- qc_ir_twilight_flat: master twilight flat (IR; master dark of the same DIT
  removed), bad pixels, and the confidence map (MASTER_CONF: the flat in per cent,
  0 on bad pixels) that HAWK-I's and VIRCAM's pipelines weight pixels with.
"""

from __future__ import annotations

import concurrent.futures
import queue
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np

from qclib.calib.confidence import Confidence, confidence_map
from qclib.calib.dq import DQ_COLD, DQ_HOT, DQ_NO_DATA
from qclib.calib.flat import (
    FlatConfig,
    MasterFlat,
    apply_illumination,
    illumination_correction,
    make_master_flat,
    measure_illumination_rms,
)
from qclib.products import DetectorProduct
from qclib.recipes.base import (
    CalibrationReader,
    ProductResult,
    RecipeContext,
    qc_cards,
    write,
)
from qclib.recipes.linearity import LINEARITY_TAG, undo_nonlinearity

_BAD = DQ_HOT | DQ_COLD | DQ_NO_DATA


class _FlatAbandonedError(Exception):
    """The flat failed: its confidence product, written beside it, is abandoned."""


def _flats(
    ctx: RecipeContext, background: CalibrationReader, config: FlatConfig
) -> Iterator[tuple[str, MasterFlat, np.ndarray]]:
    """Per detector: the master flat of the block's raws (linearised where the recipe
    was given a MASTER_LINEARITY), and the background's DQ."""
    geometry = ctx.geometry()
    raws = ctx.raws_of()
    reader = ctx.stack_reader(raws)
    exptimes = [ctx.exposure_time(r) for r in raws]
    linearised = ctx.spec.takes(LINEARITY_TAG) and bool(ctx.calibrations_for(LINEARITY_TAG))

    def make(extname: str) -> tuple[str, MasterFlat, np.ndarray]:
        under = background.data(extname)
        # int16 raws combined in place where nothing is linearised first.
        stack = None if linearised else reader.read_stored(extname)
        if stack is None:
            stack = reader.read(extname)
            undo_nonlinearity(ctx, stack, under, extname, exptimes)
        flat = make_master_flat(
            stack,
            geometry,
            exptimes,
            background=under,
            saturation_adu=ctx.instrument.saturation_adu,
            names=[r.arcfile for r in raws],
            config=config,
            min_frames=ctx.min_frames,
        )
        return extname, flat, background.dq(extname)

    return ctx.each_detector(make)


def run_dome(ctx: RecipeContext) -> list[ProductResult]:
    """Master dome flat (normalised), cold pixels in its DQ."""
    config: FlatConfig = ctx.parameters
    raws = ctx.raws_of()
    ctx.require_setup("MASTER_DOME_FLAT", raws, "dome flat")
    bias_input = ctx.calibration("MASTER_BIAS")
    qc: dict[str, dict[str, float]] = {}

    def per_detector() -> Iterator[DetectorProduct]:
        for extname, flat, _ in _flats(ctx, CalibrationReader(bias_input), config):
            qc[extname] = flat.qc
            cards = qc_cards(ctx.instrument, "MASTER_DOME_FLAT", flat.qc)
            yield DetectorProduct(extname, flat.data, flat.error, flat.dq, cards, unit="")

    product = write(
        ctx,
        "MASTER_DOME_FLAT",
        per_detector(),
        raws=raws,
        calibs=(bias_input,),
        parameters=asdict(config),
        qc=qc,
    )
    return [product]


def run_sky(ctx: RecipeContext) -> list[ProductResult]:
    """Master twilight flat, and the master flat (dome response x twilight illumination).

    Two passes, one detector in memory at a time: the first writes the twilight flat
    and keeps, per detector, only its illumination relative to the dome (8-pixel
    block medians: 0.5 MB for a 2k x 4k CCD) and its defect positions; the second
    writes the master flat.
    """
    config: FlatConfig = ctx.parameters
    raws = ctx.raws_of()
    ctx.require_setup("MASTER_SKY_FLAT", raws, "twilight flat")
    bias_input = ctx.calibration("MASTER_BIAS")
    dome_input = ctx.calibration("MASTER_DOME_FLAT")
    dome = CalibrationReader(dome_input)
    kept: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    qc_sky: dict[str, dict[str, float]] = {}
    qc_flat: dict[str, dict[str, float]] = {}

    def twilight_flats() -> Iterator[DetectorProduct]:
        for extname, flat, bias_dq in _flats(ctx, CalibrationReader(bias_input), config):
            qc_sky[extname] = flat.qc
            correction = illumination_correction(
                dome.data(extname), flat.data, box=config.illumination_box_px
            )
            bad = flat.dq | bias_dq
            where = np.flatnonzero(bad)
            kept[extname] = (correction, where, bad.ravel()[where])
            cards = qc_cards(ctx.instrument, "MASTER_SKY_FLAT", flat.qc)
            yield DetectorProduct(extname, flat.data, flat.error, flat.dq, cards, unit="")

    def master_flats() -> Iterator[DetectorProduct]:
        for extname in ctx.detectors():
            correction, where, bits = kept.pop(extname)
            master, error = apply_illumination(
                dome.data(extname), dome.data(f"{extname}.ERR"), correction
            )
            dq = dome.dq(extname)
            dq.ravel()[where] |= bits
            values = {
                "QC.FLAT.ILLUM.RMS": measure_illumination_rms(
                    correction, box=config.illumination_box_px, scale_px=config.smooth_box_px
                ),
                "QC.FLAT.NBADPIX": float(np.count_nonzero(dq & _BAD)),
                "QC.NCOLDPIX": float(np.count_nonzero(dq & DQ_COLD)),
                "QC.NHOTPIX": float(np.count_nonzero(dq & DQ_HOT)),
            }
            qc_flat[extname] = values
            cards = qc_cards(ctx.instrument, "MASTER_FLAT", values)
            yield DetectorProduct(extname, master, error, dq, cards, unit="")

    parameters = asdict(config)
    sky = write(
        ctx,
        "MASTER_SKY_FLAT",
        twilight_flats(),
        raws=raws,
        calibs=(bias_input,),
        parameters=parameters,
        qc=qc_sky,
    )
    flat = write(
        ctx,
        "MASTER_FLAT",
        master_flats(),
        raws=raws,
        calibs=(bias_input, dome_input),
        parameters=parameters,
        qc=qc_flat,
    )
    return [sky, flat]


def run_ir(ctx: RecipeContext) -> list[ProductResult]:
    """IR master twilight flat (dark of the same DIT removed) and its confidence map.

    The confidence product is written on a thread of its own, each detector as soon as
    the flat's is made: written after the flat, it took a third of a HAWK-I block
    (0.44 s of 1.54 s) with nothing else running."""
    config: FlatConfig = ctx.parameters
    raws = ctx.raws_of()
    ctx.require_setup("MASTER_TWILIGHT_FLAT", raws, "flat")
    dark_input = ctx.calibration("MASTER_DARK")
    # Each detector's confidence map (per cent of the flat, 0 where flagged) and flags,
    # kept as bytes until the confidence product takes them: three 4 MB planes a 2k x 2k
    # detector (the flags with the dark's, shared with the flat product).
    confidences: queue.Queue[tuple[str, Confidence] | None] = queue.Queue()
    qc: dict[str, dict[str, float]] = {}
    qc_conf: dict[str, dict[str, float]] = {}

    def flats() -> Iterator[DetectorProduct]:
        for extname, flat, dark_dq in _flats(ctx, CalibrationReader(dark_input), config):
            # From the flat as written (float32), as a reader of the product would see it.
            made = confidence_map(np.asarray(flat.data, np.float32), flat.dq, dark_dq, _BAD)
            values = {**flat.qc, "QC.FLAT.NBADPIX": float(made.n_bad)}
            qc[extname] = values
            confidences.put((extname, made))
            cards = qc_cards(ctx.instrument, "MASTER_TWILIGHT_FLAT", values)
            yield DetectorProduct(extname, flat.data, flat.error, made.dq, cards, unit="")

    def confidence_maps() -> Iterator[DetectorProduct]:
        for expected in ctx.detectors():
            made = confidences.get()
            if made is None:
                raise _FlatAbandonedError(ctx.block.id)
            extname, map_made = made
            if extname != expected:  # in_order hands the detectors on in order
                raise RuntimeError(f"confidence of {extname} where {expected} was due")
            confidence, zeros = map_made.image()
            values = {"QC.CONF.NZERO": float(zeros)}
            qc_conf[extname] = values
            cards = qc_cards(ctx.instrument, "MASTER_CONF", values)
            yield DetectorProduct(
                extname, confidence, np.zeros_like(confidence), map_made.flags, cards, unit="%"
            )

    parameters = asdict(config)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="confidence") as pool:
        conf_written = pool.submit(
            write,
            ctx,
            "MASTER_CONF",
            confidence_maps(),
            raws=raws,
            calibs=(dark_input,),
            parameters=parameters,
            qc=qc_conf,
            pro_type="CONFIDENCE",
        )
        try:
            flat_product = write(
                ctx,
                "MASTER_TWILIGHT_FLAT",
                flats(),
                raws=raws,
                calibs=(dark_input,),
                parameters=parameters,
                qc=qc,
            )
        except BaseException:
            confidences.put(None)  # the confidence product is abandoned with the flat
            raise
        conf = conf_written.result()
    return [flat_product, conf]
