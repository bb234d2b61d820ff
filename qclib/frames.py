"""FrameInfo: the header facts of one raw frame, and the checks a raw frame must pass.

Pure: takes scanned headers, returns values or raises QuarantineError. Nothing
here reads pixels or touches files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qclib.config.instrument import InstrumentBase, InstrumentConfig
from qclib.errors import QuarantineError
from qclib.fitsio import FitsScan
from qclib.nights import datetime_to_mjd, night_of_mjd

_ARCFILE = re.compile(
    r"^(?P<prefix>[A-Z0-9_]+)\.(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})\.fits$"
)
#: Clocks written by different subsystems agree to better than this (seconds).
_TIME_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class FrameInfo:
    """Header facts of one raw frame (never pixels)."""

    arcfile: str
    instrument: str
    night: dt.date
    mjd_obs: float
    date_obs: str
    exptime_s: float
    dpr_catg: str | None
    dpr_type: str | None
    dpr_tech: str | None
    object: str | None
    tpl_id: str | None
    tpl_start: str | None
    prog_id: str | None
    filters: str | None
    detectors: tuple[str, ...]
    keywords: dict[str, Any] = field(repr=False)

    @property
    def mid_mjd(self) -> float:
        """Mid-exposure time, used to match calibrations."""
        return self.mjd_obs + self.exptime_s / 2 / 86400


def _text(header: dict[str, Any], key: str) -> str | None:
    value = header.get(key)
    if value is None:
        return None
    return str(value).strip() or None


def _parse_date_obs(value: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


def check_geometry(scan: FitsScan, instrument: InstrumentConfig) -> tuple[str, ...]:
    """The detector extensions of a raw file, checked against the instrument's geometry.

    Raises
    ------
    QuarantineError
        ``mislabelled``: unknown or repeated EXTNAMEs, a shape that is no known
        readout of this instrument, or detectors missing from a full readout.
    """
    name = scan.path.name
    images = [h for h in scan.extensions if h.header.get("NAXIS", 0) != 0]
    if not images:
        raise QuarantineError(
            f"{name}: {instrument.name} raw frames carry detector extensions; this file has none",
            code="mislabelled",
        )
    known = {d.extname for d in instrument.detectors}
    seen: list[str] = []
    shapes = set()
    for hdu in images:
        extname = hdu.extname
        if extname not in known:
            raise QuarantineError(
                f"{name}: extension {hdu.index} is named {extname!r}, not a {instrument.name} "
                "detector: mislabelled or foreign file",
                code="mislabelled",
            )
        if extname in seen:
            raise QuarantineError(f"{name}: detector {extname} appears twice", code="mislabelled")
        seen.append(extname)
        shapes.add((hdu.header.get("NAXIS1"), hdu.header.get("NAXIS2")))
    for scale, geometry in instrument.geometry.items():
        if shapes != {(geometry.naxis1, geometry.naxis2)}:
            continue
        expected = [d.extname for d in instrument.detectors_at(scale)]
        missing = [d for d in expected if d not in seen]
        if missing:
            raise QuarantineError(
                f"{name}: {len(seen)} of {len(expected)} {instrument.name} detectors present "
                f"(missing {', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}): "
                "incomplete readout",
                code="mislabelled",
            )
        return tuple(seen)
    sizes = ", ".join(f"{a}x{b}" for a, b in sorted(shapes, key=str))
    known_sizes = ", ".join(f"{g.naxis1}x{g.naxis2}" for g in instrument.geometry.values())
    raise QuarantineError(
        f"{name}: detector images of {sizes} pixels are no {instrument.name} readout "
        f"(expected {known_sizes}): mislabelled",
        code="mislabelled",
    )


def image_hdus(scan: FitsScan) -> tuple[str, ...]:
    """The HDUs of a raw file that hold an image, by EXTNAME (``PRIMARY`` for the
    primary): an instrument run by ESO's pipeline has no geometry of ours to check
    them against (its recipes do)."""
    names = ("PRIMARY",) if scan.primary.get("NAXIS", 0) != 0 else ()
    return names + tuple(
        h.extname or str(h.index) for h in scan.extensions if h.header.get("NAXIS", 0) != 0
    )


def frame_info_from_scan(scan: FitsScan, instruments: Mapping[str, InstrumentBase]) -> FrameInfo:
    """Validate a scanned raw file and extract its FrameInfo.

    Parameters
    ----------
    scan
        The file's headers (``qclib.fitsio.scan_fits``).
    instruments
        The instruments this workspace takes, by INSTRUME value.

    Raises
    ------
    QuarantineError
        ``wrong-instrument``, ``missing-keyword`` or ``mislabelled``, with the reason.
    """
    name = scan.path.name
    header = scan.primary
    instrume = _text(header, "INSTRUME")
    if instrume is None:
        raise QuarantineError(
            f"{name}: no INSTRUME keyword: cannot tell the instrument", code="missing-keyword"
        )
    instrument = instruments.get(instrume)
    if instrument is None:
        raise QuarantineError(
            f"{name}: instrument {instrume!r} is not configured in this workspace "
            f"(it takes {', '.join(sorted(instruments)) or 'none'}); add it to qc.toml "
            "[workspace] instruments if it belongs here",
            code="wrong-instrument",
        )
    missing = [k for k in instrument.ingest.mandatory_keywords if _text(header, k) is None]
    if missing:
        raise QuarantineError(
            f"{name}: mandatory keyword(s) missing or empty: {', '.join(missing)}",
            code="missing-keyword",
        )
    mjd = header["MJD-OBS"]
    exptime = header["EXPTIME"]
    if not isinstance(mjd, int | float) or isinstance(mjd, bool):
        raise QuarantineError(f"{name}: MJD-OBS is not a number ({mjd!r})", code="mislabelled")
    if not isinstance(exptime, int | float) or isinstance(exptime, bool) or exptime < 0:
        raise QuarantineError(
            f"{name}: EXPTIME is not a number >= 0 ({exptime!r})", code="mislabelled"
        )
    date_obs = str(header["DATE-OBS"]).strip()
    when = _parse_date_obs(date_obs)
    if when is None:
        raise QuarantineError(
            f"{name}: DATE-OBS {date_obs!r} is not an ISO date", code="mislabelled"
        )
    if abs(datetime_to_mjd(when) - float(mjd)) * 86400 > _TIME_TOLERANCE_S:
        raise QuarantineError(
            f"{name}: DATE-OBS {date_obs} and MJD-OBS {mjd} disagree: mislabelled header",
            code="mislabelled",
        )
    arcfile = str(header["ARCFILE"]).strip()
    match = _ARCFILE.match(arcfile)
    if match is None or match["prefix"] != instrument.arcfile_prefix:
        raise QuarantineError(
            f"{name}: ARCFILE {arcfile!r} is not '{instrument.arcfile_prefix}.<DATE-OBS>.fits'",
            code="mislabelled",
        )
    stamp = _parse_date_obs(match["stamp"])
    if stamp is None or abs((stamp - when).total_seconds()) > _TIME_TOLERANCE_S:
        raise QuarantineError(
            f"{name}: ARCFILE {arcfile} does not match DATE-OBS {date_obs}: mislabelled",
            code="mislabelled",
        )
    detectors = (
        check_geometry(scan, instrument)
        if isinstance(instrument, InstrumentConfig)
        else image_hdus(scan)
    )
    filters = [_text(header, k) for k in instrument.filter_keywords]
    return FrameInfo(
        arcfile=arcfile,
        instrument=instrument.name,
        night=night_of_mjd(float(mjd), instrument.site.timezone),
        mjd_obs=float(mjd),
        date_obs=date_obs,
        exptime_s=float(exptime),
        dpr_catg=_text(header, "DPR.CATG"),
        dpr_type=_text(header, "DPR.TYPE"),
        dpr_tech=_text(header, "DPR.TECH"),
        object=_text(header, "OBJECT"),
        tpl_id=_text(header, "TPL.ID"),
        tpl_start=_text(header, "TPL.START"),
        prog_id=_text(header, "OBS.PROG.ID"),
        filters="+".join(f for f in filters if f) or None,
        detectors=detectors,
        keywords=dict(header),
    )
