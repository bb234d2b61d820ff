"""ESO's observing night: noon to noon, local time at the telescope.

A frame belongs to the night named by the calendar date of the local noon that
precedes it: an exposure at 03:00 local on 24 November belongs to night
2026-11-23, as does one at 21:00 local on 23 November.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

_NOON = dt.timedelta(hours=12)
_MJD_ZERO = dt.datetime(1858, 11, 17, tzinfo=dt.UTC)


def night_of(when_utc: dt.datetime, timezone: str) -> dt.date:
    """The ESO night of an instant.

    Parameters
    ----------
    when_utc
        The instant; naive datetimes are taken as UTC.
    timezone
        IANA time zone of the site, e.g. ``"America/Santiago"`` for Paranal.

    >>> night_of(dt.datetime(2026, 11, 24, 6, 0), "America/Santiago")  # 03:00 local
    datetime.date(2026, 11, 23)
    >>> night_of(dt.datetime(2026, 11, 24, 16, 0), "America/Santiago")  # 13:00 local
    datetime.date(2026, 11, 24)
    """
    if when_utc.tzinfo is None:
        when_utc = when_utc.replace(tzinfo=dt.UTC)
    local = when_utc.astimezone(ZoneInfo(timezone))
    return (local - _NOON).date()


def night_of_mjd(mjd: float, timezone: str) -> dt.date:
    """The ESO night of a Modified Julian Date (UTC).

    Leap seconds are ignored: they cannot move an instant across local noon by more
    than a few seconds, and ESO schedules no exposure then.

    >>> night_of_mjd(61368.25, "America/Santiago")  # 2026-11-24 06:00 UTC
    datetime.date(2026, 11, 23)
    """
    return night_of(mjd_to_datetime(mjd), timezone)


def mjd_to_datetime(mjd: float) -> dt.datetime:
    """UTC datetime of a Modified Julian Date (plain arithmetic, no leap seconds)."""
    return _MJD_ZERO + dt.timedelta(days=mjd)


def datetime_to_mjd(when: dt.datetime) -> float:
    """Modified Julian Date of a UTC datetime (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - _MJD_ZERO) / dt.timedelta(days=1)


def local_noon_utc(night: dt.date, timezone: str) -> dt.datetime:
    """The UTC instant at which ``night`` begins (local noon of that date)."""
    local = dt.datetime.combine(night, dt.time(12, 0), tzinfo=ZoneInfo(timezone))
    return local.astimezone(dt.UTC)
