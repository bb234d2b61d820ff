"""ESO's own HAWK-I pipeline (esorex) against qclib, on the same full-size simulated
frames, each against the simulator's truth.

ESO's recipes run as ESO's Reflex workflow for HAWK-I runs them (its OCA rules: a
master dark per DIT; each filter's twilight flats with the master dark of their DIT,
giving MASTER_TWILIGHT_FLAT, MASTER_CONF and MASTER_BPM; ``hawki_detector_noise`` on
two darks and two flats with the MASTER_CONF of the flats' filter). qclib's products
come from its public entry points (ingest, associate, ``process_blocks``).

Each compared quantity is measured the same way on both sides (hot and cold pixels:
recall against the truth maps on both). ``DECLARED`` says, for each, which side is
closer to the truth; the test fails when that changes, so a loss cannot pass
silently. The numbers go to ``tests/artifacts/esorex_peer.json``; ``docs/
peer_comparison.json`` holds the committed ones, which ``scripts/peer_table.py``
renders into docs/calibration.md (run it after this test to adopt new numbers).

esorex and cpl-plugin-hawki come from Debian (``make test`` installs them with
apt-get where it can); without them these tests are skipped, loudly, and under
``CI=true`` they fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qclib.calib.dq import DQ_COLD, DQ_HOT
from qclib.config.instrument import parse_section
from qclib.instruments import load_instrument
from qclib.peers import esorex
from qclib.simulate.night import simulate_night
from tests.conftest import NIGHT, load_truth, missing_dependency
from tests.recipes.conftest import ProcessedNight, _process, expected_zeropoint

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "tests" / "artifacts" / "esorex_peer.json"
COMMITTED = ROOT / "docs" / "peer_comparison.json"
SEED = 11
HAWKI = load_instrument("HAWKI")
GEOMETRY = HAWKI.geometry["full"]
ROWS, COLS = parse_section(GEOMETRY.data_section)
PIXEL_AREA_CM2 = (HAWKI.pixel_size_um * 1e-4) ** 2

#: Each compared quantity: its label in the doc table, how errors are taken
#: (relative to the truth; pixels: recall and false flags; particles: qclib only)
#: and qclib's own tolerance against the truth, asserted on every chip.
QUANTITIES: dict[str, dict] = {
    "ron_dark": {
        "label": "read noise from darks (DIT 10 s, NDIT 6; one read)",
        "kind": "relative",
        "unit": "ADU",
        "tolerance": 0.03,
    },
    "hot_pixels": {
        "label": "hot pixels (qclib: master dark DIT 10 s; ESO: MASTER_BPM/MASTER_CONF, Ks)",
        "kind": "pixels",
        "tolerance": {"recall": 0.95, "false": 0.01},
    },
    "cold_pixels": {
        "label": "cold pixels (Ks twilight flat; ESO: MASTER_BPM/MASTER_CONF)",
        "kind": "pixels",
        "tolerance": {"recall": 0.95, "false": 0.01},
    },
    "gain": {
        "label": "gain (detector noise: the same 2 darks, 2 flats; ESO with their MASTER_CONF)",
        "kind": "relative",
        "unit": "e-/ADU",
        "tolerance": 0.03,
    },
    "ron_noise": {
        "label": "read noise (detector noise)",
        "kind": "relative",
        "unit": "ADU",
        "tolerance": 0.03,
    },
    "flux_ratio": {
        "label": "twilight flux ratio, brightest / faintest (Ks)",
        "kind": "relative",
        "unit": "",
        "tolerance": 0.01,
    },
    "particle_rate": {
        "label": "particle rate (darks DIT 10 s)",
        "kind": "particles",
        "unit": "events/cm2/s",
        "tolerance": 0.15,
    },
}

#: Which side is closer to the truth ("qclib" or "esorex"), as measured; None where
#: the two do not measure the same quantity.
DECLARED: dict[str, str | None] = {
    "ron_dark": "qclib",
    "hot_pixels": "qclib",
    "cold_pixels": "qclib",
    "gain": "qclib",
    "ron_noise": "qclib",
    # Both take the ratio of the frames' median levels, and neither corrects the
    # arrays' non-linearity (-0.3 % at these levels); ESO's ratio comes out closer
    # by a few hundredths of a per cent: qclib is not closer here.
    "flux_ratio": "esorex",
    # ESO's QC.PARTICLE_RATE counts pixels rejected while combining, per second:
    # a different quantity from particle events per cm2 and second.
    "particle_rate": None,
}

#: Two runs of this test on the same code agree to this (relative); the committed
#: numbers must be reproduced within it.
REPRODUCTION_RTOL = 1e-4


@pytest.fixture(scope="session")
def esorex_ready() -> None:
    """esorex and the HAWK-I plugins are installed (else skip, loudly; CI: fail)."""
    reason = esorex.available("hawki")
    if reason is not None:
        missing_dependency(f"ESOREX PEER TESTS SKIPPED: {reason}; 'make test' installs it as root")


@pytest.fixture(scope="session")
def hawki_full(tmp_path_factory) -> Path:
    """Darks, twilight flats and standard fields of a HAWK-I night at full size."""
    out = tmp_path_factory.mktemp("hawki-full")
    simulate_night(
        "HAWKI",
        NIGHT,
        out,
        seed=SEED,
        scale="full",
        progress=False,
        only={"dark", "twilight_flat", "standard"},
    )
    return out


@pytest.fixture(scope="session")
def qclib_full(tmp_path_factory, hawki_full: Path) -> ProcessedNight:
    with pytest.MonkeyPatch.context() as mp:
        return _process(tmp_path_factory.mktemp("hawki-full-ws"), hawki_full, mp)


@pytest.fixture(scope="session")
def eso(
    esorex_ready, tmp_path_factory, hawki_full: Path, qclib_full: ProcessedNight
) -> dict[str, esorex.EsorexRun]:
    """ESO's recipes on the night, in the order and with the inputs of ESO's Reflex
    workflow (esorex_ready first: without esorex nothing is simulated); its detector
    noise on the very frames qclib's DETECTOR_NOISE block used."""
    (readgain,) = qclib_full.of("MASTER_READGAIN")
    truth = load_truth(hawki_full)
    noise = esorex.detector_noise_inputs(readgain.provenance, truth, hawki_full)
    return esorex.run_hawki_reflex(truth, hawki_full, tmp_path_factory.mktemp("esorex"), noise)


def _product(processed: ProcessedNight, pro_catg: str, **header) -> object:
    (found,) = [
        p for p in processed.of(pro_catg) if all(p.header.get(k) == v for k, v in header.items())
    ]
    return found


def _pixel_counts(truth: set, defective: set, qclib: set, eso: set) -> dict[str, int]:
    """Pixels of ``truth`` found by each side, and pixels each flags that are not
    ``defective`` at all (ESO's bad-pixel map does not say hot or cold: a cold pixel
    in it is no false hot one, and the same rule holds for qclib)."""
    return {
        "truth": len(truth),
        "qclib_found": len(truth & qclib),
        "qclib_false": len(qclib - defective),
        "esorex_found": len(truth & eso),
        "esorex_false": len(eso - defective),
    }


def _summarise(key: str, chips: dict[str, dict[str, float]]) -> dict:
    """Add each side's error against the truth (over the four chips) and the verdict.

    relative: mean over chips of |value / truth - 1|; pixels: (missed + falsely
    flagged) / true pixels, all chips together; particles: qclib's relative error
    only (ESO's statistic counts something else).
    """
    spec = QUANTITIES[key]
    row = {**spec, "chips": chips}
    if spec["kind"] == "pixels":
        truth = sum(c["truth"] for c in chips.values())
        for side in ("qclib", "esorex"):
            found = sum(c[f"{side}_found"] for c in chips.values())
            false = sum(c[f"{side}_false"] for c in chips.values())
            row[f"{side}_recall"] = found / truth
            row[f"{side}_false_fraction"] = false / max(found + false, 1)
            row[f"{side}_error"] = (truth - found + false) / truth
    else:
        for side in ("qclib", "esorex"):
            if side == "esorex" and spec["kind"] == "particles":
                continue
            errors = [c[side] / c["truth"] - 1 for c in chips.values()]
            row[f"{side}_errors"] = errors
            row[f"{side}_error"] = float(np.mean(np.abs(errors)))
    if spec["kind"] == "particles":
        row["closer"] = None
    elif row["qclib_error"] == row["esorex_error"]:
        row["closer"] = "tie"
    else:
        row["closer"] = "qclib" if row["qclib_error"] < row["esorex_error"] else "esorex"
    return row


@pytest.fixture(scope="session")
def comparison(eso, qclib_full: ProcessedNight, hawki_full: Path) -> dict:
    """Every compared quantity, per chip and summarised; written to ARTIFACT."""
    truth = load_truth(hawki_full)
    darks10 = [e for e in truth["exposures"] if e["kind"] == "dark" and e["dit_s"] == 10.0]
    ndit, dit = darks10[0]["ndit"], darks10[0]["dit_s"]
    seconds = dit * ndit * len(darks10)
    area_cm2 = GEOMETRY.data_shape[0] * GEOMETRY.data_shape[1] * PIXEL_AREA_CM2
    levels = [
        e["flux_e_per_s"]
        for e in truth["exposures"]
        if e["kind"] == "twilight_flat" and e["filter"] == "Ks"
    ]

    dark = _product(qclib_full, "MASTER_DARK", **{"DET.DIT": 10.0})
    flat = _product(qclib_full, "MASTER_TWILIGHT_FLAT", **{"INS.FILT1.NAME": "Ks"})
    (readgain,) = qclib_full.of("MASTER_READGAIN")
    eso_dark = esorex.read_qc(eso["dark10"].product("MASTER_DARK"))
    eso_flat = esorex.read_qc(eso["flatKs"].product("MASTER_TWILIGHT_FLAT"))
    eso_noise = esorex.read_qc(eso["noise"].product("MASTER_READGAIN"))
    eso_bad = esorex.read_bad_pixels(
        eso["flatKs"].product("MASTER_BPM"), eso["flatKs"].product("MASTER_CONF")
    )

    chips: dict[str, dict[str, dict]] = {key: {} for key in QUANTITIES}
    for extname, det in truth["detectors"].items():
        ron = det["read_noise_adu"]
        bad = esorex.pixel_set(eso_bad[extname][ROWS, COLS])  # truth maps: data-section pixels
        ours_dark, ours_noise = qclib_full.qc[dark.id][extname], qclib_full.qc[readgain.id][extname]
        # esorex's QC.RONi are of the NDIT-averaged frames: × √NDIT for one read.
        eso_ron = [v for k, v in eso_dark[extname].items() if k.startswith("QC.RON")]
        chips["ron_dark"][extname] = {
            "truth": ron,
            "qclib": ours_dark["QC.RON"],
            "esorex": float(np.mean(eso_ron) * np.sqrt(ndit)),
        }
        hot = {(x, y) for x, y, _ in det["hot_pixels"]}
        cold = {(x, y) for x, y, _ in det["cold_pixels"]}
        chips["hot_pixels"][extname] = _pixel_counts(
            hot, hot | cold, qclib_full.pixels(qclib_full.dq(dark, extname), DQ_HOT), bad
        )
        chips["cold_pixels"][extname] = _pixel_counts(
            cold, hot | cold, qclib_full.pixels(qclib_full.dq(flat, extname), DQ_COLD), bad
        )
        chips["gain"][extname] = {
            "truth": det["gain_e_per_adu"],
            "qclib": ours_noise["QC.GAIN"],
            "esorex": eso_noise[extname]["QC.GAIN"],
        }
        chips["ron_noise"][extname] = {
            "truth": ron,
            "qclib": ours_noise["QC.RON"],
            "esorex": eso_noise[extname]["QC.RON"],
        }
        chips["flux_ratio"][extname] = {
            "truth": max(levels) / min(levels),
            "qclib": qclib_full.qc[flat.id][extname]["QC.FLAT.RATIO"],
            "esorex": eso_flat[extname]["QC.FLUX.RATIO"],
        }
        events = sum(e["detectors"][extname]["particle_events"] for e in darks10)
        pixels = sum(e["detectors"][extname]["particle_pixels"] for e in darks10)
        chips["particle_rate"][extname] = {
            "truth": events / area_cm2 / seconds,
            "qclib": ours_dark["QC.PARTICLE_RATE"],
            "esorex": eso_dark[extname]["QC.PARTICLE_RATE"],  # pixels rejected / s
            "particle_pixels_per_s": pixels / seconds,
        }
    numbers = {
        "generated_by": "tests/test_esorex_peer.py",
        "setup": {
            "instrument": "HAWKI",
            "scale": "full",
            "seed": SEED,
            "night": str(NIGHT),
            "esorex_recipes": {name: run.recipe for name, run in eso.items()},
        },
        "quantities": {key: _summarise(key, c) for key, c in chips.items()},
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(numbers, indent=1) + "\n")
    return numbers


@pytest.mark.slow
@pytest.mark.esorex
@pytest.mark.parametrize("key", list(QUANTITIES))
def test_qclib_recovers_the_truth(comparison: dict, key: str) -> None:
    """qclib within its stated tolerance, on every chip."""
    row = comparison["quantities"][key]
    tolerance = row["tolerance"]
    if row["kind"] == "pixels":
        for extname, c in row["chips"].items():
            assert c["qclib_found"] >= tolerance["recall"] * c["truth"], (key, extname, c)
            flagged = c["qclib_found"] + c["qclib_false"]
            assert c["qclib_false"] <= tolerance["false"] * flagged, (key, extname, c)
    else:
        for extname, c in row["chips"].items():
            assert c["qclib"] == pytest.approx(c["truth"], rel=tolerance), (key, extname, c)


@pytest.mark.slow
@pytest.mark.esorex
@pytest.mark.parametrize("key", [k for k, v in DECLARED.items() if v is not None])
def test_closer_to_the_truth_as_declared(comparison: dict, key: str) -> None:
    """The side closer to the truth is the one DECLARED, no slack either way."""
    row = comparison["quantities"][key]
    assert row["closer"] == DECLARED[key], (
        f"{row['label']}: closer to the truth is now {row['closer']} (qclib error "
        f"{row.get('qclib_error'):.4g}, esorex {row.get('esorex_error', float('nan')):.4g}); "
        f"declared {DECLARED[key]}. Update DECLARED (and say why) or fix the regression."
    )


@pytest.mark.slow
@pytest.mark.esorex
def test_committed_numbers_are_these(comparison: dict) -> None:
    """docs/peer_comparison.json (the doc table's source) is what this run measured."""
    committed = json.loads(COMMITTED.read_text())["quantities"]
    fresh = comparison["quantities"]
    advice = (
        f"{COMMITTED.relative_to(ROOT)} is stale: run '.venv/bin/python "
        "scripts/peer_table.py' to adopt this run's numbers (tests/artifacts/"
        "esorex_peer.json) and re-render docs/calibration.md"
    )
    assert committed.keys() == fresh.keys(), advice
    for key, row in fresh.items():
        assert committed[key]["closer"] == row["closer"], f"{key}: {advice}"
        for extname, values in row["chips"].items():
            for name, value in values.items():
                old = committed[key]["chips"][extname][name]
                assert value == pytest.approx(old, rel=REPRODUCTION_RTOL), (
                    f"{key} {extname} {name}: {value} vs {old}; {advice}"
                )


def _check_table(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "peer_table.py"), "--check", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_doc_table_is_the_committed_numbers() -> None:
    """The table in docs/calibration.md is scripts/peer_table.py's rendering of
    docs/peer_comparison.json, not typed by hand."""
    done = _check_table()
    assert done.returncode == 0, done.stdout + done.stderr


def test_doc_table_check_sees_a_hand_edit(tmp_path: Path) -> None:
    """One number changed by hand in the table, and the check fails, saying what to run."""
    doc = (ROOT / "docs" / "calibration.md").read_text()
    table = doc[doc.index("<!-- peer-table") : doc.index("<!-- /peer-table -->")]
    row = next(line for line in table.splitlines() if line.startswith("| gain"))
    edited = tmp_path / "calibration.md"
    edited.write_text(doc.replace(row, row.replace("%", " %", 1)))
    done = _check_table("--doc", str(edited), "--numbers", str(COMMITTED))
    assert done.returncode == 1
    assert "scripts/peer_table.py" in done.stdout


@pytest.mark.slow
def test_hawki_zeropoint_full_size(qclib_full, hawki_full: Path) -> None:
    truth = load_truth(hawki_full)
    standards = {e["arcfile"]: e for e in truth["exposures"] if e["kind"] == "standard"}
    products = qclib_full.of("ZEROPOINT")
    assert products
    for product in products:
        first = standards[product.ab_id.removesuffix("_ZEROPOINT") + ".fits"]
        visit = [e for e in standards.values() if e["tpl_start"] == first["tpl_start"]]
        seeing = float(np.median([e["seeing_arcsec"] for e in visit]))
        for extname, qc in qclib_full.qc[product.id].items():
            expected = expected_zeropoint(truth, extname, "Ks", qc["QC.AIRMASS"])
            assert qc["QC.ZPOINT"] == pytest.approx(expected, abs=0.03), extname
            assert qc["QC.FWHM"] == pytest.approx(seeing, rel=0.05), extname
