"""HAWK-I calibrations: the native recipes against ESO's through esorex, in one run.

A full-size simulated night (4 x 2048x2048; darks of DIT 2, 10 and 60 s, Ks and J
twilight flats) processed both ways by ``qc eso both-ways``
(``qclib.peers.hawki_both_ways``): each block alone in a child process, its wall time
(the whole block through ``process_blocks``: read, combine, measure, write, record)
and its peak memory; ESO's ``hawki_detector_noise``, which its rule file does not
run, on the native block's frames. Prints the time ratio (ESO / native) per block
and the quantities both measure against the truth; writes bench/results/
hawki_esorex.json.

    python bench/bench_hawki_esorex.py [--raw-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

from qclib.peers import esorex
from qclib.peers.hawki_both_ways import run_both_ways
from qclib.reports.both_ways import cost_table, quantity_table
from qclib.simulate.night import simulate_night

NIGHT = dt.date(2026, 11, 23)


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
    result = json.loads(run_both_ways(night, tmp / "both", progress=print).read_text())
    costs = cost_table(result)
    print(
        f"\n{'native block':<34} {'s':>6} {'MB':>6}   "
        f"{'ESO block':<42} {'s':>6} {'MB':>6} {'ESO/native':>10}"
    )
    for row in costs.itertuples(index=False):
        ratio = "" if row[10] is None or row[10] != row[10] else f"{row[10]:.1f}x"
        print(
            f"{row[1]:<34} {row[2] or 0:6.2f} {row[3] or 0:6.0f}   "
            f"{row[5]:<42} {row[6] or 0:6.2f} {row[7] or 0:6.0f} {ratio:>10}"
        )
    print()
    print(quantity_table(result).to_string(index=False))
    out = Path(__file__).parent / "results" / "hawki_esorex.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": dt.datetime.now().isoformat(timespec="seconds"),
                "blocks": result["blocks"],
                "quantities": result["quantities"],
            },
            indent=1,
        )
    )
    print(f"\n{out}; workspaces and report data under {tmp}")


if __name__ == "__main__":
    main()
