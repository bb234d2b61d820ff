"""The observing plan of a simulated night: which exposure is taken when, and how.

Afternoon calibrations run from 14:00 local time; twilight flats start twelve
minutes after sunset with a falling sky level; the first standard field is taken
at dusk, science follows, further standards are spread over the first part of
the night so that zeropoint and extinction can be fitted over a range of airmass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from qclib import ephemeris
from qclib.config.instrument import InstrumentConfig
from qclib.config.simulator import FilterProfile, PlannedExposure
from qclib.nights import datetime_to_mjd, local_noon_utc, mjd_to_datetime

_OVERHEAD_S = 20.0
_TWILIGHT_DECAY_S = 240.0  # the evening sky fades by e every four minutes
_MIN_ALTITUDE_DEG = 25.0


@dataclass(frozen=True)
class Exposure:
    """One planned raw exposure, with the conditions it was taken in (its truth)."""

    index: int
    kind: str
    template: PlannedExposure
    mjd_obs: float
    exptime_s: float
    dit_s: float
    ndit: int
    filter: str | None
    tpl_start: str
    tpl_expno: int
    tpl_nexp: int
    obs_id: int
    arcfile: str
    origfile: str
    ra_deg: float
    dec_deg: float
    offset_arcsec: tuple[float, float]
    airmass: float
    altitude_deg: float
    seeing_zenith_arcsec: float
    sky_e_per_s: float
    notes: tuple[str, ...] = field(default=())
    pointing_error_arcsec: tuple[float, float] = (0.0, 0.0)  # (east, north): WCS - truth
    check: bool = False  # a check exposure of a DIT sequence (lamp monitor)
    fringe_scale: float = 0.0  # fringes: this x the filter's amplitude x the sky

    @property
    def wcs_ra_deg(self) -> float:
        """Where the telescope (and so the raw's WCS) believes it points."""
        east = self.pointing_error_arcsec[0] / 3600 / np.cos(np.radians(self.dec_deg))
        return (self.ra_deg + east) % 360.0

    @property
    def wcs_dec_deg(self) -> float:
        return self.dec_deg + self.pointing_error_arcsec[1] / 3600

    @property
    def seeing_arcsec(self) -> float:
        """Delivered FWHM: zenith seeing degraded as airmass^0.6."""
        return self.seeing_zenith_arcsec * self.airmass**0.6

    @property
    def date_obs(self) -> str:
        return iso_millis(mjd_to_datetime(self.mjd_obs))


def iso_millis(when: dt.datetime) -> str:
    """ESO's timestamp format: ``2026-11-23T01:02:03.456``."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def _count(item: PlannedExposure, scale: str, counts: Mapping[str, int]) -> int:
    if item.kind in counts:
        return counts[item.kind]
    return item.count_test if scale == "test" and item.count_test else item.count


def _duration_s(instrument: InstrumentConfig, item: PlannedExposure, dit_s: float) -> float:
    """Time one exposure of a template takes, readout and overheads included."""
    return item.exptime_of(dit_s) + instrument.readout_time_s + _OVERHEAD_S


def _pointing_error(limit_arcsec: float, seed: int, index: int) -> tuple[float, float]:
    """Uniform in a disc of the profile's radius; its own random stream, so the rest
    of the plan does not depend on it."""
    if limit_arcsec == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng([seed, 8, index])
    radius = limit_arcsec * np.sqrt(rng.uniform())
    angle = rng.uniform(0, 2 * np.pi)
    return (float(radius * np.cos(angle)), float(radius * np.sin(angle)))


def _fringe_scale(kind: str, profile: FilterProfile | None, seed: int, index: int) -> float:
    """How strong a night exposure's fringes are, relative to the filter's amplitude
    (1 +- its variation: the sky lines' strength changes); 0 for any other exposure.
    Its own random stream, so the rest of the plan does not depend on it."""
    if kind not in ("standard", "science") or profile is None or profile.fringe_amplitude == 0:
        return 0.0
    rng = np.random.default_rng([seed, 11, index])
    return float(max(1.0 + profile.fringe_variation * rng.standard_normal(), 0.0))


def _sky_e_per_s(instrument: InstrumentConfig, filt: str | None) -> float:
    """Dark-sky background per pixel, electrons per second."""
    if filt is None:
        return 0.0
    profile = instrument.simulator.filters[filt]
    pixel_area = instrument.pixel_scale_arcsec**2
    return 10 ** (-0.4 * (profile.sky_mag_per_arcsec2 - profile.zeropoint_mag)) * pixel_area


def plan_night(
    instrument: InstrumentConfig,
    night: dt.date,
    *,
    seed: int,
    scale: str,
    counts: Mapping[str, int] | None = None,
) -> tuple[list[Exposure], dict[str, float]]:
    """All exposures of one simulated night, in time order, and the Sun's events.

    ``counts`` replaces the plan's number of exposures of a kind (for standards: of
    visits, spread over the first 60 % of the night). Deterministic: the same
    instrument, night, seed, scale and counts give the same plan.
    """
    site = instrument.site
    sim = instrument.simulator
    rng = np.random.default_rng([seed, 3])
    noon = datetime_to_mjd(local_noon_utc(night, site.timezone))
    events = ephemeris.sun_events(noon, site.longitude_deg, site.latitude_deg)
    clocks = {
        "afternoon": noon + 2 / 24,
        "evening_twilight": events["sunset"] + 12 / 1440,
        "night": events["dusk"],
        "morning_twilight": events["sunrise"] - 40 / 1440,
        "morning": events["sunrise"] + 1 / 24,
    }
    night_hours = (events["dawn"] - events["dusk"]) * 24
    pending: list[tuple[float, PlannedExposure, list[float], list[tuple[float, bool]]]] = []
    obs_id = 200_000_000 + int(rng.integers(0, 99_999_000))
    for item in sim.plan:
        n = _count(item, scale, counts or {})
        if item.kind == "standard":
            # One template per standard, spread over the first 60 % of the night.
            for i in range(n):
                start = events["dusk"] + (0.6 * night_hours * i / max(n - 1, 1)) / 24
                pending.append((start, item, [start], item.shots(1)))
            continue
        # A DIT sequence takes n exposures at each DIT, in the order given.
        shots = item.shots(n)
        dits = [dit for dit, _check in shots]
        start = clocks[item.when]
        durations = [_duration_s(instrument, item, dit) for dit in dits]
        offsets_s = [k * durations[0] for k in range(len(dits))]
        if item.sequence_dit_s is not None:
            offsets_s = [float(sum(durations[:k])) for k in range(len(dits))]
        times = [start + offset / 86400 for offset in offsets_s]
        clocks[item.when] = times[-1] + (_duration_s(instrument, item, dits[-1]) + 120) / 86400
        pending.append((start, item, times, shots))

    # Standards later in the night must not overlap other templates.
    pending.sort(key=lambda p: (p[0], p[1].kind != "standard"))
    busy_until = 0.0
    scheduled: list[tuple[PlannedExposure, list[float], list[tuple[float, bool]]]] = []
    for _start, item, times, shots in pending:
        shift = max(0.0, busy_until - times[0])
        times = [t + shift for t in times]
        duration = _duration_s(instrument, item, shots[-1][0]) / 86400
        busy_until = times[-1] + duration + 60 / 86400
        scheduled.append((item, times, shots))

    exposures: list[Exposure] = []
    for template, times, shots in sorted(scheduled, key=lambda s: s[1][0]):
        obs_id += 1
        tpl_start = iso_millis(mjd_to_datetime(times[0]))[:19]
        target = sim.targets.get(template.target) if template.target else None
        first_level = None
        check_template = template
        if template.check_dpr_type is not None:
            check_template = template.model_copy(update={"dpr_type": template.check_dpr_type})
        for k, (mjd, (dit, check)) in enumerate(zip(times, shots, strict=True)):
            item = check_template if check else template
            exptime_s = item.exptime_of(dit)
            filt = item.filter
            notes: list[str] = []
            if target is not None:
                ra0, dec0 = target.ra_deg, target.dec_deg
            else:
                # Calibrations point at the zenith-ish position of the moment.
                ra0 = float(ephemeris.lst_hours(mjd, site.longitude_deg)) * 15.0
                dec0 = site.latitude_deg
            if item.dither_arcsec > 0:
                offset = tuple(float(v) for v in rng.uniform(-1, 1, 2) * item.dither_arcsec)
            else:
                offset = (0.0, 0.0)
            if item.offsets_arcsec:
                east, north = item.offsets_arcsec[k % len(item.offsets_arcsec)]
                offset = (offset[0] + east, offset[1] + north)
            ra = (ra0 + offset[0] / 3600 / np.cos(np.radians(dec0))) % 360.0
            dec = dec0 + offset[1] / 3600
            mid = mjd + exptime_s / 2 / 86400
            alt = float(ephemeris.altitude_deg(ra, dec, mid, site.longitude_deg, site.latitude_deg))
            if item.kind in ("standard", "science") and alt < _MIN_ALTITUDE_DEG:
                notes.append(
                    f"{item.target} is at {alt:.1f} deg altitude on this night; "
                    f"airmass clipped to that of {_MIN_ALTITUDE_DEG} deg"
                )
                alt = _MIN_ALTITUDE_DEG
            x = float(ephemeris.airmass(max(alt, _MIN_ALTITUDE_DEG)))
            seeing = float(rng.uniform(*(item.seeing_arcsec or sim.seeing_arcsec)))
            if item.kind == "twilight_flat":
                profile = sim.filters[filt] if filt else None
                assert profile is not None
                elapsed = (mjd - times[0]) * 86400
                if item.pair and k % 2 == 1 and first_level is not None:
                    sky = first_level  # the second of an equal-level pair
                else:
                    sky = profile.twilight_start_e_per_s * np.exp(-elapsed / _TWILIGHT_DECAY_S)
                first_level = sky
            elif item.kind in ("dome_flat", "linearity_flat"):
                assert filt is not None
                sky = item.lamp_e_per_s or sim.filters[filt].dome_flat_e_per_s
                if item.lamp_drift_per_hour:
                    sky *= 1.0 + item.lamp_drift_per_hour * (mjd - times[0]) * 24
            elif item.kind in ("standard", "science", "sky"):
                sky = _sky_e_per_s(instrument, filt)
            else:
                sky = 0.0
            index = len(exposures)
            when = mjd_to_datetime(mjd)
            exposures.append(
                Exposure(
                    index=index,
                    kind=item.kind,
                    template=item,
                    mjd_obs=mjd,
                    exptime_s=exptime_s,
                    dit_s=dit,
                    ndit=item.ndit or 1,
                    filter=filt,
                    tpl_start=tpl_start,
                    tpl_expno=k + 1,
                    tpl_nexp=len(times),
                    obs_id=obs_id,
                    arcfile=f"{instrument.arcfile_prefix}.{iso_millis(when)}.fits",
                    origfile=(
                        f"{instrument.name}_IMG_{item.kind.upper()}{int(exptime_s)}"
                        f"_{index + 1:04d}.fits"
                    ),
                    ra_deg=ra,
                    dec_deg=dec,
                    offset_arcsec=(offset[0], offset[1]),
                    airmass=x,
                    altitude_deg=alt,
                    seeing_zenith_arcsec=seeing,
                    sky_e_per_s=float(sky),
                    notes=tuple(notes),
                    pointing_error_arcsec=_pointing_error(
                        sim.pointing_error_arcsec, seed, len(exposures)
                    ),
                    check=check,
                    fringe_scale=_fringe_scale(
                        item.kind, sim.filters.get(filt) if filt else None, seed, len(exposures)
                    ),
                )
            )
    return exposures, events
