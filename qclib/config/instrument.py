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
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator

from qclib.config.simulator import SimulatorProfile
from qclib.config.strict import Strict
from qclib.errors import ConfigError

C = TypeVar("C", bound=Strict)
_SECTION = re.compile(r"^\[(\d+):(\d+),(\d+):(\d+)\]$")


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
    def has_level_pixels(self) -> bool:
        """Whether a raw carries pixels beside its data section (overscan or reference
        pixels) that give its electronic level; without them, a frame's level is that
        level and its charge, inseparable."""
        return self.overscan_section is not None or self.data_shape != (self.naxis2, self.naxis1)

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


class ObGrading(Strict):
    """Where a science OB's requested and delivered conditions are in its raws'
    headers, and how far a constraint may be missed for grade B (ESO: A, every
    constraint met; B, some missed by up to 10 %; C, out of constraints)."""

    seeing_keyword: str = Field(
        "OBS.AMBI.FWHM",
        description="Requested image quality (arcsec; 0: any), compared with the FWHM "
        "measured on the science frames",
    )
    airmass_keyword: str = Field("OBS.AIRM", description="Requested largest airmass")
    transparency_keyword: str = Field("OBS.AMBI.TRANS", description="Requested transparency")
    moon_fli_keyword: str = Field("OBS.MOON.FLI", description="Requested largest lit fraction")
    moon_distance_keyword: str = Field(
        "OBS.MOON.DIST", description="Requested smallest distance from the Moon (deg)"
    )
    airmass_start_keyword: str = Field("TEL.AIRM.START", description="Airmass at start")
    airmass_end_keyword: str = Field("TEL.AIRM.END", description="Airmass at end")
    tolerance: float = Field(
        0.10, ge=0, le=1, description="Fraction by which a constraint may be missed for B"
    )
    transparency_loss_mag: dict[str, float] = Field(
        default_factory=dict,
        description="Per class (PHO, CLR, THN, THK), the largest light loss (mag) the "
        "science's stars may show against the night's zeropoint; a class not listed is "
        "not graded",
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
    system: Literal["AB", "Vega"] = Field(
        "Vega",
        description="Magnitude system of the reference catalogues (Phase 3 PHOTSYS; "
        "ABMAGLIM and ABMAGSAT are written for AB only)",
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
    "mad_std",
    "stripe_rms",
)


class QCParameter(Strict):
    """A QC parameter: its unit, what it means, and how it is measured."""

    unit: str
    description: str
    measure: Literal[MEASURE_NAMES] = Field(  # type: ignore[valid-type]
        "recipe", description="'recipe' (the recipe computes it) or a generic statistic"
    )
    source: str | None = Field(
        None,
        description="measure = 'recipe': the name the recipe gives this value, when the "
        "instrument's (ESO's) name differs; the product then carries this name only",
    )
    of: Literal["data", "error", "dq", "difference", "ratio"] = Field(
        "data",
        description="Plane measured: the product's data, error or DQ, or its difference "
        "(data - reference) or ratio (data / reference) to its reference product, the "
        "newest earlier certified (else earlier) one of the same setup (no value without one)",
    )
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

    @model_validator(mode="after")
    def _source_is_a_recipe_value(self) -> QCParameter:
        if self.source is not None and self.measure != "recipe":
            raise ValueError(
                f"source names a recipe value: measure must be 'recipe', not {self.measure!r}"
            )
        return self


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


class InstrumentBase(Strict):
    """What every instrument's configuration holds, whoever runs its recipes (QC
    Workbench's own, ``InstrumentConfig``, or ESO's pipeline,
    ``qclib.config.eso_instrument``): ingest, association, scoring, reports and the
    archive need no more."""

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="INSTRUME value, upper case")
    telescope: str
    origin: str = "ESO-PARANAL"
    arcfile_prefix: str
    filter_keywords: list[str] = Field(
        default_factory=list, description="Flattened keywords holding filter names"
    )
    site: Site
    ingest: IngestRules
    association: AssociationConfig
    qc: dict[str, dict[str, QCParameter]] = Field(
        default_factory=dict, description="QC parameters by PRO.CATG, by ESO name"
    )
    grading: ObGrading = Field(default_factory=ObGrading)
    setups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per PRO.CATG, the raw keywords that make a product's setup: its raws "
        "must agree on them, and it is compared (reference, history, superseding) only "
        "with products of the same values. A category not listed has no setup",
    )
    recipes: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Recipe parameters, [recipes.<name>] (checked against the recipe's "
        "declared parameters when the instrument loads)",
    )
    scoring: dict[str, dict[str, list[ScoringRule]]] = Field(
        default_factory=dict, description="Threshold rules by PRO.CATG, by QC parameter"
    )

    def setup_keys(self, pro_catg: str) -> list[str]:
        """The keywords that make a product's setup (``setups``)."""
        return list(self.setups.get(pro_catg, ()))

    def setup_of(self, pro_catg: str, header: Mapping[str, Any]) -> dict[str, Any]:
        """A product's setup: its category's setup keywords and their values in
        ``header`` (None where the header lacks one)."""
        return {key: header.get(key) for key in self.setup_keys(pro_catg)}


class InstrumentConfig(InstrumentBase):
    """An imaging instrument QC Workbench simulates and reduces with its own recipes:
    its detectors, raw geometry, photometry and simulator profile, apart from its OCA
    rules."""

    pixel_scale_arcsec: float = Field(gt=0)
    pixel_size_um: float = Field(gt=0, description="Physical pixel size (particle rates per cm2)")
    readout_time_s: float = Field(
        ge=0, description="Time a CCD keeps integrating dark current while read out"
    )
    saturation_adu: float = Field(gt=0, description="Raw level above which a pixel is saturated")
    infrared: bool = Field(
        description="IR arrays (reset-read readout, no bias frames): how the simulator "
        "writes raws; recipes go by the descriptors below, not by this"
    )
    exposure_time_keyword: str = Field(
        "EXPTIME",
        description="Seconds of light a raw's ADU are counted over: EXPTIME for a CCD, "
        "DET.DIT for arrays whose raws hold the average of NDIT reads",
    )
    ndit_keyword: str | None = Field(
        None, description="Reads combined into one raw (absent or None: one)"
    )
    reset_read_s: float = Field(
        0.0,
        ge=0,
        description="IR arrays: time between the reset and the first read, during which "
        "the array already collects charge (its non-linearity acts on it; VIRCAM: its "
        "minimum DIT, 1.0011 s)",
    )
    ndit_combination: Literal["mean", "sum"] = Field(
        "mean",
        description="How a raw holds its NDIT reads: their mean (HAWK-I) or their sum "
        "(VIRCAM); recipes see every raw as the mean",
    )
    filter_keywords: list[str] = Field(description="Flattened keywords holding filter names")
    detectors: list[Detector] = Field(min_length=1, description="In raw-file extension order")
    layout: list[list[str]] = Field(description="Mosaic rows as seen on the sky, top first")
    geometry: dict[Literal["full", "test"], Geometry]
    photometry: PhotometrySettings = Field(default_factory=PhotometrySettings)
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

    def exposure_time(self, header: Mapping[str, Any]) -> float:
        """Seconds of light a raw's ADU are counted over (``exposure_time_keyword``).

        Raises
        ------
        ValueError
            The header lacks it or it is not a number.
        """
        value = header.get(self.exposure_time_keyword)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"no numeric {self.exposure_time_keyword} (found {value!r})")
        return float(value)

    def ndit(self, header: Mapping[str, Any]) -> int:
        """Reads combined into one raw: ``ndit_keyword``'s value, or 1."""
        value = header.get(self.ndit_keyword) if self.ndit_keyword else None
        return int(value) if isinstance(value, int | float) and value >= 1 else 1

    def per_read_scale(self, header: Mapping[str, Any]) -> float:
        """What a raw's ADU are multiplied by to give the mean of its reads: 1/NDIT
        where raws hold the sum of NDIT reads, else 1."""
        return 1.0 / self.ndit(header) if self.ndit_combination == "sum" else 1.0

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


def read_toml(path: str | Path) -> dict[str, Any]:
    """An instrument's TOML file as a dict.

    Raises
    ------
    ConfigError
        The file is missing or not TOML, naming it.
    """
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: instrument configuration not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def validated(model: type[C], data: Mapping[str, Any], path: str | Path) -> C:
    """``data`` validated as ``model``.

    Raises
    ------
    ConfigError
        It breaks the schema: the file, the first key and what is wrong with it.
    """
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"{path}: key '{key}': {first['msg']} ({err.error_count()} problem(s) in all)"
        ) from None


def load_instrument_config(path: str | Path) -> InstrumentConfig:
    """Read and validate an instrument TOML file.

    Raises
    ------
    ConfigError
        The file is missing, not TOML, or breaks the schema; the message names the
        file and the key.
    """
    return validated(InstrumentConfig, read_toml(path), path)
