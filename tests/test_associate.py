"""Association blocks and the calibration cascade, checked against the simulator's plan."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qclib.associate import (
    AssociationBlock,
    Calibration,
    Choice,
    RawFrame,
    TagLog,
    build_association_blocks,
)
from qclib.calchecker import check_calibrations
from qclib.classify import classify_header
from qclib.fitsio import scan_fits
from qclib.frames import frame_info_from_scan
from qclib.instruments import load_instrument, load_rules
from tests.conftest import load_truth


def _raw_frames(folder: Path) -> list[RawFrame]:
    truth = load_truth(folder)
    config = load_instrument(truth["instrument"])
    rules = load_rules(truth["instrument"])
    frames = []
    for path in sorted(folder.glob("*.fits")):
        info = frame_info_from_scan(scan_fits(path), {config.name: config})
        result = classify_header(rules, info.keywords)
        frames.append(
            RawFrame(
                info.arcfile,
                info.instrument,
                info.night.isoformat(),
                info.mid_mjd,
                {**info.keywords, **result.assigned},
            )
        )
    return frames


def _blocks(folder: Path, frames: list[RawFrame] | None = None, calibrations=()):
    name = load_truth(folder)["instrument"]
    return build_association_blocks(
        load_rules(name),
        load_instrument(name).association,
        frames if frames is not None else _raw_frames(folder),
        calibrations,
    )


def test_omegacam_night_gives_the_planned_blocks_and_cascade(omegacam_night: Path) -> None:
    truth = load_truth(omegacam_night)
    blocks = _blocks(omegacam_night)
    by_action = Counter(b.action for b in blocks)
    kinds = Counter(e["kind"] for e in truth["exposures"])
    standards = kinds["standard"]  # one template (and AB) per standard field visit
    assert by_action == {
        "MASTER_BIAS": 1,
        "MASTER_DARK": 1,
        "READ_GAIN": 1,
        "MASTER_DOME_FLAT": 1,
        "MASTER_SKY_FLAT": 1,
        "ZEROPOINT": standards,
        "SCIENCE_REDUCED": 1,
    }
    assert all(b.completeness == "complete" for b in blocks)
    ids = {b.action: b.id for b in blocks if b.action != "ZEROPOINT"}
    bias = next(b for b in blocks if b.action == "MASTER_BIAS")
    assert len(bias.inputs) == kinds["bias"]
    assert bias.id == f"{sorted(bias.inputs)[0][:-5]}_MASTER_BIAS"
    sky = next(b for b in blocks if b.action == "MASTER_SKY_FLAT")
    assert set(sky.parents) == {ids["MASTER_BIAS"], ids["MASTER_DOME_FLAT"]}
    science = next(b for b in blocks if b.action == "SCIENCE_REDUCED")
    assert len(science.inputs) == kinds["science"]
    assert {ids["MASTER_BIAS"], ids["MASTER_SKY_FLAT"]} <= set(science.parents)
    zeropoint = {t.tag: t for t in science.tags}["ZEROPOINT"]
    # The standard closest in time is chosen; the others are runners-up with a reason.
    assert zeropoint.chosen[0].level == 0
    assert all("farther in time" in why for _, why in zeropoint.runners_up)
    # Calibrations are planned as virtual products of the ABs that will make them.
    assert {c.status for t in science.tags for c in t.chosen} == {"virtual"}
    gain = next(b for b in blocks if b.action == "READ_GAIN")
    assert [c.status for c in gain.tags[0].chosen] == ["raw", "raw"]


def test_hawki_night_gives_the_planned_blocks(hawki_night: Path) -> None:
    blocks = _blocks(hawki_night)
    by_action = Counter(b.action for b in blocks)
    assert by_action["MASTER_DARK"] == 4  # DIT 10 s x 6, 60 s x 1, 2 s x 10, 150 s x 2
    assert by_action["MASTER_TWILIGHT_FLAT"] == 2  # J pairs and Ks
    assert by_action["DETECTOR_NOISE"] == 1 and by_action["SCIENCE_REDUCED"] == 1
    assert all(b.completeness == "complete" for b in blocks)
    noise = next(b for b in blocks if b.action == "DETECTOR_NOISE")
    flats = noise.tags[0].chosen
    truth = load_truth(hawki_night)
    level = {e["arcfile"]: e["flux_e_per_s"] for e in truth["exposures"]}
    assert len(flats) == 2 and level[flats[0].ref] == level[flats[1].ref]  # an equal pair
    science = next(b for b in blocks if b.action == "SCIENCE_REDUCED")
    dark = {t.tag: t for t in science.tags}["MASTER_DARK"]
    assert dark.chosen[0].ab_id is not None
    dark_ab = next(b for b in blocks if b.id == dark.chosen[0].ab_id)
    assert dark_ab.action == "MASTER_DARK"
    assert science.setup["DET.DIT"] == 10.0 and science.setup["DET.NDIT"] == 6
    # The darks of other DITs lost for their setup, and say so.
    assert any("DET.DIT" in why for _, why in dark.runners_up)


def test_removing_the_flats_makes_calchecker_say_miss(omegacam_night: Path) -> None:
    frames = [f for f in _raw_frames(omegacam_night) if f.do_catg != "FLAT_SKY"]
    blocks = _blocks(omegacam_night, frames)
    science = next(b for b in blocks if b.action == "SCIENCE_REDUCED")
    assert science.completeness == "incomplete"
    assert "MASTER_FLAT" in science.reason and "r_SDSS" in science.reason
    (check,) = check_calibrations(
        load_rules("OMEGACAM"),
        load_instrument("OMEGACAM").association,
        blocks,
    )
    assert check.verdict == "MISS"
    flat = next(c for c in check.calibrations if c.tag == "MASTER_FLAT")
    assert flat.verdict == "MISS"
    assert flat.action_required.startswith("take 3 x FLAT_SKY (INS.FILT1.NAME=r_SDSS)")
    bias = next(c for c in check.calibrations if c.tag == "MASTER_BIAS")
    assert bias.verdict == "OK" and bias.action_required is None


def test_ageing_the_flats_past_the_plan_window_makes_calchecker_say_nok(
    omegacam_night: Path,
) -> None:
    frames = [
        dataclasses.replace(f, mid_mjd=f.mid_mjd - 2.0) if f.do_catg == "FLAT_SKY" else f
        for f in _raw_frames(omegacam_night)
    ]
    blocks = _blocks(omegacam_night, frames)
    (check,) = check_calibrations(
        load_rules("OMEGACAM"),
        load_instrument("OMEGACAM").association,
        blocks,
    )
    flat = next(c for c in check.calibrations if c.tag == "MASTER_FLAT")
    assert (check.verdict, flat.verdict, flat.level) == ("NOK", "NOK", 1)
    assert "outdated: level 1" in flat.action_required


def test_validity_windows_under_a_day(omegacam_night: Path) -> None:
    """ZEROPOINT's plan window is 0.5 d: a standard 0.6 d away is level 1, 1.5 d away none."""
    frames = _raw_frames(omegacam_night)
    science_mid = min(f.mid_mjd for f in frames if f.do_catg == "SCIENCE")
    standards = [f for f in frames if f.do_catg == "STD"]
    for offset, level in ((0.3, 0), (0.6, 1), (1.5, 2), (5.0, 3)):
        shifted = [
            dataclasses.replace(f, mid_mjd=science_mid - offset - 0.01 * i)
            for i, f in enumerate(standards)
        ]
        others = [f for f in frames if f.do_catg != "STD"]
        blocks = _blocks(omegacam_night, others + shifted)
        science = next(b for b in blocks if b.action == "SCIENCE_REDUCED")
        chosen = {t.tag: t for t in science.tags}["ZEROPOINT"].chosen
        assert chosen[0].level == level, offset


def _master(ref: str, mid: float, status: str, header) -> Calibration:
    return Calibration(ref, "MASTER_BIAS", mid, {**header, "PRO.CATG": "MASTER_BIAS"}, status)


def test_certified_masters_preferred_and_rejected_never_used(omegacam_night: Path) -> None:
    frames = [f for f in _raw_frames(omegacam_night) if f.do_catg != "BIAS"]
    dark = next(f for f in frames if f.do_catg == "DARK")
    header = {"DET.READ.CLOCK": dark.header["DET.READ.CLOCK"]}
    calibrations = [
        _master("closest_rejected.fits", dark.mid_mjd - 0.01, "rejected", header),
        _master("close_candidate.fits", dark.mid_mjd - 0.05, "candidate", header),
        _master("older_certified.fits", dark.mid_mjd - 0.4, "certified", header),
        _master("old_certified_level1.fits", dark.mid_mjd - 2.0, "certified", header),
    ]
    blocks = _blocks(omegacam_night, frames, calibrations)
    block = next(b for b in blocks if b.action == "MASTER_DARK")
    tag = block.tags[0]
    assert tag.chosen[0].ref == "older_certified.fits"
    lost = dict(tag.runners_up)
    assert "a certified one was preferred" in lost["close_candidate.fits"]
    assert "lower quality level 1" in lost["old_certified_level1.fits"]
    assert "rejected" in lost["closest_rejected.fits"]


def test_blocks_are_deterministic(hawki_night: Path) -> None:
    frames = _raw_frames(hawki_night)
    first = [b.as_dict() for b in _blocks(hawki_night, frames)]
    again = [b.as_dict() for b in _blocks(hawki_night, list(reversed(frames)))]
    assert first == again


def test_too_few_frames_make_an_incomplete_block(omegacam_night: Path) -> None:
    frames = _raw_frames(omegacam_night)
    biases = [f for f in frames if f.do_catg == "BIAS"]
    blocks = _blocks(omegacam_night, [f for f in frames if f.do_catg != "BIAS"] + biases[:2])
    bias = next(b for b in blocks if b.action == "MASTER_BIAS")
    assert bias.completeness == "incomplete"
    assert bias.reason == "2 BIAS frame(s), MASTER_BIAS needs 3"
    # What depends on it cannot be made either, and says why.
    dark = next(b for b in blocks if b.action == "MASTER_DARK")
    assert dark.completeness == "incomplete" and "MASTER_BIAS" in dark.reason


@pytest.mark.parametrize("instrument", ["omegacam_night", "hawki_night"])
def test_ab_ids_name_the_first_raw_frame(instrument: str, request) -> None:
    folder = request.getfixturevalue(instrument)
    for block in _blocks(folder):
        assert block.id == f"{block.inputs[0][:-5]}_{block.action}"


# ------------------------------------------------------------ the stored form
def _json(data: dict) -> dict:
    """``data`` as the database gives it back: through JSON text."""
    return json.loads(json.dumps(data))


def test_every_block_of_both_nights_survives_its_stored_form(
    omegacam_night: Path, hawki_night: Path
) -> None:
    blocks = _blocks(omegacam_night) + _blocks(hawki_night)
    choices = [c for b in blocks for t in b.tags for c in t.chosen]
    # The nights hold every kind of choice the form has to carry.
    assert {c.status for c in choices} == {"virtual", "raw"}
    assert any(t.runners_up for b in blocks for t in b.tags)
    assert any(b.parents for b in blocks) and any(b.setup for b in blocks)
    for block in blocks:
        stored = _json(block.as_dict())
        back = AssociationBlock.from_dict(stored)
        assert back == block
        assert back.as_dict() == stored


_text = st.text(max_size=12)
_ids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_.:0123456789-T", min_size=1, max_size=30)
_mjd = st.floats(min_value=40000.0, max_value=80000.0)
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_choices = st.builds(
    Choice,
    ref=_ids,
    status=st.sampled_from(["certified", "candidate", "virtual", "raw"]),
    delta_days=st.floats(min_value=-400.0, max_value=400.0),
    level=st.integers(0, 4),
    ab_id=st.none() | _ids,
)
_tags = st.builds(
    TagLog,
    tag=_ids,
    category=st.none() | _ids,
    min_ret=st.integers(0, 3),
    max_ret=st.integers(0, 10),
    chosen=st.lists(_choices, max_size=3).map(tuple),
    runners_up=st.lists(st.tuples(_ids, _text), max_size=5).map(tuple),
    missing_reason=st.none() | _text,
)
_blocks_any = st.builds(
    AssociationBlock,
    id=_ids,
    instrument=st.sampled_from(["OMEGACAM", "HAWKI", "VIRCAM"]),
    action=_ids,
    recipe=st.none() | _ids,
    night=st.dates().map(lambda d: d.isoformat()),
    mid_mjd=_mjd,
    inputs=st.lists(_ids, max_size=4).map(tuple),
    input_category=st.none() | _ids,
    setup=st.dictionaries(_ids, _scalar, max_size=4),
    products=st.lists(_ids, max_size=3).map(tuple),
    tags=st.lists(_tags, max_size=4).map(tuple),
    completeness=st.sampled_from(["complete", "incomplete"]),
    reason=st.none() | _text,
    parents=st.lists(_ids, max_size=3).map(tuple),
)


@given(_blocks_any)
def test_from_dict_inverts_as_dict(block: AssociationBlock) -> None:
    stored = _json(block.as_dict())
    back = AssociationBlock.from_dict(stored)
    assert back == block
    assert back.as_dict() == stored


def test_a_choice_keeps_its_delta_as_stored() -> None:
    """Δt is kept to 1e-6 d: what association chose equals what the database returns."""
    choice = Choice("x.fits", "certified", 0.123456789, 0)
    assert choice.delta_days == 0.123457
    assert Choice.from_dict(_json(choice.as_dict())) == choice


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("completeness", "partial", "unknown completeness 'partial'"),
        ("status", "archived", "unknown choice status 'archived'"),
    ],
)
def test_from_dict_refuses_unknown_states(where: str, value: str, message: str) -> None:
    choice = Choice("MASTER_BIAS.fits", "virtual", -0.5, 0, "AB1").as_dict()
    tag = TagLog("MASTER_BIAS", "MASTER_BIAS", 1, 1, (), ()).as_dict()
    block = AssociationBlock(
        "AB2",
        "OMEGACAM",
        "MASTER_DARK",
        "qc_dark",
        "2026-11-23",
        61367.7,
        ("a.fits",),
        "DARK",
        {},
        ("MASTER_DARK",),
    ).as_dict()
    if where == "status":
        choice["status"] = value
    else:
        block["completeness"] = value
    tag["chosen"] = [choice]
    block["calibrations"] = [tag]
    with pytest.raises(ValueError, match=message):
        AssociationBlock.from_dict(block)
