"""Classify and associate N frames (simulated OmegaCAM and HAWK-I nights, headers only).

    python bench/bench_classify_associate.py [--n 10000]

Reports the time to classify every header with the instrument's OCA rules and to build
all association blocks (with virtual calibrations for the whole cascade).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from qclib.associate import RawFrame, build_association_blocks
from qclib.classify import classify_header
from qclib.fitsio import parse_cards, split_cards
from qclib.instruments import load_instrument, load_rules
from qclib.nights import night_of_mjd
from qclib.simulate.headers import primary_header
from qclib.simulate.plan import plan_night


def headers(n: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"OMEGACAM": [], "HAWKI": []}
    night = dt.date(2026, 1, 1)
    total = 0
    while total < n:
        for name in out:
            config = load_instrument(name)
            exposures, _ = plan_night(config, night, seed=1, scale="full")
            for exposure in exposures:
                if total == n:
                    break
                text = primary_header(config, exposure, 0).tostring()
                out[name].append(parse_cards(split_cards(text)))
                total += 1
        night += dt.timedelta(days=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    start = time.perf_counter()
    by_instrument = headers(args.n)
    print(f"made {args.n} headers in {time.perf_counter() - start:.1f} s")
    classify_s = associate_s = 0.0
    blocks = 0
    for name, hdrs in by_instrument.items():
        config, rules = load_instrument(name), load_rules(name)
        t0 = time.perf_counter()
        frames = []
        for h in hdrs:
            result = classify_header(rules, h)
            mid = h["MJD-OBS"] + h["EXPTIME"] / 2 / 86400
            frames.append(
                RawFrame(
                    h["ARCFILE"],
                    name,
                    night_of_mjd(h["MJD-OBS"], config.site.timezone).isoformat(),
                    mid,
                    {**h, **result.assigned},
                )
            )
        t1 = time.perf_counter()
        blocks += len(build_association_blocks(rules, config.association, frames))
        t2 = time.perf_counter()
        classify_s += t1 - t0
        associate_s += t2 - t1
    result = {
        "frames": args.n,
        "blocks": blocks,
        "classify_s": round(classify_s, 2),
        "associate_s": round(associate_s, 2),
        "total_s": round(classify_s + associate_s, 2),
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "classify_associate.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
