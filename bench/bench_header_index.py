"""Header indexing: qclib's header scan vs ccdproc's ImageFileCollection, same files, one run.

Writes N simulated ESO raw primary headers (OmegaCAM and HAWK-I nights, as `qc
simulate` makes them, header only) and times:
  - ccdproc.ImageFileCollection(location, keywords="*")  (astropy header parsing + Table)
  - qclib: fitsio.scan_fits on every file (full structure validation) + a pandas table
Both read every keyword of every primary header. Warm page cache for both (one
untimed pass first).

    python bench/bench_header_index.py [--n 10000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from qclib.fitsio import scan_fits
from qclib.instruments import load_instrument
from qclib.simulate.headers import header_bytes, primary_header
from qclib.simulate.plan import plan_night


def write_headers(folder: Path, n: int) -> list[Path]:
    """N header-only FITS files from simulated nights of both instruments."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    night = dt.date(2026, 1, 1)
    instruments = [load_instrument("OMEGACAM"), load_instrument("HAWKI")]
    while len(paths) < n:
        for instrument in instruments:
            exposures, _ = plan_night(instrument, night, seed=1, scale="full")
            for exposure in exposures:
                if len(paths) == n:
                    break
                path = folder / f"{len(paths):05d}_{exposure.arcfile}"
                path.write_bytes(header_bytes(primary_header(instrument, exposure, 0)))
                paths.append(path)
        night += dt.timedelta(days=1)
    return paths


def time_ccdproc(folder: Path) -> tuple[float, int]:
    from ccdproc import ImageFileCollection

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collection = ImageFileCollection(location=str(folder), keywords="*")
        summary = collection.summary
    return time.perf_counter() - start, len(summary)


def time_qclib(paths: list[Path]) -> tuple[float, int]:
    start = time.perf_counter()
    rows = []
    for path in paths:
        header = scan_fits(path).primary
        rows.append({"file": path.name, **header})
    table = pd.DataFrame.from_records(rows)
    return time.perf_counter() - start, len(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp) / "headers"
        start = time.perf_counter()
        paths = write_headers(folder, args.n)
        print(f"wrote {len(paths)} headers in {time.perf_counter() - start:.1f} s")
        time_qclib(paths)  # warm the page cache
        ours, n_ours = time_qclib(paths)
        theirs, n_theirs = time_ccdproc(folder)
        assert n_ours == n_theirs == len(paths)
    result = {
        "files": len(paths),
        "qclib_s": round(ours, 3),
        "ccdproc_s": round(theirs, 3),
        "speedup": round(theirs / ours, 1),
        "qclib_files_per_s": round(len(paths) / ours),
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "header_index.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
