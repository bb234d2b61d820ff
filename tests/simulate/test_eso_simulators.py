"""Simulated ESO calibration nights (qclib.simulate.eso): every raw carries what ingest
checks, ESO's own OCA rules give it the intended category and group each template into
one block, and ESO's recipes, run through esorex, measure the recorded truth.

ESO's pipelines are Debian packages (esorex, cpl-plugin-*): a missing one is a loud skip
(a failure under CI=true). Each tolerance below is stated where it is used, from the
statistics of the estimator the recipe documents (or from the recipe's own error).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from qclib.associate import RawFrame, organise
from qclib.classify import classify_header
from qclib.dictionary import find_entry, parse_dictionary, value_matches_type
from qclib.errors import ConfigError
from qclib.eso.job import run_job
from qclib.eso.pipelines import (
    DATA_PATH_ENV,
    PLUGIN_PATH_ENV,
    EsoPipeline,
    find_pipeline,
    installed_pipelines,
)
from qclib.fitsio import scan_fits
from qclib.frames import _ARCFILE
from qclib.instruments import read_rules
from qclib.nights import datetime_to_mjd, night_of_mjd
from qclib.oca.evaluate import evaluate
from qclib.oca.rules import RuleSet, keywords_in
from qclib.simulate.eso import SIMULATED_ESO_INSTRUMENTS, muse, simulate_eso_night
from tests.conftest import missing_dependency

NIGHT = dt.date(2026, 11, 23)
PARANAL = "America/Santiago"
#: Per instrument: its pipeline, the scale simulated here, the ARCFILE prefix, the
#: image (NAXIS1, NAXIS2, BITPIX) and the OCA action that takes each template's kind.
SETUPS: dict[str, tuple[str, str, str, tuple[int, int, int], dict[str, str]]] = {
    "GIRAFFE": (
        "giraf", "full", "GIRAF", (2148, 4096, 16),
        {"bias": "gimasterbias", "dark": "gimasterdark"},
    ),
    "UVES": (
        "uves", "test", "UVES", (2148, 3000, 16),
        {"bias": "UVES_MASTER_BIAS_B", "dark": "UVES_MASTER_DARK_B"},
    ),
    "NAOS+CONICA": (
        "naco", "test", "NACO", (1024, 1024, -32),
        {"dark": "naco_img_dark", "lamp_flat": "naco_img_lampflat"},
    ),
    "VISIR": (
        "visir", "test", "VISIR", (1024, 1024, -32),
        {"dark": "visir_img_dark", "flat": "visir_img_ff"},
    ),
    # MUSE at the test scale: 24 IFUs of four 256 x 256 outputs (32 px prescan and overscan).
    "MUSE": ("muse", "test", "MUSE", (640, 640, 16), {"bias": "muse_bias", "dark": "muse_dark"}),
}  # fmt: skip
MANDATORY = (
    "INSTRUME", "TELESCOP", "ORIGIN", "DATE-OBS", "MJD-OBS", "EXPTIME", "ARCFILE",
    "DPR.CATG", "DPR.TYPE", "DPR.TECH", "TPL.ID", "TPL.START", "TPL.EXPNO", "TPL.NEXP",
)  # fmt: skip
#: What 1-ADU rounding adds to the noise of a 16-bit raw (ADU²).
ROUNDING = 1 / 12


@pytest.fixture(scope="module", autouse=True)
def debian_layout_only() -> Iterator[None]:
    """These tests know Debian's pipelines: folders a user's environment adds are left out."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(PLUGIN_PATH_ENV, raising=False)
        patch.delenv(DATA_PATH_ENV, raising=False)
        yield


Night = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Night]:
    """Each instrument's night, simulated once (read-only: copy files to change them)."""
    made: dict[str, Night] = {}

    def night(instrument: str) -> Night:
        if instrument not in made:
            out = tmp_path_factory.mktemp(f"eso-{instrument.lower().replace('+', '-')}")
            result = simulate_eso_night(
                instrument, NIGHT, out, seed=11, scale=SETUPS[instrument][1]
            )
            truth = json.loads(result.truth_path.read_text())
            assert sorted(result.files) == sorted(out / f["arcfile"] for f in truth["files"])
            assert result.bytes_written == sum(p.stat().st_size for p in result.files)
            made[instrument] = (out, truth)
        return made[instrument]

    return night


def _pipeline(name: str, *, esorex: bool) -> EsoPipeline:
    """ESO's pipeline ``name`` (and esorex, if asked), or a loud skip."""
    if (esorex and shutil.which("esorex") is None) or name not in {
        p.name for p in installed_pipelines()
    }:
        missing_dependency(
            f"ESO PIPELINE TESTS SKIPPED: apt-get install esorex cpl-plugin-{name} "
            "('make test' does as root)"
        )
    return find_pipeline(name)


def _raws(folder: Path, truth: dict[str, Any], kind: str, tag: str | None = None):
    """(path, tag) of the raws of one kind, tagged with their DO.CATG (or ``tag``)."""
    return [
        (folder / f["arcfile"], tag or f["do_catg"]) for f in truth["files"] if f["kind"] == kind
    ]


def _qc(path: Path, extname: str = "") -> dict[str, Any]:
    """A product's flattened header: the primary's, or that of the HDU named ``extname``
    (MUSE's merged masters: CHANnn.DATA, .DQ and .STAT per IFU, each with its QC)."""
    scan = scan_fits(path)
    if not extname:
        return scan.primary
    return next(h.header for h in scan.hdus if h.extname == extname)


def test_the_simulated_instruments_are_named_as_their_raws_say() -> None:
    assert SIMULATED_ESO_INSTRUMENTS == ("GIRAFFE", "UVES", "NAOS+CONICA", "VISIR", "MUSE")
    with pytest.raises(ConfigError, match="unknown scale"):  # NACO (the prefix) is known
        simulate_eso_night("NACO", NIGHT, Path("/nonexistent"), scale="huge")
    with pytest.raises(ConfigError, match="no ESO calibration-night simulator"):
        simulate_eso_night("HARPS", NIGHT, Path("/nonexistent"))


@pytest.mark.parametrize("instrument", list(SETUPS))
def test_every_raw_carries_what_ingest_checks(
    instrument: str, simulated: Callable[[str], Night]
) -> None:
    """The keywords qclib.frames demands, ARCFILE = <prefix>.<DATE-OBS>.fits = the file's
    name, MJD-OBS agreeing with DATE-OBS, the night, the real detector geometry (16-bit
    raws with floating-point BZERO/BSCALE), one TPL.START per template."""
    folder, truth = simulated(instrument)
    _, _, prefix, (naxis1, naxis2, bitpix), _ = SETUPS[instrument]
    templates: dict[str, list[dict[str, Any]]] = {}
    for entry in truth["files"]:
        path = folder / entry["arcfile"]
        scan = scan_fits(path)
        header = scan.primary
        assert [k for k in MANDATORY if header.get(k) in (None, "")] == [], path.name
        assert header["INSTRUME"] == instrument and header["ORIGIN"] == "ESO-PARANAL"
        assert str(header["TELESCOP"]).startswith("ESO-VLT-U")
        match = _ARCFILE.match(str(header["ARCFILE"]))
        assert match is not None and match["prefix"] == prefix, header["ARCFILE"]
        assert path.name == header["ARCFILE"] and match["stamp"] == header["DATE-OBS"]
        start = dt.datetime.fromisoformat(str(header["DATE-OBS"])).replace(tzinfo=dt.UTC)
        mjd, exptime = header["MJD-OBS"], header["EXPTIME"]
        assert isinstance(mjd, float) and isinstance(exptime, float) and exptime >= 0
        assert abs(datetime_to_mjd(start) - mjd) * 86400 < 0.01  # ingest allows 1 s
        end = mjd + exptime / 86400
        assert night_of_mjd(mjd, PARANAL) == night_of_mjd(end, PARANAL) == NIGHT
        assert (header["DPR.CATG"], header["DPR.TYPE"], header["DPR.TECH"]) == tuple(entry["dpr"])
        images = [h for h in scan.hdus if h.header.get("NAXIS", 0)]
        if instrument == "MUSE":  # an empty primary, then the 24 IFUs in order
            assert scan.hdus[0].header["NAXIS"] == 0
            assert [h.extname for h in images] == [f"CHAN{k:02d}" for k in range(1, 25)]
        else:
            assert len(images) == 1
        for image in (h.header for h in images):
            assert (image["NAXIS1"], image["NAXIS2"], image["BITPIX"]) == (naxis1, naxis2, bitpix)
            if bitpix == 16:  # UVES refuses integer scaling cards
                assert (image["BZERO"], image["BSCALE"]) == (32768.0, 1.0)
                assert isinstance(image["BZERO"], float) and isinstance(image["BSCALE"], float)
        templates.setdefault(str(header["TPL.START"]), []).append(header)
    assert len(templates) == 2
    for members in templates.values():
        assert len({m["TPL.ID"] for m in members}) == 1
        assert [m["TPL.EXPNO"] for m in members] == list(range(1, len(members) + 1))
        assert {m["TPL.NEXP"] for m in members} == {len(members)}


@pytest.mark.parametrize("instrument", list(SETUPS))
def test_instrument_keywords_are_in_the_pipelines_dictionaries(
    instrument: str, simulated: Callable[[str], Night]
) -> None:
    """Every INS keyword written is in the instrument's ESO-VLT-DIC dictionaries, with its
    type (Debian ships no DET dictionary: the DET cards follow real ESO headers)."""
    pipeline = _pipeline(SETUPS[instrument][0], esorex=False)
    assert pipeline.data_dir is not None
    entries = []
    for path in sorted((pipeline.data_dir / "dic").glob("ESO-VLT-DIC.*")):
        entries += parse_dictionary(path.read_text(errors="replace"))
    folder, truth = simulated(instrument)
    seen = set()
    for entry in truth["files"]:
        for key, value in scan_fits(folder / entry["arcfile"]).primary.items():
            if key.startswith("INS."):
                found = find_entry(entries, key)
                assert found is not None, f"{key} is in no {pipeline.name} dictionary"
                assert value_matches_type(value, found.type), (key, value, found.type)
                seen.add(key)
    assert seen


def _classified_frames(rules: RuleSet, folder: Path, truth: dict[str, Any]) -> list[RawFrame]:
    frames = []
    for entry in truth["files"]:
        header = scan_fits(folder / entry["arcfile"]).primary
        got = classify_header(rules, header)
        assert got.do_catg == entry["do_catg"], (entry["arcfile"], got.near_misses)
        mid = entry["mjd_obs"] + entry["exptime_s"] / 2 / 86400
        frames.append(
            RawFrame(
                entry["arcfile"],
                str(header["INSTRUME"]),
                NIGHT.isoformat(),
                mid,
                header | got.assigned,
            )
        )
    return frames


@pytest.mark.parametrize("instrument", list(SETUPS))
def test_eso_rules_classify_every_raw_and_make_one_block_per_template(
    instrument: str, simulated: Callable[[str], Night]
) -> None:
    pipeline_name, _, _, _, actions = SETUPS[instrument]
    rules = read_rules(_pipeline(pipeline_name, esorex=False).oca_path)
    folder, truth = simulated(instrument)
    frames = _classified_frames(rules, folder, truth)
    blocks = {
        (action.name, tuple(sorted(f.arcfile for f in members)))
        for action, members in organise(rules, frames)
    }
    expected = {
        (action, tuple(sorted(f["arcfile"] for f in truth["files"] if f["kind"] == kind)))
        for kind, action in actions.items()
    }
    assert blocks == expected


def _assert_associated(
    rules: RuleSet, action: str, tag: str, product: Path, raws: list[tuple[Path, str]]
) -> None:
    """ESO's OCA selects ``product`` (classified by the rules) as ``tag`` for each raw of
    ``action``: every keyword the selection matches is in both headers and agrees."""
    header = _qc(product)
    calibration = header | classify_header(rules, header).assigned
    rule = rules.action(action)
    assert rule is not None
    select = next(a for a in rule.associations if a.tag == tag)
    matched = {k.name for k in keywords_in(select.condition) if k.of_input}
    assert matched and matched <= set(header), sorted(matched - set(header))
    for raw, _ in raws:
        raw_header = scan_fits(raw).primary
        assert matched <= set(raw_header), sorted(matched - set(raw_header))
        assert evaluate(select.condition, calibration, raw_header), (raw.name, tag)


def test_giraffe_master_bias_and_dark_measure_the_truth(
    simulated: Callable[[str], Night], tmp_path: Path
) -> None:
    pipeline = _pipeline("giraf", esorex=True)
    folder, truth = simulated("GIRAFFE")
    out = truth["outputs"]["OUT1"]
    biases, darks = _raws(folder, truth, "bias"), _raws(folder, truth, "dark")
    bias = run_job("gimasterbias", biases, tmp_path / "bias", recipe_dir=pipeline.plugin_dir)
    (master,) = bias.by_catg["MASTER_BIAS"]
    qc = _qc(master)
    raw_noise = math.sqrt(out["read_noise_adu"] ** 2 + ROUNDING)
    # QC.OUT1.RON.RAW: median rms of five 100x100 windows of raw1 - raw2, over sqrt 2.
    # One window's rms is good to 1/sqrt(2 x 10^4) = 0.7 %; 3 % is over 3 sigma.
    assert qc["QC.OUT1.RON.RAW"] == pytest.approx(raw_noise, rel=0.03)
    # The master is the mean of the biases (stack-method average): noise / sqrt(n).
    assert qc["QC.OUT1.RON.MASTER"] == pytest.approx(raw_noise / math.sqrt(len(biases)), rel=0.03)
    # Mean of 8.8 million master pixels (rms 1.8 ADU): 0.001 ADU; 0.02 allowed.
    assert qc["QC.BIAS.MASTER.MEAN"] == pytest.approx(out["bias_adu"], abs=0.02)
    dark = run_job(
        "gimasterdark",
        [*darks, (master, "MASTER_BIAS")],
        tmp_path / "dark",
        recipe_dir=pipeline.plugin_dir,
    )
    (master_dark,) = dark.by_catg["MASTER_DARK"]
    # QC.DARK.CURRENT: mean of the bias-subtracted master dark (bias from the prescan)
    # over EXPTIME in hours. Pixel noise averages out (0.05 %); the hot pixels add
    # 150 x 430 ADU over 8.4 million pixels (+0.3 %); 2 % allowed.
    assert _qc(master_dark)["QC.DARK.CURRENT"] == pytest.approx(out["dark_adu_per_h"], rel=0.02)
    rules = read_rules(pipeline.oca_path)
    _assert_associated(rules, "gimasterdark", "MASTER_BIAS", master, darks)


def test_uves_blue_master_bias_and_dark_measure_the_truth(
    simulated: Callable[[str], Night], tmp_path: Path
) -> None:
    pipeline = _pipeline("uves", esorex=True)
    folder, truth = simulated("UVES")
    out = truth["outputs"]["OUT1"]
    biases, darks = _raws(folder, truth, "bias"), _raws(folder, truth, "dark")
    bias = run_job("uves_cal_mbias", biases, tmp_path / "bias", recipe_dir=pipeline.plugin_dir)
    (master,) = bias.by_catg["MASTER_BIAS_BLUE"]
    # QC.OUT1.RON.RAW is measured over most of the chip: it repeats to 0.05 % from seed
    # to seed; 1 % allowed.
    raw_noise = math.sqrt(out["read_noise_adu"] ** 2 + ROUNDING)
    assert _qc(master)["QC.OUT1.RON.RAW"] == pytest.approx(raw_noise, rel=0.01)
    # uves_cal_mbias writes no bias level: the master's own mean (6 million pixels).
    assert float(np.mean(fits.getdata(master))) == pytest.approx(out["bias_adu"], abs=0.02)
    dark = run_job(
        "uves_cal_mdark",
        [*darks, (master, "MASTER_BIAS_BLUE")],
        tmp_path / "dark",
        recipe_dir=pipeline.plugin_dir,
    )
    (master_dark,) = dark.by_catg["MASTER_DARK_BLUE"]
    # QC.REG.AVG.MED: median over 16 boxes of 100x100 px of their mean (ADU over the
    # 3600 s exposure). One box's mean is good to 3 ADU / 100 = 0.03 ADU; a box holding
    # a hot pixel reads 0.03 ADU high; the median of 16: 0.05 ADU allowed.
    expected = out["dark_adu_per_s"] * truth["files"][-1]["exptime_s"]
    assert _qc(master_dark)["QC.REG.AVG.MED"] == pytest.approx(expected, abs=0.05)
    rules = read_rules(pipeline.oca_path)
    _assert_associated(rules, "UVES_MASTER_DARK_B", "MASTER_BIAS_BLUE", master, darks)


def test_naco_dark_and_lamp_flat_measure_the_truth(
    simulated: Callable[[str], Night], tmp_path: Path
) -> None:
    pipeline = _pipeline("naco", esorex=True)
    folder, truth = simulated("NAOS+CONICA")
    out = truth["outputs"]["CHIP1"]
    dark = run_job(
        "naco_img_dark",
        _raws(folder, truth, "dark"),
        tmp_path / "dark",
        recipe_dir=pipeline.plugin_dir,
    )
    qc = _qc(dark.by_catg["NACO_IMG_DARK_AVG"][0])
    # QC.RONi: rms in 100 random 5x5 windows of a difference of two darks, times
    # sqrt(NDIT/2): the read noise of one read. A 25-pixel rms is good to 14 %, the
    # mean of 100 to 1.4 %, and reads ~1 % low: 6 % allowed for each pair.
    for key in ("QC.RON1", "QC.RON2"):
        assert qc[key] == pytest.approx(out["read_noise_adu"], rel=0.06)
    dit = truth["dark"]["dit_s"]
    # Median of the mean of 3 darks over the central 624x624 px (1.9 ADU rms): 0.004.
    assert qc["QC.DARKMED"] == pytest.approx(out["dark_adu_per_s"] * dit, abs=0.02)
    # Hot pixels (15 ADU/s x 30 s) lie far above the 10-sigma threshold, noise never.
    assert qc["QC.NBHOTPIX"] == out["hot_pixels_count"]

    lamp = truth["lamp_flat"]
    flats = _raws(folder, truth, "lamp_flat")
    flat = run_job("naco_img_lampflat", flats, tmp_path / "flat", recipe_dir=pipeline.plugin_dir)
    (product,) = flat.by_catg["MASTER_LAMP_FLAT"]
    qc = _qc(product)
    g, dit = out["gain_e_per_adu"] * lamp["ndit"], lamp["dit_s"]  # per raw (NDIT reads)
    ron = out["read_noise_adu"] / math.sqrt(lamp["ndit"])
    s_on = (lamp["lamp_adu_per_s"] + lamp["thermal_adu_per_s"] + out["dark_adu_per_s"]) * dit
    s_off = (lamp["thermal_adu_per_s"] + out["dark_adu_per_s"]) * dit
    # QC.LAMPFLUX: median of (first on - first off) / DIT; the response's median is 1.
    assert qc["QC.LAMPFLUX"] == pytest.approx(lamp["lamp_adu_per_s"], rel=0.002)
    # QC.GAIN is ESO's sqrt(2 mean(on1) / (var(on1 - on2) - var(off1 - off2))), as in its
    # predecessor (eclipse conica/lampflat.c): for this truth sqrt(g S_on/(S_on - S_off)),
    # the square root of the gain in e-/ADU. Window rms good to ~1 %: 3 % allowed.
    assert qc["QC.GAIN"] == pytest.approx(math.sqrt(g * s_on / (s_on - s_off)), rel=0.03)
    # QC.FPNOISE = sqrt(var(on1 - off1) - var(off1 - off2) - var(on1 - on2)): the
    # response pattern of the lamp light less the shot and read noise it double-counts.
    fpn = math.sqrt((lamp["prnu_rms"] * (s_on - s_off)) ** 2 - (s_on + s_off) / g - 2 * ron**2)
    assert qc["QC.FPNOISE"] == pytest.approx(fpn, rel=0.04)
    # The normalised flat is the response: its rms in the centre is the truth's, with
    # the pairs' noise (0.26 %) added in quadrature; 5 % allowed.
    centre = fits.getdata(product)[200:824, 200:824]
    noise = math.sqrt((s_on + s_off) / g + 2 * ron**2) / (s_on - s_off)  # one pair
    n_pairs = len(flats) // 2
    expected = math.hypot(lamp["prnu_rms"], noise / math.sqrt(n_pairs))
    assert float(np.std(centre)) == pytest.approx(expected, rel=0.05)


def test_visir_dark_and_flat_measure_the_truth(
    simulated: Callable[[str], Night], tmp_path: Path
) -> None:
    pipeline = _pipeline("visir", esorex=True)
    folder, truth = simulated("VISIR")
    out = truth["outputs"]["CHIP1"]
    dark = run_job(
        "visir_img_dark",
        _raws(folder, truth, "dark"),
        tmp_path / "dark",
        recipe_dir=pipeline.plugin_dir,
    )
    qc = _qc(dark.by_catg["IMG_DARK_AVG"][0])
    # As NACO's: 100 windows of 5x5 px, times sqrt(NDIT/2): per read; 6 % allowed.
    for key in ("QC.RON1", "QC.RON2"):
        assert qc[key] == pytest.approx(out["read_noise_adu"], rel=0.06)
    assert qc["QC.DARKMED"] == pytest.approx(
        out["dark_adu_per_s"] * truth["dark"]["dit_s"], abs=0.02
    )
    assert qc["QC.NBHOTPIX"] == out["hot_pixels_count"]

    spec = truth["flat"]
    flat = run_job(
        "visir_img_ff",
        _raws(folder, truth, "flat"),
        tmp_path / "flat",
        recipe_dir=pipeline.plugin_dir,
    )
    (product,) = flat.by_catg["IMG_FF"]
    qc = _qc(product)
    # QC.LAMPFLUX: median of (first bright - first faint) / DIT.
    lamp = spec["bright_adu_per_s"] - spec["faint_adu_per_s"]
    assert qc["QC.LAMPFLUX"] == pytest.approx(lamp, rel=0.002)
    # The dead pixels' fitted response (0.05) is below the recipe's 0.2: its bad
    # pixels, and no others (the flat shows them as 1).
    assert qc["QC.NBBADPIX"] == spec["dead_pixels_count"]
    (bpm,) = flat.by_catg["IMG_BPM"]
    ys, xs = np.nonzero(fits.getdata(bpm))
    assert sorted(zip(xs.tolist(), ys.tolist(), strict=True)) == [
        tuple(p) for p in spec["dead_pixels"]
    ]
    # The fitted response's rms in the centre: the truth's (its noise is < 0.3 %).
    centre = fits.getdata(product)[200:824, 200:824]
    assert float(np.std(centre)) == pytest.approx(spec["prnu_rms"], rel=0.05)


def test_muse_full_scale_is_the_real_ccd_and_test_scale_keeps_its_layout() -> None:
    """Both scales: 24 IFUs, each four outputs with 32 px prescan and overscan in x and
    y; full has the real 2048 x 2056 outputs (4224 x 4240). DET OUTn X/Y keep the real
    CCD's corners (1, 4096 and 4112) at every scale: muse_bias takes no other value
    ('Input data do not match' in muse_quadrants_overscan_get_window)."""
    full, test = muse.LAYOUTS["full"], muse.LAYOUTS["test"]
    assert full.shape == (4240, 4224) and (full.out_nx, full.out_ny) == (2048, 2056)
    assert test.shape == (640, 640) and full.scan == test.scan == 32
    for layout in (full, test):
        header = muse._extension_header(layout, muse._ifus(layout, seed=1)[23])
        assert header["EXTNAME"] == "CHAN24"
        assert (header["NAXIS1"], header["NAXIS2"]) == layout.shape[::-1]
        corners = set()
        for n in range(1, 5):
            out = {k: header[f"HIERARCH ESO DET OUT{n} {k}"] for k in ("X", "Y", "NX", "NY")}
            assert (out["NX"], out["NY"]) == (layout.out_nx, layout.out_ny)
            corners.add((out["X"], out["Y"]))
        assert corners == {(1, 1), (4096, 1), (4096, 4112), (1, 4112)}
        # Each output's readout tiles the image, its exposed pixels inside the scans.
        covered = np.zeros(layout.shape, dtype=int)
        for rows, cols, data_rows, data_cols in layout.quadrants().values():
            covered[rows, cols] += 1
            assert data_rows.stop - data_rows.start == layout.out_ny
            assert data_cols.stop - data_cols.start == layout.out_nx
        assert (covered == 1).all()


def test_muse_bias_and_dark_of_24_ifus_measure_the_truth(
    simulated: Callable[[str], Night], tmp_path: Path
) -> None:
    """ESO's rule-file options (muse.oca: ``--nifu=-1 --merge``): all 24 IFUs, one merged
    master each, with every IFU's QC in its CHANnn.DATA extension."""
    pipeline = _pipeline("muse", esorex=True)
    folder, truth = simulated("MUSE")
    biases, darks = _raws(folder, truth, "bias"), _raws(folder, truth, "dark")
    options = truth["recipe_options"]
    rules = read_rules(pipeline.oca_path)
    for name in ("muse_bias", "muse_dark"):  # the options ESO's rule file runs
        action = rules.action(name)
        assert action is not None
        assert " ".join(action.recipe_parameters).split() == options == ["--nifu=-1", "--merge"]
    bias = run_job(
        "muse_bias",
        biases,
        tmp_path / "bias",
        options=options,
        threads=2,
        recipe_dir=pipeline.plugin_dir,
    )
    (master,) = bias.by_catg["MASTER_BIAS"]
    assert set(bias.by_catg) == {"MASTER_BIAS"}
    ifus = truth["ifus"]
    assert list(ifus) == [f"CHAN{k:02d}" for k in range(1, 25)]
    for extname, ifu in ifus.items():
        qc = _qc(master, f"{extname}.DATA")
        for n, name in enumerate(ifu["outputs"], start=1):
            out = truth["outputs"][name]
            # QC.BIAS.LEVELn.MEAN: mean of the raws' medians (whole ADU) in quadrant n.
            assert qc[f"QC.BIAS.LEVEL{n}.MEAN"] == pytest.approx(out["bias_adu"], abs=0.5)
            # QC.BIAS.MASTERn.RON (e-) from random windows of adjacent pairs'
            # differences, with its own error RONERR (the windows' scatter): within 3
            # RONERR.
            ron_e = math.sqrt(out["read_noise_adu"] ** 2 + ROUNDING) * out["gain_e_per_adu"]
            error = qc[f"QC.BIAS.MASTER{n}.RONERR"]
            assert 0 < error < 0.1 * ron_e, (extname, n)
            assert qc[f"QC.BIAS.MASTER{n}.RON"] == pytest.approx(ron_e, abs=3 * error), (
                extname,
                n,
            )
    dark = run_job(
        "muse_dark",
        [*darks, (master, "MASTER_BIAS")],
        tmp_path / "dark",
        options=options,
        threads=2,
        recipe_dir=pipeline.plugin_dir,
    )
    assert set(dark.by_catg) == {"MASTER_DARK"}
    (master_dark,) = dark.by_catg["MASTER_DARK"]
    for extname, ifu in ifus.items():
        qc = _qc(master_dark, f"{extname}.DATA")
        # QC.DARK.MASTER.DC (e-/pixel/h, random windows) within 3 of its own DCERR.
        assert qc["QC.DARK.MASTER.DC"] == pytest.approx(
            ifu["dark_e_per_h"], abs=3 * qc["QC.DARK.MASTER.DCERR"]
        ), extname
        # The master's mean (hot pixels flagged, 262,144 pixels: 0.01 e-/h of pixel
        # noise) is limited by the overscan levels: a vertical fit to 29 x 320 overscan
        # pixels per quadrant and frame is good to 0.025 ADU; three darks less a master
        # of three biases, over four quadrants: 0.024 e-/h rms per IFU (0.024 measured
        # over 5 seeds x 24 IFUs). 0.1 e-/h (4 sigma) allowed.
        assert qc["QC.DARK.MASTER.MEAN"] == pytest.approx(ifu["dark_e_per_h"], abs=0.1), extname
    _assert_associated(rules, "muse_dark", "MASTER_BIAS", master, darks)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_and_a_folder_keeps_its_simulation(tmp_path: Path) -> None:
    first = simulate_eso_night("NAOS+CONICA", NIGHT, tmp_path / "a", seed=3, scale="test")
    again = simulate_eso_night("NAOS+CONICA", NIGHT, tmp_path / "b", seed=3, scale="test")
    other = simulate_eso_night("NAOS+CONICA", NIGHT, tmp_path / "c", seed=4, scale="test")
    assert _digests(first.out_dir) == _digests(again.out_dir)
    names = [p.name for p in first.files]
    assert names == [p.name for p in other.files]  # the plan does not depend on the seed
    a, c = _digests(first.out_dir), _digests(other.out_dir)
    assert all(a[n] != c[n] for n in names)
    assert not list((tmp_path / "a").glob(".tmp-*"))
    with pytest.raises(ConfigError, match="holds another simulation"):
        simulate_eso_night("NAOS+CONICA", NIGHT, tmp_path / "a", seed=4, scale="test")
