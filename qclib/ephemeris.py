"""Low-precision Sun and Moon positions, sidereal time and airmass: for planning
simulated nights and for checking an OB's moon constraints.

astropy.coordinates would need IERS tables for UT1, which it downloads at run
time and which do not cover future dates; nothing may be downloaded here, and a
simulated night in 2030 must work. The Astronomical Almanac's low-precision
formulae are good to about 0.01 degree for the Sun and 0.3 degree for the Moon
(geocentric: the Moon's parallax, up to 1 degree, is left out), far better than a
night plan or a moon-distance constraint of tens of degrees needs.
"""

from __future__ import annotations

import numpy as np

_DEG = np.pi / 180.0
_MJD_J2000 = 51544.5


def gmst_hours(mjd: np.ndarray | float) -> np.ndarray:
    """Greenwich mean sidereal time in hours (UT1 taken as UTC)."""
    days = np.asarray(mjd, dtype=float) - _MJD_J2000
    return np.mod(18.697374558 + 24.06570982441908 * days, 24.0)


def lst_hours(mjd: np.ndarray | float, longitude_deg: float) -> np.ndarray:
    """Local mean sidereal time in hours at an east-positive longitude."""
    return np.mod(gmst_hours(mjd) + longitude_deg / 15.0, 24.0)


def sun_radec_deg(mjd: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Apparent right ascension and declination of the Sun, degrees."""
    n = np.asarray(mjd, dtype=float) - _MJD_J2000
    mean_longitude = 280.460 + 0.9856474 * n
    anomaly = (357.528 + 0.9856003 * n) * _DEG
    ecliptic_longitude = (
        mean_longitude + 1.915 * np.sin(anomaly) + 0.020 * np.sin(2 * anomaly)
    ) * _DEG
    obliquity = (23.439 - 0.0000004 * n) * _DEG
    ra = np.arctan2(np.cos(obliquity) * np.sin(ecliptic_longitude), np.cos(ecliptic_longitude))
    dec = np.arcsin(np.sin(obliquity) * np.sin(ecliptic_longitude))
    return np.mod(ra / _DEG, 360.0), dec / _DEG


def moon_radec_deg(mjd: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Geocentric right ascension and declination of the Moon, degrees (the
    Astronomical Almanac's low-precision series)."""
    t = (np.asarray(mjd, dtype=float) - _MJD_J2000) / 36525.0

    def sin_deg(a: np.ndarray) -> np.ndarray:
        return np.sin(a * _DEG)

    longitude = (
        218.32
        + 481267.881 * t
        + 6.29 * sin_deg(135.0 + 477198.87 * t)
        - 1.27 * sin_deg(259.3 - 413335.36 * t)
        + 0.66 * sin_deg(235.7 + 890534.22 * t)
        + 0.21 * sin_deg(269.9 + 954397.74 * t)
        - 0.19 * sin_deg(357.5 + 35999.05 * t)
        - 0.11 * sin_deg(186.5 + 966404.03 * t)
    ) * _DEG
    latitude = (
        5.13 * sin_deg(93.3 + 483202.02 * t)
        + 0.28 * sin_deg(228.2 + 960400.89 * t)
        - 0.28 * sin_deg(318.3 + 6003.15 * t)
        - 0.17 * sin_deg(217.6 - 407332.21 * t)
    ) * _DEG
    obliquity = (23.439 - 0.0130 * t) * _DEG
    x = np.cos(latitude) * np.cos(longitude)
    y = np.cos(obliquity) * np.cos(latitude) * np.sin(longitude) - np.sin(obliquity) * np.sin(
        latitude
    )
    z = np.sin(obliquity) * np.cos(latitude) * np.sin(longitude) + np.cos(obliquity) * np.sin(
        latitude
    )
    return np.mod(np.arctan2(y, x) / _DEG, 360.0), np.arcsin(z) / _DEG


def separation_deg(
    ra1_deg: np.ndarray | float,
    dec1_deg: np.ndarray | float,
    ra2_deg: np.ndarray | float,
    dec2_deg: np.ndarray | float,
) -> np.ndarray:
    """Angular distance between two positions, degrees (haversine)."""
    ra1, dec1, ra2, dec2 = (
        np.asarray(v, dtype=float) * _DEG for v in (ra1_deg, dec1_deg, ra2_deg, dec2_deg)
    )
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))) / _DEG


def moon_illumination(mjd: np.ndarray | float) -> np.ndarray:
    """Fraction of the Moon's disc lit (ESO's FLI), from its elongation from the Sun:
    (1 - cos elongation) / 2."""
    moon, sun = moon_radec_deg(mjd), sun_radec_deg(mjd)
    return (1 - np.cos(separation_deg(*moon, *sun) * _DEG)) / 2


def altitude_deg(
    ra_deg: np.ndarray | float,
    dec_deg: np.ndarray | float,
    mjd: np.ndarray | float,
    longitude_deg: float,
    latitude_deg: float,
) -> np.ndarray:
    """Geometric altitude of an object above the horizon, degrees."""
    hour_angle = (lst_hours(mjd, longitude_deg) * 15.0 - np.asarray(ra_deg)) * _DEG
    lat = latitude_deg * _DEG
    dec = np.asarray(dec_deg) * _DEG
    sin_alt = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)
    return np.arcsin(np.clip(sin_alt, -1, 1)) / _DEG


def airmass(altitude: np.ndarray | float) -> np.ndarray:
    """Airmass from altitude (Pickering 2002, good down to the horizon)."""
    alt = np.asarray(altitude, dtype=float)
    return 1.0 / np.sin((alt + 244.0 / (165.0 + 47.0 * np.abs(alt) ** 1.1)) * _DEG)


def sun_events(noon_mjd: float, longitude_deg: float, latitude_deg: float) -> dict[str, float]:
    """Sunset, astronomical dusk, dawn and sunrise (MJD) of the night after ``noon_mjd``.

    Sunset and sunrise are when the Sun's centre is at -0.83 degrees; dusk and dawn
    when it is at -18 degrees. Found on a one-minute grid.
    """
    grid = noon_mjd + np.arange(0, 24 * 60 + 1) / (24 * 60)
    ra, dec = sun_radec_deg(grid)
    alt = altitude_deg(ra, dec, grid, longitude_deg, latitude_deg)

    def crossing(level: float, falling: bool) -> float:
        above = alt > level
        edges = (
            np.flatnonzero(above[:-1] & ~above[1:])
            if falling
            else np.flatnonzero(~above[:-1] & above[1:])
        )
        if edges.size == 0:
            raise ValueError(f"the Sun does not cross {level} degrees on this night")
        i = edges[0] if falling else edges[-1]
        frac = (alt[i] - level) / (alt[i] - alt[i + 1])
        return float(grid[i] + frac * (grid[i + 1] - grid[i]))

    return {
        "sunset": crossing(-0.83, falling=True),
        "dusk": crossing(-18.0, falling=True),
        "dawn": crossing(-18.0, falling=False),
        "sunrise": crossing(-0.83, falling=False),
    }
