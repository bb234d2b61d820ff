"""HTML panels of the dashboards: tables and badges, as strings.

The live dashboards put them in ``ipywidgets.HTML``; ``qc publish`` writes them into
static pages. Every value is escaped; every colour has a word beside it.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from qclib.dashboards.loaders import (
    STATES,
    BlockLine,
    CalibrationStatus,
    NightOverview,
    ProductQC,
)
from qclib.db.ingest_log import QuarantineEntry
from qclib.db.ob_grades import StoredGrade

COLOURS = {
    # grades
    "OK": "#1a7f37",
    "NOK": "#b91c1c",
    "UNSCORED": "#6b7280",
    "MONITORED": "#6b7280",
    # block states
    "failed": "#b91c1c",
    "waiting": "#b45309",
    "queued": "#475569",
    "running": "#1d4ed8",
    "done": "#1a7f37",
    # OB grades (ESO's A-D against the PI's constraints)
    "A": "#1a7f37",
    "B": "#b45309",
    "C": "#b91c1c",
    "D": "#6b7280",
}

STYLE = """
<style>
.qc { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
      font-size: 14px; color: #111827; line-height: 1.45; }
.qc h2 { font-size: 20px; margin: 4px 0 6px 0; }
.qc h3 { font-size: 16px; margin: 14px 0 6px 0; }
.qc .muted { color: #4b5563; }
.qc .badge { display: inline-block; min-width: 3.2em; text-align: center; color: white;
             border-radius: 4px; padding: 1px 6px; font-weight: 600; font-size: 12px; }
.qc table { border-collapse: collapse; margin: 4px 0 10px 0; width: 100%; }
.qc th { text-align: left; background: #f3f4f6; border-bottom: 2px solid #d1d5db;
         padding: 4px 8px; font-weight: 600; }
.qc td { border-bottom: 1px solid #e5e7eb; padding: 4px 8px; vertical-align: top; }
.qc td.num { text-align: right; font-variant-numeric: tabular-nums; }
.qc code { font-size: 12px; }
.qc .nowrap { white-space: nowrap; }
.qc .todo { background: #fef3c7; border-left: 4px solid #b45309; padding: 6px 10px;
            margin: 6px 0 10px 0; }
.qc .todo.clear { background: #dcfce7; border-left-color: #1a7f37; }
.qc .legend { font-size: 12px; color: #4b5563; margin: 2px 0 8px 0; }
.qc .counts span { margin-right: 14px; }
.qc-queue select, .qc-bulk select { font-family: "DejaVu Sans Mono", Menlo, monospace;
                                    font-size: 12px; }
</style>
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


#: calChecker's verdicts: its NOK (outdated, usable) is a warning, not a failure.
VERDICT_COLOURS = {"OK": "#1a7f37", "NOK": "#c2410c", "MISS": "#b91c1c"}
LEVELS = {0: "calibration plan", 1: "certifiable", 2: "acceptable", 3: "risky"}


def badge(word: str | None, colours: dict[str, str] = COLOURS) -> str:
    if not word:
        return '<span class="muted">—</span>'
    colour = colours.get(word, "#6b7280")
    return f'<span class="badge" style="background:{colour}">{esc(word)}</span>'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Iterable[int] = ()
) -> str:
    """An HTML table; cells are HTML already (escape values with ``esc``)."""
    numeric = set(numeric)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def panel(*parts: str) -> str:
    return STYLE + '<div class="qc">' + "".join(parts) + "</div>"


def message(text: str, *, title: str = "") -> str:
    """A sentence for the user (an empty workspace, a problem), in place of a dashboard."""
    heading = f"<h2>{esc(title)}</h2>" if title else ""
    return panel(heading, f"<p>{esc(text)}</p>")


def utc(moment: dt.datetime | str | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ----------------------------------------------------------------------- calChecker
CALCHECKER_LEGEND = (
    "OK: calibrations within the calibration plan. NOK: only outdated ones (the science "
    "can be reduced, but take new ones). MISS: none usable: the science cannot be reduced "
    "until they are taken."
)


def calchecker_panel(status: CalibrationStatus) -> str:
    """Per science setup of the nights: OK / NOK / MISS and what to take."""
    nights = (
        f"night {status.end}"
        if status.start == status.end
        else f"nights {status.start} to {status.end}"
    )
    title = f"<h2>calChecker: calibrations for the science of {nights}</h2>"
    if not status.checks:
        return panel(title, "<p>No science observed in these nights: nothing to check.</p>")
    counts = status.verdicts
    summary = (
        '<div class="counts">'
        + "".join(
            f"<span>{verdict(v)} {counts.get(v, 0)} science setup"
            f"{'s' if counts.get(v, 0) != 1 else ''}</span>"
            for v in ("MISS", "NOK", "OK")
        )
        + "</div>"
    )
    todo = status.to_take
    if todo:
        take = (
            '<div class="todo"><b>To take tonight</b><ul>'
            + "".join(f"<li>{esc(t)}</li>" for t in todo)
            + "</ul></div>"
        )
    else:
        take = '<div class="todo clear"><b>Nothing to take</b>: every setup is calibrated.</div>'
    rows = []
    for check in status.checks:
        setup = ", ".join(f"{k}={v}" for k, v in check.setup.items())
        calibrations = "<br>".join(_calibration_line(c) for c in check.calibrations)
        rows.append(
            [
                verdict(check.verdict),
                esc(check.instrument),
                esc(check.action),
                f"<code>{esc(setup)}</code>",
                f'<span class="nowrap">{"<br>".join(esc(n) for n in check.nights)}</span>',
                calibrations or '<span class="muted">needs none</span>',
            ]
        )
    return panel(
        title,
        summary,
        take,
        f'<div class="legend">{esc(CALCHECKER_LEGEND)}</div>',
        table(["verdict", "instrument", "science", "setup", "nights", "calibrations"], rows),
    )


def verdict(word: str) -> str:
    return badge(word, VERDICT_COLOURS)


def _calibration_line(c: Any) -> str:
    """One calibration of a setup: verdict, what, how far, and what to do."""
    line = f"{verdict(c.verdict)} <b>{esc(c.tag)}</b>"
    if c.chosen and c.delta_days is not None:
        level = LEVELS.get(c.level, f"level {c.level}")
        line += (
            f' <span class="muted" title="{esc(c.chosen)}">{abs(c.delta_days):.2f} d from the '
            f"science ({esc(level)})</span>"
        )
    if c.action_required:
        colour = VERDICT_COLOURS[c.verdict]
        line += f'<br><span style="color:{colour}">→ {esc(c.action_required)}</span>'
    return line


# ----------------------------------------------------------------------- monitor
_GRADE_ORDER = {"NOK": 0, "UNSCORED": 1, "OK": 2, "MONITORED": 3}


def _summary_text(summary: dict[str, Any] | None) -> str:
    """A pass's summary in words: counts, not the whole record."""
    if not summary:
        return "no summary recorded (still running, or killed)"
    parts = []
    ingested = summary.get("ingested") or {}
    new = {k: v for k, v in ingested.items() if k != "already-ingested" and v}
    parts.append(
        "new files: " + ", ".join(f"{v} {k}" for k, v in sorted(new.items()))
        if new
        else "no new file"
    )
    outcomes = summary.get("outcomes") or []
    if outcomes:
        by_status: dict[str, int] = {}
        for o in outcomes:
            status = o.get("status", "?") if isinstance(o, dict) else str(o)
            by_status[status] = by_status.get(status, 0) + 1
        parts.append("blocks: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())))
    scored = summary.get("scored") or {}
    if scored:
        total = sum(scored.values())
        parts.append(
            f"{total} QC values graded: "
            + ", ".join(
                f"{n} {g}"
                for g, n in sorted(scored.items(), key=lambda kv: _GRADE_ORDER.get(kv[0], 9))
            )
        )
    reports = summary.get("reports") or {}
    if isinstance(reports, dict) and reports:
        parts.append("reports: " + ", ".join(f"{n} {s}" for s, n in sorted(reports.items())))
    if summary.get("certified"):
        parts.append(f"{summary['certified']} certified automatically")
    if summary.get("archived"):
        parts.append(f"{len(summary['archived'])} archived")
    return "; ".join(parts)


def passes_panel(passes: Sequence[dict[str, Any]], *, now: dt.datetime | None = None) -> str:
    """The last pass: when, how long, what it did; and the few before it."""
    if not passes:
        return panel(
            "<h3>Last pass</h3><p>No pass recorded yet: <code>qc run</code> makes one, "
            "<code>qc watch</code> one every interval.</p>"
        )
    now = now or dt.datetime.now(dt.UTC)
    last = passes[0]
    started = dt.datetime.fromisoformat(last["started_at"])
    if started.tzinfo is None:
        started = started.replace(tzinfo=dt.UTC)
    ago = now - started
    if last["finished_at"]:
        finished = dt.datetime.fromisoformat(last["finished_at"])
        if finished.tzinfo is None:
            finished = finished.replace(tzinfo=dt.UTC)
        took = f"took {(finished - started).total_seconds():.0f} s"
    else:
        took = "not finished (running now, or it was killed)"
    hours = ago.total_seconds() / 3600
    when = f"{hours * 60:.0f} min ago" if hours < 2 else f"{hours:.1f} h ago"
    head = (
        f"<h3>Last pass: {esc(utc(started))} ({when}), {took}</h3>"
        f"<p>{esc(_summary_text(last['summary']))}</p>"
    )
    rows = [
        [esc(utc(p["started_at"])), esc(utc(p["finished_at"])), esc(_summary_text(p["summary"]))]
        for p in passes[1:]
    ]
    earlier = table(["started", "finished", "what it did"], rows) if rows else ""
    return panel(head, earlier)


def night_panel(overview: NightOverview, report_url: Callable[[str], str]) -> str:
    """A night's blocks by state, with reasons, grades and report links."""
    counts = overview.counts
    grades = " ".join(f"{esc(i)} {badge(g)}" for i, g in sorted(overview.grades.items()))
    head = (
        f"<h3>Night {overview.night}: {len(overview.blocks)} association blocks</h3>"
        '<div class="counts">'
        + "".join(f"<span>{badge(s)} {counts.get(s, 0)}</span>" for s in STATES if counts.get(s))
        + "</div>"
        + (f"<p>Grade of the night: {grades}</p>" if grades else "")
    )
    rows = [_block_row(b, report_url) for b in overview.blocks]
    return panel(
        head,
        table(
            ["state", "block", "instrument", "grade", "why / NOK", "tries", "report"],
            rows,
            numeric=[5],
        ),
    )


def nights_panel(overviews: Sequence[NightOverview]) -> str:
    """The recent nights at a glance: blocks by state and the night's grade."""
    if not overviews:
        return ""
    rows = []
    for o in overviews:
        counts = o.counts
        rows.append(
            [
                esc(o.night),
                " ".join(f"{esc(i)} {badge(g)}" for i, g in sorted(o.grades.items()))
                or '<span class="muted">not graded</span>',
                *(
                    f"{badge(s)} {counts[s]}" if counts.get(s) else '<span class="muted">0</span>'
                    for s in STATES
                ),
            ]
        )
    return panel(
        "<h3>Recent nights</h3>",
        table(["night", "grade", *STATES], rows),
    )


def _block_row(b: BlockLine, report_url: Callable[[str], str]) -> list[str]:
    why = esc(b.reason) if b.reason else ""
    if b.nok:
        why += "".join(f"{'<br>' if why or i else ''}NOK: {esc(n)}" for i, n in enumerate(b.nok))
    link = (
        f'<a href="{esc(report_url(b.report))}" target="_blank">report</a>'
        if b.report
        else '<span class="muted">none</span>'
    )
    return [
        badge(b.state),
        f'<code class="nowrap">{esc(b.ab_id)}</code>',
        esc(b.instrument),
        badge(b.grade),
        why or '<span class="muted">—</span>',
        str(b.attempts) if b.attempts else "",
        link,
    ]


def ob_grades_panel(
    night: dt.date, grades: Sequence[StoredGrade], report_url: Callable[[str], str]
) -> str:
    """The night's science OBs graded against their PIs' constraints, with why."""
    if not grades:
        return panel(
            f"<h3>OB grades, night {esc(night)}</h3>"
            "<p>No science OB graded this night ('qc science' processes and grades them).</p>"
        )
    rows = [
        [
            badge(g.grade),
            esc(g.prog_id or ""),
            esc(g.obs_id or ""),
            f'<code class="nowrap">{esc(g.ab_id)}</code>',
            esc(g.reason),
            f'<a href="{esc(report_url(f"{g.night.isoformat()}/{g.ab_id}.html"))}" '
            'target="_blank">report</a>',
        ]
        for g in grades
    ]
    return panel(
        f"<h3>OB grades, night {esc(night)}</h3>"
        '<p class="legend">A: every constraint met; B: some missed by up to 10 %; '
        "C: out of constraints (repeat); D: a QC scientist's call.</p>",
        table(["grade", "programme", "OB", "block", "why", "report"], rows),
    )


def quarantine_panel(entries: Sequence[QuarantineEntry]) -> str:
    if not entries:
        return panel("<h3>Quarantine</h3><p>No file in quarantine.</p>")
    rows = [
        [
            esc(f"{e.quarantined_at:%Y-%m-%d %H:%M}"),
            f"<code>{esc(e.source_path.rsplit('/', 1)[-1])}</code>",
            esc(e.reason_code),
            esc(e.reason),
            f"<code>{esc(e.stored_path)}</code>",
        ]
        for e in entries
    ]
    return panel(
        f"<h3>Quarantine: {len(entries)} file{'s' if len(entries) != 1 else ''} not ingested</h3>",
        table(["when (UTC)", "file", "code", "why", "kept as"], rows),
    )


# ----------------------------------------------------------------------- certification
def product_qc_panel(qc: ProductQC) -> str:
    """The graded values (NOK first); those only monitored (no rule) folded away."""
    if not qc.rows:
        return panel("<p>This product has no QC values.</p>")

    def rows(selected: list[dict[str, Any]]) -> list[list[str]]:
        return [
            [
                badge(r["grade"]),
                esc(r["parameter"]),
                esc(r["detector"]),
                "—" if r["value"] is None else f"{r['value']:.5g}",
                esc(r["reason"]),
            ]
            for r in selected
        ]

    headers = ["grade", "parameter", "detector", "value", "why"]
    graded = [r for r in qc.rows if r["grade"] not in ("MONITORED", None)]
    others = [r for r in qc.rows if r["grade"] in ("MONITORED", None)]
    folded = (
        f"<details><summary>{len(others)} more value{'s' if len(others) != 1 else ''} "
        "only monitored (no rule grades them)</summary>"
        + table(headers, rows(others), numeric=[3])
        + "</details>"
        if others
        else ""
    )
    return panel(table(headers, rows(graded), numeric=[3]) if graded else "", folded)


# ----------------------------------------------------------------------- page header
def header_panel(
    title: str, *, reviewer: str | None, workspace: str, links: Sequence[tuple[str, str]] = ()
) -> str:
    """The line above every dashboard: which, who, which workspace, the others."""
    who = (
        f"signed in as <b>{esc(reviewer)}</b>"
        if reviewer
        else '<span style="color:#b91c1c">no reviewer identified: read only</span>'
    )
    nav = " · ".join(f'<a href="{esc(url)}">{esc(name)}</a>' for name, url in links)
    return panel(
        f'<div style="display:flex; justify-content:space-between; align-items:baseline;'
        f' border-bottom:1px solid #d1d5db; padding-bottom:4px; margin-bottom:6px">'
        f'<span style="font-size:18px; font-weight:600">QC Workbench · {esc(title)}</span>'
        f'<span class="muted">{who} · workspace <code>{esc(workspace)}</code>'
        f"{' · ' + nav if nav else ''}</span></div>"
    )
