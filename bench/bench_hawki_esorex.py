"""HAWK-I dark combination, twilight flat and detector noise: qclib vs ESO's esorex.

Same full-size simulated frames (4 x 2048x2048) for both, in one run:
  dark        5 darks, DIT 10 s, NDIT 6       qclib qc_ir_dark       / hawki_dark_combine
  flat        9 Ks twilight flats, DIT 2 s    qclib qc_ir_twilight_flat
              (with the DIT-2 master dark)    / hawki_twilight_flat_combine
  noise       2 darks + 2 twilight flats      qclib qc_ir_detector_noise
              (the very frames qclib's block  / hawki_detector_noise (with the
              used, from its provenance)        MASTER_CONF of the flats' filter)
qclib's time is a whole block through ``process_blocks`` (read, combine, measure,
write the products, record them in SQLite); esorex's the esorex command. ESO's recipes
run as ESO's Reflex workflow runs them (``esorex.run_hawki_reflex``, as in
tests/test_esorex_peer.py). Then the QC values both compute, against the simulator's
truth, averaged over the four chips; hot and cold pixels on both sides as recall
against the truth maps (ESO: pixels its Ks MASTER_BPM flags or its MASTER_CONF gives
zero weight; its QC.DARK.NBADPIX only counts pixels of an input bad-pixel map).

    python bench/bench_hawki_esorex.py [--raw-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from qclib.calib.dq import DQ_COLD, DQ_HOT
from qclib.config.instrument import parse_section
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.instruments import load_instrument
from qclib.peers import esorex
from qclib.simulate.night import simulate_night
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from qclib.workspace import init_workspace

NIGHT = dt.date(2026, 11, 23)


def _dq(path: Path, extname: str, bit: int) -> set[tuple[int, int]]:
    with fits.open(path) as hdul:
        return esorex.pixel_set(np.asarray(hdul[f"{extname}.DQ"].data) & bit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path)
    args = parser.parse_args()
    reason = esorex.available("hawki")
    if reason:
        raise SystemExit(f"cannot compare: {reason}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-hawki-"))
    night = args.raw_dir or tmp / "raw"
    if args.raw_dir is None:
        simulate_night("HAWKI", NIGHT, night, seed=11, scale="full", only={"dark", "twilight_flat"})
    truth = json.loads((night / "truth.json").read_text())
    geometry = load_instrument("HAWKI").geometry["full"]
    rows, cols = parse_section(geometry.data_section)

    workspace = init_workspace(tmp / "ws")
    database = workspace.open_database()
    ingest_paths(workspace, database, [night])
    associate_workspace(workspace, database)
    with database.transaction() as session:
        blocks = block_store.list_blocks(session)

    def block(action: str, **header) -> str:
        for b in blocks:
            first = next(
                e
                for e in truth["exposures"]
                if e["arcfile"] == b.inputs[0] + ".fits" or e["arcfile"] == b.inputs[0]
            )
            if b.action == action and all(first[k] == v for k, v in header.items()):
                return b.id
        raise LookupError(action)

    def timed(ab_id: str) -> float:
        start = time.perf_counter()
        (outcome,) = process_blocks(workspace, database, ids=[ab_id])
        assert outcome.status == "done", outcome
        return time.perf_counter() - start

    dark_id = block("MASTER_DARK", dit_s=10.0)
    qclib_s = {"dark": timed(dark_id)}
    timed(block("MASTER_DARK", dit_s=2.0))  # the flat's dark (not compared)
    timed(block("MASTER_DARK", dit_s=60.0))
    qclib_s["flat"] = timed(block("MASTER_TWILIGHT_FLAT", filter="Ks"))
    qclib_s["noise"] = timed(block("DETECTOR_NOISE"))
    with database.transaction() as session:
        products = product_store.list_products(session)
        qc = {p.id: product_store.qc_values(session, p.id) for p in products}

    def product(pro_catg: str, **header) -> product_store.StoredProduct:
        return next(
            p
            for p in products
            if p.pro_catg == pro_catg and all(p.header.get(k) == v for k, v in header.items())
        )

    ours_gain = product("MASTER_READGAIN")
    noise_frames = esorex.detector_noise_inputs(ours_gain.provenance, truth, night)
    eso = esorex.run_hawki_reflex(truth, night, tmp / "esorex", noise_frames)
    runs = {"dark": eso["dark10"], "flat": eso["flatKs"], "noise": eso["noise"]}

    # QC side by side (relative errors against the truth, mean over chips).
    exposures = [e for e in truth["exposures"] if e["kind"] == "dark" and e["dit_s"] == 10.0]
    ndit = exposures[0]["ndit"]
    seconds = 10.0 * ndit * len(exposures)
    area = geometry.data_shape[0] * geometry.data_shape[1] * (18e-4) ** 2
    ours_dark = product("MASTER_DARK", **{"DET.DIT": 10.0})
    ours_flat = product("MASTER_TWILIGHT_FLAT", **{"INS.FILT1.NAME": "Ks"})
    eso_dark = esorex.read_qc(runs["dark"].product("MASTER_DARK"))
    eso_bad_maps = esorex.read_bad_pixels(
        runs["flat"].product("MASTER_BPM"), runs["flat"].product("MASTER_CONF")
    )
    # Truth maps are of data-section pixels.
    eso_bad = {ext: esorex.pixel_set(m[rows, cols]) for ext, m in eso_bad_maps.items()}
    eso_gain = esorex.read_qc(runs["noise"].product("MASTER_READGAIN"))
    table: dict[str, list[tuple[float, float]]] = {}
    for extname, det in truth["detectors"].items():
        q, e = qc[ours_dark.id][extname], eso_dark[extname]
        eso_ron = np.mean([v for k, v in e.items() if k.startswith("QC.RON")]) * np.sqrt(ndit)
        hot = {(x, y) for x, y, _ in det["hot_pixels"]}
        cold = {(x, y) for x, y, _ in det["cold_pixels"]}
        events = sum(x["detectors"][extname]["particle_events"] for x in exposures)
        pixels = sum(x["detectors"][extname]["particle_pixels"] for x in exposures)
        rows_ = {
            "read noise (dark), error %": (
                100 * (q["QC.RON"] / det["read_noise_adu"] - 1),
                100 * (eso_ron / det["read_noise_adu"] - 1),
            ),
            "hot pixels found, %": (
                100 * len(hot & _dq(workspace.root / ours_dark.path, extname, DQ_HOT)) / len(hot),
                100 * len(hot & eso_bad[extname]) / len(hot),
            ),
            "particle rate, error %": (
                100 * (q["QC.PARTICLE_RATE"] / (events / area / seconds) - 1),
                100 * (e["QC.PARTICLE_RATE"] / (pixels / seconds) - 1),
            ),
            "cold pixels found, %": (
                100
                * len(cold & _dq(workspace.root / ours_flat.path, extname, DQ_COLD))
                / len(cold),
                100 * len(cold & eso_bad[extname]) / len(cold),
            ),
            "gain, error %": (
                100 * (qc[ours_gain.id][extname]["QC.GAIN"] / det["gain_e_per_adu"] - 1),
                100 * (eso_gain[extname]["QC.GAIN"] / det["gain_e_per_adu"] - 1),
            ),
            "read noise (detector noise), error %": (
                100 * (qc[ours_gain.id][extname]["QC.RON"] / det["read_noise_adu"] - 1),
                100 * (eso_gain[extname]["QC.RON"] / det["read_noise_adu"] - 1),
            ),
        }
        for name, pair in rows_.items():
            table.setdefault(name, []).append(pair)

    print(f"{'recipe':<8} {'qclib s':>8} {'esorex s':>9} {'ratio':>6}")
    timing = {}
    for name in ("dark", "flat", "noise"):
        ratio = runs[name].wall_s / qclib_s[name]
        timing[name] = {"qclib_s": qclib_s[name], "esorex_s": runs[name].wall_s, "ratio": ratio}
        print(f"{name:<8} {qclib_s[name]:8.2f} {runs[name].wall_s:9.2f} {ratio:6.1f}x")
    print(f"\n{'QC value (mean of 4 chips)':<40} {'qclib':>8} {'esorex':>8}")
    values = {}
    for name, pairs in table.items():
        ours, theirs = np.mean(pairs, axis=0)
        values[name] = {"qclib": float(ours), "esorex": float(theirs)}
        print(f"{name:<40} {ours:8.2f} {theirs:8.2f}")
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "timing": timing,
        "qc": values,
    }
    out_path = Path(__file__).parent / "results" / "hawki_esorex.json"
    out_path.parent.mkdir(exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    database.close()


if __name__ == "__main__":
    main()
