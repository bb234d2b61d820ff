"""The certification dashboard: the review queue, one product in detail, decisions.

The queue comes from ``qclib.archive.review.review_queue`` (NOK first, oldest night
first); decisions go through ``qclib.archive.certification.decide``, in the name of
the reviewer the server's gate found for this page (``session.reviewer``), never a
name typed here. A refused decision (a rejection without a comment, a NOK product
certified without saying why) changes nothing and the page shows why.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from qclib.archive.certification import CertificationRefused, Decision, decide
from qclib.archive.review import ReviewItem, review_queue
from qclib.dashboards.figures import health_figure
from qclib.dashboards.loaders import health_data, product_qc, reviewer_exists
from qclib.dashboards.page import figure_output, message_page, page, show_figure
from qclib.dashboards.panels import badge, esc, panel, product_qc_panel
from qclib.dashboards.session import DashboardSession
from qclib.errors import QCError

TITLE = "Certification"


def item_label(item: ReviewItem) -> str:
    """One line of the queue: grade, night, category, file, and why in a few words."""
    nok = sum(r.startswith("NOK") for r in item.reasons)
    others = [r for r in item.reasons if not r.startswith("NOK")]
    why = [f"{nok} NOK value{'s' if nok != 1 else ''}"] if nok else []
    why += others or ([] if nok else ["not drawn: certified automatically after the delay"])
    short = [w if len(w) <= 70 else w[:69] + "…" for w in why]
    return f"{item.grade:<9} {item.night}  {item.pro_catg:<17} {item.name}  ({'; '.join(short)})"


def decisions_text(decisions: list[Decision], reviewer: str) -> str:
    lines = []
    for d in decisions:
        text = f"{d.name}: {d.message} by {reviewer}"
        if d.archived:
            text += f"; archived as {d.archived}"
        if d.tainted:
            text += f"; tainted (to be processed again): {', '.join(d.tainted)}"
        lines.append(f"<li>{esc(text)}</li>")
    return panel(f'<div class="todo clear"><ul>{"".join(lines)}</ul></div>')


def refusal_text(why: str) -> str:
    return panel(f'<div class="todo"><b>Nothing was changed.</b> {esc(why)}</div>')


def dashboard(session: DashboardSession) -> widgets.Widget:
    if session.problem or session.workspace is None or session.database is None:
        return message_page(session, TITLE, session.problem or "no workspace")
    workspace, database = session.workspace, session.database
    reviewer = session.reviewer
    state: dict[str, Any] = {"items": []}

    undrawn = widgets.Checkbox(
        description="also all-OK products waiting for automatic certification",
        layout=widgets.Layout(width="520px"),
        indent=False,
    )
    queue = widgets.Select(rows=10, layout=widgets.Layout(width="100%"))
    queue.add_class("qc-queue")
    heading = widgets.HTML()
    values = widgets.HTML()
    parameter = widgets.Dropdown(description="Trend of", layout=widgets.Layout(width="420px"))
    trend = figure_output()
    report = widgets.HTML()
    report.add_class("qc-report")
    inline = widgets.ToggleButton(description="Show the report here", icon="file-text")
    inline.layout.width = "220px"
    comment = widgets.Textarea(
        placeholder="Comment (needed to reject, and to certify over a NOK grade)",
        layout=widgets.Layout(width="100%", height="60px"),
    )
    comment.add_class("qc-comment")
    certify = widgets.Button(description="Certify", button_style="success", icon="check")
    reject = widgets.Button(description="Reject", button_style="danger", icon="times")
    certify.add_class("qc-certify")
    reject.add_class("qc-reject")
    bulk_choice = widgets.SelectMultiple(rows=6, layout=widgets.Layout(width="100%"))
    bulk_choice.add_class("qc-bulk")
    bulk = widgets.Button(description="Certify the selected all-OK products", icon="check-double")
    bulk.layout.width = "320px"
    bulk.add_class("qc-bulk-certify")
    result = widgets.HTML()
    result.add_class("qc-result")
    if reviewer is None:
        for button in (certify, reject, bulk):
            button.disabled = True
        result.value = refusal_text(
            "No reviewer is known for this page: open it with your token "
            "(the link 'qc user add NAME' printed) to certify or reject."
        )

    def load_queue(keep: int | None = None) -> None:
        items = review_queue(workspace, database, include_undrawn=undrawn.value)
        state["items"] = items
        queue.options = [(item_label(i), i.product_id) for i in items]
        ok = [i for i in items if i.grade == "OK"]
        bulk_choice.options = [(item_label(i), i.product_id) for i in ok]
        ids = [i.product_id for i in items]
        queue.value = keep if keep in ids else (ids[0] if ids else None)
        if not items:
            heading.value = panel(
                "<h3>The review queue is empty</h3><p>Every graded product has a decision, "
                "or waits for automatic certification (tick the box above to see those).</p>"
            )
            values.value = report.value = ""
            trend.clear_output()

    def current() -> ReviewItem | None:
        return next((i for i in state["items"] if i.product_id == queue.value), None)

    def show_item() -> None:
        item = current()
        if item is None:
            return
        reasons = "".join(f"<li>{esc(r)}</li>" for r in item.reasons) or "<li>not drawn</li>"
        heading.value = panel(
            f"<h3>{badge(item.grade)} <code>{esc(item.name)}</code></h3>"
            f"<p>{esc(item.instrument)} {esc(item.pro_catg)}, night {esc(item.night)}, "
            f"block <code>{esc(item.ab_id)}</code>, status <b>{esc(item.status)}</b></p>"
            f"<p>In the queue because:</p><ul>{reasons}</ul>"
        )
        qc = product_qc(database, item.product_id)
        values.value = product_qc_panel(qc)
        names = list(dict.fromkeys(r["parameter"] for r in qc.rows))  # NOK ones first
        parameter.options = names
        parameter.value = names[0] if names else None
        show_report()

    def show_report() -> None:
        """The block's report: a link, and inline once asked for (the report is a few
        MB of plotly; loading it with every product would slow the page down)."""
        item = current()
        if item is None:
            return
        if item.report is None:
            report.value = panel("<p>No report was written for this block.</p>")
            inline.layout.display = "none"
            return
        url = esc(session.report_url(item.report.relative_to(workspace.runs_dir).as_posix()))
        inline.layout.display = None
        link = f'<p><a href="{url}" target="_blank">Open the report in a new tab</a></p>'
        frame = (
            f'<iframe src="{url}" style="width:100%; height:720px; '
            'border:1px solid #d1d5db"></iframe>'
        )
        report.value = panel(link) + (frame if inline.value else "")

    def show_trend() -> None:
        item = current()
        if item is None or parameter.value is None:
            return
        data = health_data(database, item.instrument)
        rows = data.series(item.pro_catg, parameter.value)
        fig = health_figure(
            rows, title=f"{item.pro_catg} {parameter.value}: all detectors", events=data.events
        )
        mine = rows[rows["product"] == item.name]
        fig.add_trace(
            go.Scatter(
                x=mine["night"],
                y=mine["value"],
                mode="markers",
                name="this product",
                marker={
                    "size": 18,
                    "color": "rgba(0,0,0,0)",
                    "line": {"width": 2, "color": "black"},
                },
                hoverinfo="skip",
            )
        )
        show_figure(trend, fig)

    def run_decision(ids: list[int], kind: str) -> None:
        assert reviewer is not None
        if not reviewer_exists(database, reviewer):
            result.value = refusal_text(
                f"Reviewer {reviewer} has been removed since this page was opened; "
                "ask for a new token."
            )
            return
        if not ids:
            result.value = refusal_text("Select a product first.")
            return
        try:
            done = decide(
                workspace,
                database,
                ids,
                decision=kind,  # type: ignore[arg-type]
                comment=comment.value,
                reviewer=reviewer,
            )
        except CertificationRefused as err:
            result.value = refusal_text(str(err))
            return
        except QCError as err:  # e.g. recorded, but the archive copy failed
            result.value = panel(
                f'<div class="todo"><b>Could not finish:</b> {esc(err)}. The queue below '
                "shows what was recorded; 'qc audit' lists the decisions and 'qc archive "
                "verify' checks the archive.</div>"
            )
            load_queue()
            return
        comment.value = ""
        result.value = decisions_text(done, reviewer)
        load_queue()

    queue.observe(lambda _: show_item(), names="value")
    parameter.observe(lambda _: show_trend(), names="value")
    inline.observe(lambda _: show_report(), names="value")
    undrawn.observe(lambda _: load_queue(queue.value), names="value")
    certify.on_click(lambda _: run_decision([queue.value] if queue.value else [], "certify"))
    reject.on_click(lambda _: run_decision([queue.value] if queue.value else [], "reject"))
    bulk.on_click(lambda _: run_decision(list(bulk_choice.value), "certify"))
    load_queue()
    show_item()

    def section(title: str) -> widgets.HTML:
        return widgets.HTML(panel(f"<h3>{esc(title)}</h3>"))

    return page(
        session,
        TITLE,
        section("Review queue (NOK first, then the oldest night)"),
        undrawn,
        queue,
        heading,
        comment,
        widgets.HBox([certify, reject], layout=widgets.Layout(margin="4px 0")),
        result,
        section("QC values and grades"),
        values,
        parameter,
        trend,
        section("Report of its block"),
        inline,
        report,
        section("Bulk: certify all-OK products (select several with Ctrl or Shift)"),
        bulk_choice,
        bulk,
    )
