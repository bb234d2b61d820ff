"""MUSE (UT4) calibration morning: biases, then darks, as ESO's ``muse`` pipeline takes
them (``muse_bias``, then ``muse_dark`` with the master bias tagged MASTER_BIAS), run
with the options of ESO's rule file ``muse.oca``, ``--nifu=-1 --merge``: all 24 IFUs,
each master one file with ``CHANnn.DATA/DQ/STAT`` extensions, every IFU's QC in its own.

A MUSE raw holds an empty primary HDU and 24 image extensions ``CHAN01``..``CHAN24``,
one per IFU, each a CCD read through four outputs. Each output reads one quadrant with
prescan columns and rows on the outer edges of the CCD and overscan ones toward its
centre, as ``DET OUTn NX/NY/PRSCX/PRSCY/OVSCX/OVSCY`` (n = 1-4, in every extension) say;
``DET OUTn GAIN`` (e-/ADU) must be there too, else the recipe reports a read noise of 0
without an error. ``DET OUTn X/Y`` name the output's corner with the real CCD's
coordinates, 1 or 4096 in x and 1 or 4112 in y, at every scale: the recipes take no
other value ("Input data do not match" in ``muse_quadrants_overscan_get_window``).
``muse.oca`` matches a dark to its master bias on INSTRUME and ``DET READ CURID``.

Both scales keep the real layout of 24 IFUs x 4 outputs with 32 prescan and overscan
pixels in x and y. ``scale="full"`` has the real outputs of 2048 x 2056 exposed pixels
(4224 x 4240 per IFU, 860 MB per exposure; 5 biases and 3 darks, 6.9 GB, written one
IFU at a time). ``scale="test"`` has smaller outputs of 256 x 256 exposed pixels (640 x
640 per IFU, 20 MB per exposure; 3 biases and 3 darks), which ``muse_bias`` and
``muse_dark`` reduce as they do the real ones, in seconds.

The 96 outputs' bias levels, read noises and gains and each IFU's dark current are
drawn once from a fixed stream, the same for every seed and scale (the detector is the
same whatever the night); the seed draws the hot pixels and the noise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from qclib.simulate.eso import common
from qclib.simulate.night import SimulationResult

INSTRUMENT = common.Instrument("MUSE", "MUSE", "ESO-VLT-U4", "muse", code=105)
N_IFUS = 24
#: The outputs, OUT1 lower left then counter-clockwise, as their X/Y cards place them:
#: (column, row) of the quadrant, 0 or 1.
CORNERS = {"OUT1": (0, 0), "OUT2": (1, 0), "OUT3": (1, 1), "OUT4": (0, 1)}
#: DET OUTn X/Y: where the output sits on the real CCD (1, or 4096 and 4112). muse_bias
#: and muse_dark take only these values, at every scale: they name the corner.
OUTPUT_X = (1, 4096)
OUTPUT_Y = (1, 4112)
#: Ranges the outputs' values are drawn from: bias (ADU), read noise (ADU), gain (e-/ADU).
BIAS_ADU = (1380.0, 1430.0)
READ_NOISE_ADU = (2.2, 2.6)
GAIN_E_PER_ADU = (1.05, 1.20)
#: Each IFU's dark current (e-/pixel/h) is drawn in this range.
DARK_E_PER_H = (0.8, 1.6)
HOT_E_PER_S = 0.5
DARK_EXPTIME_S = 1800.0
READOUT_S = 40.0
#: Recipe options of ESO's muse.oca for muse_bias and muse_dark.
RECIPE_OPTIONS = ("--nifu=-1", "--merge")


@dataclass(frozen=True)
class Layout:
    """One scale: every IFU's CCD is four outputs of ``out_nx`` x ``out_ny`` exposed
    pixels, each with ``scan`` prescan and overscan columns and rows."""

    out_nx: int
    out_ny: int
    scan: int
    hot_pixels_per_output: int
    n_bias: int
    n_dark: int

    @property
    def shape(self) -> tuple[int, int]:
        """One IFU's image (NAXIS2, NAXIS1)."""
        return (2 * (self.out_ny + 2 * self.scan), 2 * (self.out_nx + 2 * self.scan))

    def quadrants(self) -> dict[str, tuple[slice, slice, slice, slice]]:
        """Per output: (rows, columns) of its whole readout, then of its exposed pixels."""
        qy, qx = self.out_ny + 2 * self.scan, self.out_nx + 2 * self.scan
        out = {}
        for name, (right, top) in CORNERS.items():
            rows = slice(qy, 2 * qy) if top else slice(0, qy)
            cols = slice(qx, 2 * qx) if right else slice(0, qx)
            # The prescan lies on the outer edge (beside the output), the overscan inside.
            data_rows = slice(rows.start + self.scan, rows.stop - self.scan)
            data_cols = slice(cols.start + self.scan, cols.stop - self.scan)
            out[name] = (rows, cols, data_rows, data_cols)
        return out


LAYOUTS = {
    # The real CCD: 30 hot pixels per output.
    "full": Layout(2048, 2056, 32, hot_pixels_per_output=30, n_bias=5, n_dark=3),
    # 1/64 of the area: 2 hot pixels per output keep about their density.
    "test": Layout(256, 256, 32, hot_pixels_per_output=2, n_bias=3, n_dark=3),
}


@dataclass(frozen=True)
class Ifu:
    """One IFU's CCD: its extension name, chip, dark current and four outputs."""

    extname: str
    chip_id: str
    chip_name: str
    dark_e_per_h: float
    outputs: tuple[common.Output, ...]


def _templates(layout: Layout) -> list[common.Template]:
    return [
        common.Template(
            "bias", "MUSE_gen_cal_bias", "Bias", ("CALIB", "BIAS", "IFU"), "BIAS",
            (0.0,) * layout.n_bias, READOUT_S,
        ),
        common.Template(
            "dark", "MUSE_gen_cal_dark", "Dark", ("CALIB", "DARK", "IFU"), "DARK",
            (DARK_EXPTIME_S,) * layout.n_dark, READOUT_S,
        ),
    ]  # fmt: skip


def _ifus(layout: Layout, seed: int) -> list[Ifu]:
    """The 24 IFUs: fixed levels, noises, gains and dark currents; hot pixels by seed."""
    fixed = common.stream(0, INSTRUMENT, 2)
    rng0 = common.stream(seed, INSTRUMENT, 0)
    quadrants = layout.quadrants()
    ifus = []
    for k in range(1, N_IFUS + 1):
        dark_e_per_h = round(float(fixed.uniform(*DARK_E_PER_H)), 3)
        outputs = []
        for name in CORNERS:
            bias = round(float(fixed.uniform(*BIAS_ADU)), 1)
            ron = round(float(fixed.uniform(*READ_NOISE_ADU)), 3)
            gain = round(float(fixed.uniform(*GAIN_E_PER_ADU)), 3)
            _, _, rows, cols = quadrants[name]
            hot = common.hot_pixel_positions(
                rng0, layout.hot_pixels_per_output, (cols.start, cols.stop), (rows.start, rows.stop)
            )
            outputs.append(
                common.Output(
                    f"CHAN{k:02d}.{name}",
                    bias,
                    ron,
                    gain,
                    dark_e_per_h / 3600 / gain,
                    HOT_E_PER_S / gain,
                    hot,
                )
            )
        chip = (f"ESO-CCD-#{100 + k}", f"MUSE CCD {k:02d}")
        ifus.append(Ifu(f"CHAN{k:02d}", *chip, dark_e_per_h, tuple(outputs)))
    return ifus


def _extension_header(layout: Layout, ifu: Ifu) -> fits.Header:
    header = common.structure(16, layout.shape, primary=False)
    header["EXTNAME"] = (ifu.extname, f"This is IFU {int(ifu.extname[4:])}")
    cards: dict[str, tuple[common.CardValue, str]] = {
        "DET CHIP ID": (ifu.chip_id, "Detector chip identification"),
        "DET CHIP NAME": (ifu.chip_name, "Detector chip name"),
        "DET CHIP INDEX": (int(ifu.extname[4:]), "Chip index"),
        "DET CHIP NX": (2 * layout.out_nx, "# of pixels along X"),
        "DET CHIP NY": (2 * layout.out_ny, "# of pixels along Y"),
        "DET CHIP LIVE": (True, "Detector alive"),
        "DET OUTPUTS": (len(ifu.outputs), "# of outputs"),
    }
    for n, output in enumerate(ifu.outputs, start=1):
        right, top = CORNERS[f"OUT{n}"]
        cards |= {
            f"DET OUT{n} ID": (f"OUT{n}", "Output ID as from manufacturer"),
            f"DET OUT{n} X": (OUTPUT_X[right], "X location of output"),
            f"DET OUT{n} Y": (OUTPUT_Y[top], "Y location of output"),
            f"DET OUT{n} NX": (layout.out_nx, "valid pixels along X"),
            f"DET OUT{n} NY": (layout.out_ny, "valid pixels along Y"),
            f"DET OUT{n} PRSCX": (layout.scan, "Prescan region in X"),
            f"DET OUT{n} PRSCY": (layout.scan, "Prescan region in Y"),
            f"DET OUT{n} OVSCX": (layout.scan, "Overscan region in X"),
            f"DET OUT{n} OVSCY": (layout.scan, "Overscan region in Y"),
            f"DET OUT{n} GAIN": (output.gain_e_per_adu, "Conversion from ADUs to electrons"),
            f"DET OUT{n} RON": (
                round(output.read_noise_adu * output.gain_e_per_adu, 3),
                "Readout noise per output (e-)",
            ),
        }
    return common.eso_cards(header, cards)


def simulate(night: dt.date, out_dir: Path, *, seed: int, scale: str) -> SimulationResult:
    """A MUSE calibration morning of 24 IFUs: biases (one template), darks (another)."""
    layout = LAYOUTS[scale]
    quadrants = layout.quadrants()
    ifus = _ifus(layout, seed)
    exposures = common.plan_morning(night, _templates(layout), first_utc=dt.time(10, 30))
    extensions = [_extension_header(layout, ifu) for ifu in ifus]

    def ifu_image(ifu: Ifu, exposure: common.Exposure, rng: np.random.Generator) -> np.ndarray:
        data = np.empty(layout.shape, dtype=np.float32)
        for name, output in zip(CORNERS, ifu.outputs, strict=True):
            rows, cols, data_rows, data_cols = quadrants[name]
            data[rows, cols] = common.read_out(
                rng,
                (rows.stop - rows.start, cols.stop - cols.start),
                output,
                exposed=(
                    slice(data_rows.start - rows.start, data_rows.stop - rows.start),
                    slice(data_cols.start - cols.start, data_cols.stop - cols.start),
                ),
                seconds=exposure.exptime_s,
                origin=(rows.start, cols.start),
            )
        return data

    def render(exposure: common.Exposure, rng: np.random.Generator) -> common.Hdus:
        primary = common.structure(16, (), primary=True, extend=True)
        primary.update(common.primary_cards(INSTRUMENT, exposure))
        common.eso_cards(
            primary,
            {
                "DET BINX": (1, "Binning factor along X"),
                "DET BINY": (1, "Binning factor along Y"),
                "DET READ CURID": (1, "Used readout mode id"),
                "DET READ CURNAME": ("SCI1.0", "Used readout mode name"),
                "DET CHIPS": (N_IFUS, "# of chips in detector array"),
                "INS MODE": ("WFM-NOAO-N", "Instrument mode used."),
            },
        )

        def hdus() -> Iterator[tuple[fits.Header, np.ndarray | None]]:
            # One IFU at a time: a full-scale exposure never sits in memory whole.
            yield primary, None
            for ifu, extension in zip(ifus, extensions, strict=True):
                yield extension, ifu_image(ifu, exposure, rng)

        return hdus()

    exposed = {
        name: {"x": [q[3].start, q[3].stop - 1], "y": [q[2].start, q[2].stop - 1]}
        for name, q in quadrants.items()
    }
    geometry: dict[str, Any] = {
        "extensions": [ifu.extname for ifu in ifus],
        "naxis1": layout.shape[1],
        "naxis2": layout.shape[0],
        "output_nx": layout.out_nx,
        "output_ny": layout.out_ny,
        "prescan_overscan_px": layout.scan,
        "exposed_0based": exposed,
    }
    return common.write_night(
        INSTRUMENT,
        night,
        out_dir,
        seed=seed,
        scale=scale,
        exposures=exposures,
        render=render,
        outputs=[o for ifu in ifus for o in ifu.outputs],
        extra_truth={
            "ifus": {
                ifu.extname: {
                    "chip_id": ifu.chip_id,
                    "dark_e_per_h": ifu.dark_e_per_h,
                    "outputs": [o.name for o in ifu.outputs],
                }
                for ifu in ifus
            },
            "geometry": geometry,
            "recipe_options": list(RECIPE_OPTIONS),
        },
    )
