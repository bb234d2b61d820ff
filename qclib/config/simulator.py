"""The simulator's profile of an instrument (``[simulator]`` of its TOML): the ranges
each detector's truth is drawn from, the sky, the night's plan and a history's drifts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from qclib.config.strict import Strict


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
