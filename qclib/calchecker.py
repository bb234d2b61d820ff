"""calChecker: are the calibrations that recent science needs present and fresh? Pure.

For every science setup (an AB of a science action, keyed by the keywords its
calibrations are matched on) and every calibration it needs:
  OK    chosen at quality level 0: within the calibration plan's window;
  NOK   only found at a higher level (outdated, fallback window);
  MISS  nothing within any window (or only a product that cannot be made).
For NOK and MISS it says what to take: which raw frames, how many, in which setup.
Windows under a day work: they are compared in days, as floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from qclib.associate import AssociationBlock
from qclib.config.instrument import AssociationConfig
from qclib.oca.rules import RuleSet, keywords_in, required_values

Verdict = Literal["OK", "NOK", "MISS"]
_ORDER = {"OK": 0, "NOK": 1, "MISS": 2}


@dataclass(frozen=True)
class CalibrationCheck:
    tag: str
    category: str | None
    verdict: Verdict
    level: int | None
    delta_days: float | None
    chosen: str | None
    action_required: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SetupCheck:
    """One science setup's calibration status."""

    instrument: str
    action: str
    setup: dict[str, Any]
    nights: tuple[str, ...]
    latest_ab: str
    verdict: Verdict
    calibrations: tuple[CalibrationCheck, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument,
            "action": self.action,
            "setup": self.setup,
            "nights": list(self.nights),
            "latest_ab": self.latest_ab,
            "verdict": self.verdict,
            "calibrations": [c.as_dict() for c in self.calibrations],
            "actions_required": [c.action_required for c in self.calibrations if c.action_required],
        }


def _raw_recipe_for(rules: RuleSet, config: AssociationConfig, category: str) -> tuple[str, int]:
    """Which raw category, and how many frames, make a product category."""
    for action in rules.actions:
        if any(p.pro_catg == category for p in action.products):
            for org in rules.organisations:
                if org.action == action.name:
                    raw = sorted(required_values(org.condition, "DO.CATG"))
                    if raw:
                        return raw[0], config.min_frames.get(action.name, 1)
    return category, 1


def check_calibrations(
    rules: RuleSet,
    config: AssociationConfig,
    blocks: Sequence[AssociationBlock],
) -> list[SetupCheck]:
    """Check every science setup found in ``blocks``."""
    science = [b for b in blocks if b.action in config.science_actions]
    by_setup: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[AssociationBlock]] = {}
    for block in science:
        key = tuple(sorted((k, str(v)) for k, v in block.setup.items()))
        by_setup.setdefault((block.instrument, block.action, key), []).append(block)
    out = []
    for (instrument, action_name, _key), group in sorted(by_setup.items()):
        latest = max(group, key=lambda b: b.mid_mjd)
        action = rules.action(action_name)
        checks = []
        for tag in latest.tags:
            if tag.min_ret == 0:
                continue
            chosen = tag.chosen[0] if tag.chosen else None
            if chosen is None:
                verdict: Verdict = "MISS"
            elif chosen.level == 0:
                verdict = "OK"
            else:
                verdict = "NOK"
            todo = None
            if verdict != "OK" and tag.category:
                raw, count = _raw_recipe_for(rules, config, tag.category)
                where = {}
                if action is not None:
                    assoc = next((a for a in action.associations if a.tag == tag.tag), None)
                    if assoc is not None:
                        names = {k.name for k in keywords_in(assoc.condition) if k.of_input}
                        where = {n: latest.setup.get(n) for n in sorted(names)}
                setup_text = ", ".join(f"{k}={v}" for k, v in where.items()) or "any setup"
                if verdict == "MISS" or chosen is None:
                    why = "missing"
                else:
                    delta = abs(chosen.delta_days)
                    why = f"outdated: level {chosen.level}, |Δt| = {delta:.2f} d"
                todo = f"take {count} x {raw} ({setup_text}) to make {tag.category}: {why}"
            checks.append(
                CalibrationCheck(
                    tag=tag.tag,
                    category=tag.category,
                    verdict=verdict,
                    level=chosen.level if chosen else None,
                    delta_days=chosen.delta_days if chosen else None,
                    chosen=chosen.ref if chosen else None,
                    action_required=todo,
                )
            )
        verdict_all: Verdict = max(
            (c.verdict for c in checks), key=_ORDER.__getitem__, default="OK"
        )
        out.append(
            SetupCheck(
                instrument=instrument,
                action=action_name,
                setup=dict(latest.setup),
                nights=tuple(sorted({b.night for b in group})),
                latest_ab=latest.id,
                verdict=verdict_all,
                calibrations=tuple(checks),
            )
        )
    return out
