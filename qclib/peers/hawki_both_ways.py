"""One HAWK-I night processed both ways: by the project's native recipes (instrument
HAWKI) and by ESO's HAWK-I pipeline through esorex (HAWKI_ESO, ESO's rule file and
recipes), each in a workspace of its own, from the same raw frames.

Each block runs alone in a child process (``qclib.peers.block_cost``) for its wall
time and memory. ESO's rule file (hawki.oca) has no detector-noise action: its
``hawki_detector_noise`` runs directly, on the two darks and two flats the native
DETECTOR_NOISE block used, with the MASTER_CONF of the flats' filter (as ESO's Reflex
workflow gives it). Then the quantities both measure are put side by side, per chip,
and against the simulator's truth where the night has one (``truth.json``): each
measured the same way on both sides (hot and cold pixels: recall against the truth
maps on both, ESO's being the pixels its MASTER_BPM flags or its MASTER_CONF gives no
weight). ``run_both_ways`` writes it all to ``both_ways.json``; the report template
``notebooks/templates/hawki_both_ways.ipynb`` shows it (``qc eso both-ways``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from qclib.atomicfile import write_text_atomic
from qclib.calib.dq import DQ_COLD, DQ_HOT
from qclib.config.instrument import parse_section
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.errors import ConfigError
from qclib.eso.job import EsorexJobError
from qclib.fitsio import sha256_file
from qclib.instruments import load_instrument
from qclib.peers import esorex
from qclib.peers.block_cost import BlockCost, measure_block
from qclib.reports.product_view import job_view, recipe_seconds
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workspace import Workspace, init_workspace

RESULT_NAME = "both_ways.json"
#: The two ways: the side's name -> its instrument.
SIDES = {"native": "HAWKI", "eso": "HAWKI_ESO"}

#: Each compared quantity: its label, how errors are taken (relative to the truth;
#: pixels: recall and false flags; particles: native only, ESO's statistic counts
#: something else) and the native recipes' own tolerance against the truth.
QUANTITIES: dict[str, dict[str, Any]] = {
    "ron_dark": {
        "label": "read noise from darks (DIT 10 s; one read)",
        "kind": "relative",
        "unit": "ADU",
        "tolerance": 0.03,
    },
    "hot_pixels": {
        "label": "hot pixels (native: master dark DIT 10 s; ESO: MASTER_BPM/MASTER_CONF, Ks)",
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


@dataclass
class Side:
    """One way of processing the night: its workspace, each block's cost, the
    products and their QC values (product id -> detector -> name -> value)."""

    name: str
    workspace: Workspace
    blocks: dict[str, block_store.AssociationBlock]
    costs: dict[str, BlockCost]
    products: list[product_store.StoredProduct]
    qc: dict[int, dict[str, dict[str, float | None]]]

    def product(self, pro_catg: str, **header: object) -> product_store.StoredProduct:
        """The one product of ``pro_catg`` whose header has these values.

        Raises
        ------
        LookupError
            none, or several (the message says which side and what it made).
        """
        found = [
            p
            for p in self.products
            if p.pro_catg == pro_catg and all(p.header.get(k) == v for k, v in header.items())
        ]
        if len(found) != 1:
            made = sorted({p.pro_catg for p in self.products})
            raise LookupError(
                f"{self.name} side: {len(found)} {pro_catg} products with {header} "
                f"(it made: {', '.join(made) or 'nothing'}; see {RESULT_NAME})"
            )
        return found[0]

    def path(self, product: product_store.StoredProduct) -> Path:
        return self.workspace.root / product.path

    def sibling(self, product: product_store.StoredProduct, pro_catg: str) -> Path:
        """The ``pro_catg`` product of the block that made ``product``."""
        (found,) = [p for p in self.products if p.ab_id == product.ab_id and p.pro_catg == pro_catg]
        return self.path(found)


def process_side(root: Path, raw_dir: Path, name: str, progress: bool = False) -> Side:
    """The night at ``raw_dir`` (copied in) processed by instrument ``SIDES[name]`` in a
    new workspace at ``root``, each block alone and measured, parents first.

    Raises
    ------
    ConfigError
        ``root`` already holds a workspace (a comparison starts from fresh ones).
    """
    if (root / "qc.toml").exists():
        raise ConfigError(f"{root} already holds a workspace: give both-ways a new --out folder")
    workspace = init_workspace(root, [SIDES[name]])
    database = workspace.open_database()
    try:
        ingest_paths(workspace, database, [raw_dir])
        associate_workspace(workspace, database)
        with database.transaction() as session:
            blocks = {b.id: b for b in block_store.list_blocks(session)}
    finally:
        database.close()
    # The copies on disk before the first block is timed: it shared the disk and a
    # core with their writeback (1.8 GB of a full-size night: its 5-frame dark took
    # 1.75-2.30 s so, 1.30-1.49 s alone).
    os.sync()
    pending = [b.id for b in blocks.values() if b.completeness == "complete"]
    costs: dict[str, BlockCost] = {}
    # A block whose parent has not run yet waits: take the rest and come back to it.
    while pending:
        waiting = []
        for ab_id in pending:
            cost = measure_block(workspace.root, ab_id)
            if cost.status == "waiting":
                waiting.append(ab_id)
                continue
            costs[ab_id] = cost
            if progress:
                print(f"  {name}: {ab_id} {cost.status} in {cost.wall_s:.1f} s", flush=True)
        if len(waiting) == len(pending):
            for ab_id in waiting:
                costs[ab_id] = measure_block(workspace.root, ab_id)
            break
        pending = waiting
    database = workspace.open_database()
    try:
        with database.transaction() as session:
            products = product_store.list_products(session)
            qc = {p.id: product_store.qc_values(session, p.id) for p in products}
    finally:
        database.close()
    return Side(name, workspace, blocks, costs, products, qc)


def _block_row(side: Side, ab_id: str) -> dict[str, Any]:
    """A block as the report lists it; one that did not run (incomplete: a
    calibration it needs is missing) with why, and no time or memory."""
    block = side.blocks[ab_id]
    row: dict[str, Any] = {
        "ab_id": ab_id,
        "action": block.action,
        "recipe": block.recipe,
        "inputs": len(block.inputs),
    }
    cost = side.costs.get(ab_id)
    if cost is None:
        reason = block.reason or "its association is not complete"
        return {
            **row,
            "status": block.completeness,
            "reason": reason,
            "products": [],
            "wall_s": None,
            "peak_mb": None,
            "rest_mb": None,
            "recipe_s": None,
        }
    job = job_view(side.workspace.products_dir / block.night, ab_id)
    return {**row, **cost.as_dict(), "recipe_s": job.recipe_s if job else None}


def _direct_row(run: esorex.EsorexRun) -> dict[str, Any]:
    """A recipe run directly, as a block row: its raw frames (the SOF's, calibrations
    left out), the esorex command's wall time and esorex's own peak memory (no
    harvest or recording around it)."""
    sof = (run.out_dir / f"{run.recipe}.sof").read_text().splitlines()
    return {
        "ab_id": None,
        "action": "run directly",
        "recipe": run.recipe,
        "inputs": sum(not line.split()[-1].startswith("MASTER_") for line in sof),
        "status": "done",
        "reason": None,
        "products": sorted(run.by_catg),
        "wall_s": run.wall_s,
        "peak_mb": run.peak_rss_mb,
        "rest_mb": 0.0,
        "recipe_s": recipe_seconds(run.log),
    }


#: The ESO action (hawki.oca) that makes what a native action makes.
COUNTERPARTS = {
    "MASTER_DARK": "DARKS",
    "MASTER_TWILIGHT_FLAT": "SKY_FLATS",
    "ZEROPOINT": "STANDARD_STARS",
}


def cost_pairs(native: Side, eso: Side) -> list[dict[str, Any]]:
    """Every block of both sides, run or not: a native block beside its counterpart
    (``COUNTERPARTS``) made of the very same raw frames; a block with none stands
    alone."""
    by_inputs = {(b.action, frozenset(b.inputs)): i for i, b in eso.blocks.items()}
    pairs, paired = [], set()
    for ab_id, block in native.blocks.items():
        key = (COUNTERPARTS.get(block.action, ""), frozenset(block.inputs))
        match = by_inputs.get(key)
        pairs.append({"native": _block_row(native, ab_id), "eso": match and _block_row(eso, match)})
        paired.add(match)
    pairs += [{"native": None, "eso": _block_row(eso, i)} for i in eso.blocks if i not in paired]
    return pairs


def _dq_pixels(side: Side, product: product_store.StoredProduct, extname: str, bit: int) -> set:
    with fits.open(side.path(product)) as hdul:
        return esorex.pixel_set(np.asarray(hdul[f"{extname}.DQ"].data) & bit)


def _pixel_counts(truth: set, defective: set, native: set, eso: set) -> dict[str, int]:
    """Pixels of ``truth`` found by each side, and pixels each flags that are not
    ``defective`` at all (ESO's bad-pixel map does not say hot or cold: a cold pixel
    in it is no false hot one, and the same rule holds for the native side)."""
    return {
        "truth": len(truth),
        "qclib_found": len(truth & native),
        "qclib_false": len(native - defective),
        "esorex_found": len(truth & eso),
        "esorex_false": len(eso - defective),
    }


def summarise(key: str, chips: dict[str, dict[str, float]]) -> dict[str, Any]:
    """A quantity's chips with each side's error against the truth and which is closer.

    relative: mean over chips of |value / truth - 1|; pixels: (missed + falsely
    flagged) / true pixels, all chips together; particles: the native error only.
    """
    spec = QUANTITIES[key]
    row: dict[str, Any] = {**spec, "chips": chips}
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


def detector_noise(native: Side, eso: Side, raw_dir: Path, out: Path) -> esorex.EsorexRun:
    """ESO's hawki_detector_noise on the frames of the native DETECTOR_NOISE block,
    with ESO's MASTER_CONF of the flats' filter."""
    readgain = native.product("MASTER_READGAIN")
    darks = [raw_dir / f"{n.removesuffix('.fits')}.fits" for n in readgain.provenance["inputs"][:2]]
    # The flats are calibrations of that block, known by their SHA-256.
    by_sha = {
        sha256_file(p): p
        for p in sorted(raw_dir.glob("*.fits"))
        if "FLAT" in str(fits.getval(p, "HIERARCH ESO DPR TYPE", default=""))
    }
    flats = [by_sha[sha] for sha in readgain.provenance["calibrations"]["FLAT_TWILIGHT"][:2]]
    (filt,) = {fits.getval(p, "HIERARCH ESO INS FILT1 NAME") for p in flats}
    conf = eso.sibling(
        eso.product("MASTER_TWILIGHT_FLAT", **{"INS.FILT1.NAME": filt}), "MASTER_CONF"
    )
    return esorex.run_recipe(
        "hawki_detector_noise",
        [(p, "DARK") for p in darks]
        + [(p, "FLAT_TWILIGHT") for p in flats]
        + [(conf, "MASTER_CONF")],
        out,
    )


def compare(
    native: Side, eso: Side, noise: esorex.EsorexRun, truth: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Every quantity of ``QUANTITIES``, per chip and summarised, against ``truth``
    (the simulator's truth.json)."""
    geometry = load_instrument("HAWKI").geometry["full"]
    rows, cols = parse_section(geometry.data_section)
    pixel_cm2 = (load_instrument("HAWKI").pixel_size_um * 1e-4) ** 2
    darks10 = [e for e in truth["exposures"] if e["kind"] == "dark" and e["dit_s"] == 10.0]
    ndit = darks10[0]["ndit"]
    seconds = 10.0 * ndit * len(darks10)
    area_cm2 = geometry.data_shape[0] * geometry.data_shape[1] * pixel_cm2
    levels = [
        e["flux_e_per_s"]
        for e in truth["exposures"]
        if e["kind"] == "twilight_flat" and e["filter"] == "Ks"
    ]
    dark = native.product("MASTER_DARK", **{"DET.DIT": 10.0})
    flat = native.product("MASTER_TWILIGHT_FLAT", **{"INS.FILT1.NAME": "Ks"})
    readgain = native.product("MASTER_READGAIN")
    eso_dark = eso.qc[eso.product("MASTER_DARK", **{"DET.DIT": 10.0}).id]
    eso_flat_product = eso.product("MASTER_TWILIGHT_FLAT", **{"INS.FILT1.NAME": "Ks"})
    eso_flat = eso.qc[eso_flat_product.id]
    eso_noise = esorex.read_qc(noise.product("MASTER_READGAIN"))
    eso_bad = esorex.read_bad_pixels(
        eso.sibling(eso_flat_product, "MASTER_BPM"), eso.sibling(eso_flat_product, "MASTER_CONF")
    )
    chips: dict[str, dict[str, dict[str, float]]] = {key: {} for key in QUANTITIES}
    for extname, det in truth["detectors"].items():
        ron = det["read_noise_adu"]
        bad = esorex.pixel_set(eso_bad[extname][rows, cols])  # truth maps: data-section pixels
        ours_dark, ours_noise = native.qc[dark.id][extname], native.qc[readgain.id][extname]
        # ESO's QC.RONi are of the NDIT-averaged frames: x sqrt(NDIT) for one read.
        eso_ron = [v for k, v in eso_dark[extname].items() if k.startswith("QC.RON")]
        chips["ron_dark"][extname] = {
            "truth": ron,
            "qclib": ours_dark["QC.RON"],
            "esorex": float(np.mean(eso_ron) * np.sqrt(ndit)),
        }
        hot = {(x, y) for x, y, _ in det["hot_pixels"]}
        cold = {(x, y) for x, y, _ in det["cold_pixels"]}
        chips["hot_pixels"][extname] = _pixel_counts(
            hot, hot | cold, _dq_pixels(native, dark, extname, DQ_HOT), bad
        )
        chips["cold_pixels"][extname] = _pixel_counts(
            cold, hot | cold, _dq_pixels(native, flat, extname, DQ_COLD), bad
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
            "qclib": native.qc[flat.id][extname]["QC.FLAT.RATIO"],
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
    return {key: summarise(key, c) for key, c in chips.items()}


def run_both_ways(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Process the HAWK-I night at ``raw_dir`` both ways under ``out_dir`` (``native/``
    and ``eso/`` workspaces, ``detector_noise/``) and write ``both_ways.json`` there;
    returns its path.

    Raises
    ------
    ConfigError
        ``raw_dir`` holds no HAWK-I night; ESO's HAWK-I pipeline is not installed (the
        message names the package); ``out_dir`` already holds a comparison.
    """
    raw, out = Path(raw_dir).resolve(), Path(out_dir).resolve()
    if not raw.is_dir() or not any(raw.glob("*.fits")):
        raise ConfigError(f"{raw}: no raw FITS frames to process both ways")
    reason = esorex.available("hawki")
    if reason:
        raise ConfigError(f"cannot process HAWK-I ESO's way: {reason}")
    say = progress or (lambda _text: None)
    sides = {}
    for name in SIDES:
        say(f"{name}: processing {raw} with {SIDES[name]}")
        sides[name] = process_side(out / name, raw, name, progress=progress is not None)
    native, eso = sides["native"], sides["eso"]
    result: dict[str, Any] = {
        "raw_dir": str(raw),
        "sides": {
            n: {"instrument": SIDES[n], "workspace": str(s.workspace.root)}
            for n, s in sides.items()
        },
        "blocks": cost_pairs(native, eso),
        "quantities": None,
        "detector_noise": None,
        "not_compared": None,
    }
    try:
        say("eso: hawki_detector_noise on the native DETECTOR_NOISE block's frames")
        noise = detector_noise(native, eso, raw, out / "detector_noise")
        result["detector_noise"] = str(noise.out_dir)
        for pair in result["blocks"]:
            if pair["native"] and pair["native"]["action"] == "DETECTOR_NOISE":
                pair["eso"] = pair["eso"] or _direct_row(noise)
        truth_path = raw / "truth.json"
        if truth_path.is_file():
            truth = json.loads(truth_path.read_text())
            result["quantities"] = compare(native, eso, noise, truth)
        else:
            result["not_compared"] = (
                f"{raw} has no truth.json: the values are not compared to a truth"
            )
    except (LookupError, EsorexJobError) as err:
        result["not_compared"] = f"the quantities cannot be compared: {err}"
    path = out / RESULT_NAME
    write_text_atomic(path, json.dumps(result, indent=1) + "\n")
    return path
