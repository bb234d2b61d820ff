"""Recipe qc_science_image: an imaging OB's exposures reduced with its masters, coadded
and measured.

Each detector of each raw is reduced (``qclib.calib.science``: level, master bias,
master flat and its bad pixels, cosmic rays, sky, astrometric solution against the
field's reference catalogue, PSF) and scaled to the coadd's photometric units with its
zeropoint at its airmass: each detector's zeropoint above the atmosphere and the
extinction come from the night's certified extinction product, fitted to all its
standard fields (``qclib.workflow.extinction``), where there is one, else from the
block's ZEROPOINT product (``QC.ZPOINT.X0``) and the instrument's nominal extinction
(``[photometry] extinction_mag_per_airmass``).
Without a ZEROPOINT the coadd's zeropoint is measured on its own reference stars
(``QC.PHOTZP.FROM.FIELD`` = 1). The frames are coadded (``qclib.calib.coadd``) in
detector order, each detector's in time order, and the coadd is measured
(``qclib.calib.coadd_quality``).

Product ``SCIENCE_COADD``: extension ``COADD`` (flux per second: a source of magnitude
m gives 10^(-0.4 (m - PHOTZP)); its error; DQ 4 where no frame reaches) with the
coadd's QC; one header-only extension per detector with the QC of its frames; table
``SOURCES`` (the coadd's detected sources), table ``PSF`` (every star fitted on every
frame: detector, exposure, position on the sky and in the detector, FWHM, 1 - b/a and
major axis, for the PSF maps), tables ``STARS`` (astrometric offsets of the stars fitted
on the coadd) and ``PHOTOMETRY`` (measured against reference magnitudes). Its primary
header carries ESO's Phase 3 keywords of a science image (``qclib.recipes.phase3``).

Product ``SCIENCE_COADD_WEIGHT``: the coadd's weight map (its inverse variance, s^2;
0 where no frame reaches), the file the coadd's ``ASSON1`` names.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
from astropy.io import fits

from qclib import __version__
from qclib.calib.coadd import Coadd, CoaddSum, coadd_grid
from qclib.calib.coadd_quality import CoaddQuality, SourceTable, measure_coadd
from qclib.calib.dithered_sky import DitheredSky, measure_dithered_sky
from qclib.calib.dq import DQ_NO_DATA
from qclib.calib.parameters import ScienceConfig
from qclib.calib.science import (
    DetectorCalibration,
    FrameQuality,
    ReducedScience,
    ReferenceStars,
    reduce_science,
    remove_signature,
)
from qclib.config.instrument import parse_section
from qclib.errors import UnprocessableDataError
from qclib.products import DetectorProduct
from qclib.recipes import phase3
from qclib.recipes.base import (
    CalibrationReader,
    ProductResult,
    RawInput,
    RecipeContext,
    nominal_gain,
    qc_cards,
    write,
)
from qclib.recipes.fields import airmass_of, data_section_wcs, filter_of, reference_catalogue
from qclib.recipes.linearity import undo_nonlinearity

PRO_CATG = "SCIENCE_COADD"
WEIGHT_CATG = "SCIENCE_COADD_WEIGHT"
COADD_EXTNAME = "COADD"


def run(ctx: RecipeContext) -> list[ProductResult]:
    """Reduce, coadd and measure the block's science exposures (see the module)."""
    config: ScienceConfig = ctx.parameters
    geometry = ctx.geometry()
    raws = ctx.raws_of()
    ctx.require_setup(PRO_CATG, raws, "science")
    filt = filter_of(ctx, raws[0])
    reference = _reference(ctx, raws[0], filt)
    bias_input, flat_input = ctx.calibration("MASTER_BIAS"), ctx.calibration("MASTER_FLAT")
    zeropoint_inputs = ctx.calibrations_for("ZEROPOINT")
    bias, flat = CalibrationReader(bias_input), CalibrationReader(flat_input)
    night_inputs = ctx.calibrations_for("EXTINCTION")
    calibration = _Photometry(
        CalibrationReader(zeropoint_inputs[0]) if zeropoint_inputs else None,
        CalibrationReader(night_inputs[0]) if night_inputs else None,
        ctx.instrument.photometry.extinction_mag_per_airmass.get(filt, math.nan),
    )
    rows, cols = parse_section(geometry.data_section)
    origin = (rows.start, cols.start)
    pixel_scale = ctx.instrument.pixel_scale_arcsec
    detectors = ctx.detectors()
    footprints = [
        (geometry.data_shape, data_section_wcs(_extension(raw, name).header, origin))
        for raw in raws
        for name in detectors
    ]
    margin = math.ceil(config.max_wcs_offset_arcsec / pixel_scale) + 8
    total = CoaddSum(coadd_grid(footprints, margin))
    reader = ctx.stack_reader(raws)
    photzp = config.photzp if calibration.calibrated else math.nan

    fringes = filt in config.fringe_filters

    def make(extname: str) -> tuple[str, list[tuple[RawInput, ReducedScience]], str | None]:
        """A detector's frames reduced (their pixels, until coadded)."""
        zp_x0, extinction = calibration.of(extname)
        if calibration.calibrated and not math.isfinite(zp_x0):
            # Its frames would stay in ADU/s among calibrated ones: left out.
            return (
                extname,
                [],
                f"no zeropoint for {extname} in {calibration.names()} (no standard star "
                "measured there): left out of the coadd",
            )
        reduced, problem = [], None
        calib = _detector_calibration(ctx, raws[0], extname, bias, flat)
        stack = reader.read(extname)
        undo_nonlinearity(ctx, stack, calib.bias, extname, [ctx.exposure_time(r) for r in raws])
        signatures = [remove_signature(frame, geometry, calib) for frame in stack]
        if len(raws) >= config.sky_flat_min_frames:
            sky = measure_dithered_sky(
                [image for image, _ in signatures],
                [bad for _, bad in signatures],
                fringes=fringes,
                config=config,
            )
            skies[extname] = (_sky_qc(sky), sky.fringes)  # the sky flat is not kept
        for raw, frame, signature in zip(raws, stack, signatures, strict=True):
            try:
                reduced.append(
                    (
                        raw,
                        reduce_science(
                            frame,
                            geometry,
                            calib,
                            data_section_wcs(_extension(raw, extname).header, origin),
                            reference,
                            exptime_s=ctx.exposure_time(raw),
                            zeropoint_mag=zp_x0 - extinction * airmass_of(raw),
                            photzp=photzp,
                            pixel_scale_arcsec=pixel_scale,
                            config=config,
                            signature=signature,
                        ),
                    )
                )
            except UnprocessableDataError as err:
                problem = f"{raw.arcfile}: {err}"
        return extname, reduced, problem

    # Each detector's frames are coadded as they are handed on; only what was measured
    # on them is kept (a full OB's pixels with their weights are 11 GB).
    per_detector: dict[str, list[tuple[RawInput, FrameQuality]]] = {}
    skies: dict[str, tuple[dict[str, float], np.ndarray | None]] = {}
    problems: dict[str, str] = {}
    for extname, reduced, problem in ctx.each_detector(make):
        for _, frame in reduced:
            total.add(frame.data, frame.variance, frame.quality.astrometry.wcs)
        per_detector[extname] = [(raw, frame.quality) for raw, frame in reduced]
        if problem is not None:
            problems[extname] = problem
    if not any(per_detector.values()):
        reasons = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
        raise UnprocessableDataError(f"no science frame could be reduced ({reasons})")
    coadd = total.finish()
    fitted = [s.fwhm_px for reduced in per_detector.values() for _, f in reduced for s in f.stars]
    quality = measure_coadd(
        coadd,
        reference,
        photzp=0.0 if math.isnan(photzp) else photzp,
        fwhm_guess_px=float(np.median(fitted)) if fitted else 1.0 / pixel_scale,
        config=config,
        seed=zlib.crc32(ctx.block_id.encode()),
        electrons_per_unit=_electrons_per_unit(ctx, per_detector),
    )
    if math.isnan(photzp):  # no night zeropoint: the field's stars calibrate the coadd
        quality = _calibrated_on_field(quality)
    coadd_qc = _coadd_qc(quality, per_detector, raws, photzp)
    saturation = max(
        (
            _saturation_mag(ctx, raw, frame, *calibration.of(extname))
            for extname, reduced in per_detector.items()
            for raw, frame in reduced
        ),
        default=math.nan,
    )
    facts = _image_facts(ctx, raws, coadd, quality, coadd_qc, filt, config, saturation)
    qc: dict[str, dict[str, float]] = {}

    def products() -> Iterator[DetectorProduct]:
        dq = np.where(coadd.coverage == 0, DQ_NO_DATA, 0).astype(np.uint8)
        qc[COADD_EXTNAME] = coadd_qc
        yield DetectorProduct(
            COADD_EXTNAME,
            coadd.image,
            coadd.error,
            dq,
            qc_cards(ctx.instrument, PRO_CATG, coadd_qc),
            unit="1/s",
            cards=_wcs_cards(coadd),
        )
        for extname in detectors:
            values = _detector_qc(
                per_detector.get(extname, []), *calibration.of(extname), pixel_scale
            )
            sky_qc, fringe_frame = skies.get(extname, ({}, None))
            if values:
                values.update(sky_qc)
                qc[extname] = values
            yield DetectorProduct(
                extname,
                fringe_frame,
                None,
                None,
                qc_cards(ctx.instrument, PRO_CATG, values),
                unit="",
            )

    calibs = (bias_input, flat_input, *zeropoint_inputs, *night_inputs)
    parameters = {**asdict(config), "filter": filt, "extinction": calibration.nominal}
    product = write(
        ctx,
        PRO_CATG,
        products(),
        raws=raws,
        calibs=calibs,
        parameters=parameters,
        qc=qc,
        problems=problems,
        tables=lambda: [
            _sources_hdu(quality.sources),
            _psf_hdu(per_detector, raws),
            *_residual_hdus(quality, coadd.grid.wcs),
        ],
        primary_cards=phase3.image_cards(facts),
    )
    weight = write(
        ctx,
        WEIGHT_CATG,
        [DetectorProduct("WEIGHT", coadd.weight, None, None, {}, "s2", _wcs_cards(coadd))],
        raws=raws,
        calibs=calibs,
        parameters=parameters,
        primary_cards=phase3.weight_cards(),
    )
    return [product, weight]


def _image_facts(
    ctx: RecipeContext,
    raws: tuple[RawInput, ...],
    coadd: Coadd,
    quality: CoaddQuality,
    coadd_qc: dict[str, float],
    filt: str,
    config: ScienceConfig,
    saturation_mag: float,
) -> phase3.ImageFacts:
    """What the coadd's Phase 3 keywords say."""
    exptimes = [ctx.exposure_time(r) for r in raws]
    covered = coadd.coverage[coadd.coverage > 0]
    ny, nx = coadd.grid.shape
    ra, dec = coadd.grid.wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
    offsets = quality.astrometric_offsets_arcsec
    astrometry = [phase3.error_estimate(offsets[:, axis]) for axis in (0, 1)]
    _, photzp_err = phase3.error_estimate(quality.photometric_residuals_mag)
    primary = raws[0].scan.primary
    return phase3.ImageFacts(
        arcfiles=[r.arcfile for r in raws],
        weight_file=ctx.product_path(WEIGHT_CATG).name,
        exptimes_s=exptimes,
        mjd_obs=[float(r.scan.primary["MJD-OBS"]) for r in raws],  # type: ignore[arg-type]
        exptime_per_pixel_s=float(np.median(covered)) * float(np.mean(exptimes))
        if covered.size
        else 0.0,
        prog_id=str(primary.get("OBS.PROG.ID") or "") or None,
        ob_ids=[
            int(ob)  # type: ignore[call-overload]
            for ob in (r.scan.primary.get("OBS.ID") for r in raws)
            if isinstance(ob, int | str) and str(ob).lstrip("-").isdigit()
        ],
        obstech=str(primary.get("DPR.TECH") or "IMAGE"),
        filter=filt,
        centre_deg=(float(ra) % 360.0, float(dec)),
        photzp=coadd_qc["QC.PHOTZP"],
        photzp_err=photzp_err,
        system=ctx.instrument.photometry.system,
        limiting_mag=quality.limiting_mag,
        limit_sigma=config.limit_sigma,
        saturation_mag=saturation_mag,
        fwhm_arcsec=coadd_qc["QC.FWHM"],
        ellipticity=coadd_qc["QC.ELLIPTICITY"],
        random_error_deg=(astrometry[0][0] / 3600.0, astrometry[1][0] / 3600.0),
        systematic_error_deg=(astrometry[0][1] / 3600.0, astrometry[1][1] / 3600.0),
        software=f"qclib/{__version__}",
    )


def _electrons_per_unit(
    ctx: RecipeContext, per_detector: dict[str, list[tuple[RawInput, FrameQuality]]]
) -> float:
    """Photo-electrons behind one unit of the coadd where its frames overlap: each
    frame's electrons per ADU (times its NDIT reads) over its scale (``data = ADU x
    scale``), summed over the frames, the median over the detectors."""
    sums = [
        sum(_gain(raw, extname) * ctx.ndit(raw) / frame.scale for raw, frame in reduced)
        for extname, reduced in per_detector.items()
        if reduced
    ]
    return float(np.median(sums))


def _gain(raw: RawInput, extname: str) -> float:
    gain = nominal_gain(raw.scan, extname)
    assert gain is not None  # the frame was reduced with it (_detector_calibration)
    return gain


def _saturation_mag(
    ctx: RecipeContext, raw: RawInput, frame: FrameQuality, zp_x0: float, extinction: float
) -> float:
    """The magnitude at which a star's peak saturates on one detector of one exposure
    (``phase3.saturation_mag``; the master bias level, under 1.5 % of the full well,
    is not taken from the headroom); NaN without a zeropoint or fitted stars."""
    if not frame.stars or not math.isfinite(zp_x0):
        return math.nan
    return phase3.saturation_mag(
        zp_x0 - extinction * airmass_of(raw),
        ctx.exposure_time(raw),
        ctx.instrument.saturation_adu - frame.sky_adu,
        float(np.median([s.gamma_px for s in frame.stars])),
        float(np.median([s.alpha for s in frame.stars])),
    )


def _extension(raw: RawInput, extname: str):  # type: ignore[no-untyped-def]
    return next(h for h in raw.scan.extensions if h.extname == extname)


def _reference(ctx: RecipeContext, raw: RawInput, filt: str) -> ReferenceStars:
    table = reference_catalogue(ctx, raw, filt)
    return ReferenceStars(
        table["ra_deg"].to_numpy(float),
        table["dec_deg"].to_numpy(float),
        table["mag"].to_numpy(float),
        table["is_star"].to_numpy(bool),
        table["mag_err"].to_numpy(float),
    )


def _detector_calibration(
    ctx: RecipeContext,
    raw: RawInput,
    extname: str,
    bias: CalibrationReader,
    flat: CalibrationReader,
) -> DetectorCalibration:
    """A detector's masters and noise: the conversion factor and read noise its raw
    header states (``DET.OUT1.CONAD``, ``DET.OUT1.RON``), else the master bias's (or
    dark's) measured read noise (``QC.RON``). An infrared frame is the mean of NDIT
    reads: its noise is that of NDIT times the electrons per ADU, and of the read
    noise over the square root of NDIT."""
    gain = nominal_gain(raw.scan, extname)
    if gain is None:
        raise UnprocessableDataError(
            f"{raw.arcfile} [{extname}]: no DET.OUT1.CONAD: the cosmic-ray detection "
            "needs the detector's conversion factor"
        )
    header = _extension(raw, extname).header
    ron_e = header.get("DET.OUT1.RON")
    if isinstance(ron_e, int | float) and not isinstance(ron_e, bool) and ron_e > 0:
        ron_adu = float(ron_e) / gain
    else:
        measured = next(h for h in bias.scan.extensions if h.extname == extname).header
        ron_adu = float(measured.get("QC.RON", math.nan))  # type: ignore[arg-type]
    if not math.isfinite(ron_adu):
        raise UnprocessableDataError(
            f"{raw.arcfile} [{extname}]: no read noise (DET.OUT1.RON, or the master bias's QC.RON)"
        )
    reads = ctx.ndit(raw)
    return DetectorCalibration(
        bias.data(extname),
        flat.data(extname),
        flat.dq(extname),
        gain * reads,
        ron_adu / math.sqrt(reads),
        ctx.instrument.saturation_adu,
    )


@dataclass(frozen=True)
class _Photometry:
    """Where a detector's zeropoint above the atmosphere and the extinction come from:
    the night's certified extinction product (``QC.ZPOINT.X0.FIT``, ``QC.EXTINCTION``:
    all its standard fields fitted together), else the block's ZEROPOINT product
    (``QC.ZPOINT.X0``) and the instrument's nominal extinction."""

    zeropoints: CalibrationReader | None
    night: CalibrationReader | None
    nominal: float

    @property
    def calibrated(self) -> bool:
        return self.zeropoints is not None or self.night is not None

    def names(self) -> str:
        return " or ".join(r.calib.path.name for r in (self.night, self.zeropoints) if r)

    def of(self, extname: str) -> tuple[float, float]:
        """(zeropoint above the atmosphere, extinction) of a detector (NaN: none)."""
        if self.night is not None:
            zp, k = (
                _qc(self.night, extname, "QC.ZPOINT.X0.FIT"),
                _qc(self.night, extname, "QC.EXTINCTION"),
            )
            if math.isfinite(zp) and math.isfinite(k):
                return zp, k
        if self.zeropoints is None:
            return math.nan, self.nominal
        return _qc(self.zeropoints, extname, "QC.ZPOINT.X0"), self.nominal


def _qc(product: CalibrationReader, extname: str, name: str) -> float:
    """A product's QC value on a detector (NaN where it has none)."""
    hdu = next((h for h in product.scan.extensions if h.extname == extname), None)
    value = None if hdu is None else hdu.header.get(name)
    return float(value) if isinstance(value, int | float) else math.nan  # type: ignore[arg-type]


def _calibrated_on_field(quality: CoaddQuality) -> CoaddQuality:
    """A coadd in ADU/s put on the reference catalogue's scale: its zeropoint is the
    one its stars give."""
    from dataclasses import replace

    zp = quality.photometry.zeropoint
    columns = dict(quality.sources.columns)
    columns["MAG"] = columns["MAG"] + zp
    return replace(
        quality,
        sources=SourceTable(columns),
        star_mags=quality.star_mags + zp,
        limiting_mag=quality.limiting_mag + zp,
    )


def _coadd_qc(
    quality: CoaddQuality,
    per_detector: dict[str, list[tuple[RawInput, FrameQuality]]],
    raws: tuple[RawInput, ...],
    photzp: float,
) -> dict[str, float]:
    scale = quality.pixel_scale_arcsec
    residuals = quality.photometric_residuals_mag
    values = {
        "QC.PHOTZP": photzp if math.isfinite(photzp) else quality.photometry.zeropoint,
        "QC.PHOTZP.FROM.FIELD": 0.0 if math.isfinite(photzp) else 1.0,
        "QC.NCOMBINE": float(len(raws)),
        "QC.FWHM": float(np.median([f.fwhm_px for f in quality.psf])) * scale,
        "QC.ELLIPTICITY": float(np.median([f.ellipticity for f in quality.psf])),
        "QC.NPSFSTARS": float(len(quality.psf)),
        "QC.MAGLIM": quality.limiting_mag,
        "QC.NSOURCES": float(len(quality.sources)),
        "QC.ASTROM.RMS": _rms(quality.astrometric_residuals_arcsec),
        "QC.ASTROM.NSTARS": float(quality.astrometric_residuals_arcsec.size),
        "QC.PHOTOM.OFFSET": float(np.median(residuals)),
        "QC.PHOTOM.RMS": float(1.4826 * np.median(np.abs(residuals - np.median(residuals)))),
        "QC.PHOTOM.NSTARS": float(residuals.size),
        "QC.AIRMASS": float(np.mean([airmass_of(r) for r in raws])),
    }
    for i, raw in enumerate(raws, 1):
        fwhm = [
            s.fwhm_px
            for reduced in per_detector.values()
            for r, frame in reduced
            if r is raw
            for s in frame.stars
        ]
        if fwhm:
            values[f"QC.FWHM.EXP{i}"] = float(np.median(fwhm)) * scale
    return values


def _detector_qc(
    reduced: list[tuple[RawInput, FrameQuality]],
    zp_x0: float,
    extinction: float,
    pixel_scale: float,
) -> dict[str, float]:
    """One detector's QC over its frames: PSF (median over all fitted stars; the major
    axis as the mean of doubled angles), sky, astrometric fit, cosmic rays."""
    if not reduced:
        return {}
    stars = [s for _, f in reduced for s in f.stars]
    doubled = np.radians([2 * s.major_axis_deg for s in stars])
    angle = math.degrees(math.atan2(np.mean(np.sin(doubled)), np.mean(np.cos(doubled)))) / 2
    residuals = np.concatenate([f.astrometry.residuals_arcsec for _, f in reduced])
    values = {
        "QC.FWHM": float(np.median([s.fwhm_px for s in stars])) * pixel_scale,
        "QC.ELLIPTICITY": float(np.median([s.ellipticity for s in stars])),
        "QC.PSF.ANGLE": angle % 180.0,
        "QC.SKY.LEVEL": float(np.mean([f.sky_adu for _, f in reduced])),
        "QC.SKY.NOISE": float(np.mean([f.sky_noise_adu for _, f in reduced])),
        "QC.ASTROM.RMS": _rms(residuals),
        "QC.WCS.SHIFT": float(np.median([f.astrometry.shift_arcsec for _, f in reduced])),
        "QC.NCOSMIC": float(np.mean([f.cosmic_pixels for _, f in reduced])),
        "QC.NFRAMES": float(len(reduced)),
    }
    if math.isfinite(zp_x0):
        values["QC.ZPOINT.X0"] = zp_x0
        values["QC.EXTINCTION"] = extinction
    return values


def _sky_qc(sky: DitheredSky) -> dict[str, float]:
    """A detector's sky flat (its spread about 1) and fringes (the fringe frame's rms
    and each frame's scale, as fractions of the sky)."""
    values = {"QC.SKYFLAT.RMS": float(np.std(sky.sky_flat))}
    if sky.fringes is not None:
        rms = float(np.sqrt(np.mean(np.square(sky.fringes))))
        values["QC.FRINGE.RMS"] = rms
        values["QC.FRINGE.SCALE"] = float(np.median(sky.fringe_scales))
    return values


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else math.nan


def _wcs_cards(coadd) -> dict[str, tuple[float | int | None, str]]:  # type: ignore[no-untyped-def]
    """The coadd's WCS as header cards: a CD matrix (ESO's Phase 3 standard forbids
    CDELT), FITS 1-based CRPIX."""
    wcs = coadd.grid.wcs
    header = wcs.to_header()
    keep = ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2")
    cards = {key: (header[key], header.comments[key]) for key in keep}
    for (i, j), value in np.ndenumerate(wcs.pixel_scale_matrix):
        cards[f"CD{i + 1}_{j + 1}"] = (float(value), "[deg/pixel] linear transformation")
    cards["RADESYS"] = ("ICRS", "Equatorial coordinate system")
    return cards


def _sources_hdu(sources: SourceTable) -> fits.BinTableHDU:
    columns = [
        fits.Column(name, "D", unit=unit or None, array=sources.columns[name])
        for name, unit in SourceTable.COLUMNS
    ]
    return fits.BinTableHDU.from_columns(columns, name="SOURCES")


def _table(name: str, columns: list[tuple[str, str | None, np.ndarray]]) -> fits.BinTableHDU:
    return fits.BinTableHDU.from_columns(
        [fits.Column(n, "D", unit=u, array=np.asarray(a, float)) for n, u, a in columns],
        name=name,
    )


def _residual_hdus(quality: CoaddQuality, wcs) -> list[fits.BinTableHDU]:  # type: ignore[no-untyped-def]
    """Tables ``STARS`` (each star fitted on the coadd: position, its offset from the
    catalogue along the coadd's x and y) and ``PHOTOMETRY`` (each uncontaminated star
    measured: position, reference and measured magnitude)."""
    xy, offsets = quality.astrometric_xy, quality.astrometric_offsets_arcsec
    ra, dec = wcs.pixel_to_world_values(xy[:, 0], xy[:, 1]) if len(xy) else ([], [])
    phot = quality.photometric_xy
    return [
        _table(
            "STARS",
            [
                ("X", "pixel", xy[:, 0]),
                ("Y", "pixel", xy[:, 1]),
                ("RA", "deg", ra),
                ("DEC", "deg", dec),
                ("DX", "arcsec", offsets[:, 0]),
                ("DY", "arcsec", offsets[:, 1]),
            ],
        ),
        _table(
            "PHOTOMETRY",
            [
                ("X", "pixel", phot[:, 0]),
                ("Y", "pixel", phot[:, 1]),
                ("REF_MAG", "mag", quality.reference_mags),
                ("MAG", "mag", quality.star_mags),
            ],
        ),
    ]


def _psf_hdu(
    per_detector: dict[str, list[tuple[RawInput, FrameQuality]]], raws: tuple[RawInput, ...]
) -> fits.BinTableHDU:
    rows = []
    for extname, reduced in per_detector.items():
        for raw, frame in reduced:
            exposure = raws.index(raw) + 1
            for s in frame.stars:
                ra, dec = frame.astrometry.wcs.pixel_to_world_values(s.x_px, s.y_px)
                rows.append(
                    (
                        extname,
                        exposure,
                        float(ra),
                        float(dec),
                        s.x_px,
                        s.y_px,
                        s.fwhm_px,
                        s.ellipticity,
                        s.major_axis_deg,
                    )
                )
    names = ("DETECTOR", "EXPOSURE", "RA", "DEC", "X", "Y", "FWHM", "ELLIPTICITY", "THETA")
    formats = ("16A", "J", "D", "D", "D", "D", "D", "D", "D")
    units = (None, None, "deg", "deg", "pixel", "pixel", "pixel", None, "deg")
    arrays = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    return fits.BinTableHDU.from_columns(
        [
            fits.Column(n, f, unit=u, array=np.array(a))
            for n, f, u, a in zip(names, formats, units, arrays, strict=True)
        ],
        name="PSF",
    )
