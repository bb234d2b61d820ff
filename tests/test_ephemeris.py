"""The low-precision Moon against astropy's (ERFA) on dates inside the bundled IERS
table (no download): position within 0.5 degree (the series is good to 0.3 degree,
geocentric), lit fraction within 0.01."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import get_body, get_sun
from astropy.time import Time
from astropy.utils import iers

from qclib import ephemeris

DATES = [
    "2019-03-01T03:00:00",
    "2020-06-05T19:00:00",
    "2021-07-15T00:00:00",
    "2022-10-09T21:00:00",
    "2023-11-20T05:00:00",
    "2024-01-25T20:00:00",
]


@pytest.mark.parametrize("iso", DATES)
def test_moon_position_and_illumination(iso: str) -> None:
    with iers.conf.set_temp("auto_download", False):
        when = Time(iso)
        moon, sun = get_body("moon", when), get_sun(when)
        expected_fli = (1 - np.cos(sun.separation(moon).rad)) / 2
    ra, dec = ephemeris.moon_radec_deg(when.mjd)
    assert float(ephemeris.separation_deg(ra, dec, moon.ra.deg, moon.dec.deg)) < 0.5
    assert float(ephemeris.moon_illumination(when.mjd)) == pytest.approx(expected_fli, abs=0.01)


def test_separation_of_known_positions() -> None:
    assert float(ephemeris.separation_deg(0.0, 0.0, 90.0, 0.0)) == pytest.approx(90.0)
    assert float(ephemeris.separation_deg(10.0, 89.0, 190.0, 89.0)) == pytest.approx(2.0)
