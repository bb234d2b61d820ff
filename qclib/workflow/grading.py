"""Grade processed science OBs against their constraints, and record the grades.

What the PI asked for comes from the raws' headers (the keywords the instrument TOML's
``[grading]`` names: OBS.AMBI.FWHM, OBS.AIRM, OBS.AMBI.TRANS, OBS.MOON.*); what was
delivered from the science product (each exposure's FWHM, ``QC.FWHM.EXP<i>``; the
stars' light loss, ``QC.PHOTOM.OFFSET``, when the coadd was calibrated with the night's
zeropoint) and from the raws (airmass; the Moon's lit fraction and distance at each
exposure's middle, ``qclib.ephemeris``). ``qclib.qc.ob_grading`` gives the grade.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from qclib import ephemeris
from qclib.config.instrument import InstrumentConfig
from qclib.db import Database, ingest_log
from qclib.db import blocks as block_store
from qclib.db import ob_grades as grade_store
from qclib.db import products as product_store
from qclib.instruments import load_instrument
from qclib.qc.ob_grading import Delivered, Requested, grade_ob
from qclib.workflow.science import is_science

_EXPOSURE_FWHM = re.compile(r"QC\.FWHM\.EXP(\d+)$")


def grade_science(database: Database, ab_ids: Iterable[str]) -> list[grade_store.StoredGrade]:
    """Grade those of the blocks ``ab_ids`` that are science blocks with a product, and
    record the grades."""
    graded = []
    with database.transaction() as session:
        for ab_id in ab_ids:
            block = block_store.get_block(session, ab_id)
            if block is None or not is_science(block):
                continue
            products = [
                p
                for p in product_store.products_of_block(session, block.id)
                if p.status != "rejected"
            ]
            if not products:
                continue
            product = products[0]
            qc = product_store.qc_values(session, product.id)
            frames = [ingest_log.frame_by_arcfile(session, a) for a in block.inputs]
            headers = [f.keywords for f in frames if f is not None]
            if not headers:
                continue
            instrument = load_instrument(block.instrument)
            result = grade_ob(
                requested_of(instrument, headers[0]),
                delivered_of(instrument, headers, qc),
                tolerance=instrument.grading.tolerance,
                transparency_loss_mag=instrument.grading.transparency_loss_mag,
            )
            stored = grade_store.StoredGrade(
                block.id,
                block.instrument,
                dt.date.fromisoformat(block.night),
                _text(headers[0].get("OBS.PROG.ID")),
                _integer(headers[0].get("OBS.ID")),
                result.grade,
                result.reason,
                [
                    {
                        "constraint": c.constraint,
                        "requested": c.requested,
                        "delivered": c.delivered,
                        "grade": c.grade,
                        "reason": c.reason,
                    }
                    for c in result.checks
                ],
                product.sha256,
                dt.datetime.now(dt.UTC),
            )
            grade_store.set_grade(session, stored)
            graded.append(stored)
    return graded


def requested_of(instrument: InstrumentConfig, header: Mapping[str, Any]) -> Requested:
    """An OB's constraint set from its first raw's (flattened) header."""
    keys = instrument.grading
    transparency = _text(header.get(keys.transparency_keyword))
    return Requested(
        _number(header.get(keys.seeing_keyword)),
        _number(header.get(keys.airmass_keyword)),
        transparency.lstrip("0123456789") if transparency else None,
        _number(header.get(keys.moon_fli_keyword)),
        _number(header.get(keys.moon_distance_keyword)),
    )


def delivered_of(
    instrument: InstrumentConfig,
    headers: list[Mapping[str, Any]],
    qc: Mapping[str, Mapping[str, float | None]],
) -> Delivered:
    """What an OB's raws (headers) and its science product (QC values by extension)
    delivered."""
    keys = instrument.grading
    coadd = next((values for values in qc.values() if "QC.PHOTZP" in values), {})
    per_exposure = [v for k, v in coadd.items() if _EXPOSURE_FWHM.match(k) and v is not None]
    seeing = float(np.median(per_exposure)) if per_exposure else coadd.get("QC.FWHM")
    airmasses = [
        a
        for h in headers
        for a in (
            _number(h.get(keys.airmass_start_keyword)),
            _number(h.get(keys.airmass_end_keyword)),
        )
        if a is not None
    ]
    fli, distance = _moon(instrument, headers)
    loss = None
    if coadd.get("QC.PHOTZP.FROM.FIELD") == 0.0:
        loss = coadd.get("QC.PHOTOM.OFFSET")
    return Delivered(seeing, max(airmasses) if airmasses else None, fli, distance, loss)


def _moon(
    instrument: InstrumentConfig, headers: list[Mapping[str, Any]]
) -> tuple[float | None, float | None]:
    """The Moon's largest lit fraction and smallest distance from the target (deg)
    over the exposures during which it was above the horizon (None, None: never)."""
    site = instrument.site
    fli, distance = [], []
    for h in headers:
        mjd, exptime = _number(h.get("MJD-OBS")), _number(h.get("EXPTIME")) or 0.0
        ra, dec = _number(h.get("RA")), _number(h.get("DEC"))
        if mjd is None or ra is None or dec is None:
            continue
        middle = mjd + exptime / 2 / 86400
        moon_ra, moon_dec = ephemeris.moon_radec_deg(middle)
        altitude = ephemeris.altitude_deg(
            moon_ra, moon_dec, middle, site.longitude_deg, site.latitude_deg
        )
        if float(altitude) > 0:
            fli.append(float(ephemeris.moon_illumination(middle)))
            distance.append(float(ephemeris.separation_deg(moon_ra, moon_dec, ra, dec)))
    return (max(fli), min(distance)) if fli else (None, None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _integer(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return str(value).strip() if value is not None else None
