"""ESO nights run from local noon to local noon at the site."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qclib.nights import datetime_to_mjd, local_noon_utc, mjd_to_datetime, night_of, night_of_mjd

PARANAL = "America/Santiago"


@pytest.mark.parametrize(
    ("utc", "night"),
    [
        (dt.datetime(2026, 11, 23, 14, 59), dt.date(2026, 11, 22)),  # 11:59 local (UTC-3)
        (dt.datetime(2026, 11, 23, 15, 0), dt.date(2026, 11, 23)),  # local noon
        (dt.datetime(2026, 11, 24, 8, 0), dt.date(2026, 11, 23)),  # 05:00 local, dawn
        (dt.datetime(2026, 6, 15, 15, 59), dt.date(2026, 6, 14)),  # winter: UTC-4
        (dt.datetime(2026, 6, 15, 16, 0), dt.date(2026, 6, 15)),
    ],
)
def test_night_boundary_follows_local_noon(utc: dt.datetime, night: dt.date) -> None:
    assert night_of(utc, PARANAL) == night


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 1, 1)))
def test_night_starts_at_its_noon(when: dt.datetime) -> None:
    night = night_of(when, PARANAL)
    start = local_noon_utc(night, PARANAL)
    end = local_noon_utc(night + dt.timedelta(days=1), PARANAL)
    assert start <= when.replace(tzinfo=dt.UTC) < end


@given(st.floats(min_value=40000, max_value=80000))
def test_mjd_round_trip(mjd: float) -> None:
    assert datetime_to_mjd(mjd_to_datetime(mjd)) == pytest.approx(mjd, abs=1e-9)
    assert night_of_mjd(mjd, PARANAL) == night_of(mjd_to_datetime(mjd), PARANAL)
