"""Counts of defective pixels differ from detector to detector (a bad column alone is
4100 pixels of an OmegaCAM CCD): they are graded against each detector's own history,
never by one range for all, so a healthy detector is never NOK for being itself."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from qclib.instruments import load_instrument
from qclib.qc.scoring import grade_value, rules_from_config, select_rule
from qclib.simulate.truth import draw_detector_truth

#: QC parameters that count defective pixels, per instrument and product.
DEFECT_COUNTS = ("QC.NHOTPIX", "QC.NCOLDPIX", "QC.FLAT.NBADPIX", "QC.CONF.NZERO")
NIGHT = dt.date(2026, 11, 23)


@pytest.mark.parametrize("name", ["OMEGACAM", "HAWKI"])
def test_no_defect_count_is_graded_by_one_range_for_all(name: str) -> None:
    rules = rules_from_config(load_instrument(name).scoring)
    counted = [r for r in rules if r.parameter in DEFECT_COUNTS]
    assert counted, f"{name} grades no defect count"
    for rule in counted:
        assert rule.kind in ("history", "reference"), rule.version


def test_healthy_ccds_are_ok_and_a_new_bad_column_is_not() -> None:
    """Every full-size OmegaCAM CCD the simulator draws (170 cold pixels, 0-3 bad
    columns of up to 4100 pixels): its dome flat's QC.NCOLDPIX against five earlier
    nights that scattered by their counting noise is OK; a new bad column is NOK."""
    instrument = load_instrument("OMEGACAM")
    geometry = instrument.geometry["full"]
    rules = rules_from_config(instrument.scoring)
    rng = np.random.default_rng(1)
    counts = []
    for index, detector in enumerate(instrument.detectors):
        truth = draw_detector_truth(instrument, geometry, index, 7)
        count = len(truth.cold_pixels) + sum(b - a for _, a, b, _ in truth.bad_columns)
        counts.append(count)
        history = list(count + rng.normal(0.0, np.sqrt(count), 5).round())
        rule = select_rule(
            rules,
            pro_catg="MASTER_DOME_FLAT",
            parameter="QC.NCOLDPIX",
            detector=detector.extname,
            night=NIGHT,
        )
        kwargs = {"parameter": "QC.NCOLDPIX", "detector": detector.extname, "history": history}
        assert grade_value(float(count), rule, **kwargs).grade == "OK", (detector, count)
        worse = grade_value(float(count + 4100), rule, **kwargs)
        assert worse.grade == "NOK", (detector, count, worse.reason)
    # The simulated mosaic spans what a fixed range could not: 170 to over 8,000.
    assert min(counts) < 500 and max(counts) > 8000
