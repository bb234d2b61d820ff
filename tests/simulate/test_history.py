"""A simulated history: the same detectors every night, new noise, and only the drifts
configured in ``[simulator.history]`` (a creep reaching its end value on the last night, a
step from the intervention night on), all recorded in truth.json and history.json."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import typing
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from qclib.cli import main
from qclib.config.instrument import load_instrument_config
from qclib.config.simulator import DriftField, HistoryCreep, HistoryProfile
from qclib.errors import ConfigError
from qclib.instruments import INSTRUMENTS_DIR, load_instrument
from qclib.simulate.history import HISTORY_FILE, plan_history, simulate_history
from qclib.simulate.night import TRUTH_FILE, SimulationResult, simulate_night
from qclib.simulate.truth import DetectorTruth
from qclib.simulate.workers import simulator_pool

FIRST = dt.date(2026, 3, 1)
NIGHTS = 5
# Biases show read noise, bias level and defects: enough to check the truth, and cheap.
ONLY = frozenset({"bias"})
# What OMEGACAM's [simulator.history] changes at the test scale.
CREEPING = ("ESO_CCD_#74", "read_noise_e")
STEPPED = ("ESO_CCD_#65", "ESO_CCD_#66")
DERIVED = {"read_noise_adu", "n_hot_pixels", "n_cold_pixels"}


def _history(out: Path, **options) -> Path:
    simulate_history(
        "OMEGACAM", FIRST, NIGHTS, out, seed=5, only=ONLY, workers=2, progress=False, **options
    )
    return out


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five test-scale OmegaCAM nights of biases (read-only)."""
    return _history(tmp_path_factory.mktemp("history"))


def _truths(folder: Path) -> list[dict]:
    document = json.loads((folder / HISTORY_FILE).read_text())
    return [json.loads((folder / n["dir"] / TRUTH_FILE).read_text()) for n in document["nights"]]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_folder_per_night_each_a_simulated_night(history: Path) -> None:
    days = [(FIRST + dt.timedelta(days=i)).isoformat() for i in range(NIGHTS)]
    assert sorted(p.name for p in history.iterdir() if p.is_dir()) == days
    for day, truth in zip(days, _truths(history), strict=True):
        assert truth["night"] == day and truth["static_seed"] == 5
        assert {e["kind"] for e in truth["exposures"]} == {"bias"}
        assert all((history / day / e["arcfile"]).exists() for e in truth["exposures"])


def test_same_detectors_every_night_except_the_drifts(history: Path) -> None:
    truths = _truths(history)
    drifted = {CREEPING} | {(d, f) for d in STEPPED for f in ("bias_level_adu", "gain_e_per_adu")}
    first = truths[0]["detectors"]
    for truth in truths[1:]:
        for extname, det in truth["detectors"].items():
            for name, value in det.items():
                if (extname, name) in drifted or name in DERIVED:
                    continue
                assert value == first[extname][name], (truth["night"], extname, name)
    # The defects are the same pixels: the same detectors, not new draws.
    assert (
        truths[-1]["detectors"]["ESO_CCD_#73"]["hot_pixels"] == first["ESO_CCD_#73"]["hot_pixels"]
    )


def test_noise_and_timing_differ_from_night_to_night(history: Path) -> None:
    truths = _truths(history)
    assert len({t["seed"] for t in truths}) == NIGHTS
    offsets = [t["exposures"][0]["detectors"]["ESO_CCD_#73"]["frame_offset_adu"] for t in truths]
    assert len(set(offsets)) == NIGHTS
    first, second = (history / t["night"] / t["exposures"][0]["arcfile"] for t in truths[:2])
    a = fits.getdata(first, extname="ESO_CCD_#73")
    b = fits.getdata(second, extname="ESO_CCD_#73")
    assert not np.array_equal(a, b)


def test_read_noise_creeps_to_its_end_value_on_the_last_night(history: Path) -> None:
    creep = load_instrument("OMEGACAM").simulator.history.creep[0]
    assert (creep.detector, creep.field) == CREEPING
    values = [t["detectors"][creep.detector][creep.field] for t in _truths(history)]
    assert all(b > a for a, b in itertools.pairwise(values))
    assert values[-1] == creep.end
    document = json.loads((history / HISTORY_FILE).read_text())
    assert document["creep"][0]["start"] == values[0]
    assert [n["detectors"][creep.detector][creep.field] for n in document["nights"]] == values


def test_step_from_the_intervention_night_on(history: Path) -> None:
    document = json.loads((history / HISTORY_FILE).read_text())
    (event,) = document["interventions"]
    step = round(0.67 * (NIGHTS - 1))
    assert event["date"] == (FIRST + dt.timedelta(days=step)).isoformat()
    assert event["instrument"] == "OMEGACAM" and "FIERA" in event["text"]
    assert event["detectors"] == list(STEPPED)  # #67 and #68 are not simulated at this scale
    assert event["change"] == {
        "bias_level_adu": {"add": 35.0},
        "gain_e_per_adu": {"multiply": 1.03},
    }
    truths = _truths(history)
    for extname in STEPPED:
        levels = [t["detectors"][extname]["bias_level_adu"] for t in truths]
        gains = [t["detectors"][extname]["gain_e_per_adu"] for t in truths]
        assert levels[:step] == [levels[0]] * step
        assert levels[step:] == [levels[0] + 35.0] * (NIGHTS - step)
        assert gains[step:] == [gains[0] * 1.03] * (NIGHTS - step)
        recorded = [n["detectors"][extname]["bias_level_adu"] for n in document["nights"]]
        assert recorded == levels
    untouched = [t["detectors"]["ESO_CCD_#73"]["bias_level_adu"] for t in truths]
    assert len(set(untouched)) == 1


def test_same_seed_same_bytes_and_rerunning_is_idempotent(history: Path, tmp_path: Path) -> None:
    night = FIRST + dt.timedelta(days=NIGHTS - 1)
    theirs = sorted((history / night.isoformat()).glob("*.fits"))
    again = _history(tmp_path / "again")
    mine = sorted((again / night.isoformat()).glob("*.fits"))
    assert [p.name for p in mine] == [p.name for p in theirs]
    assert _sha(mine[0]) == _sha(theirs[0])
    assert (again / HISTORY_FILE).read_text() == (history / HISTORY_FILE).read_text()
    _history(again)  # into the same folder: accepted, and the same bytes
    assert _sha(mine[0]) == _sha(theirs[0])
    with pytest.raises(ConfigError, match="different history"):
        simulate_history("OMEGACAM", FIRST, NIGHTS, again, seed=6, only=ONLY, progress=False)


def test_a_shared_pool_gives_the_same_bytes_and_each_night_as_it_is_written(
    history: Path, tmp_path: Path
) -> None:
    """What the demo relies on: on a pool shared with other simulations, each night is
    announced once, complete, before ``history.json`` exists; the bytes are those of a
    pool of its own; the plan's interventions are those ``history.json`` lists."""
    announced: list[str] = []

    def arrived(result: SimulationResult) -> None:
        truth = json.loads(result.truth_path.read_text())
        assert all((result.out_dir / e["arcfile"]).exists() for e in truth["exposures"])
        assert not (tmp_path / HISTORY_FILE).exists()
        announced.append(result.out_dir.name)

    with simulator_pool(2) as pool:
        _history(tmp_path, pool=pool, on_night=arrived)
    nights = [(FIRST + dt.timedelta(days=i)).isoformat() for i in range(NIGHTS)]
    assert sorted(announced) == nights
    for night in nights:
        mine, theirs = (
            sorted((tmp_path / night).glob("*.fits")),
            sorted((history / night).glob("*.fits")),
        )
        assert [_sha(p) for p in mine] == [_sha(p) for p in theirs]
    document = json.loads((tmp_path / HISTORY_FILE).read_text())
    plan = plan_history(load_instrument("OMEGACAM"), FIRST, NIGHTS, seed=5, scale="test")
    assert document["interventions"] == [i.as_dict() for i in plan.interventions]


def test_a_failing_caller_takes_its_queued_nights_off_a_shared_pool(tmp_path: Path) -> None:
    """Should ``on_night`` raise, the nights not yet started leave the shared pool with
    the error, not when its traceback is freed (the test holds it): work submitted
    afterwards waits only for the nights already handed to the pool's worker."""

    def fail(result: SimulationResult) -> None:
        raise RuntimeError(f"stop at {result.out_dir.name}")

    with simulator_pool(1) as pool:
        with pytest.raises(RuntimeError, match="stop at") as raised:
            simulate_history(
                "OMEGACAM",
                FIRST,
                8,
                tmp_path,
                seed=5,
                only=ONLY,
                pool=pool,
                on_night=fail,
                progress=False,
            )
        pool.submit(int).result()  # runs after every night still queued on the pool
        written = [d.name for d in tmp_path.iterdir() if any(d.glob("*.fits"))]
    assert raised.value is not None
    # The night that raised, the one its worker runs next, and the two a process pool
    # of one worker keeps queued for it (max_workers + 1): 4 of the 8 (all 8 when the
    # queued nights are left on the pool).
    assert 1 <= len(written) <= 4, written


def test_science_only_every_nth_night_but_always_the_last(tmp_path: Path) -> None:
    result = simulate_history(
        "HAWKI",
        FIRST,
        3,
        tmp_path,
        seed=1,
        only={"dark", "science"},
        science_every=2,
        workers=1,
        progress=False,
    )
    kinds = [
        {e["kind"] for e in json.loads(n.truth_path.read_text())["exposures"]}
        for n in result.nights
    ]
    assert kinds == [{"dark", "science"}, {"dark"}, {"dark", "science"}]
    document = json.loads(result.history_path.read_text())
    assert [n["science"] for n in document["nights"]] == [True, False, True]


@pytest.mark.parametrize("instrument", ["OMEGACAM", "HAWKI"])
@pytest.mark.parametrize("nights", [8, 30])
def test_read_noise_ends_above_the_qc_range_and_starts_inside(instrument: str, nights: int) -> None:
    """The configured creep is one a QC.RON range rule catches, at either length."""
    config = load_instrument(instrument)
    catg = "MASTER_BIAS" if instrument == "OMEGACAM" else "MASTER_DARK"
    limit = max(r.max for r in config.scoring[catg]["QC.RON"] if r.max is not None)
    plan = plan_history(config, FIRST, nights, seed=0, scale="test")
    creep = config.simulator.history.creep[0]
    rons = [n.values[creep.detector]["read_noise_adu"] for n in plan.nights]
    assert rons[0] < limit < 1.1 * limit < rons[-1]
    assert all(r < limit for r in rons[: nights // 3])  # early nights are nominal
    (event,) = plan.interventions
    assert 0.6 < (event.date - FIRST).days / (nights - 1) < 0.75  # about two thirds


def test_drift_fields_are_detector_truth_fields() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(DetectorTruth)}
    for name in typing.get_args(DriftField):
        assert fields[name] == "float", name


def test_a_history_needs_two_nights_and_known_detectors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 2 nights"):
        simulate_history("OMEGACAM", FIRST, 1, tmp_path, progress=False)
    config = load_instrument("HAWKI")
    creep = HistoryCreep(detector="CHIP9.INT1", field="read_noise_e", end=20.0, text="noisy")
    simulator = config.simulator.model_copy(update={"history": HistoryProfile(creep=[creep])})
    bad = config.model_copy(update={"simulator": simulator})
    with pytest.raises(ConfigError, match=r"unknown detector.*CHIP9\.INT1"):
        plan_history(bad, FIRST, 4, seed=0, scale="test")


def test_a_creep_and_a_step_on_the_same_property_is_a_config_error(tmp_path: Path) -> None:
    text = (INSTRUMENTS_DIR / "hawki" / "hawki.toml").read_text()
    old = "multiply = { gain_e_per_adu = 1.04 }"
    assert old in text
    path = tmp_path / "hawki.toml"
    path.write_text(text.replace(old, "add = { read_noise_e = 2.0 }", 1))
    with pytest.raises(ConfigError, match="both creeps and steps") as info:
        load_instrument_config(path)
    assert "simulator.history" in str(info.value)


def test_qc_simulate_nights_writes_one_folder_per_night(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "OMEGACAM", "--night", "2026-03-01", "--nights", "3", "--out", str(out)]
    args += ["--scale", "test", "--only", "bias", "--workers", "1", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "2026-03-01",
        "2026-03-02",
        "2026-03-03",
    ]
    assert [Path(n["out_dir"]).name for n in data["nights"]] == [
        "2026-03-01",
        "2026-03-02",
        "2026-03-03",
    ]
    assert Path(data["history"]) == out / HISTORY_FILE
    assert json.loads((out / HISTORY_FILE).read_text())["interventions"][0]["date"] == "2026-03-02"


def test_a_night_folder_accepts_the_same_simulation_and_refuses_another(tmp_path: Path) -> None:
    options = {"scale": "test", "workers": 1, "progress": False, "only": ONLY}
    options["detectors"] = ["ESO_CCD_#66"]
    first = simulate_night("OMEGACAM", FIRST, tmp_path, seed=1, static_seed=2, **options)
    sha = _sha(first.files[0])
    again = simulate_night("OMEGACAM", FIRST, tmp_path, seed=1, static_seed=2, **options)
    assert _sha(again.files[0]) == sha
    with pytest.raises(ConfigError, match="different simulation"):
        simulate_night("OMEGACAM", FIRST, tmp_path, seed=1, **options)
