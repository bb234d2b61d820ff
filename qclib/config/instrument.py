"""Instrument configuration: one validated TOML file per instrument.

Adding an instrument needs configuration, not code (ARCHITECTURE §4): the
detector layout, raw-frame geometry, site, the keywords ingest requires and the
simulator's profile all live in ``qclib/instruments/<name>/<name>.toml``.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qclib.errors import ConfigError

_SECTION = re.compile(r"^\[(\d+):(\d+),(\d+):(\d+)\]$")


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_section(text: str) -> tuple[slice, slice]:
    """FITS section ``[x1:x2,y1:y2]`` (1-based, inclusive) → numpy ``(rows, cols)`` slices.

    >>> parse_section("[49:2096,1:4100]")
    (slice(0, 4100, None), slice(48, 2096, None))
    """
    match = _SECTION.match(text.replace(" ", ""))
    if not match:
        raise ValueError(f"not a FITS section '[x1:x2,y1:y2]': {text!r}")
    x1, x2, y1, y2 = (int(g) for g in match.groups())
    if x1 < 1 or y1 < 1 or x2 < x1 or y2 < y1:
        raise ValueError(f"empty or reversed FITS section: {text!r}")
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


class Site(Strict):
    """Where the telescope is; the time zone defines the ESO night (noon to noon)."""

    name: str
    timezone: str = Field(description="IANA time zone, e.g. America/Santiago")
    longitude_deg: float = Field(ge=-180, le=180, description="East-positive longitude")
    latitude_deg: float = Field(ge=-90, le=90)
    elevation_m: float


class Detector(Strict):
    """One detector (one image extension of a raw file)."""

    extname: str = Field(description="EXTNAME of its extension, the key detectors go by")
    chip_id: str = Field(description="ESO DET CHIP ID")


class Geometry(Strict):
    """Raw-frame geometry of one simulation/readout scale."""

    naxis1: int = Field(gt=0)
    naxis2: int = Field(gt=0)
    bitpix: Literal[16, -32] = Field(description="16: int16 + BZERO=32768; -32: float32")
    data_section: str = Field(description="Light-sensitive pixels, FITS [x1:x2,y1:y2]")
    prescan_section: str | None = None
    overscan_section: str | None = Field(None, description="Serial overscan columns")
    detectors: list[str] | None = Field(
        None, description="EXTNAMEs present at this scale; omitted means all detectors"
    )
    gap_x_px: int = Field(ge=0, description="Gap between mosaic columns on the sky")
    gap_y_px: int = Field(ge=0, description="Gap between mosaic rows on the sky")
    readout_channel_px: int | None = Field(
        None,
        gt=0,
        description="IR arrays: width (columns) of a vertical readout channel, whose "
        "level its reference rows measure; omitted means one level per frame",
    )

    @field_validator("data_section", "prescan_section", "overscan_section")
    @classmethod
    def _section(cls, value: str | None) -> str | None:
        if value is not None:
            parse_section(value)
        return value

    @model_validator(mode="after")
    def _inside(self) -> Geometry:
        for text in (self.data_section, self.prescan_section, self.overscan_section):
            if text is None:
                continue
            rows, cols = parse_section(text)
            if rows.stop > self.naxis2 or cols.stop > self.naxis1:
                raise ValueError(f"section {text} lies outside {self.naxis1}x{self.naxis2}")
        width = self.readout_channel_px
        if width is not None and (self.naxis1 % width or width % 2):
            raise ValueError(
                f"readout_channel_px = {width} does not split {self.naxis1} columns "
                "into whole channels of an even number of columns"
            )
        return self

    @property
    def data_shape(self) -> tuple[int, int]:
        rows, cols = parse_section(self.data_section)
        return rows.stop - rows.start, cols.stop - cols.start


class IngestRules(Strict):
    """What a raw file must carry to be accepted."""

    mandatory_keywords: list[str] = Field(min_length=1)
    instrume_values: list[str] = Field(
        min_length=1, description="INSTRUME values that mean this instrument"
    )


class FilterProfile(Strict):
    """Photometric truth of one filter for the simulator."""

    zeropoint_mag: float = Field(description="Magnitude giving 1 ADU/s above the atmosphere")
    extinction_mag_per_airmass: float = Field(ge=0)
    sky_mag_per_arcsec2: float = Field(description="Dark night sky brightness")
    dome_flat_e_per_s: float = Field(gt=0)
    twilight_start_e_per_s: float = Field(gt=0, description="Sky at the first twilight flat")
    catalogue_error_mag: float = Field(
        0.0, ge=0, description="Random error of the reference catalogue's magnitudes"
    )
    colour: tuple[str, str] | None = Field(
        None, description="Two filters whose magnitude difference is the colour term's colour"
    )
    colour_term: float = Field(
        0.0, description="Instrumental minus catalogue magnitude per magnitude of colour"
    )


class TargetField(Strict):
    """A sky field the simulator can point at, with its seeded source population."""

    ra_deg: float = Field(ge=0, lt=360)
    dec_deg: float = Field(ge=-90, le=90)
    stars_per_arcmin2: float = Field(gt=0)
    star_mag_range: tuple[float, float]
    galaxies_per_arcmin2: float = Field(0.0, ge=0)


ExposureKind = Literal["bias", "dark", "dome_flat", "twilight_flat", "standard", "science", "sky"]
NightPart = Literal["afternoon", "evening_twilight", "night", "morning_twilight", "morning"]


class PlannedExposure(Strict):
    """One template of the simulated night: ``count`` exposures of one kind."""

    kind: ExposureKind
    when: NightPart
    count: int = Field(ge=1)
    count_test: int | None = Field(None, ge=1, description="Count at --scale test")
    exptime_s: float = Field(ge=0, description="EXPTIME; for IR, DIT x NDIT")
    dit_s: float | None = Field(None, gt=0, description="IR detector integration time")
    ndit: int | None = Field(None, ge=1)
    filter: str | None = None
    dpr_catg: str
    dpr_type: str
    dpr_tech: str
    tpl_id: str
    tpl_name: str
    obs_name: str
    prog_id: str
    target: str | None = Field(None, description="Field name for standards and science")
    dither_arcsec: float = Field(0.0, ge=0, description="Random jitter box half-width")
    pair: bool = Field(False, description="Take exposures in equal-level pairs (gain)")


#: Detector properties a simulated history may change (fields of the simulator's
#: DetectorTruth; tests/simulate/test_history.py checks that they are).
DriftField = Literal[
    "gain_e_per_adu",
    "read_noise_e",
    "bias_level_adu",
    "bias_gradient_x_adu",
    "bias_gradient_y_adu",
    "bias_pattern_rms_adu",
    "dark_current_e_per_s",
    "nonlinearity_per_adu",
    "prnu_rms",
]


class HistoryCreep(Strict):
    """A slow, monotonic change of one detector property over a simulated history.

    On night ``i`` of ``n`` the property is ``start + (end - start) * t**power`` with
    ``t = i / (n - 1)``: ``start`` (the detector's drawn value) on the first night,
    exactly ``end`` on the last, whatever the number of nights.
    """

    detector: str = Field(description="EXTNAME of the detector that drifts")
    field: DriftField = Field(description="The property that drifts, in its truth unit")
    end: float = Field(description="True value on the last night of the history")
    power: float = Field(
        2.0, gt=0, description="Shape in time: 1 linear, 2 slow at first then faster"
    )
    text: str = Field(min_length=1, description="What happens, in words, for history.json")


class HistoryIntervention(Strict):
    """A recorded intervention: from its night on, some detector properties step.

    Its night is ``round(at_fraction * (n - 1))`` of a history of ``n`` nights
    (0 = the first), kept after the first night so that there is a before.
    """

    at_fraction: float = Field(
        2 / 3, gt=0, le=1, description="When, as a fraction of the history's length"
    )
    text: str = Field(min_length=1, description="The quality-event text (what was done)")
    detectors: list[str] = Field(
        default_factory=list, description="EXTNAMEs affected (empty: every detector)"
    )
    add: dict[DriftField, float] = Field(
        default_factory=dict, description="Added to each property (truth units)"
    )
    multiply: dict[DriftField, float] = Field(
        default_factory=dict, description="Each property multiplied by this factor"
    )

    @model_validator(mode="after")
    def _changes_something(self) -> HistoryIntervention:
        if not self.add and not self.multiply:
            raise ValueError("an intervention needs 'add' or 'multiply'")
        both = set(self.add) & set(self.multiply)
        if both:
            raise ValueError(f"{sorted(both)} both added to and multiplied: choose one")
        if any(f <= 0 for f in self.multiply.values()):
            raise ValueError("multiply factors must be positive")
        return self


class HistoryProfile(Strict):
    """The slow real changes of a simulated multi-night history (``qc simulate --nights``).

    Without it a history has the same detectors every night and no drift.
    """

    creep: list[HistoryCreep] = Field(
        default_factory=list, description="Slow drifts, each reaching its end on the last night"
    )
    interventions: list[HistoryIntervention] = Field(
        default_factory=list, description="Steps on recorded nights (quality events)"
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> HistoryProfile:
        for creep in self.creep:
            for step in self.interventions:
                hit = not step.detectors or creep.detector in step.detectors
                if hit and creep.field in {*step.add, *step.multiply}:
                    raise ValueError(
                        f"{creep.detector} {creep.field} both creeps and steps: a creep "
                        "must end on its configured value, so keep them on different fields"
                    )
        return self


class SimulatorProfile(Strict):
    """Ranges from which the simulator draws each detector's truth, and the night plan."""

    gain_e_per_adu: tuple[float, float]
    read_noise_e: tuple[float, float]
    bias_level_adu: tuple[float, float]
    bias_gradient_adu: float = Field(ge=0, description="Peak-to-peak large-scale bias structure")
    bias_pattern_rms_adu: float = Field(ge=0, description="Fixed column-pattern rms")
    frame_offset_rms_adu: float = Field(ge=0, description="Frame-to-frame bias level jitter")
    dark_current_e_per_hr: tuple[float, float]
    hot_pixel_fraction: float = Field(ge=0, lt=0.01)
    hot_pixel_e_per_s: tuple[float, float]
    cold_pixel_fraction: float = Field(ge=0, lt=0.01)
    cold_pixel_response: tuple[float, float]
    bias_offset_adu: tuple[float, float] = Field(
        (0.0, 0.0), description="Level of the data region above the overscan level (CCD)"
    )
    bias_edge_ramp_fraction: float = Field(
        0.0, ge=0, le=1, description="Share of CCDs whose bias rises towards the prescan"
    )
    bias_edge_ramp_adu: tuple[float, float] = Field(
        (0.0, 0.0), description="That rise at the first data column next to the prescan"
    )
    bias_edge_ramp_px: float = Field(8.0, gt=0, description="Its e-folding length, columns")
    bad_columns: tuple[int, int] = Field(
        (0, 0), description="Bad (low-response) columns per detector, drawn in this range"
    )
    bad_column_response: tuple[float, float] = Field(
        (0.0, 0.6), description="Response of a bad column's pixels"
    )
    channel_offset_rms_adu: float = Field(
        0.0, ge=0, description="IR: per-frame offset of each readout channel (reference pixels too)"
    )
    even_odd_rms_adu: float = Field(
        0.0, ge=0, description="IR: per-frame offset between even and odd columns of a channel"
    )
    correlated_noise_rms_adu: float = Field(
        0.0, ge=0, description="IR: 1/f noise along the readout, common to all channels (one read)"
    )
    prnu_rms: float = Field(ge=0, lt=0.2)
    illumination_amplitude: float = Field(ge=0, lt=0.5)
    nonlinearity_per_adu: float = Field(le=0, description="Quadratic coefficient: adu*(1+c*adu)")
    particle_rate_per_cm2_per_s: float = Field(ge=0)
    seeing_arcsec: tuple[float, float]
    moffat_beta: float = Field(gt=1)
    psf_halo_fraction: float = Field(0.0, ge=0, lt=0.5, description="Star light in a wide halo")
    psf_halo_fwhm_ratio: float = Field(3.5, ge=1, description="Halo FWHM / core FWHM")
    psf_halo_beta: float = Field(3.0, gt=1, description="Moffat power of the halo")
    psf_ellipticity: tuple[float, float] = Field(
        (0.0, 0.0),
        description="Core 1 - b/a at the field centre and corners (quadratic in radius, "
        "major axis tangential)",
    )
    pointing_error_arcsec: float = Field(
        0.0, ge=0, description="Largest error of the WCS the raws carry (uniform in a disc)"
    )
    filters: dict[str, FilterProfile]
    targets: dict[str, TargetField]
    plan: list[PlannedExposure] = Field(min_length=1)
    history: HistoryProfile = Field(
        default_factory=HistoryProfile, description="Drifts and interventions of a history"
    )

    @model_validator(mode="after")
    def _filters_known(self) -> SimulatorProfile:
        for item in self.plan:
            if item.filter is not None and item.filter not in self.filters:
                raise ValueError(f"plan uses filter {item.filter!r} that has no [filters] entry")
            if item.target is not None and item.target not in self.targets:
                raise ValueError(f"plan uses target {item.target!r} that has no [targets] entry")
            if item.kind in ("standard", "science") and item.target is None:
                raise ValueError(f"a {item.kind} exposure needs a target")
        return self


class Validity(Strict):
    """How far in time a calibration may lie from the data it calibrates.

    ``windows_days[k]`` is the largest |Δt| (days, between mid-exposure times) that
    still gives quality level k, as in ESO's EDPS: 0 = the calibration plan's window,
    1 = good enough for certification, 2 = acceptable, 3 = risky. Windows under a day
    are fine (0.25 = six hours).
    """

    windows_days: list[float] = Field(min_length=1, max_length=4)

    @field_validator("windows_days")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(v <= 0 for v in value) or value != sorted(value):
            raise ValueError("windows must be positive and increasing (level 0 first)")
        return value

    def level(self, delta_days: float) -> int | None:
        """The quality level of a calibration |Δt| days away; None when outside all windows."""
        for level, window in enumerate(self.windows_days):
            if abs(delta_days) <= window:
                return level
        return None


class AssociationConfig(Strict):
    """Calibration validity, minimum block sizes and the categories rules may use."""

    validity: dict[str, Validity] = Field(description="By PRO.CATG or raw DO.CATG")
    min_frames: dict[str, int] = Field(description="Raw frames an AB of each action needs")
    raw_categories: list[str] = Field(min_length=1)
    product_categories: list[str] = Field(min_length=1)
    science_actions: list[str] = Field(
        min_length=1, description="Actions whose setups the calibration checker watches"
    )


class ColourTerm(Strict):
    """A filter's colour term against the reference catalogue."""

    colour: tuple[str, str] = Field(description="Filters whose difference is the colour")
    coefficient: float = Field(description="Magnitudes per magnitude of colour")


class PhotometrySettings(Strict):
    """What the zeropoint recipe assumes: nominal extinction, catalogue columns."""

    extinction_mag_per_airmass: dict[str, float] = Field(
        default_factory=dict, description="Nominal extinction per filter (zeropoint above air)"
    )
    magnitude_column: str = Field(
        "mag_{filter}", description="Catalogue column of a filter's magnitudes"
    )
    error_column: str = Field(
        "err_{filter}", description="Catalogue column of their errors (optional in a catalogue)"
    )
    colour_terms: dict[str, ColourTerm] = Field(
        default_factory=dict,
        description="Per filter: instrumental = catalogue magnitude + coefficient x colour",
    )
    blank_filters: list[str] = Field(
        default_factory=lambda: ["OPEN", "FREE", "open", "free"],
        description="Filter-wheel names meaning 'no filter here'",
    )


#: Generic measurements (qclib.qc.measures.MEASURES); "recipe": the recipe computes it.
MEASURE_NAMES = (
    "recipe",
    "median",
    "mean",
    "std",
    "clipped_mean",
    "clipped_std",
    "percentile",
    "min",
    "max",
    "count_flagged",
    "count_above",
    "count_below",
)


class QCParameter(Strict):
    """A QC parameter: its unit, what it means, and how it is measured."""

    unit: str
    description: str
    measure: Literal[MEASURE_NAMES] = Field(  # type: ignore[valid-type]
        "recipe", description="'recipe' (the recipe computes it) or a generic statistic"
    )
    of: Literal["data", "error", "dq"] = Field("data", description="Plane measured")
    region: str | None = Field(None, description="[x1:x2,y1:y2] of the plane, 1-based")
    q: float = Field(50.0, ge=0, le=100, description="Percentile (measure = 'percentile')")
    sigma: float = Field(3.0, gt=0, description="Clipping (clipped_mean, clipped_std)")
    bits: int = Field(255, ge=1, le=255, description="DQ bits (count_flagged)")
    threshold: float = Field(0.0, description="Level (count_above, count_below)")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None:
            parse_section(value)
        return value


class ScoringRule(Strict):
    """One threshold rule of a QC parameter (qclib.qc.scoring explains each kind)."""

    kind: Literal["range", "reference", "history"]
    valid_from: dt.date = Field(description="First night the rule grades")
    min: float | None = None
    max: float | None = None
    value: float | None = Field(None, description="reference: a fixed reference value")
    tolerance: float | None = Field(None, ge=0, description="reference: +- this much")
    tolerance_percent: float | None = Field(None, ge=0, description="reference: +- per cent")
    n: int = Field(20, ge=1, description="history: last n certified values")
    k: float = Field(5.0, gt=0, description="history: +- k x 1.4826 MAD")
    percent: float | None = Field(None, ge=0, description="history: +- per cent of the median")
    min_history: int = Field(3, ge=1, description="history: fewer values leave it UNSCORED")
    detectors: list[str] = Field(default_factory=list, description="Only these (empty: all)")
    note: str = ""

    @model_validator(mode="after")
    def _complete(self) -> ScoringRule:
        if self.kind == "range" and self.min is None and self.max is None:
            raise ValueError("a range rule needs min or max")
        if self.kind == "reference" and self.tolerance is None and self.tolerance_percent is None:
            raise ValueError("a reference rule needs tolerance or tolerance_percent")
        return self


class ReportSettings(Strict):
    """Which report template (notebooks/templates/<name>.ipynb) shows each action's block."""

    templates: dict[str, str] = Field(default_factory=dict, description="action -> template")


class InstrumentConfig(Strict):
    """Everything QC Workbench knows about one instrument, apart from its OCA rules."""

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="INSTRUME value, upper case")
    telescope: str
    origin: str = "ESO-PARANAL"
    arcfile_prefix: str
    pixel_scale_arcsec: float = Field(gt=0)
    pixel_size_um: float = Field(gt=0, description="Physical pixel size (particle rates per cm2)")
    readout_time_s: float = Field(
        ge=0, description="Time a CCD keeps integrating dark current while read out"
    )
    saturation_adu: float = Field(gt=0, description="Raw level above which a pixel is saturated")
    infrared: bool = Field(description="IR arrays: no bias frames, DIT/NDIT readout")
    filter_keywords: list[str] = Field(description="Flattened keywords holding filter names")
    site: Site
    detectors: list[Detector] = Field(min_length=1, description="In raw-file extension order")
    layout: list[list[str]] = Field(description="Mosaic rows as seen on the sky, top first")
    geometry: dict[Literal["full", "test"], Geometry]
    ingest: IngestRules
    association: AssociationConfig
    qc: dict[str, dict[str, QCParameter]] = Field(
        default_factory=dict, description="QC parameters by PRO.CATG, by ESO name"
    )
    photometry: PhotometrySettings = Field(default_factory=PhotometrySettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    scoring: dict[str, dict[str, list[ScoringRule]]] = Field(
        default_factory=dict, description="Threshold rules by PRO.CATG, by QC parameter"
    )
    simulator: SimulatorProfile

    @model_validator(mode="after")
    def _consistent(self) -> InstrumentConfig:
        names = [d.extname for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError("detector EXTNAMEs must be unique")
        in_layout = [name for row in self.layout for name in row]
        if sorted(in_layout) != sorted(names):
            raise ValueError("layout must place every detector exactly once")
        for scale, geom in self.geometry.items():
            unknown = set(geom.detectors or []) - set(names)
            if unknown:
                raise ValueError(f"geometry.{scale}.detectors names unknown {sorted(unknown)}")
        if "full" not in self.geometry:
            raise ValueError("geometry.full is required")
        return self

    def detectors_at(self, scale: str) -> list[Detector]:
        """Detectors present at a scale, in extension order."""
        wanted = self.geometry[scale].detectors  # type: ignore[index]
        return [d for d in self.detectors if wanted is None or d.extname in wanted]

    def filter_name(self, header: Mapping[str, object]) -> str | None:
        """The filter of a frame: the first of ``filter_keywords`` not holding a blank
        (OPEN, FREE) position; None when every wheel is blank or the keys are absent."""
        blank = set(self.photometry.blank_filters)
        for key in self.filter_keywords:
            value = header.get(key)
            if isinstance(value, str) and value not in blank:
                return value
        return None

    def layout_position(self, extname: str) -> tuple[int, int]:
        """(row from top, column from left) of a detector in the mosaic."""
        for row, names in enumerate(self.layout):
            if extname in names:
                return row, names.index(extname)
        raise KeyError(extname)


def load_instrument_config(path: str | Path) -> InstrumentConfig:
    """Read and validate an instrument TOML file.

    Raises
    ------
    ConfigError
        The file is missing, not TOML, or breaks the schema; the message names the
        file and the key.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: instrument configuration not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    try:
        return InstrumentConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"{path}: key '{key}': {first['msg']} ({err.error_count()} problem(s) in all)"
        ) from None
