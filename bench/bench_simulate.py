"""The simulator at full scale: one detector readout, numpy's generator against the
compiled counter-based kernel, and whole nights against the time to write their bytes.

Per instrument (full geometry, the first detector, the plan's first frame of each
kind below), in one run, alternating:

* ``numpy``: the simulator's pixel chain as it was before the kernel (kept here as
  the peer): ``rng.standard_normal`` over the frame, then about fifteen whole-frame
  numpy passes (variance, square root, gain, non-linearity, bias, rounding, clipping)
  and the big-endian encoding (``astype(">i2")`` / ``astype(">f4")``, ``tobytes``);
* ``kernel``: ``qclib.simulate.pixels.synthesize_readout`` into a reused buffer (one
  compiled pass: Philox4x32-10, ziggurat, Poisson where counts are low, the chain and
  the FITS encoding).

Both make the same charge (dark, light x response, particle hits) and IR readout
pattern with numpy; the ratio is of the whole readout.

Per night (``--nights``; default OMEGACAM and HAWKI): ``simulate_night`` at full scale
on the default workers (one per core), the bytes written, and the floor: the same
bytes written as the same files from one reused buffer (no computation). Prints the
machine's load average before and after; writes bench/results/simulate.json.

    python bench/bench_simulate.py [--repeat 3] [--nights OMEGACAM HAWKI] [--dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from qclib.config.instrument import Geometry, InstrumentConfig, parse_section
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from qclib.simulate.noise import stream_key
from qclib.simulate.pixels import (
    add_particle_hits,
    channel_factor,
    ir_readout_pattern,
    reset_anomaly_in_frame,
    reset_anomaly_profile,
    synthesize_readout,
)
from qclib.simulate.plan import Exposure, plan_night
from qclib.simulate.sky import illumination
from qclib.simulate.truth import (
    DetectorMaps,
    DetectorTruth,
    build_detector_maps,
    draw_detector_truth,
)

NIGHT = dt.date(2026, 11, 23)
SEED = 1
#: Frames timed per instrument: the first of these kinds its night has.
KINDS = ("bias", "dark", "dome_flat", "twilight_flat")


def numpy_readout(
    geometry: Geometry,
    truth: DetectorTruth,
    maps: DetectorMaps,
    light: np.ndarray | None,
    exposure: Exposure,
    instrument: InstrumentConfig,
    rng: np.random.Generator,
) -> bytes:
    """The pixel chain before the kernel (qclib 0.x, simulate/pixels.py and the
    encoding of simulate/headers.py), numpy whole-frame passes: the peer."""
    infrared = instrument.infrared
    rows, cols = parse_section(geometry.data_section)
    t = exposure.dit_s if infrared else exposure.exptime_s
    charge = maps.dark_e_per_s * np.float32(t + instrument.readout_time_s)
    if light is not None:
        charge += light * maps.response * np.float32(t)
    add_particle_hits(
        charge,
        rng,
        rate_per_cm2_per_s=instrument.simulator.particle_rate_per_cm2_per_s,
        pixel_size_um=instrument.pixel_size_um,
        seconds=(t * exposure.ndit if infrared else t + instrument.readout_time_s),
        weight=1.0 / exposure.ndit if infrared else 1.0,
    )
    reads = exposure.ndit if infrared else 1
    noise = rng.standard_normal((geometry.naxis2, geometry.naxis1), dtype=np.float32)
    variance = charge + np.float32(truth.read_noise_e**2)
    np.maximum(variance, 0, out=variance)
    if reads > 1:
        variance /= np.float32(reads)
    data = noise[rows, cols] * np.sqrt(variance)
    data += charge
    data /= np.float32(truth.gain_e_per_adu)
    factor = channel_factor(geometry, truth)
    c, c3 = np.float32(truth.nonlinearity_per_adu), np.float32(truth.nonlinearity_cubic_per_adu2)
    data = data * (1.0 + factor * (c * data + c3 * data * data))
    data += maps.bias_structure_adu
    level = np.float32(truth.bias_level_adu)
    raw = noise * np.float32(truth.read_noise_adu / np.sqrt(reads))
    raw += level
    raw[rows, cols] = data + level
    if infrared:
        raw += ir_readout_pattern(geometry, truth, rng, ndit=reads)
        anomaly = reset_anomaly_in_frame(truth, exposure.dit_s)
        if anomaly:
            raw += np.float32(anomaly) * reset_anomaly_profile(geometry, truth)
        np.minimum(raw, np.float32(instrument.saturation_adu), out=raw)
        return raw.astype(">f4").tobytes()
    np.rint(raw, out=raw)
    np.clip(raw, 0.0, min(instrument.saturation_adu, 65535.0), out=raw)
    return (raw.astype(np.int32) - 32768).astype(">i2").tobytes()


def kernel_readout(
    frame: np.ndarray,
    geometry: Geometry,
    truth: DetectorTruth,
    maps: DetectorMaps,
    light: np.ndarray | None,
    exposure: Exposure,
    instrument: InstrumentConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """The simulator's readout as it is now, FITS byte order included."""
    synthesize_readout(
        frame,
        geometry=geometry,
        truth=truth,
        maps=maps,
        light_e_per_s=light,
        exptime_s=exposure.exptime_s,
        dit_s=exposure.dit_s,
        ndit=exposure.ndit,
        infrared=instrument.infrared,
        readout_time_s=instrument.readout_time_s,
        frame_offset_adu=0.0,
        saturation_adu=instrument.saturation_adu,
        particle_rate_per_cm2_per_s=instrument.simulator.particle_rate_per_cm2_per_s,
        pixel_size_um=instrument.pixel_size_um,
        rng=rng,
        noise_key=stream_key(SEED, 2, exposure.index, truth.index),
    )
    if frame.dtype == np.float32:
        frame.byteswap(inplace=True)
    return frame


def bench_readouts(name: str, repeat: int) -> dict[str, object]:
    """Seconds per full-size readout, numpy peer and kernel, per kind of frame."""
    instrument = load_instrument(name)
    geometry = instrument.geometry["full"]
    truth = draw_detector_truth(instrument, geometry, 0, SEED)
    maps = build_detector_maps(truth, geometry.data_shape, infrared=instrument.infrared, seed=SEED)
    exposures, _ = plan_night(instrument, NIGHT, seed=SEED, scale="full")
    frame = np.empty(
        (geometry.naxis2, geometry.naxis1),
        dtype=np.uint16 if geometry.bitpix == 16 else np.float32,
    )
    out: dict[str, object] = {"detector_shape": [geometry.naxis2, geometry.naxis1]}
    for kind in KINDS:
        exposure = next((e for e in exposures if e.kind == kind), None)
        if exposure is None:
            continue
        light = None
        if kind in ("dome_flat", "twilight_flat"):
            light = np.full(geometry.data_shape, exposure.sky_e_per_s, dtype=np.float32)
            light *= illumination(
                instrument,
                geometry,
                truth.extname,
                kind="dome_flat" if kind == "dome_flat" else "sky",
            )
        # Warm-up (compilation is cached on disk, but the first call loads it).
        kernel_readout(
            frame, geometry, truth, maps, light, exposure, instrument, np.random.default_rng(0)
        )
        times: dict[str, list[float]] = {"numpy": [], "kernel": []}
        for _ in range(repeat):
            rng = np.random.default_rng([SEED, 2, exposure.index, truth.index])
            start = time.perf_counter()
            numpy_readout(geometry, truth, maps, light, exposure, instrument, rng)
            times["numpy"].append(time.perf_counter() - start)
            rng = np.random.default_rng([SEED, 2, exposure.index, truth.index])
            start = time.perf_counter()
            kernel_readout(frame, geometry, truth, maps, light, exposure, instrument, rng)
            times["kernel"].append(time.perf_counter() - start)
        numpy_s, kernel_s = statistics.median(times["numpy"]), statistics.median(times["kernel"])
        out[kind] = {
            "numpy_s": round(numpy_s, 4),
            "kernel_s": round(kernel_s, 4),
            "numpy_over_kernel": round(numpy_s / kernel_s, 2),
            "all_numpy_s": [round(t, 4) for t in times["numpy"]],
            "all_kernel_s": [round(t, 4) for t in times["kernel"]],
        }
        print(
            f"{name:9s} {kind:14s} numpy {numpy_s:.3f} s  kernel {kernel_s:.3f} s  "
            f"x{numpy_s / kernel_s:.1f}"
        )
    return out


def write_floor(sizes: list[int], folder: Path, chunk_bytes: int) -> float:
    """Seconds to write files of ``sizes`` bytes from one reused buffer (pwrite, no
    fsync): the least a simulation writing them can take."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = np.full(chunk_bytes, 0x5A, dtype=np.uint8)
    view = memoryview(buffer)
    start = time.perf_counter()
    for i, size in enumerate(sizes):
        fd = os.open(folder / f"floor-{i}.fits", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            done = 0
            while done < size:
                done += os.pwrite(fd, view[: min(chunk_bytes, size - done)], done)
        finally:
            os.close(fd)
    return time.perf_counter() - start


def bench_night(name: str, root: Path) -> dict[str, object]:
    """A full-scale night on the default workers, and its write floor."""
    instrument = load_instrument(name)
    geometry = instrument.geometry["full"]
    out_dir = root / f"night-{name}"
    start = time.perf_counter()
    result = simulate_night(name, NIGHT, out_dir, seed=SEED, scale="full", progress=False)
    seconds = time.perf_counter() - start
    sizes = [f.stat().st_size for f in result.files]
    shutil.rmtree(out_dir)
    chunk = geometry.naxis1 * geometry.naxis2 * abs(geometry.bitpix) // 8
    floor = write_floor(sizes, root / f"floor-{name}", chunk)
    shutil.rmtree(root / f"floor-{name}")
    readouts = len(sizes) * len(instrument.detectors_at("full"))
    print(
        f"{name:9s} night: {len(sizes)} files, {result.bytes_written / 1e9:.2f} GB, "
        f"{readouts} readouts in {seconds:.1f} s; writing them alone {floor:.1f} s "
        f"(x{seconds / floor:.1f})"
    )
    return {
        "files": len(sizes),
        "readouts": readouts,
        "bytes_written": result.bytes_written,
        "seconds": round(seconds, 1),
        "seconds_per_readout": round(seconds / readouts, 4),
        "write_floor_s": round(floor, 2),
        "over_floor": round(seconds / floor, 2),
        "workers": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Timings per readout and method.")
    parser.add_argument(
        "--readouts", nargs="*", default=["OMEGACAM", "HAWKI", "VIRCAM"], help="Instruments."
    )
    parser.add_argument("--nights", nargs="*", default=["OMEGACAM", "HAWKI"], help="Instruments.")
    parser.add_argument("--dir", type=Path, default=None, help="Where nights are written.")
    args = parser.parse_args()
    load_before = os.getloadavg()
    print(f"load average before: {load_before}")
    result: dict[str, object] = {
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "readouts": {name: bench_readouts(name, args.repeat) for name in args.readouts},
    }
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-simulate-", dir=args.dir))
    try:
        result["nights"] = {name: bench_night(name, root) for name in args.nights}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(f"load average after: {result['load_average_after']}")
    out = Path(__file__).parent / "results" / "simulate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
