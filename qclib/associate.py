"""Association: classified frames + calibrations -> association blocks (ABs). Pure.

1. Organisation rules group raw frames into ABs (``select execute(ACTION) ... group by``).
2. Each AB's products are announced as *virtual calibrations*, so the whole cascade
   (bias -> flats -> standard -> science) is planned before anything runs.
3. For every ``select file as TAG`` of the AB's action, candidates (real products, the
   virtual ones, or raw frames for ``from inputFiles``) are filtered by the rule's
   condition, placed in a quality level by |Δt| between mid-exposure times and the
   instrument's validity windows, and ranked: lower level, then the nearer night
   (whole days of |Δt|), then certified before candidate, then closer in time.
   Rejected products are never used. A setup keyword the rule matches between the two
   headers (``inputFile.K == K``) that is absent from both is the same setup (frames
   made without it, and the masters made from them); absent from one side only, it
   is not, and the block's reason says which side lacks it.
4. An AB is ``complete`` when its action's mandatory tags are all filled (by real or
   virtual calibrations), else ``incomplete`` with the reason. A virtual calibration
   from an incomplete AB cannot be made, so it is no candidate: actions are resolved
   in dependency order.
Every choice is logged: for each tag the chosen file, Δt, level, and the runners-up
with the reason each lost.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from qclib.config.instrument import AssociationConfig
from qclib.oca.evaluate import evaluate, failed_conditions, truthy
from qclib.oca.rules import Action, Association, RuleSet, keywords_in, required_values

Status = Literal["certified", "candidate", "virtual", "raw"]
Completeness = Literal["complete", "incomplete"]
_STATUSES: tuple[Status, ...] = ("certified", "candidate", "virtual", "raw")
_COMPLETENESS: tuple[Completeness, ...] = ("complete", "incomplete")
_L = TypeVar("_L", bound=str)
_STATUS_RANK = {"certified": 0, "candidate": 1, "virtual": 1, "raw": 1}
_RUNNERS_UP = 5


@dataclass(frozen=True)
class RawFrame:
    """A classified raw frame, as association sees it."""

    arcfile: str
    instrument: str
    night: str
    mid_mjd: float
    header: Mapping[str, Any]  # flattened keywords + classification assignments

    @property
    def do_catg(self) -> str | None:
        value = self.header.get("DO.CATG")
        return None if value is None else str(value)


@dataclass(frozen=True)
class Calibration:
    """A calibration file that exists (a product), with its QC status."""

    ref: str  # product file name (or id)
    pro_catg: str
    mid_mjd: float
    header: Mapping[str, Any]
    status: Literal["certified", "candidate", "rejected"] = "candidate"


@dataclass(frozen=True)
class Candidate:
    """Anything a ``select file`` can choose: a product, a planned product, or a raw frame."""

    ref: str
    category: str
    mid_mjd: float
    header: Mapping[str, Any]
    status: Status
    ab_id: str | None = None  # the AB that makes it (virtual)


@dataclass(frozen=True)
class Choice:
    """The file chosen for a tag: its reference, status, Δt (days) and quality level.

    ``delta_days`` is kept rounded to 1e-6 d (0.09 s), as it is stored, so that a
    choice read back from the database equals the one association made.
    """

    ref: str
    status: Status
    delta_days: float
    level: int
    ab_id: str | None = None  # the AB that makes it (a virtual calibration)

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta_days", round(self.delta_days, 6))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "status": self.status,
            "delta_days": self.delta_days,
            "level": self.level,
            "ab_id": self.ab_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        """The choice ``as_dict`` gave ``data``; ValueError on an unknown status.

        >>> c = Choice("MASTER_BIAS.fits", "certified", -0.25, 0)
        >>> Choice.from_dict(c.as_dict()) == c
        True
        """
        return cls(
            ref=data["ref"],
            status=_literal(data["status"], _STATUSES, "choice status"),
            delta_days=data["delta_days"],
            level=data["level"],
            ab_id=data["ab_id"],
        )


@dataclass(frozen=True)
class TagLog:
    """What happened for one calibration tag of an AB."""

    tag: str
    category: str | None
    min_ret: int
    max_ret: int
    chosen: tuple[Choice, ...]
    runners_up: tuple[tuple[str, str], ...]  # (ref, why it lost)
    missing_reason: str | None = None
    #: How far (days, |Δt|) from the block a candidate of this tag can be and still
    #: change this log when it appears, goes or changes status; None when unknown (a
    #: log read back from the database). Not part of the log (``as_dict``, equality).
    horizon_days: float | None = field(default=None, compare=False)

    @property
    def satisfied(self) -> bool:
        return len(self.chosen) >= self.min_ret

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "category": self.category,
            "min_ret": self.min_ret,
            "max_ret": self.max_ret,
            "chosen": [c.as_dict() for c in self.chosen],
            "runners_up": [{"ref": r, "reason": why} for r, why in self.runners_up],
            "missing_reason": self.missing_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TagLog:
        """The tag log ``as_dict`` gave ``data``."""
        return cls(
            tag=data["tag"],
            category=data["category"],
            min_ret=data["min_ret"],
            max_ret=data["max_ret"],
            chosen=tuple(Choice.from_dict(c) for c in data["chosen"]),
            runners_up=tuple((r["ref"], r["reason"]) for r in data["runners_up"]),
            missing_reason=data["missing_reason"],
        )


@dataclass(frozen=True)
class AssociationBlock:
    """One unit of processing: an action, its raw inputs, its calibrations."""

    id: str
    instrument: str
    action: str
    recipe: str | None
    night: str
    mid_mjd: float
    inputs: tuple[str, ...]
    input_category: str | None
    setup: dict[str, Any]
    products: tuple[str, ...]
    tags: tuple[TagLog, ...] = ()
    completeness: Completeness = "complete"
    reason: str | None = None
    parents: tuple[str, ...] = field(default=())

    @property
    def horizon_days(self) -> float | None:
        """How far (days) from this block a candidate that appears, goes or changes
        can change any of its tags' logs (the widest of its tags' horizons; 0 without
        tags); None when a tag's horizon is unknown."""
        horizons = [t.horizon_days for t in self.tags]
        if any(h is None for h in horizons):
            return None
        return max((h for h in horizons if h is not None), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instrument": self.instrument,
            "action": self.action,
            "recipe": self.recipe,
            "night": self.night,
            "mid_mjd": self.mid_mjd,
            "inputs": list(self.inputs),
            "input_category": self.input_category,
            "setup": self.setup,
            "products": list(self.products),
            "calibrations": [t.as_dict() for t in self.tags],
            "completeness": self.completeness,
            "reason": self.reason,
            "parents": list(self.parents),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssociationBlock:
        """The block ``as_dict`` gave ``data`` (the JSON the database stores).

        ValueError on an unknown completeness or choice status; KeyError on a
        missing field.
        """
        return cls(
            id=data["id"],
            instrument=data["instrument"],
            action=data["action"],
            recipe=data["recipe"],
            night=data["night"],
            mid_mjd=data["mid_mjd"],
            inputs=tuple(data["inputs"]),
            input_category=data["input_category"],
            setup=dict(data["setup"]),
            products=tuple(data["products"]),
            tags=tuple(TagLog.from_dict(t) for t in data["calibrations"]),
            completeness=_literal(data["completeness"], _COMPLETENESS, "completeness"),
            reason=data["reason"],
            parents=tuple(data["parents"]),
        )


def _literal(value: Any, allowed: tuple[_L, ...], what: str) -> _L:
    """``value`` as one of ``allowed``; ValueError naming ``what`` otherwise."""
    for option in allowed:
        if value == option:
            return option
    raise ValueError(f"unknown {what} {value!r}: expected one of {', '.join(allowed)}")


# ----------------------------------------------------------------- organisation
def _group_key(frame: RawFrame, keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(frame.header.get(k, "")).strip() for k in keys)


#: ESO's signals (Gasgano's rules): ``SIG.TEMPLATE == 1`` groups a template's frames
#: (those sharing TPL.START) into one block, ``SIG.FRAME == 1`` makes a block of each
#: frame; ``LF.<keyword>`` is the keyword of the last frame of the frame's template.
SIGNALS = ("SIG.TEMPLATE", "SIG.FRAME")
LAST_FRAME = "LF."


def _template(frame: RawFrame) -> str:
    """The template a frame belongs to: its TPL.START (alone without one)."""
    start = str(frame.header.get("TPL.START") or "").strip()
    return start or f"frame {frame.arcfile}"


def _last_of_templates(frames: Sequence[RawFrame]) -> dict[str, RawFrame]:
    """Each template's last frame (the latest mid-exposure), by template."""
    last: dict[str, RawFrame] = {}
    for frame in frames:
        key = _template(frame)
        if key not in last or (frame.mid_mjd, frame.arcfile) > (
            last[key].mid_mjd,
            last[key].arcfile,
        ):
            last[key] = frame
    return last


def organise(rules: RuleSet, frames: Sequence[RawFrame]) -> list[tuple[Action, list[RawFrame]]]:
    """Group raw frames into blocks per the organisation rules, in rule order (ESO's
    signals: ``SIGNALS``)."""
    out: list[tuple[Action, list[RawFrame]]] = []
    last = _last_of_templates(frames)
    for org in rules.organisations:
        action = rules.action(org.action)
        if action is None:
            continue
        names = {k.name for k in keywords_in(org.condition)}
        per_template = "SIG.TEMPLATE" in names
        per_frame = "SIG.FRAME" in names
        of_last = sorted(n for n in names if n.startswith(LAST_FRAME))
        signals = {s: 1 for s in SIGNALS if s in names}
        groups: dict[tuple[str, ...], list[RawFrame]] = {}
        for frame in frames:
            header = frame.header
            if signals or of_last:
                final = last[_template(frame)].header
                header = {
                    **header,
                    **signals,
                    **{n: final.get(n[len(LAST_FRAME) :]) for n in of_last},
                }
            if truthy(evaluate(org.condition, header)):
                key = _group_key(frame, org.group_by)
                if per_frame:
                    key = (frame.arcfile, *key)
                elif per_template:
                    key = (_template(frame), *key)
                groups.setdefault(key, []).append(frame)
        for _key, members in sorted(groups.items(), key=lambda kv: min(f.mid_mjd for f in kv[1])):
            if len(members) < org.min_files:  # `minRet = n;` before `select execute`
                continue
            out.append((action, sorted(members, key=lambda f: (f.mid_mjd, f.arcfile))))
    return out


def ab_id(first_arcfile: str, action: str) -> str:
    """Deterministic AB id: the first raw frame's ARCFILE stem and the action.

    >>> ab_id("OMEGACAM.2026-11-23T17:00:00.000.fits", "MASTER_BIAS")
    'OMEGACAM.2026-11-23T17:00:00.000_MASTER_BIAS'
    """
    stem = first_arcfile[:-5] if first_arcfile.endswith(".fits") else first_arcfile
    return f"{stem}_{action}"


def _setup_keywords(action: Action) -> list[str]:
    """The input keywords the action's calibrations are matched on (its setup)."""
    names = set()
    for assoc in action.associations:
        names |= {k.name for k in keywords_in(assoc.condition) if k.of_input}
    return sorted(names)


# ----------------------------------------------------------------- association
#: Stands for a setup keyword absent from both headers: equal to itself, to nothing else.
ABSENT = "<absent>"


def _matched_keywords(condition: Any) -> frozenset[str]:
    """Keywords a condition reads from both the candidate and the input header."""
    keywords = keywords_in(condition)
    return frozenset(
        {k.name for k in keywords if k.of_input} & {k.name for k in keywords if not k.of_input}
    )


def absent_as_equal(
    names: frozenset[str], header: Mapping[str, Any], input_header: Mapping[str, Any]
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Both headers, with ``ABSENT`` for each of ``names`` that neither holds: so a
    keyword missing on both sides matches, as the same (unrecorded) setup.

    >>> absent_as_equal(frozenset({"DET.READ.CLOCK"}), {}, {"X": 1})
    ({'DET.READ.CLOCK': '<absent>'}, {'X': 1, 'DET.READ.CLOCK': '<absent>'})
    >>> absent_as_equal(frozenset({"DET.READ.CLOCK"}), {"DET.READ.CLOCK": "fast"}, {})
    ({'DET.READ.CLOCK': 'fast'}, {})
    """
    both = {n: ABSENT for n in names if header.get(n) is None and input_header.get(n) is None}
    if not both:
        return header, input_header
    return {**header, **both}, {**input_header, **both}


def _dependency_depth(rules: RuleSet) -> dict[str, int]:
    """Actions ordered so that an action comes after those making what it selects."""
    producers: dict[str, set[str]] = {}
    for action in rules.actions:
        for product in action.products:
            if product.pro_catg:
                producers.setdefault(product.pro_catg, set()).add(action.name)
    depth: dict[str, int] = {}

    def visit(name: str, seen: frozenset[str]) -> int:
        if name in depth:
            return depth[name]
        action = rules.action(name)
        best = 0
        if action is not None:
            for assoc in action.associations:
                for category in required_values(assoc.condition, "PRO.CATG"):
                    for producer in producers.get(category, ()):
                        if producer not in seen and producer != name:
                            best = max(best, 1 + visit(producer, seen | {name}))
        depth[name] = best
        return best

    for action in rules.actions:
        visit(action.name, frozenset())
    return depth


class _CandidateIndex:
    """Candidates by category, sorted by time, for quick windowed look-up."""

    def __init__(self) -> None:
        self._by_category: dict[str, list[Candidate]] = {}
        self._times: dict[str, list[float]] = {}

    def add(self, candidate: Candidate) -> None:
        items = self._by_category.setdefault(candidate.category, [])
        times = self._times.setdefault(candidate.category, [])
        i = bisect.bisect(times, candidate.mid_mjd)
        items.insert(i, candidate)
        times.insert(i, candidate.mid_mjd)

    def near(self, categories: set[str] | None, mjd: float, days: float) -> list[Candidate]:
        keys = categories if categories else set(self._by_category)
        out: list[Candidate] = []
        for key in keys:
            times = self._times.get(key, [])
            lo = bisect.bisect_left(times, mjd - days)
            hi = bisect.bisect_right(times, mjd + days)
            out.extend(self._by_category.get(key, [])[lo:hi])
        return out


def _select(
    assoc: Association,
    ab_header: Mapping[str, Any],
    ab_mid: float,
    own_inputs: set[str],
    index: _CandidateIndex,
    config: AssociationConfig,
    rejected: Mapping[str, str],
) -> TagLog:
    category_key = "PRO.CATG" if assoc.source == "calibFiles" else "DO.CATG"
    categories = required_values(assoc.condition, category_key) or required_values(
        assoc.condition, "DO.CATG"
    )
    category = next(iter(sorted(categories)), None)
    validity = config.validity.get(category) if category else None
    widest = validity.windows_days[-1] if validity else 1.0
    ranked: list[tuple[tuple[int, int, int, float], Candidate, int]] = []
    losers: list[tuple[str, str]] = []
    want_raw = assoc.selects_raw
    matched = _matched_keywords(assoc.condition)
    for cand in index.near(set(categories) if categories else None, ab_mid, widest):
        if cand.ref in own_inputs or (cand.status == "raw") != want_raw:
            continue
        # Only the first _RUNNERS_UP losers can be shown (after the ranked runners-up):
        # the others are not explained (explaining a setup is the costly part).
        explain = len(losers) < _RUNNERS_UP
        if cand.ref in rejected:
            if explain:
                losers.append((cand.ref, rejected[cand.ref]))
            continue
        header, input_header = absent_as_equal(matched, cand.header, ab_header)
        if not truthy(evaluate(assoc.condition, header, input_header)):
            if explain:
                failed = failed_conditions(assoc.condition, header, input_header)
                losers.append((cand.ref, "setup differs: " + "; ".join(failed)))
            continue
        delta = cand.mid_mjd - ab_mid
        level = validity.level(delta) if validity else 0
        if level is None:
            if explain:
                losers.append((cand.ref, f"outside validity (|Δt| = {abs(delta):.2f} d)"))
            continue
        # Within a quality level: the nearest night first (tonight's fresh master
        # before last week's), then certified before candidate, then nearest in time.
        nights_apart = round(abs(delta))
        ranked.append(((level, nights_apart, _STATUS_RANK[cand.status], abs(delta)), cand, level))
    ranked.sort(key=lambda r: (r[0], r[1].ref))
    chosen = tuple(
        Choice(c.ref, c.status, c.mid_mjd - ab_mid, level, c.ab_id)
        for _, c, level in ranked[: assoc.limit]
    )
    if chosen:
        best = ranked[0]
        for key, cand, level in ranked[len(chosen) : len(chosen) + _RUNNERS_UP]:
            if level > best[2]:
                why = f"lower quality level {level} (chosen: level {best[2]})"
            elif key[1] > best[0][1]:
                why = f"from a night farther away (|Δt| = {key[3]:.3f} d vs {best[0][3]:.3f} d)"
            elif key[2] > best[0][2]:
                why = f"{cand.status}; a certified one was preferred"
            else:
                why = f"farther in time (|Δt| = {key[3]:.3f} d vs {best[0][3]:.3f} d)"
            losers.insert(0, (cand.ref, why))
    missing = None
    if len(chosen) < assoc.min_ret:
        where = ", ".join(
            f"{k.name}={ab_header[k.name]!r}"
            if ab_header.get(k.name) is not None
            else f"{k.name} absent from this block's frames"
            for k in sorted(keywords_in(assoc.condition), key=lambda k: k.name)
            if k.of_input
        )
        window = f" within {widest:g} d" if validity else ""
        missing = (
            f"{assoc.tag}: {len(chosen)} of {assoc.min_ret} {category or 'calibration'}"
            f"{' for ' + where if where else ''}{window}"
        )
    shown = ranked[len(chosen) : len(chosen) + _RUNNERS_UP]
    if assoc.limit is None or len(chosen) < assoc.limit or len(shown) < _RUNNERS_UP:
        # Room left (or no limit): any new candidate within the window would be
        # chosen or shown.
        horizon = widest
    else:
        # Full: a new candidate shows only if it ranks before the last runner-up shown,
        # so within its night distance (level grows with |Δt|); and everything shown
        # lies within it too.
        horizon = min(widest, shown[-1][0][1] + 0.5)
    return TagLog(
        assoc.tag,
        category,
        assoc.min_ret,
        assoc.max_ret,
        chosen,
        tuple(losers[:_RUNNERS_UP]),
        missing,
        horizon,
    )


@dataclass(frozen=True)
class KnownBlock:
    """A block associated before and kept as it is: not redone, it still offers its
    products (if complete) to the blocks being planned, in the same order as a whole
    association would. ``first`` is its first raw frame."""

    block: AssociationBlock
    first: RawFrame


def association_reach(rules: RuleSet, config: AssociationConfig) -> float:
    """The widest window (days) within which any action looks for a calibration: a
    block only sees candidates (raw frames, planned or real products) this close to it.

    Tags without a validity window look within 1 day (as ``_select`` does).
    """
    reach = 1.0
    for action in rules.actions:
        for assoc in action.associations:
            key = "PRO.CATG" if assoc.source == "calibFiles" else "DO.CATG"
            categories = required_values(assoc.condition, key) or required_values(
                assoc.condition, "DO.CATG"
            )
            category = next(iter(sorted(categories)), None)
            validity = config.validity.get(category) if category else None
            reach = max(reach, validity.windows_days[-1] if validity else 1.0)
    return reach


def _announce(
    block: AssociationBlock,
    first: RawFrame,
    index: _CandidateIndex,
    decisions: Mapping[str, tuple[str, str]],
    rejected: dict[str, str],
) -> None:
    """Offer a complete block's products as virtual calibrations to later blocks."""
    if block.completeness != "complete":
        return
    for category in block.products:
        header = {**first.header, "PRO.CATG": category, "DO.CATG": category}
        ref = f"{block.id}:{category}"
        decided, why = decisions.get(ref, ("virtual", ""))
        if decided == "rejected":
            rejected[ref] = why
        status: Status = "certified" if decided == "certified" else "virtual"
        index.add(Candidate(ref, category, block.mid_mjd, header, status, block.id))


def build_association_blocks(
    rules: RuleSet,
    config: AssociationConfig,
    frames: Sequence[RawFrame],
    calibrations: Sequence[Calibration] = (),
    decisions: Mapping[str, tuple[str, str]] | None = None,
    *,
    groups: Sequence[tuple[Action, list[RawFrame]]] | None = None,
    known: Sequence[KnownBlock] = (),
) -> list[AssociationBlock]:
    """Plan every AB for ``frames``, attaching real and virtual calibrations.

    ``decisions``: QC decisions on the products blocks made, keyed by virtual
    reference (``<ab_id>:<PRO.CATG>``): ``("certified", why)`` ranks that product
    with the certified ones, ``("rejected", why)`` keeps it from ever being chosen
    (the association log says why it lost).

    ``groups`` and ``known``: redo only some blocks. ``groups`` are the groups to
    plan (some of what ``organise(rules, frames)`` gives; default: all of it);
    ``frames`` must then hold every frame within ``association_reach`` of them, and
    ``known`` the blocks already associated within that reach: they are not planned
    again, only offer their products where a whole association would have. The
    blocks planned are those a whole association of all frames gives, as long as no
    organisation group spans more than the reach and no block that a planned one
    would change is among ``known`` (the caller sees to both,
    ``qclib.workflow.association``).

    Deterministic: the same frames, products, decisions and rules give the same ABs.
    """
    decisions = decisions or {}
    depth = _dependency_depth(rules)
    planned = organise(rules, frames) if groups is None else groups
    # Blocks are resolved in this order; a block sees the products of those before it.
    order: list[tuple[tuple[int, float, str], Action | None, list[RawFrame] | KnownBlock]] = [
        ((depth.get(action.name, 0), members[0].mid_mjd, action.name), action, members)
        for action, members in planned
    ]
    order += [
        ((depth.get(k.block.action, 0), k.first.mid_mjd, k.block.action), None, k) for k in known
    ]
    order.sort(key=lambda entry: entry[0])
    index = _CandidateIndex()
    rejected: dict[str, str] = {}
    for cal in calibrations:
        if cal.status == "rejected":
            rejected[cal.ref] = "rejected by QC: never used"
            index.add(Candidate(cal.ref, cal.pro_catg, cal.mid_mjd, cal.header, "candidate"))
        else:
            index.add(Candidate(cal.ref, cal.pro_catg, cal.mid_mjd, cal.header, cal.status))
    for frame in frames:
        if frame.do_catg:
            index.add(Candidate(frame.arcfile, frame.do_catg, frame.mid_mjd, frame.header, "raw"))

    blocks: list[AssociationBlock] = []
    for _key, action, what in order:
        if isinstance(what, KnownBlock):
            _announce(what.block, what.first, index, decisions, rejected)
            continue
        assert action is not None
        members = what
        first = members[0]
        block_id = ab_id(first.arcfile, action.name)
        mid = sum(f.mid_mjd for f in members) / len(members)
        own = {f.arcfile for f in members}
        tags = tuple(
            _select(a, first.header, mid, own, index, config, rejected) for a in action.associations
        )
        reasons = [t.missing_reason for t in tags if t.missing_reason]
        needed = config.min_frames.get(action.name, 1)
        if len(members) < needed:
            reasons.insert(
                0, f"{len(members)} {first.do_catg} frame(s), {action.name} needs {needed}"
            )
        parents = tuple(sorted({c.ab_id for t in tags for c in t.chosen if c.ab_id}))
        products = tuple(p.pro_catg for p in action.products if p.pro_catg)
        block = AssociationBlock(
            id=block_id,
            instrument=first.instrument,
            action=action.name,
            recipe=action.recipe,
            night=first.night,
            mid_mjd=mid,
            inputs=tuple(f.arcfile for f in members),
            input_category=first.do_catg,
            setup={k: first.header.get(k) for k in _setup_keywords(action)},
            products=products,
            tags=tags,
            completeness="incomplete" if reasons else "complete",
            reason="; ".join(reasons) if reasons else None,
            parents=parents,
        )
        blocks.append(block)
        _announce(block, first, index, decisions, rejected)
    blocks.sort(key=lambda b: (b.mid_mjd, b.id))
    return blocks
