"""Simulate a history of consecutive nights: the same detectors, slowly changing.

Every night is an ordinary ``simulate_night`` folder, ``OUT/<YYYY-MM-DD>/``. All
nights share one static seed (the history's seed), so each detector keeps its
gain, read noise, bias level, defects and PRNU, and the sky keeps its stars; each
night has its own seed (from the history's seed and the date), so noise, particle
hits, seeing and timing differ. On top, the instrument's ``[simulator.history]``
changes some detectors on purpose, through ``simulate_night``'s ``degrade``:

* a **creep**: one property moves from the detector's drawn value on the first
  night to its configured end value on the last (``start + (end - start) * t**power``,
  ``t`` from 0 to 1), whatever the number of nights;
* an **intervention**: on a recorded night (by default two thirds of the way) some
  properties step (added to or multiplied), and stay so.

``OUT/history.json`` lists the drifts, the interventions (to record as quality
events) and, per night and detector, the true values of every drifting property.
No QC value is computed here: they come from processing the frames (``qc run``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qclib import __version__
from qclib.atomicfile import write_text_atomic
from qclib.config.instrument import InstrumentConfig
from qclib.config.simulator import HistoryIntervention
from qclib.errors import ConfigError
from qclib.instruments import load_instrument
from qclib.simulate.night import SimulationResult, simulate_night
from qclib.simulate.truth import DetectorTruth, apply_overrides, draw_detector_truth
from qclib.simulate.workers import each_as_done, simulator_pool

HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class NightState:
    """The detectors as they are on one night of a history."""

    night: dt.date
    seed: int
    degrade: dict[str, dict[str, float]]  # truth values replaced (changed ones only)
    values: dict[str, dict[str, float]]  # every drifting property of every drifting detector


@dataclass(frozen=True)
class Intervention:
    """A recorded intervention of a history: what to log as a quality event."""

    date: dt.date
    instrument: str
    text: str
    detectors: list[str]
    change: dict[str, dict[str, float]]  # property -> {"add": x} or {"multiply": f}

    def as_dict(self) -> dict[str, object]:
        return {
            "date": self.date.isoformat(),
            "instrument": self.instrument,
            "text": self.text,
            "detectors": list(self.detectors),
            "change": self.change,
        }


@dataclass(frozen=True)
class HistoryPlan:
    """Night by night, which detector truth values a history changes, and why."""

    instrument: str
    nights: list[NightState]
    creep: list[dict[str, object]]
    interventions: list[Intervention]


@dataclass(frozen=True)
class HistoryResult:
    """What a history simulation wrote."""

    out_dir: Path
    history_path: Path
    nights: list[SimulationResult] = field(default_factory=list)

    @property
    def bytes_written(self) -> int:
        return sum(n.bytes_written for n in self.nights)


def creep_value(start: float, end: float, position: int, nights: int, power: float) -> float:
    """A creeping property on night ``position`` (0-based) of ``nights``.

    Exactly ``start`` on the first night and ``end`` on the last; monotonic between.

    >>> [round(creep_value(5.0, 10.0, i, 5, 2.0), 4) for i in range(5)]
    [5.0, 5.3125, 6.25, 7.8125, 10.0]
    """
    if position >= nights - 1:
        return end
    t = position / (nights - 1)
    return start + (end - start) * t**power


def intervention_position(at_fraction: float, nights: int) -> int:
    """The 0-based night of an intervention, never the first (there must be a before).

    >>> [intervention_position(2 / 3, n) for n in (2, 3, 8, 30)]
    [1, 1, 5, 19]
    """
    return min(nights - 1, max(1, round(at_fraction * (nights - 1))))


def night_seed(seed: int, night: dt.date) -> int:
    """The seed of one night of a history: its plan, noise and particle hits."""
    return int(np.random.SeedSequence([seed, 9, night.toordinal()]).generate_state(1)[0])


def _change(step: HistoryIntervention) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {name: {"add": v} for name, v in step.add.items()}
    out.update({name: {"multiply": f} for name, f in step.multiply.items()})
    return dict(sorted(out.items()))


def _apply(value: float, change: Mapping[str, float]) -> float:
    if "add" in change:
        return value + change["add"]
    return value * change["multiply"]


def plan_history(
    instrument: InstrumentConfig,
    first_night: dt.date,
    nights: int,
    *,
    seed: int,
    scale: str,
) -> HistoryPlan:
    """Each night's detector changes under the instrument's ``[simulator.history]``.

    Only detectors present at ``scale`` are changed; drifts of absent ones are left out.

    Raises
    ------
    ConfigError
        Fewer than 2 nights, an unknown scale, or the profile names an unknown detector.
    """
    if nights < 2:
        raise ConfigError(
            f"a history needs at least 2 nights (got {nights}); "
            "one night is `qc simulate` without --nights"
        )
    if scale not in instrument.geometry:
        raise ConfigError(
            f"{instrument.name} has no '{scale}' scale: choose one of {sorted(instrument.geometry)}"
        )
    profile = instrument.simulator.history
    known = [d.extname for d in instrument.detectors]
    named = [c.detector for c in profile.creep] + [
        d for step in profile.interventions for d in step.detectors
    ]
    unknown = sorted(set(named) - set(known))
    if unknown:
        raise ConfigError(
            f"{instrument.name} [simulator.history] names unknown detector(s) {unknown}: "
            f"known are {', '.join(known)}"
        )
    geometry = instrument.geometry[scale]  # type: ignore[index]
    present = [d.extname for d in instrument.detectors_at(scale)]
    # Drifts start from the detectors as the profile's overrides make them.
    drawn = [draw_detector_truth(instrument, geometry, known.index(name), seed) for name in present]
    base: dict[str, DetectorTruth] = dict(
        zip(present, apply_overrides(instrument, drawn), strict=True)
    )
    creeps = [c for c in profile.creep if c.detector in base]
    steps = sorted(
        (
            (intervention_position(step.at_fraction, nights), order, step)
            for order, step in enumerate(profile.interventions)
        ),
        key=lambda s: (s[0], s[1]),
    )
    interventions = [
        Intervention(
            date=first_night + dt.timedelta(days=position),
            instrument=instrument.name,
            text=step.text,
            detectors=[d for d in present if not step.detectors or d in step.detectors],
            change=_change(step),
        )
        for position, _, step in steps
    ]
    # Every (detector, property) that ever drifts, so each night lists them all.
    drifting: dict[str, set[str]] = {}
    for creep in creeps:
        drifting.setdefault(creep.detector, set()).add(creep.field)
    for intervention in interventions:
        for name in intervention.detectors:
            drifting.setdefault(name, set()).update(intervention.change)

    states = []
    for position in range(nights):
        night = first_night + dt.timedelta(days=position)
        values = {
            name: {prop: float(getattr(base[name], prop)) for prop in sorted(drifting[name])}
            for name in present
            if name in drifting
        }
        for creep in creeps:
            start = float(getattr(base[creep.detector], creep.field))
            values[creep.detector][creep.field] = creep_value(
                start, creep.end, position, nights, creep.power
            )
        for (at, _, _), intervention in zip(steps, interventions, strict=True):
            if position >= at:
                for name in intervention.detectors:
                    for prop, change in intervention.change.items():
                        values[name][prop] = _apply(values[name][prop], change)
        degrade: dict[str, dict[str, float]] = {}
        for name, props in values.items():
            changed = {p: v for p, v in props.items() if v != getattr(base[name], p)}
            if changed:
                degrade[name] = changed
        for name, props in values.items():
            if "read_noise_e" in props or "gain_e_per_adu" in props:
                gain = props.get("gain_e_per_adu", base[name].gain_e_per_adu)
                ron = props.get("read_noise_e", base[name].read_noise_e)
                props["read_noise_adu"] = ron / gain  # what QC.RON measures
        states.append(
            NightState(night=night, seed=night_seed(seed, night), degrade=degrade, values=values)
        )
    return HistoryPlan(
        instrument=instrument.name,
        nights=states,
        creep=[
            {
                "detector": c.detector,
                "field": c.field,
                "start": float(getattr(base[c.detector], c.field)),
                "end": c.end,
                "power": c.power,
                "text": c.text,
            }
            for c in creeps
        ],
        interventions=interventions,
    )


def _check_history_dir(out_dir: Path, identity: Mapping[str, object]) -> None:
    path = out_dir / HISTORY_FILE
    if not path.exists():
        return
    try:
        existing = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        existing = {}
    if any(existing.get(k) != v for k, v in identity.items()):
        raise ConfigError(
            f"{out_dir} already holds a different history ({path}); "
            "choose an empty folder for each history"
        )


def _simulate_night(call: dict[str, object]) -> SimulationResult:
    """One night of a history (a task for the pool)."""
    return simulate_night(**call)  # type: ignore[arg-type]


def simulate_history(
    instrument: str,
    first_night: dt.date,
    nights: int,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    scale: str = "test",
    workers: int | None = None,
    progress: bool = True,
    only: frozenset[str] | set[str] | None = None,
    science_every: int = 1,
    pool: concurrent.futures.Executor | None = None,
    on_night: Callable[[SimulationResult], None] | None = None,
) -> HistoryResult:
    """Simulate ``nights`` consecutive nights of the same, slowly changing detectors.

    Parameters
    ----------
    instrument
        An instrument with a configuration folder (``OMEGACAM``, ``HAWKI``); its
        ``[simulator.history]`` says what drifts.
    first_night
        The ESO night (date of the evening) of the first night.
    nights
        How many consecutive nights, at least 2.
    out_dir
        Folder for ``<YYYY-MM-DD>/`` per night (what ``simulate_night`` writes) and
        ``history.json``. Running again with the same arguments rewrites the same bytes.
    seed
        Same seed, same files, byte for byte. The detectors and the sky come from it;
        each night's own seed from it and the date.
    scale
        ``test`` (few, small detectors) or ``full``.
    workers
        Nights simulated in parallel, one process each; default: one per core.
        ``1`` runs in this process. The bytes do not depend on it.
    progress
        Show a progress bar over the nights.
    only
        Exposure kinds to write every night (``{"bias", "dark"}``; default all).
    science_every
        Write science exposures on every n-th night only, counted back from the
        last, which always has them (the calibration checker looks at its science
        setups); 1: every night. Science is about a third of a night's cost. The
        other frames of a night without science are those of the full night.
    pool
        Where to simulate the nights instead (``workers`` is then not used): a
        ``simulator_pool`` shared with other simulations. The bytes do not depend on it.
    on_night
        Called with each night's result as soon as the night is written (in the order
        they finish; ``history.json`` comes at the end): what arrives can be used
        while later nights are made.

    Returns
    -------
    HistoryResult
        The folder, ``history.json`` and each night's ``SimulationResult``.

    Raises
    ------
    ConfigError
        Unknown instrument or scale, fewer than 2 nights, a ``[simulator.history]``
        naming unknown detectors, ``science_every`` below 1 or leaving nights
        empty, or ``out_dir`` holding another simulation.
    """
    config = load_instrument(instrument)
    history = plan_history(config, first_night, nights, seed=seed, scale=scale)
    if science_every < 1:
        raise ConfigError(f"science_every must be 1 or more (got {science_every})")
    kinds = frozenset(only) if only else frozenset(p.kind for p in config.simulator.plan)
    without_science = kinds - {"science"}
    if science_every > 1 and not without_science:
        raise ConfigError(
            "only science exposures asked for: science_every would leave nights empty"
        )
    out_dir = Path(out_dir)
    identity = {
        "instrument": config.name,
        "first_night": first_night.isoformat(),
        "n_nights": nights,
        "seed": seed,
        "scale": scale,
        "only": sorted(only) if only else None,
        "science_every": science_every,
    }
    _check_history_dir(out_dir, identity)
    with_science = [(nights - 1 - i) % science_every == 0 for i in range(nights)]
    out_dir.mkdir(parents=True, exist_ok=True)
    calls = [
        {
            "instrument_name": config.name,
            "night": state.night,
            "out_dir": out_dir / state.night.isoformat(),
            "seed": state.seed,
            "static_seed": seed,
            "scale": scale,
            "workers": 1,
            "progress": False,
            "only": only if science else without_science,
            "degrade": state.degrade or None,
        }
        for state, science in zip(history.nights, with_science, strict=True)
    ]
    workers = min(workers or os.cpu_count() or 1, nights)
    results: dict[dt.date, SimulationResult] = {}
    bar = tqdm(
        total=nights,
        desc=f"simulate {config.name} {first_night} + {nights - 1} nights",
        unit="night",
        disable=not progress,
    )
    try:
        with contextlib.ExitStack() as stack:
            if pool is None and workers == 1:
                done = ((call, _simulate_night(call)) for call in calls)
            else:
                on = pool or stack.enter_context(simulator_pool(workers))
                # Closed on the way out, not when the traceback goes: should on_night
                # raise, the history's queued nights leave a shared pool at once.
                done = stack.enter_context(
                    contextlib.closing(each_as_done(on, _simulate_night, calls))
                )
            for call, result in done:
                results[call["night"]] = result  # type: ignore[index]
                bar.update()
                if on_night is not None:
                    on_night(result)
    finally:
        bar.close()

    document = {
        **identity,
        "qclib_version": __version__,
        "creep": history.creep,
        "interventions": [i.as_dict() for i in history.interventions],
        "nights": [
            {
                "night": state.night.isoformat(),
                "dir": state.night.isoformat(),
                "seed": state.seed,
                "science": science and "science" in kinds,
                "detectors": state.values,
            }
            for state, science in zip(history.nights, with_science, strict=True)
        ],
    }
    history_path = out_dir / HISTORY_FILE
    write_text_atomic(history_path, json.dumps(document, indent=1))
    return HistoryResult(
        out_dir=out_dir,
        history_path=history_path,
        nights=[results[state.night] for state in history.nights],
    )
