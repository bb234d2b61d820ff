"""The simulator's profile of an instrument (``[simulator]`` of its TOML): the ranges
each detector's truth is drawn from, the sky, the night's plan and a history's drifts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from qclib.config.strict import Strict


class FilterProfile(Strict):
    """Photometric truth of one filter for the simulator."""

    zeropoint_mag: float = Field(
        description="Magnitude giving 1 e-/s above the atmosphere (pixel response 1)"
    )
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
    fringe_amplitude: float = Field(
        0.0,
        ge=0,
        description="Peak of the fringe pattern in night exposures, a fraction of the sky "
        "(the sky's emission lines interfering in a thin CCD: red filters)",
    )
    fringe_variation: float = Field(
        0.0, ge=0, description="rms of the fringes' change from exposure to exposure, relative"
    )


class TargetField(Strict):
    """A sky field the simulator can point at, with its seeded source population."""

    ra_deg: float = Field(ge=0, lt=360)
    dec_deg: float = Field(ge=-90, le=90)
    stars_per_arcmin2: float = Field(gt=0)
    star_mag_range: tuple[float, float]
    galaxies_per_arcmin2: float = Field(0.0, ge=0)


#: What the simulator makes of each kind: no light (bias, dark, reset, linearity_dark),
#: the dome lamp (dome_flat, linearity_flat), the sky (the others). ``reset`` is an IR
#: reset-read frame (uncorrelated: it shows the reset level, VIRCAM's RESET).
ExposureKind = Literal[
    "bias",
    "dark",
    "reset",
    "dome_flat",
    "linearity_dark",
    "linearity_flat",
    "twilight_flat",
    "standard",
    "science",
    "sky",
]
NightPart = Literal["afternoon", "evening_twilight", "night", "morning_twilight", "morning"]


#: ESO's sky transparency classes, as OBS.AMBI.TRANS codes them ('2CLR').
TRANSPARENCY_CODES = {"PHO": "1PHO", "CLR": "2CLR", "THN": "3THN", "THK": "4THK"}


class ObConstraints(Strict):
    """An OB's requested conditions (ESO's constraint set), written to its raws as the
    OBS.* keywords ESO's headers carry (types and comments as in real VLT headers)."""

    seeing_arcsec: float = Field(
        0.0, ge=0, description="OBS.AMBI.FWHM, 'Req. max. seeing' (arcsec; 0: any)"
    )
    airmass: float = Field(5.0, ge=1, description="OBS.AIRM, 'Req. max. airmass'")
    transparency: Literal["PHO", "CLR", "THN", "THK"] = Field(
        "CLR", description="OBS.AMBI.TRANS, 'Req. sky transparency'"
    )
    moon_fli: float = Field(
        1.0, ge=0, le=1, description="OBS.MOON.FLI, 'Req. max. fractional lunar illum.'"
    )
    moon_distance_deg: int = Field(
        30, ge=0, le=180, description="OBS.MOON.DIST, 'Req. min. angular dist. from moon'"
    )


class PlannedExposure(Strict):
    """One template of the simulated night: ``count`` exposures of one kind."""

    kind: ExposureKind
    when: NightPart
    count: int = Field(ge=1)
    count_test: int | None = Field(None, ge=1, description="Count at --scale test")
    exptime_s: float | None = Field(
        None, ge=0, description="EXPTIME; for IR, DIT x NDIT (computed for a DIT sequence)"
    )
    dit_s: float | None = Field(None, gt=0, description="IR detector integration time")
    sequence_dit_s: list[float] | None = Field(
        None,
        min_length=2,
        description="IR: a DIT sequence (linearity): ``count`` exposures at each DIT, in "
        "this order, each with EXPTIME = DIT x NDIT",
    )
    lamp_e_per_s: float | None = Field(
        None, gt=0, description="Dome lamp level of this template (default: the filter's)"
    )
    lamp_drift_per_hour: float = Field(
        0.0, description="Dome lamp: fractional change of its level per hour of the template"
    )
    check_every: int | None = Field(
        None,
        ge=1,
        description="DIT sequence: a check exposure (check_dit_s) first, after every "
        "check_every exposures and last, to follow the lamp (VIRCAM's 5 s DETCHECK flats)",
    )
    check_dit_s: float | None = Field(None, gt=0, description="DIT of the check exposures")
    check_dpr_type: str | None = Field(None, description="DPR.TYPE of the check exposures")
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
    offsets_arcsec: list[tuple[float, float]] = Field(
        default_factory=list,
        description="A pattern of (east, north) pointing offsets the exposures cycle "
        "through, in order (a tile's pawprints), each with its random jitter on top",
    )
    pair: bool = Field(False, description="Take exposures in equal-level pairs (gain)")
    constraints: ObConstraints | None = Field(
        None, description="The OB's constraint set (OBS.* keywords); none: not written"
    )
    seeing_arcsec: tuple[float, float] | None = Field(
        None, description="Zenith seeing range of this template (default: the profile's)"
    )

    @model_validator(mode="after")
    def _exposure_time(self) -> PlannedExposure:
        if self.sequence_dit_s is not None:
            if self.exptime_s is not None or self.dit_s is not None:
                raise ValueError("a DIT sequence sets each EXPTIME and DIT: drop exptime_s/dit_s")
            if any(d <= 0 for d in self.sequence_dit_s):
                raise ValueError("sequence_dit_s must be positive")
        elif self.exptime_s is None:
            raise ValueError("exptime_s is required (unless sequence_dit_s is given)")
        lamp = self.lamp_e_per_s is not None or self.lamp_drift_per_hour
        if lamp and self.kind not in ("dome_flat", "linearity_flat"):
            raise ValueError(
                f"lamp_e_per_s and lamp_drift_per_hour are for dome flats, not {self.kind}"
            )
        checks = (self.check_every, self.check_dit_s, self.check_dpr_type)
        wanted = any(c is not None for c in checks)
        if wanted and (self.sequence_dit_s is None or any(c is None for c in checks)):
            raise ValueError(
                "check exposures need a DIT sequence and all of check_every, "
                "check_dit_s, check_dpr_type"
            )
        return self

    def shots(self, count: int) -> list[tuple[float, bool]]:
        """(DIT, is a check exposure) of every exposure of the template, in order:
        ``count`` at each DIT, check exposures around and between (``check_every``)."""
        dits = [dit for dit in self.dits_s() for _ in range(count)]
        if self.check_every is None or self.check_dit_s is None:
            return [(dit, False) for dit in dits]
        out = [(self.check_dit_s, True)]
        for position, dit in enumerate(dits, start=1):
            out.append((dit, False))
            if position % self.check_every == 0 or position == len(dits):
                out.append((self.check_dit_s, True))
        return out

    def dits_s(self) -> list[float]:
        """The DIT of each exposure of the template (one per DIT of a sequence)."""
        if self.sequence_dit_s is not None:
            return list(self.sequence_dit_s)
        assert self.exptime_s is not None
        return [self.dit_s if self.dit_s is not None else self.exptime_s]

    def exptime_of(self, dit_s: float) -> float:
        """EXPTIME of an exposure of this template taken at ``dit_s``."""
        if self.sequence_dit_s is not None:
            return dit_s * (self.ndit or 1)
        assert self.exptime_s is not None
        return self.exptime_s


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
    "reset_level_adu",
    "reset_anomaly_adu",
    "response_drop",
]

#: Detector properties a per-detector override may set (fields of DetectorTruth;
#: tests/simulate/test_ir_effects.py checks that they are).
OverrideField = Literal[
    "gain_e_per_adu",
    "read_noise_e",
    "bias_level_adu",
    "bias_pattern_rms_adu",
    "dark_current_e_per_s",
    "nonlinearity_per_adu",
    "nonlinearity_cubic_per_adu2",
    "prnu_rms",
    "channel_offset_rms_adu",
    "even_odd_rms_adu",
    "correlated_noise_rms_adu",
    "reset_level_adu",
    "reset_pattern_rms_adu",
    "reset_noise_e",
    "reset_anomaly_adu",
    "reset_anomaly_time_s",
    "response_drop",
    "response_drop_rows_fraction",
    "response_drop_rms",
]


class DetectorOverride(Strict):
    """One detector with a known, different behaviour: its truth values replaced.

    The EXTNAME must name a detector of the instrument (checked when a night is
    simulated: the profile does not know the detectors). Applied before a history's
    drifts, and recorded in ``truth.json``.
    """

    detector: str = Field(description="EXTNAME of the detector")
    replace: dict[OverrideField, float] = Field(
        min_length=1, description="Truth values replaced (truth units)"
    )
    text: str = Field(min_length=1, description="What is wrong with it, in words")


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
    nonlinearity_per_adu: float | tuple[float, float] = Field(
        description="Quadratic coefficient c of adu*(1 + c*adu + c3*adu**2); a range: "
        "drawn per detector"
    )
    nonlinearity_cubic_per_adu2: float | tuple[float, float] = Field(
        0.0, description="Cubic coefficient c3 (or a range, drawn per detector)"
    )
    nonlinearity_channel_rms: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="IR: relative rms of the non-linearity from readout channel to channel "
        "(VIRCAM's linearity is fitted per channel)",
    )
    nonlinearity_reference_adu: float = Field(
        10_000.0,
        gt=0,
        description="Linear level at which truth.json states the non-linearity in per cent",
    )
    reset_level_adu: tuple[float, float] = Field(
        (0.0, 0.0), description="IR: level of a reset-read (uncorrelated) frame, per detector"
    )
    reset_pattern_rms_adu: float = Field(
        0.0, ge=0, description="IR: fixed pixel-to-pixel structure of the reset level"
    )
    reset_noise_e: float = Field(
        0.0, ge=0, description="IR: reset (kTC) noise of a reset-read frame, e- per reset"
    )
    reset_anomaly_adu: tuple[float, float] = Field(
        (0.0, 0.0),
        description="IR: reset anomaly at the first pixel read, per detector (range); 0: none",
    )
    reset_anomaly_time_s: float = Field(
        0.2, gt=0, description="IR: settling time constant of the level after a reset"
    )
    frame_readout_s: float | None = Field(
        None, gt=0, description="IR: time to read one frame (a channel), needed by the anomaly"
    )
    stripe_rms_adu: float = Field(
        0.0, ge=0, description="IR: rms of the horizontal stripes (a new row offset each read)"
    )
    stripe_shared_by: Literal["detector", "layout_row", "all"] = Field(
        "detector",
        description="Who shares a frame's stripe pattern: each detector its own, the "
        "detectors of a mosaic row (the layout's rows), or all",
    )
    detector_overrides: list[DetectorOverride] = Field(
        default_factory=list, description="Detectors with a known different behaviour"
    )
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
        for name in ("nonlinearity_per_adu", "nonlinearity_cubic_per_adu2"):
            value = getattr(self, name)
            if isinstance(value, tuple) and value[0] > value[1]:
                raise ValueError(f"{name} range must be (low, high)")
        if any(self.reset_anomaly_adu) and self.frame_readout_s is None:
            raise ValueError("a reset anomaly needs frame_readout_s (its decay along the readout)")
        overridden = [o.detector for o in self.detector_overrides]
        if len(set(overridden)) != len(overridden):
            raise ValueError("detector_overrides name a detector twice: merge them")
        return self
