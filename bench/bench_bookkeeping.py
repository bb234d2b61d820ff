"""The flow's own bookkeeping at observatory scale: time per block as the history grows.

    python bench/bench_bookkeeping.py --work-dir DIR [--sizes 1000 10000 50000]
        [--databases sqlite postgresql] [--extra-nights 4]

For each size (association blocks in the history) and database, a fresh workspace
(OmegaCAM and HAWK-I) takes:

(a) the whole history in one ``run_pass`` (ingest, classify + associate, process,
    score, certify: each stage's seconds per block of the history), then
(b) ``--extra-nights`` more nights, one ``run_pass`` each on top of that history: the
    marginal cost of a night, per block that night added. This is the figure that must
    not grow with the history (issue 13: at 50k blocks within 1.5x of its value at 1k).
    The first extra night redoes every block of a history loaded in one pass (all its
    decisions came after its association), so the figure is the median, stage by
    stage, of the nights after it; one night of 18 blocks takes 2-4 s and scatters by
    about 20 % from night to night, hence four nights by default (three counted).

Raw files are header-only in effect: the simulator's real primary headers
(``qclib.simulate.headers.primary_header``, the plan of ``plan_night`` at test scale)
and test-scale detector extensions whose data space is a hole in a sparse file (ingest
validates the structure, hashes and renames them; nothing reads pixels). Extension
headers are made once per instrument (their WCS is that of one pointing: bookkeeping
never reads it). Files are generated once per night under ``--work-dir/headers`` and
hard-linked into each workspace's inbox, so ingest moves links, not data.

Recipes do no work: ``RecipeSpec.load`` is replaced in this process by one that writes
each declared product through the recipes' own writer (``qclib.recipes.base.write``:
primary header and provenance, no detector data) with one QC value per detector, so
recording products, QC values and grading them is measured too.

PostgreSQL: a throwaway cluster is started as ``tests/conftest.py`` does (see
``../shared/STACK_NOTES.md``); it is skipped with a message when the binaries are absent.
Results: a table on stdout and ``bench/results/bookkeeping.json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import glob
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qclib.associate import RawFrame, build_association_blocks
from qclib.classify import classify_header
from qclib.config.instrument import InstrumentConfig
from qclib.fitsio import parse_cards, split_cards
from qclib.instruments import load_instrument, load_rules
from qclib.nights import night_of_mjd
from qclib.recipes import base as recipe_base
from qclib.recipes.base import ProductResult, RecipeContext
from qclib.recipes.registry import RecipeSpec
from qclib.simulate import headers as hdr
from qclib.simulate.plan import plan_night
from qclib.simulate.sky import detector_wcs

INSTRUMENTS = ("OMEGACAM", "HAWKI")
FIRST_NIGHT = dt.date(2019, 1, 1)
SEED = 11
SCALE = "test"
RESULTS = Path(__file__).parent / "results" / "bookkeeping.json"


# ------------------------------------------------------------------ raw files
def _extension_headers(config: InstrumentConfig) -> list[bytes]:
    """The test-scale detector extension headers of one instrument (one pointing)."""
    geometry = config.geometry[SCALE]
    sim = config.simulator
    gain = sum(sim.gain_e_per_adu) / len(sim.gain_e_per_adu)
    ron = sum(sim.read_noise_e) / len(sim.read_noise_e)
    out = []
    for detector in config.detectors_at(SCALE):
        wcs = detector_wcs(config, geometry, detector.extname, 150.0, -30.0)
        chip_no = config.detectors.index(detector) + 1
        out.append(
            hdr.header_bytes(
                hdr.extension_header(config, geometry, detector.extname, chip_no, wcs, gain, ron)
            )
        )
    return out


def _write_night(work_dir: Path, night: dt.date) -> Path:
    """Write one night of both instruments' raw files (sparse), once; returns its folder."""
    folder = work_dir / "headers" / night.isoformat()
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in INSTRUMENTS:
        config = load_instrument(name)
        geometry = config.geometry[SCALE]
        data_bytes = geometry.naxis1 * geometry.naxis2 * abs(geometry.bitpix) // 8
        padded = -(-data_bytes // 2880) * 2880
        extensions = _extension_headers(config)
        exposures, _ = plan_night(config, night, seed=SEED, scale=SCALE)
        for exposure in exposures:
            primary = hdr.header_bytes(hdr.primary_header(config, exposure, len(extensions)))
            path = folder / exposure.arcfile
            with open(folder / f".tmp-{exposure.arcfile}", "wb") as handle:
                position = len(primary)
                handle.write(primary)
                for ext in extensions:
                    handle.seek(position)
                    handle.write(ext)
                    position += len(ext) + padded
                handle.truncate(position)  # data space: a hole, read as zeros
            os.replace(folder / f".tmp-{exposure.arcfile}", path)
    (folder / ".complete").touch()
    return folder


def blocks_per_night(night: dt.date) -> int:
    """Association blocks one night of both instruments makes (pure association)."""
    total = 0
    for name in INSTRUMENTS:
        config, rules = load_instrument(name), load_rules(name)
        frames = []
        for exposure in plan_night(config, night, seed=SEED, scale=SCALE)[0]:
            header = parse_cards(split_cards(hdr.primary_header(config, exposure, 4).tostring()))
            result = classify_header(rules, header)
            frames.append(
                RawFrame(
                    header["ARCFILE"],
                    name,
                    night_of_mjd(header["MJD-OBS"], config.site.timezone).isoformat(),
                    header["MJD-OBS"] + header["EXPTIME"] / 2 / 86400,
                    {**header, **result.assigned},
                )
            )
        total += len(build_association_blocks(rules, config.association, frames))
    return total


def generate(work_dir: Path, nights: int, workers: int) -> list[Path]:
    """The first ``nights`` night folders, generated where missing (in parallel)."""
    dates = [FIRST_NIGHT + dt.timedelta(days=i) for i in range(nights)]
    missing = [
        d for d in dates if not (work_dir / "headers" / d.isoformat() / ".complete").exists()
    ]
    if missing:
        start = time.perf_counter()
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_night, [work_dir] * len(missing), missing, chunksize=8))
        print(f"generated {len(missing)} nights in {time.perf_counter() - start:.0f} s")
    return [work_dir / "headers" / d.isoformat() for d in dates]


def link_into(inbox: Path, folders: list[Path]) -> int:
    """Hard-link the nights' files into the inbox (ingest moves the links); returns how many."""
    count = 0
    for folder in folders:
        dest = inbox / folder.name
        dest.mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():
            if path.name.endswith(".fits") and not path.name.startswith("."):
                os.link(path, dest / path.name)
                count += 1
    return count


# ------------------------------------------------------------------ recipes that do nothing
def record_only(ctx: RecipeContext) -> list[ProductResult]:
    """A recipe that computes nothing: each declared product written by the recipes'
    writer without detector data, with one QC value (0.0) per detector."""
    results = []
    detectors = [d.extname for d in ctx.instrument.detectors_at(SCALE)]
    for pro_catg in ctx.block.products:
        names = list(ctx.instrument.qc.get(pro_catg, {}))
        qc = {det: {names[0]: 0.0} for det in detectors} if names else {}
        results.append(recipe_base.write(ctx, pro_catg, [], raws=ctx.raws, qc=qc))
    return results


def _load_record_only(_spec: RecipeSpec) -> Any:
    return record_only


# ------------------------------------------------------------------ databases
class PostgresCluster:
    """A throwaway PostgreSQL cluster (as tests/conftest.py starts one)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise FileNotFoundError(
                "PostgreSQL server binaries missing (apt-get install postgresql)"
            )
        self.bindir = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="qc-bench-pg-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        data = str(self.root / "data")
        self._run("initdb", "-D", data, "-U", "qc", "--auth=trust", "-E", "UTF8", "--no-locale",
                  "--no-sync")  # fmt: skip
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", data, "-l", str(self.root / "log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        import psycopg

        name = f"qc_{uuid.uuid4().hex[:12]}"
        dsn = f"host=127.0.0.1 port={self.port} user=qc dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://qc@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def database_urls(kinds: list[str], work_dir: Path) -> Iterator[dict[str, Any]]:
    """A factory of fresh database URLs per kind (the PostgreSQL cluster lives as long)."""
    cluster = None
    if "postgresql" in kinds:
        try:
            cluster = PostgresCluster()
            cluster.start()
        except (FileNotFoundError, subprocess.CalledProcessError) as err:
            print(f"PostgreSQL skipped: {err}")
            cluster = None
    counter = iter(range(1_000_000))

    def sqlite() -> str:
        return f"sqlite:///{work_dir / 'db' / f'qc-{os.getpid()}-{next(counter)}.sqlite'}"

    factories: dict[str, Any] = {"sqlite": sqlite}
    if cluster is not None:
        factories["postgresql"] = cluster.new_database
    try:
        yield factories
    finally:
        if cluster is not None:
            cluster.stop()


# ------------------------------------------------------------------ measuring
def _workspace(root: Path, url: str) -> Any:
    from qclib.workspace import init_workspace

    root.mkdir(parents=True)
    (root / "qc.toml").write_text(
        "[workspace]\n"
        f"instruments = [{', '.join(repr(n) for n in INSTRUMENTS)}]\n"
        "[database]\n"
        f"url = {json.dumps(url)}\n"
        # A month of history is past the auto-certification delay: products are
        # certified as in steady operation (with the default 24 h nothing generated
        # in one go would be, and every pass would regrade the whole history).
        "[certification]\n"
        "auto_certify_after_hours = 0\n"
    )
    return init_workspace(root)


def _pass(workspace: Any, database: Any) -> dict[str, Any]:
    """One ``run_pass`` (no reports); its stage seconds, blocks added and outcomes."""
    from qclib.workflow.run import run_pass

    start = time.perf_counter()
    summary = run_pass(workspace, database, write_reports=False)
    total = time.perf_counter() - start
    statuses: dict[str, int] = {}
    for outcome in summary.outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    return {
        "seconds": {k: round(v, 4) for k, v in summary.seconds.items()},
        "total_s": round(total, 4),
        "files": sum(summary.ingested.values()),
        "blocks_added": summary.blocks["added"],
        "outcomes": statuses,
    }


def _per_block(result: dict[str, Any], blocks: int) -> dict[str, float]:
    out = {k: 1000 * v / blocks for k, v in result["seconds"].items()}
    out["total"] = 1000 * result["total_s"] / blocks
    return {k: round(v, 3) for k, v in out.items()}


def measure(
    work_dir: Path,
    size: int,
    kind: str,
    url: str,
    nights: list[Path],
    extra: list[Path],
    *,
    keep: bool = False,
) -> dict[str, Any]:
    """The whole history in one pass, then one pass per extra night (the workspace is
    removed afterwards unless ``keep``)."""
    from qclib.workflow import run as run_module

    root = work_dir / "workspaces" / f"{kind}-{size}-{uuid.uuid4().hex[:6]}"
    workspace = _workspace(root, url)
    database = workspace.open_database()
    original = RecipeSpec.load
    RecipeSpec.load = _load_record_only  # type: ignore[method-assign]
    try:
        link_into(workspace.inbox, nights)
        history = _pass(workspace, database)
        blocks = history["blocks_added"]
        marginal = []
        for folder in extra:
            link_into(workspace.inbox, [folder])
            night = _pass(workspace, database)
            night["per_block_ms"] = _per_block(night, night["blocks_added"])
            marginal.append(night)
    finally:
        RecipeSpec.load = original  # type: ignore[method-assign]
        database.close()
        if keep:
            print(f"workspace kept: {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    del run_module
    counted = marginal[1:] or marginal  # the first redoes every block (see above)
    typical = {
        stage: round(statistics.median(m["per_block_ms"][stage] for m in counted), 3)
        for stage in counted[0]["per_block_ms"]
    }
    return {
        "size": size,
        "database": kind,
        "nights": len(nights),
        "blocks": blocks,
        "history": {**history, "per_block_ms": _per_block(history, blocks)},
        "marginal": marginal,
        "marginal_per_block_ms": typical,
        "marginal_totals_ms": [m["per_block_ms"]["total"] for m in counted],
    }


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _table(rows: list[dict[str, Any]]) -> str:
    stages = ("ingest", "associate", "process", "score", "certify", "total")
    lines = [
        f"{'db':<11}{'blocks':>8}  {'whole history, ms/block':<52}  marginal night, ms/block",
        f"{'':<19}  "
        + "".join(f"{s[:8]:>9}" for s in stages[:-1])
        + f"{'total':>8}  "
        + "".join(f"{s[:8]:>9}" for s in stages[:-1])
        + f"{'total':>8}",
    ]
    for row in rows:
        h, m = row["history"]["per_block_ms"], row["marginal_per_block_ms"]
        lines.append(
            f"{row['database']:<11}{row['blocks']:>8}  "
            + "".join(f"{h.get(s, 0):>9.2f}" for s in stages[:-1])
            + f"{h['total']:>8.2f}  "
            + "".join(f"{m.get(s, 0):>9.2f}" for s in stages[:-1])
            + f"{m['total']:>8.2f}"
        )
    return "\n".join(lines)


def _ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per database: each size's marginal ms/block over the smallest size's."""
    out: dict[str, dict[str, float]] = {}
    for kind in sorted({r["database"] for r in rows}):
        mine = sorted((r for r in rows if r["database"] == kind), key=lambda r: r["blocks"])
        base = mine[0]["marginal_per_block_ms"]["total"]
        out[kind] = {
            str(r["blocks"]): round(r["marginal_per_block_ms"]["total"] / base, 3) for r in mine
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="cache of generated nights")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument("--extra-nights", type=int, default=4, help="marginal nights measured")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep", action="store_true", help="keep each workspace (to inspect its database)"
    )
    args = parser.parse_args()
    work_dir = args.work_dir.resolve()
    (work_dir / "db").mkdir(parents=True, exist_ok=True)
    per_night = blocks_per_night(FIRST_NIGHT)
    most = math.ceil(max(args.sizes) / per_night)
    folders = generate(work_dir, most + args.extra_nights, args.workers)
    rows = []
    loads = [_uptime()]
    with database_urls(args.databases, work_dir) as urls:
        for size in sorted(args.sizes):
            n = math.ceil(size / per_night)
            # The extra nights follow the history directly (the same nights for every
            # database at this size).
            extra = [
                *folders[n : n + args.extra_nights],
            ]
            if len(extra) < args.extra_nights:
                extra = generate(work_dir, n + args.extra_nights, args.workers)[n:]
            for kind in args.databases:
                if kind not in urls:
                    continue
                row = measure(
                    work_dir, size, kind, urls[kind](), folders[:n], extra, keep=args.keep
                )
                rows.append(row)
                print(
                    f"{kind} {row['blocks']} blocks: history {row['history']['total_s']:.1f} s, "
                    f"marginal {row['marginal_per_block_ms']['total']:.2f} ms/block (median of "
                    + ", ".join(f"{t:.1f}" for t in row["marginal_totals_ms"])
                    + f")  ({_uptime()})",
                    flush=True,
                )
                loads.append(_uptime())
    print(_table(rows))
    ratios = _ratios(rows)
    print("marginal ms/block relative to the smallest history:", json.dumps(ratios))
    result = {
        "what": "bookkeeping per block (ingest, classify+associate, process with recipes "
        "that write header-only products, score, certify) at several history sizes",
        "blocks_per_night": per_night,
        "instruments": list(INSTRUMENTS),
        "machine_load": loads,
        "rows": rows,
        "marginal_ratio_to_smallest": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
