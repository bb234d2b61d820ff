"""Recipe qc_zeropoint: standard-field photometry
against the field's reference catalogue, per detector: zeropoint, FWHM, ellipticity.

Each raw is reduced (bias level: the overscan's, or an IR array's reference pixels per
readout channel; master bias or dark; master flat), its catalogue stars placed with
its WCS, shifted onto the stars the image shows (the WCS is off by the telescope's
pointing error), and measured; values of several frames are averaged. Reference
magnitudes are the catalogue's plus the instrument's colour term (``[photometry]
colour_terms``; their errors from the catalogue's error column when it has one). A
detector without usable stars gets no values (it is reported, not fatal); a block
where no detector has any is unprocessable. The reference catalogue is
``data/catalogues/<OBJECT>.csv`` in the workspace (``qc ingest`` copies the one a
simulated night ships).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np
import pandas as pd

from qclib.calib.astrometry import find_catalogue_offset
from qclib.calib.dq import DQ_SATURATED
from qclib.calib.photometry import FieldPhotometry, PhotometryConfig, StarField, measure_field
from qclib.calib.readout import reference_levels
from qclib.calib.stats import clipped_stats
from qclib.config.instrument import parse_section
from qclib.errors import UnprocessableDataError
from qclib.products import DetectorProduct
from qclib.recipes.base import (
    CalibrationReader,
    ProductResult,
    RecipeContext,
    qc_cards,
    write,
)
from qclib.recipes.fields import airmass_of, filter_of, header_wcs, reference_catalogue
from qclib.recipes.linearity import undo_nonlinearity


def _stars(
    catalogue: pd.DataFrame, header: dict, origin: tuple[int, int], shape, margin: float
) -> StarField:  # type: ignore[no-untyped-def]
    x, y = header_wcs(header).all_world2pix(catalogue["ra_deg"], catalogue["dec_deg"], 0)
    x, y = x - origin[1], y - origin[0]
    near = (x > -margin) & (x < shape[1] + margin) & (y > -margin) & (y < shape[0] + margin)
    return StarField(
        x[near],
        y[near],
        np.asarray(catalogue["mag"])[near],
        np.asarray(catalogue["is_star"])[near],
        np.asarray(catalogue["mag_err"])[near],
    )


def run(ctx: RecipeContext) -> list[ProductResult]:
    """Zeropoint, image quality and WCS offset of a standard field, per detector: each
    raw's level removed (overscan or reference pixels), the background input (a master
    bias or the master dark of the DIT) subtracted, the master flat divided."""
    config: PhotometryConfig = ctx.parameters
    geometry = ctx.geometry()
    raws = ctx.raws_of()
    rows, cols = parse_section(geometry.data_section)
    filt = filter_of(ctx, raws[0])
    catalogue = reference_catalogue(ctx, raws[0], filt)
    extinction = ctx.instrument.photometry.extinction_mag_per_airmass.get(filt, math.nan)
    background_input = ctx.calibration("MASTER_BIAS")
    flat_input = ctx.calibration("MASTER_FLAT")
    background, flat = CalibrationReader(background_input), CalibrationReader(flat_input)
    reader = ctx.stack_reader(raws)
    qc: dict[str, dict[str, float]] = {}
    failures: dict[str, str] = {}
    pixel_scale = ctx.instrument.pixel_scale_arcsec
    seeing_guess_px = 1.0 / pixel_scale
    max_offset_px = config.max_wcs_offset_arcsec / pixel_scale

    def make(extname: str) -> tuple[dict[str, float], str | None, DetectorProduct]:
        """A detector's QC values, why its last failed frame failed, its product."""
        stack = reader.read(extname)
        under, response = background.data(extname), flat.data(extname)
        results: list[tuple[FieldPhotometry, float, float]] = []
        failure = None
        first: tuple[np.ndarray, np.ndarray, float] | None = None
        for raw, frame in zip(raws, stack, strict=True):
            saturated = frame[rows, cols] >= ctx.instrument.saturation_adu
            # IR: each readout channel's own level (CCD: the overscan's).
            levels = reference_levels(frame, geometry)[None, :]
            undo_nonlinearity(ctx, frame[None], under, extname, [ctx.exposure_time(raw)])
            # One new array, not three: a CCD's is 34 MB, pages the VM may back afresh.
            image = np.subtract(frame[rows, cols], levels)
            image -= under
            image /= response
            hdu = next(h for h in raw.scan.extensions if h.extname == extname)
            stars = _stars(
                catalogue, hdu.header, (rows.start, cols.start), image.shape, 50 + max_offset_px
            )
            sky = clipped_stats(image, sigma=3.0, maxiters=5)  # level and noise
            noise = sky.std
            if first is None:
                dq = flat.dq(extname)
                dq[saturated] |= DQ_SATURATED
                first = (image, dq, noise)
            try:
                offset = find_catalogue_offset(
                    image,
                    stars.x,
                    stars.y,
                    stars.mag,
                    fwhm_px=seeing_guess_px,
                    max_offset_px=max_offset_px,
                    sky=sky,
                )
                measured = measure_field(
                    image,
                    stars.shifted(offset.dx_px, offset.dy_px),
                    exptime_s=ctx.exposure_time(raw),
                    saturated=saturated,
                    fwhm_guess_px=seeing_guess_px,
                    noise_adu=noise,
                    config=config,
                )
            except UnprocessableDataError as err:
                failure = f"{raw.arcfile}: {err}"
                continue
            shift = float(np.hypot(offset.dx_px, offset.dy_px)) * pixel_scale
            results.append((measured, airmass_of(raw), shift))
        values: dict[str, float] = {}
        if results:
            zps = np.array([r.zeropoint for r, _, _ in results])
            airmass = float(np.mean([x for _, x, _ in results]))
            values = {
                "QC.ZPOINT": float(zps.mean()),
                "QC.ZPOINT.X0": float(zps.mean() + extinction * airmass),
                "QC.ZPOINT.ERR": _combined_error([r.zeropoint_err for r, _, _ in results]),
                "QC.AIRMASS": airmass,
                "QC.NSTARS": float(sum(r.n_stars for r, _, _ in results)),
                "QC.APCOR": float(np.mean([r.aperture_correction_mag for r, _, _ in results])),
                "QC.WCS.SHIFT": float(np.median([s for _, _, s in results])),
                "QC.WCS.RMS": float(np.median([r.position_rms_px for r, _, _ in results]))
                * pixel_scale,
                "QC.FWHM": float(np.median([r.fwhm_px for r, _, _ in results])) * pixel_scale,
                "QC.ELLIPTICITY": float(np.median([r.ellipticity for r, _, _ in results])),
            }
        cards = qc_cards(ctx.instrument, "ZEROPOINT", values)
        image, dq, noise = first  # type: ignore[misc]
        # The product is the first frame reduced; its uncertainty is the sky noise
        # (source photon noise needs a gain, which the READ_GAIN product holds).
        product = DetectorProduct(extname, image, np.full_like(image, noise), dq, cards)
        return values, failure, product

    def per_detector() -> Iterator[DetectorProduct]:
        """The detectors made on the recipe's detector threads, handed on in order."""
        for values, failure, product in ctx.each_detector(make):
            if values:
                qc[product.extname] = values
            if failure is not None:
                failures[product.extname] = failure
            yield product

    product = write(
        ctx,
        "ZEROPOINT",
        per_detector(),
        raws=raws,
        calibs=(background_input, flat_input),
        parameters={**asdict(config), "filter": filt, "extinction": extinction},
        qc=qc,
        problems=failures,
    )
    return [product]


def _combined_error(errors: list[float]) -> float:
    finite = [e for e in errors if math.isfinite(e)]
    if not finite:
        return math.nan
    return float(math.sqrt(sum(e * e for e in finite)) / len(finite))
