"""Simulated calibration nights of instruments that ESO's own pipelines reduce.

Each module writes the raw frames of one calibration morning of its instrument, which
ESO's recipes (run through esorex) accept and ESO's OCA rules classify, with
``truth.json`` beside them: the detector's true bias level, read noise, gain, dark
current and hot pixels, and each file's intended DO.CATG. GIRAFFE and UVES (blue arm):
biases and darks; NACO: darks and lamp flats; VISIR: darks and flats; MUSE: biases and
darks of its 24 IFUs (at the test scale, smaller outputs: ``muse``). ``common`` holds
what they share.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from qclib.errors import ConfigError
from qclib.simulate.eso import common, giraffe, muse, naco, uves, visir
from qclib.simulate.night import SimulationResult

_SIMULATORS = {
    giraffe.INSTRUMENT.name: giraffe.simulate,
    uves.INSTRUMENT.name: uves.simulate,
    naco.INSTRUMENT.name: naco.simulate,
    visir.INSTRUMENT.name: visir.simulate,
    muse.INSTRUMENT.name: muse.simulate,
}
#: INSTRUME values of the instruments simulated here.
SIMULATED_ESO_INSTRUMENTS: tuple[str, ...] = tuple(_SIMULATORS)
#: Their ARCFILE prefixes (GIRAF, NACO) name them too.
_ALIASES = {
    m.INSTRUMENT.arcfile_prefix: m.INSTRUMENT.name for m in (giraffe, uves, naco, visir, muse)
}


def simulate_eso_night(
    instrument: str,
    night: dt.date,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    scale: str = "full",
) -> SimulationResult:
    """Write one calibration night of ``instrument`` (an INSTRUME value, e.g.
    ``GIRAFFE``, ``NAOS+CONICA``, or its ARCFILE prefix, ``NACO``) into ``out_dir``: the
    raw files (named by ARCFILE) and ``truth.json``.

    Same seed, same files, byte for byte. ``scale="test"`` writes fewer frames of the
    real geometry.

    Raises
    ------
    ConfigError
        Unknown instrument or scale, or ``out_dir`` holds another simulation.
    """
    name = instrument.upper()
    simulator = _SIMULATORS.get(_ALIASES.get(name, name))
    if simulator is None:
        raise ConfigError(
            f"no ESO calibration-night simulator for {instrument!r}: choose one of "
            f"{', '.join(SIMULATED_ESO_INSTRUMENTS)}"
        )
    if scale not in common.SCALES:
        raise ConfigError(f"unknown scale {scale!r}: choose one of {', '.join(common.SCALES)}")
    return simulator(night, Path(out_dir), seed=seed, scale=scale)


__all__ = ["SIMULATED_ESO_INSTRUMENTS", "simulate_eso_night"]
