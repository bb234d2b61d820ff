"""Simulate one observing night of an instrument: raw FITS files plus ``truth.json``.

Files are laid out first (headers written, data space reserved under temporary
names); then each detector is synthesised for every exposure by one task, in a
process pool, writing its pixels straight into place. A detector's random
streams are keyed by (seed, exposure, detector), so the result is identical
whatever the number of workers. Files get their final names only when complete.

What does not change from night to night (each detector's truth and static pixel
maps, the sky's catalogues) is drawn from ``static_seed``, by default the seed:
a history of nights (``qclib.simulate.history``) keeps one static seed and gives
each night its own seed for the plan, the noise and the particle hits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qclib import __version__
from qclib.atomicfile import TEMP_PREFIX, write_text_atomic
from qclib.config.instrument import Geometry, InstrumentConfig, parse_section
from qclib.errors import ConfigError
from qclib.instruments import load_instrument
from qclib.memory import retained_memory
from qclib.simulate import headers as hdr
from qclib.simulate.noise import stream_key
from qclib.simulate.pixels import (
    HitRecord,
    reset_anomaly_in_frame,
    response_drop_map,
    synthesize_readout,
    synthesize_reset,
)
from qclib.simulate.plan import Exposure, plan_night
from qclib.simulate.sky import (
    Catalogue,
    StellarPsf,
    detector_wcs,
    field_origin,
    fringe_pattern,
    illumination,
    make_catalogue,
    render_sources,
)
from qclib.simulate.truth import (
    DetectorTruth,
    apply_overrides,
    build_detector_maps,
    draw_detector_truth,
)
from qclib.simulate.workers import each_as_done, simulator_pool

TRUTH_FILE = "truth.json"
SCALES = ("test", "full")
#: Kinds whose frames see no light.
DARK_KINDS = ("bias", "dark", "reset", "linearity_dark")
#: Kinds only infrared arrays take.
IR_ONLY_KINDS = ("reset", "linearity_dark", "linearity_flat")


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation wrote."""

    out_dir: Path
    files: list[Path]
    truth_path: Path
    bytes_written: int


@dataclass(frozen=True)
class _FileLayout:
    path: Path  # temporary path while being written
    final: Path
    data_offsets: dict[str, int]


@dataclass(frozen=True)
class _DetectorTask:
    instrument: InstrumentConfig
    geometry: Geometry
    truth: DetectorTruth
    exposures: list[Exposure]
    layouts: list[_FileLayout]
    catalogues: dict[str, Catalogue]
    seed: int
    static_seed: int


def _exposure_light(
    task: _DetectorTask, exposure: Exposure, cache: dict[str, np.ndarray]
) -> tuple[np.ndarray | None, int]:
    """Flux on the data region before pixel response, e-/s; and sources landed."""
    instrument, geometry, extname = task.instrument, task.geometry, task.truth.extname
    if exposure.kind in DARK_KINDS:
        return None, 0
    kind = "dome_flat" if exposure.kind in ("dome_flat", "linearity_flat") else "sky"
    if kind not in cache:
        cache[kind] = illumination(instrument, geometry, extname, kind=kind)
    light = np.full(geometry.data_shape, exposure.sky_e_per_s, dtype=np.float32)
    landed = 0
    target = exposure.template.target
    if exposure.kind in ("standard", "science") and target and exposure.filter:
        profile = instrument.simulator.filters[exposure.filter]
        e_per_s_at_mag0 = 10 ** (
            0.4 * (profile.zeropoint_mag - profile.extinction_mag_per_airmass * exposure.airmass)
        )
        # Stars land where the sky puts them, not where the raw's WCS says.
        wcs = detector_wcs(instrument, geometry, extname, exposure.ra_deg, exposure.dec_deg)
        rows, cols = parse_section(geometry.data_section)
        catalogue = task.catalogues[target]
        landed = render_sources(
            light,
            catalogue,
            wcs,
            (rows.start, cols.start),
            mags=catalogue.instrumental_mags(exposure.filter, profile),
            e_per_s_at_mag0=e_per_s_at_mag0,
            psf=StellarPsf.of_profile(
                instrument.simulator, exposure.seeing_arcsec / instrument.pixel_scale_arcsec
            ),
            field=field_origin(instrument, geometry, extname),
        )
        if exposure.fringe_scale:
            if "fringes" not in cache:
                cache["fringes"] = fringe_pattern(instrument, geometry, extname)
            amplitude = exposure.sky_e_per_s * profile.fringe_amplitude * exposure.fringe_scale
            light += np.float32(amplitude) * cache["fringes"]
    light *= cache[kind]
    return light, landed


def _fill_detector(task: _DetectorTask) -> list[dict[str, float | int]]:
    """Synthesise one detector in every exposure and write it into place, its
    temporaries served from memory the process keeps (``qclib.memory``: a full CCD's
    maps and charge images are 34-MB blocks, each fresh pages otherwise)."""
    with retained_memory():
        return _synthesize_detector(task)


def _synthesize_detector(task: _DetectorTask) -> list[dict[str, float | int]]:
    instrument, geometry, truth = task.instrument, task.geometry, task.truth
    sim = instrument.simulator
    maps = build_detector_maps(
        truth, geometry.data_shape, infrared=instrument.infrared, seed=task.static_seed
    )
    cache: dict[str, np.ndarray] = {}
    records = []
    summed = instrument.ndit_combination == "sum"
    # One frame buffer, reused: fresh pages cost about 2.2 s/GiB on this kind of VM.
    frame = np.empty(
        (geometry.naxis2, geometry.naxis1), dtype=np.uint16 if geometry.bitpix == 16 else np.float32
    )
    for exposure, layout in zip(task.exposures, task.layouts, strict=True):
        stream = (task.seed, 2, exposure.index, truth.index)
        rng = np.random.default_rng(list(stream))
        noise_key = stream_key(*stream)
        offset = float(rng.normal(0.0, sim.frame_offset_rms_adu))
        light, landed = _exposure_light(task, exposure, cache)
        stripes = _stripes(task, exposure)
        extra: dict[str, float] = {}
        if exposure.kind == "reset":
            if truth.reset_pattern_rms_adu and "reset_pattern" not in cache:
                cache["reset_pattern"] = _reset_pattern(task)
            synthesize_reset(
                frame,
                geometry=geometry,
                truth=truth,
                maps=maps,
                frame_offset_adu=offset,
                stripes_adu=stripes,
                reset_pattern_adu=cache.get("reset_pattern"),
                rng=rng,
                noise_key=noise_key,
            )
            hits = HitRecord(0, 0)
            if truth.reset_anomaly_adu:
                extra["reset_anomaly_adu"] = -truth.reset_anomaly_adu
        else:
            factor = None
            if light is not None and (truth.response_drop or truth.response_drop_rms):
                drop = float(
                    np.random.default_rng([task.seed, 11, exposure.index, truth.index]).normal(
                        truth.response_drop, truth.response_drop_rms
                    )
                )
                factor = response_drop_map(geometry.data_shape, truth, drop)
                extra["response_drop"] = drop
            _, hits = synthesize_readout(
                frame,
                geometry=geometry,
                truth=truth,
                maps=maps,
                light_e_per_s=light,
                exptime_s=exposure.exptime_s,
                dit_s=exposure.dit_s,
                ndit=exposure.ndit,
                infrared=instrument.infrared,
                readout_time_s=instrument.readout_time_s,
                frame_offset_adu=offset,
                saturation_adu=instrument.saturation_adu,
                particle_rate_per_cm2_per_s=sim.particle_rate_per_cm2_per_s,
                pixel_size_um=instrument.pixel_size_um,
                rng=rng,
                noise_key=noise_key,
                stripes_adu=stripes,
                response_factor=factor,
                ndit_sum=summed,
            )
            if instrument.infrared and truth.reset_anomaly_adu:
                reads = exposure.ndit if summed else 1
                extra["reset_anomaly_adu"] = reads * reset_anomaly_in_frame(truth, exposure.dit_s)
        if stripes is not None:
            rows = parse_section(geometry.data_section)[0]
            reads = exposure.ndit if summed and exposure.kind != "reset" else 1
            extra["stripe_rms_adu"] = reads * float(np.std(stripes[rows]))
        if frame.dtype == np.float32:
            frame.byteswap(inplace=True)  # FITS is big-endian; CCD frames already are
        _write_at(layout.path, frame, layout.data_offsets[truth.extname])
        records.append(
            {
                "frame_offset_adu": offset,
                "particle_events": hits.n_events,
                "particle_pixels": hits.n_pixels,
                "sources_on_detector": landed,
                **extra,
            }
        )
    return records


def _write_at(path: Path, frame: np.ndarray, offset: int) -> None:
    """Write a frame's bytes at ``offset`` of ``path`` (straight from its buffer)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(frame).cast("B")
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
    finally:
        os.close(fd)


def _reset_pattern(task: _DetectorTask) -> np.ndarray:
    """The reset level's fixed pixel pattern (NAXIS2, NAXIS1), ADU: static, so drawn
    from the static seed."""
    rng = np.random.default_rng([task.static_seed, 12, task.truth.index])
    shape = (task.geometry.naxis2, task.geometry.naxis1)
    return rng.normal(0.0, task.truth.reset_pattern_rms_adu, shape).astype(np.float32)


def stripe_group(instrument: InstrumentConfig, extname: str) -> int:
    """Which stripe pattern a detector shares (``stripe_shared_by``): its own (its
    index), its mosaic row's (the layout row) or everyone's (0)."""
    shared_by = instrument.simulator.stripe_shared_by
    if shared_by == "all":
        return 0
    if shared_by == "layout_row":
        return instrument.layout_position(extname)[0]
    return [d.extname for d in instrument.detectors].index(extname)


def _stripes(task: _DetectorTask, exposure: Exposure) -> np.ndarray | None:
    """The frame's row offsets (NAXIS2,), ADU, mean of its reads: drawn from a stream
    keyed by (seed, exposure, group), so every detector of a group draws the same."""
    sim, geometry = task.instrument.simulator, task.geometry
    if not (task.instrument.infrared and sim.stripe_rms_adu):
        return None
    group = stripe_group(task.instrument, task.truth.extname)
    rng = np.random.default_rng([task.seed, 9, exposure.index, group])
    reads = 1 if exposure.kind == "reset" else exposure.ndit
    return rng.normal(0.0, sim.stripe_rms_adu / np.sqrt(reads), geometry.naxis2)


def _lay_out_files(
    instrument: InstrumentConfig,
    geometry: Geometry,
    exposures: list[Exposure],
    truths: list[DetectorTruth],
    out_dir: Path,
) -> list[_FileLayout]:
    """Write every file's headers under a temporary name and reserve its data space."""
    sim = instrument.simulator
    nominal_gain = float(np.mean(sim.gain_e_per_adu))
    nominal_ron = float(np.mean(sim.read_noise_e))
    data_bytes = geometry.naxis1 * geometry.naxis2 * abs(geometry.bitpix) // 8
    padded = -(-data_bytes // 2880) * 2880
    layouts = []
    for exposure in exposures:
        final = out_dir / exposure.arcfile
        tmp = out_dir / f"{TEMP_PREFIX}sim-{exposure.arcfile}"
        chunks = [hdr.header_bytes(hdr.primary_header(instrument, exposure, len(truths)))]
        offsets = {}
        position = len(chunks[0])
        for truth in truths:
            wcs = detector_wcs(
                instrument, geometry, truth.extname, exposure.wcs_ra_deg, exposure.wcs_dec_deg
            )
            chip_no = (
                instrument.detectors.index(
                    next(d for d in instrument.detectors if d.extname == truth.extname)
                )
                + 1
            )
            ext = hdr.header_bytes(
                hdr.extension_header(
                    instrument, geometry, truth.extname, chip_no, wcs, nominal_gain, nominal_ron
                )
            )
            offsets[truth.extname] = position + len(ext)
            position += len(ext) + padded
            chunks.append(ext)
        with open(tmp, "wb") as handle:
            handle.truncate(position)  # data space reserved, zero-filled (sparse)
            handle.write(chunks[0])
            for chunk, extname in zip(chunks[1:], offsets, strict=True):
                handle.seek(offsets[extname] - len(chunk))
                handle.write(chunk)
        layouts.append(_FileLayout(path=tmp, final=final, data_offsets=offsets))
    return layouts


def _check_out_dir(out_dir: Path, identity: dict[str, object], extnames: list[str]) -> None:
    """Refuse a folder holding another simulation; accept one holding this one."""
    truth_path = out_dir / TRUTH_FILE
    if not truth_path.exists():
        return
    try:
        existing = json.loads(truth_path.read_text())
    except (OSError, json.JSONDecodeError):
        existing = {}
    # truth.json names a static seed only when it is not the seed, and its
    # "detectors" holds the simulated detectors' truth, not the selection.
    existing.setdefault("static_seed", existing.get("seed"))
    wanted = {"static_seed": identity.get("seed"), **identity}
    del wanted["detectors"]
    same = all(existing.get(k) == v for k, v in wanted.items())
    same = same and list(existing.get("detectors") or {}) == extnames
    if not same:
        raise ConfigError(
            f"{out_dir} already holds a different simulation ({truth_path}); "
            "choose an empty folder for each night"
        )


def _write_catalogue(path: Path, catalogue: Catalogue) -> None:
    """The reference catalogue a recipe reads: listed magnitudes and their errors."""
    filters = sorted(catalogue.mags)
    columns = [f"mag_{f}" for f in filters] + [f"err_{f}" for f in filters]
    lines = ["ra_deg,dec_deg," + ",".join(columns) + ",is_galaxy"]
    for i in range(len(catalogue)):
        mags = ",".join(f"{catalogue.listed_mags[f][i]:.4f}" for f in filters)
        errors = ",".join(f"{catalogue.errors[f]:.4f}" for f in filters)
        lines.append(
            f"{catalogue.ra_deg[i]:.7f},{catalogue.dec_deg[i]:.7f},{mags},{errors},"
            f"{int(catalogue.is_galaxy[i])}"
        )
    write_text_atomic(path, "\n".join(lines) + "\n")


def _write_true_catalogue(path: Path, catalogue: Catalogue, instrument: InstrumentConfig) -> None:
    """Truth beside the reference catalogue: true magnitudes in the catalogue's system
    (``mag_``) and in the instrument's (``inst_``: the colour term applied)."""
    filters = sorted(catalogue.mags)
    profiles = instrument.simulator.filters
    instrumental = {f: catalogue.instrumental_mags(f, profiles[f]) for f in filters}
    columns = [f"mag_{f}" for f in filters] + [f"inst_{f}" for f in filters]
    lines = ["ra_deg,dec_deg," + ",".join(columns) + ",is_galaxy"]
    for i in range(len(catalogue)):
        values = [catalogue.mags[f][i] for f in filters] + [instrumental[f][i] for f in filters]
        lines.append(
            f"{catalogue.ra_deg[i]:.7f},{catalogue.dec_deg[i]:.7f},"
            + ",".join(f"{v:.6f}" for v in values)
            + f",{int(catalogue.is_galaxy[i])}"
        )
    write_text_atomic(path, "\n".join(lines) + "\n")


def _psf_truth(instrument: InstrumentConfig, geometry: Geometry, extname: str) -> dict[str, float]:
    """The core's 1 - b/a and major-axis angle at a detector's centre."""
    psf = StellarPsf.of_profile(instrument.simulator, 1.0)
    x0, y0, xc, yc = field_origin(instrument, geometry, extname)
    ny, nx = geometry.data_shape
    e, angle = psf.shape_at((x0 + nx / 2 - xc) / xc, (y0 + ny / 2 - yc) / yc)
    return {"ellipticity_at_centre": float(e), "major_axis_deg": float(np.degrees(angle) % 180)}


def _ir_truth(instrument: InstrumentConfig) -> dict[str, object]:
    """The switched-on generic IR effects, for truth.json (nothing when all are off)."""
    sim = instrument.simulator
    out: dict[str, object] = {}
    if sim.detector_overrides:
        out["detector_overrides"] = [o.model_dump() for o in sim.detector_overrides]
    if instrument.infrared:
        effects: dict[str, object] = {"ndit_combination": instrument.ndit_combination}
        if sim.stripe_rms_adu:
            effects["stripes"] = {
                "rms_adu_per_read": sim.stripe_rms_adu,
                "shared_by": sim.stripe_shared_by,
                "groups": {
                    d.extname: stripe_group(instrument, d.extname) for d in instrument.detectors
                },
                "per_frame": "exposures[].detectors[].stripe_rms_adu: rms over the data rows "
                "of the row offsets the raw carries",
            }
        if any(sim.reset_anomaly_adu):
            effects["reset_anomaly"] = (
                "a double-correlated raw carries reset_anomaly_adu * exp(-s/tau) (per "
                "exposure: the value at the first pixel read, NDIT reads included); s = "
                "frame_readout_s * (row * channel width + column in channel) / (NAXIS2 * "
                "channel width), rows and columns 0-based over the whole raw; a reset frame "
                "carries -A exp(-s/tau)"
            )
        out["infrared_effects"] = effects
    return out


def simulate_night(
    instrument_name: str | InstrumentConfig,
    night: dt.date,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    scale: str = "full",
    workers: int | None = None,
    progress: bool = True,
    only: frozenset[str] | set[str] | None = None,
    detectors: Sequence[str] | None = None,
    degrade: Mapping[str, Mapping[str, float]] | None = None,
    static_seed: int | None = None,
    counts: Mapping[str, int] | None = None,
    pool: concurrent.futures.Executor | None = None,
) -> SimulationResult:
    """Simulate one night of raw frames with recorded truth.

    Parameters
    ----------
    instrument_name
        An instrument with a configuration folder (``OMEGACAM``, ``HAWKI``), or a
        validated configuration (a profile changed for a test).
    night
        The ESO night (date of the evening).
    out_dir
        Folder for the raw files, ``truth.json`` and ``catalogues/``.
    seed
        Same seed, same files, byte for byte.
    scale
        ``full`` (the real geometry) or ``test`` (few, small detectors).
    workers
        Processes synthesising detectors in parallel; default: one per core.
        ``1`` runs in this process.
    progress
        Show a progress bar.
    only
        Exposure kinds to write (``{"bias"}``; default all). The plan, and so every
        written frame's truth, is the same as in the full night.
    detectors
        EXTNAMEs to write (default: every detector of the scale). A detector's
        pixels and truth do not depend on which others are written: full-size
        detectors for a test, without the other 30 of a mosaic.
    degrade
        Replaced truth values by EXTNAME (``{"ESO_CCD_#66": {"read_noise_e": 13.0}}``):
        a detector as it is on this night. Recorded in ``truth.json``.
    static_seed
        Seed of what stays the same from night to night: each detector's truth and
        static pixel maps (defects, PRNU, bias structure) and the sky's catalogues.
        Default: ``seed``. Nights with one static seed and different seeds show the
        same detectors and sky with new noise, particle hits, seeing and timing.
    counts
        Exposures of a kind, replacing the plan's (``{"standard": 6}``: six standard
        visits spread over the first 60 % of the night). Recorded in ``truth.json``.
    pool
        Where to make the detectors instead (``workers`` is then not used): a
        ``simulator_pool`` shared with other simulations. The bytes do not depend on it.

    Raises
    ------
    ConfigError
        Unknown instrument or scale, or ``out_dir`` holds another simulation.
    """
    instrument = (
        instrument_name
        if isinstance(instrument_name, InstrumentConfig)
        else load_instrument(instrument_name)
    )
    if scale not in instrument.geometry:
        raise ConfigError(
            f"{instrument.name} has no '{scale}' scale: choose one of {sorted(instrument.geometry)}"
        )
    ir_only = sorted({item.kind for item in instrument.simulator.plan} & set(IR_ONLY_KINDS))
    if ir_only and not instrument.infrared:
        raise ConfigError(
            f"{instrument.name} [[simulator.plan]] has {ir_only} exposures, which only "
            "infrared arrays take (reset-read frames, DIT sequences)"
        )
    geometry = instrument.geometry[scale]  # type: ignore[index]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity = {
        "instrument": instrument.name,
        "night": night.isoformat(),
        "seed": seed,
        "scale": scale,
        "only": sorted(only) if only else None,
        "detectors": list(detectors) if detectors else None,
        "degraded": {k: dict(v) for k, v in (degrade or {}).items()} or None,
    }
    if counts:
        identity["counts"] = dict(sorted(counts.items()))
    if isinstance(instrument_name, InstrumentConfig):
        # A configuration given as an object may differ from the instrument's file.
        config_json = instrument.model_dump_json().encode()
        identity["instrument_config_sha256"] = hashlib.sha256(config_json).hexdigest()
    static_seed = seed if static_seed is None else static_seed
    if static_seed != seed:
        identity["static_seed"] = static_seed

    exposures, sun = plan_night(instrument, night, seed=seed, scale=scale, counts=counts)
    if only is not None:
        unknown = set(only) - {e.kind for e in exposures}
        if unknown:
            raise ConfigError(
                f"{instrument.name} nights have no exposures of kind "
                f"{sorted(unknown)}; kinds: {sorted({e.kind for e in exposures})}"
            )
        exposures = [e for e in exposures if e.kind in only]
    present = instrument.detectors_at(scale)
    if detectors:
        unknown = set(detectors) - {d.extname for d in present}
        if unknown:
            raise ConfigError(
                f"{instrument.name} at scale '{scale}' has no detector {sorted(unknown)}"
            )
        present = [d for d in present if d.extname in detectors]
    _check_out_dir(out_dir, identity, [d.extname for d in present])
    truths = apply_overrides(
        instrument,
        [
            draw_detector_truth(instrument, geometry, instrument.detectors.index(d), static_seed)
            for d in present
        ],
    )
    for extname, changes in (degrade or {}).items():
        position = next((i for i, t in enumerate(truths) if t.extname == extname), None)
        if position is None:
            raise ConfigError(f"cannot degrade {extname}: not simulated")
        try:
            truths[position] = dataclasses.replace(truths[position], **changes)
        except TypeError as err:
            raise ConfigError(f"cannot degrade {extname}: {err}") from None
    catalogues = {
        name: make_catalogue(
            instrument, geometry, name, instrument.simulator.targets[name], static_seed
        )
        for name in sorted({e.template.target for e in exposures if e.template.target})
    }
    layouts = _lay_out_files(instrument, geometry, exposures, truths, out_dir)
    tasks = [
        _DetectorTask(
            instrument, geometry, truth, exposures, layouts, catalogues, seed, static_seed
        )
        for truth in truths
    ]
    workers = workers or os.cpu_count() or 1
    per_detector: dict[str, list[dict[str, float | int]]] = {}
    bar = tqdm(
        total=len(tasks),
        desc=f"simulate {instrument.name} {night}",
        unit="detector",
        disable=not progress,
    )
    try:
        if pool is None and workers == 1:
            for task in tasks:
                per_detector[task.truth.extname] = _fill_detector(task)
                bar.update()
        else:
            with contextlib.ExitStack() as stack:
                on = pool or stack.enter_context(simulator_pool(min(workers, len(tasks))))
                done = stack.enter_context(
                    contextlib.closing(each_as_done(on, _fill_detector, tasks))
                )
                for task, filled in done:  # closed before the partial files go
                    per_detector[task.truth.extname] = filled
                    bar.update()
    except BaseException:
        for layout in layouts:
            layout.path.unlink(missing_ok=True)
        raise
    finally:
        bar.close()

    for layout in layouts:
        os.replace(layout.path, layout.final)
    for name, catalogue in catalogues.items():
        _write_catalogue(out_dir / "catalogues" / f"{name}.csv", catalogue)
        _write_true_catalogue(out_dir / "truth-catalogues" / f"{name}.csv", catalogue, instrument)

    truth = {
        **identity,
        "qclib_version": __version__,
        "geometry": geometry.model_dump(),
        "site": instrument.site.model_dump(),
        "sun_mjd": sun,
        "conventions": {
            "pixel_coordinates": "0-based (x, y) in the trimmed data region",
            "zeropoint_mag": "magnitude giving 1 e-/s above the atmosphere (response 1)",
            "raw_units": "ADU; IR raws are the average of NDIT reads of DIT seconds",
            "dark_current": "e-/s per pixel, accumulating over exposure + readout time",
            "catalogues": "catalogues/ lists magnitudes with random errors (err_ columns); "
            "truth-catalogues/ holds the true ones and the instrumental ones (colour term "
            "applied), from which the stars' light was made",
            "pointing_error_arcsec": "(east, north) of the raw's WCS minus the true pointing",
            "psf": "elliptical Moffat core (seeing_arcsec = geometric-mean FWHM, 1 - b/a "
            "quadratic from field centre to corners, major axis tangential) + round halo",
        },
        "psf": {
            "beta": instrument.simulator.moffat_beta,
            "halo_fraction": instrument.simulator.psf_halo_fraction,
            "halo_fwhm_ratio": instrument.simulator.psf_halo_fwhm_ratio,
            "halo_beta": instrument.simulator.psf_halo_beta,
            "ellipticity_centre_corner": list(instrument.simulator.psf_ellipticity),
            "detectors": {t.extname: _psf_truth(instrument, geometry, t.extname) for t in truths},
        },
        "filters": {k: v.model_dump() for k, v in instrument.simulator.filters.items()},
        "detectors": {t.extname: t.as_dict() for t in truths},
        **_ir_truth(instrument),
        "catalogues": {name: f"catalogues/{name}.csv" for name in catalogues},
        "true_catalogues": {name: f"truth-catalogues/{name}.csv" for name in catalogues},
        "exposures": [
            {
                "arcfile": e.arcfile,
                "kind": e.kind,
                "dpr": [e.template.dpr_catg, e.template.dpr_type, e.template.dpr_tech],
                "mjd_obs": e.mjd_obs,
                "exptime_s": e.exptime_s,
                "dit_s": e.dit_s,
                "ndit": e.ndit,
                "filter": e.filter,
                "target": e.template.target,
                "tpl_start": e.tpl_start,
                "tpl_expno": e.tpl_expno,
                "tpl_nexp": e.tpl_nexp,
                "ra_deg": e.ra_deg,
                "dec_deg": e.dec_deg,
                "offset_arcsec": list(e.offset_arcsec),
                "pointing_error_arcsec": list(e.pointing_error_arcsec),
                "airmass": e.airmass,
                "seeing_zenith_arcsec": e.seeing_zenith_arcsec,
                "seeing_arcsec": e.seeing_arcsec,
                "flux_e_per_s": e.sky_e_per_s,
                **({"fringe_scale": e.fringe_scale} if e.fringe_scale else {}),
                **({"check": True} if e.check else {}),
                "notes": list(e.notes),
                "detectors": {
                    extname: records[position] for extname, records in sorted(per_detector.items())
                },
            }
            for position, e in enumerate(exposures)
        ],
    }
    truth_path = out_dir / TRUTH_FILE
    write_text_atomic(truth_path, json.dumps(truth, indent=1))
    files = [layout.final for layout in layouts]
    return SimulationResult(
        out_dir=out_dir,
        files=files,
        truth_path=truth_path,
        bytes_written=sum(f.stat().st_size for f in files),
    )
