"""Shared parts of the ESO calibration-night simulators: the exposure plan of a
morning's calibration templates, ESO's primary-header cards, the pixel model of one
detector output, FITS files written atomically and ``truth.json``.

A raw file is written in one pass (header cards, then big-endian pixels) under a
temporary name in its folder and renamed to its ARCFILE when complete. CCD raws are
16-bit unsigned: int16 data with ``BZERO = 32768.0`` and ``BSCALE = 1.0`` written as
floating-point cards (UVES refuses integer ones); infrared raws are float32. Every
random number comes from a generator keyed by (seed, instrument, exposure), so the
same seed gives the same files, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from qclib import __version__
from qclib.atomicfile import atomic_path, write_text_atomic
from qclib.errors import ConfigError
from qclib.nights import datetime_to_mjd, night_of
from qclib.simulate.night import SimulationResult
from qclib.simulate.plan import iso_millis

#: Paranal's time zone: an ESO night runs from local noon to local noon.
SITE_TIMEZONE = "America/Santiago"
ORIGIN = "ESO-PARANAL"
TRUTH_FILE = "truth.json"
SCALES = ("test", "full")
#: FITS blocks are 2880 bytes.
_BLOCK = 2880

CardValue = str | int | float | bool
Cards = Mapping[str, CardValue | tuple[CardValue, str]]


@dataclass(frozen=True)
class Instrument:
    """What identifies an instrument's raw files: INSTRUME, the ARCFILE prefix, the
    telescope, and the Debian package (``cpl-plugin-<pipeline>``) that reduces them."""

    name: str
    arcfile_prefix: str
    telescope: str
    pipeline: str
    #: Mixed into every random stream, so that instruments never share noise.
    code: int


@dataclass(frozen=True)
class Template:
    """One calibration template: its exposures, their ESO classification (DPR) and the
    DO.CATG ESO's OCA rules give them, and the cards that differ per exposure."""

    kind: str
    tpl_id: str
    tpl_name: str
    dpr: tuple[str, str, str]
    do_catg: str
    exptimes_s: tuple[float, ...]
    #: Readout and overheads after each exposure (s).
    overhead_s: float
    #: Cards per exposure (e.g. NACO's lamp on/off), or none.
    per_exposure: tuple[Cards, ...] = ()
    #: Light reaching the detector per exposure (ADU/s before the pixel response), or
    #: none (dark frames). Recorded in the truth, not in the header.
    light_adu_per_s: tuple[float, ...] = ()


@dataclass(frozen=True)
class Exposure:
    """One raw frame of the plan."""

    index: int
    template: Template
    start: dt.datetime  # UTC, whole milliseconds
    tpl_start: str
    tpl_expno: int
    exptime_s: float
    cards: Cards = field(default_factory=dict)
    light_adu_per_s: float = 0.0

    @property
    def date_obs(self) -> str:
        return iso_millis(self.start)

    @property
    def mjd_obs(self) -> float:
        return datetime_to_mjd(self.start)

    def arcfile(self, instrument: Instrument) -> str:
        return f"{instrument.arcfile_prefix}.{self.date_obs}.fits"


def plan_morning(
    night: dt.date, templates: Sequence[Template], *, first_utc: dt.time, gap_s: float = 120.0
) -> list[Exposure]:
    """The templates one after the other from ``first_utc`` on the morning after
    ``night`` (``gap_s`` between templates), every exposure inside the ESO night.

    Raises
    ------
    ConfigError
        The plan runs past local noon, into the next night.
    """
    when = dt.datetime.combine(night + dt.timedelta(days=1), first_utc, tzinfo=dt.UTC)
    exposures: list[Exposure] = []
    for template in templates:
        tpl_start = when.strftime("%Y-%m-%dT%H:%M:%S")
        when = when.replace(microsecond=0) + dt.timedelta(seconds=5)
        for expno, exptime in enumerate(template.exptimes_s, start=1):
            start = when + dt.timedelta(milliseconds=137 * (len(exposures) % 7))
            cards = template.per_exposure[expno - 1] if template.per_exposure else {}
            light = template.light_adu_per_s[expno - 1] if template.light_adu_per_s else 0.0
            exposures.append(
                Exposure(len(exposures), template, start, tpl_start, expno, exptime, cards, light)
            )
            when = start + dt.timedelta(seconds=exptime + template.overhead_s)
        if night_of(when, SITE_TIMEZONE) != night:
            raise ConfigError(f"calibrations of {night} run past local noon ({when:%H:%M} UT)")
        when += dt.timedelta(seconds=gap_s)
    return exposures


def primary_cards(instrument: Instrument, exposure: Exposure) -> fits.Header:
    """ESO's standard cards of a raw file (no structural ones): identification, time,
    OBS/TPL/DPR; OBJECT is the DPR type, as ESO writes it for calibrations."""
    tpl = exposure.template
    end = exposure.start + dt.timedelta(seconds=exposure.exptime_s)
    h = fits.Header()
    h["ORIGIN"] = (ORIGIN, "European Southern Observatory")
    h["DATE"] = (iso_millis(end + dt.timedelta(seconds=9)), "Date the file was written")
    h["TELESCOP"] = (instrument.telescope, "ESO Telescope Name")
    h["INSTRUME"] = (instrument.name, "Instrument used.")
    h["OBJECT"] = (tpl.dpr[1], "Original target.")
    h["EXPTIME"] = (exposure.exptime_s, "Integration time")
    h["MJD-OBS"] = (round(exposure.mjd_obs, 8), "Obs start")
    h["DATE-OBS"] = (exposure.date_obs, "Observing date")
    h["UTC"] = (round(exposure.mjd_obs % 1 * 86400, 3), "[s] UTC at start")
    h["PI-COI"] = ("UNKNOWN", "PI-COI name.")
    h["OBSERVER"] = ("UNKNOWN", "Name of observer.")
    h["ARCFILE"] = (exposure.arcfile(instrument), "Archive File Name")
    tpl_start = exposure.tpl_start
    eso_cards(
        h,
        {
            "OBS NAME": ("Calibration", "OB name"),
            "OBS PROG ID": ("60.A-9051(A)", "ESO program identification"),
            "OBS START": (tpl_start, "OB start time"),
            "OBS TPLNO": (1, "Template number within OB"),
            "TPL ID": (tpl.tpl_id, "Template signature ID"),
            "TPL NAME": (tpl.tpl_name, "Template name"),
            "TPL START": (tpl_start, "TPL start time"),
            "TPL EXPNO": (exposure.tpl_expno, "Exposure number within template"),
            "TPL NEXP": (len(tpl.exptimes_s), "Number of exposures within template"),
            "DPR CATG": (tpl.dpr[0], "Observation category"),
            "DPR TYPE": (tpl.dpr[1], "Observation type"),
            "DPR TECH": (tpl.dpr[2], "Observation technique"),
        },
    )
    return h


def eso_cards(header: fits.Header, cards: Cards) -> fits.Header:
    """Append ``HIERARCH ESO <key>`` cards (value, or (value, comment))."""
    for key, value in cards.items():
        header[f"HIERARCH ESO {key}"] = value
    return header


def structure(
    bitpix: int, shape: tuple[int, ...], *, primary: bool, extend: bool = False
) -> fits.Header:
    """The structural cards of an HDU holding an image of ``shape`` (numpy order) or
    none; 16-bit data get BZERO/BSCALE as floating-point cards."""
    h = fits.Header()
    if primary:
        h["SIMPLE"] = (True, "Standard FITS")
    else:
        h["XTENSION"] = ("IMAGE", "IMAGE extension")
    h["BITPIX"] = (bitpix, "# of bits per pix value")
    h["NAXIS"] = (len(shape), "# of axes in frame")
    for axis, length in enumerate(reversed(shape), start=1):
        h[f"NAXIS{axis}"] = (length, f"# pixels/axis {axis}")
    if primary:
        h["EXTEND"] = (extend or not shape, "FITS Extension may be present")
    else:
        h["PCOUNT"] = (0, "required keyword; must = 0")
        h["GCOUNT"] = (1, "required keyword; must = 1")
    if bitpix == 16 and shape:
        h["BSCALE"] = (1.0, "pixel=FITS*BSCALE+BZERO")
        h["BZERO"] = (32768.0, "pixel=FITS*BSCALE+BZERO")
    return h


def encode(data: np.ndarray, bitpix: int) -> bytes:
    """Pixels (ADU) as FITS bytes: rounded, clipped unsigned 16-bit stored with
    BZERO = 32768, or big-endian float32."""
    if bitpix == 16:
        stored = np.clip(np.rint(data), 0, 65535).astype(np.int32) - 32768
        return stored.astype(">i2").tobytes()
    return np.asarray(data, dtype=">f4").tobytes()


def _padded(raw: bytes, fill: bytes) -> bytes:
    return raw + fill * (-len(raw) % _BLOCK)


def write_fits(path: Path, hdus: Iterable[tuple[fits.Header, np.ndarray | None]]) -> int:
    """Write HDUs (header with structural cards first, pixels or None) to ``path``
    atomically: a temporary name in its folder, renamed when complete. ``hdus`` may be
    a generator, so that one HDU's pixels at a time are in memory. Returns the size in
    bytes."""
    size = 0
    with atomic_path(path, durable=False) as tmp, open(tmp, "wb") as handle:
        for header, data in hdus:
            chunk = header.tostring(padding=True).encode("ascii")
            handle.write(chunk)
            size += len(chunk)
            if data is not None:
                chunk = _padded(encode(data, int(header["BITPIX"])), b"\0")
                handle.write(chunk)
                size += len(chunk)
    return size


@dataclass(frozen=True)
class Output:
    """The truth of one detector output (ADU unless named otherwise)."""

    name: str
    bias_adu: float
    read_noise_adu: float
    gain_e_per_adu: float
    dark_adu_per_s: float
    hot_pixel_adu_per_s: float
    hot_pixels: tuple[tuple[int, int], ...] = ()  # 0-based (x, y) in the raw image

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dark_adu_per_h"] = self.dark_adu_per_s * 3600.0
        out["hot_pixels_count"] = len(self.hot_pixels)
        out["hot_pixels"] = [list(p) for p in self.hot_pixels]
        out["read_noise_e"] = self.read_noise_adu * self.gain_e_per_adu
        return out


@dataclass(frozen=True)
class CcdLayout:
    """One CCD read through one output: its image (NAXIS2, NAXIS1), the prescan and
    overscan columns on either side of the exposed ones, its chip and readout names."""

    shape: tuple[int, int]
    prescan_x: int
    overscan_x: int
    chip_id: str
    chip_name: str
    read_clock: str
    read_speed: str

    @property
    def exposed(self) -> tuple[slice, slice]:
        """(rows, columns) of the exposed pixels."""
        return (slice(None), slice(self.prescan_x, self.shape[1] - self.overscan_x))


def ccd_cards(ccd: CcdLayout, output: Output, exptime_s: float) -> Cards:
    """The DET cards of an ESO FIERA CCD readout (one chip, one output), as a real ESO
    header of an e2v CCD44-82 (X-shooter UVB, shared/realdata) writes them."""
    ny, nx = ccd.shape
    exposed_nx = nx - ccd.prescan_x - ccd.overscan_x
    return {
        "DET BITS": (16, "Bits per pixel readout"),
        "DET CHIPS": (1, "# of chips in detector array"),
        "DET OUTPUTS": (1, "# of outputs"),
        "DET CHIP1 ID": (ccd.chip_id, "Detector chip identification"),
        "DET CHIP1 NAME": (ccd.chip_name, "Detector chip name"),
        "DET CHIP1 NX": (exposed_nx, "# of pixels along X"),
        "DET CHIP1 NY": (ny, "# of pixels along Y"),
        "DET CHIP1 PSZX": (15.0, "Size of pixel in X"),
        "DET CHIP1 PSZY": (15.0, "Size of pixel in Y"),
        "DET OUT1 ID": ("L", "Output ID as from manufacturer"),
        "DET OUT1 NAME": ("L", "Description of output"),
        "DET OUT1 CHIP": (1, "Chip to which the output belongs"),
        "DET OUT1 X": (1, "X location of output"),
        "DET OUT1 Y": (1, "Y location of output"),
        "DET OUT1 NX": (exposed_nx, "valid pixels along X"),
        "DET OUT1 NY": (ny, "valid pixels along Y"),
        "DET OUT1 PRSCX": (ccd.prescan_x, "Prescan region in X"),
        "DET OUT1 PRSCY": (0, "Prescan region in Y"),
        "DET OUT1 OVSCX": (ccd.overscan_x, "Overscan region in X"),
        "DET OUT1 OVSCY": (0, "Overscan region in Y"),
        "DET OUT1 CONAD": (output.gain_e_per_adu, "Conversion from ADUs to electrons"),
        "DET OUT1 GAIN": (round(1 / output.gain_e_per_adu, 4), "Conversion from electrons to ADU"),
        "DET OUT1 RON": (
            round(output.read_noise_adu * output.gain_e_per_adu, 2),
            "Readout noise per output (e-)",
        ),
        "DET READ CLOCK": (ccd.read_clock, "Readout clock pattern used"),
        "DET READ MODE": ("normal", "Readout method"),
        "DET READ SPEED": (ccd.read_speed, "Readout speed"),
        "DET WIN1 ST": (True, "If T, window enabled"),
        "DET WIN1 STRX": (1, "Lower left pixel in X"),
        "DET WIN1 STRY": (1, "Lower left pixel in Y"),
        "DET WIN1 NX": (nx, "# of pixels along X"),
        "DET WIN1 NY": (ny, "# of pixels along Y"),
        "DET WIN1 BINX": (1, "Binning factor along X"),
        "DET WIN1 BINY": (1, "Binning factor along Y"),
        "DET WIN1 UIT1": (exptime_s, "user defined subintegration time"),
        "DET WIN1 DIT1": (exptime_s, "actual subintegration time"),
        "DET SHUT TYPE": ("Slit", "type of shutter"),
    }


def ccd_geometry_truth(ccd: CcdLayout) -> dict[str, Any]:
    """The CCD's layout as truth.json records it."""
    ny, nx = ccd.shape
    return {
        "naxis1": nx,
        "naxis2": ny,
        "prescan_x": ccd.prescan_x,
        "overscan_x": ccd.overscan_x,
        "exposed_columns_0based": [ccd.prescan_x, nx - ccd.overscan_x - 1],
    }


def hot_pixel_positions(
    rng: np.random.Generator, count: int, x_range: tuple[int, int], y_range: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
    """``count`` distinct pixels (x, y) drawn in [x0, x1) x [y0, y1), sorted."""
    nx, ny = x_range[1] - x_range[0], y_range[1] - y_range[0]
    flat = rng.choice(nx * ny, size=count, replace=False)
    return tuple(sorted((int(x_range[0] + f % nx), int(y_range[0] + f // nx)) for f in flat))


def read_out(
    rng: np.random.Generator,
    shape: tuple[int, int],
    output: Output,
    *,
    exposed: tuple[slice, slice] | None,
    seconds: float,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """One CCD readout of ``shape`` (float32 ADU): the bias level and Gaussian read
    noise everywhere; in the ``exposed`` (rows, columns; None: everywhere) the dark
    current over ``seconds`` and the hot pixels, with Poisson noise in electrons
    (``gain_e_per_adu``). ``origin`` (row, column) is where the readout lies in the
    raw image, whose coordinates the hot pixels are given in."""
    frame = rng.standard_normal(shape, dtype=np.float32)
    frame *= np.float32(output.read_noise_adu)
    frame += np.float32(output.bias_adu)
    region = frame[exposed or (slice(None), slice(None))]
    if output.dark_adu_per_s * seconds > 0:
        electrons = output.dark_adu_per_s * seconds * output.gain_e_per_adu
        region += (rng.poisson(electrons, region.shape) / output.gain_e_per_adu).astype(np.float32)
    if output.hot_pixels and seconds > 0:
        xs, ys = np.array(output.hot_pixels).T
        mean_e = output.hot_pixel_adu_per_s * seconds * output.gain_e_per_adu
        hot = rng.poisson(mean_e, size=len(xs)) / output.gain_e_per_adu
        frame[ys - origin[0], xs - origin[1]] += hot.astype(np.float32)
    return frame


def ir_read_out(
    rng: np.random.Generator,
    shape: tuple[int, int],
    output: Output,
    *,
    dit_s: float,
    ndit: int,
    light_adu_per_s: float | np.ndarray = 0.0,
) -> np.ndarray:
    """One infrared raw (float32 ADU): the average of ``ndit`` double-correlated reads
    of ``dit_s`` each, as ESO's IR controllers store it. Per read: the offset
    (``bias_adu``), dark current, hot pixels and light over the DIT with Poisson noise
    in electrons, and Gaussian read noise ``read_noise_adu``; averaging ``ndit`` reads
    divides both noises by sqrt(ndit)."""
    mean_adu = (output.dark_adu_per_s + np.asarray(light_adu_per_s, dtype=np.float64)) * dit_s
    electrons = np.broadcast_to(mean_adu * output.gain_e_per_adu * ndit, shape)
    # The sum of ndit Poisson reads is Poisson; the raw is their mean.
    frame = (rng.poisson(electrons) / (output.gain_e_per_adu * ndit)).astype(np.float32)
    noise = rng.standard_normal(shape, dtype=np.float32)
    frame += noise * np.float32(output.read_noise_adu / np.sqrt(ndit))
    frame += np.float32(output.bias_adu)
    if output.hot_pixels:
        xs, ys = np.array(output.hot_pixels).T
        mean_e = output.hot_pixel_adu_per_s * dit_s * output.gain_e_per_adu * ndit
        hot = rng.poisson(mean_e, size=len(xs)) / (output.gain_e_per_adu * ndit)
        frame[ys, xs] += hot.astype(np.float32)
    return frame


#: The HDUs of one raw file, in order: each header (structural cards first) and its
#: pixels or None (a list, or a generator that makes each HDU when it is written).
Hdus = Iterable[tuple[fits.Header, np.ndarray | None]]
Render = Callable[[Exposure, np.random.Generator], Hdus]


def stream(seed: int, instrument: Instrument, *key: int) -> np.random.Generator:
    """The random generator of one (seed, instrument, key...) stream."""
    return np.random.default_rng([seed, instrument.code, *key])


def write_night(
    instrument: Instrument,
    night: dt.date,
    out_dir: Path,
    *,
    seed: int,
    scale: str,
    exposures: Sequence[Exposure],
    render: Render,
    outputs: Sequence[Output],
    extra_truth: Mapping[str, Any],
) -> SimulationResult:
    """Write every exposure (``render`` makes its HDUs) and ``truth.json``.

    Raises
    ------
    ConfigError
        ``out_dir`` holds another simulation's truth (other instrument, night, seed
        or scale).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity = {
        "instrument": instrument.name,
        "night": night.isoformat(),
        "seed": seed,
        "scale": scale,
    }
    truth_path = out_dir / TRUTH_FILE
    if truth_path.exists():
        old = json.loads(truth_path.read_text())
        if {k: old.get(k) for k in identity} != identity:
            raise ConfigError(
                f"{out_dir} holds another simulation ({old.get('instrument')} "
                f"{old.get('night')} seed {old.get('seed')} {old.get('scale')}): "
                "choose an empty folder"
            )
    files = []
    size = 0
    for exposure in exposures:
        path = out_dir / exposure.arcfile(instrument)
        size += write_fits(path, render(exposure, stream(seed, instrument, 1, exposure.index)))
        files.append(path)
    truth = {
        **identity,
        "qclib_version": __version__,
        "simulator": f"qclib.simulate.eso ({instrument.pipeline} pipeline)",
        "conventions": {
            "units": "ADU of the raw file unless a name says otherwise",
            "gain_e_per_adu": "electrons per ADU (ESO's CONAD)",
            "hot_pixels": "0-based (x, y) in the raw image; rate in hot_pixel_adu_per_s",
            "do_catg": "the category ESO's OCA rules of the pipeline assign",
            "ccd_rounding": "16-bit raws hold whole ADU: their noise is "
            "sqrt(read_noise_adu**2 + 1/12)",
            "infrared_raws": "float32, the average of NDIT reads: read_noise_adu is per read",
        },
        "outputs": {o.name: o.as_dict() for o in outputs},
        **extra_truth,
        "files": [
            {
                "arcfile": e.arcfile(instrument),
                "do_catg": e.template.do_catg,
                "kind": e.template.kind,
                "dpr": list(e.template.dpr),
                "tpl_id": e.template.tpl_id,
                "tpl_start": e.tpl_start,
                "tpl_expno": e.tpl_expno,
                "mjd_obs": e.mjd_obs,
                "exptime_s": e.exptime_s,
                **({"cards": {k: _value(v) for k, v in e.cards.items()}} if e.cards else {}),
                **({"light_adu_per_s": e.light_adu_per_s} if e.light_adu_per_s else {}),
            }
            for e in exposures
        ],
    }
    write_text_atomic(truth_path, json.dumps(truth, indent=1))
    return SimulationResult(out_dir=out_dir, files=files, truth_path=truth_path, bytes_written=size)


def _value(card: CardValue | tuple[CardValue, str]) -> CardValue:
    """A card's value without its comment."""
    return card[0] if isinstance(card, tuple) else card
